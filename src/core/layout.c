/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <zstd.h>

#include "castore_blob.pb-c.h"
#include "digestmap.h"
#include "layout.h"
#include "macro.h"

/* zstd's level 3 (its default): about 3x faster than level 9 for a few
 * percent more bytes; remote stores are fed over networks slower than it. */
#define ZSTD_LEVEL 3
/* Fewer chunks than this in a blob index need no more checking than more. */
#define BLOB_INDEX_CHUNKS_MAX (CAS_LAYOUT_BLOB_INDEX_MAX / 36)

_printf_(2, 3) static int refuse(cas_layout_error *e, const char *fmt, ...)
{
        va_list ap;

        if (e) {
                va_start(ap, fmt);
                vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

/* ---- keys ---- */

void cas_layout_key(const char *prefix, const cas_digest *d, char key[static CAS_LAYOUT_KEY_MAX])
{
        char hex[CAS_DIGEST_HEX_MAX];

        cas_digest_to_hex(d, hex);
        snprintf(key, CAS_LAYOUT_KEY_MAX, "%s%.4s/%s", prefix, hex, hex);
}

int cas_layout_parse_key(const char *key, const char *prefix, cas_digest *ret)
{
        size_t pl = strlen(prefix);
        const char *s = key + pl;
        cas_digest d;

        if (strncmp(key, prefix, pl) != 0 || strlen(s) != 4 + 1 + 64 || s[4] != '/')
                return -EINVAL;
        for (size_t i = 0; i < 69; i++)
                if (i != 4 && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return -EINVAL;
        if (memcmp(s, s + 5, 4) != 0 || cas_digest_parse(s + 5, &d) < 0)
                return -EINVAL;
        *ret = d;
        return 0;
}

int cas_layout_root_key(const char *name, char **ret)
{
        return asprintf(ret, "%s%s", CAS_LAYOUT_ROOTS, name) < 0 ? -ENOMEM : 0;
}

/* ---- zstd ---- */

/* The thread's zstd contexts, each made on its first use and freed with
 * the thread: making one per chunk cost more than decompressing a small
 * chunk. */
typedef struct zstd_contexts {
        ZSTD_CCtx *c;
        ZSTD_DCtx *d;
} zstd_contexts;

static pthread_key_t contexts_key;
static pthread_once_t contexts_once = PTHREAD_ONCE_INIT;

static void contexts_free(void *p)
{
        zstd_contexts *z = p;
        ZSTD_freeCCtx(z->c);
        ZSTD_freeDCtx(z->d);
        free(z);
}

static void contexts_key_create(void)
{
        (void)pthread_key_create(&contexts_key, contexts_free);
}

static zstd_contexts *thread_contexts(void)
{
        pthread_once(&contexts_once, contexts_key_create);
        zstd_contexts *z = pthread_getspecific(contexts_key);
        if (!z && (z = calloc(1, sizeof(*z))) && pthread_setspecific(contexts_key, z) != 0) {
                free(z);
                z = NULL;
        }
        return z;
}

static int zstd_compress(const void *buf, size_t n, void **ret, size_t *ret_len)
{
        size_t cap = ZSTD_compressBound(n), k;
        zstd_contexts *z = thread_contexts();
        void *out = malloc(cap ?: 1);

        if (z && !z->c)
                z->c = ZSTD_createCCtx();
        if (!out || !z || !z->c) {
                free(out);
                return -ENOMEM;
        }
        /* one frame that states its content size: readers can refuse a
         * chunk that claims another size before decompressing anything */
        k = ZSTD_compressCCtx(z->c, out, cap, buf, n, ZSTD_LEVEL);
        if (ZSTD_isError(k)) {
                free(out);
                return -EIO;
        }
        *ret = out;
        *ret_len = k;
        return 0;
}

/* Decompresses the whole input (one or more frames), producing at most
 * limit bytes: a stream that would produce more is refused as soon as it
 * does, without producing the rest (no zstd bombs). */
static int zstd_decompress(const void *z, size_t zlen, size_t limit, void **ret, size_t *ret_len,
                           cas_layout_error *e)
{
        _cleanup_free_ uint8_t *out = NULL;
        unsigned long long stated = ZSTD_getFrameContentSize(z, zlen);
        size_t cap, got = 0, k = 1;
        zstd_contexts *zc = thread_contexts();
        ZSTD_DCtx *dctx;
        ZSTD_inBuffer in = {z, zlen, 0};

        if (stated == ZSTD_CONTENTSIZE_ERROR)
                return refuse(e, "not zstd-compressed data");
        if (stated != ZSTD_CONTENTSIZE_UNKNOWN && stated > limit)
                return refuse(e, "decompresses to %llu bytes, more than the %zu allowed", stated,
                              limit);
        /* room for one byte more than allowed, so that too much shows */
        cap = stated != ZSTD_CONTENTSIZE_UNKNOWN ? (size_t)stated + 1
                                                 : MIN(limit, (size_t)1 << 20) + 1;
        out = malloc(cap);
        if (!out)
                return -ENOMEM;
        if (zc && !zc->d)
                zc->d = ZSTD_createDCtx();
        if (!zc || !zc->d)
                return -ENOMEM;
        dctx = zc->d;
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only); /* no frame begun */
        for (;;) {
                if (got == cap) {
                        size_t ncap = cap > limit / 2 ? limit + 1 : cap * 2;
                        uint8_t *n = ncap > cap ? realloc(out, ncap) : NULL;
                        if (!n) {
                                return ncap > cap ? -ENOMEM
                                                  : refuse(e, "decompresses to more than %zu bytes",
                                                           limit);
                        }
                        out = n;
                        cap = ncap;
                }
                ZSTD_outBuffer ob = {out, cap, got};
                k = ZSTD_decompressStream(dctx, &ob, &in);
                got = ob.pos;
                if (ZSTD_isError(k))
                        return refuse(e, "zstd: %s", ZSTD_getErrorName(k));
                if (got > limit)
                        return refuse(e, "decompresses to more than %zu bytes", limit);
                /* done: all input taken, the last frame complete; or
                 * stuck: all input taken, room left, a frame unfinished.
                 * A full buffer may hold back more output: go on. */
                if (in.pos == in.size && (k == 0 || got < cap))
                        break;
        }
        if (k != 0)
                return refuse(e, "truncated zstd data");
        *ret = TAKE_PTR(out);
        *ret_len = got;
        return 0;
}

/* ---- chunks ---- */

int cas_layout_chunk_encode(const void *buf, size_t n, void **ret, size_t *ret_len)
{
        return zstd_compress(buf, n, ret, ret_len);
}

int cas_layout_chunk_decode(const void *z, size_t zlen, const cas_digest *d, uint64_t size,
                            void **ret, size_t *ret_len, cas_layout_error *e)
{
        _cleanup_free_ void *out = NULL;
        size_t limit = size == UINT64_MAX ? CAS_LAYOUT_CHUNK_UNKNOWN_MAX
                                          : (size_t)MIN(size, (uint64_t)SIZE_MAX - 1);
        size_t len;
        cas_digest got;
        int r;

        r = zstd_decompress(z, zlen, limit, &out, &len, e);
        if (r < 0)
                return r;
        if (size != UINT64_MAX && len != size)
                return refuse(e, "has %zu bytes, its reference says %" PRIu64, len, size);
        cas_digest_of(out, len, &got);
        if (!cas_digest_eq(&got, d))
                return refuse(e, "its bytes do not match its digest");
        *ret = TAKE_PTR(out);
        *ret_len = len;
        return 0;
}

/* ---- blob indexes ---- */

int cas_layout_blob_index_encode(const cas_chunk_ref *chunks, size_t n, uint8_t **ret,
                                 size_t *ret_len)
{
        Tvix__Castore__V1__StatBlobResponse m = TVIX__CASTORE__V1__STAT_BLOB_RESPONSE__INIT;
        _cleanup_free_ Tvix__Castore__V1__StatBlobResponse__ChunkMeta *metas =
            calloc(n ?: 1, sizeof(*metas));
        _cleanup_free_ Tvix__Castore__V1__StatBlobResponse__ChunkMeta **ptrs =
            calloc(n ?: 1, sizeof(*ptrs));
        uint8_t *out;
        size_t len;

        if (!metas || !ptrs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                tvix__castore__v1__stat_blob_response__chunk_meta__init(&metas[i]);
                metas[i].digest.data = (uint8_t *)chunks[i].digest.bytes;
                metas[i].digest.len = CAS_DIGEST_SIZE;
                metas[i].size = chunks[i].size;
                ptrs[i] = &metas[i];
        }
        m.n_chunks = n;
        m.chunks = ptrs;
        len = tvix__castore__v1__stat_blob_response__get_packed_size(&m);
        out = malloc(len ?: 1);
        if (!out)
                return -ENOMEM;
        tvix__castore__v1__stat_blob_response__pack(&m, out);
        *ret = out;
        *ret_len = len;
        return 0;
}

int cas_layout_blob_index_decode(const void *buf, size_t len, uint64_t size, cas_chunk_ref **ret,
                                 size_t *ret_n, uint64_t *ret_size, cas_layout_error *e)
{
        Tvix__Castore__V1__StatBlobResponse *m;
        _cleanup_free_ cas_chunk_ref *chunks = NULL;
        uint64_t total = 0;
        size_t n;
        int r = 0;

        if (len > CAS_LAYOUT_BLOB_INDEX_MAX)
                return refuse(e, "blob index of %zu bytes, more than allowed", len);
        m = tvix__castore__v1__stat_blob_response__unpack(NULL, len, buf);
        if (!m)
                return refuse(e, "not a blob index (protobuf StatBlobResponse)");
        n = m->n_chunks;
        if (n == 0 || n > BLOB_INDEX_CHUNKS_MAX) {
                r = refuse(e, "blob index with %zu chunks", n);
                goto finish;
        }
        chunks = calloc(n, sizeof(*chunks));
        if (!chunks) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                const Tvix__Castore__V1__StatBlobResponse__ChunkMeta *c = m->chunks[i];
                if (c->digest.len != CAS_DIGEST_SIZE) {
                        r = refuse(e, "chunk %zu has a digest of %zu bytes", i, c->digest.len);
                        goto finish;
                }
                if (c->size == 0) {
                        r = refuse(e, "chunk %zu is empty", i);
                        goto finish;
                }
                if (__builtin_add_overflow(total, c->size, &total)) {
                        r = refuse(e, "chunk sizes overflow");
                        goto finish;
                }
                memcpy(chunks[i].digest.bytes, c->digest.data, CAS_DIGEST_SIZE);
                chunks[i].size = c->size;
        }
        if (size != UINT64_MAX && total != size) {
                r = refuse(e, "chunk sizes add up to %" PRIu64 " bytes, the blob has %" PRIu64,
                           total, size);
                goto finish;
        }
        *ret = TAKE_PTR(chunks);
        *ret_n = n;
        if (ret_size)
                *ret_size = total;
finish:
        tvix__castore__v1__stat_blob_response__free_unpacked(m, NULL);
        return r;
}

/* ---- frames: u32 big-endian length, then that many bytes ---- */

typedef struct frame_buf {
        uint8_t *data;
        size_t len, alloc;
} frame_buf;

static int frame_append(frame_buf *f, const void *buf, size_t len)
{
        if (len > UINT32_MAX)
                return -E2BIG;
        if (f->len + 4 + len > f->alloc) {
                size_t na = MAX(f->alloc * 2, f->len + 4 + len + 4096);
                uint8_t *n = realloc(f->data, na);
                if (!n)
                        return -ENOMEM;
                f->data = n;
                f->alloc = na;
        }
        f->data[f->len++] = (uint8_t)(len >> 24);
        f->data[f->len++] = (uint8_t)(len >> 16);
        f->data[f->len++] = (uint8_t)(len >> 8);
        f->data[f->len++] = (uint8_t)len;
        if (len)
                memcpy(f->data + f->len, buf, len);
        f->len += len;
        return 0;
}

/* The next frame at *pos: 1 with it, 0 at the end, -EBADMSG when cut short. */
static int frame_next(const uint8_t *buf, size_t len, size_t *pos, const uint8_t **ret,
                      size_t *ret_len)
{
        size_t p = *pos;
        uint32_t n;

        if (p == len)
                return 0;
        if (len - p < 4)
                return -EBADMSG;
        n = (uint32_t)buf[p] << 24 | (uint32_t)buf[p + 1] << 16 | (uint32_t)buf[p + 2] << 8 |
            buf[p + 3];
        p += 4;
        if (n > len - p)
                return -EBADMSG;
        *ret = buf + p;
        *ret_len = n;
        *pos = p + n;
        return 1;
}

/* ---- directory closures ---- */

int cas_layout_dirs_encode(const cas_digest *top, cas_layout_dir_lookup lookup, void *userdata,
                           void **ret, size_t *ret_len)
{
        cas_digest_queue q = {0};
        frame_buf f = {0};
        cas_digest d;
        int r;

        r = cas_digest_queue_push(&q, top);
        while (r >= 0 && cas_digest_queue_pop(&q, &d)) {
                _cleanup_free_ cas_directory *dir = NULL;
                const void *buf;
                size_t len;

                r = lookup(&d, &buf, &len, userdata);
                if (r < 0)
                        break;
                r = cas_directory_decode(buf, len, &dir, NULL);
                if (r >= 0)
                        r = frame_append(&f, buf, len);
                for (size_t i = 0; r >= 0 && i < dir->n_directories; i++)
                        r = cas_digest_queue_push(&q, &dir->directories[i].digest);
        }
        if (r >= 0)
                r = zstd_compress(f.data, f.len, ret, ret_len);
        free(f.data);
        cas_digest_queue_done(&q);
        return r;
}

int cas_layout_dirs_decode(const void *z, size_t zlen, const cas_digest *top, cas_layout_dir_cb cb,
                           void *userdata, cas_layout_error *e)
{
        _cleanup_free_ uint8_t *raw = NULL;
        _cleanup_free_ const uint8_t **bufs = NULL;
        _cleanup_free_ size_t *lens = NULL;
        _cleanup_free_ cas_digest *digests = NULL;
        _cleanup_free_ uint64_t *sizes = NULL;
        cas_digest_map named = {0};    /* digest -> 1 named by an accepted frame, 2 accepted */
        cas_digest_map accepted = {0}; /* digest -> index of its frame */
        size_t raw_len, pos = 0, n = 0, alloc = 0;
        char text[CAS_DIGEST_TEXT_MAX];
        int r;

        if (zlen > CAS_LAYOUT_DIRS_STORED_MAX)
                return refuse(e, "directory closure of %zu bytes, more than allowed", zlen);
        r = zstd_decompress(z, zlen, CAS_LAYOUT_DIRS_MAX, (void **)&raw, &raw_len, e);
        if (r < 0)
                return r;
        r = cas_digest_map_put(&named, top, 1);
        if (r < 0)
                goto finish;
        for (;;) {
                _cleanup_free_ cas_directory *dir = NULL;
                const uint8_t *buf;
                size_t len;
                cas_digest d;
                cas_error err;
                uint64_t state = 0;

                r = frame_next(raw, raw_len, &pos, &buf, &len);
                if (r == 0)
                        break;
                if (r < 0) {
                        r = refuse(e, "directory frame %zu is cut short", n);
                        goto finish;
                }
                cas_digest_of(buf, len, &d);
                if (n == 0 && !cas_digest_eq(&d, top)) {
                        r = refuse(e, "the first directory is %s, not the closure's top",
                                   cas_digest_to_text(&d, text));
                        goto finish;
                }
                if (!cas_digest_map_get(&named, &d, &state)) {
                        r = refuse(e, "directory frame %zu (%s) is named by no directory before it",
                                   n, cas_digest_to_text(&d, text));
                        goto finish;
                }
                if (state == 2) {
                        r = refuse(e, "directory %s appears twice", cas_digest_to_text(&d, text));
                        goto finish;
                }
                r = cas_directory_decode(buf, len, &dir, &err);
                if (r < 0) {
                        char why[200];
                        r = refuse(e, "directory %s: %s", cas_digest_to_text(&d, text),
                                   cas_error_format(&err, why, sizeof(why)));
                        goto finish;
                }
                if (n == alloc) {
                        size_t na = alloc ? alloc * 2 : 64;
                        const uint8_t **nb = realloc(bufs, na * sizeof(*nb));
                        if (nb)
                                bufs = nb;
                        size_t *nl = realloc(lens, na * sizeof(*nl));
                        if (nl)
                                lens = nl;
                        cas_digest *nd = realloc(digests, na * sizeof(*nd));
                        if (nd)
                                digests = nd;
                        uint64_t *ns = realloc(sizes, na * sizeof(*ns));
                        if (ns)
                                sizes = ns;
                        if (!nb || !nl || !nd || !ns) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        alloc = na;
                }
                bufs[n] = buf;
                lens[n] = len;
                digests[n] = d;
                (void)cas_directory_size(dir, &sizes[n]); /* validated: no overflow */
                r = cas_digest_map_put(&named, &d, 2);
                if (r >= 0)
                        r = cas_digest_map_put(&accepted, &d, n);
                for (size_t i = 0; r >= 0 && i < dir->n_directories; i++)
                        if (!cas_digest_map_get(&named, &dir->directories[i].digest, NULL))
                                r = cas_digest_map_put(&named, &dir->directories[i].digest, 1);
                if (r < 0)
                        goto finish;
                n++;
        }
        if (n == 0) {
                r = refuse(e, "no directory in the closure");
                goto finish;
        }
        /* complete, and every size right: the children came after their
         * parents, so this is checked once all are in */
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ cas_directory *dir = NULL;
                r = cas_directory_decode(bufs[k], lens[k], &dir, NULL);
                if (r < 0)
                        goto finish;
                for (size_t i = 0; i < dir->n_directories; i++) {
                        const cas_node *c = &dir->directories[i];
                        uint64_t idx;
                        if (!cas_digest_map_get(&accepted, &c->digest, &idx)) {
                                r = refuse(e, "directory %s is missing from the closure",
                                           cas_digest_to_text(&c->digest, text));
                                goto finish;
                        }
                        if (sizes[idx] != c->size) {
                                r = refuse(e,
                                           "entry '%.*s' of %s has size %" PRIu64
                                           ", its directory %" PRIu64,
                                           (int)MIN(c->name_len, 64u), c->name,
                                           cas_digest_to_text(&digests[k], text), c->size,
                                           sizes[idx]);
                                goto finish;
                        }
                }
        }
        for (size_t k = 0; k < n; k++) {
                r = cb(&digests[k], bufs[k], lens[k], userdata);
                if (r != 0)
                        goto finish;
        }
        r = 0;
finish:
        cas_digest_map_done(&named);
        cas_digest_map_done(&accepted);
        return r;
}

/* ---- the roots index ---- */

int cas_layout_roots_index_encode(uint8_t *const *nodes, const size_t *lens, size_t n,
                                  uint8_t **ret, size_t *ret_len)
{
        frame_buf f = {0};
        int r;

        for (size_t i = 0; i < n; i++) {
                r = frame_append(&f, nodes[i], lens[i]);
                if (r < 0) {
                        free(f.data);
                        return r;
                }
        }
        *ret = f.data ? f.data : calloc(1, 1);
        if (!*ret)
                return -ENOMEM;
        *ret_len = f.len;
        return 0;
}

int cas_layout_roots_index_decode(const void *buf, size_t len,
                                  int (*cb)(const void *node, size_t len, void *userdata),
                                  void *userdata)
{
        size_t pos = 0;
        int r;

        if (len > CAS_LAYOUT_ROOTS_INDEX_MAX)
                return -EBADMSG;
        for (;;) {
                const uint8_t *node;
                size_t n;
                r = frame_next(buf, len, &pos, &node, &n);
                if (r <= 0)
                        return r;
                r = cb(node, n, userdata);
                if (r != 0)
                        return r;
        }
}
