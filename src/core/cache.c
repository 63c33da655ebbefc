/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "blobstore-backend.h"
#include "cache.h"
#include "digestmap.h"
#include "log.h"
#include "macro.h"

/* The blobs of a remote store read through a local cache (cache.h), and the
 * store that composes the two. */

/* What the cache knows of a cached blob, for eviction. */
typedef struct cached_blob {
        cas_digest digest;
        uint64_t size;
        uint64_t stamp; /* when it was last opened, in opens; 0: before this process */
} cached_blob;

/* A fetch in progress, which others wanting the same blob wait for. */
typedef struct fetch {
        cas_digest digest;
        int r; /* its result once done */
        bool done;
        unsigned waiters;
        struct fetch *next;
} fetch;

typedef struct cache_blobstore {
        cas_blobstore base;
        cas_blobstore *local;  /* the cache's blobs/ (borrowed) */
        cas_blobstore *remote; /* the remote's blobs (borrowed) */
        const char *address;
        uint64_t max_bytes;
        pthread_mutex_t lock; /* protects everything below */
        pthread_cond_t fetched;
        fetch *fetches;
        cas_digest_map index; /* digest -> index into blobs */
        cached_blob *blobs;
        size_t n_blobs, alloc_blobs;
        uint64_t bytes; /* of the blobs above */
        uint64_t clock; /* opens so far */
        bool scanned;
} cache_blobstore;

#define CACHE(bs) ((cache_blobstore *)(bs))

/* ---- eviction: least recently opened first ---- */

/* Records a blob of the cache (lock held). */
static int track(cache_blobstore *cb, const cas_digest *d, uint64_t size, uint64_t stamp)
{
        uint64_t i;

        if (cas_digest_map_get(&cb->index, d, &i)) {
                cb->blobs[i].stamp = stamp;
                return 0;
        }
        if (cb->n_blobs == cb->alloc_blobs) {
                size_t na = cb->alloc_blobs ? cb->alloc_blobs * 2 : 1024;
                cached_blob *nb = realloc(cb->blobs, na * sizeof(*nb));
                if (!nb)
                        return -ENOMEM;
                cb->blobs = nb;
                cb->alloc_blobs = na;
        }
        int r = cas_digest_map_put(&cb->index, d, cb->n_blobs);
        if (r < 0)
                return r;
        cb->blobs[cb->n_blobs++] = (cached_blob){*d, size, stamp};
        cb->bytes += size;
        return 0;
}

static int scan_cb(const cas_digest *d, uint64_t size, void *userdata)
{
        cache_blobstore *cb = userdata;

        if (size == CAS_BLOB_SIZE_UNKNOWN && cas_blobstore_stat(cb->local, d, &size) < 0)
                return 0;
        return track(cb, d, size, 0);
}

/* The blobs the cache holds from earlier mounts, counted once (lock held). */
static void scan(cache_blobstore *cb)
{
        if (cb->scanned)
                return;
        cb->scanned = true;
        (void)cas_blobstore_foreach(cb->local, scan_cb, cb);
}

static int stamp_cmp(const void *a, const void *b)
{
        const cached_blob *x = a, *y = b;
        return x->stamp < y->stamp ? -1 : x->stamp > y->stamp;
}

/* Removes the blobs opened least recently until the cache is within its
 * bound, keeping keep (the blob just fetched). A removed blob stays readable
 * through the readers open on it. Lock held. */
static void evict(cache_blobstore *cb, const cas_digest *keep)
{
        size_t kept = 0;

        if (!cb->max_bytes || cb->bytes <= cb->max_bytes)
                return;
        qsort(cb->blobs, cb->n_blobs, sizeof(*cb->blobs), stamp_cmp);
        for (size_t i = 0; i < cb->n_blobs; i++) {
                cached_blob *b = &cb->blobs[i];
                if (cb->bytes > cb->max_bytes && !cas_digest_eq(&b->digest, keep) &&
                    cas_blobstore_remove(cb->local, &b->digest) >= 0) {
                        cb->bytes -= b->size;
                        continue;
                }
                cb->blobs[kept++] = *b;
        }
        cb->n_blobs = kept;
        cas_digest_map_done(&cb->index);
        for (size_t i = 0; i < kept; i++)
                (void)cas_digest_map_put(&cb->index, &cb->blobs[i].digest, i);
}

/* ---- fetching ---- */

/* Copies a checked blob from the remote's reader into the cache (its
 * outboard computed on the way); a reader never sees it half written. */
static int store_locally(cache_blobstore *cb, const cas_digest *d, cas_blob_reader *from)
{
        _cleanup_(cas_blob_writer_abortp) cas_blob_writer *w = NULL;
        _cleanup_free_ uint8_t *buf = malloc(1 << 20);
        uint64_t size = cas_blob_reader_size(from), got_size;
        cas_digest got;
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_blobstore_writer_new(cb->local, &w);
        if (r < 0)
                return r;
        for (uint64_t off = 0; off < size;) {
                ssize_t n = cas_blob_reader_pread(
                    from, buf, (size_t)MIN(size - off, (uint64_t)(1 << 20)), off);
                if (n <= 0)
                        return n < 0 ? (int)n : -EIO;
                r = cas_blob_writer_write(w, buf, (size_t)n);
                if (r < 0)
                        return r;
                off += (uint64_t)n;
        }
        r = cas_blob_writer_commit(TAKE_PTR(w), &got, &got_size, NULL);
        if (r < 0)
                return r;
        return cas_digest_eq(&got, d) ? 0 : -EBADMSG;
}

/* Fetches blob d into the cache, once even when many ask at once: the
 * others wait for the first (holding no lock of their callers). */
static int fetch_blob(cache_blobstore *cb, const cas_digest *d, uint64_t size)
{
        fetch *f, self = {.digest = *d};
        int r;

        pthread_mutex_lock(&cb->lock);
        for (f = cb->fetches; f; f = f->next)
                if (cas_digest_eq(&f->digest, d))
                        break;
        if (f) {
                f->waiters++;
                while (!f->done)
                        pthread_cond_wait(&cb->fetched, &cb->lock);
                r = f->r;
                f->waiters--;
                pthread_cond_broadcast(&cb->fetched);
                pthread_mutex_unlock(&cb->lock);
                return r;
        }
        self.next = cb->fetches;
        cb->fetches = &self;
        pthread_mutex_unlock(&cb->lock);

        _cleanup_(cas_blob_reader_freep) cas_blob_reader *rd = NULL;
        r = size == CAS_BLOB_SIZE_UNKNOWN ? cas_blobstore_open(cb->remote, d, &rd)
                                          : cas_blobstore_open_sized(cb->remote, d, size, &rd);
        if (r >= 0)
                r = store_locally(cb, d, rd);

        pthread_mutex_lock(&cb->lock);
        if (r >= 0) {
                scan(cb);
                (void)track(cb, d, cas_blob_reader_size(rd), ++cb->clock);
                evict(cb, d);
        }
        self.r = r;
        self.done = true;
        pthread_cond_broadcast(&cb->fetched);
        while (self.waiters > 0)
                pthread_cond_wait(&cb->fetched, &cb->lock);
        for (fetch **p = &cb->fetches; *p; p = &(*p)->next)
                if (*p == &self) {
                        *p = self.next;
                        break;
                }
        pthread_mutex_unlock(&cb->lock);
        return r;
}

static int cache_open_sized(cas_blobstore *bs, const cas_digest *d, uint64_t size,
                            cas_blob_reader **ret)
{
        cache_blobstore *cb = CACHE(bs);
        int r;

        r = cb->local->ops->open(cb->local, d, ret);
        if (r == -ENOENT) {
                r = fetch_blob(cb, d, size);
                if (r >= 0)
                        r = cb->local->ops->open(cb->local, d, ret);
        } else if (r >= 0 && cb->max_bytes) {
                pthread_mutex_lock(&cb->lock);
                uint64_t i;
                if (cas_digest_map_get(&cb->index, d, &i))
                        cb->blobs[i].stamp = ++cb->clock;
                pthread_mutex_unlock(&cb->lock);
        }
        if (r >= 0 && size != CAS_BLOB_SIZE_UNKNOWN && cas_blob_reader_size(*ret) != size) {
                *ret = cas_blob_reader_free(*ret);
                r = -EBADMSG;
        }
        return r;
}

static int cache_open(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret)
{
        return cache_open_sized(bs, d, CAS_BLOB_SIZE_UNKNOWN, ret);
}

static int cache_stat(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size)
{
        cache_blobstore *cb = CACHE(bs);
        int r = cas_blobstore_stat(cb->local, d, ret_size);
        return r == -ENOENT ? cas_blobstore_stat(cb->remote, d, ret_size) : r;
}

static int cache_has(cas_blobstore *bs, const cas_digest *d)
{
        cache_blobstore *cb = CACHE(bs);
        int r = cas_blobstore_has(cb->local, d);
        return r != 0 ? r : cas_blobstore_has(cb->remote, d);
}

static int cache_put_buffer(cas_blobstore *bs, const cas_digest *d, const void *buf, size_t n,
                            int *ret_existed)
{
        return -EROFS;
}

static int cache_put_file(cas_blobstore *bs, const cas_digest *d, int fd, uint64_t size,
                          int *ret_existed)
{
        return -EROFS;
}

static int cache_sync(cas_blobstore *bs)
{
        return 0;
}

static int cache_foreach(cas_blobstore *bs, cas_blob_cb cb, void *userdata)
{
        return CACHE(bs)->local->ops->foreach (CACHE(bs)->local, cb, userdata);
}

static int cache_remove(cas_blobstore *bs, const cas_digest *d)
{
        return -EOPNOTSUPP;
}

/* Outboards are the cache's: written with each blob fetched. */
static int cache_put_outboard(cas_blobstore *bs, const cas_digest *d, const uint8_t *ob, size_t n)
{
        cas_blobstore *local = CACHE(bs)->local;
        return local->ops->put_outboard(local, d, ob, n);
}

static int cache_get_outboard(cas_blobstore *bs, const cas_digest *d, uint8_t *ob, size_t n)
{
        cas_blobstore *local = CACHE(bs)->local;
        return local->ops->get_outboard(local, d, ob, n);
}

static int cache_has_outboard(cas_blobstore *bs, const cas_digest *d, size_t n)
{
        cas_blobstore *local = CACHE(bs)->local;
        return local->ops->has_outboard(local, d, n);
}

static void cache_free(cas_blobstore *bs)
{
        cache_blobstore *cb = CACHE(bs);

        cas_digest_map_done(&cb->index);
        free(cb->blobs);
        pthread_cond_destroy(&cb->fetched);
        pthread_mutex_destroy(&cb->lock);
        free(cb);
}

static const blobstore_ops cache_ops = {
    .stat = cache_stat,
    .has = cache_has,
    .open = cache_open,
    .open_sized = cache_open_sized,
    .put_buffer = cache_put_buffer,
    .put_file = cache_put_file,
    .sync = cache_sync,
    .foreach = cache_foreach,
    .remove = cache_remove,
    .put_outboard = cache_put_outboard,
    .get_outboard = cache_get_outboard,
    .has_outboard = cache_has_outboard,
    .free = cache_free,
};

static int blobstore_open_cache(cas_blobstore *local, cas_blobstore *remote, const char *address,
                                uint64_t max_bytes, cas_blobstore **ret)
{
        cache_blobstore *cb = calloc(1, sizeof(*cb));
        if (!cb)
                return -ENOMEM;
        cb->base.ops = &cache_ops;
        cb->base.dir_fd = local->dir_fd;
        cb->local = local;
        cb->remote = remote;
        cb->address = address;
        cb->max_bytes = max_bytes;
        pthread_mutex_init(&cb->lock, NULL);
        pthread_cond_init(&cb->fetched, NULL);
        if (max_bytes) {
                pthread_mutex_lock(&cb->lock);
                scan(cb);
                evict(cb, &cas_digest_empty);
                pthread_mutex_unlock(&cb->lock);
        }
        *ret = &cb->base;
        return 0;
}

/* ---- the store ---- */

/* Writes the marker naming the remote, once. */
static int write_marker(int dir_fd, const char *address)
{
        _cleanup_close_ int fd = -1;
        int r;

        if (faccessat(dir_fd, CAS_CACHE_MARKER, F_OK, 0) == 0)
                return 0;
        fd =
            openat(dir_fd, CAS_CACHE_MARKER ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = cas_loop_write(fd, address, strlen(address));
        if (r >= 0)
                r = cas_loop_write(fd, "\n", 1);
        if (r < 0)
                return r;
        if (renameat(dir_fd, CAS_CACHE_MARKER ".tmp", dir_fd, CAS_CACHE_MARKER) < 0)
                return -errno;
        return 0;
}

int cas_cache_is_cache(int dir_fd)
{
        return dir_fd >= 0 && faccessat(dir_fd, CAS_CACHE_MARKER, F_OK, 0) == 0;
}

int cas_store_open_cached(const char *address, const char *cache_dir, const cas_objstore_options *o,
                          const cas_cache_options *co, cas_store **ret)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->dir_fd = s->lock_fd = -1;
        r = cas_store_open_address(address, CAS_STORE_READONLY, o, &s->cache_remote);
        if (r < 0)
                return r;
        r = cas_store_open(cache_dir, CAS_STORE_CREATE, &s->cache_local);
        if (r < 0)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: cannot open the cache: %s", cache_dir,
                                     strerror(-r));
        r = write_marker(s->cache_local->dir_fd, s->cache_remote->path);
        if (r < 0)
                return r;
        s->path = strdup(s->cache_remote->path);
        if (!s->path)
                return -ENOMEM;
        r = blobstore_open_cache(s->cache_local->blobs, s->cache_remote->blobs, s->path,
                                 co->max_bytes, &s->blobs);
        if (r < 0)
                return r;
        r = cas_metastore_open_cache(s->cache_local->meta, s->cache_remote->meta,
                                     s->cache_remote->remote, co->refresh_sec, &s->meta);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int cas_cache_default_dir(const char *address, char **ret)
{
        _cleanup_free_ char *base = NULL, *name = NULL;
        const char *e = getenv("XDG_CACHE_HOME"), *p = strstr(address, "://");
        char hex[CAS_DIGEST_HEX_MAX];
        cas_digest d;

        if (e && *e == '/')
                base = strdup(e);
        else {
                const char *home = getenv("HOME");
                if (!home || *home != '/')
                        return -ENXIO;
                if (asprintf(&base, "%s/.cache", home) < 0)
                        base = NULL;
        }
        if (!base)
                return -ENOMEM;
        /* readable, and unique: the address's host and path, then its hash */
        name = strndup(p ? p + 3 : address, 64);
        if (!name)
                return -ENOMEM;
        for (char *c = name; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
                        *c = '_';
        cas_digest_of(address, strlen(address), &d);
        cas_digest_to_hex(&d, hex);
        hex[16] = 0;
        if (asprintf(ret, "%s/casfs/%s-%s", base, name, hex) < 0)
                return -ENOMEM;
        return 0;
}
