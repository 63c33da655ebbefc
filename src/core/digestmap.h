/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A hash map from digest to a 64-bit value (open addressing). Digests are
 * uniformly distributed already, so their first bytes serve as the hash. */

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"

typedef struct cas_digest_map {
        struct cas_digest_map_slot *slots;
        size_t n_slots; /* a power of two, or 0 */
        size_t n_used;
} cas_digest_map;

void cas_digest_map_done(cas_digest_map *m);
/* Inserts or overwrites. 1 when it was new, 0 when overwritten, -ENOMEM. */
int cas_digest_map_put(cas_digest_map *m, const cas_digest *d, uint64_t value);
/* true and *ret_value (optional) when present. */
bool cas_digest_map_get(const cas_digest_map *m, const cas_digest *d, uint64_t *ret_value);
/* Pointer to the value, valid until the next put; NULL when absent. */
uint64_t *cas_digest_map_find(const cas_digest_map *m, const cas_digest *d);

/* Iterates: start with *iter = 0; false at the end. Order is unspecified. */
bool cas_digest_map_next(const cas_digest_map *m, size_t *iter, cas_digest *ret_key,
                         uint64_t *ret_value);

/* The digests of a breadth-first walk: each queued once however often it
 * is pushed, taken in the order first pushed. */
typedef struct cas_digest_queue {
        cas_digest_map seen;
        cas_digest *items;
        size_t head, tail, alloc;
} cas_digest_queue;

void cas_digest_queue_done(cas_digest_queue *q);
/* Queues d unless it was queued before: 1 when queued, 0 when it was, -ENOMEM. */
int cas_digest_queue_push(cas_digest_queue *q, const cas_digest *d);
/* true and *ret the next digest; false when none is left. */
bool cas_digest_queue_pop(cas_digest_queue *q, cas_digest *ret);
