/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The remote backends (blobstore-remote.c, metastore-remote.c) over a file://
 * object store: what they write is what FORMAT.md says, what they read is
 * checked, and a damaged object is refused, never served. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunker.h"
#include "layout.h"
#include "macro.h"
#include "fixtures.h"
#include "store.h"
#include "tests.h"

static char dir[64];

static bool object_exists(const char *prefix, const cas_digest *d)
{
        char key[CAS_LAYOUT_KEY_MAX], path[256];
        cas_layout_key(prefix, d, key);
        snprintf(path, sizeof(path), "%s/%s", dir, key);
        return access(path, F_OK) == 0;
}

static void damage(const char *prefix, const cas_digest *d)
{
        damage_object(dir, prefix, d);
}

static int read_all(cas_blob_reader *rd, uint8_t *buf, size_t n)
{
        ssize_t k = cas_blob_reader_pread(rd, buf, n, 0);
        return k == (ssize_t)n ? 0 : -EIO;
}

static void test_blobs(cas_store *s)
{
        size_t n = 3u << 20;
        uint8_t *big = malloc(n), *back = malloc(n);
        cas_blob_reader *rd;
        cas_digest d, small, chunk0;
        int existed = -1;

        ASSERT(big && back);
        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)((i * 2654435761u) >> 13);
        CHECK_RC(cas_blobstore_put(s->blobs, big, n, &d), 0);
        CHECK(object_exists(CAS_LAYOUT_BLOBS, &d));   /* several chunks: an index */
        CHECK(!object_exists(CAS_LAYOUT_CHUNKS, &d)); /* and no chunk of its digest */
        size_t first = cas_chunker_next(big, n);
        cas_digest_of(big, first, &chunk0);
        CHECK(object_exists(CAS_LAYOUT_CHUNKS, &chunk0));
        CHECK_RC(cas_blobstore_has(s->blobs, &d), 1);

        CHECK_RC(cas_blobstore_put(s->blobs, "small", 5, &small), 0);
        CHECK(object_exists(CAS_LAYOUT_CHUNKS, &small)); /* one chunk: only the chunk */
        CHECK(!object_exists(CAS_LAYOUT_BLOBS, &small));

        /* the same again: nothing written */
        cas_blob_writer *w;
        ASSERT(cas_blobstore_writer_new(s->blobs, &w) == 0);
        CHECK_RC(cas_blob_writer_write(w, big, n), 0);
        CHECK_RC(cas_blob_writer_commit(w, NULL, NULL, &existed), 0);
        CHECK_RC(existed, 1);

        /* the empty blob has no object but is there */
        CHECK_RC(cas_blobstore_has(s->blobs, &cas_digest_empty), 1);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &cas_digest_empty, 0, &rd), 0);
        CHECK_RC(cas_blob_reader_size(rd), 0);
        cas_blob_reader_free(rd);

        CHECK_RC(cas_blobstore_open_sized(s->blobs, &d, n, &rd), 0);
        CHECK_RC(cas_blob_reader_size(rd), n);
        CHECK_RC(read_all(rd, back, n), 0);
        CHECK(memcmp(big, back, n) == 0);
        cas_blob_reader_free(rd);
        CHECK_RC(cas_blobstore_open(s->blobs, &d, &rd), 0); /* size unknown */
        cas_blob_reader_free(rd);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &small, 5, &rd), 0);
        cas_blob_reader_free(rd);

        /* the wrong size: the index's sizes do not add up; a chunk bigger than stated */
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &d, n + 1, &rd), -EBADMSG);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &small, 4, &rd), -EBADMSG);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &small, 6, &rd), -EBADMSG);
        /* absent */
        cas_digest none;
        cas_digest_of("none", 4, &none);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &none, 4, &rd), -ENOENT);
        CHECK_RC(cas_blobstore_has(s->blobs, &none), 0);

        /* a damaged chunk of the large blob: refused */
        damage(CAS_LAYOUT_CHUNKS, &chunk0);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &d, n, &rd), -EBADMSG);
        damage(CAS_LAYOUT_CHUNKS, &small);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &small, 5, &rd), -EBADMSG);
        damage(CAS_LAYOUT_BLOBS, &d);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &d, n, &rd), -EBADMSG);
        free(big);
        free(back);
}

static int count_root(const cas_node *n, void *userdata)
{
        (*(int *)userdata)++;
        return 0;
}

static void test_meta(cas_store *s, cas_store *fresh)
{
        cas_directory *leaf, *mid, *top, *dirs[3];
        cas_digest dl, dm, dt, got;
        cas_error err;

        ASSERT(cas_directory_build(NULL, 0, &leaf) == 0);
        ASSERT(cas_directory_digest(leaf, &dl) == 0);
        cas_node nm[] = {dnode("leaf", &dl, 0)};
        ASSERT(cas_directory_build(nm, 1, &mid) == 0);
        ASSERT(cas_directory_digest(mid, &dm) == 0);
        cas_node nt[] = {dnode("mid", &dm, 1), dnode("other", &dl, 0)};
        ASSERT(cas_directory_build(nt, 2, &top) == 0);
        ASSERT(cas_directory_digest(top, &dt) == 0);

        dirs[0] = leaf, dirs[1] = mid, dirs[2] = top;
        CHECK_RC(cas_metastore_put_closure(s->meta, dirs, 3, &got, &err), 0);
        CHECK(cas_digest_eq(&got, &dt));
        CHECK(object_exists(CAS_LAYOUT_DIRS, &dt)); /* the top only */
        CHECK(!object_exists(CAS_LAYOUT_DIRS, &dm));
        CHECK_RC(cas_metastore_has_directory(s->meta, &dt), 1);

        /* a store that knows nothing yet reaches everything below through the top */
        cas_directory *back = NULL;
        CHECK_RC(cas_metastore_get_directory(fresh->meta, &dm, &back), -ENOENT);
        CHECK_RC(cas_metastore_get_directory(fresh->meta, &dt, &back), 0);
        free(back);
        CHECK_RC(cas_metastore_get_directory(fresh->meta, &dm, &back), 0);
        CHECK(back && back->n_directories == 1);
        free(back);

        /* a subtree of a stored tree stored on its own: its own object, whole */
        CHECK_RC(cas_metastore_put_closure(s->meta, &mid, 1, &got, &err), 0);
        CHECK(object_exists(CAS_LAYOUT_DIRS, &dm));

        /* roots, and the index readers without a listing use */
        cas_node root = dnode("r", &dt, 4);
        CHECK_RC(cas_metastore_set_root(s->meta, &root), 0);
        int count = 0;
        CHECK_RC(cas_metastore_foreach_root(fresh->meta, count_root, &count), 0);
        CHECK_RC(count, 1);
        char path[128];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, CAS_LAYOUT_ROOTS_INDEX);
        CHECK(stat(path, &st) == 0 && st.st_size > 4);
        cas_node *n = NULL;
        CHECK_RC(cas_metastore_get_root(fresh->meta, "r", &n), 0);
        CHECK(n && cas_digest_eq(&n->digest, &dt));
        free(n);
        CHECK_RC(cas_metastore_remove_root(s->meta, "r"), 0);
        CHECK_RC(cas_metastore_get_root(fresh->meta, "r", &n), -ENOENT);
        CHECK(stat(path, &st) == 0 && st.st_size == 0);

        /* a damaged closure: refused whole */
        cas_store *third;
        char addr[96];
        snprintf(addr, sizeof(addr), "file://%s", dir);
        damage(CAS_LAYOUT_DIRS, &dt);
        ASSERT(cas_store_open_address(addr, 0, NULL, &third) == 0);
        CHECK_RC(cas_metastore_get_directory(third->meta, &dt, &back), -EBADMSG);
        CHECK_RC(cas_metastore_get_directory(third->meta, &dm, &back), 0); /* its own object */
        free(back);
        cas_store_free(third);
        free(leaf), free(mid), free(top);
}

int main(void)
{
        cas_store *s, *fresh;
        char addr[96];

        snprintf(dir, sizeof(dir), "/tmp/casfs-test-remote.XXXXXX");
        ASSERT(mkdtemp(dir));
        snprintf(addr, sizeof(addr), "file://%s", dir);
        ASSERT(cas_store_open_address(addr, CAS_STORE_CREATE, NULL, &s) == 0);
        ASSERT(s->remote);
        ASSERT(cas_store_open_address(addr, 0, NULL, &fresh) == 0);
        test_blobs(s);
        test_meta(s, fresh);
        cas_store_free(fresh);
        cas_store_free(s);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ASSERT(system(cmd) == 0);
        return tests_finish("test-remote-store");
}
