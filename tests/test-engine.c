/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FUSE engine driven with requests built in memory, as a transport would
 * hand them over, against stores of its own (in memory, and on disk where a
 * blob is damaged on purpose): the replies are checked field by field, so the
 * engine is tested also where /dev/fuse is missing. */
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "outboard.h"
#include "tests.h"

#define BIG_SIZE (3 * 1024 * 1024 + 1000)

static uint64_t unique;

/* A reply: its header and up to 1 MiB after it. */
typedef struct reply {
        struct fuse_out_header h;
        _Alignas(8) uint8_t body[1 << 20];
} reply;

static reply out;

/* Sends opcode for nodeid with arg (and a NUL-terminated name after it, when
 * name is not NULL). Returns the reply's length (0: none) or a negative
 * errno; the reply is in out. */
static ssize_t call(cas_engine *e, uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len,
                    const char *name)
{
        _Alignas(8) uint8_t in[4096];
        size_t name_len = name ? strlen(name) + 1 : 0;
        struct fuse_in_header h = {
                .len = (uint32_t)(sizeof(h) + arg_len + name_len),
                .opcode = opcode,
                .unique = ++unique,
                .nodeid = nodeid,
        };

        ASSERT(h.len <= sizeof(in));
        memcpy(in, &h, sizeof(h));
        if (arg_len)
                memcpy(in + sizeof(h), arg, arg_len);
        if (name)
                memcpy(in + sizeof(h) + arg_len, name, name_len);
        memset(&out, 0xa5, sizeof(out));
        struct iovec iv = {in, h.len}, ov = {&out, sizeof(out)};
        ssize_t n = cas_engine_handle(e, &iv, 1, &ov, 1);
        if (n >= (ssize_t)sizeof(out.h)) {
                CHECK_RC(out.h.unique, unique);
                CHECK_RC(out.h.len, n);
        }
        return n;
}

/* The error a request's reply carries (0: success), or -1000 for no reply. */
static int status(cas_engine *e, uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len,
                  const char *name)
{
        ssize_t n = call(e, opcode, nodeid, arg, arg_len, name);
        return n >= (ssize_t)sizeof(out.h) ? out.h.error : n == 0 ? -1000 : (int)n;
}

static void init(cas_engine *e)
{
        struct fuse_init_in in = {.major = 7, .minor = 38, .max_readahead = 65536,
                                  .flags = FUSE_DO_READDIRPLUS | FUSE_ASYNC_READ};

        CHECK_RC(call(e, FUSE_INIT, 0, &in, sizeof(in), NULL),
                 sizeof(struct fuse_out_header) + sizeof(struct fuse_init_out));
        const struct fuse_init_out *o = (const void *)out.body;
        CHECK_RC(out.h.error, 0);
        CHECK_RC(o->major, 7);
        CHECK_RC(o->minor, 38);
        CHECK(o->flags & FUSE_DO_READDIRPLUS);
        CHECK(o->flags & FUSE_ASYNC_READ);
        CHECK(!(o->flags & FUSE_NO_OPEN_SUPPORT)); /* not offered: OPEN answers */
        CHECK_RC(o->max_pages, 256);
}

/* LOOKUP of name in parent: the entry's node id, or 0 when the lookup fails. */
static uint64_t lookup(cas_engine *e, uint64_t parent, const char *name, struct fuse_entry_out *ret)
{
        if (status(e, FUSE_LOOKUP, parent, NULL, 0, name) != 0)
                return 0;
        memcpy(ret, out.body, sizeof(*ret));
        return ret->nodeid;
}

/* READ of size bytes at off: the payload's length, or a negative errno. */
static ssize_t read_at(cas_engine *e, uint64_t ino, uint64_t off, uint32_t size)
{
        struct fuse_read_in in = {.offset = off, .size = size};
        ssize_t n = call(e, FUSE_READ, ino, &in, sizeof(in), NULL);
        if (n < (ssize_t)sizeof(out.h))
                return n < 0 ? n : -EPROTO;
        return out.h.error ? out.h.error : n - (ssize_t)sizeof(out.h);
}

static uint8_t *big_content(void)
{
        uint8_t *b = malloc(BIG_SIZE);
        uint32_t x = 12345;

        ASSERT(b);
        for (size_t k = 0; k < BIG_SIZE; k++) {
                x = x * 1103515245 + 12345;
                b[k] = (uint8_t)(x >> 16);
        }
        return b;
}

/* A root "tree" with hello ("hello"), run (executable), l -> hello and big. */
static void fill_store(cas_store *s, const uint8_t *big, cas_digest *ret_hello, cas_digest *ret_big)
{
        cas_node nodes[] = {
                {.type = CAS_NODE_FILE, .name = "hello", .name_len = 5, .size = 5},
                {.type = CAS_NODE_FILE, .name = "run", .name_len = 3, .size = 3, .executable = true},
                {.type = CAS_NODE_SYMLINK, .name = "l", .name_len = 1, .target = "hello", .target_len = 5},
                {.type = CAS_NODE_FILE, .name = "big", .name_len = 3, .size = BIG_SIZE},
        };
        cas_directory *d;
        cas_digest root;

        ASSERT(cas_blobstore_put(s->blobs, "hello", 5, &nodes[0].digest) == 0);
        ASSERT(cas_blobstore_put(s->blobs, "#!\n", 3, &nodes[1].digest) == 0);
        ASSERT(cas_blobstore_put(s->blobs, big, BIG_SIZE, &nodes[3].digest) == 0);
        ASSERT(cas_directory_build(nodes, ELEMENTS(nodes), &d) == 0);
        ASSERT(cas_metastore_put_closure(s->meta, &d, 1, &root, NULL) == 0);
        free(d);
        cas_node top = {.type = CAS_NODE_DIRECTORY, .name = "tree", .name_len = 4, .digest = root, .size = 4};
        ASSERT(cas_metastore_set_root(s->meta, &top) == 0);
        *ret_hello = nodes[0].digest;
        *ret_big = nodes[3].digest;
}

/* The names a READDIRPLUS reply lists, space-separated, and how many
 * entries carried a node id. */
static void readdirplus_names(size_t len, char *names, size_t names_size, unsigned *ret_with_ino)
{
        size_t pos = 0;

        names[0] = 0;
        *ret_with_ino = 0;
        while (pos + sizeof(struct fuse_direntplus) <= len) {
                const struct fuse_direntplus *de = (const void *)(out.body + pos);
                size_t have = strlen(names);
                snprintf(names + have, names_size - have, "%s%.*s", have ? " " : "", (int)de->dirent.namelen,
                         de->dirent.name);
                if (de->entry_out.nodeid)
                        (*ret_with_ino)++;
                pos += FUSE_DIRENTPLUS_SIZE(de);
        }
}

static char trace_line[256];

static void trace_sink(cas_log_level level, const char *line, void *userdata)
{
        if (level == CAS_LOG_DEBUG && strncmp(line, "LOOKUP", 6) == 0)
                snprintf(trace_line, sizeof(trace_line), "%s", line);
}

static void test_memory_store(void)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        _cleanup_(cas_engine_freep) cas_engine *e = NULL;
        _cleanup_free_ uint8_t *big = big_content();
        cas_engine_options o = {.verify = true, .xattr = true};
        struct fuse_entry_out tree, hello, run, l, bigf;
        cas_digest hello_digest, big_digest;
        char text[CAS_DIGEST_TEXT_MAX];

        ASSERT(cas_store_new_memory(&s) == 0);
        fill_store(s, big, &hello_digest, &big_digest);
        ASSERT(cas_engine_new(s, &o, NULL, &e) == 0);

        /* nothing before INIT */
        CHECK_RC(status(e, FUSE_GETATTR, 1, &(struct fuse_getattr_in){0}, sizeof(struct fuse_getattr_in), NULL),
                 -EIO);
        init(e);

        /* LOOKUP and GETATTR */
        CHECK(lookup(e, 1, "tree", &tree) > 1);
        CHECK_RC(tree.attr.mode, S_IFDIR | 0555);
        CHECK_RC(status(e, FUSE_LOOKUP, 1, NULL, 0, "nope"), -ENOENT);
        CHECK(lookup(e, tree.nodeid, "hello", &hello) > 1);
        CHECK_RC(hello.attr.mode, S_IFREG | 0444);
        CHECK_RC(hello.attr.size, 5);
        CHECK(lookup(e, tree.nodeid, "run", &run) > 1);
        CHECK_RC(run.attr.mode, S_IFREG | 0555);
        CHECK(lookup(e, tree.nodeid, "l", &l) > 1);
        CHECK_RC(l.attr.mode, S_IFLNK | 0444);
        CHECK(lookup(e, tree.nodeid, "big", &bigf) > 1);
        CHECK_RC(status(e, FUSE_LOOKUP, hello.nodeid, NULL, 0, "x"), -ENOTDIR);
        CHECK_RC(status(e, FUSE_GETATTR, hello.nodeid, &(struct fuse_getattr_in){0},
                        sizeof(struct fuse_getattr_in), NULL),
                 0);
        const struct fuse_attr_out *ao = (const void *)out.body;
        CHECK_RC(ao->attr.ino, hello.nodeid);
        CHECK_RC(ao->attr.size, 5);
        CHECK_RC(ao->attr_valid, UINT64_C(0xffffffffffff));

        /* READDIRPLUS: ".", "..", then the entries in name order, each with its node */
        struct fuse_read_in rin = {.offset = 0, .size = 4096};
        ssize_t n = call(e, FUSE_READDIRPLUS, tree.nodeid, &rin, sizeof(rin), NULL);
        CHECK(n > (ssize_t)sizeof(out.h));
        CHECK_RC(out.h.error, 0);
        char names[256];
        unsigned with_ino;
        readdirplus_names((size_t)n - sizeof(out.h), names, sizeof(names), &with_ino);
        CHECK_STR(names, ". .. big hello l run");
        CHECK_RC(with_ino, 4);
        CHECK_RC(status(e, FUSE_READDIRPLUS, 1, &rin, sizeof(rin), NULL), -EPERM); /* the top, without --list-root */

        /* OPEN: read-only only */
        struct fuse_open_in oin = {.flags = O_RDONLY};
        CHECK_RC(status(e, FUSE_OPEN, hello.nodeid, &oin, sizeof(oin), NULL), 0);
        CHECK(((const struct fuse_open_out *)(const void *)out.body)->open_flags & FOPEN_KEEP_CACHE);
        oin.flags = O_WRONLY;
        CHECK_RC(status(e, FUSE_OPEN, hello.nodeid, &oin, sizeof(oin), NULL), -EROFS);
        oin.flags = O_RDONLY;
        CHECK_RC(status(e, FUSE_OPEN, tree.nodeid, &oin, sizeof(oin), NULL), -EISDIR);

        /* READ: whole, a part, past the end; a large blob checked group by group */
        CHECK_RC(read_at(e, hello.nodeid, 0, 4096), 5);
        CHECK(memcmp(out.body, "hello", 5) == 0);
        CHECK_RC(read_at(e, hello.nodeid, 1, 2), 2);
        CHECK(memcmp(out.body, "el", 2) == 0);
        CHECK_RC(read_at(e, hello.nodeid, 10, 4096), 0);
        CHECK_RC(read_at(e, bigf.nodeid, 1048576 + 100, 4096), 4096);
        CHECK(memcmp(out.body, big + 1048576 + 100, 4096) == 0);
        CHECK_RC(read_at(e, bigf.nodeid, BIG_SIZE - 10, 4096), 10);
        CHECK(memcmp(out.body, big + BIG_SIZE - 10, 10) == 0);
        CHECK_RC(read_at(e, bigf.nodeid, 0, 1 << 20), 1 << 20);
        CHECK(memcmp(out.body, big, 1 << 20) == 0);
        CHECK_RC(read_at(e, tree.nodeid, 0, 4096), -EISDIR);

        /* READLINK */
        CHECK_RC(call(e, FUSE_READLINK, l.nodeid, NULL, 0, NULL), sizeof(out.h) + 5);
        CHECK(memcmp(out.body, "hello", 5) == 0);
        CHECK_RC(status(e, FUSE_READLINK, hello.nodeid, NULL, 0, NULL), -EINVAL);

        /* GETXATTR: the digest, its size first */
        struct fuse_getxattr_in xin = {.size = 0};
        CHECK_RC(status(e, FUSE_GETXATTR, hello.nodeid, &xin, sizeof(xin), "user.castore.blob.digest"), 0);
        cas_digest_to_text(&hello_digest, text);
        CHECK_RC(((const struct fuse_getxattr_out *)(const void *)out.body)->size, strlen(text));
        xin.size = 256;
        CHECK_RC(call(e, FUSE_GETXATTR, hello.nodeid, &xin, sizeof(xin), "user.castore.blob.digest"),
                 sizeof(out.h) + strlen(text));
        CHECK(memcmp(out.body, text, strlen(text)) == 0);
        xin.size = 10;
        CHECK_RC(status(e, FUSE_GETXATTR, hello.nodeid, &xin, sizeof(xin), "user.castore.blob.digest"), -ERANGE);
        CHECK_RC(status(e, FUSE_GETXATTR, hello.nodeid, &xin, sizeof(xin), "user.other"), -ENODATA);

        /* writes of any kind: EROFS */
        struct fuse_mkdir_in min = {.mode = 0755};
        CHECK_RC(status(e, FUSE_MKDIR, tree.nodeid, &min, sizeof(min), "d"), -EROFS);
        struct fuse_write_in win = {.size = 1};
        CHECK_RC(status(e, FUSE_WRITE, hello.nodeid, &win, sizeof(win), NULL), -EROFS);
        CHECK_RC(status(e, FUSE_UNLINK, tree.nodeid, NULL, 0, "hello"), -EROFS);
        /* an opcode the engine does not know */
        CHECK_RC(status(e, 9999, 1, NULL, 0, NULL), -ENOSYS);

        /* FORGET: no reply; once every lookup is forgotten the node is gone */
        uint64_t live = cas_engine_inode_count(e);
        struct fuse_forget_in fin = {.nlookup = 1};
        CHECK_RC(call(e, FUSE_FORGET, hello.nodeid, &fin, sizeof(fin), NULL), 0);
        CHECK_RC(status(e, FUSE_GETATTR, hello.nodeid, &(struct fuse_getattr_in){0},
                        sizeof(struct fuse_getattr_in), NULL),
                 0); /* READDIRPLUS's lookup still holds it */
        CHECK_RC(call(e, FUSE_FORGET, hello.nodeid, &fin, sizeof(fin), NULL), 0);
        CHECK_RC(status(e, FUSE_GETATTR, hello.nodeid, &(struct fuse_getattr_in){0},
                        sizeof(struct fuse_getattr_in), NULL),
                 -ESTALE);
        CHECK_RC(cas_engine_inode_count(e), live - 1);
        fin.nlookup = 1000; /* more than the kernel holds: never below zero */
        CHECK_RC(call(e, FUSE_FORGET, run.nodeid, &fin, sizeof(fin), NULL), 0);
        CHECK_RC(cas_engine_inode_count(e), live - 2);

        /* the debug trace names each request by its opcode */
        cas_log_set_sink(trace_sink, NULL);
        cas_log_set_max_level(CAS_LOG_DEBUG);
        CHECK(lookup(e, 1, "tree", &tree) > 1);
        cas_log_set_max_level(CAS_LOG_INFO);
        cas_log_to_stderr();
        CHECK_STR(trace_line, "LOOKUP nodeid=1 tree");
}

/* The top's READDIRPLUS listing, names space-separated, into names. */
static void list_top(cas_engine *e, char *names, size_t size)
{
        struct fuse_read_in rin = {.offset = 0, .size = 4096};
        unsigned with_ino;
        ssize_t n = call(e, FUSE_READDIRPLUS, 1, &rin, sizeof(rin), NULL);

        names[0] = 0;
        CHECK(n >= (ssize_t)sizeof(out.h));
        CHECK_RC(out.h.error, 0);
        if (n > (ssize_t)sizeof(out.h))
                readdirplus_names((size_t)n - sizeof(out.h), names, size, &with_ino);
}

/* Only the listed roots at the top: lookups of others are ENOENT, the
 * listing shows the listed ones the registry has, and the registry's changes
 * show for them only. */
static void test_listed_roots(void)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        _cleanup_(cas_engine_freep) cas_engine *e = NULL;
        _cleanup_free_ uint8_t *big = big_content();
        const char *listed[] = {"tree", "zz", "a", "tree"};
        cas_engine_options o = {.verify = true, .list_root = true, .roots = listed,
                                .n_roots = ELEMENTS(listed)};
        struct fuse_entry_out ent;
        cas_digest hello_digest, big_digest;
        char names[256];

        ASSERT(cas_store_new_memory(&s) == 0);
        fill_store(s, big, &hello_digest, &big_digest);
        cas_node a = {.type = CAS_NODE_FILE, .name = "a", .name_len = 1, .digest = hello_digest, .size = 5};
        cas_node b = {.type = CAS_NODE_FILE, .name = "b", .name_len = 1, .digest = hello_digest, .size = 5};
        ASSERT(cas_metastore_set_root(s->meta, &a) == 0);
        ASSERT(cas_metastore_set_root(s->meta, &b) == 0);
        ASSERT(cas_engine_new(s, &o, NULL, &e) == 0);
        init(e);

        CHECK(lookup(e, 1, "tree", &ent) > 1);
        CHECK(lookup(e, 1, "a", &ent) > 1);
        CHECK_RC(status(e, FUSE_LOOKUP, 1, NULL, 0, "b"), -ENOENT);  /* in the store, not listed */
        CHECK_RC(status(e, FUSE_LOOKUP, 1, NULL, 0, "zz"), -ENOENT); /* listed, not in the store */
        list_top(e, names, sizeof(names));
        CHECK_STR(names, ". .. a tree");

        /* the registry changes: a listed root added shows, one removed goes,
         * an unlisted one added never shows */
        cas_node zz = {.type = CAS_NODE_FILE, .name = "zz", .name_len = 2, .digest = hello_digest, .size = 5};
        cas_node c = {.type = CAS_NODE_FILE, .name = "c", .name_len = 1, .digest = hello_digest, .size = 5};
        ASSERT(cas_metastore_set_root(s->meta, &zz) == 0);
        ASSERT(cas_metastore_set_root(s->meta, &c) == 0);
        ASSERT(cas_metastore_remove_root(s->meta, "a") == 0);
        CHECK(lookup(e, 1, "zz", &ent) > 1);
        CHECK_RC(status(e, FUSE_LOOKUP, 1, NULL, 0, "c"), -ENOENT);
        CHECK_RC(status(e, FUSE_LOOKUP, 1, NULL, 0, "a"), -ENOENT);
        list_top(e, names, sizeof(names));
        CHECK_STR(names, ". .. tree zz");
        e = cas_engine_free(e);

        /* a long list, read in small pieces: each piece goes on from the
         * last offset, and listed roots the registry lacks leave gaps */
        enum { LONG = 300 };
        char long_names[LONG][8];
        const char *long_list[LONG];
        for (unsigned k = 0; k < LONG; k++) {
                snprintf(long_names[k], sizeof(long_names[k]), "r%03u", k);
                long_list[k] = long_names[k];
                cas_node rn = {.type = CAS_NODE_FILE, .name = long_names[k], .name_len = 4,
                               .digest = hello_digest, .size = 5};
                if (k % 3 != 1)
                        ASSERT(cas_metastore_set_root(s->meta, &rn) == 0);
        }
        o.roots = long_list;
        o.n_roots = LONG;
        ASSERT(cas_engine_new(s, &o, NULL, &e) == 0);
        init(e);
        unsigned seen = 0, calls = 0;
        bool in_order = true;
        char last[8] = "";
        for (uint64_t off = 0;; calls++) {
                struct fuse_read_in rin = {.offset = off, .size = 512};
                ssize_t n = call(e, FUSE_READDIRPLUS, 1, &rin, sizeof(rin), NULL);
                CHECK_RC(out.h.error, 0);
                if (n <= (ssize_t)sizeof(out.h) || calls > LONG)
                        break;
                for (size_t pos = 0; pos + sizeof(struct fuse_direntplus) <= (size_t)n - sizeof(out.h);) {
                        const struct fuse_direntplus *de = (const void *)(out.body + pos);
                        if (de->dirent.namelen == 4) {
                                char name[8];
                                snprintf(name, sizeof(name), "%.4s", de->dirent.name);
                                in_order = in_order && strcmp(name, last) > 0 && atoi(name + 1) % 3 != 1;
                                snprintf(last, sizeof(last), "%s", name);
                                seen++;
                        }
                        off = de->dirent.off;
                        pos += FUSE_DIRENTPLUS_SIZE(de);
                }
        }
        CHECK_RC(seen, LONG - LONG / 3);
        CHECK(in_order);
        CHECK(calls > 5);
        e = cas_engine_free(e);
        o.roots = listed;

        /* an empty list: an empty top */
        o.n_roots = 0;
        ASSERT(cas_engine_new(s, &o, NULL, &e) == 0);
        init(e);
        CHECK_RC(status(e, FUSE_LOOKUP, 1, NULL, 0, "tree"), -ENOENT);
        list_top(e, names, sizeof(names));
        CHECK_STR(names, ". ..");
        e = cas_engine_free(e);

        /* a name that is no root name: refused */
        const char *bad[] = {"tree", "a/b"};
        o.roots = bad;
        o.n_roots = ELEMENTS(bad);
        CHECK_RC(cas_engine_new(s, &o, NULL, &e), -EINVAL);
        CHECK(e == NULL);
}

/* Overwrites n bytes at off of the file of blob d (a store on disk). */
static void damage(cas_store *s, const cas_digest *d, off_t off, size_t n)
{
        _cleanup_free_ char *path = NULL;
        uint8_t junk[64];

        memset(junk, 0x5a, sizeof(junk));
        ASSERT(n <= sizeof(junk));
        ASSERT(cas_blobstore_path(s->blobs, d, &path) == 0);
        ASSERT(chmod(path, 0644) == 0);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ASSERT(fd >= 0);
        ASSERT(pwrite(fd, junk, n, off) == (ssize_t)n);
        close(fd);
}

static void test_damaged_blobs(void)
{
        char dir[] = "/tmp/test-engine-XXXXXX";
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        _cleanup_(cas_engine_freep) cas_engine *e = NULL;
        _cleanup_free_ uint8_t *big = big_content();
        cas_engine_options o = {.verify = true};
        struct fuse_entry_out tree, hello, bigf;
        cas_digest hello_digest, big_digest;

        ASSERT(mkdtemp(dir));
        ASSERT(cas_store_open(dir, CAS_STORE_CREATE, &s) == 0);
        fill_store(s, big, &hello_digest, &big_digest);
        damage(s, &hello_digest, 1, 1);
        /* the second group of the large blob */
        damage(s, &big_digest, CAS_OUTBOARD_GROUP + 7, 3);
        ASSERT(cas_engine_new(s, &o, NULL, &e) == 0);
        init(e);
        ASSERT(lookup(e, 1, "tree", &tree) > 1);
        ASSERT(lookup(e, tree.nodeid, "hello", &hello) > 1);
        ASSERT(lookup(e, tree.nodeid, "big", &bigf) > 1);

        /* a small blob: EIO, now and later (the verdict is kept) */
        CHECK_RC(read_at(e, hello.nodeid, 0, 4096), -EIO);
        CHECK_RC(read_at(e, hello.nodeid, 2, 2), -EIO);
        /* a large one: EIO where its group is damaged, its bytes elsewhere */
        CHECK_RC(read_at(e, bigf.nodeid, CAS_OUTBOARD_GROUP, 4096), -EIO);
        CHECK_RC(read_at(e, bigf.nodeid, 0, 4096), 4096);
        CHECK(memcmp(out.body, big, 4096) == 0);
        CHECK_RC(read_at(e, bigf.nodeid, 5 * CAS_OUTBOARD_GROUP + 1, 100), 100);
        CHECK(memcmp(out.body, big + 5 * CAS_OUTBOARD_GROUP + 1, 100) == 0);

        e = cas_engine_free(e);
        s = cas_store_free(s);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "chmod -R u+w %s && rm -rf %s", dir, dir);
        CHECK_RC(system(cmd), 0);
}

/* A payload left where it lies (cas_request_refer): taken whole or copied
 * whole, never half; an error drops it; the function given runs once. */
static unsigned written_calls;
static void count_written(void *userdata)
{
        (*(unsigned *)userdata)++;
}

static void test_request_refs(void)
{
        _Alignas(8) uint8_t in[sizeof(struct fuse_in_header) + sizeof(struct fuse_read_in)] = {0};
        struct fuse_in_header h = {.len = sizeof(in), .opcode = FUSE_READ, .unique = 77};
        memcpy(in, &h, sizeof(h));
        static uint8_t buf[4096], a[100], b[50];
        memset(a, 'a', sizeof(a));
        memset(b, 'b', sizeof(b));
        struct iovec iv = {in, sizeof(in)}, ov = {buf, sizeof(buf)};
        const size_t hdr = sizeof(struct fuse_out_header);
        cas_request rq;
        const struct fuse_out_header *oh = (const void *)buf;

        /* not allowed: copied, as cas_request_put */
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        memset(buf, 0, sizeof(buf));
        CHECK(cas_request_refer(&rq, hdr, a, sizeof(a)));
        CHECK(!cas_request_refers(&rq));
        CHECK(buf[hdr] == 'a' && buf[hdr + sizeof(a) - 1] == 'a');
        CHECK_RC(cas_request_finish(&rq, sizeof(a)), 0);
        CHECK_RC(rq.written, hdr + sizeof(a));

        /* allowed: left where they lie, in order; the header says their length */
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        rq.refs_ok = true;
        memset(buf, 0, sizeof(buf));
        CHECK(cas_request_refer(&rq, hdr, a, sizeof(a)));
        CHECK(cas_request_refer(&rq, hdr + sizeof(a), b, sizeof(b)));
        CHECK(cas_request_refers(&rq));
        CHECK_RC(rq.n_refs, 2);
        CHECK(rq.refs[0].iov_base == a && rq.refs[1].iov_base == b);
        CHECK(buf[hdr] == 0); /* nothing copied */
        written_calls = 0;
        cas_request_when_written(&rq, count_written, &written_calls);
        CHECK_RC(cas_request_finish(&rq, sizeof(a) + sizeof(b)), 0);
        CHECK_RC(oh->len, hdr + sizeof(a) + sizeof(b));
        CHECK_RC(oh->unique, 77);
        CHECK(cas_request_refers(&rq));
        cas_request_written(&rq);
        cas_request_written(&rq); /* once only */
        CHECK_RC(written_calls, 1);
        CHECK(!cas_request_refers(&rq));

        /* a piece not following the others: all of them copied */
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        rq.refs_ok = true;
        memset(buf, 0, sizeof(buf));
        CHECK(cas_request_refer(&rq, hdr, a, sizeof(a)));
        CHECK(cas_request_refer(&rq, hdr + sizeof(a) + 10, b, sizeof(b)));
        CHECK(!cas_request_refers(&rq));
        CHECK(buf[hdr] == 'a' && buf[hdr + sizeof(a) - 1] == 'a' && buf[hdr + sizeof(a)] == 0);
        CHECK(buf[hdr + sizeof(a) + 10] == 'b');

        /* more pieces than a request holds: copied */
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        rq.refs_ok = true;
        for (size_t k = 0; k <= CAS_REQUEST_REFS; k++)
                CHECK(cas_request_refer(&rq, hdr + k * 10, a, 10));
        CHECK(!cas_request_refers(&rq));
        CHECK(buf[hdr] == 'a' && buf[hdr + (CAS_REQUEST_REFS + 1) * 10 - 1] == 'a');

        /* pieces that do not fit once copied: false, and nothing left referred */
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        rq.refs_ok = true;
        static uint8_t large[8192];
        CHECK(cas_request_refer(&rq, hdr, large, sizeof(large)));
        CHECK(!cas_request_refer(&rq, hdr + 1, a, sizeof(a)));
        CHECK(!cas_request_refers(&rq));

        /* an error drops the pieces; a length that is not theirs is an error */
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        rq.refs_ok = true;
        CHECK(cas_request_refer(&rq, hdr, a, sizeof(a)));
        CHECK_RC(cas_request_error(&rq, -EIO), 0);
        CHECK(!cas_request_refers(&rq));
        CHECK_RC(oh->error, -EIO);
        CHECK_RC(rq.written, hdr);
        CHECK_RC(cas_request_init(&rq, &iv, 1, &ov, 1), 0);
        rq.refs_ok = true;
        CHECK(cas_request_refer(&rq, hdr, a, sizeof(a)));
        CHECK_RC(cas_request_finish(&rq, sizeof(a) - 1), 0);
        CHECK(!cas_request_refers(&rq));
        CHECK_RC(oh->error, -EIO);
        CHECK_RC(rq.written, hdr);
}

int main(void)
{
        test_request_refs();
        test_memory_store();
        test_listed_roots();
        test_damaged_blobs();
        return tests_finish("test-engine");
}
