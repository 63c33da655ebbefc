/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "fsck.h"
#include "layout.h"
#include "log.h"
#include "macro.h"
#include "outboard.h"
#include "reach.h"
#include "verify.h"

/* A blob's verdict, kept in the listing's state. */
typedef enum blob_state {
        BLOB_OK = 0,
        BLOB_CORRUPT,
        BLOB_UNREADABLE,
        BLOB_CORRUPT_OUTBOARD, /* the blob is fine, its stored outboard is not */
} blob_state;

typedef struct rehash {
        cas_blobstore *bs;
        cas_listing blobs;
        _Atomic uint64_t bytes;
} rehash;

#define REHASH_BUFFER (1 << 20)

/* Hashes blob d whole; its verdict and, once it could be opened, its size in
 * *ret_size. */
static blob_state rehash_blob(rehash *h, const cas_digest *d, uint8_t *buf, uint64_t *ret_size)
{
        _cleanup_(cas_blob_reader_freep) cas_blob_reader *rd = NULL;
        _cleanup_free_ uint8_t *outboard = NULL, *stored = NULL;
        int r;

        if (!buf || cas_blobstore_open(h->bs, d, &rd) < 0)
                return BLOB_UNREADABLE;
        int fd = cas_blob_reader_fd(rd);
        if (fd >= 0)
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        uint64_t size = cas_blob_reader_size(rd);
        *ret_size = size;
        r = cas_verify_blob(rd, d, size, buf, REHASH_BUFFER, &outboard);
        rd = cas_blob_reader_free(rd);
        atomic_fetch_add(&h->bytes, size);
        if (r == -EBADMSG)
                return BLOB_CORRUPT;
        if (r < 0)
                return BLOB_UNREADABLE;
        /* the outboard comes with the hash: a stored one must equal it */
        if (outboard) {
                r = cas_blobstore_get_outboard(h->bs, d, size, &stored);
                if (r == -EBADMSG || (r >= 0 && memcmp(stored, outboard, (size_t)cas_outboard_size(size)) != 0))
                        return BLOB_CORRUPT_OUTBOARD; /* a missing one is no damage: reads check the blob whole */
        }
        return BLOB_OK;
}

/* Takes the blobs one after the other, waiting for the listing when it has
 * taken all listed so far, until the listing has ended. */
static void *rehash_worker(void *userdata)
{
        rehash *h = userdata;
        _cleanup_free_ uint8_t *buf = malloc(REHASH_BUFFER);
        cas_digest d;
        size_t i;

        while (cas_listing_take(&h->blobs, &i, &d)) {
                uint64_t size = CAS_BLOB_SIZE_UNKNOWN;
                blob_state state = rehash_blob(h, &d, buf, &size);

                pthread_mutex_lock(&h->blobs.lock);
                h->blobs.items[i].state = (uint8_t)state;
                if (size != CAS_BLOB_SIZE_UNKNOWN)
                        h->blobs.items[i].size = size;
                pthread_mutex_unlock(&h->blobs.lock);
        }
        return NULL;
}

static void found(cas_fsck_cb cb, void *userdata, cas_fsck_kind kind, const cas_digest *d)
{
        cas_fsck_finding f = {.kind = kind, .digest = *d};
        cb(&f, userdata);
}

/* 1: every blob against its name, hashed as the listing finds it. */
static int check_blobs(rehash *h, unsigned n_threads)
{
        pthread_t threads[64];
        unsigned started = 0;
        int r;

        for (n_threads = MIN(n_threads, (unsigned)ELEMENTSOF(threads)); started < n_threads; started++)
                if (pthread_create(&threads[started], NULL, rehash_worker, h) != 0)
                        break;
        r = cas_blobstore_foreach(h->bs, cas_listing_add_blob, &h->blobs);
        cas_listing_end(&h->blobs, r < 0);
        if (started == 0)
                rehash_worker(h);
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        return r;
}

int cas_fsck(cas_blobstore *bs, cas_metastore *ms, unsigned n_threads, cas_fsck_cb cb, void *userdata,
             cas_fsck_stats *ret_stats)
{
        static const cas_fsck_kind blob_kinds[] = {
                [BLOB_CORRUPT] = CAS_FSCK_CORRUPT_BLOB,
                [BLOB_UNREADABLE] = CAS_FSCK_UNREADABLE_BLOB,
                [BLOB_CORRUPT_OUTBOARD] = CAS_FSCK_CORRUPT_OUTBOARD,
        };
        rehash h = {.bs = bs, .blobs = CAS_LISTING_INIT};
        cas_listing dirs = CAS_LISTING_INIT;
        cas_reach rc = {.meta = ms, .cb = cb, .userdata = userdata};
        /* per blob: its size, and in the top bits whether it could not be read or was corrupt */
        cas_digest_map verdicts = {0};
        cas_digest_map part_of = {0}; /* chunks stored on their own for a blob of several */
        cas_fsck_stats st = {0};
        int r;

        r = check_blobs(&h, n_threads);
        if (r < 0) {
                cas_log_errno(CAS_LOG_ERR, r, "fsck: listing blobs: %s", strerror(-r));
                goto finish;
        }
        for (size_t i = 0; i < h.blobs.n; i++) {
                uint8_t s = h.blobs.items[i].state;
                if (s != BLOB_OK) {
                        found(cb, userdata, blob_kinds[s], &h.blobs.items[i].digest);
                        st.problems++;
                }
                uint64_t bad = s == BLOB_CORRUPT_OUTBOARD ? BLOB_OK : s;
                (void)cas_digest_map_put(&verdicts, &h.blobs.items[i].digest, bad << 62 | h.blobs.items[i].size);
        }

        /* 2: every directory record (decoding checks hash, encoding, validity) */
        r = cas_metastore_foreach_directory(ms, cas_listing_add, &dirs);
        if (r < 0) {
                cas_log_errno(CAS_LOG_ERR, r, "fsck: listing directories: %s", strerror(-r));
                goto finish;
        }
        for (size_t i = 0; i < dirs.n; i++) {
                _cleanup_free_ cas_directory *dir = NULL;
                if (cas_metastore_get_directory(ms, &dirs.items[i].digest, &dir) < 0) {
                        found(cb, userdata, CAS_FSCK_CORRUPT_DIRECTORY, &dirs.items[i].digest);
                        st.problems++;
                }
        }

        /* 3: every root record, and every root's closure: directories present
         * and valid, blobs present with their size */
        r = cas_reach_all(&rc);
        if (r < 0) {
                cas_log_errno(CAS_LOG_ERR, r, "fsck: walking roots: %s", strerror(-r));
                goto finish;
        }
        /* blobs referenced but missing, unreadable or of another size */
        size_t it = 0;
        cas_digest key;
        uint64_t want, s;
        while (cas_digest_map_next(&rc.blobs, &it, &key, &want)) {
                cas_fsck_finding f = {.digest = key, .want = want};
                if (!cas_digest_map_get(&verdicts, &key, &s))
                        f.kind = CAS_FSCK_MISSING_BLOB;
                else if ((s >> 62) == 0 && (s & ((UINT64_C(1) << 62) - 1)) != want) {
                        f.kind = CAS_FSCK_BLOB_SIZE;
                        f.size = s & ((UINT64_C(1) << 62) - 1);
                } else
                        continue;
                cb(&f, userdata);
                st.problems++;
        }
        /* the chunks a blob is stored as, as objects of their own (a remote
         * store's blobs of several chunks): referenced through it */
        it = 0;
        while (cas_digest_map_next(&rc.blobs, &it, &key, &want)) {
                _cleanup_free_ cas_chunk_ref *parts = NULL;
                size_t n_parts = 0;
                if (cas_blobstore_parts(bs, &key, want, &parts, &n_parts) < 0)
                        continue; /* the blob's check reported it already */
                for (size_t i = 0; i < n_parts; i++)
                        if (cas_digest_map_put(&part_of, &parts[i].digest, 0) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        }
        }
        for (size_t i = 0; i < h.blobs.n; i++)
                if (!cas_digest_map_get(&rc.blobs, &h.blobs.items[i].digest, NULL) &&
                    !cas_digest_map_get(&part_of, &h.blobs.items[i].digest, NULL)) {
                        st.unreferenced_blobs++;
                        found(cb, userdata, CAS_FSCK_UNREFERENCED_BLOB, &h.blobs.items[i].digest);
                }
        for (size_t i = 0; i < dirs.n; i++)
                if (!cas_digest_map_get(&rc.dirs, &dirs.items[i].digest, NULL)) {
                        st.unreferenced_directories++;
                        found(cb, userdata, CAS_FSCK_UNREFERENCED_DIRECTORY, &dirs.items[i].digest);
                }
        st.roots = rc.roots;
        st.problems += rc.problems;
        st.blobs = h.blobs.n;
        st.blob_bytes = atomic_load(&h.bytes);
        st.directories = dirs.n;
        *ret_stats = st;
        r = 0;
finish:
        cas_digest_map_done(&verdicts);
        cas_digest_map_done(&part_of);
        cas_listing_done(&h.blobs);
        cas_listing_done(&dirs);
        cas_reach_done(&rc);
        return r;
}
