/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "cli.h"
#include "macro.h"
#include "outboard.h"
#include "verify.h"

/* Commands that only read: roots, ls, cat, stat. Each takes -h/--help only. */
static int simple_options(int argc, char **argv, const char *usage, const char *text)
{
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("Usage: casfs [--store PATH] %s\n\n%s", usage, text);
                        return 0;
                default:
                        fprintf(stderr, "Usage: casfs [--store PATH] %s\n", usage);
                        return EXIT_USAGE;
                }
        return -1;
}

/* What each of them does first: its options, then cli_start. -1 and *ret to
 * go on, else the exit status. */
static int start_command(int argc, char **argv, const char *cmd, const char *args,
                         const char *text, int min_args, int max_args, const char *takes,
                         cas_store **ret)
{
        char usage[64];
        int r;

        snprintf(usage, sizeof(usage), "%s%s%s", cmd, args[0] ? " " : "", args);
        r = simple_options(argc, argv, usage, text);
        if (r >= 0)
                return r;
        return cli_start(cmd, argc, min_args, max_args, takes, ret);
}

static const char *digest_or_dash(const cas_node *n, char buf[static CAS_DIGEST_TEXT_MAX])
{
        if (n->type == CAS_NODE_SYMLINK)
                return "-";
        return cas_digest_to_text(&n->digest, buf);
}

static uint64_t node_size(const cas_node *n)
{
        return n->type == CAS_NODE_SYMLINK ? n->target_len : n->size;
}

static int print_root(const cas_node *n, void *userdata)
{
        char text[CAS_DIGEST_TEXT_MAX];
        printf("%s\t%s\t%s\t%" PRIu64 "\n", n->name, cas_node_type_string(n->type),
               digest_or_dash(n, text), node_size(n));
        return 0;
}

int cmd_roots(int argc, char **argv)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        int r = start_command(argc, argv, "roots", "",
                              "Lists the roots, one per line, tab-separated:\n"
                              "NAME TYPE DIGEST SIZE (DIGEST is '-' for a symlink; SIZE is a file's\n"
                              "length, a directory's entry count, a symlink target's length).\n"
                              "A damaged root record is left out ('casfs fsck' reports it).\n",
                              0, 0, "no arguments", &s);
        if (r >= 0)
                return r;
        r = cas_metastore_foreach_root(s->meta, print_root, NULL);
        if (r < 0) {
                log_error("roots: %s", strerror(-r));
                return 1;
        }
        return fflush(stdout) == 0 ? 0 : 1;
}

static int resolve(cas_store *s, const char *cmd, const char *path, cas_node **ret)
{
        int r = cas_store_resolve(s, path, ret);
        if (r == -ENOENT)
                log_error("%s: %s: no such root or entry", cmd, path);
        else if (r == -ENOTDIR)
                log_error("%s: %s: a component is not a directory", cmd, path);
        else if (r == -EBADMSG)
                log_error("%s: %s: a directory on the way is corrupt in the store", cmd, path);
        else if (r < 0)
                log_error("%s: %s: %s", cmd, path, strerror(-r));
        return r;
}

static void print_entry(const cas_node *n)
{
        char text[CAS_DIGEST_TEXT_MAX];
        char type = n->type == CAS_NODE_DIRECTORY ? 'd'
                    : n->type == CAS_NODE_SYMLINK ? 'l'
                    : n->executable               ? 'x'
                                                  : 'f';
        printf("%c\t%" PRIu64 "\t%s\t%s", type, node_size(n), digest_or_dash(n, text), n->name);
        if (n->type == CAS_NODE_SYMLINK)
                printf(" -> %s", n->target);
        putchar('\n');
}

int cmd_ls(int argc, char **argv)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        _cleanup_free_ cas_node *n = NULL;
        _cleanup_free_ cas_directory *dir = NULL;
        int r = start_command(argc, argv, "ls", "NAME[/PATH]",
                              "Lists a directory in name order, one entry per line, tab-separated:\n"
                              "TYPE SIZE DIGEST NAME, TYPE being d (directory), f (file),\n"
                              "x (executable file) or l (symlink, NAME followed by ' -> TARGET').\n"
                              "Given a file or symlink, prints its own line.\n",
                              1, 1, "one NAME[/PATH]", &s);
        if (r >= 0)
                return r;
        if (resolve(s, "ls", argv[optind], &n) < 0)
                return 1;
        if (n->type != CAS_NODE_DIRECTORY) {
                print_entry(n);
                return fflush(stdout) == 0 ? 0 : 1;
        }
        r = cas_metastore_get_directory(s->meta, &n->digest, &dir);
        if (r < 0) {
                char text[CAS_DIGEST_TEXT_MAX];
                log_error("ls: %s: directory %s %s", argv[optind], cas_digest_to_text(&n->digest, text),
                          r == -ENOENT ? "is missing from the store" : r == -EBADMSG ? "is corrupt" : strerror(-r));
                return 1;
        }
        _cleanup_free_ uint32_t *order = calloc(dir->n_nodes ?: 1, sizeof(uint32_t));
        if (!order)
                return 1;
        cas_directory_name_order(dir, order);
        for (size_t i = 0; i < dir->n_nodes; i++)
                print_entry(&dir->nodes[order[i]]);
        return fflush(stdout) == 0 ? 0 : 1;
}

#define CAT_BUFFER (1 << 20)

/* Writes a blob to fd once it is checked against its digest: no byte of a
 * corrupt blob is written. A small blob is read once, into memory, and
 * checked there. A large one is hashed whole first, which yields its
 * outboard, and then read again group by group, each checked against that
 * outboard on its way out. */
static int cat_blob(cas_store *s, const cas_digest *d, uint64_t size, int fd, const char *what)
{
        _cleanup_(cas_blob_reader_freep) cas_blob_reader *rd = NULL;
        _cleanup_free_ uint8_t *buf = malloc(CAT_BUFFER), *outboard = NULL;
        char text[CAS_DIGEST_TEXT_MAX];
        uint64_t bad;
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_blobstore_open_sized(s->blobs, d, size, &rd);
        if (r < 0) {
                log_error("cat: %s: blob %s %s", what, cas_digest_to_text(d, text),
                          r == -ENOENT    ? "is missing from the store"
                          : r == -EBADMSG ? "is corrupt in the store"
                                          : strerror(-r));
                return r;
        }
        if (cas_blob_reader_size(rd) != size) {
                log_error("cat: %s: blob %s has %" PRIu64 " bytes, expected %" PRIu64, what,
                          cas_digest_to_text(d, text), cas_blob_reader_size(rd), size);
                return -EBADMSG;
        }
        if (cas_outboard_size(size) == 0) {
                ssize_t n = cas_blob_reader_pread(rd, buf, CAT_BUFFER, 0);
                r = n < 0 ? (int)n : (uint64_t)n != size ? -EIO : cas_verify_buffer(buf, (size_t)n, d);
        } else
                r = cas_verify_blob(rd, d, size, buf, CAT_BUFFER, &outboard);
        for (uint64_t off = 0; r >= 0 && off < size;) {
                uint64_t start;
                size_t span = cas_verify_span(size, off, (size_t)MIN(size - off, (uint64_t)CAT_BUFFER), &start);
                if (outboard)
                        r = cas_verify_read_groups(rd, outboard, size, start, span, buf, CAT_BUFFER, false, &bad);
                if (r >= 0) {
                        r = cas_loop_write(fd, buf, span);
                        if (r < 0)
                                return cas_log_errno(CAS_LOG_ERR, r, "cat: writing: %s", strerror(-r));
                }
                off += span;
        }
        if (r == -EBADMSG)
                log_error("cat: %s: blob %s is corrupt (its bytes do not match the digest)", what,
                          cas_digest_to_text(d, text));
        else if (r < 0)
                log_error("cat: %s: reading blob %s: %s", what, cas_digest_to_text(d, text),
                          r == -EIO ? "short" : strerror(-r));
        return r;
}

/* cmd ARGS...: runs fn on the node each path names; 1 when a path did not
 * resolve or fn failed for it. */
static int on_each_path(int argc, char **argv, const char *cmd, const char *usage, const char *text,
                        int (*fn)(cas_store *s, const char *path, const cas_node *n, bool first))
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        int status;

        status = start_command(argc, argv, cmd, usage, text, 1, INT_MAX, usage, &s);
        if (status >= 0)
                return status;
        status = 0;
        for (int i = optind; i < argc; i++) {
                _cleanup_free_ cas_node *n = NULL;
                if (resolve(s, cmd, argv[i], &n) < 0 || fn(s, argv[i], n, i == optind) < 0)
                        status = 1;
        }
        return status;
}

static int cat_one(cas_store *s, const char *path, const cas_node *n, bool first)
{
        if (n->type != CAS_NODE_FILE) {
                log_error("cat: %s: is a %s, not a file", path, cas_node_type_string(n->type));
                return -EISDIR;
        }
        return cat_blob(s, &n->digest, n->size, STDOUT_FILENO, path);
}

int cmd_cat(int argc, char **argv)
{
        return on_each_path(argc, argv, "cat", "NAME/PATH...",
                            "Writes files' contents to standard output, each checked against its\n"
                            "digest first: a corrupt or missing blob is an error, never wrong bytes.\n",
                            cat_one);
}

static int stat_one(cas_store *s, const char *path, const cas_node *n, bool first)
{
        char text[CAS_DIGEST_TEXT_MAX];

        if (!first)
                putchar('\n');
        printf("name: %s\ntype: %s\n", n->name, cas_node_type_string(n->type));
        if (n->type != CAS_NODE_SYMLINK)
                printf("digest: %s\n", cas_digest_to_text(&n->digest, text));
        printf("size: %" PRIu64 "\n", node_size(n));
        if (n->type == CAS_NODE_FILE)
                printf("executable: %s\n", n->executable ? "yes" : "no");
        if (n->type == CAS_NODE_SYMLINK)
                printf("target: %s\n", n->target);
        return 0;
}

int cmd_stat(int argc, char **argv)
{
        int r = on_each_path(argc, argv, "stat", "NAME[/PATH]...",
                             "Shows a node, one 'key: value' per line: name, type, digest, size,\n"
                             "executable (files), target (symlinks). Several are separated by a blank line.\n",
                             stat_one);
        if (fflush(stdout) != 0)
                r = 1;
        return r;
}
