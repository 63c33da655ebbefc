/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers without state, built into the core library and, a copy of them,
 * into the libcurl transport module (objstore-module.h). */
#include <stdarg.h>
#include <stdbool.h>

#include "objstore-internal.h"

int objstore_asprintf(char **ret, const char *fmt, ...)
{
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (k < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return k;
}

bool objstore_key_valid(const char *key, bool allow_empty)
{
        size_t n = strlen(key);

        if (n == 0)
                return allow_empty;
        if (n > OBJSTORE_KEY_MAX)
                return false;
        for (const char *p = key; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return false;
        /* every component non-empty and neither "." nor ".."; a prefix may
         * end in '/' (everything below a folder) */
        for (const char *c = key; *c;) {
                size_t l = strcspn(c, "/");
                if (l == 0)
                        return false;
                if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c += l;
                if (*c == '/') {
                        c++;
                        if (!*c)
                                return allow_empty;
                }
        }
        return true;
}

int objstore_grow(char **buf, size_t *cap, size_t need)
{
        if (need <= *cap)
                return 0;
        size_t c = MAX(*cap * 2, need + 64);
        char *n = realloc(*buf, c);
        if (!n)
                return -ENOMEM;
        *buf = n;
        *cap = c;
        return 0;
}

int s3_uri_encode(const char *s, bool keep_slash, char **buf, size_t *len, size_t *cap)
{
        int r = objstore_grow(buf, cap, *len + 3 * strlen(s) + 1);
        if (r < 0)
                return r;
        char *o = *buf + *len;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                unsigned char c = *p;
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && keep_slash)) {
                        *o++ = (char)c;
                } else {
                        *o++ = '%';
                        *o++ = "0123456789ABCDEF"[c >> 4];
                        *o++ = "0123456789ABCDEF"[c & 15];
                }
        }
        *o = 0;
        *len = (size_t)(o - *buf);
        return 0;
}
