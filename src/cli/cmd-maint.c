/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "cache.h"
#include "cli.h"
#include "fsck.h"
#include "gc.h"
#include "macro.h"

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
        r = cli_start("rm", argc, 1, INT_MAX, "NAME...", &s);
        if (r >= 0)
                return r;
        if (cli_require_writable("rm", s) < 0)
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

/* One line per finding, as fsck prints it. */
typedef struct fsck_output {
        bool verbose; /* also list unreferenced objects */
        bool cache;   /* the store is a remote store's cache (cache.h) */
        uint64_t uncached; /* a cache's blobs referenced and not fetched: no problem there */
} fsck_output;

static void print_finding(const cas_fsck_finding *f, void *userdata)
{
        static const char *const lines[] = {
                [CAS_FSCK_CORRUPT_BLOB] = "corrupt blob %s",
                [CAS_FSCK_UNREADABLE_BLOB] = "unreadable blob %s",
                [CAS_FSCK_CORRUPT_OUTBOARD] = "corrupt outboard %s",
                [CAS_FSCK_CORRUPT_DIRECTORY] = "corrupt directory %s",
                [CAS_FSCK_MISSING_DIRECTORY] = "missing directory %s",
                [CAS_FSCK_MISSING_BLOB] = "missing blob %s",
                [CAS_FSCK_UNREFERENCED_BLOB] = "unreferenced blob %s",
                [CAS_FSCK_UNREFERENCED_DIRECTORY] = "unreferenced directory %s",
        };
        fsck_output *o = userdata;
        char text[CAS_DIGEST_TEXT_MAX];

        cas_digest_to_text(&f->digest, text);
        if (o->cache && f->kind == CAS_FSCK_MISSING_BLOB) {
                o->uncached++;
                return;
        }
        switch (f->kind) {
        case CAS_FSCK_UNREFERENCED_BLOB:
        case CAS_FSCK_UNREFERENCED_DIRECTORY:
                if (!o->verbose)
                        return;
                break;
        case CAS_FSCK_CORRUPT_ROOT:
                printf("corrupt root record %s\n", f->root);
                return;
        case CAS_FSCK_BLOB_SIZES:
                printf("blob %s is referenced with sizes %" PRIu64 " and %" PRIu64, text, f->size, f->want);
                break;
        case CAS_FSCK_BLOB_SIZE:
                printf("blob %s has %" PRIu64 " bytes, its references say %" PRIu64 "\n", text, f->size, f->want);
                return;
        default:
                break;
        }
        if (f->kind < ELEMENTSOF(lines) && lines[f->kind])
                printf(lines[f->kind], text);
        if (f->root) /* found walking a root */
                printf(" (root %s)", f->root);
        putchar('\n');
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
        fsck_output o = {0};
        cas_fsck_stats st;
        /* many more threads than CPUs: cold, a thread mostly waits for the disk */
        unsigned n_threads = MIN(64u, 8 * (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
        int c, r, status;

        while ((c = getopt_long(argc, argv, "vj:h", options, NULL)) >= 0)
                switch (c) {
                case 'v':
                        o.verbose = true;
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
        r = cli_start("fsck", argc, 0, 0, "no arguments", &s);
        if (r >= 0)
                return r;

        o.cache = cas_cache_is_cache(s->dir_fd) > 0;
        r = cas_fsck(s->blobs, s->meta, n_threads, print_finding, &o, &st);
        status = 1;
        if (r >= 0 && o.cache) {
                /* the blobs a cache never fetched are the remote's */
                st.problems -= MIN(st.problems, o.uncached);
                printf("fsck: a cache of a remote store: %" PRIu64 " blobs referenced are not cached\n",
                       o.uncached);
        }
        if (r >= 0) {
                printf("fsck: %" PRIu64 " roots, %" PRIu64 " blobs (%.1f MiB), %" PRIu64 " directories checked; "
                       "%" PRIu64 " problems; %" PRIu64 " unreferenced blobs, %" PRIu64 " unreferenced directories\n",
                       st.roots, st.blobs, (double)st.blob_bytes / 1048576.0, st.directories, st.problems,
                       st.unreferenced_blobs, st.unreferenced_directories);
                status = st.problems ? 1 : 0;
        }
        if (fflush(stdout) != 0)
                status = 1;
        return status;
}

int cmd_gc(int argc, char **argv)
{
        static const struct option options[] = {
                {"dry-run", no_argument, NULL, 'n'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        bool dry_run = false;
        cas_gc_stats st;
        int c, r;

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
        r = cli_start("gc", argc, 0, 0, "no arguments", &s);
        if (r >= 0)
                return r;
        if (s->remote) { /* chunks are shared by blobs, and directories by closures */
                log_error("gc: %s: not supported on a remote store", s->path);
                return 1;
        }
        r = cas_store_lock(s, true);
        if (r < 0) {
                log_error("gc: cannot lock the store: %s", strerror(-r));
                return 1;
        }
        r = cas_gc(s->blobs, s->meta, dry_run, &st);
        cas_store_unlock(s);
        if (r < 0)
                return 1;
        printf("gc: %s %" PRIu64 " blobs (%" PRIu64 " bytes) and %" PRIu64 " directories; kept %" PRIu64
               " blobs and %" PRIu64 " directories\n",
               dry_run ? "would remove" : "removed", st.blobs, st.bytes, st.directories, st.kept_blobs,
               st.kept_directories);
        return 0;
}
