/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* BLAKE3 digests: the names of every object in the store. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CAS_DIGEST_SIZE 32
/* "blake3-" + 44 characters of padded base64 */
#define CAS_DIGEST_TEXT_MAX (7 + 44 + 1)
#define CAS_DIGEST_HEX_MAX (64 + 1)

typedef struct cas_digest {
        uint8_t bytes[CAS_DIGEST_SIZE];
} cas_digest;

/* A streaming hasher; opaque storage large enough for blake3_hasher. */
typedef struct cas_hasher {
        _Alignas(16) uint8_t state[1920];
} cas_hasher;

void cas_hasher_init(cas_hasher *h);
void cas_hasher_update(cas_hasher *h, const void *data, size_t n);
void cas_hasher_final(const cas_hasher *h, cas_digest *ret);

void cas_digest_of(const void *data, size_t n, cas_digest *ret);

/* The empty blob's digest, which is also the empty directory's. */
extern const cas_digest cas_digest_empty;

static inline bool cas_digest_eq(const cas_digest *a, const cas_digest *b)
{
        return memcmp(a->bytes, b->bytes, CAS_DIGEST_SIZE) == 0;
}
static inline int cas_digest_cmp(const cas_digest *a, const cas_digest *b)
{
        return memcmp(a->bytes, b->bytes, CAS_DIGEST_SIZE);
}

/* Text forms: "blake3-<base64 with padding>" and 64 lowercase hex digits.
 * Both write a NUL-terminated string and return buf. */
char *cas_digest_to_text(const cas_digest *d, char buf[static CAS_DIGEST_TEXT_MAX]);
char *cas_digest_to_hex(const cas_digest *d, char buf[static CAS_DIGEST_HEX_MAX]);

/* Parses either text form (hex also in upper case). -EINVAL when it is neither. */
int cas_digest_parse(const char *s, cas_digest *ret);
