/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdlib.h>

#include "gc.h"
#include "log.h"
#include "macro.h"
#include "reach.h"

static bool blob_unreached(const cas_digest *d, void *userdata)
{
        const cas_reach *rc = userdata;
        return !cas_digest_map_get(&rc->blobs, d, NULL);
}

int cas_gc(cas_blobstore *bs, cas_metastore *ms, bool dry_run, cas_gc_stats *ret_stats)
{
        cas_reach rc = {.meta = ms};
        cas_listing blobs = CAS_LISTING_INIT, dirs = CAS_LISTING_INIT;
        _cleanup_free_ cas_digest *dead = NULL;
        cas_gc_stats st = {0};
        size_t n_dead = 0;
        uint64_t n_tmp = 0;
        char text[CAS_DIGEST_TEXT_MAX];
        int r;

        r = cas_reach_all(&rc);
        if (r < 0) {
                cas_log_errno(CAS_LOG_ERR, r, "gc: walking roots: %s", strerror(-r));
                goto finish;
        }
        if (rc.problems) {
                r = cas_log_errno(CAS_LOG_ERR, -EUCLEAN,
                                  "gc: %" PRIu64 " damaged root records or missing or corrupt directories "
                                  "below the roots; nothing deleted (run 'casfs fsck')",
                                  rc.problems);
                goto finish;
        }

        r = cas_blobstore_foreach(bs, cas_listing_add_blob, &blobs);
        if (r >= 0)
                r = cas_metastore_foreach_directory(ms, cas_listing_add, &dirs);
        if (r < 0) {
                cas_log_errno(CAS_LOG_ERR, r, "gc: listing the store: %s", strerror(-r));
                goto finish;
        }
        /* the import cache first, then directories, then blobs: a crash in
         * between leaves blobs without references, never references (or
         * cache entries) without blobs */
        if (!dry_run) {
                r = cas_metastore_statcache_prune(ms, blob_unreached, &rc);
                if (r < 0) {
                        cas_log_errno(CAS_LOG_ERR, r, "gc: pruning the import cache: %s", strerror(-r));
                        goto finish;
                }
        }
        dead = calloc(dirs.n ?: 1, sizeof(cas_digest));
        if (!dead) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < dirs.n; i++)
                if (!cas_digest_map_get(&rc.dirs, &dirs.items[i].digest, NULL))
                        dead[n_dead++] = dirs.items[i].digest;
        if (!dry_run) {
                r = cas_metastore_remove_directories(ms, dead, n_dead);
                if (r < 0) {
                        cas_log_errno(CAS_LOG_ERR, r, "gc: removing directories: %s", strerror(-r));
                        goto finish;
                }
        }
        for (size_t i = 0; i < blobs.n; i++) {
                if (cas_digest_map_get(&rc.blobs, &blobs.items[i].digest, NULL))
                        continue;
                uint64_t size = blobs.items[i].size;
                if (size == CAS_BLOB_SIZE_UNKNOWN && cas_blobstore_stat(bs, &blobs.items[i].digest, &size) < 0)
                        size = 0;
                if (!dry_run) {
                        r = cas_blobstore_remove(bs, &blobs.items[i].digest);
                        if (r < 0 && r != -ENOENT) {
                                cas_log_errno(CAS_LOG_ERR, r, "gc: removing blob %s: %s",
                                              cas_digest_to_text(&blobs.items[i].digest, text), strerror(-r));
                                goto finish;
                        }
                }
                st.blobs++;
                st.bytes += size;
        }
        if (!dry_run)
                (void)cas_blobstore_clean_temporary(bs, 3600, &n_tmp);
        st.directories = n_dead;
        st.kept_blobs = blobs.n - st.blobs;
        st.kept_directories = dirs.n - n_dead;
        *ret_stats = st;
        r = 0;
finish:
        cas_listing_done(&blobs);
        cas_listing_done(&dirs);
        cas_reach_done(&rc);
        return r;
}
