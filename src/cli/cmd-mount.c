/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "fuse-dev.h"
#include "macro.h"

static void mount_help(FILE *f)
{
        fputs("Usage: casfs [--store PATH] mount [OPTIONS] MOUNTPOINT\n"
              "\n"
              "Mounts the store's roots as a read-only filesystem: each root appears\n"
              "under its name at the top of MOUNTPOINT; everything is loaded lazily and\n"
              "read straight from the store. Roots added, replaced or removed while\n"
              "mounted show at the top without a remount. Without -f, returns once the\n"
              "mount answers and keeps serving in the background, detached: its own\n"
              "session, standard input, output and error on /dev/null. SIGINT, SIGTERM\n"
              "and 'fusermount3 -u MOUNTPOINT' (or umount) end it and unmount.\n"
              "\n"
              "Options:\n", f);
        cli_roots_help(f, 21);
        fprintf(f,
                "  -j, --threads N    worker threads (default: number of CPUs)\n"
                "      --allow-other  let other users access the mount\n"
                "      --uid-gid U:G  report owner U and group G (default: 0:0)\n"
                "      --xattr        expose user.castore.directory.digest / user.castore.blob.digest\n"
                "  -f, --foreground   stay in the foreground (logs go to stderr)\n"
                "      --log FILE     append the daemon's log lines (damaged objects, ...) to FILE\n"
                "                     (default: stderr with -f; in the background syslog, tag\n"
                "                     'casfs', else " CLI_LOG_DEFAULT_ROOT " for root and\n"
                "                     " CLI_LOG_DEFAULT_USER " for others)\n"
                "      --no-verify    serve blobs without checking them against their digest\n"
                "                     (default: a blob is checked before its first byte is served;\n"
                "                     a corrupt one reads as EIO)\n"
                "      --prefetch N   when a file is first read, read the next N files of its\n"
                "                     directory ahead, in parallel (default: %u; 0: off)\n"
                "      --passthrough  let the kernel read a checked blob of up to 1 MiB straight\n"
                "                     from the store (FUSE passthrough: Linux 6.9+, as root);\n"
                "                     faster first reads, but every open costs a round trip, so\n"
                "                     cached reads are slower (default: off)\n"
                "      --read-ahead KIB  how far the kernel reads ahead of a reader in a file,\n"
                "                     in KiB (default: %u; needs root, else the kernel's\n"
                "                     128; 0: leave the kernel's setting)\n"
                "  -d, --debug        log each request (opcode, node, name)\n"
                "  -h, --help         show this help\n",
                CLI_DEFAULT_PREFETCH, CLI_DEFAULT_READ_AHEAD);
        fputs(cli_remote_help, f);
}

static int check_mountpoint(const char *mp)
{
        struct stat st, parent;
        _cleanup_free_ char *up = NULL;

        if (stat(mp, &st) < 0) {
                log_error("mount: %s: %s", mp, strerror(errno));
                return -errno;
        }
        if (!S_ISDIR(st.st_mode)) {
                log_error("mount: %s: not a directory", mp);
                return -ENOTDIR;
        }
        if (asprintf(&up, "%s/..", mp) < 0)
                return -ENOMEM;
        if (stat(up, &parent) == 0 && (parent.st_dev != st.st_dev || parent.st_ino == st.st_ino)) {
                log_error("mount: %s: busy (something is mounted there already)", mp);
                return -EBUSY;
        }
        int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                log_error("mount: /dev/fuse: %s (is the fuse module loaded?)", strerror(errno));
                return -errno;
        }
        close(fd);
        return 0;
}

int cmd_mount(int argc, char **argv)
{
        static const struct option options[] = {
                {"threads", required_argument, NULL, 'j'},
                {"allow-other", no_argument, NULL, 'A'},
                {"foreground", no_argument, NULL, 'f'},
                {"passthrough", no_argument, NULL, 'T'},
                {"read-ahead", required_argument, NULL, 'R'},
                CLI_SERVE_LONG_OPTIONS,
                {},
        };
        _cleanup_(cli_serve_options_done) cli_serve_options so = {
                .eo = {.verify = true, .prefetch = CLI_DEFAULT_PREFETCH, .direct_io = true},
                .ro = CLI_REMOTE_OPTIONS_INIT,
        };
        cas_fuse_options fo = {.read_ahead_kib = CLI_DEFAULT_READ_AHEAD};
        _cleanup_free_ char *mp = NULL, *store_path = NULL;
        bool foreground = false;
        int c, r;

        while ((c = cli_getopt("mount", argc, argv, "j:fdh", options, mount_help, &so)) >= 0) {
                switch (c) {
                case 'j':
                        if (cli_parse_number("mount", "threads", optarg, 1, 64, &fo.threads) < 0)
                                return EXIT_USAGE;
                        break;
                case 'A':
                        fo.allow_other = true;
                        break;
                case 'T':
                        fo.passthrough = true;
                        break;
                case 'R':
                        if (cli_parse_number("mount", "read-ahead", optarg, 0, 1024 * 1024, &fo.read_ahead_kib) < 0)
                                return EXIT_USAGE;
                        fo.read_ahead_explicit = true;
                        break;
                case 'f':
                        foreground = true;
                        break;
                }
        }
        if (c != -1)
                return cli_getopt_status(c);
        if (argc - optind != 1) {
                log_error("mount: takes one MOUNTPOINT; try 'casfs mount --help'");
                return EXIT_USAGE;
        }
        if (check_mountpoint(argv[optind]) < 0)
                return 1;
        /* absolute, as the daemon leaves the caller's folder */
        mp = realpath(argv[optind], NULL);
        if (!mp) {
                log_error("mount: %s: %s", argv[optind], strerror(errno));
                return 1;
        }

        /* the store is opened after any fork: LMDB handles do not survive one */
        {
                _cleanup_(cas_store_freep) cas_store *probe = NULL;
                if (cli_open_served_store("mount", &so.ro, &probe) < 0)
                        return 1;
                /* --root and --roots-from name roots the store has */
                if (cli_roots_check("mount", probe, &so.eo) < 0)
                        return 1;
                /* the mount's source: mount(8) then finds an fstab line
                 * mounted already, and findmnt shows which store it is */
                store_path = probe->cache_local ? strdup(probe->path) : realpath(probe->path, NULL);
                fo.fsname = store_path;
        }

        int report[2] = {-1, -1};
        if (!foreground) {
                if (pipe2(report, O_CLOEXEC) < 0) {
                        log_error("mount: pipe: %s", strerror(errno));
                        return 1;
                }
                pid_t pid = fork();
                if (pid < 0) {
                        log_error("mount: fork: %s", strerror(errno));
                        return 1;
                }
                if (pid > 0) {
                        /* the parent returns once the child says the mount answers */
                        char status = 1;
                        close(report[1]);
                        if (read(report[0], &status, 1) != 1)
                                status = 1;
                        if (status != 0)
                                waitpid(pid, NULL, 0);
                        return status == 0 ? 0 : 1;
                }
                close(report[0]);
                /* descriptors the caller left open without O_CLOEXEC are not the daemon's */
                if (report[1] > 3)
                        (void)close_range(3, report[1] - 1, 0);
                (void)close_range(report[1] + 1, ~0u, 0);
                setsid();
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                        close(null);
                }
                /* stderr stays the caller's until the mount answers, for
                 * the errors of setting it up */
        }

        /* blocked before any thread starts, so that only cas_fuse_wait takes them */
        sigset_t signals;
        cli_block_stop_signals(&signals);

        _cleanup_(cas_store_freep) cas_store *s = NULL;
        cas_fuse *f = NULL;
        _cleanup_free_ char *error = NULL;
        char status = 1;
        r = cli_open_served_store("mount", &so.ro, &s);
        if (r >= 0) {
                r = cas_fuse_mount(s, &so.eo, &fo, mp, &f, &error);
                if (r < 0)
                        log_error("mount: %s", error ? error : strerror(-r));
        }
        if (r >= 0) {
                r = cas_fuse_start(f);
                if (r < 0)
                        log_error("mount: cannot start workers: %s", strerror(-r));
        }
        if (r >= 0) {
                struct stat st;
                /* the first access waits for INIT: once it returns, the mount answers */
                if (stat(mp, &st) < 0) {
                        log_error("mount: %s does not answer: %s", mp, strerror(errno));
                        r = -errno;
                }
        }
        /* from here on, the lines go where the user chose (or syslog, or the
         * default file), and a daemon holds none of its caller's descriptors,
         * so that 'casfs mount DIR | cat' returns at once */
        if (r >= 0)
                r = cli_log_choose("mount", so.log_path, !foreground);
        if (r >= 0 && !foreground) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null >= 0) {
                        dup2(null, STDERR_FILENO);
                        close(null);
                }
                (void)!chdir("/");
        }
        status = r < 0 ? 1 : 0;
        if (report[1] >= 0) {
                (void)!write(report[1], &status, 1);
                close(report[1]);
        }
        if (r >= 0)
                cas_fuse_wait(f, &signals);
        cas_fuse_free(f);
        return status;
}
