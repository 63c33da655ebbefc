/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small blobs read ahead whole, checked, and kept for the request that reads
 * them (at most CAS_PARKED_SLOTS of them, each up to CAS_PARKED_MAX bytes,
 * CAS_PARKED_BUDGET bytes in all). They are read from the disk straight into
 * buffers of the pool (O_DIRECT): no page cache of the blob beside the
 * kernel's cache of the mounted file, and no copy out of it. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bufpool.h"
#include "digest.h"

#define CAS_PARKED_SLOTS 64
#define CAS_PARKED_MAX (1024 * 1024)
#define CAS_PARKED_BUDGET (16 * 1024 * 1024)
_Static_assert(CAS_BUFPOOL_MAX == CAS_PARKED_MAX, "the pool's largest buffer holds a parked blob");

typedef struct cas_parked_slot {
        cas_digest digest;
        uint64_t size;
        uint8_t *bytes; /* NULL: free slot, or being read (loading) */
        bool loading;   /* a thread reads digest ahead into this slot */
        uint64_t age;   /* when it was claimed: the oldest goes first */
} cas_parked_slot;

typedef struct cas_parked {
        pthread_mutex_t lock; /* protects slots, clock, bytes */
        pthread_cond_t cond;  /* a blob being read ahead is there (or failed) */
        cas_parked_slot slots[CAS_PARKED_SLOTS];
        uint64_t clock;
        uint64_t bytes; /* held by slots[] */
        cas_bufpool *pool;
} cas_parked;

void cas_parked_init(cas_parked *pk, cas_bufpool *pool);
void cas_parked_done(cas_parked *pk);

/* The bytes of blob d (size bytes, checked when verifying), when reading
 * ahead kept them; the caller gives them back to the pool. A read ahead of d
 * under way is waited for: the request would read the same bytes again
 * otherwise. */
uint8_t *cas_parked_take(cas_parked *pk, const cas_digest *d, uint64_t size);
/* Puts back bytes taken with cas_parked_take whose end is still to be read
 * (the kernel reads a file in several requests): into a free slot, else they
 * go back to the pool. */
void cas_parked_return(cas_parked *pk, const cas_digest *d, uint64_t size, uint8_t *bytes);

/* Claims a slot for reading d ahead (the oldest kept blob makes room: a file
 * read ahead but never read). NULL when d is there already (*ret_there),
 * every slot is being loaded, or the budget is used up. */
cas_parked_slot *cas_parked_claim(cas_parked *pk, const cas_digest *d, uint64_t size, bool *ret_there);
/* Ends a claim: bytes (NULL when the read or the check failed) are there for
 * the request that reads the blob. */
void cas_parked_fill(cas_parked *pk, cas_parked_slot *p, uint8_t *bytes);

/* Frees what reading ahead kept and nobody read. */
void cas_parked_clear(cas_parked *pk);
