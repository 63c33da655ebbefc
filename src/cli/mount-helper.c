/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "macro.h"

/* mount(8) runs /sbin/mount.casfs STORE DIR [-sfnv] [-o OPTIONS] for
 * 'mount -t casfs' and for fstab lines of type casfs (also through systemd's
 * mount units). The options are casfs mount's, spelt the mount(8) way. */

/* mount(8)'s exit statuses, which a helper returns as well */
#define MOUNT_EX_USAGE 1
#define MOUNT_EX_FAIL 32

static const struct {
        const char *name;
        const char *option;
        bool value; /* NAME=VALUE */
        const char **global; /* casfs's own option, before the command: set here */
} mapped[] = {
        {"list_root", "--list-root", false},
        {"allow_other", "--allow-other", false},
        {"uid_gid", "--uid-gid", true},
        {"xattr", "--xattr", false},
        {"no_verify", "--no-verify", false},
        {"prefetch", "--prefetch", true},
        {"threads", "--threads", true},
        {"read_ahead", "--read-ahead", true},
        {"passthrough", "--passthrough", false},
        {"log", "--log", true},
        {"root", "--root", true},
        {"roots_from", "--roots-from", true},
        /* a remote store's */
        {"cache", "--cache", true},
        {"cache_size", "--cache-size", true},
        {"jobs", "--jobs", true},
        {"timeout", "--timeout", true},
        {"refresh", "--refresh", true},
        /* casfs's own */
        {"s3_endpoint", "--s3-endpoint", true, &arg_s3_endpoint},
        {"ca_bundle", "--ca-bundle", true, &arg_ca_bundle},
};

/* Generic options: the mount is read-only, without devices or set-id files,
 * whatever they say ("rw" included, which mount(8) adds by itself); the ones
 * for mount(8) and systemd are theirs. */
static const char *const ignored[] = {
        "ro",       "rw",       "defaults", "auto",     "noauto", "nosuid", "suid",   "nodev",
        "dev",      "noexec",   "exec",     "user",     "nouser", "users",  "owner",  "group",
        "_netdev",  "nofail",   "noatime",  "atime",    "relatime", "strictatime", "nodiratime",
        "diratime", "lazytime", "sync",     "async",    "silent", "loud",
};

static void helper_help(FILE *f)
{
        fprintf(f,
                "Usage: mount.casfs STORE MOUNTPOINT [-sfnv] [-o OPTIONS]\n"
                "\n"
                "Called by mount(8) for 'mount -t casfs STORE MOUNTPOINT' and fstab lines\n"
                "'STORE MOUNTPOINT casfs OPTIONS 0 0'. Runs 'casfs --store STORE mount'.\n"
                "OPTIONS (comma-separated): list_root, allow_other, uid_gid=U:G, xattr,\n"
                "no_verify, prefetch=N, threads=N, read_ahead=KIB, passthrough, log=FILE,\n"
                "root=NAME (repeatable), roots_from=FILE; for a remote STORE (s3://,\n"
                "http(s)://, file://): cache=DIR, cache_size=SIZE, jobs=N, timeout=SEC,\n"
                "refresh=SEC, s3_endpoint=URL, ca_bundle=FILE;\n"
                "generic ones (ro, rw, defaults, noauto, nosuid, nodev, _netdev, nofail,\n"
                "x-*, ...) are accepted and ignored: the mount is always read-only.\n"
                "-s: ignore unknown options; -f: check, but do not mount; -n: ignored;\n"
                "-v: show the casfs command.\n");
}

static bool is_ignored(const char *o)
{
        if (strncmp(o, "x-", 2) == 0 || strncmp(o, "comment=", 8) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
                if (strcmp(o, ignored[i]) == 0)
                        return true;
        return false;
}

/* Appends the casfs mount options for one mount option to args (room checked
 * by the caller); -EINVAL (said) when it is unknown and not sloppy. */
static int map_option(char *o, bool sloppy, char **args, int *n)
{
        char *eq = strchr(o, '=');
        size_t len = eq ? (size_t)(eq - o) : strlen(o);

        if (is_ignored(o))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(mapped); i++) {
                if (strlen(mapped[i].name) != len || strncmp(o, mapped[i].name, len) != 0)
                        continue;
                if (mapped[i].value != !!eq) {
                        log_error("mount helper: option %s %s", mapped[i].name,
                                  mapped[i].value ? "takes a value (NAME=VALUE)" : "takes no value");
                        return -EINVAL;
                }
                if (mapped[i].global)
                        *mapped[i].global = eq + 1;
                else {
                        args[(*n)++] = (char *)mapped[i].option;
                        if (eq)
                                args[(*n)++] = eq + 1;
                }
                return 0;
        }
        if (sloppy)
                return 0;
        log_error("mount helper: unknown option '%s'; see 'mount.casfs --help'", o);
        return -EINVAL;
}

int cli_mount_helper(int argc, char **argv)
{
        const char *positional[2] = {};
        unsigned n_positional = 0;
        _cleanup_free_ char *opts = NULL;
        bool sloppy = false, fake = false, verbose = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        helper_help(stdout);
                        return 0;
                }
                if (a[0] != '-' || a[1] == 0) {
                        if (n_positional >= ELEMENTSOF(positional)) {
                                log_error("mount helper: takes STORE and MOUNTPOINT; see 'mount.casfs --help'");
                                return MOUNT_EX_USAGE;
                        }
                        positional[n_positional++] = a;
                        continue;
                }
                for (const char *c = a + 1; *c; c++) {
                        if (*c == 'o' || *c == 't') {
                                /* the value follows, in this word or the next */
                                const char *v = c[1] ? c + 1 : (i + 1 < argc ? argv[++i] : NULL);
                                if (!v) {
                                        log_error("mount helper: -%c needs a value", *c);
                                        return MOUNT_EX_USAGE;
                                }
                                if (*c == 'o') {
                                        /* several -o add up */
                                        char *joined = NULL;
                                        if (asprintf(&joined, "%s%s%s", opts ?: "", opts ? "," : "", v) < 0)
                                                return MOUNT_EX_FAIL;
                                        free(opts);
                                        opts = joined;
                                }
                                break;
                        }
                        switch (*c) {
                        case 's':
                                sloppy = true;
                                break;
                        case 'f':
                                fake = true;
                                break;
                        case 'n':
                                break;
                        case 'v':
                                verbose = true;
                                break;
                        default:
                                log_error("mount helper: unknown flag -%c; see 'mount.casfs --help'", *c);
                                return MOUNT_EX_USAGE;
                        }
                }
        }
        if (n_positional != 2) {
                log_error("mount helper: takes STORE and MOUNTPOINT; see 'mount.casfs --help'");
                return MOUNT_EX_USAGE;
        }

        /* "mount" and the options, two words at most each, and the mountpoint */
        size_t n_opts = 1;
        for (const char *p = opts; p && *p; p++)
                n_opts += *p == ',';
        _cleanup_free_ char **args = calloc(2 * n_opts + 3, sizeof(char *));
        if (!args)
                return MOUNT_EX_FAIL;
        int n = 0;
        args[n++] = "mount";
        for (char *o, *rest = opts; rest && (o = strsep(&rest, ","));)
                if (*o && map_option(o, sloppy, args, &n) < 0)
                        return MOUNT_EX_USAGE;
        args[n++] = (char *)positional[1];
        args[n] = NULL;

        if (verbose || fake) {
                fprintf(stderr, "mount.casfs: casfs --store %s", positional[0]);
                if (arg_s3_endpoint)
                        fprintf(stderr, " --s3-endpoint %s", arg_s3_endpoint);
                if (arg_ca_bundle)
                        fprintf(stderr, " --ca-bundle %s", arg_ca_bundle);
                for (int i = 0; i < n; i++)
                        fprintf(stderr, " %s", args[i]);
                fputc('\n', stderr);
        }
        if (fake)
                return 0;
        arg_store = positional[0];
        optind = 0; /* casfs mount runs getopt afresh */
        int status = cmd_mount(n, args);
        return status == 0 ? 0 : status == EXIT_USAGE ? MOUNT_EX_USAGE : MOUNT_EX_FAIL;
}
