/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the CLI's command files. Exit statuses: 0 success, 1 failure, 2 usage. */

#include <pthread.h>
#include <signal.h>
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
/* What a command does after its options: its arguments counted (from
 * min_args to max_args, else "CMD: takes TAKES"), then the store opened
 * (cli_open_store). -1 and *ret to go on, else the exit status. */
int cli_start(const char *cmd, int argc, int min_args, int max_args, const char *takes, cas_store **ret);
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

/* A line of progress on stderr (import, copy): show(userdata) writes it
 * every 250 ms from a thread of its own, holding lock (which also guards
 * what show reads that the command changes); the line is cleared at the
 * end. */
typedef struct cli_progress {
        void (*show)(void *userdata);
        void *userdata;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool stop, running;
} cli_progress;
/* Sets p up and, when enable, starts the thread: true when it runs. */
bool cli_progress_start(cli_progress *p, bool enable, void (*show)(void *userdata),
                        void *userdata);
/* Stops and joins it, when it was started. */
void cli_progress_stop(cli_progress *p);

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
 * 'U' --uid-gid, 'X' --xattr, 'N' --no-verify, 'P' --prefetch, 'd' --debug,
 * and --root, --roots-from (cli_roots_option). 1 when c was one (applied to
 * eo), 0 when it was not, -EINVAL (said) when its argument is bad, another
 * -errno (said) when it cannot be applied. */
int cli_engine_option(const char *cmd, int c, const char *arg, cas_engine_options *eo);

/* --root NAME and --roots-from FILE (mount, virtiofs): the only roots the
 * top shows. Their getopt codes (out of the range of characters, as the
 * commands' own options take letters). */
#define CLI_OPT_ROOT       0x100
#define CLI_OPT_ROOTS_FROM 0x101
/* The most names they give together. */
#define CLI_ROOTS_MAX (1u << 20)
/* Applies one of them to eo: 1 when c was one, 0 when not; -EINVAL (said)
 * when a name is not a valid root name, another -errno (said) when FILE
 * cannot be read. */
int cli_roots_option(const char *cmd, int c, const char *arg, cas_engine_options *eo);
/* Their lines in a command's --help, with --list-root's: the descriptions at
 * column col, as the command's other lines have theirs. */
void cli_roots_help(FILE *f, int col);
/* Once the store is open: each name once, and every one a root of s; says
 * which are not (one line each, for the first ten, then how many more) and
 * returns -ENOENT, or -errno when the store fails. 0 when no option named
 * roots. */
int cli_roots_check(const char *cmd, cas_store *s, cas_engine_options *eo);

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

/* Their entries (and --help's) in a command's table of long options. */
#define CLI_ENGINE_LONG_OPTIONS                                                                    \
        {"help", no_argument, NULL, 'h'}, {"list-root", no_argument, NULL, 'L'},                   \
                {"uid-gid", required_argument, NULL, 'U'}, {"xattr", no_argument, NULL, 'X'},      \
                {"no-verify", no_argument, NULL, 'N'}, {"prefetch", required_argument, NULL, 'P'}, \
                {"debug", no_argument, NULL, 'd'},                                                 \
                {"root", required_argument, NULL, CLI_OPT_ROOT},                                   \
                {"roots-from", required_argument, NULL, CLI_OPT_ROOTS_FROM}

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

/* What mount and virtiofs share: the engine's options above, --log FILE and
 * the remote store's options. */
typedef struct cli_serve_options {
        cas_engine_options eo;
        cli_remote_options ro;
        char *log_path; /* --log FILE, absolute (cli_log_check); NULL: not given */
} cli_serve_options;
/* Frees what so holds (log_path). */
void cli_serve_options_done(cli_serve_options *so);
/* Their entries in a command's table of long options (the engine's, --help,
 * --log, the remote store's). */
#define CLI_SERVE_LONG_OPTIONS                                                                                 \
        CLI_ENGINE_LONG_OPTIONS, {"log", required_argument, NULL, 'l'}, CLI_REMOTE_LONG_OPTIONS

/* getopt_long for mount and virtiofs, applying the options above to so itself
 * and answering --help with help(stdout): the next other option, -1 at the
 * end, CLI_GETOPT_HELP once the help is shown, CLI_GETOPT_USAGE when an
 * option is unknown or its argument bad (said), CLI_GETOPT_FAIL when it
 * cannot be applied (said: a --roots-from FILE that cannot be read, a --log
 * FILE that cannot be opened). */
#define CLI_GETOPT_USAGE (-2)
#define CLI_GETOPT_HELP (-3)
#define CLI_GETOPT_FAIL (-4)
struct option;
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
               void (*help)(FILE *f), cli_serve_options *so);
/* The exit status for what cli_getopt returned in place of an option: 0
 * after --help, 1 when an option could not be applied, 2 (usage) else. */
int cli_getopt_status(int c);
/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, the set of them in
 * ret: called before any thread starts, the serving loop alone takes them
 * (sigtimedwait). */
void cli_block_stop_signals(sigset_t *ret);
