/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the CLI's command files. Exit statuses: 0 success, 1 failure, 2 usage. */

#include <stdbool.h>
#include <stdio.h>

#include "engine.h"
#include "log.h"
#include "store.h"

#define EXIT_USAGE 2

/* --store PATH as given, or NULL for the default. */
extern const char *arg_store;
/* --s3-endpoint, --ca-bundle (NULL: from the environment). */
extern const char *arg_s3_endpoint;
extern const char *arg_ca_bundle;

/* Opens the store named by --store / $CASFS_STORE / the default path.
 * Prints a clear message on failure and returns -errno. */
int cli_open_store(int flags, cas_store **ret);
/* The same for a store named otherwise (copy's SRC and DST). */
int cli_open_address(const char *address, int flags, cas_store **ret);
/* Says so and returns -EROFS for a store that cannot be written (http). */
int cli_require_writable(const char *cmd, cas_store *s);

/* Messages through the log's sink (log.h): stderr, prefixed "casfs: ", unless
 * a serving command chose syslog or a file. */
#define log_error(...) cas_log(CAS_LOG_ERR, __VA_ARGS__)
#define log_warning(...) cas_log(CAS_LOG_WARNING, __VA_ARGS__)

/* Each command: argv[0] is the command's name; returns the exit status. */
int cmd_import(int argc, char **argv);
int cmd_roots(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_virtiofs(int argc, char **argv);
/* casfs run as mount.casfs: mount(8)'s helper (mount-helper.c); returns
 * mount(8)'s exit statuses (1 usage, 32 failure). */
int cli_mount_helper(int argc, char **argv);

/* Parses "U:G" (numbers). -EINVAL when malformed. */
int cli_parse_uid_gid(const char *s, unsigned *ret_uid, unsigned *ret_gid);

/* Files read ahead of a reader going through a directory (mount, virtiofs). */
#define CLI_DEFAULT_PREFETCH 32
/* mount --read-ahead, in KiB: four of the largest requests (1 MiB) in flight */
#define CLI_DEFAULT_READ_AHEAD 4096

/* Parses a whole number from min to max for `cmd --option`; says so and
 * returns -EINVAL when it is not one. */
int cli_parse_number(const char *cmd, const char *option, const char *s, unsigned min, unsigned max,
                     unsigned *ret);

/* The options mount and virtiofs share, by their getopt codes: 'L' --list-root,
 * 'U' --uid-gid, 'X' --xattr, 'N' --no-verify, 'P' --prefetch, 'd' --debug. 1 when c was one (applied to
 * eo), 0 when it was not, -EINVAL (said) when its argument is bad. */
int cli_engine_option(const char *cmd, int c, const char *arg, cas_engine_options *eo);

/* Where a serving command's lines go (mount, virtiofs). With --log FILE, to
 * FILE; else in the foreground to stderr; in the background to syslog (tag
 * "casfs") when a syslog socket exists, else to the default file below, so
 * that no line is lost silently. */
#define CLI_LOG_DEFAULT_ROOT "/var/log/casfs.log"
#define CLI_LOG_DEFAULT_USER "${XDG_STATE_HOME:-~/.local/state}/casfs/casfs.log"

/* The default file: CLI_LOG_DEFAULT_ROOT for root, else CLI_LOG_DEFAULT_USER. */
int cli_log_default_path(char **ret);
/* Checks that --log path can be opened for appending (said when not) and
 * returns it absolute, as a daemon changes its folder to /. */
int cli_log_check(const char *cmd, const char *path, char **ret_absolute);
/* Switches the log's sink as described above; says why and returns -errno
 * when it cannot (the sink is then left as it was). */
int cli_log_choose(const char *cmd, const char *path, bool background);

/* getopt_long for mount and virtiofs, applying the options above itself
 * and answering --help with help(stdout): the next other option, -1 at the
 * end, CLI_GETOPT_HELP once the help is shown, CLI_GETOPT_USAGE when an
 * option is unknown or its argument bad (said). */
#define CLI_GETOPT_USAGE (-2)
#define CLI_GETOPT_HELP (-3)
struct option;
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
               void (*help)(FILE *f), cas_engine_options *eo);

/* Their entries (and --help's) in a command's table of long options. */
#define CLI_ENGINE_LONG_OPTIONS                                                                    \
        {"help", no_argument, NULL, 'h'}, {"list-root", no_argument, NULL, 'L'},                   \
                {"uid-gid", required_argument, NULL, 'U'}, {"xattr", no_argument, NULL, 'X'},      \
                {"no-verify", no_argument, NULL, 'N'}, {"prefetch", required_argument, NULL, 'P'}, \
                {"debug", no_argument, NULL, 'd'}

/* ---- remote stores served through a local cache (mount, virtiofs; cache.h) ---- */

typedef struct cli_remote_options {
        const char *cache_dir;  /* --cache DIR; NULL: cas_cache_default_dir */
        uint64_t cache_size;    /* --cache-size SIZE; 0: unbounded */
        unsigned jobs;          /* --jobs N */
        unsigned timeout_sec;   /* --timeout SEC */
        unsigned refresh_sec;   /* --refresh SEC */
        bool given;             /* one of them was given */
} cli_remote_options;

#define CLI_DEFAULT_JOBS 32
#define CLI_DEFAULT_TIMEOUT 10
#define CLI_DEFAULT_REFRESH 60
#define CLI_REMOTE_OPTIONS_INIT                                                                                \
        { .jobs = CLI_DEFAULT_JOBS, .timeout_sec = CLI_DEFAULT_TIMEOUT, .refresh_sec = CLI_DEFAULT_REFRESH }

/* Their getopt codes, out of the way of any letter. */
enum {
        CLI_OPT_CACHE = 0x200,
        CLI_OPT_CACHE_SIZE,
        CLI_OPT_JOBS,
        CLI_OPT_TIMEOUT,
        CLI_OPT_REFRESH,
};
#define CLI_REMOTE_LONG_OPTIONS                                                                                \
        {"cache", required_argument, NULL, CLI_OPT_CACHE},                                                     \
                {"cache-size", required_argument, NULL, CLI_OPT_CACHE_SIZE},                                   \
                {"jobs", required_argument, NULL, CLI_OPT_JOBS},                                               \
                {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},                                         \
                {"refresh", required_argument, NULL, CLI_OPT_REFRESH}
/* Their lines in a command's --help. */
extern const char cli_remote_help[];

/* 1 when c was one of them (applied to ro), 0 when not, -EINVAL (said) when
 * its argument is bad. */
int cli_remote_option(const char *cmd, int c, const char *arg, cli_remote_options *ro);
/* Opens the store to serve: a local store as cli_open_store does; a remote
 * one through its cache. Says why and returns -errno when it cannot (also
 * when cache options are given for a local store). */
int cli_open_served_store(const char *cmd, const cli_remote_options *ro, cas_store **ret);
