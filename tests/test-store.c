/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <unistd.h>

#include "macro.h"
#include "fixtures.h"
#include "store.h"
#include "tests.h"

static void test_blobs(cas_blobstore *bs)
{
        cas_digest d, d2, want;
        uint64_t size;
        int existed = -1;

        /* small, deduplicated */
        CHECK_RC(cas_blobstore_put(bs, "Hello World!", 12, &d), 0);
        cas_digest_of("Hello World!", 12, &want);
        CHECK(cas_digest_eq(&d, &want));
        CHECK_RC(cas_blobstore_stat(bs, &d, &size), 0);
        CHECK_RC(size, 12);

        cas_blob_writer *w;
        ASSERT(cas_blobstore_writer_new(bs, &w) == 0);
        CHECK_RC(cas_blob_writer_write(w, "Hello ", 6), 0);
        CHECK_RC(cas_blob_writer_write(w, "World!", 6), 0);
        CHECK_RC(cas_blob_writer_commit(w, &d2, &size, &existed), 0);
        CHECK(cas_digest_eq(&d, &d2));
        CHECK_RC(existed, 1);

        /* empty */
        CHECK_RC(cas_blobstore_put(bs, "", 0, &d2), 0);
        CHECK(cas_digest_eq(&d2, &cas_digest_empty));
        CHECK_RC(cas_blobstore_stat(bs, &cas_digest_empty, &size), 0);
        CHECK_RC(size, 0);

        /* large: spills out of memory while streaming, in odd pieces */
        size_t n = 3 * 1024 * 1024 + 17;
        uint8_t *big = malloc(n);
        ASSERT(big);
        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)(i * 7 + i / 1000);
        cas_digest_of(big, n, &want);
        ASSERT(cas_blobstore_writer_new(bs, &w) == 0);
        for (size_t off = 0; off < n;) {
                size_t k = MIN(n - off, (size_t)(100000 + off % 33333));
                CHECK_RC(cas_blob_writer_write(w, big + off, k), 0);
                off += k;
        }
        CHECK_RC(cas_blob_writer_commit(w, &d2, &size, &existed), 0);
        CHECK(cas_digest_eq(&d2, &want));
        CHECK_RC(existed, 0);
        CHECK_RC(size, n);

        cas_blob_reader *r;
        CHECK_RC(cas_blobstore_open(bs, &want, &r), 0);
        if (r) {
                uint8_t buf[5000];
                CHECK_RC(cas_blob_reader_size(r), n);
                CHECK_RC(cas_blob_reader_pread(r, buf, sizeof(buf), 1000000), sizeof(buf));
                CHECK(memcmp(buf, big + 1000000, sizeof(buf)) == 0);
                CHECK_RC(cas_blob_reader_pread(r, buf, sizeof(buf), n - 10), 10);
                CHECK(memcmp(buf, big + n - 10, 10) == 0);
                CHECK_RC(cas_blob_reader_pread(r, buf, sizeof(buf), n), 0);
                cas_blob_reader_free(r);
        }
        /* the same large blob again: not rewritten */
        ASSERT(cas_blobstore_writer_new(bs, &w) == 0);
        CHECK_RC(cas_blob_writer_write(w, big, n), 0);
        CHECK_RC(cas_blob_writer_commit(w, &d2, NULL, &existed), 0);
        CHECK_RC(existed, 1);
        /* aborted writers leave nothing */
        ASSERT(cas_blobstore_writer_new(bs, &w) == 0);
        CHECK_RC(cas_blob_writer_write(w, big, n - 1), 0);
        cas_blob_writer_abort(w);
        cas_digest_of(big, n - 1, &d2);
        CHECK_RC(cas_blobstore_stat(bs, &d2, NULL), -ENOENT);
        free(big);

        CHECK_RC(cas_blobstore_open(bs, &d2, &r), -ENOENT);
        CHECK_RC(cas_blobstore_remove(bs, &d), 0);
        CHECK_RC(cas_blobstore_stat(bs, &d, NULL), -ENOENT);
        CHECK_RC(cas_blobstore_sync(bs), 0);
}

static int count_cb(const cas_digest *d, uint64_t size, void *userdata)
{
        (*(int *)userdata)++;
        return 0;
}

static int count_root(const cas_node *n, void *userdata)
{
        (*(int *)userdata)++;
        return 0;
}

/* Counts the records of the root registry; lists the damaged ones' names. */
typedef struct root_records {
        int valid, damaged;
        char names[64];
} root_records;

static int record_cb(const char *name, const cas_node *n, int error, void *userdata)
{
        root_records *rr = userdata;
        if (n) {
                CHECK_RC(error, 0);
                CHECK_STR(n->name, name);
                rr->valid++;
        } else {
                CHECK_RC(error, -EBADMSG);
                rr->damaged++;
                snprintf(rr->names + strlen(rr->names), sizeof(rr->names) - strlen(rr->names), "%s ",
                         name);
        }
        return 0;
}

static int count_dir(const cas_digest *d, void *userdata)
{
        (*(int *)userdata)++;
        return 0;
}

static int walk_cb(const cas_digest *d, const cas_directory *dir, int error, void *userdata)
{
        if (!dir)
                return error;
        (*(int *)userdata)++;
        return 0;
}

static cas_directory *mkdir_nodes(const cas_node *nodes, size_t n)
{
        cas_directory *d;
        ASSERT(cas_directory_build(nodes, n, &d) == 0);
        return d;
}

static void test_meta(cas_metastore *ms)
{
        cas_digest a = cas_digest_empty, b, d, root;
        cas_error e;

        /* the vectors' DIRECTORY_A, _B, _D as one closure, leaves first */
        _cleanup_free_ cas_directory *A = mkdir_nodes(NULL, 0);
        cas_node nb[] = {dnode("a", &a, 0)};
        _cleanup_free_ cas_directory *B = mkdir_nodes(nb, 1);
        ASSERT(cas_directory_digest(B, &b) == 0);
        cas_node nd[] = {dnode("a", &a, 0), dnode("b", &b, 1)};
        _cleanup_free_ cas_directory *D = mkdir_nodes(nd, 2);
        ASSERT(cas_directory_digest(D, &d) == 0);

        /* must fail: a wrong size; nothing of the closure becomes visible */
        cas_node bad_size[] = {dnode("a", &a, 0), dnode("b", &b, 2)};
        _cleanup_free_ cas_directory *Dbad = mkdir_nodes(bad_size, 2);
        cas_directory *c1[] = {A, B, Dbad};
        CHECK_RC(cas_metastore_put_closure(ms, c1, 3, &root, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_SIZE_MISMATCH);
        CHECK_RC(cas_metastore_has_directory(ms, &b), 0);
        CHECK_RC(cas_metastore_has_directory(ms, &a), 0);

        /* must fail: a dangling reference (B missing) */
        cas_directory *c2[] = {A, D};
        CHECK_RC(cas_metastore_put_closure(ms, c2, 2, &root, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_DANGLING);
        CHECK_RC(cas_metastore_has_directory(ms, &a), 0);

        /* must fail: two unreferenced directories */
        cas_directory *c3[] = {A, B, D, Dbad};
        CHECK_RC(cas_metastore_put_closure(ms, c3, 3, &root, &e), 0); /* A, B, D is fine... */
        cas_node other[] = {dnode("x", &a, 0)};
        _cleanup_free_ cas_directory *X = mkdir_nodes(other, 1);
        cas_node other2[] = {dnode("y", &a, 0)};
        _cleanup_free_ cas_directory *Y = mkdir_nodes(other2, 1);
        cas_directory *c4[] = {X, Y};
        CHECK_RC(cas_metastore_put_closure(ms, c4, 2, &root, &e), -EBADMSG); /* ...two roots are not */
        CHECK_RC(e.code, CAS_ERR_ROOTS);
        cas_digest x;
        ASSERT(cas_directory_digest(X, &x) == 0);
        CHECK_RC(cas_metastore_has_directory(ms, &x), 0);

        /* the good closure went in; its root is D */
        CHECK_RC(cas_metastore_put_closure(ms, c3, 3, &root, &e), 0);
        CHECK(cas_digest_eq(&root, &d));
        CHECK_RC(cas_metastore_has_directory(ms, &d), 1);
        /* a closure may lean on what the store has */
        cas_node top[] = {dnode("d", &d, 3)};
        _cleanup_free_ cas_directory *T = mkdir_nodes(top, 1);
        cas_directory *c5[] = {T};
        CHECK_RC(cas_metastore_put_closure(ms, c5, 1, &root, &e), 0);
        /* and must still carry the right size for it */
        cas_node topbad[] = {dnode("d", &d, 4)};
        _cleanup_free_ cas_directory *Tb = mkdir_nodes(topbad, 1);
        cas_directory *c6[] = {Tb};
        CHECK_RC(cas_metastore_put_closure(ms, c6, 1, &root, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_SIZE_MISMATCH);

        _cleanup_free_ cas_directory *got = NULL;
        CHECK_RC(cas_metastore_get_directory(ms, &d, &got), 0);
        if (got)
                CHECK_RC(got->n_directories, 2);
        CHECK_RC(cas_metastore_get_directory(ms, &x, &got), -ENOENT);

        int visited = 0;
        cas_digest t;
        ASSERT(cas_directory_digest(T, &t) == 0);
        CHECK_RC(cas_metastore_walk(ms, &t, walk_cb, &visited), 0);
        CHECK_RC(visited, 4); /* T, D, A, B: A reached twice, visited once */

        /* roots */
        uint64_t g0, g1;
        CHECK_RC(cas_metastore_roots_generation(ms, &g0), 0);
        cas_node r1 = dnode("tree", &d, 3);
        CHECK_RC(cas_metastore_set_root(ms, &r1), 0);
        CHECK_RC(cas_metastore_roots_generation(ms, &g1), 0);
        CHECK(g1 != g0);
        _cleanup_free_ cas_node *back = NULL;
        CHECK_RC(cas_metastore_get_root(ms, "tree", &back), 0);
        if (back)
                CHECK(back->type == CAS_NODE_DIRECTORY && cas_digest_eq(&back->digest, &d) && back->size == 3);
        CHECK_RC(cas_metastore_get_root(ms, "tre", &back), -ENOENT);
        CHECK_RC(cas_metastore_get_root(ms, "tree2", &back), -ENOENT);
        cas_node r0 = {.type = CAS_NODE_SYMLINK, .name = "link", .name_len = 4, .target = "tree", .target_len = 4};
        CHECK_RC(cas_metastore_set_root(ms, &r0), 0);
        cas_node rbad = {.type = CAS_NODE_SYMLINK, .name = "a/b", .name_len = 3, .target = "x", .target_len = 1};
        CHECK_RC(cas_metastore_set_root(ms, &rbad), -EBADMSG);
        int count = 0;
        CHECK_RC(cas_metastore_foreach_root(ms, count_root, &count), 0);
        CHECK_RC(count, 2);
        CHECK_RC(cas_metastore_remove_root(ms, "link"), 0);
        count = 0;
        CHECK_RC(cas_metastore_foreach_root(ms, count_root, &count), 0);
        CHECK_RC(count, 1);

        /* damaged root records: one that does not decode, one naming the
         * intact root 'tree' (it must not shadow it), one naming none */
        _cleanup_free_ uint8_t *shadow = NULL, *unnamed = NULL;
        size_t shadow_len, unnamed_len;
        cas_node rshadow = dnode("tree", &a, 0), runnamed = dnode("", &a, 0);
        ASSERT(cas_node_encode(&rshadow, &shadow, &shadow_len) == 0);
        ASSERT(cas_node_encode(&runnamed, &unnamed, &unnamed_len) == 0);
        CHECK_RC(cas_metastore_put_raw_root(ms, "junk", "\xff\xff", 2), 0);
        CHECK_RC(cas_metastore_put_raw_root(ms, "zzz", shadow, shadow_len), 0);
        CHECK_RC(cas_metastore_put_raw_root(ms, "none", unnamed, unnamed_len), 0);
        count = 0;
        CHECK_RC(cas_metastore_foreach_root(ms, count_root, &count), 0);
        CHECK_RC(count, 1);
        root_records rr = {0};
        CHECK_RC(cas_metastore_foreach_root_record(ms, record_cb, &rr), 0);
        CHECK_RC(rr.valid, 1);
        CHECK_RC(rr.damaged, 3);
        CHECK_STR(rr.names, "junk none zzz ");
        CHECK_RC(cas_metastore_get_root(ms, "zzz", &back), -EBADMSG);
        CHECK_RC(cas_metastore_get_root(ms, "none", &back), -EBADMSG);
        CHECK_RC(cas_metastore_get_root(ms, "junk", &back), -EBADMSG);
        CHECK_RC(cas_metastore_remove_root(ms, "junk"), 0);
        CHECK_RC(cas_metastore_remove_root(ms, "zzz"), 0);
        CHECK_RC(cas_metastore_remove_root(ms, "none"), 0);

        count = 0;
        CHECK_RC(cas_metastore_foreach_directory(ms, count_dir, &count), 0);
        CHECK_RC(count, 4);
        CHECK_RC(cas_metastore_remove_directories(ms, &t, 1), 0);
        CHECK_RC(cas_metastore_has_directory(ms, &t), 0);
}

int main(void)
{
        cas_store *s;
        char dir[] = "/tmp/casfs-test-store-XXXXXX";

        ASSERT(cas_store_new_memory(&s) == 0);
        test_blobs(s->blobs);
        test_meta(s->meta);
        cas_store_free(s);

        ASSERT(mkdtemp(dir));
        char path[256];
        snprintf(path, sizeof(path), "%s/store", dir);
        CHECK_RC(cas_store_open(path, 0, &s), -ENOENT);
        ASSERT(cas_store_open(path, CAS_STORE_CREATE, &s) == 0);
        test_blobs(s->blobs);
        test_meta(s->meta);
        int n = 0;
        CHECK_RC(cas_blobstore_foreach(s->blobs, count_cb, &n), 0);
        CHECK_RC(n, 2); /* hello was removed: the empty blob and the big one are left */
        cas_store_free(s);
        /* reopens, and a folder of something else is refused */
        ASSERT(cas_store_open(path, 0, &s) == 0);
        cas_store_free(s);
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "echo other > %s/format", path);
        ASSERT(system(cmd) == 0);
        CHECK_RC(cas_store_open(path, CAS_STORE_CREATE, &s), -EPROTONOSUPPORT);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ASSERT(system(cmd) == 0);
        return tests_finish("test-store");
}
