/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A remote store (file://) read through a local cache (cache.c): a root's
 * closure comes with the root and lands in the cache's LMDB, a small blob is
 * fetched whole, a large one by the chunks a read touches and put together
 * once all of it is there, a damaged chunk is refused, and --cache-size
 * keeps the cached blobs under their bound. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobstore-backend.h"
#include "cache.h"
#include "chunker.h"
#include "layout.h"
#include "macro.h"
#include "fixtures.h"
#include "outboard.h"
#include "store.h"
#include "tests.h"

static char dir[64];

/* Damages the chunk d in the remote (dir/r). */
static void damage(const cas_digest *d)
{
        char root[sizeof(dir) + 2];
        snprintf(root, sizeof(root), "%s/r", dir);
        damage_object(root, CAS_LAYOUT_CHUNKS, d);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
        uint8_t *b = malloc(n);
        ASSERT(b);
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(((i + seed) * 2654435761u) >> 13);
        return b;
}

static cas_blobstore *sum_of;
static int sum_sizes(const cas_digest *d, uint64_t size, void *userdata)
{
        uint64_t *sum = userdata, n = size;
        if (n == CAS_BLOB_SIZE_UNKNOWN && cas_blobstore_stat(sum_of, d, &n) < 0)
                n = 0;
        *sum += n;
        return 0;
}

int main(void)
{
        char addr[96], cache_dir[96];
        cas_store *remote, *s;
        size_t big_n = 3u << 20, small_n = 1000;
        uint8_t *big = pattern(big_n, 1), *small = pattern(small_n, 7), *other = pattern(big_n, 99);
        uint8_t *back = malloc(big_n);
        cas_digest dbig, dsmall, dother, dtop, got;
        cas_directory *top;
        cas_error err;

        ASSERT(back);
        snprintf(dir, sizeof(dir), "/tmp/casfs-test-cache.XXXXXX");
        ASSERT(mkdtemp(dir));
        snprintf(addr, sizeof(addr), "file://%s/r", dir);
        snprintf(cache_dir, sizeof(cache_dir), "%s/c", dir);

        /* the remote: one tree of three files */
        ASSERT(cas_store_open_address(addr, CAS_STORE_CREATE, NULL, &remote) == 0);
        ASSERT(cas_blobstore_put(remote->blobs, big, big_n, &dbig) == 0);
        ASSERT(cas_blobstore_put(remote->blobs, small, small_n, &dsmall) == 0);
        ASSERT(cas_blobstore_put(remote->blobs, other, big_n, &dother) == 0);
        cas_node nodes[] = {fnode("big", &dbig, big_n, false), fnode("other", &dother, big_n, false),
                            fnode("small", &dsmall, small_n, false)};
        ASSERT(cas_directory_build(nodes, 3, &top) == 0);
        ASSERT(cas_directory_digest(top, &dtop) == 0);
        ASSERT(cas_metastore_put_closure(remote->meta, &top, 1, &got, &err) == 0);
        cas_node root = {
            .type = CAS_NODE_DIRECTORY, .name = "t", .name_len = 1, .digest = dtop, .size = 3};
        ASSERT(cas_metastore_set_root(remote->meta, &root) == 0);

        cas_cache_options co = {0};
        ASSERT(cas_store_open_cached(addr, cache_dir, NULL, &co, &s) == 0);

        /* the root, and with it its closure, into the cache's LMDB */
        cas_node *n = NULL;
        CHECK_RC(cas_metastore_has_directory(s->cache_local->meta, &dtop), 0);
        CHECK_RC(cas_metastore_get_root(s->meta, "t", &n), 0);
        CHECK(n && cas_digest_eq(&n->digest, &dtop));
        free(n);
        CHECK_RC(cas_metastore_has_directory(s->cache_local->meta, &dtop), 1);
        CHECK_RC(cas_metastore_get_root(s->cache_local->meta, "t", &n),
                 0); /* the cache stands alone */
        free(n);
        CHECK_RC(cas_metastore_get_root(s->meta, "nothing", &n), -ENOENT);

        /* a small blob: fetched whole into the cache */
        cas_blob_reader *rd = NULL;
        CHECK_RC(cas_blobstore_open(s->blobs, &dsmall, &rd), 0);
        CHECK(rd && !cas_blob_reader_checked(rd) && cas_blob_reader_fd(rd) >= 0);
        CHECK_RC(cas_blob_reader_pread(rd, back, small_n, 0), (ssize_t)small_n);
        CHECK(memcmp(back, small, small_n) == 0);
        cas_blob_reader_free(rd);
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &dsmall), 1);

        /* a large one: by the chunks a read touches, checked as they come */
        size_t first = cas_chunker_next(big, big_n);
        cas_digest chunk0;
        cas_digest_of(big, first, &chunk0);
        CHECK_RC(cas_blobstore_open(s->blobs, &dbig, &rd), 0);
        CHECK(rd && cas_blob_reader_checked(rd) && cas_blob_reader_fd(rd) < 0);
        CHECK_RC(cas_blob_reader_size(rd), big_n);
        CHECK_RC(cas_blob_reader_pread(rd, back, 4096, 0), 4096);
        CHECK(memcmp(back, big, 4096) == 0);
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &chunk0), 1);
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &dbig), 0); /* not all of it */
        CHECK_RC(cas_blob_reader_pread(rd, back, big_n, 0), (ssize_t)big_n);
        CHECK(memcmp(back, big, big_n) == 0);
        cas_blob_reader_free(rd);
        /* all of it read: put together, with its outboard, its chunks gone */
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &dbig), 1);
        CHECK_RC(cas_blobstore_has_outboard(s->cache_local->blobs, &dbig, big_n), 1);
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &chunk0), 0);
        CHECK_RC(cas_blobstore_open(s->blobs, &dbig, &rd), 0);
        CHECK(rd && !cas_blob_reader_checked(rd));
        cas_blob_reader_free(rd);

        /* a damaged chunk: refused, never served */
        cas_digest other0;
        cas_digest_of(other, cas_chunker_next(other, big_n), &other0);
        damage(&other0);
        CHECK_RC(cas_blobstore_open(s->blobs, &dother, &rd), 0);
        CHECK(cas_blob_reader_pread(rd, back, 4096, 0) < 0);
        CHECK_RC(cas_blob_reader_pread(rd, back, 4096, big_n - 4096), 4096); /* the rest reads */
        CHECK(memcmp(back, other + big_n - 4096, 4096) == 0);
        cas_blob_reader_free(rd);
        cas_store_free(s);

        /* a bound below the tree: the cached blobs stay under it */
        char sub[128];
        snprintf(sub, sizeof(sub), "%s/c2", dir);
        co.max_bytes = 1u << 20;
        ASSERT(cas_store_open_cached(addr, sub, NULL, &co, &s) == 0);
        CHECK_RC(cas_blobstore_open(s->blobs, &dbig, &rd), 0);
        CHECK_RC(cas_blob_reader_pread(rd, back, big_n, 0), (ssize_t)big_n);
        CHECK(memcmp(back, big, big_n) == 0);
        cas_blob_reader_free(rd);
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &dbig), 0); /* larger than the bound */
        uint64_t cached = 0;
        sum_of = s->cache_local->blobs;
        CHECK_RC(cas_blobstore_foreach(s->cache_local->blobs, sum_sizes, &cached), 0);
        CHECK(cached > 0 && cached <= co.max_bytes);
        cas_store_free(s);

        /* prefetching: the small blobs fetched at once, each checked before
         * it is stored; a damaged one is never stored nor served, a large
         * one is left to its reads; a local store does not prefetch */
        enum { N_PF = 20 };
        cas_chunk_ref refs[N_PF + 1];
        uint8_t *pf[N_PF];
        for (unsigned k = 0; k < N_PF; k++) {
                pf[k] = pattern(small_n + k, 1000 + k);
                ASSERT(cas_blobstore_put(remote->blobs, pf[k], small_n + k, &refs[k].digest) == 0);
                refs[k].size = small_n + k;
        }
        refs[N_PF] = (cas_chunk_ref){dother, big_n};
        damage(&refs[3].digest);
        snprintf(sub, sizeof(sub), "%s/c3", dir);
        co.max_bytes = 0;
        ASSERT(cas_store_open_cached(addr, sub, NULL, &co, &s) == 0);
        CHECK(cas_blobstore_can_prefetch(s->blobs));
        CHECK(!cas_blobstore_can_prefetch(s->cache_local->blobs));
        CHECK_RC(cas_blobstore_prefetch(s->cache_local->blobs, refs, N_PF), -EOPNOTSUPP);
        /* cached: whether opening fetches; a store that does not fetch always says 1 */
        CHECK_RC(cas_blobstore_cached(s->blobs, &refs[0].digest), 0);
        CHECK_RC(cas_blobstore_cached(s->blobs, &cas_digest_empty), 1);
        CHECK_RC(cas_blobstore_cached(s->cache_local->blobs, &refs[0].digest), 1);
        CHECK_RC(cas_blobstore_prefetch(s->blobs, refs, N_PF + 1), -EBADMSG);
        for (unsigned k = 0; k < N_PF; k++) {
                CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &refs[k].digest), k == 3 ? 0 : 1);
                CHECK_RC(cas_blobstore_cached(s->blobs, &refs[k].digest), k == 3 ? 0 : 1);
        }
        CHECK_RC(cas_blobstore_has(s->cache_local->blobs, &dother), 0);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &refs[3].digest, refs[3].size, &rd), -EBADMSG);
        CHECK_RC(cas_blobstore_open_sized(s->blobs, &refs[5].digest, refs[5].size, &rd), 0);
        CHECK_RC(cas_blob_reader_pread(rd, back, small_n + 5, 0), (ssize_t)(small_n + 5));
        CHECK(memcmp(back, pf[5], small_n + 5) == 0);
        cas_blob_reader_free(rd);
        /* what is there already is not fetched again */
        CHECK_RC(cas_blobstore_prefetch(s->blobs, refs + 4, 4), 0);
        cas_store_free(s);
        for (unsigned k = 0; k < N_PF; k++)
                free(pf[k]);

        /* the default folders: one per address, and for s3:// per endpoint */
        setenv("XDG_CACHE_HOME", dir, 1);
        char *d1 = NULL, *d2 = NULL, *d3 = NULL, *d4 = NULL, *d5 = NULL;
        CHECK_RC(cas_cache_default_dir("s3://tools", NULL, &d1), 0);
        CHECK_RC(cas_cache_default_dir("s3://tools", "http://a.example:9000", &d2), 0);
        CHECK_RC(cas_cache_default_dir("s3://tools", "http://b.example:9000", &d3), 0);
        CHECK_RC(cas_cache_default_dir("s3://tools", "http://a.example:9000", &d4), 0);
        CHECK_RC(cas_cache_default_dir("http://a.example/tools", "http://b.example:9000", &d5), 0);
        if (d1 && d2 && d3 && d4 && d5) {
                CHECK(strncmp(d1, dir, strlen(dir)) == 0 && strstr(d1, "/casfs/tools-"));
                CHECK(strcmp(d1, d2) != 0);
                CHECK(strcmp(d2, d3) != 0);
                CHECK_STR(d2, d4);
                char *d6 = NULL;
                /* an endpoint means nothing to an address with a server */
                CHECK_RC(cas_cache_default_dir("http://a.example/tools", NULL, &d6), 0);
                CHECK(d6 && strcmp(d5, d6) == 0);
                free(d6);
        }
        free(d1), free(d2), free(d3), free(d4), free(d5);

        cas_store_free(remote);
        free(top);
        free(big);
        free(small);
        free(other);
        free(back);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void)!system(cmd);
        return tests_finish("test-cache");
}
