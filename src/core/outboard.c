/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
/* BLAKE3's internal interface: the compression function and the SIMD batch
 * hasher, which the public streaming API does not expose for subtrees. */
#include <blake3_impl.h>

#include "macro.h"
#include "outboard.h"

#define CHUNKS_PER_GROUP (CAS_OUTBOARD_GROUP / BLAKE3_CHUNK_LEN)
#define CV CAS_OUTBOARD_CV_SIZE
#define BATCH 16 /* parents merged per call: the widest SIMD degree */

_Static_assert(CHUNKS_PER_GROUP == 16, "a group is one batch of 16 chunks");

/* The CV of a chunk shorter than 1 KiB (only a blob's last chunk can be):
 * its 64-byte blocks compressed one after the other, the last zero-padded. */
static void short_chunk_cv(const uint8_t *data, size_t len, uint64_t counter, uint8_t out[CV])
{
        uint32_t cv[8];
        size_t blocks = (len + BLAKE3_BLOCK_LEN - 1) / BLAKE3_BLOCK_LEN;

        memcpy(cv, IV, sizeof(cv));
        for (size_t b = 0; b < blocks; b++) {
                uint8_t block[BLAKE3_BLOCK_LEN] = {0};
                size_t n = MIN((size_t)BLAKE3_BLOCK_LEN, len - b * BLAKE3_BLOCK_LEN);
                memcpy(block, data + b * BLAKE3_BLOCK_LEN, n);
                uint8_t flags = (b == 0 ? CHUNK_START : 0) | (b == blocks - 1 ? CHUNK_END : 0);
                blake3_compress_in_place(cv, block, (uint8_t)n, counter, flags);
        }
        store_cv_words(out, cv);
}

/* Combines n >= 2 CVs stored one after the other into one, in cvs[0]. Pairs
 * are merged level by level and an odd last one is carried up a level: the
 * same tree as BLAKE3's rule that a left subtree holds the largest power of
 * two of chunks below the total. root: the final merge is the tree's root. */
static void merge(uint8_t *cvs, uint64_t n, bool root)
{
        while (n > 2) {
                uint64_t pairs = n / 2;
                for (uint64_t i = 0; i < pairs; i += BATCH) {
                        size_t b = (size_t)MIN((uint64_t)BATCH, pairs - i);
                        const uint8_t *in[BATCH];
                        uint8_t out[BATCH * CV];
                        for (size_t j = 0; j < b; j++)
                                in[j] = cvs + 2 * CV * (i + j);
                        blake3_hash_many(in, b, 1, IV, 0, false, PARENT, 0, 0, out);
                        /* below what later batches read: they start at 2 * CV * (i + b) */
                        memcpy(cvs + CV * i, out, b * CV);
                }
                if (n % 2)
                        memmove(cvs + CV * pairs, cvs + CV * (n - 1), CV);
                n = pairs + n % 2;
        }
        uint32_t cv[8];
        memcpy(cv, IV, sizeof(cv));
        blake3_compress_in_place(cv, cvs, BLAKE3_BLOCK_LEN, 0, PARENT | (root ? ROOT : 0));
        store_cv_words(cvs, cv);
}

/* The CV of group index, len bytes (1 up to a full group), as a subtree of a
 * larger blob (never the root). */
static void group_cv(const uint8_t *data, size_t len, uint64_t index, uint8_t out[CV])
{
        uint8_t cvs[CHUNKS_PER_GROUP * CV];
        const uint8_t *in[CHUNKS_PER_GROUP];
        size_t full = len / BLAKE3_CHUNK_LEN, rest = len % BLAKE3_CHUNK_LEN, n = full;
        uint64_t counter = index * CHUNKS_PER_GROUP;

        for (size_t k = 0; k < full; k++)
                in[k] = data + k * BLAKE3_CHUNK_LEN;
        if (full > 0)
                blake3_hash_many(in, full, BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN, IV, counter, true, 0, CHUNK_START,
                                 CHUNK_END, cvs);
        if (rest > 0)
                short_chunk_cv(data + full * BLAKE3_CHUNK_LEN, rest, counter + full, cvs + CV * n++);
        if (n > 1)
                merge(cvs, n, false);
        memcpy(out, cvs, CV);
}

void cas_tree_hasher_init(cas_tree_hasher *h)
{
        *h = (cas_tree_hasher){0};
}

void cas_tree_hasher_done(cas_tree_hasher *h)
{
        free(h->group);
        free(h->cvs);
        *h = (cas_tree_hasher){0};
}

static int finish_group(cas_tree_hasher *h, const uint8_t *data, size_t len)
{
        if (h->n_cvs == h->alloc_cvs) {
                uint64_t n = h->alloc_cvs ? h->alloc_cvs * 2 : 64;
                void *p = realloc(h->cvs, n * CV);
                if (!p)
                        return -ENOMEM;
                h->cvs = p;
                h->alloc_cvs = n;
        }
        group_cv(data, len, h->n_cvs, h->cvs + CV * h->n_cvs);
        h->n_cvs++;
        return 0;
}

int cas_tree_hasher_update(cas_tree_hasher *h, const void *data, size_t n)
{
        const uint8_t *p = data;
        int r;

        h->size += n;
        while (n > 0) {
                /* a full group followed by more bytes is not the last one: finish it */
                if (h->group_len == CAS_OUTBOARD_GROUP) {
                        r = finish_group(h, h->group, h->group_len);
                        if (r < 0)
                                return r;
                        h->group_len = 0;
                }
                if (h->group_len == 0 && n > CAS_OUTBOARD_GROUP) {
                        r = finish_group(h, p, CAS_OUTBOARD_GROUP);
                        if (r < 0)
                                return r;
                        p += CAS_OUTBOARD_GROUP;
                        n -= CAS_OUTBOARD_GROUP;
                        continue;
                }
                if (!h->group) {
                        h->group = malloc(CAS_OUTBOARD_GROUP);
                        if (!h->group)
                                return -ENOMEM;
                }
                size_t c = MIN(n, (size_t)CAS_OUTBOARD_GROUP - h->group_len);
                memcpy(h->group + h->group_len, p, c);
                h->group_len += c;
                p += c;
                n -= c;
        }
        return 0;
}

int cas_tree_hasher_final(cas_tree_hasher *h, cas_digest *ret, uint8_t **ret_outboard)
{
        uint8_t *outboard = NULL;
        int r;

        if (h->n_cvs == 0) {
                /* one group at most: the whole blob is the root chunk or subtree */
                cas_digest_of(h->group ? h->group : (const uint8_t *)"", h->group_len, ret);
                if (ret_outboard)
                        *ret_outboard = NULL;
                return 0;
        }
        r = finish_group(h, h->group, h->group_len);
        if (r < 0)
                return r;
        h->group_len = 0;
        if (ret_outboard && cas_outboard_size(h->size) > 0) {
                outboard = malloc(h->n_cvs * CV);
                if (!outboard)
                        return -ENOMEM;
                memcpy(outboard, h->cvs, h->n_cvs * CV);
        }
        merge(h->cvs, h->n_cvs, true);
        memcpy(ret->bytes, h->cvs, CV);
        h->n_cvs = 0;
        if (ret_outboard)
                *ret_outboard = outboard;
        return 0;
}

bool cas_outboard_check(const uint8_t *outboard, uint64_t size, const cas_digest *d)
{
        uint64_t n = cas_outboard_groups(size);
        bool ok;

        if (cas_outboard_size(size) == 0)
                return false;
        uint8_t *cvs = malloc(n * CV);
        if (!cvs)
                return false;
        memcpy(cvs, outboard, n * CV);
        merge(cvs, n, true);
        ok = memcmp(cvs, d->bytes, CV) == 0;
        free(cvs);
        return ok;
}

bool cas_outboard_check_group(const uint8_t *outboard, uint64_t size, uint64_t index, const void *data,
                              size_t len)
{
        uint64_t n = cas_outboard_groups(size);
        uint8_t cv[CV];

        if (cas_outboard_size(size) == 0 || index >= n)
                return false;
        if (len != MIN(CAS_OUTBOARD_GROUP, size - index * CAS_OUTBOARD_GROUP))
                return false;
        group_cv(data, len, index, cv);
        return memcmp(cv, outboard + CV * index, CV) == 0;
}
