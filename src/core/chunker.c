/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>

#include "chunker.h"
#include "macro.h"

/* FastCDC: a rolling "gear" hash, h = (h << 1) + gear[byte], and a cut where
 * the hash's selected bits are all zero. Shifting left makes bit k of h
 * depend on the last k+1 bytes only, so the test looks at the top bits: they
 * see the last 64 bytes. Normalized chunking: a stricter test (more bits)
 * before the average size and a looser one after it pulls the sizes towards
 * the average. The average is 2^18 bytes; two bits either side (20 and 16)
 * is the paper's normalization level 2. */
#define BITS_SMALL 20
#define BITS_LARGE 16
#define MASK_SMALL (~UINT64_C(0) << (64 - BITS_SMALL))
#define MASK_LARGE (~UINT64_C(0) << (64 - BITS_LARGE))

/* 256 pseudo-random 64-bit words, one per byte value: splitmix64 from a
 * fixed seed. The table is part of the format in the sense that other seeds
 * cut elsewhere; readers do not care (they take any chunk sizes), but
 * writers that agree deduplicate with each other. */
static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static void gear_init(void)
{
        uint64_t x = UINT64_C(0x636173667363646e); /* "casfscdn" */
        for (size_t i = 0; i < ELEMENTSOF(gear); i++) {
                uint64_t z = (x += UINT64_C(0x9e3779b97f4a7c15));
                z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
                z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
                gear[i] = z ^ (z >> 31);
        }
}

size_t cas_chunker_next(const uint8_t *buf, size_t n)
{
        uint64_t h = 0;
        size_t i, normal, end;

        if (n <= CAS_CHUNK_MIN)
                return n;
        pthread_once(&gear_once, gear_init);
        end = MIN(n, (size_t)CAS_CHUNK_MAX);
        normal = MIN(end, (size_t)CAS_CHUNK_AVG);
        /* the first CAS_CHUNK_MIN bytes are never a boundary: not hashed at
         * all (the hash forgets a byte after 64 more anyway) */
        for (i = CAS_CHUNK_MIN; i < normal; i++) {
                h = (h << 1) + gear[buf[i]];
                if (!(h & MASK_SMALL))
                        return i + 1;
        }
        for (; i < end; i++) {
                h = (h << 1) + gear[buf[i]];
                if (!(h & MASK_LARGE))
                        return i + 1;
        }
        return end;
}
