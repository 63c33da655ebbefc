/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "blobstore-backend.h"
#include "digestmap.h"
#include "macro.h"
#include "outboard.h"

/* Opens a stored file for reading (at: a folder, or AT_FDCWD for a path).
 * With O_NOATIME: otherwise (relatime) the first read of each blob in a day
 * writes its inode, and the journal, to serve a read-only mount. The flag
 * needs the file's owner or CAP_FOWNER: refused once (EPERM), it is not
 * asked for again. */
static atomic_bool noatime_refused;

static int open_read(int at, const char *path, int flags)
{
        flags |= O_RDONLY | O_CLOEXEC;
        if (!atomic_load_explicit(&noatime_refused, memory_order_relaxed)) {
                int fd = openat(at, path, flags | O_NOATIME);
                if (fd >= 0 || errno != EPERM)
                        return fd;
                atomic_store_explicit(&noatime_refused, true, memory_order_relaxed);
        }
        return openat(at, path, flags);
}

/* Blobs up to this size are collected in memory before anything is written:
 * their digest is known before the first write, so content already in the
 * store costs no write at all. Larger blobs stream to an anonymous file. */
#define INLINE_MAX (256u * 1024)

struct cas_blob_writer {
        cas_blobstore *bs;
        cas_tree_hasher hasher; /* the digest and, for a large blob, its outboard */
        uint64_t size;
        int fd; /* the spill file, once the blob outgrew INLINE_MAX */
        uint8_t *buf;
        size_t buf_len;
};

/* ---- the interface ---- */

cas_blobstore *cas_blobstore_free(cas_blobstore *bs)
{
        if (bs)
                bs->ops->free(bs);
        return NULL;
}

int cas_blobstore_stat(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size)
{
        return bs->ops->stat(bs, d, ret_size);
}

int cas_blobstore_has(cas_blobstore *bs, const cas_digest *d)
{
        int r;

        if (bs->ops->has)
                return bs->ops->has(bs, d);
        r = bs->ops->stat(bs, d, NULL);
        return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

bool cas_blobstore_can_prefetch(const cas_blobstore *bs)
{
        return bs->ops->prefetch;
}

int cas_blobstore_prefetch(cas_blobstore *bs, const cas_chunk_ref *refs, size_t n)
{
        if (!bs->ops->prefetch)
                return -EOPNOTSUPP;
        return bs->ops->prefetch(bs, refs, n);
}

int cas_blobstore_cached(cas_blobstore *bs, const cas_digest *d)
{
        return bs->ops->cached ? bs->ops->cached(bs, d) : 1;
}

int cas_blobstore_parts(cas_blobstore *bs, const cas_digest *d, uint64_t size, cas_chunk_ref **ret,
                        size_t *ret_n)
{
        *ret = NULL;
        *ret_n = 0;
        return bs->ops->parts ? bs->ops->parts(bs, d, size, ret, ret_n) : 0;
}

int cas_blobstore_open(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret)
{
        return bs->ops->open(bs, d, ret);
}

int cas_blobstore_open_sized(cas_blobstore *bs, const cas_digest *d, uint64_t size,
                             cas_blob_reader **ret)
{
        cas_blob_reader *rd;
        int r;

        if (bs->ops->open_sized)
                return bs->ops->open_sized(bs, d, size, ret);
        r = bs->ops->open(bs, d, &rd);
        if (r < 0)
                return r;
        if (rd->size != size) {
                cas_blob_reader_free(rd);
                return -EBADMSG;
        }
        *ret = rd;
        return 0;
}

int cas_blob_reader_new_fd(int fd, uint64_t size, cas_blob_reader **ret)
{
        cas_blob_reader *rd = calloc(1, sizeof(*rd));

        if (!rd)
                return -ENOMEM;
        rd->fd = fd;
        rd->direct_fd = -2;
        rd->size = size;
        *ret = rd;
        return 0;
}

uint64_t cas_blob_reader_size(const cas_blob_reader *rd)
{
        return rd->size;
}

int cas_blob_reader_fd(const cas_blob_reader *rd)
{
        return rd->mem ? -1 : rd->fd;
}

bool cas_blob_reader_checked(const cas_blob_reader *rd)
{
        return rd->pread != NULL;
}

ssize_t cas_blob_reader_pread(cas_blob_reader *rd, void *buf, size_t n, uint64_t off)
{
        if (off >= rd->size)
                return 0;
        n = (size_t)MIN((uint64_t)n, rd->size - off);
        if (rd->pread)
                return rd->pread(rd, buf, n, off);
        if (rd->mem) {
                memcpy(buf, rd->mem + off, n);
                return (ssize_t)n;
        }
        ssize_t k = cas_loop_pread(rd->fd, buf, n, (off_t)off);
        if (k >= 0 && (size_t)k < n)
                return -EIO; /* the file is shorter than the blob: truncated on disk */
        return k;
}

int cas_blob_reader_direct_fd(cas_blob_reader *rd)
{
        int fd = atomic_load(&rd->direct_fd);
        if (rd->pread)
                return -1;
        if (fd != -2 || rd->mem)
                return rd->mem ? -1 : fd;
        /* reopened through /proc: the same file, whatever its name now */
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", rd->fd);
        fd = open_read(AT_FDCWD, path, O_DIRECT);
        int none = -2;
        if (!atomic_compare_exchange_strong(&rd->direct_fd, &none, fd < 0 ? -1 : fd)) {
                if (fd >= 0)
                        close(fd);
                return none;
        }
        return fd < 0 ? -1 : fd;
}

cas_blob_reader *cas_blob_reader_free(cas_blob_reader *rd)
{
        if (rd) {
                if (rd->release)
                        rd->release(rd);
                if (!rd->mem) {
                        safe_close(rd->fd);
                        if (rd->direct_fd >= 0)
                                safe_close(rd->direct_fd);
                }
                free(rd);
        }
        return NULL;
}

int cas_blobstore_writer_new(cas_blobstore *bs, cas_blob_writer **ret)
{
        cas_blob_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->buf = malloc(INLINE_MAX);
        if (!w->buf) {
                free(w);
                return -ENOMEM;
        }
        w->bs = bs;
        w->fd = -1;
        cas_tree_hasher_init(&w->hasher);
        *ret = w;
        return 0;
}

cas_blob_writer *cas_blob_writer_abort(cas_blob_writer *w)
{
        if (w) {
                safe_close(w->fd); /* an O_TMPFILE file vanishes with its last descriptor */
                cas_tree_hasher_done(&w->hasher);
                free(w->buf);
                free(w);
        }
        return NULL;
}

static int open_spill(cas_blobstore *bs)
{
        int fd;

        if (bs->dir_fd < 0) {
                /* memory store: spill to an anonymous memory file */
                fd = memfd_create("casfs-blob", MFD_CLOEXEC);
                return fd < 0 ? -errno : fd;
        }
        fd = openat(bs->dir_fd, "tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0444);
        return fd < 0 ? -errno : fd;
}

int cas_blob_writer_write(cas_blob_writer *w, const void *data, size_t n)
{
        int r;

        r = cas_tree_hasher_update(&w->hasher, data, n);
        if (r < 0)
                return r;
        w->size += n;
        if (w->fd < 0 && w->buf_len + n <= INLINE_MAX) {
                memcpy(w->buf + w->buf_len, data, n);
                w->buf_len += n;
                return 0;
        }
        if (w->fd < 0) {
                r = open_spill(w->bs);
                if (r < 0)
                        return r;
                w->fd = r;
                r = cas_loop_write(w->fd, w->buf, w->buf_len);
                if (r < 0)
                        return r;
                w->buf_len = 0;
        }
        return cas_loop_write(w->fd, data, n);
}

int cas_blob_writer_commit(cas_blob_writer *w, cas_digest *ret_digest, uint64_t *ret_size,
                           int *ret_existed)
{
        _cleanup_free_ uint8_t *outboard = NULL;
        cas_digest d;
        int existed = 0, r;

        r = cas_tree_hasher_final(&w->hasher, &d, &outboard);
        if (r < 0) {
                cas_blob_writer_abort(w);
                return r;
        }
        if (w->fd < 0)
                r = w->bs->ops->put_buffer(w->bs, &d, w->buf, w->buf_len, &existed);
        else
                r = w->bs->ops->put_file(w->bs, &d, w->fd, w->size, &existed);
        /* after the blob: an outboard never stands without its blob (gc removes it first) */
        if (r >= 0 && outboard)
                r = w->bs->ops->put_outboard(w->bs, &d, outboard, (size_t)cas_outboard_size(w->size));
        if (r >= 0) {
                if (ret_digest)
                        *ret_digest = d;
                if (ret_size)
                        *ret_size = w->size;
                if (ret_existed)
                        *ret_existed = existed;
        }
        cas_blob_writer_abort(w);
        return r;
}

int cas_blobstore_put(cas_blobstore *bs, const void *buf, size_t n, cas_digest *ret)
{
        cas_blob_writer *w;
        int r;

        r = cas_blobstore_writer_new(bs, &w);
        if (r < 0)
                return r;
        r = cas_blob_writer_write(w, buf, n);
        if (r < 0) {
                cas_blob_writer_abort(w);
                return r;
        }
        return cas_blob_writer_commit(w, ret, NULL, NULL);
}

int cas_blobstore_sync(cas_blobstore *bs)
{
        return bs->ops->sync(bs);
}

int cas_blobstore_foreach(cas_blobstore *bs, cas_blob_cb cb, void *userdata)
{
        return bs->ops->foreach(bs, cb, userdata);
}

int cas_blobstore_remove(cas_blobstore *bs, const cas_digest *d)
{
        return bs->ops->remove(bs, d);
}

int cas_blobstore_get_outboard(cas_blobstore *bs, const cas_digest *d, uint64_t size, uint8_t **ret)
{
        uint64_t n = cas_outboard_size(size);
        uint8_t *ob;
        int r;

        if (n == 0 || n > SIZE_MAX)
                return -ENOENT;
        ob = malloc((size_t)n);
        if (!ob)
                return -ENOMEM;
        r = bs->ops->get_outboard(bs, d, ob, (size_t)n);
        if (r < 0) {
                free(ob);
                return r;
        }
        *ret = ob;
        return 0;
}

int cas_blobstore_has_outboard(cas_blobstore *bs, const cas_digest *d, uint64_t size)
{
        uint64_t n = cas_outboard_size(size);

        if (n == 0 || n > SIZE_MAX)
                return 0;
        return bs->ops->has_outboard(bs, d, (size_t)n);
}

int cas_blobstore_put_outboard(cas_blobstore *bs, const cas_digest *d, uint64_t size, const uint8_t *ob)
{
        uint64_t n = cas_outboard_size(size);
        if (n == 0)
                return -EINVAL;
        return bs->ops->put_outboard(bs, d, ob, (size_t)n);
}

/* ---- local files: blobs/ab/cd/<hex> ---- */

#define LOCAL_PATH_MAX (7 + 64 + 9 + 1)
#define OUTBOARD_SUFFIX ".outboard"

static void local_path(const cas_digest *d, char path[static LOCAL_PATH_MAX])
{
        char hex[CAS_DIGEST_HEX_MAX];
        cas_digest_to_hex(d, hex);
        snprintf(path, LOCAL_PATH_MAX, "%.2s/%.2s/%s", hex, hex + 2, hex);
}

/* The outboard of a blob lives beside it: ab/cd/<hex>.outboard */
static void local_outboard_path(const cas_digest *d, char path[static LOCAL_PATH_MAX])
{
        local_path(d, path);
        strcat(path, OUTBOARD_SUFFIX);
}

int cas_blobstore_path(cas_blobstore *bs, const cas_digest *d, char **ret)
{
        char rel[LOCAL_PATH_MAX], proc[64], dir[4096];
        ssize_t n;

        if (bs->dir_fd < 0)
                return -EOPNOTSUPP;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", bs->dir_fd);
        n = readlink(proc, dir, sizeof(dir) - 1);
        if (n < 0)
                return -errno;
        dir[n] = 0;
        local_path(d, rel);
        if (asprintf(ret, "%s/%s", dir, rel) < 0)
                return -ENOMEM;
        return 0;
}

static int local_stat(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size)
{
        char path[LOCAL_PATH_MAX];
        struct stat st;

        local_path(d, path);
        if (fstatat(bs->dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (ret_size)
                *ret_size = (uint64_t)st.st_size;
        return 0;
}

static int local_open(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret)
{
        char path[LOCAL_PATH_MAX];
        struct stat st;
        _cleanup_close_ int fd = -1;
        cas_blob_reader *rd;

        local_path(d, path);
        fd = open_read(bs->dir_fd, path, O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        rd = calloc(1, sizeof(*rd));
        if (!rd)
                return -ENOMEM;
        rd->fd = TAKE_FD(fd);
        rd->direct_fd = -2;
        rd->size = (uint64_t)st.st_size;
        *ret = rd;
        return 0;
}

/* Creates ab/ and ab/cd/ as needed. */
static int local_make_parents(cas_blobstore *bs, const char *path)
{
        char sub[6];

        memcpy(sub, path, 2), sub[2] = 0;
        if (mkdirat(bs->dir_fd, sub, 0755) < 0 && errno != EEXIST)
                return -errno;
        memcpy(sub, path, 5), sub[5] = 0;
        if (mkdirat(bs->dir_fd, sub, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Whether a blob is already there with the right size. A file of another
 * size under the name is debris (say, a blob whose data never reached the
 * disk before a power cut) and is replaced. */
static int local_existing(cas_blobstore *bs, const char *path, uint64_t size)
{
        struct stat st;

        if (fstatat(bs->dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == size)
                return 1;
        if (unlinkat(bs->dir_fd, path, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int local_link(cas_blobstore *bs, int fd, const char *path)
{
        char proc[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        for (int attempt = 0; attempt < 2; attempt++) {
                if (linkat(AT_FDCWD, proc, bs->dir_fd, path, AT_SYMLINK_FOLLOW) >= 0)
                        return 0;
                if (errno == EEXIST)
                        return 0; /* a concurrent writer stored the same bytes */
                if (errno != ENOENT || attempt > 0)
                        return -errno;
                int r = local_make_parents(bs, path);
                if (r < 0)
                        return r;
        }
        return -EIO;
}

static int local_put_file(cas_blobstore *bs, const cas_digest *d, int fd, uint64_t size,
                          int *ret_existed)
{
        char path[LOCAL_PATH_MAX];
        int r;

        local_path(d, path);
        r = local_existing(bs, path, size);
        if (r != 0) {
                *ret_existed = r > 0;
                return r < 0 ? r : 0;
        }
        *ret_existed = 0;
        return local_link(bs, fd, path);
}

/* Writes n bytes to path (relative to blobs/) through a temporary file,
 * unless a file of that size is there already: then returns 1. */
static int local_write_file(cas_blobstore *bs, const char *path, const void *buf, size_t n)
{
        _cleanup_close_ int fd = -1;
        int r;

        r = local_existing(bs, path, n);
        if (r != 0)
                return r;
        fd = open_spill(bs);
        if (fd < 0)
                return fd;
        r = cas_loop_write(fd, buf, n);
        if (r < 0)
                return r;
        return local_link(bs, fd, path);
}

static int local_put_buffer(cas_blobstore *bs, const cas_digest *d, const void *buf, size_t n,
                            int *ret_existed)
{
        char path[LOCAL_PATH_MAX];
        int r;

        local_path(d, path);
        r = local_write_file(bs, path, buf, n);
        if (r < 0)
                return r;
        *ret_existed = r > 0;
        return 0;
}

static int local_sync(cas_blobstore *bs)
{
        return syncfs(bs->dir_fd) < 0 ? -errno : 0;
}

static int hex_name(const char *s, size_t want)
{
        if (strlen(s) != want)
                return 0;
        for (size_t i = 0; i < want; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return 0;
        return 1;
}

/* Calls cb for each blob in the folder name of dir_fd, levels being how
 * many levels of folders named by two hex digits stand above the blobs
 * there (ab/cd/DIGEST). A folder that cannot be opened is an error at the
 * top (must_open) and passed over below it. */
static int foreach_blob_in(int dir_fd, const char *name, unsigned levels, bool must_open, cas_blob_cb cb,
                           void *userdata)
{
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *e;
        int r = 0;

        if (!d) {
                r = -errno;
                safe_close(fd);
                return must_open ? r : 0;
        }
        while (r == 0 && (e = readdir(d))) {
                cas_digest dg;
                if (levels > 0) {
                        if (hex_name(e->d_name, 2))
                                r = foreach_blob_in(dirfd(d), e->d_name, levels - 1, false, cb, userdata);
                } else if (hex_name(e->d_name, 64) && cas_digest_parse(e->d_name, &dg) >= 0)
                        r = cb(&dg, CAS_BLOB_SIZE_UNKNOWN, userdata);
        }
        closedir(d);
        return r;
}

static int local_foreach(cas_blobstore *bs, cas_blob_cb cb, void *userdata)
{
        return foreach_blob_in(bs->dir_fd, ".", 2, true, cb, userdata);
}

static int local_remove(cas_blobstore *bs, const cas_digest *d)
{
        char path[LOCAL_PATH_MAX];

        /* the outboard first: none is ever left without its blob */
        local_outboard_path(d, path);
        if (unlinkat(bs->dir_fd, path, 0) < 0 && errno != ENOENT)
                return -errno;
        local_path(d, path);
        return unlinkat(bs->dir_fd, path, 0) < 0 ? -errno : 0;
}

static int local_put_outboard(cas_blobstore *bs, const cas_digest *d, const uint8_t *ob, size_t n)
{
        char path[LOCAL_PATH_MAX];
        int r;

        local_outboard_path(d, path);
        r = local_write_file(bs, path, ob, n);
        return r < 0 ? r : 0;
}

static int local_get_outboard(cas_blobstore *bs, const cas_digest *d, uint8_t *ob, size_t n)
{
        char path[LOCAL_PATH_MAX];
        _cleanup_close_ int fd = -1;
        struct stat st;

        local_outboard_path(d, path);
        fd = open_read(bs->dir_fd, path, O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != n)
                return -EBADMSG;
        ssize_t k = cas_loop_pread(fd, ob, n, 0);
        if (k < 0)
                return (int)k;
        return (size_t)k == n ? 0 : -EBADMSG;
}

static int local_has_outboard(cas_blobstore *bs, const cas_digest *d, size_t n)
{
        char path[LOCAL_PATH_MAX];
        struct stat st;

        local_outboard_path(d, path);
        if (fstatat(bs->dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        return S_ISREG(st.st_mode) && (uint64_t)st.st_size == n;
}

static void local_free(cas_blobstore *bs)
{
        safe_close(bs->dir_fd);
        free(bs);
}

static const blobstore_ops local_ops = {
        .stat = local_stat,
        .open = local_open,
        .put_buffer = local_put_buffer,
        .put_file = local_put_file,
        .sync = local_sync,
        .foreach = local_foreach,
        .remove = local_remove,
        .put_outboard = local_put_outboard,
        .get_outboard = local_get_outboard,
        .has_outboard = local_has_outboard,
        .free = local_free,
};

int cas_blobstore_open_local(const char *dir, int at_fd, cas_blobstore **ret)
{
        cas_blobstore *bs;
        int fd;

        fd = openat(at_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* tmp/ holds nothing but is where O_TMPFILE files live until linked */
        if (mkdirat(fd, "tmp", 0755) < 0 && errno != EEXIST && errno != EROFS && errno != EACCES) {
                int r = -errno;
                close(fd);
                return r;
        }
        bs = calloc(1, sizeof(*bs));
        if (!bs) {
                close(fd);
                return -ENOMEM;
        }
        bs->ops = &local_ops;
        bs->dir_fd = fd;
        *ret = bs;
        return 0;
}

int cas_blobstore_clean_temporary(cas_blobstore *bs, unsigned min_age, uint64_t *ret_count)
{
        /* Writers use O_TMPFILE, which leaves nothing behind when they die;
         * this removes anything else that ended up in tmp/. */
        uint64_t count = 0;
        int fd;
        DIR *d;

        if (bs->dir_fd < 0) {
                *ret_count = 0;
                return 0;
        }
        fd = openat(bs->dir_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        struct dirent *e;
        time_t now = time(NULL);
        while ((e = readdir(d))) {
                struct stat st;
                if (e->d_name[0] == '.')
                        continue;
                if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (now - st.st_mtime < (time_t)min_age)
                        continue;
                if (unlinkat(dirfd(d), e->d_name, 0) >= 0)
                        count++;
        }
        closedir(d);
        *ret_count = count;
        return 0;
}

/* ---- memory (tests) ---- */

typedef struct memory_blobstore {
        cas_blobstore base;
        pthread_mutex_t lock; /* protects map, blobs */
        cas_digest_map map;   /* digest -> index in blobs */
        struct {
                cas_digest d;
                uint8_t *data;
                size_t size;
                uint8_t *outboard;
                bool removed;
        } *blobs;
        size_t n_blobs;
} memory_blobstore;

static int memory_lookup(memory_blobstore *m, const cas_digest *d, size_t *ret_index)
{
        uint64_t i;
        if (!cas_digest_map_get(&m->map, d, &i) || m->blobs[i].removed)
                return -ENOENT;
        *ret_index = (size_t)i;
        return 0;
}

static int memory_stat(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        size_t i;
        int r;

        pthread_mutex_lock(&m->lock);
        r = memory_lookup(m, d, &i);
        if (r >= 0 && ret_size)
                *ret_size = m->blobs[i].size;
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int memory_open(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        cas_blob_reader *rd;
        size_t i;
        int r;

        pthread_mutex_lock(&m->lock);
        r = memory_lookup(m, d, &i);
        if (r >= 0) {
                rd = calloc(1, sizeof(*rd));
                if (!rd)
                        r = -ENOMEM;
                else {
                        /* blob bytes live as long as the store: removal only marks them */
                        static const uint8_t empty[1];
                        rd->mem = m->blobs[i].data ? m->blobs[i].data : empty;
                        rd->size = m->blobs[i].size;
                        rd->fd = -1;
                        rd->direct_fd = -1;
                        *ret = rd;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int memory_put_buffer(cas_blobstore *bs, const cas_digest *d, const void *buf, size_t n,
                             int *ret_existed)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        size_t i;
        int r = 0;

        pthread_mutex_lock(&m->lock);
        if (memory_lookup(m, d, &i) >= 0) {
                *ret_existed = 1;
                goto finish;
        }
        *ret_existed = 0;
        uint8_t *copy = malloc(n ?: 1);
        void *grown = realloc(m->blobs, (m->n_blobs + 1) * sizeof(*m->blobs));
        if (!copy || !grown) {
                free(copy);
                if (grown)
                        m->blobs = grown;
                r = -ENOMEM;
                goto finish;
        }
        m->blobs = grown;
        memcpy(copy, buf, n);
        m->blobs[m->n_blobs].d = *d;
        m->blobs[m->n_blobs].data = copy;
        m->blobs[m->n_blobs].size = n;
        m->blobs[m->n_blobs].outboard = NULL;
        m->blobs[m->n_blobs].removed = false;
        r = cas_digest_map_put(&m->map, d, m->n_blobs);
        if (r >= 0) {
                m->n_blobs++;
                r = 0;
        }
finish:
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int memory_put_file(cas_blobstore *bs, const cas_digest *d, int fd, uint64_t size,
                           int *ret_existed)
{
        _cleanup_free_ uint8_t *buf = malloc(size ?: 1);
        ssize_t k;

        if (!buf)
                return -ENOMEM;
        k = cas_loop_pread(fd, buf, size, 0);
        if (k < 0)
                return (int)k;
        if ((uint64_t)k != size)
                return -EIO;
        return memory_put_buffer(bs, d, buf, size, ret_existed);
}

static int memory_sync(cas_blobstore *bs)
{
        return 0;
}

static int memory_foreach(cas_blobstore *bs, cas_blob_cb cb, void *userdata)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        int r = 0;

        /* no lock held across callbacks: callbacks may remove */
        for (size_t i = 0; r == 0; i++) {
                pthread_mutex_lock(&m->lock);
                bool end = i >= m->n_blobs;
                cas_digest d = end ? cas_digest_empty : m->blobs[i].d;
                uint64_t size = end ? 0 : m->blobs[i].size;
                bool removed = end ? true : m->blobs[i].removed;
                pthread_mutex_unlock(&m->lock);
                if (end)
                        break;
                if (!removed)
                        r = cb(&d, size, userdata);
        }
        return r;
}

static int memory_remove(cas_blobstore *bs, const cas_digest *d)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        size_t i;
        int r;

        pthread_mutex_lock(&m->lock);
        r = memory_lookup(m, d, &i);
        if (r >= 0)
                m->blobs[i].removed = true;
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int memory_put_outboard(cas_blobstore *bs, const cas_digest *d, const uint8_t *ob, size_t n)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        size_t i;
        int r;

        pthread_mutex_lock(&m->lock);
        r = memory_lookup(m, d, &i);
        if (r >= 0 && !m->blobs[i].outboard) {
                m->blobs[i].outboard = malloc(n);
                if (m->blobs[i].outboard)
                        memcpy(m->blobs[i].outboard, ob, n);
                else
                        r = -ENOMEM;
        }
        pthread_mutex_unlock(&m->lock);
        return r < 0 ? r : 0;
}

static int memory_get_outboard(cas_blobstore *bs, const cas_digest *d, uint8_t *ob, size_t n)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        size_t i;
        int r;

        pthread_mutex_lock(&m->lock);
        r = memory_lookup(m, d, &i);
        if (r >= 0 && !m->blobs[i].outboard)
                r = -ENOENT;
        else if (r >= 0 && cas_outboard_size(m->blobs[i].size) != n)
                r = -EBADMSG;
        else if (r >= 0)
                memcpy(ob, m->blobs[i].outboard, n);
        pthread_mutex_unlock(&m->lock);
        return r < 0 ? r : 0;
}

static int memory_has_outboard(cas_blobstore *bs, const cas_digest *d, size_t n)
{
        memory_blobstore *m = (memory_blobstore *)bs;
        size_t i;
        int r;

        pthread_mutex_lock(&m->lock);
        r = memory_lookup(m, d, &i);
        r = r >= 0 && m->blobs[i].outboard && cas_outboard_size(m->blobs[i].size) == n;
        pthread_mutex_unlock(&m->lock);
        return r;
}

static void memory_free(cas_blobstore *bs)
{
        memory_blobstore *m = (memory_blobstore *)bs;

        for (size_t i = 0; i < m->n_blobs; i++) {
                free(m->blobs[i].data);
                free(m->blobs[i].outboard);
        }
        free(m->blobs);
        cas_digest_map_done(&m->map);
        pthread_mutex_destroy(&m->lock);
        free(m);
}

static const blobstore_ops memory_ops = {
        .stat = memory_stat,
        .open = memory_open,
        .put_buffer = memory_put_buffer,
        .put_file = memory_put_file,
        .sync = memory_sync,
        .foreach = memory_foreach,
        .remove = memory_remove,
        .put_outboard = memory_put_outboard,
        .get_outboard = memory_get_outboard,
        .has_outboard = memory_has_outboard,
        .free = memory_free,
};

int cas_blobstore_new_memory(cas_blobstore **ret)
{
        memory_blobstore *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->base.ops = &memory_ops;
        m->base.dir_fd = -1;
        pthread_mutex_init(&m->lock, NULL);
        *ret = &m->base;
        return 0;
}
