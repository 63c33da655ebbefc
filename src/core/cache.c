/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include <zstd.h>

#include "blobstore-backend.h"
#include "cache.h"
#include "chunker.h"
#include "digestmap.h"
#include "layout.h"
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

typedef struct cache_blobstore {
        cas_blobstore base;
        cas_blobstore *local;  /* the cache's blobs/ (borrowed) */
        cas_blobstore *remote; /* the remote's blobs (borrowed) */
        cas_objstore *os;      /* the remote's (borrowed) */
        const char *address;
        uint64_t max_bytes;
        _Atomic bool down;    /* the last request failed (said once) */
        pthread_mutex_t lock; /* protects everything below */
        pthread_cond_t fetched;
        struct fetch *fetches;    /* in progress */
        struct partial *partials; /* blobs of several chunks open, shared by their readers */
        cas_digest_map index;     /* digest -> index into blobs */
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
        if (CAS_GROW(cb->blobs, cb->alloc_blobs, cb->n_blobs, 1024) < 0)
                return -ENOMEM;
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
                int r;
                if (cb->bytes > cb->max_bytes && !cas_digest_eq(&b->digest, keep) &&
                    ((r = cas_blobstore_remove(cb->local, &b->digest)) >= 0 || r == -ENOENT)) {
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

/* A fetch in progress (lock held to look at it): whoever wants the same
 * object waits for it instead of fetching it again. Freed by the last of
 * its owner and waiters. */
typedef struct fetch {
        cas_digest digest;
        int r; /* its result once done */
        bool done;
        unsigned refs;
        struct fetch *next;
} fetch;

static fetch *fetch_find(cache_blobstore *cb, const cas_digest *d)
{
        for (fetch *f = cb->fetches; f; f = f->next)
                if (cas_digest_eq(&f->digest, d))
                        return f;
        return NULL;
}

static void fetch_unref(cache_blobstore *cb, fetch *f)
{
        if (--f->refs == 0)
                free(f);
}

/* The owner is done: the result goes to the waiters (lock held). */
static void fetch_finish(cache_blobstore *cb, fetch *f, int r)
{
        for (fetch **p = &cb->fetches; *p; p = &(*p)->next)
                if (*p == f) {
                        *p = f->next;
                        break;
                }
        f->r = r;
        f->done = true;
        pthread_cond_broadcast(&cb->fetched);
        fetch_unref(cb, f);
}

/* A stored chunk's size can exceed its content's only by zstd's framing. */
static size_t stored_max(uint64_t size)
{
        if (size == CAS_BLOB_SIZE_UNKNOWN)
                return ZSTD_compressBound(CAS_LAYOUT_CHUNK_UNKNOWN_MAX) + 4096;
        if (size >= CAS_LAYOUT_CHUNK_STORED_MAX)
                return CAS_LAYOUT_CHUNK_STORED_MAX;
        return ZSTD_compressBound((size_t)size) + 4096;
}

/* A request that failed: one line naming the store when it stops
 * answering (not one per read while it does not), another once it answers
 * again (transfer_ok). */
static int transfer_failed(cache_blobstore *cb, int r, const char *key)
{
        return cas_objstore_failed(cb->address, key, r, "its content allows", &cb->down,
                                   "what is not cached reads as EIO until it answers");
}

static void transfer_ok(cache_blobstore *cb)
{
        cas_objstore_answers(cb->address, &cb->down);
}

/* A chunk as stored: checked against its digest (decompressed at most to its
 * size), then written to the cache as a blob of its own (with its outboard
 * when it needs one); a reader never sees it half written. */
static int store_chunk(cache_blobstore *cb, const char *key, const cas_chunk_ref *c, const void *z,
                       size_t zlen)
{
        _cleanup_(cas_blob_writer_abortp) cas_blob_writer *w = NULL;
        _cleanup_free_ void *buf = NULL;
        cas_layout_error e;
        cas_digest got;
        uint64_t size;
        size_t len;
        int r;

        r = cas_layout_chunk_decode(z, zlen, &c->digest, c->size, &buf, &len, &e);
        if (r == -EBADMSG)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: chunk %s is corrupt: %s", cb->address,
                                     key, e.reason);
        if (r < 0)
                return r;
        r = cas_blobstore_writer_new(cb->local, &w);
        if (r >= 0)
                r = cas_blob_writer_write(w, buf, len);
        if (r >= 0)
                r = cas_blob_writer_commit(TAKE_PTR(w), &got, &size, NULL);
        if (r < 0)
                return r;
        if (!cas_digest_eq(&got, &c->digest))
                return -EBADMSG;
        if (cb->max_bytes) {
                pthread_mutex_lock(&cb->lock);
                scan(cb);
                (void)track(cb, &c->digest, size, ++cb->clock);
                evict(cb, &c->digest);
                pthread_mutex_unlock(&cb->lock);
        }
        return 0;
}

typedef struct chunk_job {
        cache_blobstore *cb;
        const cas_chunk_ref *ref;
        fetch *f;
        bool blob; /* the chunk is a whole blob: 404 means "not a single chunk" */
} chunk_job;

static void chunk_done(int r, const char *key, void *z, size_t zlen, void *userdata)
{
        chunk_job *j = userdata;

        if (r >= 0 || r == -ENOENT)
                transfer_ok(j->cb);
        if (r >= 0)
                r = store_chunk(j->cb, key, j->ref, z, zlen);
        else if (r == -ENOENT && !j->blob)
                r = cas_log_errno(CAS_LOG_ERR, -EBADMSG, "%s: chunk %s is missing", j->cb->address,
                                  key);
        else
                r = transfer_failed(j->cb, r, key);
        free(z);
        pthread_mutex_lock(&j->cb->lock);
        fetch_finish(j->cb, j->f, r);
        pthread_mutex_unlock(&j->cb->lock);
}

/* Fetches the chunks refs[0..n) into the cache, those not fetched by
 * another thread already at once (--jobs in flight, over reused
 * connections), and waits for the others'. blob: refs is one blob, which
 * may not be a chunk (-ENOENT then). Holds no lock while it waits for the
 * network. */
static int fetch_chunks(cache_blobstore *cb, const cas_chunk_ref *refs, size_t n, bool blob)
{
        _cleanup_free_ chunk_job *jobs = calloc(n, sizeof(*jobs));
        _cleanup_free_ fetch **waits = calloc(n, sizeof(*waits));
        size_t n_jobs = 0, n_waits = 0;
        int r = 0;

        if (!jobs || !waits)
                return -ENOMEM;
        pthread_mutex_lock(&cb->lock);
        for (size_t i = 0; i < n; i++) {
                fetch *f = fetch_find(cb, &refs[i].digest);
                if (f) {
                        f->refs++;
                        waits[n_waits++] = f;
                        continue;
                }
                f = calloc(1, sizeof(*f));
                if (!f) {
                        r = -ENOMEM;
                        break;
                }
                *f = (fetch){.digest = refs[i].digest, .refs = 2, .next = cb->fetches};
                cb->fetches = f;
                waits[n_waits++] = f;
                jobs[n_jobs++] = (chunk_job){cb, &refs[i], f, blob};
        }
        pthread_mutex_unlock(&cb->lock);

        /* fetched by another thread between the caller's look and ours
         * (a fetch is stored before it leaves the list) */
        for (size_t i = 0; i < n_jobs;) {
                if (cas_blobstore_has(cb->local, &jobs[i].ref->digest) > 0) {
                        pthread_mutex_lock(&cb->lock);
                        fetch_finish(cb, jobs[i].f, 0);
                        pthread_mutex_unlock(&cb->lock);
                        jobs[i] = jobs[--n_jobs];
                } else
                        i++;
        }
        if (n_jobs == 1) {
                char key[CAS_LAYOUT_KEY_MAX];
                void *z = NULL;
                size_t zlen = 0;
                cas_layout_key(CAS_LAYOUT_CHUNKS, &jobs[0].ref->digest, key);
                int k = cas_objstore_get(cb->os, key, stored_max(jobs[0].ref->size), &z, &zlen);
                chunk_done(k, key, z, zlen, &jobs[0]);
        } else if (n_jobs > 1) {
                cas_objstore_batch *b = NULL;
                size_t queued = 0;
                int k = cas_objstore_batch_new(cb->os, &b);
                for (; k >= 0 && queued < n_jobs; queued++) {
                        char key[CAS_LAYOUT_KEY_MAX];
                        cas_layout_key(CAS_LAYOUT_CHUNKS, &jobs[queued].ref->digest, key);
                        k = cas_objstore_batch_get(b, key, stored_max(jobs[queued].ref->size),
                                                   chunk_done, &jobs[queued]);
                        if (k < 0) {
                                k = transfer_failed(cb, k, key);
                                break;
                        }
                }
                if (b) {
                        cas_objstore_batch_wait(b);
                        cas_objstore_batch_free(b);
                }
                /* those never queued end with the batch's failure */
                for (size_t i = queued; i < n_jobs; i++) {
                        pthread_mutex_lock(&cb->lock);
                        fetch_finish(cb, jobs[i].f, k < 0 ? k : -EIO);
                        pthread_mutex_unlock(&cb->lock);
                }
        }

        pthread_mutex_lock(&cb->lock);
        for (size_t i = 0; i < n_waits; i++) {
                while (!waits[i]->done)
                        pthread_cond_wait(&cb->fetched, &cb->lock);
                if (waits[i]->r < 0 && r >= 0)
                        r = waits[i]->r;
                fetch_unref(cb, waits[i]);
        }
        pthread_mutex_unlock(&cb->lock);
        return r;
}

/* ---- a blob of several chunks, fetched as reads need them ---- */

typedef struct partial {
        cache_blobstore *cb;
        cas_digest digest;
        cas_chunk_ref *chunks;
        uint64_t *offsets; /* where each chunk starts in the blob */
        size_t n;
        _Atomic bool *present; /* chunk i is in the cache (as a blob of its own) */
        _Atomic size_t n_present;
        _Atomic bool assembling; /* one reader puts the blob together */
        _Atomic size_t after;    /* the chunk after the last read's */
        _Atomic size_t ahead;    /* chunks fetched past a forward read's (PARTIAL_AHEAD_MAX) */
        unsigned refs;           /* readers (under the cache's lock) */
        struct partial *next;    /* in the cache's list, which its readers share */
} partial;

/* At most this many chunks (16 MiB) fetched past a read moving forward, in
 * the batch that fetches what it touches. */
#define PARTIAL_AHEAD_MAX 32

/* The first chunk that holds byte off. */
static size_t chunk_at(const partial *p, uint64_t off)
{
        size_t lo = 0, hi = p->n;
        while (hi - lo > 1) {
                size_t mid = (lo + hi) / 2;
                if (p->offsets[mid] <= off)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

/* Once every chunk is cached: the blob made of them, checked whole, linked
 * in under its digest with its outboard; its chunks go. Readers open then
 * get the blob's file. */
static int assemble(partial *p)
{
        cache_blobstore *cb = p->cb;
        _cleanup_(cas_blob_writer_abortp) cas_blob_writer *w = NULL;
        _cleanup_free_ uint8_t *buf = malloc(CAS_CHUNK_MAX);
        cas_digest got;
        uint64_t size;
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_blobstore_writer_new(cb->local, &w);
        for (size_t i = 0; r >= 0 && i < p->n; i++) {
                _cleanup_(cas_blob_reader_freep) cas_blob_reader *rd = NULL;
                r = cb->local->ops->open(cb->local, &p->chunks[i].digest, &rd);
                for (uint64_t off = 0; r >= 0 && off < p->chunks[i].size;) {
                        size_t want = (size_t)MIN(p->chunks[i].size - off, (uint64_t)CAS_CHUNK_MAX);
                        ssize_t k = cas_blob_reader_pread(rd, buf, want, off);
                        r = k < 0    ? (int)k
                            : k == 0 ? -EIO
                                     : cas_blob_writer_write(w, buf, (size_t)k);
                        off += k > 0 ? (uint64_t)k : 0;
                }
        }
        if (r >= 0)
                r = cas_blob_writer_commit(TAKE_PTR(w), &got, &size, NULL);
        if (r < 0)
                return r;
        if (!cas_digest_eq(&got, &p->digest)) {
                (void)cas_blobstore_remove(cb->local, &got);
                char key[CAS_LAYOUT_KEY_MAX];
                cas_layout_key(CAS_LAYOUT_BLOBS, &p->digest, key);
                return cas_log_errno(
                    CAS_LOG_ERR, -EBADMSG,
                    "%s: blob index %s is corrupt: its chunks do not make up the blob", cb->address,
                    key);
        }
        if (cb->max_bytes) {
                pthread_mutex_lock(&cb->lock);
                (void)track(cb, &p->digest, size, ++cb->clock);
                evict(cb, &p->digest);
                pthread_mutex_unlock(&cb->lock);
        }
        /* readers of the chunks find the blob instead (partial_pread) */
        for (size_t i = 0; i < p->n; i++) {
                uint64_t k;
                if (cas_digest_eq(&p->chunks[i].digest, &p->digest) ||
                    cas_blobstore_remove(cb->local, &p->chunks[i].digest) < 0 || !cb->max_bytes)
                        continue;
                pthread_mutex_lock(&cb->lock);
                if (cas_digest_map_get(&cb->index, &p->chunks[i].digest, &k)) {
                        cb->bytes -= cb->blobs[k].size;
                        cb->blobs[k].size = 0; /* gone: dropped at the next eviction */
                        cb->blobs[k].stamp = 0;
                }
                pthread_mutex_unlock(&cb->lock);
        }
        return 0;
}

/* Makes chunks [first, last] present in the cache. */
static int partial_fill(partial *p, size_t first, size_t last)
{
        _cleanup_free_ cas_chunk_ref *missing = calloc(last - first + 1, sizeof(*missing));
        size_t n = 0;
        int r;

        if (!missing)
                return -ENOMEM;
        for (size_t i = first; i <= last; i++) {
                if (atomic_load(&p->present[i]))
                        continue;
                /* fetched by an earlier mount, or for another blob */
                if (cas_blobstore_has(p->cb->local, &p->chunks[i].digest) > 0) {
                        if (!atomic_exchange(&p->present[i], true))
                                atomic_fetch_add(&p->n_present, 1);
                        continue;
                }
                missing[n++] = p->chunks[i];
        }
        if (n == 0)
                return 0;
        r = fetch_chunks(p->cb, missing, n, false);
        if (r < 0)
                return r;
        for (size_t i = first; i <= last; i++)
                if (!atomic_exchange(&p->present[i], true))
                        atomic_fetch_add(&p->n_present, 1);
        return 0;
}

static ssize_t partial_pread(cas_blob_reader *rd, void *buf, size_t n, uint64_t off)
{
        partial *p = rd->priv;
        cas_blobstore *local = p->cb->local;
        size_t first = chunk_at(p, off), last = chunk_at(p, off + n - 1);
        cas_blob_reader *whole = NULL;
        int r;

        /* the blob whole, once it is there */
        if (atomic_load(&p->n_present) == p->n &&
            local->ops->open(local, &p->digest, &whole) >= 0) {
                ssize_t k = cas_blob_reader_size(whole) == rd->size
                                ? cas_blob_reader_pread(whole, buf, n, off)
                                : -EIO;
                cas_blob_reader_free(whole);
                return k;
        }
        /* A read that needs a chunk not cached fetches, in one batch, the
         * chunks it touches and one after them; for a reader moving forward
         * (from the chunk of its last read or the next), twice as many after
         * them each time, so that a sequential read waits for the network
         * once every few chunks, not once a chunk. One that jumps starts
         * over. */
        size_t prev = atomic_exchange(&p->after, last + 1);
        bool forward = first <= prev && first + 2 >= prev;
        size_t ahead = forward ? atomic_load(&p->ahead) : 1;
        bool missing = false;
        for (size_t i = first; i <= last && !missing; i++)
                missing = !atomic_load(&p->present[i]);
        if (missing) {
                r = partial_fill(p, first, MIN(last + ahead, p->n - 1));
                if (r < 0)
                        return r;
        }
        atomic_store(&p->ahead, !forward ? 1 : missing ? MIN(ahead * 2, (size_t)PARTIAL_AHEAD_MAX) : ahead);
        size_t done = 0;
        for (size_t i = first; i <= last; i++) {
                _cleanup_(cas_blob_reader_freep) cas_blob_reader *c = NULL;
                uint64_t from = MAX(off + done, p->offsets[i]) - p->offsets[i];
                size_t len = (size_t)MIN((uint64_t)(n - done), p->chunks[i].size - from);
                r = local->ops->open(local, &p->chunks[i].digest, &c);
                if (r == -ENOENT && local->ops->open(local, &p->digest, &whole) >= 0) {
                        /* assembled meanwhile, and its chunks gone */
                        ssize_t k = cas_blob_reader_size(whole) == rd->size
                                        ? cas_blob_reader_pread(whole, (uint8_t *)buf + done,
                                                                n - done, off + done)
                                        : -EIO;
                        cas_blob_reader_free(whole);
                        return k < 0 ? k : (size_t)k == n - done ? (ssize_t)n : -EIO;
                }
                if (r == -ENOENT) {
                        /* evicted meanwhile: once more */
                        if (atomic_exchange(&p->present[i], false))
                                atomic_fetch_sub(&p->n_present, 1);
                        r = partial_fill(p, i, i);
                        if (r >= 0)
                                r = local->ops->open(local, &p->chunks[i].digest, &c);
                }
                if (r < 0)
                        return r == -ENOENT ? -EIO : r;
                ssize_t k = cas_blob_reader_pread(c, (uint8_t *)buf + done, len, from);
                if (k < 0 || (size_t)k != len)
                        return k < 0 ? k : -EIO;
                done += len;
        }
        /* a blob larger than the cache's bound stays in chunks */
        if (atomic_load(&p->n_present) == p->n &&
            (!p->cb->max_bytes || rd->size <= p->cb->max_bytes) &&
            !atomic_exchange(&p->assembling, true)) {
                r = assemble(p);
                if (r < 0)
                        atomic_store(&p->assembling, false);
        }
        return (ssize_t)n;
}

static partial *partial_free(partial *p)
{
        if (p) {
                free(p->chunks);
                free(p->offsets);
                free(p->present);
                free(p);
        }
        return NULL;
}

static void partial_release(cas_blob_reader *rd)
{
        partial *p = rd->priv;
        cache_blobstore *cb = p->cb;

        pthread_mutex_lock(&cb->lock);
        bool last = --p->refs == 0;
        if (last)
                for (partial **q = &cb->partials; *q; q = &(*q)->next)
                        if (*q == p) {
                                *q = p->next;
                                break;
                        }
        pthread_mutex_unlock(&cb->lock);
        if (last)
                partial_free(p);
}

/* A reader of the partial blob p (whose reference it takes). */
static int partial_reader(partial *p, cas_blob_reader **ret)
{
        cas_blob_reader *rd = calloc(1, sizeof(*rd));
        if (!rd)
                return -ENOMEM;
        rd->fd = -1;
        rd->direct_fd = -1;
        rd->size = p->offsets[p->n - 1] + p->chunks[p->n - 1].size;
        rd->pread = partial_pread;
        rd->release = partial_release;
        rd->priv = p;
        *ret = rd;
        return 0;
}

/* Takes a reference to the partial blob d when one is open (lock held). */
static partial *partial_find(cache_blobstore *cb, const cas_digest *d)
{
        for (partial *p = cb->partials; p; p = p->next)
                if (cas_digest_eq(&p->digest, d)) {
                        p->refs++;
                        return p;
                }
        return NULL;
}

/* A blob of several chunks: its index (one request, unless a reader has it
 * open already: readers of one blob share what is there), then a reader
 * that fetches the chunks a read touches. -ENOENT when there is no index. */
static int open_partial(cache_blobstore *cb, const cas_digest *d, uint64_t size,
                        cas_blob_reader **ret)
{
        char key[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ void *buf = NULL;
        partial *p, *other;
        cas_layout_error e;
        uint64_t total;
        size_t len;
        int r;

        pthread_mutex_lock(&cb->lock);
        p = partial_find(cb, d);
        pthread_mutex_unlock(&cb->lock);
        if (p) {
                r = partial_reader(p, ret);
                if (r < 0)
                        partial_release(&(cas_blob_reader){.priv = p});
                return r;
        }
        cas_layout_key(CAS_LAYOUT_BLOBS, d, key);
        r = cas_objstore_get(cb->os, key, CAS_LAYOUT_BLOB_INDEX_MAX, &buf, &len);
        if (r < 0)
                return transfer_failed(cb, r, key);
        transfer_ok(cb);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = cas_layout_blob_index_decode(buf, len, size, &p->chunks, &p->n, &total, &e);
        if (r < 0) {
                partial_free(p);
                return cas_log_errno(CAS_LOG_ERR, r, "%s: blob index %s is corrupt: %s",
                                     cb->address, key, e.reason);
        }
        p->cb = cb;
        p->digest = *d;
        p->refs = 1;
        p->ahead = 1;
        p->offsets = calloc(p->n, sizeof(*p->offsets));
        p->present = calloc(p->n, sizeof(*p->present));
        if (!p->offsets || !p->present) {
                partial_free(p);
                return -ENOMEM;
        }
        for (size_t i = 0, off = 0; i < p->n; off += p->chunks[i].size, i++)
                p->offsets[i] = off;
        pthread_mutex_lock(&cb->lock);
        other = partial_find(cb, d); /* opened meanwhile */
        if (!other) {
                p->next = cb->partials;
                cb->partials = p;
        }
        pthread_mutex_unlock(&cb->lock);
        if (other) {
                partial_free(p);
                p = other;
        }
        r = partial_reader(p, ret);
        if (r < 0)
                partial_release(&(cas_blob_reader){.priv = p});
        return r;
}

static int cache_open_sized(cas_blobstore *bs, const cas_digest *d, uint64_t size,
                            cas_blob_reader **ret)
{
        cache_blobstore *cb = CACHE(bs);
        cas_chunk_ref whole = {*d, size};
        int r;

        r = cb->local->ops->open(cb->local, d, ret);
        if (r == -ENOENT && cas_digest_eq(d, &cas_digest_empty)) {
                /* the empty blob has no object */
                r = cas_blobstore_put(cb->local, "", 0, &(cas_digest){0});
                if (r >= 0)
                        r = cb->local->ops->open(cb->local, d, ret);
        } else if (r == -ENOENT) {
                /* a blob of one chunk, fetched whole; else one of several
                 * (known already when a reader has it open) */
                pthread_mutex_lock(&cb->lock);
                partial *p = partial_find(cb, d);
                pthread_mutex_unlock(&cb->lock);
                if (p) {
                        r = partial_reader(p, ret);
                        if (r < 0)
                                partial_release(&(cas_blob_reader){.priv = p});
                } else if (size != CAS_BLOB_SIZE_UNKNOWN && size > CAS_CHUNK_MAX)
                        r = open_partial(cb, d, size, ret);
                if (r == -ENOENT) {
                        r = fetch_chunks(cb, &whole, 1, true);
                        if (r >= 0)
                                r = cb->local->ops->open(cb->local, d, ret);
                        else if (r == -ENOENT &&
                                 (size == CAS_BLOB_SIZE_UNKNOWN || size <= CAS_CHUNK_MAX))
                                r = open_partial(cb, d, size, ret);
                }
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

/* Blobs of one chunk that are not cached yet, fetched whole in one batch
 * (--jobs in flight): what a reader then opens is local, or being fetched
 * already (it waits for that fetch, fetch_find). Larger blobs are left to
 * their reads, which fetch the chunks they touch. */
static int cache_prefetch(cas_blobstore *bs, const cas_chunk_ref *refs, size_t n)
{
        cache_blobstore *cb = CACHE(bs);
        _cleanup_free_ cas_chunk_ref *missing = calloc(n, sizeof(*missing));
        size_t n_missing = 0;

        if (!missing)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (refs[i].size > 0 && refs[i].size <= CAS_CHUNK_MAX &&
                    cas_blobstore_has(cb->local, &refs[i].digest) == 0)
                        missing[n_missing++] = refs[i];
        if (n_missing == 0)
                return 0;
        return fetch_chunks(cb, missing, n_missing, true);
}

static int cache_cached(cas_blobstore *bs, const cas_digest *d)
{
        cache_blobstore *cb = CACHE(bs);
        if (cas_digest_eq(d, &cas_digest_empty))
                return 1;
        return cas_blobstore_has(cb->local, d) == 1 ? 1 : 0;
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
    .prefetch = cache_prefetch,
    .cached = cache_cached,
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

static int blobstore_open_cache(cas_blobstore *local, cas_blobstore *remote, cas_objstore *os,
                                const char *address, uint64_t max_bytes, cas_blobstore **ret)
{
        cache_blobstore *cb = calloc(1, sizeof(*cb));
        if (!cb)
                return -ENOMEM;
        cb->base.ops = &cache_ops;
        cb->base.dir_fd = local->dir_fd;
        cb->local = local;
        cb->remote = remote;
        cb->os = os;
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

        r = cas_store_new_empty(&s);
        if (r < 0)
                return r;
        r = cas_store_open_address(address, CAS_STORE_READONLY, o, &s->cache_remote);
        if ((r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ECONNREFUSED || r == -EIO) &&
            faccessat(AT_FDCWD, cache_dir, F_OK, 0) == 0) {
                /* what the cache holds is served while the remote does not answer */
                const char *e = cas_objstore_last_error();
                cas_log(CAS_LOG_WARNING, "%s; serving what %s holds until it answers",
                        e && *e ? e : strerror(-r), cache_dir);
                r = cas_store_open_address(address, CAS_STORE_READONLY | CAS_STORE_NOCHECK, o,
                                           &s->cache_remote);
        }
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
        r = blobstore_open_cache(s->cache_local->blobs, s->cache_remote->blobs,
                                 s->cache_remote->remote, s->path, co->max_bytes, &s->blobs);
        if (r < 0)
                return r;
        r = cas_metastore_open_cache(s->cache_local->meta, s->cache_remote->meta,
                                     s->cache_remote->remote, co->refresh_sec, &s->meta);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int cas_cache_default_dir(const char *address, const char *s3_endpoint, char **ret)
{
        _cleanup_free_ char *base = NULL, *name = NULL, *key = NULL;
        const char *p = strstr(address, "://");
        char hex[CAS_DIGEST_HEX_MAX];
        cas_digest d;
        int r;

        r = cas_xdg_path("XDG_CACHE_HOME", ".cache", "casfs", &base);
        if (r < 0)
                return r;
        /* readable, and unique: the address's host and path, then its hash */
        name = strndup(p ? p + 3 : address, 64);
        if (!name)
                return -ENOMEM;
        for (char *c = name; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
                        *c = '_';
        /* the address alone when there is no endpoint: the folders of
         * http(s)://, file:// and AWS stop where they were */
        bool s3 = strncmp(address, "s3://", 5) == 0;
        if (asprintf(&key, "%s%s%s", address, s3 && s3_endpoint && *s3_endpoint ? " " : "",
                     s3 && s3_endpoint ? s3_endpoint : "") < 0)
                return -ENOMEM;
        cas_digest_of(key, strlen(key), &d);
        cas_digest_to_hex(&d, hex);
        hex[16] = 0;
        if (asprintf(ret, "%s/%s-%s", base, name, hex) < 0)
                return -ENOMEM;
        return 0;
}
