/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "cli.h"
#include "copy.h"
#include "macro.h"

/* copy: roots and all they reach from one store to another. */

typedef struct copy_progress_state {
        cas_copy_progress *p;
        const char *root; /* protected by the progress's lock */
} copy_progress_state;

static void show_progress(void *userdata)
{
        copy_progress_state *ps = userdata;

        fprintf(stderr, "\r\033[K%s: %" PRIu64 "/%" PRIu64 " blobs, %.1f/%.1f MiB", ps->root ?: "",
                atomic_load(&ps->p->blobs_done), atomic_load(&ps->p->blobs_wanted),
                (double)atomic_load(&ps->p->bytes_done) / 1048576.0,
                (double)atomic_load(&ps->p->bytes_wanted) / 1048576.0);
}

typedef struct root_list {
        cas_node **nodes;
        size_t n, alloc;
} root_list;

static int add_root(const cas_node *n, void *userdata)
{
        root_list *l = userdata;
        if (CAS_GROW(l->nodes, l->alloc, l->n, 16) < 0)
                return -ENOMEM;
        l->nodes[l->n] = cas_node_dup(n, NULL, 0);
        if (!l->nodes[l->n])
                return -ENOMEM;
        l->n++;
        return 0;
}

static void root_list_done(root_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->nodes[i]);
        free(l->nodes);
}

int cmd_copy(int argc, char **argv)
{
        static const struct option options[] = {
            {"jobs", required_argument, NULL, 'j'},
            {"quiet", no_argument, NULL, 'q'},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        _cleanup_(cas_store_freep) cas_store *src = NULL, *dst = NULL;
        cas_copy_progress progress = {0};
        cas_copy_options o = {.jobs = 32, .progress = &progress};
        root_list roots = {0};
        bool quiet = false, verbose = false;
        int c, r, status = 1;

        while ((c = getopt_long(argc, argv, "j:qvh", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        if (cli_parse_number("copy", "jobs", optarg, 1, 256, &o.jobs) < 0)
                                return EXIT_USAGE;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'v':
                        verbose = true;
                        break;
                case 'h':
                        printf(
                            "Usage: casfs [--s3-endpoint URL] [--ca-bundle FILE] copy [--jobs N] "
                            "[--verbose]\n"
                            "       SRC DST [NAME...]\n\n"
                            "Copies roots (every root of SRC when none is named) with everything "
                            "they\n"
                            "reach from the store SRC to the store DST: a local store's path,\n"
                            "file:///PATH, s3://BUCKET[/PREFIX], or http(s)://HOST[:PORT]/PREFIX "
                            "(as SRC\n"
                            "only). Sends only what DST lacks, N blobs at once (--jobs, default "
                            "32).\n"
                            "A root is written once everything it reaches is in DST, so an "
                            "interrupted\n"
                            "copy leaves DST valid and a rerun sends only what is missing. Prints\n"
                            "'NAME DIGEST' per root; progress on stderr when it is a terminal "
                            "(not\n"
                            "with --quiet); with --verbose, a summary of what was sent on "
                            "stderr.\n");
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        if (argc - optind < 2) {
                log_error("copy: takes SRC DST [NAME...]");
                return EXIT_USAGE;
        }
        const char *src_addr = argv[optind], *dst_addr = argv[optind + 1];
        if (cli_open_address(src_addr, 0, &src) < 0)
                return 1;
        if (cli_open_address(dst_addr, CAS_STORE_CREATE, &dst) < 0 ||
            cli_require_writable("copy", dst) < 0)
                return 1;
        if (optind + 2 == argc) {
                r = cas_metastore_foreach_root(src->meta, add_root, &roots);
                if (r < 0) {
                        log_error("copy: listing the roots of %s: %s", src->path, strerror(-r));
                        goto finish;
                }
        } else
                for (int i = optind + 2; i < argc; i++) {
                        _cleanup_free_ cas_node *n = NULL;
                        r = cas_metastore_get_root(src->meta, argv[i], &n);
                        if (r < 0) {
                                log_error("copy: root %s in %s %s", argv[i], src->path,
                                          r == -ENOENT    ? "does not exist"
                                          : r == -EBADMSG ? "is corrupt"
                                                          : strerror(-r));
                                goto finish;
                        }
                        r = add_root(n, &roots);
                        if (r < 0)
                                goto finish;
                }

        /* as an import holds them: gc waits, in SRC (whose objects are read)
         * and in DST (whose new objects no root reaches until the end) */
        r = cas_store_lock(src, false);
        if (r >= 0) {
                r = cas_store_lock(dst, false);
                if (r < 0)
                        cas_store_unlock(src);
        }
        if (r < 0) {
                log_error("copy: cannot lock the stores: %s", strerror(-r));
                goto finish;
        }
        copy_progress_state ps = {.p = &progress};
        cli_progress pr;
        bool show = cli_progress_start(&pr, !quiet && isatty(STDERR_FILENO), show_progress, &ps);
        status = 0;
        for (size_t i = 0; i < roots.n; i++) {
                _cleanup_free_ char *error = NULL;
                char text[CAS_DIGEST_TEXT_MAX];
                const cas_node *n = roots.nodes[i];

                pthread_mutex_lock(&pr.lock);
                ps.root = n->name;
                pthread_mutex_unlock(&pr.lock);
                r = cas_copy_root(src, dst, n, &o, &error);
                if (r < 0) {
                        if (show)
                                fputs("\r\033[K", stderr);
                        log_error("copy: %s: %s", n->name, error ?: strerror(-r));
                        status = 1;
                        break; /* what was copied stays; a rerun goes on from there */
                }
                printf("%s %s\n", n->name,
                       n->type == CAS_NODE_SYMLINK ? "-" : cas_digest_to_text(&n->digest, text));
                fflush(stdout);
        }
        cli_progress_stop(&pr);
        cas_store_unlock(dst);
        cas_store_unlock(src);
        if (verbose)
                fprintf(stderr,
                        "copy: sent %" PRIu64 " blobs (%" PRIu64 " bytes), %" PRIu64
                        " directory trees, %" PRIu64 " roots; %" PRIu64
                        " blobs were there already\n",
                        atomic_load(&progress.blobs_sent), atomic_load(&progress.bytes_sent),
                        atomic_load(&progress.trees_sent), atomic_load(&progress.roots_sent),
                        atomic_load(&progress.blobs_present));
finish:
        root_list_done(&roots);
        if (fflush(stdout) != 0)
                status = 1;
        return status;
}
