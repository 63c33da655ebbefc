/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by every module: cleanup attributes that carry
 * ownership, and the few macros the code leans on. */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _cleanup_(f) __attribute__((cleanup(f)))

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hands a pointer out of a cleanup scope. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p_ = (p);                                                           \
                (p) = NULL;                                                                        \
                _p_;                                                                               \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd_ = (fd);                                                                   \
                (fd) = -1;                                                                         \
                _fd_;                                                                              \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Declares a cleanup helper `name##p` for a type's destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
        static inline void func##p(type *p)                                                        \
        {                                                                                          \
                if (*p)                                                                            \
                        func(*p);                                                                  \
        }

/* errno as a negative value, never 0 (for callers that just saw a failure). */
static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

/* Full read/write loops: return bytes done (short only at EOF) or -errno. */
ssize_t cas_loop_read(int fd, void *buf, size_t n);
ssize_t cas_loop_pread(int fd, void *buf, size_t n, off_t off);
int cas_loop_write(int fd, const void *buf, size_t n);

/* Makes room for one more item in *array, which holds n of its *alloc items
 * of size bytes: when it is full, doubles it (to first items the first
 * time). -ENOMEM, the array left as it was, when it cannot. */
int cas_grow(void **array, size_t *alloc, size_t n, size_t size, size_t first);
#define CAS_GROW(array, alloc, n, first) cas_grow((void **)&(array), &(alloc), (n), sizeof(*(array)), (first))

/* A path under an XDG base folder: "$VAR/below" when $VAR is an absolute
 * path, else "$HOME/home_default/below" (-ENXIO without an absolute $HOME). */
int cas_xdg_path(const char *var, const char *home_default, const char *below, char **ret);

/* The first failure of threads working together is the one told: formats a
 * line into *error unless it holds one already ("out of memory" when the
 * line cannot be made). The caller holds the lock that guards *error.
 * true when this line was the first. */
bool cas_keep_first_error(char **error, const char *fmt, va_list ap) _printf_(2, 0);
