/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mount's and virtiofs's --root NAME and --roots-from FILE: the only roots
 * the mount's top shows, as a job that should see just its inputs needs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "macro.h"

/* The names given so far, in the order given; NULL until an option gives
 * one (the top then shows every root). Never freed: the engine's options
 * point here until the command returns. */
static char **arg_roots;
static size_t arg_n_roots, arg_roots_alloc;

void cli_roots_help(FILE *f, int col)
{
        const int opt = (int)strlen("      --list-root"); /* and "      --root NAME" */

        fprintf(f,
                "      --list-root%*sallow listing the top (default: only names can be looked up)\n"
                "      --root NAME%*sshow only this root at the top (repeatable; with --roots-from:\n"
                "%*sthe roots of both); a root not in the store is an error\n"
                "      --roots-from FILE  show only the roots named in FILE, one a line (blanks\n"
                "%*saround a name, empty lines and lines starting with '#'\n"
                "%*sare ignored)\n",
                col - opt, "", col - opt, "", col, "", col, "", col, "");
}

static int oom(const char *cmd)
{
        log_error("%s: %s", cmd, strerror(ENOMEM));
        return -ENOMEM;
}

static int say_invalid(const char *cmd, const char *where, const char *name, size_t len)
{
        cas_error err;

        if (cas_name_validate(name, len, &err) >= 0)
                return 0;
        /* a NUL ends the name as printed; the reason says it is there */
        log_error("%s: %s: '%.*s' is not a valid root name: %s", cmd, where, (int)MIN(len, 4096u),
                  name, cas_error_code_string(err.code));
        return -EINVAL;
}

/* Adds the len bytes at name, a valid root name (or says why it is not one;
 * where: the option or line it comes from). */
static int add(const char *cmd, const char *where, const char *name, size_t len)
{
        int r;

        r = say_invalid(cmd, where, name, len);
        if (r < 0)
                return r;
        if (arg_n_roots >= CLI_ROOTS_MAX) {
                log_error("%s: %s: more than %u roots", cmd, where, CLI_ROOTS_MAX);
                return -EINVAL;
        }
        if (CAS_GROW(arg_roots, arg_roots_alloc, arg_n_roots, 16) < 0)
                return oom(cmd);
        arg_roots[arg_n_roots] = strndup(name, len);
        if (!arg_roots[arg_n_roots])
                return oom(cmd);
        arg_n_roots++;
        return 0;
}

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* One name a line; blank lines, lines starting with '#' and the blanks
 * around a name are ignored. */
static int read_file(const char *cmd, const char *path)
{
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t alloc = 0;
        unsigned lineno = 0;
        ssize_t n;
        int r;

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                log_error("%s: --roots-from %s: %s", cmd, path, strerror(-r));
                return r;
        }
        /* an empty file is an empty list: the top then shows nothing */
        if (!arg_roots) {
                arg_roots = calloc(16, sizeof(char *));
                if (!arg_roots)
                        return oom(cmd);
                arg_roots_alloc = 16;
        }
        errno = 0;
        while ((n = getline(&line, &alloc, f)) >= 0) {
                char *s = line, *end = line + n;

                lineno++;
                while (s < end && is_blank(*s))
                        s++;
                while (end > s && is_blank(end[-1]))
                        end--;
                if (s == end || *s == '#')
                        continue;
                /* a line is named only when something is wrong with it */
                if (cas_name_validate(s, (size_t)(end - s), NULL) < 0) {
                        _cleanup_free_ char *where = NULL;
                        if (asprintf(&where, "%s:%u", path, lineno) < 0)
                                return oom(cmd);
                        return say_invalid(cmd, where, s, (size_t)(end - s));
                }
                r = add(cmd, "--roots-from", s, (size_t)(end - s));
                if (r < 0)
                        return r;
        }
        if (ferror(f)) {
                r = errno > 0 ? -errno : -EIO;
                log_error("%s: --roots-from %s: %s", cmd, path, strerror(-r));
                return r;
        }
        return 0;
}

int cli_roots_option(const char *cmd, int c, const char *arg, cas_engine_options *eo)
{
        int r;

        switch (c) {
        case CLI_OPT_ROOT:
                r = add(cmd, "--root", arg, strlen(arg));
                break;
        case CLI_OPT_ROOTS_FROM:
                r = read_file(cmd, arg);
                break;
        default:
                return 0;
        }
        if (r < 0)
                return r;
        eo->roots = (const char *const *)arg_roots;
        eo->n_roots = arg_n_roots;
        return 1;
}

/* Roots missing from the store named one a line; the rest are counted. */
#define CLI_ROOTS_SAID 10

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_roots_check(const char *cmd, cas_store *s, cas_engine_options *eo)
{
        size_t missing = 0;
        int r;

        if (!arg_roots)
                return 0;
        /* each name once, in name order */
        if (arg_n_roots > 1)
                qsort(arg_roots, arg_n_roots, sizeof(char *), name_cmp);
        size_t kept = 0;
        for (size_t k = 0; k < arg_n_roots; k++) {
                if (kept > 0 && strcmp(arg_roots[k], arg_roots[kept - 1]) == 0)
                        free(arg_roots[k]);
                else
                        arg_roots[kept++] = arg_roots[k];
        }
        arg_n_roots = kept;
        eo->roots = (const char *const *)arg_roots;
        eo->n_roots = arg_n_roots;

        for (size_t k = 0; k < arg_n_roots; k++) {
                _cleanup_free_ cas_node *n = NULL;
                r = cas_metastore_get_root(s->meta, arg_roots[k], &n);
                if ((r == -ENOENT || r == -EBADMSG) && ++missing > CLI_ROOTS_SAID)
                        continue; /* said in the sum below */
                if (r == -ENOENT)
                        log_error("%s: %s: no root named '%s'", cmd, s->path, arg_roots[k]);
                else if (r == -EBADMSG)
                        log_error("%s: %s: the record of root '%s' is damaged (see casfs fsck)",
                                  cmd, s->path, arg_roots[k]);
                else if (r < 0) {
                        log_error("%s: %s: root '%s': %s", cmd, s->path, arg_roots[k],
                                  strerror(-r));
                        return r;
                }
        }
        if (missing > CLI_ROOTS_SAID)
                log_error("%s: %s: and %zu more of the roots given are missing or damaged", cmd,
                          s->path, missing - CLI_ROOTS_SAID);
        return missing > 0 ? -ENOENT : 0;
}
