/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The object-store layout: the chunker and the codecs of chunks, blob
 * indexes and directory closures, with what each must refuse. */
#include <zstd.h>

#include "chunker.h"
#include "layout.h"
#include "macro.h"
#include "tests.h"

static uint64_t rng = 0x1234567;

static void fill_random(uint8_t *buf, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                buf[i] = (uint8_t)(rng >> 24);
        }
}

/* The chunk lengths of a whole buffer. */
static size_t chunk_all(const uint8_t *buf, size_t n, size_t *lens, size_t max)
{
        size_t k = 0;
        for (size_t off = 0; off < n && k < max;) {
                size_t c = cas_chunker_next(buf + off, n - off);
                ASSERT(c > 0);
                lens[k++] = c;
                off += c;
        }
        return k;
}

static void test_chunker(void)
{
        const size_t n = 32u << 20;
        uint8_t *buf = malloc(n);
        size_t a[512], b[512], na, nb, sum = 0;

        ASSERT(buf);
        fill_random(buf, n);
        CHECK_RC(cas_chunker_next(buf, 0), 0);
        CHECK_RC(cas_chunker_next(buf, 1000), 1000);
        CHECK_RC(cas_chunker_next(buf, CAS_CHUNK_MIN), CAS_CHUNK_MIN);

        na = chunk_all(buf, n, a, ELEMENTS(a));
        nb = chunk_all(buf, n, b, ELEMENTS(b));
        CHECK(na == nb && memcmp(a, b, na * sizeof(size_t)) == 0); /* deterministic */
        bool bounds = true;
        for (size_t i = 0; i < na; i++) {
                sum += a[i];
                if (a[i] > CAS_CHUNK_MAX || (i + 1 < na && a[i] < CAS_CHUNK_MIN))
                        bounds = false;
        }
        CHECK(bounds);
        CHECK(sum == n);
        /* the average lands near the target, not at a bound */
        CHECK(n / na > 200 * 1024 && n / na < 400 * 1024);

        /* zeros never match the hash test: cut at the maximum */
        memset(buf, 0, 2 * CAS_CHUNK_MAX);
        CHECK_RC(cas_chunker_next(buf, 2 * CAS_CHUNK_MAX), CAS_CHUNK_MAX);
        fill_random(buf, n);
        na = chunk_all(buf, n, a, ELEMENTS(a));

        /* an edit in the middle (100 bytes inserted) changes the chunks
         * around it only: the same chunks (by digest) before and after */
        uint8_t *edited = malloc(n + 100);
        ASSERT(edited);
        memcpy(edited, buf, n / 2);
        fill_random(edited + n / 2, 100);
        memcpy(edited + n / 2 + 100, buf + n / 2, n - n / 2);
        nb = chunk_all(edited, n + 100, b, ELEMENTS(b));
        cas_digest da[512], db[512];
        size_t off = 0;
        for (size_t i = 0; i < na; off += a[i], i++)
                cas_digest_of(buf + off, a[i], &da[i]);
        off = 0;
        for (size_t i = 0; i < nb; off += b[i], i++)
                cas_digest_of(edited + off, b[i], &db[i]);
        size_t same_front = 0, same_back = 0;
        while (same_front < MIN(na, nb) && cas_digest_eq(&da[same_front], &db[same_front]))
                same_front++;
        while (same_back < MIN(na, nb) &&
               cas_digest_eq(&da[na - 1 - same_back], &db[nb - 1 - same_back]))
                same_back++;
        size_t front_bytes = 0;
        for (size_t i = 0; i < same_front; i++)
                front_bytes += a[i];
        CHECK(front_bytes <= n / 2 && front_bytes + CAS_CHUNK_MAX > n / 2);
        CHECK(na - same_front - same_back <= 3);
        CHECK(nb - same_front - same_back <= 3);
        CHECK(same_front + same_back + 3 >= na);
        free(edited);
        free(buf);
}

static void test_chunks(void)
{
        uint8_t data[5000];
        void *z, *out;
        size_t zlen, len;
        cas_digest d, other;
        cas_layout_error e;

        fill_random(data, sizeof(data));
        cas_digest_of(data, sizeof(data), &d);
        cas_digest_of(data, 10, &other);
        CHECK_RC(cas_layout_chunk_encode(data, sizeof(data), &z, &zlen), 0);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &d, sizeof(data), &out, &len, &e), 0);
        CHECK(len == sizeof(data) && memcmp(out, data, len) == 0);
        free(out);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &d, UINT64_MAX, &out, &len, &e), 0);
        free(out);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &other, sizeof(data), &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &d, sizeof(data) - 1, &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &d, sizeof(data) + 1, &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(z, zlen - 3, &d, sizeof(data), &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(data, 100, &d, sizeof(data), &out, &len, &e), -EBADMSG);
        free(z);

        /* a bomb: 100 MiB of zeros in a few KiB, stated size and not */
        size_t big = 100u << 20;
        uint8_t *zeros = calloc(1, big);
        ASSERT(zeros);
        cas_digest_of(zeros, big, &d);
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        size_t cap = ZSTD_compressBound(big);
        void *bomb = malloc(cap);
        ASSERT(cctx && bomb);
        /* without a content size in its header, as a streaming writer makes it */
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
        size_t blen = ZSTD_compress2(cctx, bomb, cap, zeros, big);
        ASSERT(!ZSTD_isError(blen));
        CHECK_RC(cas_layout_chunk_decode(bomb, blen, &d, 4096, &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(bomb, blen, &d, UINT64_MAX, &out, &len, &e), -EBADMSG);
        CHECK(strstr(e.reason, "more than") != NULL);
        /* a large chunk without a stated size, in one frame: fine */
        size_t mid = 5u << 20;
        uint8_t *data5 = malloc(mid);
        ASSERT(data5);
        for (size_t i = 0; i < mid; i++)
                data5[i] = (uint8_t)(i % 251 + (i >> 16));
        cas_digest d5;
        cas_digest_of(data5, mid, &d5);
        blen = ZSTD_compress2(cctx, bomb, cap, data5, mid);
        ASSERT(!ZSTD_isError(blen));
        CHECK_RC(cas_layout_chunk_decode(bomb, blen, &d5, UINT64_MAX, &out, &len, &e), 0);
        CHECK(len == mid && memcmp(out, data5, mid) == 0);
        free(out);
        CHECK_RC(cas_layout_chunk_decode(bomb, blen, &d5, mid, &out, &len, &e), 0);
        free(out);
        CHECK_RC(cas_layout_chunk_decode(bomb, blen, &d5, mid - 1, &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(bomb, blen / 2, &d5, UINT64_MAX, &out, &len, &e),
                 -EBADMSG);
        free(data5);
        /* and with it: refused before decompressing */
        CHECK_RC(cas_layout_chunk_encode(zeros, big, &z, &zlen), 0);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &d, 4096, &out, &len, &e), -EBADMSG);
        CHECK_RC(cas_layout_chunk_decode(z, zlen, &d, big, &out, &len, &e), 0);
        free(out);
        free(z);
        ZSTD_freeCCtx(cctx);
        free(bomb);
        free(zeros);
}

static void test_blob_index(void)
{
        cas_chunk_ref c[3], *got;
        uint8_t *buf;
        size_t len, n;
        uint64_t total;
        cas_layout_error e;

        for (size_t i = 0; i < 3; i++) {
                fill_random(c[i].digest.bytes, CAS_DIGEST_SIZE);
                c[i].size = 1000 * (i + 1);
        }
        CHECK_RC(cas_layout_blob_index_encode(c, 3, &buf, &len), 0);
        CHECK_RC(cas_layout_blob_index_decode(buf, len, 6000, &got, &n, &total, &e), 0);
        CHECK(n == 3 && total == 6000 && memcmp(got, c, sizeof(c)) == 0);
        free(got);
        CHECK_RC(cas_layout_blob_index_decode(buf, len, UINT64_MAX, &got, &n, &total, &e), 0);
        CHECK(total == 6000);
        free(got);
        /* sizes that do not add up to the file's */
        CHECK_RC(cas_layout_blob_index_decode(buf, len, 6001, &got, &n, &total, &e), -EBADMSG);
        CHECK(strstr(e.reason, "add up") != NULL);
        CHECK_RC(cas_layout_blob_index_decode(buf, len - 1, 6000, &got, &n, &total, &e), -EBADMSG);
        free(buf);
        /* no chunk; an empty chunk; overflowing sizes */
        CHECK_RC(cas_layout_blob_index_encode(c, 0, &buf, &len), 0);
        CHECK_RC(cas_layout_blob_index_decode(buf, len, 0, &got, &n, &total, &e), -EBADMSG);
        free(buf);
        c[1].size = 0;
        CHECK_RC(cas_layout_blob_index_encode(c, 3, &buf, &len), 0);
        CHECK_RC(cas_layout_blob_index_decode(buf, len, 4000, &got, &n, &total, &e), -EBADMSG);
        free(buf);
        c[1].size = UINT64_MAX - 100;
        CHECK_RC(cas_layout_blob_index_encode(c, 3, &buf, &len), 0);
        CHECK_RC(cas_layout_blob_index_decode(buf, len, UINT64_MAX, &got, &n, &total, &e),
                 -EBADMSG);
        free(buf);
        /* a digest of 31 bytes: chunks { digest: 31 bytes, size: 5 } */
        uint8_t short_digest[2 + 2 + 31 + 2] = {0x12, 35, 0x0a, 31};
        short_digest[4 + 31] = 0x10;
        short_digest[4 + 32] = 5;
        CHECK_RC(cas_layout_blob_index_decode(short_digest, sizeof(short_digest), 5, &got, &n,
                                              &total, &e),
                 -EBADMSG);
        /* not protobuf; larger than allowed */
        CHECK_RC(cas_layout_blob_index_decode("\xff\xff\xff", 3, 5, &got, &n, &total, &e),
                 -EBADMSG);
        CHECK_RC(cas_layout_blob_index_decode(short_digest, CAS_LAYOUT_BLOB_INDEX_MAX + 1, 5, &got,
                                              &n, &total, &e),
                 -EBADMSG);
}

/* ---- directory closures ---- */

typedef struct dirset {
        cas_digest d[8];
        uint8_t *buf[8];
        size_t len[8];
        size_t n;
} dirset;

static cas_digest add_dir(dirset *s, const cas_node *nodes, size_t n)
{
        cas_directory *dir;
        ASSERT(cas_directory_build(nodes, n, &dir) == 0);
        ASSERT(cas_directory_encode(dir, &s->buf[s->n], &s->len[s->n]) == 0);
        cas_digest_of(s->buf[s->n], s->len[s->n], &s->d[s->n]);
        free(dir);
        return s->d[s->n++];
}

static int lookup(const cas_digest *d, const void **ret, size_t *ret_len, void *userdata)
{
        dirset *s = userdata;
        for (size_t i = 0; i < s->n; i++)
                if (cas_digest_eq(&s->d[i], d)) {
                        *ret = s->buf[i] ? s->buf[i] : (const void *)"";
                        *ret_len = s->len[i];
                        return 0;
                }
        return -ENOENT;
}

static int count_cb(const cas_digest *d, const void *buf, size_t len, void *userdata)
{
        (*(size_t *)userdata)++;
        return 0;
}

static cas_node node(cas_node_type t, const char *name, const cas_digest *d, uint64_t size)
{
        cas_node n = {.type = t, .name = name, .name_len = (uint32_t)strlen(name), .size = size};
        if (d)
                n.digest = *d;
        if (t == CAS_NODE_SYMLINK)
                n.target = "t", n.target_len = 1;
        return n;
}

/* A stored closure made of the frames of s given by index (-1 ends). */
static void *frames(dirset *s, const int *which, size_t cut, size_t *ret_len)
{
        uint8_t raw[8192];
        size_t len = 0;
        for (const int *w = which; *w >= 0; w++) {
                size_t l = s->len[*w];
                raw[len++] = (uint8_t)(l >> 24), raw[len++] = (uint8_t)(l >> 16);
                raw[len++] = (uint8_t)(l >> 8), raw[len++] = (uint8_t)l;
                memcpy(raw + len, s->buf[*w] ? s->buf[*w] : (uint8_t *)"", l);
                len += l;
        }
        len -= cut;
        size_t cap = ZSTD_compressBound(len);
        void *z = malloc(cap);
        ASSERT(z);
        *ret_len = ZSTD_compress(z, cap, raw, len, 3);
        return z;
}

static void test_dirs(void)
{
        dirset s = {0};
        cas_digest blob;
        cas_layout_error e;
        void *z;
        size_t zlen, count;

        cas_digest_of("x", 1, &blob);
        cas_node leaf[] = {node(CAS_NODE_FILE, "f", &blob, 1),
                           node(CAS_NODE_SYMLINK, "l", NULL, 0)};
        cas_digest c = add_dir(&s, leaf, 2); /* 0: size 2 */
        cas_node mid[] = {node(CAS_NODE_DIRECTORY, "c", &c, 2)};
        cas_digest b = add_dir(&s, mid, 1); /* 1: size 3 */
        cas_node top[] = {node(CAS_NODE_DIRECTORY, "b", &b, 3),
                          node(CAS_NODE_DIRECTORY, "c", &c, 2)};
        cas_digest a = add_dir(&s, top, 2); /* 2 */
        cas_node other[] = {node(CAS_NODE_FILE, "g", &blob, 1)};
        (void)add_dir(&s, other, 1); /* 3: unrelated */
        cas_node wrong[] = {node(CAS_NODE_DIRECTORY, "b", &b, 4)};
        cas_digest w = add_dir(&s, wrong, 1); /* 4: wrong size */

        CHECK_RC(cas_layout_dirs_encode(&a, lookup, &s, &z, &zlen), 0);
        count = 0;
        CHECK_RC(cas_layout_dirs_decode(z, zlen, &a, count_cb, &count, &e), 0);
        CHECK(count == 3); /* c once, though named twice */
        /* the same bytes under another top */
        CHECK_RC(cas_layout_dirs_decode(z, zlen, &b, count_cb, &count, &e), -EBADMSG);
        CHECK_RC(cas_layout_dirs_decode(z, zlen - 2, &a, count_cb, &count, &e), -EBADMSG);
        free(z);
        CHECK_RC(cas_layout_dirs_encode(&w, lookup, &s, &z, &zlen), 0);
        count = 0;
        CHECK_RC(cas_layout_dirs_decode(z, zlen, &w, count_cb, &count, &e), -EBADMSG);
        CHECK(count == 0 && strstr(e.reason, "size") != NULL);
        free(z);
        cas_digest unknown;
        cas_digest_of("nothing", 7, &unknown);
        CHECK_RC(cas_layout_dirs_encode(&unknown, lookup, &s, &z, &zlen), -ENOENT);

        static const int good[] = {2, 1, 0, -1}, untrusted[] = {2, 1, 0, 3, -1},
                         dup[] = {2, 1, 0, 0, -1}, child_first[] = {2, 0, 1, -1},
                         missing[] = {2, 1, -1}, top_late[] = {1, 2, 0, -1};
        struct {
                const int *which;
                size_t cut;
                int want;
                const char *why;
        } cases[] = {
            {good, 0, 0, NULL},
            {child_first, 0, 0, NULL}, /* c is named by a (accepted) already */
            {untrusted, 0, -EBADMSG, "named by no"},
            {dup, 0, -EBADMSG, "twice"},
            {missing, 0, -EBADMSG, "missing"},
            {top_late, 0, -EBADMSG, "top"},
            {good, 1, -EBADMSG, "cut short"},
        };
        for (size_t i = 0; i < ELEMENTS(cases); i++) {
                z = frames(&s, cases[i].which, cases[i].cut, &zlen);
                count = 0;
                memset(&e, 0, sizeof(e));
                CHECK_RC(cas_layout_dirs_decode(z, zlen, &a, count_cb, &count, &e), cases[i].want);
                if (cases[i].why) {
                        CHECK(count == 0);
                        CHECK(strstr(e.reason, cases[i].why) != NULL);
                }
                free(z);
        }

        /* not canonical: DirectoryNode with size written as a two-byte varint */
        uint8_t nc[64];
        size_t ncl = 0;
        nc[ncl++] = 0x0a, nc[ncl++] = 2 + 1 + 2 + 32 + 1 + 2;
        nc[ncl++] = 0x0a, nc[ncl++] = 1, nc[ncl++] = 'b';
        nc[ncl++] = 0x12, nc[ncl++] = 32;
        memcpy(nc + ncl, b.bytes, 32), ncl += 32;
        nc[ncl++] = 0x18, nc[ncl++] = 0x83, nc[ncl++] = 0x00;
        dirset s2 = {.n = 3};
        s2.buf[0] = nc, s2.len[0] = ncl;
        cas_digest_of(nc, ncl, &s2.d[0]);
        s2.buf[1] = s.buf[1], s2.len[1] = s.len[1], s2.d[1] = s.d[1];
        s2.buf[2] = s.buf[0], s2.len[2] = s.len[0], s2.d[2] = s.d[0];
        static const int nc_order[] = {0, 1, 2, -1};
        z = frames(&s2, nc_order, 0, &zlen);
        CHECK_RC(cas_layout_dirs_decode(z, zlen, &s2.d[0], count_cb, &count, &e), -EBADMSG);
        CHECK(strstr(e.reason, "canonical") != NULL || strstr(e.reason, "encode") != NULL);
        free(z);
        /* not zstd at all */
        CHECK_RC(cas_layout_dirs_decode("hello", 5, &a, count_cb, &count, &e), -EBADMSG);

        for (size_t i = 0; i < s.n; i++)
                free(s.buf[i]);
}

static void test_keys(void)
{
        char key[CAS_LAYOUT_KEY_MAX];
        cas_digest d, got;

        cas_digest_of("abc", 3, &d);
        cas_layout_key(CAS_LAYOUT_CHUNKS, &d, key);
        CHECK_STR(
            key, "chunks/b3/6437/6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        CHECK_RC(cas_layout_parse_key(key, CAS_LAYOUT_CHUNKS, &got), 0);
        CHECK(cas_digest_eq(&got, &d));
        CHECK_RC(cas_layout_parse_key(key, CAS_LAYOUT_BLOBS, &got), -EINVAL);
        key[10] = '0';
        CHECK_RC(cas_layout_parse_key(key, CAS_LAYOUT_CHUNKS, &got), -EINVAL);
        CHECK_RC(cas_layout_parse_key("chunks/b3/6437/x", CAS_LAYOUT_CHUNKS, &got), -EINVAL);
}

int main(void)
{
        test_keys();
        test_chunker();
        test_chunks();
        test_blob_index();
        test_dirs();
        return tests_finish("test-layout");
}
