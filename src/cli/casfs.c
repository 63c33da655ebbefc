/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "macro.h"

const char *arg_store = NULL;
const char *arg_s3_endpoint = NULL;
const char *arg_ca_bundle = NULL;

/* One line for a remote store that cannot be opened: objstore's own line
 * (it names the store, never the credentials) where it left one. */
static int remote_open_failed(const char *address, int r)
{
        const char *e = cas_objstore_last_error();

        if (r == -EINVAL)
                log_error("%s: not a valid store address (file:///PATH, s3://BUCKET[/PREFIX], "
                          "http(s)://HOST[:PORT]/PREFIX)", address);
        else if (e && *e)
                log_error("%s", e);
        else if (r == -ENOENT)
                log_error("%s: no such bucket or folder", address);
        else
                log_error("%s: cannot open store: %s", address, strerror(-r));
        return r;
}

int cli_open_address(const char *path, int flags, cas_store **ret)
{
        cas_objstore_options o = {.s3_endpoint = arg_s3_endpoint, .ca_bundle = arg_ca_bundle};
        int r;

        r = cas_store_open_address(path, flags, &o, ret);
        if (r < 0 && cas_objstore_is_address(path))
                return remote_open_failed(path, r);
        if (r == -ENOENT)
                log_error("%s: no store there (import something first, or check --store)", path);
        else if (r == -EPROTONOSUPPORT)
                log_error("%s: not a casfs store of a format this version knows", path);
        else if (r < 0)
                log_error("%s: cannot open store: %s", path, strerror(-r));
        return r;
}

int cli_require_writable(const char *cmd, cas_store *s)
{
        if (s->remote && !cas_objstore_writable(s->remote)) {
                log_error("%s: %s: a web server's store is read-only (write through s3:// or file://)",
                          cmd, s->path);
                return -EROFS;
        }
        return 0;
}

int cli_open_store(int flags, cas_store **ret)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (arg_store)
                path = strdup(arg_store);
        else {
                r = cas_store_default_path(&path);
                if (r < 0) {
                        log_error("no store given: set --store, $CASFS_STORE or $HOME");
                        return r;
                }
        }
        if (!path)
                return -ENOMEM;
        return cli_open_address(path, flags, ret);
}

int cli_start(const char *cmd, int argc, int min_args, int max_args, const char *takes, cas_store **ret)
{
        if (argc - optind < min_args || argc - optind > max_args) {
                log_error("%s: takes %s", cmd, takes);
                return EXIT_USAGE;
        }
        if (cli_open_store(0, ret) < 0)
                return 1;
        return -1;
}

int cli_parse_uid_gid(const char *s, unsigned *ret_uid, unsigned *ret_gid)
{
        char *end;
        unsigned long u, g;

        errno = 0;
        u = strtoul(s, &end, 10);
        if (errno || end == s || *end != ':' || s[0] == '-')
                return -EINVAL;
        s = end + 1;
        g = strtoul(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || u > UINT32_MAX - 1 || g > UINT32_MAX - 1)
                return -EINVAL;
        *ret_uid = (unsigned)u;
        *ret_gid = (unsigned)g;
        return 0;
}

int cli_parse_number(const char *cmd, const char *option, const char *s, unsigned min, unsigned max,
                     unsigned *ret)
{
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end == s || *end || n < (long)min || n > (long)max) {
                log_error("%s: --%s takes a number from %u to %u", cmd, option, min, max);
                return -EINVAL;
        }
        *ret = (unsigned)n;
        return 0;
}

int cli_engine_option(const char *cmd, int c, const char *arg, cas_engine_options *eo)
{
        unsigned u, g;

        switch (c) {
        case 'L':
                eo->list_root = true;
                return 1;
        case 'U':
                if (cli_parse_uid_gid(arg, &u, &g) < 0) {
                        log_error("%s: --uid-gid takes U:G, two numbers", cmd);
                        return -EINVAL;
                }
                eo->set_owner = true;
                eo->uid = u;
                eo->gid = g;
                return 1;
        case 'X':
                eo->xattr = true;
                return 1;
        case 'N':
                eo->verify = false;
                return 1;
        case 'P':
                if (cli_parse_number(cmd, "prefetch", arg, 0, 1024, &u) < 0)
                        return -EINVAL;
                eo->prefetch = u;
                return 1;
        case 'd':
                cas_log_set_max_level(CAS_LOG_DEBUG); /* each request, by its opcode's name */
                return 1;
        }
        return cli_roots_option(cmd, c, arg, eo);
}

void cli_serve_options_done(cli_serve_options *so)
{
        free(so->log_path);
        so->log_path = NULL;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
               void (*help)(FILE *f), cli_serve_options *so)
{
        int c, r;

        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) >= 0) {
                if (c == 'h') {
                        help(stdout);
                        return CLI_GETOPT_HELP;
                }
                if (c == '?') {
                        fprintf(stderr, "Try 'casfs %s --help'.\n", cmd);
                        return CLI_GETOPT_USAGE;
                }
                if (c == 'l') {
                        cli_serve_options_done(so);
                        if (cli_log_check(cmd, optarg, &so->log_path) < 0)
                                return CLI_GETOPT_FAIL;
                        continue;
                }
                r = cli_engine_option(cmd, c, optarg, &so->eo);
                if (r == 0)
                        r = cli_remote_option(cmd, c, optarg, &so->ro);
                if (r < 0)
                        return r == -EINVAL ? CLI_GETOPT_USAGE : CLI_GETOPT_FAIL;
                if (r == 0)
                        break;
        }
        return c;
}

int cli_getopt_status(int c)
{
        return c == CLI_GETOPT_HELP ? 0 : c == CLI_GETOPT_FAIL ? 1 : EXIT_USAGE;
}

void cli_block_stop_signals(sigset_t *ret)
{
        sigemptyset(ret);
        sigaddset(ret, SIGINT);
        sigaddset(ret, SIGTERM);
        sigaddset(ret, SIGHUP);
        pthread_sigmask(SIG_BLOCK, ret, NULL);
}

/* The serving commands run without glibc's per-thread cache of freed blocks
 * (tcache): it keeps a few blocks of every size each thread freed, scattered
 * over the heap, and each keeps a page resident; after the kernel drops its
 * caches and FORGETs the inodes, they were most of what stayed of the
 * daemon's memory. The cache can only be switched off through the
 * environment, read as the process starts, so the command starts again with
 * it set (once: the setting is there the second time). Not under a
 * sanitizer or valgrind, which bring their own allocator. */
static void restart_without_malloc_cache(char **argv)
{
#ifndef __SANITIZE_ADDRESS__
        const char *t = getenv("GLIBC_TUNABLES"), *preload = getenv("LD_PRELOAD");
        _cleanup_free_ char *v = NULL;

        if ((t && strstr(t, "glibc.malloc.tcache_count")) || (preload && strstr(preload, "vgpreload")))
                return;
        if (asprintf(&v, "%s%sglibc.malloc.tcache_count=0", t ?: "", t ? ":" : "") < 0)
                return;
        if (setenv("GLIBC_TUNABLES", v, 1) < 0)
                return;
        /* the binary by its path, not as /proc/self/exe: the process is
         * named after the file it runs ("exe" otherwise, in ps and top) */
        char path[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (n > 0) {
                path[n] = 0;
                (void)execv(path, argv);
        }
        (void)execv("/proc/self/exe", argv);
        /* no /proc, or the binary is gone: go on with the cache */
#endif
}

/* The serving commands' heap: fixed thresholds (glibc adapts both
 * otherwise). A freed 2 MiB block, as LMDB's at closing a store, would raise
 * the trim threshold to 4 MiB, and each worker thread's arena would keep up
 * to that much free memory resident for good (malloc_trim does not trim the
 * top of a thread's arena). With these, memory freed after FORGETs goes back
 * to the system. */
static void tune_malloc(void)
{
        (void)mallopt(M_MMAP_THRESHOLD, 256 * 1024);
        (void)mallopt(M_TRIM_THRESHOLD, 256 * 1024);
        (void)mallopt(M_MXFAST, 0);
}

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
        bool serves; /* a long-running server (see restart_without_malloc_cache) */
} commands[] = {
        {"import", cmd_import, "import files or trees and register them as roots"},
        {"roots", cmd_roots, "list the roots: name, type, digest, size"},
        {"ls", cmd_ls, "list a directory of a root"},
        {"cat", cmd_cat, "write a file's contents (verified) to standard output"},
        {"stat", cmd_stat, "show a node: type, digest, size, executable, target"},
        {"rm", cmd_rm, "remove a root (its objects stay until gc)"},
        {"copy", cmd_copy, "copy roots with all they reach from one store to another"},
        {"fsck", cmd_fsck, "verify every object and every root's closure"},
        {"gc", cmd_gc, "delete the objects no root reaches"},
        {"mount", cmd_mount, "mount the roots as a read-only FUSE filesystem", true},
        {"virtiofs", cmd_virtiofs, "serve the roots to a virtual machine (vhost-user-fs)", true},
};

static void help(FILE *f)
{
        fprintf(f,
                "Usage: casfs [--store STORE] [--s3-endpoint URL] [--ca-bundle FILE] COMMAND [ARGS...]\n"
                "\n"
                "A content-addressed store for file trees (tvix castore compatible),\n"
                "mountable as a read-only filesystem.\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
        fprintf(f,
                "\n"
                "Options:\n"
                "  --store STORE the store: a local store's PATH, file:///PATH, s3://BUCKET[/PREFIX]\n"
                "                or http(s)://HOST[:PORT]/PREFIX (read-only); default: $CASFS_STORE,\n"
                "                else ${XDG_DATA_HOME:-~/.local/share}/casfs; created on first import\n"
                "  --s3-endpoint URL  the S3 endpoint (default: $AWS_ENDPOINT_URL, else AWS);\n"
                "                credentials from $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY,\n"
                "                $AWS_SESSION_TOKEN, the region from $AWS_REGION\n"
                "  --ca-bundle FILE  CA certificates for https and s3 (default: $CASFS_CA_BUNDLE)\n"
                "  -h, --help    show this help\n"
                "  --version     show the version\n"
                "\n"
                "'casfs COMMAND --help' describes each command. Exit status: 0 success,\n"
                "1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"store", required_argument, NULL, 's'},
                {"s3-endpoint", required_argument, NULL, 'E'},
                {"ca-bundle", required_argument, NULL, 'C'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        int c;

        /* run as /sbin/mount.casfs (a link to casfs): the helper of mount(8) */
        const char *base = strrchr(argv[0], '/');
        if (strcmp(base ? base + 1 : argv[0], "mount.casfs") == 0) {
                restart_without_malloc_cache(argv);
                return cli_mount_helper(argc, argv);
        }

        /* stop at the command: its options are its own */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        arg_store = optarg;
                        break;
                case 'E':
                        arg_s3_endpoint = optarg;
                        break;
                case 'C':
                        arg_ca_bundle = optarg;
                        break;
                case 'h':
                        help(stdout);
                        return 0;
                case 'V':
                        printf("casfs %s\n", CASFS_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'casfs --help'.\n");
                        return EXIT_USAGE;
                }
        if (optind >= argc) {
                help(stderr);
                return EXIT_USAGE;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[optind], commands[i].name) == 0) {
                        if (commands[i].serves) {
                                restart_without_malloc_cache(argv);
                                tune_malloc();
                        }
                        argc -= optind;
                        argv += optind;
                        optind = 0; /* let the command run getopt afresh */
                        return commands[i].run(argc, argv);
                }
        log_error("unknown command '%s'; try 'casfs --help'", argv[optind]);
        return EXIT_USAGE;
}
