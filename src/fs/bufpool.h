/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Buffers for blobs read ahead whole, reused: the disk writes straight into
 * them (O_DIRECT), and a fresh buffer costs a page fault and a zeroed page
 * for each 4 KiB of it when the kernel pins it for the read (about 5% of the
 * daemon's time in a cold read of many small files, measured). Buffers are a
 * power of two from 4 KiB to CAS_BUFPOOL_MAX, aligned for direct reads of
 * their length; at most CAS_BUFPOOL_BUDGET bytes of them wait for reuse, and
 * they go when memory is released. */

#include <pthread.h>
#include <stdint.h>

#define CAS_BUFPOOL_MIN_SHIFT 12
#define CAS_BUFPOOL_CLASSES 9
#define CAS_BUFPOOL_MAX (UINT64_C(1) << (CAS_BUFPOOL_MIN_SHIFT + CAS_BUFPOOL_CLASSES - 1))
#define CAS_BUFPOOL_BUDGET (16 * 1024 * 1024)

typedef struct cas_bufpool {
        pthread_mutex_t lock;             /* protects free, bytes */
        void *free[CAS_BUFPOOL_CLASSES]; /* free buffers of each size, linked through their first bytes */
        uint64_t bytes;
} cas_bufpool;

void cas_bufpool_init(cas_bufpool *p);
/* Frees the buffers waiting for reuse (the pool stays usable). */
void cas_bufpool_clear(cas_bufpool *p);
void cas_bufpool_done(cas_bufpool *p);

/* A buffer for size bytes (up to CAS_BUFPOOL_MAX), aligned for direct reads
 * of its length rounded up to the block; NULL when memory is short. */
uint8_t *cas_bufpool_get(cas_bufpool *p, uint64_t size);
/* Gives back a buffer of cas_bufpool_get(p, size); accepts NULL. */
void cas_bufpool_put(cas_bufpool *p, uint8_t *b, uint64_t size);
