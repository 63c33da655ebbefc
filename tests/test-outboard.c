/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The outboard tree hasher must give BLAKE3's digest for every length (the
 * streaming hasher and the reference vectors are the judges), and its
 * outboard must accept exactly the right bytes. */
#include "digest.h"
#include "outboard.h"
#include "tests.h"
#include "vectors.h"

#define G CAS_OUTBOARD_GROUP

static uint8_t *pattern(size_t n, uint32_t seed)
{
        uint8_t *b = malloc(n ? n : 1);
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                b[i] = (uint8_t)x;
        }
        return b;
}

/* Hashes data in pieces of the given sizes (cycled); returns the outboard. */
static uint8_t *tree_hash(const uint8_t *data, size_t len, const size_t *pieces, size_t n_pieces, cas_digest *ret)
{
        cas_tree_hasher h;
        uint8_t *ob = NULL;
        cas_tree_hasher_init(&h);
        for (size_t off = 0, k = 0; off < len; k++) {
                size_t c = MIN_(len - off, pieces[k % n_pieces]);
                ASSERT(cas_tree_hasher_update(&h, data + off, c) == 0);
                off += c;
        }
        ASSERT(cas_tree_hasher_final(&h, ret, &ob) == 0);
        cas_tree_hasher_done(&h);
        return ob;
}

static void test_vectors(void)
{
        /* the blobs of the reference vectors whose contents are given in hex */
        for (size_t i = 0; i < ELEMENTS(vector_blobs); i++) {
                const vector_blob *v = &vector_blobs[i];
                if (!v->contents_hex)
                        continue;
                uint8_t *data = malloc(strlen(v->contents_hex) / 2 + 1);
                size_t len;
                char hex[CAS_DIGEST_HEX_MAX];
                cas_digest d;
                hex_to_bytes(v->contents_hex, data, &len);
                free(tree_hash(data, len, (size_t[]){1}, 1, &d));
                CHECK_STR(cas_digest_to_hex(&d, hex), v->hex);
                free(data);
        }
}

static void test_lengths(void)
{
        const uint64_t M = CAS_OUTBOARD_MIN;
        const uint64_t lengths[] = {
                0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3 * 1024 + 1, G - 1, G, G + 1, 2 * G, 2 * G + 1,
                3 * G - 1024, 3 * G + 1023, 5 * G + 64, 16 * G, 17 * G, M - 1, M, M + 1, M + 1024,
                M + G, M + G + 1, 2 * M - 1, 2 * M, 3 * M + 12345, 5 * M + 3 * G + 1025,
        };
        const size_t pieces[][3] = {{1 << 20, 1 << 20, 1 << 20}, {G, G, G}, {7, 40000, G + 3}, {4096, 1, 65536}};

        for (size_t i = 0; i < ELEMENTS(lengths); i++) {
                size_t len = (size_t)lengths[i];
                uint8_t *data = pattern(len, (uint32_t)i);
                cas_digest want, got;
                cas_digest_of(data, len, &want);
                for (size_t p = 0; p < ELEMENTS(pieces); p++) {
                        uint8_t *ob = tree_hash(data, len, pieces[p], 3, &got);
                        CHECK(cas_digest_eq(&got, &want));
                        if (!cas_digest_eq(&got, &want))
                                fprintf(stderr, "  length %zu, pieces %zu\n", len, p);
                        CHECK((ob != NULL) == (len > M));
                        if (ob && p == 0) {
                                uint64_t n = cas_outboard_groups(len), size = cas_outboard_size(len);
                                CHECK(size == n * CAS_OUTBOARD_CV_SIZE);
                                CHECK(cas_outboard_check(ob, len, &want));
                                /* every group checks with its bytes, and not with others */
                                for (uint64_t g = 0; g < n; g++) {
                                        size_t gl = (size_t)MIN_(G, len - g * G);
                                        CHECK(cas_outboard_check_group(ob, len, g, data + g * G, gl));
                                        data[g * G + gl / 2] ^= 0x01;
                                        CHECK(!cas_outboard_check_group(ob, len, g, data + g * G, gl));
                                        data[g * G + gl / 2] ^= 0x01;
                                        if (g + 1 < n)
                                                CHECK(!cas_outboard_check_group(ob, len, g + 1, data + g * G, gl));
                                }
                                CHECK(!cas_outboard_check_group(ob, len, n, data, G));
                                CHECK(!cas_outboard_check_group(ob, len, 0, data, G - 1));
                                /* a damaged outboard, or one for another length, is refused */
                                ob[size / 2] ^= 0x80;
                                CHECK(!cas_outboard_check(ob, len, &want));
                                ob[size / 2] ^= 0x80;
                                /* one group longer (a buffer of that length, the last CV zero) */
                                uint8_t *longer = calloc(1, (size_t)size + CAS_OUTBOARD_CV_SIZE);
                                memcpy(longer, ob, (size_t)size);
                                CHECK(!cas_outboard_check(longer, len + G, &want));
                                free(longer);
                                /* the last group's bytes carry the length: one byte short is refused */
                                size_t last = (size_t)((n - 1) * G);
                                CHECK(!cas_outboard_check_group(ob, len - 1, n - 1, data + last, len - 1 - last));
                                cas_digest other = want;
                                other.bytes[0] ^= 1;
                                CHECK(!cas_outboard_check(ob, len, &other));
                        }
                        free(ob);
                }
                free(data);
        }
}

int main(void)
{
        test_vectors();
        test_lengths();
        return tests_finish("test-outboard");
}
