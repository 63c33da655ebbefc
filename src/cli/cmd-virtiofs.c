/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "cli.h"
#include "engine.h"
#include "macro.h"
#include "vhost-user.h"

static void virtiofs_help(FILE *f)
{
        fputs("Usage: casfs [--store PATH] virtiofs --socket PATH [OPTIONS]\n"
              "\n"
              "Serves the store's roots to a virtual machine as a virtiofs device: a\n"
              "vhost-user-fs back-end listening on the UNIX socket PATH (a stale socket\n"
              "file there is replaced). Serves one VMM connection and exits 0 when the\n"
              "VMM disconnects; SIGINT and SIGTERM end it. In the guest:\n"
              "'mount -t virtiofs TAG /mnt' (TAG is set on the VMM's side).\n"
              "\n"
              "Options:\n"
              "      --socket PATH   the vhost-user socket to listen on (required)\n", f);
        cli_roots_help(f, 22);
        fprintf(f,
                "      --uid-gid U:G   report owner U and group G (default: 0:0)\n"
                "      --xattr         expose user.castore.directory.digest / user.castore.blob.digest\n"
                "  -j, --threads N     threads per request queue (default: 1)\n"
                "      --queues N      request queues offered to the VMM (default: 8; the VMM picks\n"
                "                      how many it uses, e.g. QEMU's num-request-queues)\n"
                "      --no-verify     serve blobs without checking them against their digest\n"
                "      --prefetch N    when a file is first read, read the next N files of its\n"
                "                      directory ahead, in parallel (default: %u; 0: off)\n"
                "      --log FILE      append the log lines (damaged objects, ...) to FILE once\n"
                "                      the socket listens (default: stderr)\n"
                "  -d, --debug         log each request (opcode, node, name)\n"
                "  -h, --help          show this help\n",
                CLI_DEFAULT_PREFETCH);
        fputs(cli_remote_help, f);
}

int cmd_virtiofs(int argc, char **argv)
{
        static const struct option options[] = {
                {"socket", required_argument, NULL, 'S'},
                {"threads", required_argument, NULL, 'j'},
                {"queues", required_argument, NULL, 'Q'},
                CLI_SERVE_LONG_OPTIONS,
                {},
        };
        _cleanup_(cli_serve_options_done) cli_serve_options so = {
                .eo = {.verify = true, .prefetch = CLI_DEFAULT_PREFETCH},
                .ro = CLI_REMOTE_OPTIONS_INIT,
        };
        const char *socket_path = NULL;
        unsigned threads = 1, queues = 8;
        int c, r;

        while ((c = cli_getopt("virtiofs", argc, argv, "j:dh", options, virtiofs_help, &so)) >= 0) {
                switch (c) {
                case 'S':
                        socket_path = optarg;
                        break;
                case 'j':
                        if (cli_parse_number("virtiofs", "threads", optarg, 1, 16, &threads) < 0)
                                return EXIT_USAGE;
                        break;
                case 'Q':
                        if (cli_parse_number("virtiofs", "queues", optarg, 1, CAS_VHOST_QUEUES_MAX - 1, &queues) < 0)
                                return EXIT_USAGE;
                        break;
                }
        }
        if (c != -1)
                return cli_getopt_status(c);
        if (!socket_path || optind != argc) {
                log_error("virtiofs: needs --socket PATH and nothing else; try 'casfs virtiofs --help'");
                return EXIT_USAGE;
        }

        _cleanup_(cas_store_freep) cas_store *s = NULL;
        if (cli_open_served_store("virtiofs", &so.ro, &s) < 0)
                return 1;
        if (cli_roots_check("virtiofs", s, &so.eo) < 0)
                return 1;

        sigset_t signals;
        cli_block_stop_signals(&signals);
        signal(SIGPIPE, SIG_IGN);

        _cleanup_close_ int listen_fd = -1;
        r = cas_vhost_listen(socket_path, &listen_fd);
        if (r < 0) {
                log_error("virtiofs: %s: %s", socket_path,
                          r == -EEXIST ? "exists and is not a socket" : strerror(-r));
                return 1;
        }
        if (cli_log_choose("virtiofs", so.log_path, false) < 0) {
                unlink(socket_path);
                return 1;
        }

        /* one VMM connection */
        int conn = -1;
        for (;;) {
                struct pollfd p = {.fd = listen_fd, .events = POLLIN};
                struct timespec zero = {0};
                int k = poll(&p, 1, 200);
                if (sigtimedwait(&signals, NULL, &zero) > 0)
                        break;
                if (k > 0) {
                        conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (conn >= 0)
                                break;
                }
        }
        unlink(socket_path);
        if (conn < 0)
                return 0;

        cas_engine *e = NULL;
        r = cas_engine_new(s, &so.eo, NULL, &e);
        if (r < 0) {
                log_error("virtiofs: %s", strerror(-r));
                close(conn);
                return 1;
        }
        r = cas_engine_start(e);
        if (r >= 0)
                r = cas_vhost_serve(e, conn, queues, threads, &signals);
        else
                close(conn);
        cas_engine_free(e);
        if (r < 0) {
                log_error("virtiofs: the connection failed: %s", strerror(-r));
                return 1;
        }
        return 0;
}
