/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "cli.h"
#include "digestmap.h"
#include "macro.h"
#include "outboard.h"

/* Commands that change or check the store as a whole: rm, fsck, gc. */

int cmd_rm(int argc, char **argv)
{
        static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {}};
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        int c, r, status = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("Usage: casfs [--store PATH] rm NAME...\n\n"
                               "Removes roots from the registry. Their objects stay in the store\n"
                               "until 'casfs gc'.\n");
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                log_error("rm: takes NAME...");
                return EXIT_USAGE;
        }
        if (cli_open_store(0, &s) < 0 || cli_require_writable("rm", s) < 0)
                return 1;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ cas_node *n = NULL;
                r = cas_metastore_get_root(s->meta, argv[i], &n);
                if (r == -ENOENT) {
                        log_error("rm: %s: no such root", argv[i]);
                        status = 1;
                        continue;
                }
                r = cas_metastore_remove_root(s->meta, argv[i]);
                if (r < 0) {
                        log_error("rm: %s: %s", argv[i], strerror(-r));
                        status = 1;
                }
        }
        return status;
}

/* ---- reachability, shared by fsck and gc ---- */

typedef struct reach {
        cas_metastore *meta;
        cas_digest_map dirs;   /* reachable directories (also missing or corrupt ones) */
        cas_digest_map blobs;  /* reachable blobs -> expected size */
        uint64_t roots;        /* valid root records */
        uint64_t problems;
        bool report;           /* print each problem (fsck) */
        const char *root;      /* the root being walked, for messages */
} reach;

_printf_(2, 3) static void problem(reach *rc, const char *fmt, ...)
{
        va_list ap;

        rc->problems++;
        if (!rc->report)
                return;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(" (root %s)\n", rc->root);
}

static void mark_blob(reach *rc, const cas_node *n)
{
        uint64_t size;
        char text[CAS_DIGEST_TEXT_MAX];

        if (cas_digest_map_get(&rc->blobs, &n->digest, &size)) {
                if (size != n->size)
                        problem(rc, "blob %s is referenced with sizes %" PRIu64 " and %" PRIu64,
                                cas_digest_to_text(&n->digest, text), size, n->size);
                return;
        }
        (void)cas_digest_map_put(&rc->blobs, &n->digest, n->size);
}

static int mark_directory(const cas_digest *d, const cas_directory *dir, int error, void *userdata)
{
        reach *rc = userdata;
        char text[CAS_DIGEST_TEXT_MAX];

        /* reached before through another root (a walk itself visits each
         * directory once): its subtree is marked already */
        if (cas_digest_map_get(&rc->dirs, d, NULL))
                return 1;
        if (cas_digest_map_put(&rc->dirs, d, 1) < 0)
                return -ENOMEM;
        if (!dir) {
                problem(rc, "%s directory %s", error == -ENOENT ? "missing" : "corrupt",
                        cas_digest_to_text(d, text));
                return 0;
        }
        for (size_t i = 0; i < dir->n_files; i++)
                mark_blob(rc, &dir->files[i]);
        return 0;
}

static int mark_root(const char *name, const cas_node *root, int error, void *userdata)
{
        reach *rc = userdata;

        if (!root) {
                /* its closure is unknown: gc must not run (it could delete
                 * what the root held before its record was damaged) */
                rc->problems++;
                if (rc->report)
                        printf("corrupt root record %s\n", name);
                return 0;
        }
        rc->roots++;
        rc->root = root->name;
        if (root->type == CAS_NODE_FILE)
                mark_blob(rc, root);
        if (root->type != CAS_NODE_DIRECTORY || cas_digest_map_get(&rc->dirs, &root->digest, NULL))
                return 0;
        return cas_metastore_walk(rc->meta, &root->digest, mark_directory, rc);
}

static int reach_all(cas_store *s, reach *rc)
{
        rc->meta = s->meta;
        return cas_metastore_foreach_root_record(s->meta, mark_root, rc);
}

static void reach_done(reach *rc)
{
        cas_digest_map_done(&rc->dirs);
        cas_digest_map_done(&rc->blobs);
}

/* The blobs of the store, as listed. fsck's workers hash them while the
 * listing still goes on: cold, the listing alone reads a directory of every
 * blobs/ab/cd/ one after the other, and the hashing need not wait for it. */
typedef struct blob_list {
        pthread_mutex_t lock; /* protects the arrays, n, alloc, next and listed */
        pthread_cond_t more;  /* signalled per LIST_BATCH blobs listed and when the listing ends */
        cas_digest *d;
        uint64_t *size;
        uint8_t *state; /* fsck: 0 ok, 1 corrupt, 2 unreadable, 3 blob fine but its outboard corrupt */
        size_t n, alloc;
        size_t next; /* fsck: the next blob a worker takes */
        bool listed; /* fsck: the listing has ended; nothing beyond n will come */
        cas_store *store;
        _Atomic uint64_t bytes;
} blob_list;

#define BLOB_LIST_INIT {.lock = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER}
#define LIST_BATCH 64

static int collect_blob(const cas_digest *d, uint64_t size, void *userdata)
{
        blob_list *l = userdata;
        int r = 0;

        pthread_mutex_lock(&l->lock);
        if (l->n == l->alloc) {
                size_t na = l->alloc ? l->alloc * 2 : 1024;
                cas_digest *nd = realloc(l->d, na * sizeof(*nd));
                if (nd)
                        l->d = nd;
                uint64_t *ns = realloc(l->size, na * sizeof(*ns));
                if (ns)
                        l->size = ns;
                uint8_t *nst = realloc(l->state, na);
                if (nst)
                        l->state = nst;
                if (!nd || !ns || !nst)
                        r = -ENOMEM;
                else
                        l->alloc = na;
        }
        if (r == 0) {
                l->d[l->n] = *d;
                l->size[l->n] = size;
                l->state[l->n] = 0;
                l->n++;
                /* a worker woken per blob costs more than the blob: one per batch */
                if (l->n % LIST_BATCH == 0)
                        pthread_cond_signal(&l->more);
        }
        pthread_mutex_unlock(&l->lock);
        return r;
}

/* fsck: the listing has ended (failed: nothing more is hashed either) */
static void blob_list_end(blob_list *l, bool failed)
{
        pthread_mutex_lock(&l->lock);
        l->listed = true;
        if (failed)
                l->next = l->n;
        pthread_cond_broadcast(&l->more);
        pthread_mutex_unlock(&l->lock);
}

static void blob_list_done(blob_list *l)
{
        free(l->d);
        free(l->size);
        free(l->state);
        pthread_cond_destroy(&l->more);
        pthread_mutex_destroy(&l->lock);
}

/* Hashes blob d whole; its state (see blob_list) and, once it could be
 * opened, its size in *ret_size. */
static uint8_t rehash_blob(blob_list *l, const cas_digest *d, uint8_t *buf, size_t bufsize,
                           uint64_t *ret_size)
{
        cas_blob_reader *rd = NULL;
        cas_tree_hasher h;
        cas_digest got;
        _cleanup_free_ uint8_t *outboard = NULL, *stored = NULL;
        uint8_t state = 0;

        if (!buf || cas_blobstore_open(l->store->blobs, d, &rd) < 0)
                return 2;
        int fd = cas_blob_reader_fd(rd);
        if (fd >= 0)
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        cas_tree_hasher_init(&h);
        uint64_t size = cas_blob_reader_size(rd);
        *ret_size = size;
        for (uint64_t off = 0; off < size;) {
                ssize_t n = cas_blob_reader_pread(rd, buf, bufsize, off);
                if (n <= 0 || cas_tree_hasher_update(&h, buf, (size_t)n) < 0) {
                        state = 2;
                        break;
                }
                off += (uint64_t)n;
        }
        cas_blob_reader_free(rd);
        atomic_fetch_add(&l->bytes, size);
        /* the outboard comes with the hash: a stored one must equal it */
        if (!state && cas_tree_hasher_final(&h, &got, &outboard) < 0)
                state = 2;
        cas_tree_hasher_done(&h);
        if (state)
                return state;
        if (!cas_digest_eq(&got, d))
                return 1;
        if (outboard) {
                int k = cas_blobstore_get_outboard(l->store->blobs, d, size, &stored);
                if (k == -EBADMSG ||
                    (k >= 0 && memcmp(stored, outboard, (size_t)cas_outboard_size(size)) != 0))
                        return 3; /* a missing one is no damage: reads check the blob whole */
        }
        return 0;
}

/* Takes the blobs one after the other, waiting for the listing when it has
 * taken all listed so far, until the listing has ended. */
static void *rehash_worker(void *userdata)
{
        blob_list *l = userdata;
        const size_t bufsize = 1 << 20;
        _cleanup_free_ uint8_t *buf = malloc(bufsize);

        for (;;) {
                pthread_mutex_lock(&l->lock);
                while (l->next >= l->n && !l->listed)
                        pthread_cond_wait(&l->more, &l->lock);
                if (l->next >= l->n) {
                        pthread_mutex_unlock(&l->lock);
                        break;
                }
                size_t i = l->next++;
                cas_digest d = l->d[i]; /* a copy: the arrays move as they grow */
                pthread_mutex_unlock(&l->lock);

                uint64_t size = CAS_BLOB_SIZE_UNKNOWN;
                uint8_t state = rehash_blob(l, &d, buf, bufsize, &size);

                pthread_mutex_lock(&l->lock);
                l->state[i] = state;
                if (size != CAS_BLOB_SIZE_UNKNOWN)
                        l->size[i] = size;
                pthread_mutex_unlock(&l->lock);
        }
        return NULL;
}

typedef struct dir_list {
        cas_digest *d;
        size_t n, alloc;
} dir_list;

static int collect_dir(const cas_digest *d, void *userdata)
{
        dir_list *l = userdata;
        if (l->n == l->alloc) {
                size_t na = l->alloc ? l->alloc * 2 : 1024;
                cas_digest *nd = realloc(l->d, na * sizeof(*nd));
                if (!nd)
                        return -ENOMEM;
                l->d = nd;
                l->alloc = na;
        }
        l->d[l->n++] = *d;
        return 0;
}

int cmd_fsck(int argc, char **argv)
{
        static const struct option options[] = {
                {"verbose", no_argument, NULL, 'v'},
                {"threads", required_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        reach rc = {.report = true};
        blob_list blobs = BLOB_LIST_INIT;
        dir_list dirs = {0};
        bool verbose = false;
        /* many more threads than CPUs: cold, a thread mostly waits for the disk */
        unsigned n_threads = MIN(64u, 8 * (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
        uint64_t unref_blobs = 0, unref_dirs = 0;
        char text[CAS_DIGEST_TEXT_MAX];
        int c, r, status = 1;

        while ((c = getopt_long(argc, argv, "vj:h", options, NULL)) >= 0)
                switch (c) {
                case 'v':
                        verbose = true;
                        break;
                case 'j':
                        if (cli_parse_number("fsck", "threads", optarg, 1, 64, &n_threads) < 0)
                                return EXIT_USAGE;
                        break;
                case 'h':
                        printf("Usage: casfs [--store PATH] fsck [--verbose] [--threads N]\n\n"
                               "Re-hashes every blob (and compares a large blob's outboard with the\n"
                               "hash), re-validates every directory and every root record and walks\n"
                               "every root's closure. Prints one line per problem ('corrupt blob D',\n"
                               "'corrupt outboard D', 'corrupt root record NAME', 'missing directory\n"
                               "D (root NAME)', ...) and a summary; exit status 1 when there is any.\n"
                               "Unreferenced objects (left by an interrupted import, removed by\n"
                               "'casfs gc') are counted, not errors; --verbose lists them.\n");
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        if (optind != argc) {
                log_error("fsck: takes no arguments");
                return EXIT_USAGE;
        }
        if (cli_open_store(0, &s) < 0)
                return 1;

        /* 1: every blob against its name, hashed as the listing finds it */
        blobs.store = s;
        pthread_t threads[64];
        unsigned started = 0;
        for (; started < n_threads; started++)
                if (pthread_create(&threads[started], NULL, rehash_worker, &blobs) != 0)
                        break;
        r = cas_blobstore_foreach(s->blobs, collect_blob, &blobs);
        blob_list_end(&blobs, r < 0);
        if (started == 0)
                rehash_worker(&blobs);
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        if (r < 0) {
                log_error("fsck: listing blobs: %s", strerror(-r));
                goto finish;
        }
        cas_digest_map blob_state = {0};
        for (size_t i = 0; i < blobs.n; i++) {
                if (blobs.state[i] == 1)
                        printf("corrupt blob %s\n", cas_digest_to_text(&blobs.d[i], text));
                else if (blobs.state[i] == 2)
                        printf("unreadable blob %s\n", cas_digest_to_text(&blobs.d[i], text));
                else if (blobs.state[i] == 3)
                        printf("corrupt outboard %s\n", cas_digest_to_text(&blobs.d[i], text));
                if (blobs.state[i])
                        rc.problems++;
                uint64_t st = blobs.state[i] == 3 ? 0 : blobs.state[i];
                (void)cas_digest_map_put(&blob_state, &blobs.d[i], st << 62 | blobs.size[i]);
        }

        /* 2: every directory record (decoding checks hash, encoding, validity) */
        r = cas_metastore_foreach_directory(s->meta, collect_dir, &dirs);
        if (r < 0) {
                log_error("fsck: listing directories: %s", strerror(-r));
                cas_digest_map_done(&blob_state);
                goto finish;
        }
        for (size_t i = 0; i < dirs.n; i++) {
                _cleanup_free_ cas_directory *dir = NULL;
                r = cas_metastore_get_directory(s->meta, &dirs.d[i], &dir);
                if (r < 0) {
                        printf("corrupt directory %s\n", cas_digest_to_text(&dirs.d[i], text));
                        rc.problems++;
                }
        }

        /* 3: every root record, and every root's closure: directories present
         * and valid, blobs present with their size */
        r = reach_all(s, &rc);
        if (r < 0) {
                log_error("fsck: walking roots: %s", strerror(-r));
                cas_digest_map_done(&blob_state);
                goto finish;
        }
        /* blobs referenced but missing, unreadable or of another size */
        {
                size_t it = 0;
                cas_digest key;
                uint64_t want, st;
                while (cas_digest_map_next(&rc.blobs, &it, &key, &want)) {
                        if (!cas_digest_map_get(&blob_state, &key, &st)) {
                                printf("missing blob %s\n", cas_digest_to_text(&key, text));
                                rc.problems++;
                        } else if ((st >> 62) == 0 && (st & ((UINT64_C(1) << 62) - 1)) != want) {
                                printf("blob %s has %" PRIu64 " bytes, its references say %" PRIu64 "\n",
                                       cas_digest_to_text(&key, text), (uint64_t)(st & ((UINT64_C(1) << 62) - 1)), want);
                                rc.problems++;
                        }
                }
        }
        for (size_t i = 0; i < blobs.n; i++)
                if (!cas_digest_map_get(&rc.blobs, &blobs.d[i], NULL)) {
                        unref_blobs++;
                        if (verbose)
                                printf("unreferenced blob %s\n", cas_digest_to_text(&blobs.d[i], text));
                }
        for (size_t i = 0; i < dirs.n; i++)
                if (!cas_digest_map_get(&rc.dirs, &dirs.d[i], NULL)) {
                        unref_dirs++;
                        if (verbose)
                                printf("unreferenced directory %s\n", cas_digest_to_text(&dirs.d[i], text));
                }
        cas_digest_map_done(&blob_state);

        printf("fsck: %" PRIu64 " roots, %zu blobs (%.1f MiB), %zu directories checked; "
               "%" PRIu64 " problems; %" PRIu64 " unreferenced blobs, %" PRIu64 " unreferenced directories\n",
               rc.roots, blobs.n, (double)atomic_load(&blobs.bytes) / 1048576.0, dirs.n, rc.problems,
               unref_blobs, unref_dirs);
        status = rc.problems ? 1 : 0;
finish:
        blob_list_done(&blobs);
        free(dirs.d);
        reach_done(&rc);
        if (fflush(stdout) != 0)
                status = 1;
        return status;
}

static bool blob_unreached(const cas_digest *d, void *userdata)
{
        const reach *rc = userdata;
        return !cas_digest_map_get(&rc->blobs, d, NULL);
}

int cmd_gc(int argc, char **argv)
{
        static const struct option options[] = {
                {"dry-run", no_argument, NULL, 'n'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        reach rc = {.report = false};
        blob_list blobs = BLOB_LIST_INIT;
        dir_list dirs = {0};
        bool dry_run = false;
        uint64_t n_blobs = 0, bytes = 0, n_tmp = 0;
        _cleanup_free_ cas_digest *dead = NULL;
        size_t n_dead = 0;
        int c, r, status = 1;

        while ((c = getopt_long(argc, argv, "nh", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        dry_run = true;
                        break;
                case 'h':
                        printf("Usage: casfs [--store PATH] gc [--dry-run]\n\n"
                               "Deletes every blob and directory that no root reaches, and prints\n"
                               "how many objects and bytes were freed. Waits for imports in progress\n"
                               "to finish (and imports wait for it). Refuses to run when a root's\n"
                               "record or closure is damaged: run 'casfs fsck' first.\n");
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        if (optind != argc) {
                log_error("gc: takes no arguments");
                return EXIT_USAGE;
        }
        if (cli_open_store(0, &s) < 0)
                return 1;
        if (s->remote) { /* chunks are shared by blobs, and directories by closures */
                log_error("gc: %s: not supported on a remote store", s->path);
                return 1;
        }
        r = cas_store_lock(s, true);
        if (r < 0) {
                log_error("gc: cannot lock the store: %s", strerror(-r));
                return 1;
        }
        r = reach_all(s, &rc);
        if (r < 0) {
                log_error("gc: walking roots: %s", strerror(-r));
                goto finish;
        }
        if (rc.problems) {
                log_error("gc: %" PRIu64 " damaged root records or missing or corrupt directories "
                          "below the roots; nothing deleted (run 'casfs fsck')", rc.problems);
                goto finish;
        }

        r = cas_blobstore_foreach(s->blobs, collect_blob, &blobs);
        if (r >= 0)
                r = cas_metastore_foreach_directory(s->meta, collect_dir, &dirs);
        if (r < 0) {
                log_error("gc: listing the store: %s", strerror(-r));
                goto finish;
        }
        /* the import cache first, then directories, then blobs: a crash in
         * between leaves blobs without references, never references (or
         * cache entries) without blobs */
        if (!dry_run) {
                r = cas_metastore_statcache_prune(s->meta, blob_unreached, &rc);
                if (r < 0) {
                        log_error("gc: pruning the import cache: %s", strerror(-r));
                        goto finish;
                }
        }
        dead = calloc(dirs.n ?: 1, sizeof(cas_digest));
        if (!dead)
                goto finish;
        for (size_t i = 0; i < dirs.n; i++)
                if (!cas_digest_map_get(&rc.dirs, &dirs.d[i], NULL))
                        dead[n_dead++] = dirs.d[i];
        if (!dry_run) {
                r = cas_metastore_remove_directories(s->meta, dead, n_dead);
                if (r < 0) {
                        log_error("gc: removing directories: %s", strerror(-r));
                        goto finish;
                }
        }
        for (size_t i = 0; i < blobs.n; i++) {
                if (cas_digest_map_get(&rc.blobs, &blobs.d[i], NULL))
                        continue;
                uint64_t size = blobs.size[i];
                if (size == CAS_BLOB_SIZE_UNKNOWN && cas_blobstore_stat(s->blobs, &blobs.d[i], &size) < 0)
                        size = 0;
                if (!dry_run) {
                        r = cas_blobstore_remove(s->blobs, &blobs.d[i]);
                        if (r < 0 && r != -ENOENT) {
                                char text[CAS_DIGEST_TEXT_MAX];
                                log_error("gc: removing blob %s: %s", cas_digest_to_text(&blobs.d[i], text),
                                          strerror(-r));
                                goto finish;
                        }
                }
                n_blobs++;
                bytes += size;
        }
        if (!dry_run)
                (void)cas_blobstore_clean_temporary(s->blobs, 3600, &n_tmp);
        printf("gc: %s %" PRIu64 " blobs (%" PRIu64 " bytes) and %zu directories; kept %zu blobs and %zu directories\n",
               dry_run ? "would remove" : "removed", n_blobs, bytes, n_dead, blobs.n - (size_t)n_blobs,
               dirs.n - n_dead);
        status = 0;
finish:
        cas_store_unlock(s);
        blob_list_done(&blobs);
        free(dirs.d);
        reach_done(&rc);
        return status;
}
