/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* file:///PATH: keys are relative paths under PATH. Objects appear whole or
 * not at all: a put writes an unnamed file (O_TMPFILE) in the key's folder,
 * syncs it and links it in under its name, so that a writer killed midway
 * leaves nothing behind among the objects; where a key exists already (a
 * root replaced) or the file system has no unnamed files, it writes a named
 * temporary file beside the key and renames it into place. Concurrent puts of
 * one key leave one of the complete versions. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "objstore-internal.h"

/* Temporary files start with this; listings skip them. */
#define TMP_PREFIX ".casfs-tmp-"
/* How deep a listing descends. */
#define LIST_DEPTH_MAX 64

static char *path_of(const cas_objstore *os, const char *key)
{
        char *p;

        if (objstore_asprintf(&p, "%s/%s", os->root, key) < 0)
                return NULL;
        return p;
}

static int file_error(const cas_objstore *os, int r, const char *op, const char *key)
{
        if (r == -ENOTDIR)
                r = -ENOENT;
        if (r == -ENOENT)
                return objstore_error(os, r, op, key, "no such object");
        if (r == -EACCES || r == -EPERM)
                return objstore_error(os, -EACCES, op, key, "permission denied");
        return objstore_error(os, r, op, key, "%s", strerror(-r));
}

static int file_check(cas_objstore *os)
{
        struct stat st;

        if (stat(os->root, &st) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return objstore_error(os, -ENOENT, "check", NULL, "no such folder");
                return file_error(os, -errno, "check", NULL);
        }
        if (!S_ISDIR(st.st_mode))
                return objstore_error(os, -ENOTDIR, "check", NULL, "not a folder");
        if (access(os->root, R_OK | X_OK) < 0)
                return file_error(os, -errno, "check", NULL);
        return 0;
}

/* Creates the folders of path from its component at `from` on (the parts
 * before it must exist). */
static int mkdir_parents(char *path, size_t from)
{
        for (char *s = path + from; (s = strchr(s, '/')); s++) {
                *s = 0;
                int k = mkdir(path, 0755);
                int e = errno;
                *s = '/';
                if (k < 0 && e != EEXIST)
                        return -e;
        }
        return 0;
}

static int file_create(cas_objstore *os)
{
        _cleanup_free_ char *p = NULL;
        int r;

        if (objstore_asprintf(&p, "%s/", os->root) < 0)
                return -ENOMEM;
        r = mkdir_parents(p, 1);
        if (r < 0)
                return file_error(os, r, "create", NULL);
        return 0;
}

static int read_fd(const cas_objstore *os, int fd, const char *key, size_t max_size,
                   void **ret_buf, size_t *ret_len)
{
        _cleanup_free_ void *buf = NULL;
        struct stat st;
        ssize_t k;
        char extra;

        if (fstat(fd, &st) < 0)
                return file_error(os, -errno, "GET", key);
        if (!S_ISREG(st.st_mode))
                return objstore_error(os, -ENOENT, "GET", key, "not a regular file");
        if ((uint64_t)st.st_size > max_size)
                return objstore_error(os, -EFBIG, "GET", key,
                                      "object of %" PRIu64 " bytes, more than %zu",
                                      (uint64_t)st.st_size, max_size);
        buf = malloc((size_t)st.st_size ?: 1);
        if (!buf)
                return -ENOMEM;
        k = cas_loop_pread(fd, buf, (size_t)st.st_size, 0);
        if (k < 0)
                return file_error(os, (int)k, "GET", key);
        if ((size_t)k != (size_t)st.st_size)
                return objstore_error(os, -EIO, "GET", key, "object shrank while read");
        /* grown meanwhile: a file must not be returned beyond max_size */
        if (pread(fd, &extra, 1, st.st_size) > 0)
                return objstore_error(os, -EIO, "GET", key, "object grew while read");
        *ret_buf = TAKE_PTR(buf);
        *ret_len = (size_t)k;
        return 0;
}

static int open_key(const cas_objstore *os, const char *key, const char *op)
{
        _cleanup_free_ char *p = path_of(os, key);
        int fd;

        if (!p)
                return -ENOMEM;
        fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return file_error(os, -errno, op, key);
        return fd;
}

static int file_get(cas_objstore *os, const char *key, size_t max_size, void **ret_buf,
                    size_t *ret_len)
{
        _cleanup_close_ int fd = open_key(os, key, "GET");

        if (fd < 0)
                return fd;
        return read_fd(os, fd, key, max_size, ret_buf, ret_len);
}

static int file_get_range(cas_objstore *os, const char *key, uint64_t off, size_t n, void *buf,
                          size_t *ret_len)
{
        _cleanup_close_ int fd = open_key(os, key, "GET");
        struct stat st;
        ssize_t k;

        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return file_error(os, -errno, "GET", key);
        if (!S_ISREG(st.st_mode))
                return objstore_error(os, -ENOENT, "GET", key, "not a regular file");
        if (off >= (uint64_t)st.st_size) {
                *ret_len = 0;
                return 0;
        }
        k = cas_loop_pread(fd, buf, n, (off_t)off);
        if (k < 0)
                return file_error(os, (int)k, "GET", key);
        *ret_len = (size_t)k;
        return 0;
}

/* The ETag of a local file: a put replaces the file (new inode), and an
 * edit in place changes its size or mtime. */
static int file_etag(const struct stat *st, char **ret)
{
        if (objstore_asprintf(ret, "%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%09ld",
                              (uint64_t)st->st_ino, (uint64_t)st->st_size,
                              (uint64_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec) < 0)
                return -ENOMEM;
        return 0;
}

static int file_get_if_changed(cas_objstore *os, const char *key, const char *etag,
                               size_t max_size, void **ret_buf, size_t *ret_len, char **ret_etag)
{
        _cleanup_close_ int fd = open_key(os, key, "GET");
        _cleanup_free_ char *now = NULL;
        struct stat st;
        int r;

        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return file_error(os, -errno, "GET", key);
        r = file_etag(&st, &now);
        if (r < 0)
                return r;
        if (etag && strcmp(etag, now) == 0) {
                *ret_buf = NULL;
                *ret_len = 0;
                return 0;
        }
        r = read_fd(os, fd, key, max_size, ret_buf, ret_len);
        if (r < 0)
                return r;
        *ret_etag = TAKE_PTR(now);
        return 1;
}

static int file_head(cas_objstore *os, const char *key, uint64_t *ret_size)
{
        _cleanup_free_ char *p = path_of(os, key);
        struct stat st;

        if (!p)
                return -ENOMEM;
        if (stat(p, &st) < 0)
                return file_error(os, -errno, "HEAD", key);
        if (!S_ISREG(st.st_mode))
                return objstore_error(os, -ENOENT, "HEAD", key, "not a regular file");
        *ret_size = (uint64_t)st.st_size;
        return 0;
}

static int fsync_parent(char *path)
{
        char *slash = strrchr(path, '/');
        int fd;

        *slash = 0;
        fd = open(path[0] ? path : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
        if (fd < 0)
                return -errno;
        int k = fsync(fd);
        safe_close(fd);
        return k < 0 ? -errno : 0;
}

/* Writes buf to a new file: unnamed in dir when the file system allows it
 * (*ret_named false), else named tmp (*ret_named true). */
static int write_new_file(const char *dir, const char *tmp, const void *buf, size_t len, bool *ret_named)
{
        _cleanup_close_ int fd = -1;
        bool named = false;
        int r;

        fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
                named = true;
                fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        }
        if (fd < 0)
                return -errno;
        r = cas_loop_write(fd, buf, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                if (named)
                        (void)unlink(tmp);
                return r;
        }
        *ret_named = named;
        return TAKE_FD(fd);
}

static int file_put(cas_objstore *os, const char *key, const void *buf, size_t len)
{
        _cleanup_free_ char *p = path_of(os, key), *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -1;
        char proc[64];
        uint64_t rnd;
        struct stat st;
        bool named = false;
        int r;

        if (!p)
                return -ENOMEM;
        if (stat(os->root, &st) < 0)
                return objstore_error(os, errno == ENOENT ? -ENOENT : -errno, "PUT", key,
                                      "no such folder");
        r = mkdir_parents(p, strlen(os->root) + 1);
        if (r < 0)
                return file_error(os, r, "PUT", key);
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return file_error(os, negative_errno(), "PUT", key);
        const char *base = strrchr(p, '/') + 1;
        if (objstore_asprintf(&tmp, "%.*s" TMP_PREFIX "%016" PRIx64, (int)(base - p), p, rnd) < 0 ||
            objstore_asprintf(&dir, "%.*s", (int)(base - p), p) < 0)
                return -ENOMEM;
        fd = write_new_file(dir, tmp, buf, len, &named);
        if (fd < 0)
                return file_error(os, fd, "PUT", key);
        if (!named) {
                /* linkat through /proc needs no privilege (AT_EMPTY_PATH does) */
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
                if (linkat(AT_FDCWD, proc, AT_FDCWD, p, AT_SYMLINK_FOLLOW) == 0)
                        goto linked;
                if (errno != EEXIST)
                        return file_error(os, -errno, "PUT", key);
                /* replacing a key: a name for the rename (a kill can leave
                 * it only between these two calls) */
                if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0)
                        return file_error(os, -errno, "PUT", key);
        }
        if (rename(tmp, p) < 0) {
                r = -errno;
                (void)unlink(tmp);
                return file_error(os, r, "PUT", key);
        }
linked:
        r = fsync_parent(p);
        if (r < 0)
                return file_error(os, r, "PUT", key);
        return 0;
}

static int file_delete(cas_objstore *os, const char *key)
{
        _cleanup_free_ char *p = path_of(os, key);

        if (!p)
                return -ENOMEM;
        if (unlink(p) < 0 && errno != ENOENT && errno != ENOTDIR)
                return file_error(os, -errno, "DELETE", key);
        return 0;
}

typedef struct list_state {
        const cas_objstore *os;
        const char *prefix;
        size_t prefix_len;
        cas_objstore_list_cb cb;
        void *userdata;
        char rel[OBJSTORE_KEY_MAX + 2]; /* the folder being listed, relative, with '/' */
} list_state;

/* Lists the folder st->rel (length len, "" or ending in '/'), opened as fd
 * (taken). */
static int list_dir(list_state *st, int fd, size_t len, unsigned depth)
{
        DIR *d = fdopendir(fd);
        struct dirent *de;
        int r = 0;

        if (!d) {
                safe_close(fd);
                return -errno;
        }
        while (r == 0) {
                struct stat s;
                size_t n;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno)
                                r = -errno;
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                    strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
                        continue;
                n = strlen(de->d_name);
                if (len + n + 1 > OBJSTORE_KEY_MAX)
                        continue;
                memcpy(st->rel + len, de->d_name, n + 1);
                if (fstatat(dirfd(d), de->d_name, &s, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT) /* deleted meanwhile */
                                continue;
                        r = -errno;
                        break;
                }
                if (S_ISREG(s.st_mode)) {
                        if (strncmp(st->rel, st->prefix, st->prefix_len) == 0)
                                r = st->cb(st->rel, (uint64_t)s.st_size, st->userdata);
                } else if (S_ISDIR(s.st_mode) && depth < LIST_DEPTH_MAX) {
                        st->rel[len + n] = '/';
                        st->rel[len + n + 1] = 0;
                        /* only folders that can hold keys with the prefix */
                        size_t m = MIN(len + n + 1, st->prefix_len);
                        if (strncmp(st->rel, st->prefix, m) != 0)
                                continue;
                        int sub = openat(dirfd(d), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (sub < 0) {
                                if (errno == ENOENT)
                                        continue;
                                r = -errno;
                                break;
                        }
                        r = list_dir(st, sub, len + n + 1, depth + 1);
                }
        }
        closedir(d);
        return r;
}

static int file_list(cas_objstore *os, const char *prefix, cas_objstore_list_cb cb,
                     void *userdata)
{
        list_state st = {
                .os = os,
                .prefix = prefix,
                .prefix_len = strlen(prefix),
                .cb = cb,
                .userdata = userdata,
        };
        _cleanup_free_ char *p = NULL;
        const char *slash = strrchr(prefix, '/');
        size_t len = slash ? (size_t)(slash - prefix) + 1 : 0;
        int fd, r;

        /* start at the deepest folder the prefix names whole */
        memcpy(st.rel, prefix, len);
        st.rel[len] = 0;
        if (objstore_asprintf(&p, "%s/%s", os->root, st.rel) < 0)
                return -ENOMEM;
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR) {
                        if (len > 0)
                                return 0; /* nothing under the prefix */
                        return objstore_error(os, -ENOENT, "LIST", prefix, "no such folder");
                }
                return file_error(os, -errno, "LIST", prefix);
        }
        r = list_dir(&st, fd, len, 0);
        if (r < 0)
                return file_error(os, r, "LIST", prefix);
        return r;
}

static void file_free(cas_objstore *os)
{
}

static const objstore_ops file_ops = {
        .check = file_check,
        .create = file_create,
        .get = file_get,
        .get_range = file_get_range,
        .get_if_changed = file_get_if_changed,
        .head = file_head,
        .put = file_put,
        .delete = file_delete,
        .list = file_list,
        .free = file_free,
};

int objstore_file_open(cas_objstore *os, const char *path)
{
        size_t n;

        if (path[0] != '/' || strlen(path) > 4096 || strpbrk(path, "?#"))
                return -EINVAL;
        os->root = strdup(path);
        if (!os->root)
                return -ENOMEM;
        n = strlen(os->root);
        while (n > 1 && os->root[n - 1] == '/')
                os->root[--n] = 0;
        if (n == 1) /* objects straight under / : surely a mistake */
                return -EINVAL;
        /* "." and ".." would make the printable address lie */
        if (strstr(os->root, "/./") || strstr(os->root, "/../") ||
            (n >= 2 && strcmp(os->root + n - 2, "/.") == 0) ||
            (n >= 3 && strcmp(os->root + n - 3, "/..") == 0))
                return -EINVAL;
        if (objstore_asprintf(&os->address, "file://%s", os->root) < 0) {
                os->address = NULL;
                return -ENOMEM;
        }
        os->ops = &file_ops;
        return 0;
}
