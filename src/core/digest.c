/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <blake3.h>
#include <errno.h>

#include "digest.h"

_Static_assert(sizeof(blake3_hasher) <= sizeof(((cas_hasher *)0)->state),
               "cas_hasher too small for blake3_hasher");

const cas_digest cas_digest_empty = {{
        0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d, 0xea, 0x36, 0xdc, 0xc9, 0x49,
        0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1, 0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f, 0x32, 0x62,
}};

void cas_hasher_init(cas_hasher *h)
{
        blake3_hasher_init((blake3_hasher *)h->state);
}

void cas_hasher_update(cas_hasher *h, const void *data, size_t n)
{
        blake3_hasher_update((blake3_hasher *)h->state, data, n);
}

void cas_hasher_final(const cas_hasher *h, cas_digest *ret)
{
        blake3_hasher_finalize((const blake3_hasher *)h->state, ret->bytes, CAS_DIGEST_SIZE);
}

void cas_digest_of(const void *data, size_t n, cas_digest *ret)
{
        cas_hasher h;

        cas_hasher_init(&h);
        cas_hasher_update(&h, data, n);
        cas_hasher_final(&h, ret);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cas_digest_to_text(const cas_digest *d, char buf[static CAS_DIGEST_TEXT_MAX])
{
        const uint8_t *s = d->bytes;
        char *p = buf;

        memcpy(p, "blake3-", 7);
        p += 7;
        /* 32 bytes: ten full groups of three, then two bytes and one '='. */
        for (size_t i = 0; i < 30; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
                *p++ = b64[v >> 18];
                *p++ = b64[(v >> 12) & 63];
                *p++ = b64[(v >> 6) & 63];
                *p++ = b64[v & 63];
        }
        uint32_t v = (uint32_t)s[30] << 16 | (uint32_t)s[31] << 8;
        *p++ = b64[v >> 18];
        *p++ = b64[(v >> 12) & 63];
        *p++ = b64[(v >> 6) & 63];
        *p++ = '=';
        *p = 0;
        return buf;
}

char *cas_digest_to_hex(const cas_digest *d, char buf[static CAS_DIGEST_HEX_MAX])
{
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < CAS_DIGEST_SIZE; i++) {
                buf[2 * i] = hex[d->bytes[i] >> 4];
                buf[2 * i + 1] = hex[d->bytes[i] & 15];
        }
        buf[64] = 0;
        return buf;
}

static int unhex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int unb64(char c)
{
        const char *p = c ? strchr(b64, c) : NULL;
        return p ? (int)(p - b64) : -1;
}

int cas_digest_parse(const char *s, cas_digest *ret)
{
        cas_digest d;
        size_t n = strlen(s);

        if (n == 64) {
                for (size_t i = 0; i < 32; i++) {
                        int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        d.bytes[i] = (uint8_t)(hi << 4 | lo);
                }
                *ret = d;
                return 0;
        }
        if (n != 7 + 44 || strncmp(s, "blake3-", 7) != 0 || s[50] != '=')
                return -EINVAL;
        s += 7;
        uint32_t acc = 0;
        size_t o = 0;
        for (size_t i = 0; i < 43; i++) {
                int v = unb64(s[i]);
                if (v < 0)
                        return -EINVAL;
                acc = acc << 6 | (uint32_t)v;
                if (i % 4 == 3) {
                        d.bytes[o++] = (uint8_t)(acc >> 16);
                        d.bytes[o++] = (uint8_t)(acc >> 8);
                        d.bytes[o++] = (uint8_t)acc;
                        acc = 0;
                }
        }
        /* 43 characters: 10 full groups and 3 left, holding 18 bits = 2 bytes + 2 zero bits. */
        if (acc & 3)
                return -EINVAL;
        d.bytes[o++] = (uint8_t)(acc >> 10);
        d.bytes[o++] = (uint8_t)(acc >> 2);
        assert(o == 32);
        *ret = d;
        return 0;
}
