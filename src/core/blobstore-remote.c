/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <pthread.h>
#include <sys/mman.h>
#include <zstd.h>

#include "blobstore-backend.h"
#include "chunker.h"
#include "digestmap.h"
#include "layout.h"
#include "log.h"
#include "macro.h"
#include "objstore.h"

/* Blobs in an object store (docs/FORMAT.md, "Remote stores"): a blob of one
 * chunk is the chunk chunks/b3/HHHH/<hex>; a larger one has an index
 * blobs/b3/HHHH/<hex> naming its chunks. Every chunk is decompressed at most
 * to its stated size and checked against its digest, and the blob as a whole
 * against its own, before a reader sees any of it. An opened blob is held in
 * an anonymous memory file: the place where a later local cache would keep
 * it (a verified blob can go into a local store's blob writer as it is). */

/* Blobs larger than one chunk can be are looked for under blobs/ first. */
#define SINGLE_CHUNK_LIKELY_MAX CAS_CHUNK_MAX

/* What the listing or this process's own writes found in the store. */
enum { KNOWN_CHUNK = 1, KNOWN_INDEX = 2 };

typedef struct remote_blobstore {
        cas_blobstore base;
        cas_objstore *os;
        pthread_mutex_t lock; /* protects known, listed */
        cas_digest_map known; /* digest -> KNOWN_* bits */
        int listed;           /* 0 not yet, 1 known holds the whole store, -errno listing failed */
} remote_blobstore;

#define REMOTE(bs) ((remote_blobstore *)(bs))

static const char *where(remote_blobstore *rb)
{
        return cas_objstore_address(rb->os);
}

/* A failed transfer: one line naming the object and the store (objstore's
 * own line says which, without credentials). */
static int transfer_failed(remote_blobstore *rb, int r, const char *key)
{
        return cas_objstore_failed(where(rb), key, r, "its content allows", NULL, NULL);
}

/* ---- what is there ---- */

static void known_add(remote_blobstore *rb, const cas_digest *d, uint64_t bits)
{
        pthread_mutex_lock(&rb->lock);
        uint64_t *v = cas_digest_map_find(&rb->known, d);
        if (v)
                *v |= bits;
        else
                (void)cas_digest_map_put(&rb->known, d, bits);
        pthread_mutex_unlock(&rb->lock);
}

typedef struct list_ctx {
        remote_blobstore *rb;
        const char *prefix;
        uint64_t bit;
} list_ctx;

static int list_cb(const char *key, uint64_t size, void *userdata)
{
        list_ctx *c = userdata;
        cas_digest d;

        if (cas_layout_parse_key(key, c->prefix, &d) < 0)
                return 0; /* not ours: ignored */
        uint64_t *v = cas_digest_map_find(&c->rb->known, &d);
        if (v)
                *v |= c->bit;
        else if (cas_digest_map_put(&c->rb->known, &d, c->bit) < 0)
                return -ENOMEM;
        return 0;
}

/* Lists chunks/ and blobs/ once: writers then send only what is missing
 * without asking per object. Called with the lock held. */
static int ensure_listed(remote_blobstore *rb)
{
        list_ctx c = {rb, CAS_LAYOUT_CHUNKS, KNOWN_CHUNK};
        int r;

        if (rb->listed)
                return rb->listed < 0 ? rb->listed : 0;
        r = cas_objstore_list(rb->os, CAS_LAYOUT_CHUNKS, list_cb, &c);
        if (r >= 0) {
                c = (list_ctx){rb, CAS_LAYOUT_BLOBS, KNOWN_INDEX};
                r = cas_objstore_list(rb->os, CAS_LAYOUT_BLOBS, list_cb, &c);
        }
        if (r < 0 && r != -ENOENT) {
                rb->listed = r;
                /* no listing (http): asked per object instead */
                return r == -EOPNOTSUPP ? r : transfer_failed(rb, r, "listing");
        }
        rb->listed = 1;
        return 0;
}

/* Whether the store has what bit says for d: from the listing, else asked. */
static int has_object(remote_blobstore *rb, const cas_digest *d, uint64_t bit)
{
        char key[CAS_LAYOUT_KEY_MAX];
        uint64_t v = 0;
        int r;

        pthread_mutex_lock(&rb->lock);
        r = ensure_listed(rb);
        bool found = cas_digest_map_get(&rb->known, d, &v) && (v & bit);
        pthread_mutex_unlock(&rb->lock);
        if (found)
                return 1;
        if (r >= 0)
                return 0;
        cas_layout_key(bit == KNOWN_CHUNK ? CAS_LAYOUT_CHUNKS : CAS_LAYOUT_BLOBS, d, key);
        uint64_t size;
        r = cas_objstore_head(rb->os, key, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return transfer_failed(rb, r, key);
        known_add(rb, d, bit);
        return 1;
}

/* ---- reading ---- */

/* A stored chunk's size can exceed its content's only by zstd's framing. */
static size_t stored_max(uint64_t size)
{
        if (size == UINT64_MAX)
                return ZSTD_compressBound(CAS_LAYOUT_CHUNK_UNKNOWN_MAX) + 4096;
        if (size >= CAS_LAYOUT_CHUNK_STORED_MAX)
                return CAS_LAYOUT_CHUNK_STORED_MAX;
        return ZSTD_compressBound((size_t)size) + 4096;
}

static int decode_chunk(remote_blobstore *rb, const char *key, const void *z, size_t zlen,
                        const cas_digest *d, uint64_t size, void **ret, size_t *ret_len)
{
        cas_layout_error e;
        int r = cas_layout_chunk_decode(z, zlen, d, size, ret, ret_len, &e);
        if (r == -EBADMSG)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: chunk %s is corrupt: %s", where(rb), key,
                                     e.reason);
        return r;
}

static int new_memfd(uint64_t size)
{
        int fd = memfd_create("casfs-remote-blob", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* A reader over the memory file *fd holding the blob's bytes; takes the
 * file on success (*fd is then -1). */
static int reader_take_memfd(int *fd, uint64_t size, cas_blob_reader **ret)
{
        int r = cas_blob_reader_new_fd(*fd, size, ret);
        if (r >= 0)
                *fd = -1;
        return r;
}

static int reader_from_bytes(const void *buf, size_t len, cas_blob_reader **ret)
{
        _cleanup_close_ int fd = new_memfd(0);
        int r;

        if (fd < 0)
                return fd;
        r = cas_loop_write(fd, buf, len);
        if (r < 0)
                return r;
        return reader_take_memfd(&fd, len, ret);
}

/* A blob that is one chunk. -ENOENT when there is no such chunk. */
static int open_chunk(remote_blobstore *rb, const cas_digest *d, uint64_t size,
                      cas_blob_reader **ret)
{
        char key[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ void *z = NULL, *buf = NULL;
        size_t zlen, len;
        int r;

        cas_layout_key(CAS_LAYOUT_CHUNKS, d, key);
        r = cas_objstore_get(rb->os, key, stored_max(size), &z, &zlen);
        if (r < 0)
                return transfer_failed(rb, r, key);
        r = decode_chunk(rb, key, z, zlen, d, size, &buf, &len);
        if (r < 0)
                return r;
        return reader_from_bytes(buf, len, ret);
}

typedef struct assembly {
        remote_blobstore *rb;
        const cas_chunk_ref *chunks;
        uint64_t *offsets;
        uint8_t *map; /* the blob's memory file, mapped */
        int r;        /* the first failure */
} assembly;

typedef struct chunk_job {
        assembly *a;
        size_t i;
} chunk_job;

static void chunk_done(int r, const char *key, void *z, size_t zlen, void *userdata)
{
        chunk_job *j = userdata;
        assembly *a = j->a;
        _cleanup_free_ void *buf = NULL;
        size_t len;

        /* after a failure the blob is lost anyway: one line says why */
        if (a->r < 0) {
                free(z);
                return;
        }
        if (r >= 0)
                r = decode_chunk(a->rb, key, z, zlen, &a->chunks[j->i].digest, a->chunks[j->i].size,
                                 &buf, &len);
        else
                r = r == -ENOENT ? cas_log_errno(CAS_LOG_ERR, -EBADMSG, "%s: chunk %s is missing",
                                                 where(a->rb), key)
                                 : transfer_failed(a->rb, r, key);
        free(z);
        if (r >= 0 && a->r >= 0)
                memcpy(a->map + a->offsets[j->i], buf, len);
        if (r < 0 && a->r >= 0)
                a->r = r;
}

/* The index of the blob d (of size bytes, or UINT64_MAX): its chunks and
 * their total size. -ENOENT when there is none. */
static int get_index(remote_blobstore *rb, const cas_digest *d, uint64_t size, cas_chunk_ref **ret,
                     size_t *ret_n, uint64_t *ret_total)
{
        char key[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ void *buf = NULL;
        cas_layout_error e;
        size_t len;
        int r;

        cas_layout_key(CAS_LAYOUT_BLOBS, d, key);
        r = cas_objstore_get(rb->os, key, CAS_LAYOUT_BLOB_INDEX_MAX, &buf, &len);
        if (r < 0)
                return transfer_failed(rb, r, key);
        r = cas_layout_blob_index_decode(buf, len, size, ret, ret_n, ret_total, &e);
        if (r < 0)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: blob index %s is corrupt: %s", where(rb),
                                     key, e.reason);
        return 0;
}

/* A blob of several chunks: its index, then the chunks in parallel into a
 * memory file, then the whole blob against its digest. -ENOENT when there is
 * no index. */
static int open_index(remote_blobstore *rb, const cas_digest *d, uint64_t size,
                      cas_blob_reader **ret)
{
        char key[CAS_LAYOUT_KEY_MAX], ckey[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ cas_chunk_ref *chunks = NULL;
        _cleanup_free_ uint64_t *offsets = NULL;
        _cleanup_free_ chunk_job *jobs = NULL;
        _cleanup_close_ int fd = -1;
        size_t n;
        uint64_t total;
        int r;

        cas_layout_key(CAS_LAYOUT_BLOBS, d, key);
        r = get_index(rb, d, size, &chunks, &n, &total);
        if (r < 0)
                return r;
        if (total > SIZE_MAX / 2)
                return cas_log_errno(CAS_LOG_ERR, -EFBIG,
                                     "%s: blob %s of %" PRIu64 " bytes is too large", where(rb),
                                     key, total);
        offsets = calloc(n, sizeof(*offsets));
        jobs = calloc(n, sizeof(*jobs));
        if (!offsets || !jobs)
                return -ENOMEM;
        for (size_t i = 0, off = 0; i < n; off += chunks[i].size, i++)
                offsets[i] = off;
        fd = new_memfd(total);
        if (fd < 0)
                return fd;
        assembly a = {.rb = rb, .chunks = chunks, .offsets = offsets};
        a.map = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (a.map == MAP_FAILED)
                return -errno;
        cas_objstore_batch *b = NULL;
        r = cas_objstore_batch_new(rb->os, &b);
        for (size_t i = 0; r >= 0 && a.r >= 0 && i < n; i++) {
                jobs[i] = (chunk_job){&a, i};
                cas_layout_key(CAS_LAYOUT_CHUNKS, &chunks[i].digest, ckey);
                r = cas_objstore_batch_get(b, ckey, stored_max(chunks[i].size), chunk_done,
                                           &jobs[i]);
        }
        if (b) {
                int k = cas_objstore_batch_wait(b);
                if (r >= 0)
                        r = k;
                cas_objstore_batch_free(b);
        }
        if (r >= 0)
                r = a.r;
        if (r >= 0) {
                /* each chunk is right; their order and number are the index's word */
                cas_digest got;
                cas_digest_of(a.map, (size_t)total, &got);
                if (!cas_digest_eq(&got, d))
                        r = cas_log_errno(
                            CAS_LOG_ERR, -EBADMSG,
                            "%s: blob index %s is corrupt: its chunks do not make up the blob",
                            where(rb), key);
        }
        munmap(a.map, (size_t)total);
        if (r < 0)
                return r;
        return reader_take_memfd(&fd, total, ret);
}

static int remote_open_sized(cas_blobstore *bs, const cas_digest *d, uint64_t size,
                             cas_blob_reader **ret)
{
        remote_blobstore *rb = REMOTE(bs);
        int r;

        if (cas_digest_eq(d, &cas_digest_empty)) {
                if (size != 0 && size != UINT64_MAX)
                        return -EBADMSG;
                return reader_from_bytes("", 0, ret);
        }
        if (size != UINT64_MAX && size > SINGLE_CHUNK_LIKELY_MAX) {
                r = open_index(rb, d, size, ret);
                if (r == -ENOENT)
                        r = open_chunk(rb, d, size, ret);
        } else {
                r = open_chunk(rb, d, size, ret);
                if (r == -ENOENT)
                        r = open_index(rb, d, size, ret);
        }
        return r;
}

static int remote_parts(cas_blobstore *bs, const cas_digest *d, uint64_t size, cas_chunk_ref **ret,
                        size_t *ret_n)
{
        remote_blobstore *rb = REMOTE(bs);
        uint64_t total;

        if (cas_digest_eq(d, &cas_digest_empty) || has_object(rb, d, KNOWN_INDEX) <= 0)
                return 0; /* stored whole, as a chunk (or not at all) */
        return get_index(rb, d, size, ret, ret_n, &total);
}

static int remote_open(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret)
{
        return remote_open_sized(bs, d, UINT64_MAX, ret);
}

static int remote_stat(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size)
{
        /* sizes are not kept apart from the content: only a checked blob tells */
        _cleanup_(cas_blob_reader_freep) cas_blob_reader *rd = NULL;
        int r = remote_open(bs, d, &rd);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = cas_blob_reader_size(rd);
        return 0;
}

static int remote_has(cas_blobstore *bs, const cas_digest *d)
{
        remote_blobstore *rb = REMOTE(bs);
        int r;

        if (cas_digest_eq(d, &cas_digest_empty))
                return 1;
        /* a chunk of these bytes is the blob, whichever blob it was written for */
        r = has_object(rb, d, KNOWN_CHUNK);
        if (r == 0)
                r = has_object(rb, d, KNOWN_INDEX);
        return r;
}

/* ---- writing ---- */

typedef struct put_state {
        remote_blobstore *rb;
        int r;
} put_state;

static void put_done(int r, const char *key, void *buf, size_t len, void *userdata)
{
        put_state *p = userdata;
        if (r < 0 && p->r >= 0)
                p->r = transfer_failed(p->rb, r, key);
}

static int put_chunk(cas_objstore_batch *b, put_state *p, const cas_digest *d, const uint8_t *buf,
                     size_t n)
{
        char key[CAS_LAYOUT_KEY_MAX];
        void *z;
        size_t zlen;
        int r;

        r = has_object(p->rb, d, KNOWN_CHUNK);
        if (r != 0)
                return r < 0 ? r : 0;
        r = cas_layout_chunk_encode(buf, n, &z, &zlen);
        if (r < 0)
                return r;
        cas_layout_key(CAS_LAYOUT_CHUNKS, d, key);
        r = cas_objstore_batch_put(b, key, z, zlen, put_done, p);
        return r < 0 ? transfer_failed(p->rb, r, key) : 0;
}

/* Chunks the blob, sends the chunks the store lacks (compressed, several at
 * once), then, for a blob of several chunks, its index: a reader never finds
 * an index whose chunks are not all there. */
static int remote_put_buffer(cas_blobstore *bs, const cas_digest *d, const void *data, size_t n,
                             int *ret_existed)
{
        remote_blobstore *rb = REMOTE(bs);
        _cleanup_(cas_objstore_batch_freep) cas_objstore_batch *b = NULL;
        _cleanup_free_ cas_chunk_ref *chunks = NULL;
        const uint8_t *buf = data;
        size_t n_chunks = 0, alloc = 0;
        put_state p = {rb, 0};
        int r;

        if (n == 0) { /* the empty blob has no object */
                *ret_existed = 1;
                return 0;
        }
        /* there as a chunk or an index, whoever cut it */
        r = remote_has(bs, d);
        if (r != 0) {
                *ret_existed = r > 0;
                return r < 0 ? r : 0;
        }
        r = cas_objstore_batch_new(rb->os, &b);
        if (r < 0)
                return transfer_failed(rb, r, "batch");
        for (size_t off = 0; off < n && r >= 0 && p.r >= 0;) {
                size_t len = cas_chunker_next(buf + off, n - off);
                if (CAS_GROW(chunks, alloc, n_chunks, 16) < 0)
                        return -ENOMEM;
                if (len == n)
                        chunks[n_chunks].digest = *d; /* a single chunk: the blob itself */
                else
                        cas_digest_of(buf + off, len, &chunks[n_chunks].digest);
                chunks[n_chunks].size = len;
                r = put_chunk(b, &p, &chunks[n_chunks].digest, buf + off, len);
                n_chunks++;
                off += len;
        }
        if (r >= 0)
                r = cas_objstore_batch_wait(b);
        if (r >= 0)
                r = p.r;
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_chunks; i++)
                known_add(rb, &chunks[i].digest, KNOWN_CHUNK);
        if (n_chunks > 1) {
                char key[CAS_LAYOUT_KEY_MAX];
                _cleanup_free_ uint8_t *index = NULL;
                size_t len;
                r = cas_layout_blob_index_encode(chunks, n_chunks, &index, &len);
                if (r < 0)
                        return r;
                cas_layout_key(CAS_LAYOUT_BLOBS, d, key);
                r = cas_objstore_put(rb->os, key, index, len);
                if (r < 0)
                        return transfer_failed(rb, r, key);
                known_add(rb, d, KNOWN_INDEX);
        }
        *ret_existed = 0;
        return 0;
}

static int remote_put_file(cas_blobstore *bs, const cas_digest *d, int fd, uint64_t size,
                           int *ret_existed)
{
        void *map;
        int r;

        if (size == 0 || size > SIZE_MAX)
                return remote_put_buffer(bs, d, "", 0, ret_existed);
        map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return -errno;
        r = remote_put_buffer(bs, d, map, (size_t)size, ret_existed);
        munmap(map, (size_t)size);
        return r;
}

static int remote_sync(cas_blobstore *bs)
{
        return 0; /* every put is complete when it returns */
}

/* Every chunk and every blob index, each digest once, and the empty blob
 * (which has no object but is always there). The chunks of larger blobs are
 * blobs too (their digest is BLAKE3 of their bytes), so they are listed. */
static int remote_foreach(cas_blobstore *bs, cas_blob_cb cb, void *userdata)
{
        remote_blobstore *rb = REMOTE(bs);
        cas_digest_map copy = {0};
        size_t it = 0;
        cas_digest d;
        uint64_t v;
        int r;

        pthread_mutex_lock(&rb->lock);
        r = ensure_listed(rb);
        for (size_t i = 0; r >= 0 && cas_digest_map_next(&rb->known, &i, &d, &v);)
                r = cas_digest_map_put(&copy, &d, v);
        pthread_mutex_unlock(&rb->lock);
        if (r >= 0) /* the last put may say "new" */
                r = cb(&cas_digest_empty, 0, userdata);
        while (r == 0 && cas_digest_map_next(&copy, &it, &d, &v))
                if (!cas_digest_eq(&d, &cas_digest_empty))
                        r = cb(&d, CAS_BLOB_SIZE_UNKNOWN, userdata);
        cas_digest_map_done(&copy);
        return r;
}

static int remote_remove(cas_blobstore *bs, const cas_digest *d)
{
        /* chunks are shared between blobs, and nothing here knows by which */
        return -EOPNOTSUPP;
}

static int remote_put_outboard(cas_blobstore *bs, const cas_digest *d, const uint8_t *ob, size_t n)
{
        return 0; /* the layout has no outboards: readers check whole chunks */
}

static int remote_get_outboard(cas_blobstore *bs, const cas_digest *d, uint8_t *ob, size_t n)
{
        return -ENOENT;
}

static int remote_has_outboard(cas_blobstore *bs, const cas_digest *d, size_t n)
{
        return 0;
}

static void remote_free(cas_blobstore *bs)
{
        remote_blobstore *rb = REMOTE(bs);
        cas_digest_map_done(&rb->known);
        pthread_mutex_destroy(&rb->lock);
        free(rb);
}

static const blobstore_ops remote_ops = {
    .stat = remote_stat,
    .has = remote_has,
    .open = remote_open,
    .open_sized = remote_open_sized,
    .parts = remote_parts,
    .put_buffer = remote_put_buffer,
    .put_file = remote_put_file,
    .sync = remote_sync,
    .foreach = remote_foreach,
    .remove = remote_remove,
    .put_outboard = remote_put_outboard,
    .get_outboard = remote_get_outboard,
    .has_outboard = remote_has_outboard,
    .free = remote_free,
};

int cas_blobstore_open_remote(cas_objstore *os, cas_blobstore **ret)
{
        remote_blobstore *rb = calloc(1, sizeof(*rb));
        if (!rb)
                return -ENOMEM;
        rb->base.ops = &remote_ops;
        rb->base.dir_fd = -1; /* writers spill to memory files */
        rb->os = os;
        pthread_mutex_init(&rb->lock, NULL);
        *ret = &rb->base;
        return 0;
}
