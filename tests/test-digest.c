/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "digest.h"
#include "tests.h"
#include "vectors.h"

static void blob_contents(const vector_blob *v, uint8_t **ret, size_t *ret_len)
{
        if (v->contents_hex) {
                uint8_t *b = malloc(strlen(v->contents_hex) / 2 + 1);
                hex_to_bytes(v->contents_hex, b, ret_len);
                *ret = b;
                return;
        }
        /* BLOB_B: the bytes 0x00..0xFE repeated 4096 times. */
        ASSERT(strcmp(v->name, "BLOB_B") == 0);
        size_t n = 255 * 4096;
        uint8_t *b = malloc(n);
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(i % 255);
        *ret = b;
        *ret_len = n;
}

static void test_vectors(void)
{
        for (size_t i = 0; i < ELEMENTS(vector_blobs); i++) {
                const vector_blob *v = &vector_blobs[i];
                uint8_t *data;
                size_t len;
                cas_digest d, parsed;
                char text[CAS_DIGEST_TEXT_MAX], hex[CAS_DIGEST_HEX_MAX];

                blob_contents(v, &data, &len);
                cas_digest_of(data, len, &d);
                CHECK_STR(cas_digest_to_hex(&d, hex), v->hex);
                if (v->text)
                        CHECK_STR(cas_digest_to_text(&d, text), v->text);

                /* streaming in odd pieces gives the same digest */
                cas_hasher h;
                cas_hasher_init(&h);
                for (size_t off = 0; off < len;) {
                        size_t k = MIN_(len - off, 1 + off % 7919);
                        cas_hasher_update(&h, data + off, k);
                        off += k;
                }
                cas_hasher_final(&h, &parsed);
                CHECK(cas_digest_eq(&d, &parsed));

                CHECK_RC(cas_digest_parse(v->hex, &parsed), 0);
                CHECK(cas_digest_eq(&d, &parsed));
                CHECK_RC(cas_digest_parse(cas_digest_to_text(&d, text), &parsed), 0);
                CHECK(cas_digest_eq(&d, &parsed));
                free(data);
        }
        CHECK_STR(cas_digest_to_hex(&cas_digest_empty, (char[CAS_DIGEST_HEX_MAX]){0}),
                  vector_blobs[0].hex);
}

static void test_parse_errors(void)
{
        cas_digest d;
        const char *bad[] = {
                "",
                "blake3-",
                "blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI",   /* no padding */
                "blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmJ=",  /* non-zero pad bits */
                "blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQf!mI=",  /* bad character */
                "sha256-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=",
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f326",   /* 63 */
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f32622", /* 65 */
                "gf1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        };
        for (size_t i = 0; i < ELEMENTS(bad); i++)
                CHECK_RC(cas_digest_parse(bad[i], &d), -EINVAL);
}

int main(void)
{
        test_vectors();
        test_parse_errors();
        return tests_finish("test-digest");
}
