/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "cli.h"
#include "import.h"
#include "macro.h"

static void import_help(FILE *f)
{
        fprintf(f,
                "Usage: casfs [--store PATH] import [OPTIONS] PATH...\n"
                "\n"
                "Imports each PATH (a directory tree, a file or a symlink) into the store\n"
                "and registers it as a root, replacing a root of the same name atomically.\n"
                "Prints one line per PATH: 'NAME DIGEST' (for a symlink: 'NAME symlink TARGET').\n"
                "Nothing is registered unless every PATH imports.\n"
                "Into an object store (--store file://, s3://), content is chunked, compressed\n"
                "and uploaded as it is read; only what the store lacks is sent.\n"
                "\n"
                "Options:\n"
                "  -n, --name NAME     the root's name (one PATH only; default: PATH's last component)\n"
                "      --skip-special  skip sockets, FIFOs and devices with a warning\n"
                "                      (default: they are an error)\n"
                "  -j, --threads N     worker threads reading, hashing and storing (default: the\n"
                "                      number of CPUs; 32 into an object store, where they upload)\n"
                "      --no-cache      re-read files even when unchanged since an earlier import\n"
                "  -q, --quiet         no progress (default: progress when stderr is a terminal)\n"
                "  -h, --help          show this help\n");
}

static void warn_cb(void *userdata, const char *path, const char *message)
{
        log_warning("%s: %s", path, message);
}

typedef struct progress_state {
        cas_import_progress *p;
        double start;
} progress_state;

static double now_s(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void show_progress(void *userdata)
{
        progress_state *ps = userdata;
        uint64_t ff = atomic_load(&ps->p->files_found), fd = atomic_load(&ps->p->files_done);
        uint64_t bf = atomic_load(&ps->p->bytes_found), bd = atomic_load(&ps->p->bytes_done);
        bool walked = atomic_load(&ps->p->walk_done);
        double el = now_s() - ps->start, rate = el > 0 ? (double)bd / el : 0;
        char eta[32] = "";

        if (walked && rate > 0 && bf > bd)
                snprintf(eta, sizeof(eta), ", ETA %.0fs", (double)(bf - bd) / rate);
        fprintf(stderr, "\r\033[K%" PRIu64 "/%" PRIu64 "%s files, %.1f/%.1f MiB, %.1f MiB/s%s",
                fd, ff, walked ? "" : "+", (double)bd / 1048576.0, (double)bf / 1048576.0,
                rate / 1048576.0, eta);
}

/* The default root name: the last component of the absolute path. */
static int default_name(const char *path, char **ret)
{
        char abs[PATH_MAX];
        _cleanup_free_ char *copy = NULL;
        char *slash;

        /* the symlink itself is imported, so resolve only the parent */
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
                copy[strlen(copy) - 1] = 0;
        slash = strrchr(copy, '/');
        const char *last = slash ? slash + 1 : copy;
        if (strcmp(last, ".") == 0 || strcmp(last, "..") == 0 || *last == 0) {
                if (!realpath(path, abs))
                        return -errno;
                last = strrchr(abs, '/') + 1;
                if (!*last)
                        return -EINVAL;
        }
        *ret = strdup(last);
        return *ret ? 0 : -ENOMEM;
}

int cmd_import(int argc, char **argv)
{
        static const struct option options[] = {
                {"name", required_argument, NULL, 'n'},
                {"skip-special", no_argument, NULL, 'S'},
                {"threads", required_argument, NULL, 'j'},
                {"no-cache", no_argument, NULL, 'C'},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *arg_name = NULL;
        cas_import_options o = {.warn = warn_cb};
        bool quiet = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "n:j:qh", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        arg_name = optarg;
                        break;
                case 'S':
                        o.skip_special = true;
                        break;
                case 'j':
                        if (cli_parse_number("import", "threads", optarg, 1, 64, &o.threads) < 0)
                                return EXIT_USAGE;
                        break;
                case 'C':
                        o.no_cache = true;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        import_help(stdout);
                        return 0;
                default:
                        fprintf(stderr, "Try 'casfs import --help'.\n");
                        return EXIT_USAGE;
                }
        int n_paths = argc - optind;
        if (n_paths < 1) {
                log_error("import: no PATH given; try 'casfs import --help'");
                return EXIT_USAGE;
        }
        if (arg_name && n_paths > 1) {
                log_error("import: --name takes one PATH only");
                return EXIT_USAGE;
        }

        _cleanup_(cas_store_freep) cas_store *s = NULL;
        r = cli_open_store(CAS_STORE_CREATE, &s);
        if (r < 0 || cli_require_writable("import", s) < 0)
                return 1;
        /* into an object store, a worker mostly waits for its uploads: many
         * more workers than CPUs keep the connection busy */
        if (s->remote && !o.threads)
                o.threads = 32;
        r = cas_store_lock(s, false);
        if (r < 0) {
                log_error("cannot lock the store: %s", strerror(-r));
                return 1;
        }

        _cleanup_free_ cas_node **nodes = calloc((size_t)n_paths, sizeof(cas_node *));
        if (!nodes)
                return 1;
        int status = 0;
        for (int i = 0; i < n_paths && status == 0; i++) {
                const char *path = argv[optind + i];
                _cleanup_free_ char *name = NULL, *error = NULL;
                cas_import_progress progress = {0};
                progress_state ps = {.p = &progress};
                cli_progress pr;

                if (arg_name)
                        name = strdup(arg_name);
                else if (default_name(path, &name) < 0) {
                        log_error("import: %s: cannot derive a root name; give --name", path);
                        status = 1;
                        break;
                }
                if (!name)
                        return 1;
                for (int k = 0; k < i; k++)
                        if (strcmp(nodes[k]->name, name) == 0) {
                                log_error("import: %s: root name '%s' given twice", path, name);
                                status = 1;
                        }
                if (status)
                        break;

                o.progress = &progress;
                ps.start = now_s();
                cli_progress_start(&pr, !quiet && isatty(STDERR_FILENO), show_progress, &ps);
                r = cas_import(s, path, name, &o, &nodes[i], &error);
                cli_progress_stop(&pr);
                if (r < 0) {
                        log_error("import: %s", error ? error : strerror(-r));
                        status = 1;
                }
        }
        if (status == 0) {
                r = cas_metastore_set_roots(s->meta, nodes, (size_t)n_paths);
                if (r < 0) {
                        log_error("import: registering the roots: %s", strerror(-r));
                        status = 1;
                }
        }
        if (status == 0)
                for (int i = 0; i < n_paths; i++) {
                        const cas_node *n = nodes[i];
                        char text[CAS_DIGEST_TEXT_MAX];
                        if (n->type == CAS_NODE_SYMLINK)
                                printf("%s symlink %s\n", n->name, n->target);
                        else
                                printf("%s %s\n", n->name, cas_digest_to_text(&n->digest, text));
                }
        for (int i = 0; i < n_paths; i++)
                free(nodes[i]);
        cas_store_unlock(s);
        if (fflush(stdout) != 0)
                status = 1;
        return status;
}
