/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A minimal harness: each check counts; the program exits 1 when any failed.
 * Output is one line per failed check, plus a summary. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned tests_checked, tests_failed;

#define CHECK(expr)                                                                                \
        do {                                                                                       \
                tests_checked++;                                                                   \
                if (!(expr)) {                                                                     \
                        tests_failed++;                                                            \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);   \
                }                                                                                  \
        } while (0)

#define CHECK_RC(expr, want)                                                                       \
        do {                                                                                       \
                long long _got = (long long)(expr), _want = (long long)(want);                     \
                tests_checked++;                                                                   \
                if (_got != _want) {                                                               \
                        tests_failed++;                                                            \
                        fprintf(stderr, "%s:%d: %s = %lld (%s), expected %lld (%s)\n", __FILE__,   \
                                __LINE__, #expr, _got, _got < 0 ? strerror((int)-_got) : "",       \
                                _want, _want < 0 ? strerror((int)-_want) : "");                    \
                }                                                                                  \
        } while (0)

#define CHECK_STR(a, b)                                                                            \
        do {                                                                                       \
                const char *_a = (a), *_b = (b);                                                   \
                tests_checked++;                                                                   \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                           \
                        tests_failed++;                                                            \
                        fprintf(stderr, "%s:%d: %s = \"%s\", expected \"%s\"\n", __FILE__,         \
                                __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)");             \
                }                                                                                  \
        } while (0)

/* Aborts the program: for set-up steps without which nothing else makes sense. */
#define ASSERT(expr)                                                                               \
        do {                                                                                       \
                if (!(expr)) {                                                                     \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,       \
                                #expr);                                                            \
                        exit(1);                                                                   \
                }                                                                                  \
        } while (0)

#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))
#define MIN_(a, b) ((a) < (b) ? (a) : (b))

static inline int tests_finish(const char *name)
{
        fprintf(stderr, "%s: %u checks, %u failed\n", name, tests_checked, tests_failed);
        if (tests_checked == 0)
                return 1;
        return tests_failed ? 1 : 0;
}

static inline void hex_to_bytes(const char *hex, uint8_t *out, size_t *ret_len)
{
        size_t n = strlen(hex) / 2;
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                sscanf(hex + 2 * i, "%2x", &v);
                out[i] = (uint8_t)v;
        }
        *ret_len = n;
}
