/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the CLI's command files. Exit statuses: 0 success, 1 failure, 2 usage. */

#include <stdbool.h>

#include "store.h"

#define EXIT_USAGE 2

/* --store PATH as given, or NULL for the default. */
extern const char *arg_store;

/* Opens the store named by --store / $CASFS_STORE / the default path.
 * Prints a clear message on failure and returns -errno. */
int cli_open_store(int flags, cas_store **ret);

/* Messages on stderr, prefixed "casfs: " (and the command's name where given). */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Each command: argv[0] is the command's name; returns the exit status. */
int cmd_import(int argc, char **argv);
int cmd_roots(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_virtiofs(int argc, char **argv);

/* Parses "U:G" (numbers). -EINVAL when malformed. */
int cli_parse_uid_gid(const char *s, unsigned *ret_uid, unsigned *ret_gid);
