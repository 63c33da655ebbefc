/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* BLAKE3 outboards: the interior of a blob's hash tree, kept beside the blob
 * so that a read verifies only the part of the blob it touches.
 *
 * BLAKE3 hashes 1 KiB chunks and combines their chaining values (CVs) in a
 * binary tree whose left subtrees always hold a power of two of chunks.
 * Every aligned run of 16 chunks (a 16 KiB "group") is therefore a subtree of
 * its own, and the outboard is the CV of each group, 32 bytes per 16 KiB
 * (0.2 % of the blob). Before use it is checked against the blob's digest:
 * the groups' CVs must combine to the root. A read then hashes the groups it
 * touches and compares each with its CV.
 *
 * Why 16 KiB: a 4 KiB random read costs one 16 KiB read and hash (a few
 * microseconds) instead of the whole blob; the outboard of a 1 GiB blob is
 * 2 MiB, read and checked once; 16 chunks are exactly one batch of BLAKE3's
 * widest SIMD code (AVX-512), so hashing group by group is as fast as
 * hashing the blob in one go. (The bao-tree format of iroh chose the same
 * group size.) */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define CAS_OUTBOARD_GROUP_SHIFT 14
#define CAS_OUTBOARD_GROUP (UINT64_C(1) << CAS_OUTBOARD_GROUP_SHIFT)
#define CAS_OUTBOARD_CV_SIZE 32
/* Blobs larger than this carry an outboard; smaller ones are verified whole
 * on first use (one read of at most 1 MiB). */
#define CAS_OUTBOARD_MIN (UINT64_C(1) << 20)

/* Number of groups of a blob of size bytes (at least one). */
static inline uint64_t cas_outboard_groups(uint64_t size)
{
        return size == 0 ? 1 : (size + CAS_OUTBOARD_GROUP - 1) >> CAS_OUTBOARD_GROUP_SHIFT;
}

/* Length in bytes of the outboard of a blob of size bytes; 0 when it has none. */
static inline uint64_t cas_outboard_size(uint64_t size)
{
        return size > CAS_OUTBOARD_MIN ? cas_outboard_groups(size) * CAS_OUTBOARD_CV_SIZE : 0;
}

/* A streaming hasher that also yields the outboard: the same digest as
 * cas_hasher, computed group by group. */
typedef struct cas_tree_hasher {
        uint64_t size;      /* bytes so far */
        uint8_t *group;     /* the last group seen, not yet known not to be the final one */
        size_t group_len;
        uint8_t *cvs;       /* CVs of the groups finished so far */
        uint64_t n_cvs, alloc_cvs;
} cas_tree_hasher;

void cas_tree_hasher_init(cas_tree_hasher *h);
int cas_tree_hasher_update(cas_tree_hasher *h, const void *data, size_t n);
/* The digest, and (when ret_outboard is not NULL and the blob is large enough
 * to carry one) the outboard, cas_outboard_size() bytes the caller frees;
 * *ret_outboard is NULL for a smaller blob. */
int cas_tree_hasher_final(cas_tree_hasher *h, cas_digest *ret, uint8_t **ret_outboard);
/* Frees what the hasher holds (also after final). */
void cas_tree_hasher_done(cas_tree_hasher *h);

/* Whether outboard (cas_outboard_size(size) bytes) belongs to the blob of
 * this digest and size: its CVs combine to the digest. */
bool cas_outboard_check(const uint8_t *outboard, uint64_t size, const cas_digest *d);

/* Whether data (len bytes) is group index of a blob of size bytes with this
 * outboard (already checked): len must be the group's full length. */
bool cas_outboard_check_group(const uint8_t *outboard, uint64_t size, uint64_t index, const void *data,
                              size_t len);
