/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>

#include "macro.h"

/* Reads until n bytes or the end: at off (pread) when off >= 0, else at the
 * file's position. */
static ssize_t loop_read(int fd, void *buf, size_t n, off_t off)
{
        size_t done = 0;

        while (done < n) {
                ssize_t k = off >= 0 ? pread(fd, (char *)buf + done, n - done, off + (off_t)done)
                                     : read(fd, (char *)buf + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t)k;
        }
        return (ssize_t)done;
}

ssize_t cas_loop_read(int fd, void *buf, size_t n)
{
        return loop_read(fd, buf, n, -1);
}

ssize_t cas_loop_pread(int fd, void *buf, size_t n, off_t off)
{
        return off < 0 ? -EINVAL : loop_read(fd, buf, n, off);
}

int cas_grow(void **array, size_t *alloc, size_t n, size_t size, size_t first)
{
        size_t na = *alloc ? *alloc * 2 : first;
        void *p;

        if (n < *alloc)
                return 0;
        if (na < *alloc || na > SIZE_MAX / size)
                return -ENOMEM;
        p = realloc(*array, na * size);
        if (!p)
                return -ENOMEM;
        *array = p;
        *alloc = na;
        return 0;
}

int cas_loop_write(int fd, const void *buf, size_t n)
{
        size_t done = 0;

        while (done < n) {
                ssize_t k = write(fd, (const char *)buf + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                done += (size_t)k;
        }
        return 0;
}

bool cas_keep_first_error(char **error, const char *fmt, va_list ap)
{
        char *line;

        if (*error)
                return false;
        if (vasprintf(&line, fmt, ap) < 0)
                line = strdup("out of memory");
        *error = line;
        return true;
}

int cas_xdg_path(const char *var, const char *home_default, const char *below, char **ret)
{
        const char *e = getenv(var);
        char *p;
        int r;

        if (e && *e == '/')
                r = asprintf(&p, "%s/%s", e, below);
        else {
                const char *home = getenv("HOME");
                if (!home || *home != '/')
                        return -ENXIO;
                r = asprintf(&p, "%s/%s/%s", home, home_default, below);
        }
        if (r < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}
