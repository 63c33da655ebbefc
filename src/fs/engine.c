/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "engine.h"
#include "inodes.h"
#include "macro.h"
#include "outboard.h"
#include "log.h"
#include "verify.h"

/* Contents never change, so the kernel may keep entries and attributes
 * forever; the mount top is invalidated explicitly when roots change. */
#define FOREVER UINT64_C(0xffffffffffff)
/* The largest request argument we copy (a name, an xattr name). */
#define IN_MAX 8192
#define DEFAULT_MAX_PAGES 256

/* FUSE passthrough (protocol 7.40, Linux 6.9), newer than the headers of
 * the systems we build on: the kernel reads a file opened with
 * FOPEN_PASSTHROUGH straight from the backing file registered for it. */
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (UINT64_C(1) << 37)
#endif
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7)
#endif
#define XATTR_DIR "user.castore.directory.digest"
#define XATTR_BLOB "user.castore.blob.digest"
/* Reading ahead: how many blobs may wait, and how much of each is read
 * (larger files get the kernel's own readahead once they are read). */
#define PREFETCH_QUEUE 256
#define PREFETCH_BYTES (512 * 1024)
/* Small blobs read ahead whole, checked, and kept for the request that
 * reads them (at most PARKED of them, each up to PARK_MAX bytes, PARK_BUDGET
 * bytes in all). They are read from the disk straight into that memory
 * (O_DIRECT): no page cache of the blob beside the kernel's cache of the
 * mounted file, and no copy out of it. */
#define PARKED 64
#define PARK_MAX (1024 * 1024)
#define PARK_BUDGET (16 * 1024 * 1024)
/* Their memory is reused: the disk writes straight into it, and a fresh
 * buffer costs a page fault and a zeroed page for each 4 KiB of it when the
 * kernel pins it for the read (about 5% of the daemon's time in a cold read
 * of many small files, measured). Buffers are a power of two from 4 KiB to
 * PARK_MAX; at most PARK_BUDGET bytes of them wait for reuse, and they go
 * when memory is released. */
#define POOL_MIN_SHIFT 12
#define POOL_CLASSES 9
_Static_assert((UINT64_C(1) << (POOL_MIN_SHIFT + POOL_CLASSES - 1)) == PARK_MAX, "the largest class holds PARK_MAX");

struct cas_engine {
        cas_store *store;
        cas_engine_options opts;
        cas_engine_transport transport;
        cas_inodes *inodes;
        uint32_t max_pages;
        _Atomic bool destroyed;
        _Atomic bool initialized;
        bool no_open;     /* the kernel opens files without a round trip */
        bool no_opendir;  /* and directories */
        bool passthrough; /* the kernel reads verified blobs' files itself */
        _Atomic bool passthrough_refused; /* the kernel refused a backing file: stop trying */

        pthread_mutex_t verify_locks[16]; /* one thread hashes a blob while others wait for its verdict */

        pthread_mutex_t prefetch_lock; /* protects the prefetch_* fields */
        pthread_cond_t prefetch_cond;
        struct prefetch {
                cas_digest digest;
                uint64_t size; /* of the blob */
                uint64_t ino;  /* not 0: load and check the outboard of this large file instead */
        } prefetch_ring[PREFETCH_QUEUE];
        unsigned prefetch_head, prefetch_n;
        bool prefetch_stop;
        pthread_mutex_t parked_lock; /* protects parked, parked_clock, parked_bytes */
        pthread_cond_t parked_cond;  /* a blob being read ahead is there (or failed) */
        struct parked {
                cas_digest digest;
                uint64_t size;
                uint8_t *bytes; /* NULL: free slot, or being read (loading) */
                bool loading;   /* a thread reads digest ahead into this slot */
                uint64_t age;   /* when it was claimed: the oldest goes first */
        } parked[PARKED];
        uint64_t parked_clock;
        uint64_t parked_bytes; /* held by parked[] */
        pthread_mutex_t pool_lock; /* protects pool, pool_bytes */
        void *pool[POOL_CLASSES];  /* free buffers of each size, linked through their first bytes */
        uint64_t pool_bytes;
        pthread_mutex_t top_lock; /* protects top_names, n_top, roots_generation */
        struct top_name {
                char *name;
                cas_digest key; /* what the name pointed to when the kernel learned it */
                uint8_t type;
        } *top_names;
        size_t n_top, alloc_top;
        uint64_t roots_generation;
        /* cas_engine_tick's: inodes freed at the last tick and at the last release */
        uint64_t tick_freed, released_freed;
};

/* One request being answered. */
typedef struct req {
        cas_engine *e;
        const struct fuse_in_header *in;
        const uint8_t *arg; /* the bytes after the header */
        size_t arg_len;
        const struct iovec *out;
        int out_cnt;
        size_t written; /* bytes put into out so far (header included) */
        bool replied;
        _Alignas(8) uint8_t copy[IN_MAX]; /* the request gathered, when it came scattered or unaligned */
} req;

/* ---- replies ---- */

/* Copies bytes into out at position pos; returns false when out is too small. */
static bool out_put(const struct iovec *out, int out_cnt, size_t pos, const void *data, size_t n)
{
        const uint8_t *p = data;
        for (int k = 0; k < out_cnt && n > 0; k++) {
                if (pos >= out[k].iov_len) {
                        pos -= out[k].iov_len;
                        continue;
                }
                size_t c = MIN(n, out[k].iov_len - pos);
                memcpy((uint8_t *)out[k].iov_base + pos, p, c);
                p += c;
                n -= c;
                pos = 0;
        }
        return n == 0;
}

static size_t out_capacity(const req *r)
{
        size_t c = 0;
        for (int k = 0; k < r->out_cnt; k++)
                c += r->out[k].iov_len;
        return c;
}

static int reply_raw(req *r, int error, const void *data, size_t n)
{
        struct fuse_out_header h = {
                .len = (uint32_t)(sizeof(h) + (error ? 0 : n)),
                .error = error ? -abs(error) : 0,
                .unique = r->in->unique,
        };
        if (!out_put(r->out, r->out_cnt, 0, &h, sizeof(h)))
                return -ENOBUFS;
        if (!error && n && !out_put(r->out, r->out_cnt, sizeof(h), data, n)) {
                /* too large for the buffers given: say so instead */
                h.len = sizeof(h);
                h.error = -ERANGE;
                out_put(r->out, r->out_cnt, 0, &h, sizeof(h));
                n = 0;
        }
        r->written = h.len;
        r->replied = true;
        return 0;
}

static int reply_err(req *r, int error)
{
        return reply_raw(r, error, NULL, 0);
}

static int reply_ok(req *r, const void *data, size_t n)
{
        return reply_raw(r, 0, data, n);
}

/* ---- attributes ---- */

static void fill_attr(cas_engine *e, const cas_inode *i, struct fuse_attr *a)
{
        *a = (struct fuse_attr){0};
        a->ino = i->ino;
        a->size = i->size;
        a->blocks = (i->size + 511) / 512;
        a->mtime = 1;
        a->atime = 1;
        a->ctime = 1;
        a->blksize = 4096;
        a->nlink = 1;
        if (e->opts.set_owner) {
                a->uid = e->opts.uid;
                a->gid = e->opts.gid;
        }
        switch (i->type) {
        case CAS_NODE_FILE:
                a->mode = S_IFREG | (i->executable ? 0555 : 0444);
                a->blocks = (i->size + 511) / 512;
                break;
        case CAS_NODE_SYMLINK:
                a->mode = S_IFLNK | 0444;
                break;
        default: /* directories and the top */
                a->mode = S_IFDIR | 0555;
                a->nlink = 2;
                a->blocks = 0;
                break;
        }
}

static void fill_entry(cas_engine *e, const cas_inode *i, struct fuse_entry_out *o)
{
        *o = (struct fuse_entry_out){0};
        o->nodeid = i->ino;
        o->generation = 1;
        o->entry_valid = FOREVER;
        o->attr_valid = FOREVER;
        fill_attr(e, i, &o->attr);
}

/* ---- the mount top: names the kernel knows, for invalidation ---- */

static void top_remember(cas_engine *e, const char *name, const cas_inode *i)
{
        pthread_mutex_lock(&e->top_lock);
        for (size_t k = 0; k < e->n_top; k++)
                if (strcmp(e->top_names[k].name, name) == 0) {
                        e->top_names[k].key = i->digest;
                        e->top_names[k].type = i->type;
                        goto done;
                }
        if (e->n_top == e->alloc_top) {
                size_t n = e->alloc_top ? e->alloc_top * 2 : 16;
                void *p = realloc(e->top_names, n * sizeof(*e->top_names));
                if (!p)
                        goto done;
                e->top_names = p;
                e->alloc_top = n;
        }
        e->top_names[e->n_top].name = strdup(name);
        if (e->top_names[e->n_top].name) {
                e->top_names[e->n_top].key = i->digest;
                e->top_names[e->n_top].type = i->type;
                e->n_top++;
        }
done:
        pthread_mutex_unlock(&e->top_lock);
}

/* The inode key a root node maps to (as cas_inodes_lookup computes it). */
static void node_key(const cas_node *n, cas_digest *ret)
{
        if (n->type == CAS_NODE_SYMLINK)
                cas_digest_of(n->target, n->target_len, ret);
        else
                *ret = n->digest;
}

static int notify_inval_entry(cas_engine *e, uint64_t parent, const char *name)
{
        struct fuse_out_header h = {.error = FUSE_NOTIFY_INVAL_ENTRY};
        struct fuse_notify_inval_entry_out o = {.parent = parent, .namelen = (uint32_t)strlen(name)};
        struct iovec iov[3] = {
                {&h, sizeof(h)},
                {&o, sizeof(o)},
                {(void *)name, o.namelen + 1},
        };
        h.len = (uint32_t)(sizeof(h) + sizeof(o) + o.namelen + 1);
        return e->transport.notify(e->transport.userdata, iov, 3);
}

static int notify_inval_inode(cas_engine *e, uint64_t ino)
{
        struct fuse_out_header h = {.error = FUSE_NOTIFY_INVAL_INODE};
        struct fuse_notify_inval_inode_out o = {.ino = ino, .off = 0, .len = -1};
        struct iovec iov[2] = {{&h, sizeof(h)}, {&o, sizeof(o)}};
        h.len = sizeof(h) + sizeof(o);
        return e->transport.notify(e->transport.userdata, iov, 2);
}

int cas_engine_refresh_roots(cas_engine *e)
{
        uint64_t gen;
        int r;

        r = cas_metastore_roots_generation(e->store->meta, &gen);
        if (r < 0)
                return r;
        pthread_mutex_lock(&e->top_lock);
        if (gen == e->roots_generation) {
                pthread_mutex_unlock(&e->top_lock);
                return 0;
        }
        e->roots_generation = gen;
        /* names whose root changed or went: drop them from the kernel's cache */
        size_t kept = 0;
        for (size_t k = 0; k < e->n_top; k++) {
                struct top_name *t = &e->top_names[k];
                _cleanup_free_ cas_node *n = NULL;
                cas_digest key;
                bool same = false;
                if (cas_metastore_get_root(e->store->meta, t->name, &n) >= 0) {
                        node_key(n, &key);
                        same = n->type == t->type && cas_digest_eq(&key, &t->key);
                }
                if (same) {
                        e->top_names[kept++] = *t;
                        continue;
                }
                if (e->transport.notify && atomic_load(&e->initialized))
                        (void)notify_inval_entry(e, CAS_ROOT_INO, t->name);
                free(t->name);
        }
        e->n_top = kept;
        pthread_mutex_unlock(&e->top_lock);
        /* the top's listing, cached by the kernel, changed too */
        if (e->transport.notify && atomic_load(&e->initialized))
                (void)notify_inval_inode(e, CAS_ROOT_INO);
        return 1;
}

/* ---- request handlers ---- */

typedef int (*handler)(req *r, cas_inode *i);

#define ARG(type) ((const type *)r->arg)

static int need(req *r, size_t n)
{
        return r->arg_len >= n ? 0 : -EINVAL;
}

/* A NUL-terminated string argument at offset off. */
static const char *arg_string(req *r, size_t off, size_t *ret_len)
{
        if (off >= r->arg_len)
                return NULL;
        const char *s = (const char *)r->arg + off;
        const char *end = memchr(s, 0, r->arg_len - off);
        if (!end)
                return NULL;
        *ret_len = (size_t)(end - s);
        return s;
}

static int do_init(req *r, cas_inode *i)
{
        cas_engine *e = r->e;
        const struct fuse_init_in *in = ARG(struct fuse_init_in);
        struct fuse_init_out o = {0};

        /* the first 16 bytes (major, minor, max_readahead, flags) exist in every version */
        if (r->arg_len < 16)
                return reply_err(r, EINVAL);
        o.major = FUSE_KERNEL_VERSION;
        o.minor = FUSE_KERNEL_MINOR_VERSION;
        if (in->major < 7)
                return reply_err(r, EPROTO);
        if (in->major > 7) /* the kernel will ask again with major 7 */
                return reply_ok(r, &o, 8);
        if (in->minor < o.minor)
                o.minor = in->minor;

        uint64_t offered = in->flags;
        if (r->arg_len >= sizeof(*in) && (in->flags & FUSE_INIT_EXT))
                offered |= (uint64_t)in->flags2 << 32;
        uint64_t want = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS | FUSE_CACHE_SYMLINKS |
                        FUSE_MAX_PAGES | FUSE_NO_OPEN_SUPPORT | FUSE_NO_OPENDIR_SUPPORT | FUSE_BIG_WRITES |
                        FUSE_INIT_EXT;
        /* Passthrough needs an OPEN per file (to hand the kernel the blob's
         * file), so it replaces opening without a round trip for files. */
        if (e->transport.backing_open && (offered & FUSE_PASSTHROUGH))
                want = (want & ~(uint64_t)FUSE_NO_OPEN_SUPPORT) | FUSE_PASSTHROUGH;
        uint64_t flags = offered & want;
        e->no_open = flags & FUSE_NO_OPEN_SUPPORT;
        e->no_opendir = flags & FUSE_NO_OPENDIR_SUPPORT;
        e->passthrough = flags & FUSE_PASSTHROUGH;
        /* 7.40's max_stack_depth, the first of 7.38's unused words: the blob
         * files live on an ordinary file system (stacking depth 0) */
        if (e->passthrough)
                o.unused[0] = 1;
        o.flags = (uint32_t)flags;
        o.flags2 = (uint32_t)(flags >> 32);
        /* the kernel keeps the smaller of this and its device's setting
         * (raised by the transport beforehand when it can) */
        o.max_readahead = MAX(in->max_readahead, e->opts.read_ahead);
        o.max_write = 128 * 1024;
        o.max_background = 64;
        o.congestion_threshold = 48;
        o.time_gran = 1;
        o.max_pages = (uint16_t)e->max_pages;
        atomic_store(&e->initialized, true);

        /* older kernels know a shorter reply */
        size_t len = sizeof(o);
        if (o.minor < 5)
                len = 8;
        else if (o.minor < 23)
                len = 24;
        return reply_ok(r, &o, len);
}

static int do_destroy(req *r, cas_inode *i)
{
        atomic_store(&r->e->destroyed, true);
        return reply_ok(r, NULL, 0);
}

/* Remembers that the kernel found inode c as entry index of directory p. */
static void seen(cas_inode *c, const cas_inode *p, uint32_t index)
{
        if (c->type != CAS_NODE_FILE)
                return;
        atomic_store_explicit(&c->seen_in, p->ino, memory_order_relaxed);
        atomic_store_explicit(&c->seen_at, index, memory_order_relaxed);
}

/* Resolves name in directory p to a node: a root at the top (*ret_root holds
 * it), an entry below (*ret_cache holds the directory it lives in). */
static int find_child(req *r, cas_inode *p, const char *name, size_t len, cas_node **ret_root,
                      cas_dir_cache **ret_cache, const cas_node **ret_node)
{
        cas_engine *e = r->e;
        int k;

        if (p->ino == CAS_ROOT_INO) {
                if (len == 0 || len > CAS_NAME_MAX || memchr(name, '/', len))
                        return -ENOENT;
                k = cas_metastore_get_root(e->store->meta, name, ret_root);
                if (k < 0)
                        return k == -ENOENT ? -ENOENT : -EIO;
                *ret_node = *ret_root;
                return 0;
        }
        if (p->type != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        k = cas_inode_directory(e->inodes, p, e->store->meta, ret_cache);
        if (k < 0)
                return k;
        const cas_node *n = cas_directory_find((*ret_cache)->dir, name, len);
        if (!n)
                return -ENOENT;
        *ret_node = n;
        return 0;
}

static void outboard_ahead(cas_engine *e, const cas_node *n, const cas_inode *i);

static int do_lookup(req *r, cas_inode *p)
{
        cas_engine *e = r->e;
        _cleanup_free_ cas_node *root = NULL;
        cas_dir_cache *cache = NULL;
        const cas_node *n;
        cas_inode *c;
        size_t len;
        int k;

        const char *name = arg_string(r, 0, &len);
        if (!name)
                return reply_err(r, EINVAL);
        k = find_child(r, p, name, len, &root, &cache, &n);
        if (k >= 0)
                k = cas_inodes_lookup(e->inodes, n, &c);
        if (k >= 0 && cache)
                seen(c, p, (uint32_t)(n - cache->dir->nodes));
        if (k >= 0)
                outboard_ahead(e, n, c);
        cas_dir_cache_unref(cache);
        if (k < 0)
                return reply_err(r, -k);
        struct fuse_entry_out o;
        fill_entry(e, c, &o);
        if (p->ino == CAS_ROOT_INO)
                top_remember(e, name, c);
        cas_inode_unref(e->inodes, c);
        return reply_ok(r, &o, sizeof(o));
}

static int do_forget(req *r, cas_inode *unused)
{
        if (r->arg_len >= sizeof(struct fuse_forget_in))
                cas_inodes_forget(r->e->inodes, r->in->nodeid, ARG(struct fuse_forget_in)->nlookup);
        r->replied = true; /* no reply */
        return 0;
}

static int do_batch_forget(req *r, cas_inode *unused)
{
        if (need(r, sizeof(struct fuse_batch_forget_in)) == 0) {
                const struct fuse_batch_forget_in *b = ARG(struct fuse_batch_forget_in);
                size_t max = (r->arg_len - sizeof(*b)) / sizeof(struct fuse_forget_one);
                const struct fuse_forget_one *one = (const void *)(b + 1);
                for (size_t k = 0; k < MIN((size_t)b->count, max); k++)
                        cas_inodes_forget(r->e->inodes, one[k].nodeid, one[k].nlookup);
        }
        r->replied = true;
        return 0;
}

static int do_getattr(req *r, cas_inode *i)
{
        struct fuse_attr_out o = {.attr_valid = FOREVER};
        fill_attr(r->e, i, &o.attr);
        if (i->ino == CAS_ROOT_INO)
                o.attr_valid = 1; /* the top's entry count may change */
        return reply_ok(r, &o, sizeof(o));
}

static int do_readlink(req *r, cas_inode *i)
{
        if (i->type != CAS_NODE_SYMLINK)
                return reply_err(r, EINVAL);
        return reply_ok(r, i->target, i->size);
}

static int32_t passthrough_id(cas_engine *e, cas_inode *i);
static void read_ahead_after(cas_engine *e, cas_inode *i);

static int do_open(req *r, cas_inode *i)
{
        /* Opening needs nothing from us: reads name the inode, content is
         * immutable. Saying ENOSYS once (the kernel then sends no more OPEN,
         * FLUSH or RELEASE) saves a round trip per open file, and the kernel
         * keeps the page cache across opens. Writes never get here: EROFS. */
        if (r->arg_len >= sizeof(struct fuse_open_in)) {
                uint32_t fl = ARG(struct fuse_open_in)->flags;
                if ((fl & O_ACCMODE) != O_RDONLY || (fl & O_TRUNC))
                        return reply_err(r, EROFS);
        }
        if (r->in->opcode == FUSE_OPEN && i->type != CAS_NODE_FILE)
                return reply_err(r, i->type == CAS_NODE_DIRECTORY || i->ino == CAS_ROOT_INO ? EISDIR : ELOOP);
        if (r->in->opcode == FUSE_OPENDIR && i->ino != CAS_ROOT_INO && i->type != CAS_NODE_DIRECTORY)
                return reply_err(r, ENOTDIR);
        if (r->in->opcode == FUSE_OPENDIR ? r->e->no_opendir : r->e->no_open)
                return reply_err(r, ENOSYS);
        struct fuse_open_out o = {.open_flags = FOPEN_KEEP_CACHE |
                                                (r->in->opcode == FUSE_OPENDIR ? FOPEN_CACHE_DIR : 0)};
        if (r->in->opcode == FUSE_OPEN && r->e->opts.prefetch)
                read_ahead_after(r->e, i);
        int32_t id = r->in->opcode == FUSE_OPEN ? passthrough_id(r->e, i) : 0;
        if (id > 0) {
                o.open_flags = FOPEN_PASSTHROUGH;
                o.padding = (uint32_t)id; /* 7.40's backing_id */
        }
        return reply_ok(r, &o, sizeof(o));
}

static int do_release(req *r, cas_inode *i)
{
        return reply_ok(r, NULL, 0);
}

static int do_flush(req *r, cas_inode *i)
{
        return reply_err(r, ENOSYS);
}

/* A blob reader cached per thread: sequential reads of one file by one
 * thread open its blob once. buf: where blob bytes are read and checked
 * before they are copied into a reply. */
static _Thread_local struct {
        cas_engine *e;
        cas_digest digest;
        cas_blob_reader *reader;
        uint8_t *buf;
        size_t buf_size;
} reader_cache;

/* Whole-blob checks read in pieces of this size. */
#define VERIFY_CHUNK (1024 * 1024)

/* At least n bytes, aligned for direct reads. */
static uint8_t *thread_buffer(size_t n)
{
        if (reader_cache.buf_size < n) {
                void *b;
                free(reader_cache.buf);
                reader_cache.buf = posix_memalign(&b, CAS_DIRECT_ALIGN, n) == 0 ? b : NULL;
                reader_cache.buf_size = reader_cache.buf ? n : 0;
        }
        return reader_cache.buf;
}

static void blob_error(const cas_inode *i, const char *what)
{
        char text[CAS_DIGEST_TEXT_MAX];
        cas_log(CAS_LOG_ERR, "blob %s: %s", cas_digest_to_text(&i->digest, text), what);
}

/* Hashes the whole blob once and keeps the verdict; a large blob's outboard
 * is computed on the way (*ret_outboard, for blobs stored without a usable
 * one). */
static int hash_whole_blob(cas_blob_reader *rd, cas_inode *i, uint8_t **ret_outboard)
{
        uint8_t *buf = thread_buffer(VERIFY_CHUNK);
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_verify_blob(rd, &i->digest, i->size, buf, VERIFY_CHUNK, ret_outboard);
        if (r == -EBADMSG)
                atomic_store(&i->verified, 2);
        else if (r >= 0)
                atomic_store(&i->verified, 1);
        return r;
}

/* Small blobs: checked whole before their first byte is served, once per
 * inode (the kernel reads ahead with several requests at once: one thread
 * hashes while the others wait for its verdict). */
static int verify_small_blob(cas_engine *e, cas_blob_reader *rd, cas_inode *i)
{
        uint8_t v = atomic_load(&i->verified);
        if (v)
                return v == 1 ? 0 : -EBADMSG;
        pthread_mutex_t *lock = &e->verify_locks[((uintptr_t)i >> 6) % ELEMENTSOF(e->verify_locks)];
        pthread_mutex_lock(lock);
        v = atomic_load(&i->verified);
        int k = v ? (v == 1 ? 0 : -EBADMSG) : hash_whole_blob(rd, i, &(uint8_t *){NULL});
        pthread_mutex_unlock(lock);
        return k;
}

/* Large blobs: the outboard, loaded and checked against the digest once per
 * inode. A blob stored without one (or with a damaged one) is hashed whole
 * once instead, which yields its outboard too. */
static int large_blob_outboard(cas_engine *e, cas_blob_reader *rd, cas_inode *i, const uint8_t **ret)
{
        uint8_t *ob = atomic_load(&i->outboard);
        int k = 0;

        if (ob) {
                *ret = ob;
                return 0;
        }
        if (atomic_load(&i->verified) == 2)
                return -EBADMSG;
        pthread_mutex_t *lock = &e->verify_locks[((uintptr_t)i >> 6) % ELEMENTSOF(e->verify_locks)];
        pthread_mutex_lock(lock);
        ob = atomic_load(&i->outboard);
        if (!ob && atomic_load(&i->verified) == 2)
                k = -EBADMSG;
        else if (!ob) {
                uint8_t *buf = thread_buffer(VERIFY_CHUNK);
                k = buf ? cas_verify_outboard(e->store->blobs, rd, &i->digest, i->size, buf, VERIFY_CHUNK, &ob)
                        : -ENOMEM;
                if (k == -EBADMSG)
                        atomic_store(&i->verified, 2);
                if (k >= 0)
                        atomic_store(&i->outboard, ob);
        }
        pthread_mutex_unlock(lock);
        if (k < 0)
                return k;
        *ret = ob;
        return 0;
}

static int open_blob(cas_engine *e, const cas_inode *i, cas_blob_reader **ret);

/* The backing file id to serve file i by passthrough (the kernel then reads
 * the blob's file itself, as fast as any local file), or 0 to serve it
 * through READ: a large blob, whose reads are checked group by group; an
 * empty one; one missing, damaged or failing its check (READ answers EIO).
 * A small blob is checked whole first. The id is kept with the inode and
 * closed when the kernel forgets it. */
static int32_t passthrough_id(cas_engine *e, cas_inode *i)
{
        cas_blob_reader *rd;
        int32_t id, none = 0;

        if (!e->passthrough || atomic_load(&e->passthrough_refused) || i->size == 0 ||
            (e->opts.verify && cas_outboard_size(i->size) > 0))
                return 0;
        id = atomic_load(&i->backing_id);
        if (id > 0)
                return id;
        if (open_blob(e, i, &rd) < 0 || cas_blob_reader_size(rd) != i->size || cas_blob_reader_fd(rd) < 0)
                return 0;
        if (e->opts.verify && verify_small_blob(e, rd, i) < 0)
                return 0;
        id = e->transport.backing_open(e->transport.userdata, cas_blob_reader_fd(rd));
        if (id <= 0) {
                if (id != -ENOMEM && id != -EMFILE && id != -ENFILE && !atomic_exchange(&e->passthrough_refused, true))
                        cas_log(CAS_LOG_WARNING, "the kernel refuses passthrough (%s); serving reads itself",
                                strerror(id < 0 ? -id : EIO));
                return 0;
        }
        if (!atomic_compare_exchange_strong(&i->backing_id, &none, id)) {
                e->transport.backing_close(e->transport.userdata, id); /* another open was first */
                id = none;
        }
        return id;
}

static unsigned pool_class(uint64_t size)
{
        unsigned c = 0;
        while ((UINT64_C(1) << (POOL_MIN_SHIFT + c)) < size)
                c++;
        return c;
}

/* A buffer for a blob of size bytes (up to PARK_MAX), aligned for direct
 * reads of its length rounded up to the block. */
static uint8_t *buffer_get(cas_engine *e, uint64_t size)
{
        unsigned c = pool_class(size);
        void *b;

        pthread_mutex_lock(&e->pool_lock);
        b = e->pool[c];
        if (b) {
                memcpy(&e->pool[c], b, sizeof(void *));
                e->pool_bytes -= UINT64_C(1) << (POOL_MIN_SHIFT + c);
        }
        pthread_mutex_unlock(&e->pool_lock);
        if (!b && posix_memalign(&b, CAS_DIRECT_ALIGN, (size_t)1 << (POOL_MIN_SHIFT + c)) != 0)
                return NULL;
        return b;
}

/* Gives back a buffer of buffer_get(e, size); accepts NULL. */
static void buffer_put(cas_engine *e, uint8_t *b, uint64_t size)
{
        unsigned c = pool_class(size);
        uint64_t n = UINT64_C(1) << (POOL_MIN_SHIFT + c);

        if (!b)
                return;
        pthread_mutex_lock(&e->pool_lock);
        if (e->pool_bytes + n <= PARK_BUDGET) {
                memcpy(b, &e->pool[c], sizeof(void *));
                e->pool[c] = b;
                e->pool_bytes += n;
                b = NULL;
        }
        pthread_mutex_unlock(&e->pool_lock);
        free(b);
}

/* The slot holding (or loading) blob d, or NULL. Under parked_lock. */
static struct parked *parked_find(cas_engine *e, const cas_digest *d)
{
        for (size_t k = 0; k < PARKED; k++) {
                struct parked *p = &e->parked[k];
                if ((p->bytes || p->loading) && cas_digest_eq(&p->digest, d))
                        return p;
        }
        return NULL;
}

/* The bytes of blob d (size bytes, checked when verifying), when reading
 * ahead kept them; the caller frees them. A read ahead of d under way is
 * waited for: the request would read the same bytes again otherwise. */
static uint8_t *parked_take(cas_engine *e, const cas_digest *d, uint64_t size)
{
        uint8_t *bytes = NULL;
        struct parked *p;

        pthread_mutex_lock(&e->parked_lock);
        while ((p = parked_find(e, d)) && p->loading)
                pthread_cond_wait(&e->parked_cond, &e->parked_lock);
        if (p && p->bytes && p->size == size) {
                bytes = p->bytes;
                p->bytes = NULL;
                e->parked_bytes -= size;
        }
        pthread_mutex_unlock(&e->parked_lock);
        return bytes;
}

/* A slot for blob d (size bytes), under parked_lock: a free one, else (when
 * evict) the oldest kept, whose bytes go to *ret_old (a file read ahead but
 * never read). NULL when d is there already, no slot is left, or the budget
 * is used up. The slot is charged to the budget and stamped. */
static struct parked *parked_slot_for(cas_engine *e, const cas_digest *d, uint64_t size, bool evict,
                                      uint8_t **ret_old, uint64_t *ret_old_size)
{
        struct parked *p = NULL;

        *ret_old = NULL;
        if (parked_find(e, d))
                return NULL;
        for (size_t k = 0; k < PARKED; k++) {
                struct parked *q = &e->parked[k];
                if (q->loading || (q->bytes && !evict))
                        continue;
                if (!q->bytes) {
                        p = q;
                        break;
                }
                if (!p || q->age < p->age)
                        p = q;
        }
        if (!p)
                return NULL;
        if (p->bytes) {
                e->parked_bytes -= p->size;
                *ret_old = p->bytes;
                *ret_old_size = p->size;
                p->bytes = NULL;
        }
        if (e->parked_bytes + size > PARK_BUDGET)
                return NULL;
        p->digest = *d;
        p->size = size;
        p->age = ++e->parked_clock;
        e->parked_bytes += size;
        return p;
}

/* Claims a slot for reading d ahead. NULL when d is there already
 * (*ret_there), every slot is being loaded, or the budget is used up. */
static struct parked *parked_claim(cas_engine *e, const cas_digest *d, uint64_t size, bool *ret_there)
{
        uint64_t old_size = 0;
        uint8_t *old;

        pthread_mutex_lock(&e->parked_lock);
        *ret_there = parked_find(e, d);
        struct parked *p = parked_slot_for(e, d, size, true, &old, &old_size);
        if (p)
                p->loading = true;
        pthread_mutex_unlock(&e->parked_lock);
        buffer_put(e, old, old_size);
        return p;
}

/* Ends a claim: bytes (NULL when the read or the check failed) are there for
 * the request that reads the blob. */
static void parked_done(cas_engine *e, struct parked *p, uint8_t *bytes)
{
        pthread_mutex_lock(&e->parked_lock);
        p->bytes = bytes;
        p->loading = false;
        if (!bytes)
                e->parked_bytes -= p->size;
        pthread_cond_broadcast(&e->parked_cond);
        pthread_mutex_unlock(&e->parked_lock);
}

/* Puts back bytes taken with parked_take whose end is still to be read
 * (the kernel reads a file in several requests): into a free slot, else
 * they go. */
static void parked_return(cas_engine *e, const cas_digest *d, uint64_t size, uint8_t *bytes)
{
        uint64_t unused;
        uint8_t *old;

        pthread_mutex_lock(&e->parked_lock);
        struct parked *p = parked_slot_for(e, d, size, false, &old, &unused); /* evicts nothing */
        if (p) {
                p->bytes = bytes;
                bytes = NULL;
        }
        pthread_mutex_unlock(&e->parked_lock);
        buffer_put(e, bytes, size);
}

/* Frees what reading ahead kept and nobody read, and the buffers kept for
 * reuse. */
static void parked_clear(cas_engine *e)
{
        pthread_mutex_lock(&e->parked_lock);
        for (size_t k = 0; k < PARKED; k++)
                if (e->parked[k].bytes) {
                        e->parked_bytes -= e->parked[k].size;
                        free(e->parked[k].bytes);
                        e->parked[k].bytes = NULL;
                }
        pthread_mutex_unlock(&e->parked_lock);
        pthread_mutex_lock(&e->pool_lock);
        for (size_t c = 0; c < POOL_CLASSES; c++)
                while (e->pool[c]) {
                        void *b = e->pool[c];
                        memcpy(&e->pool[c], b, sizeof(void *));
                        free(b);
                }
        e->pool_bytes = 0;
        pthread_mutex_unlock(&e->pool_lock);
}

/* Reads the small blob p whole into memory of its own, checks it when
 * verifying, and keeps it for the request that will read it. False when
 * every slot is busy or the budget used up (it is then read ahead into the
 * page cache). A blob that does not open, read or match is left to the request,
 * which tries again and reports it. */
static bool park(cas_engine *e, const struct prefetch *p)
{
        size_t whole = CAS_DIRECT_LEN(p->size);
        cas_blob_reader *rd = NULL;
        uint8_t *bytes = NULL;
        int fd;

        bool there;
        struct parked *slot = parked_claim(e, &p->digest, p->size, &there);
        if (!slot)
                return there; /* read ahead already (the same content twice) */
        /* opening waits for the disk (directory, inode) */
        if (cas_blobstore_open(e->store->blobs, &p->digest, &rd) >= 0 && cas_blob_reader_size(rd) == p->size &&
            (fd = cas_blob_reader_fd(rd)) >= 0 && (bytes = buffer_get(e, p->size))) {
                int flags = fcntl(fd, F_GETFL);
                bool direct = e->opts.direct_io && flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
                ssize_t got = pread(fd, bytes, direct ? whole : (size_t)p->size, 0);
                if (direct) {
                        (void)fcntl(fd, F_SETFL, flags);
                        if (got < 0) /* a file system with other alignment rules */
                                got = pread(fd, bytes, (size_t)p->size, 0);
                }
                if (got < 0 || (uint64_t)got != p->size ||
                    (e->opts.verify && cas_verify_buffer(bytes, (size_t)p->size, &p->digest) < 0)) {
                        buffer_put(e, bytes, p->size);
                        bytes = NULL;
                }
        }
        cas_blob_reader_free(rd);
        parked_done(e, slot, bytes);
        return true;
}

static int open_blob(cas_engine *e, const cas_inode *i, cas_blob_reader **ret)
{
        if (reader_cache.reader && reader_cache.e == e && cas_digest_eq(&reader_cache.digest, &i->digest)) {
                *ret = reader_cache.reader;
                return 0;
        }
        cas_blob_reader *rd;
        int k = cas_blobstore_open(e->store->blobs, &i->digest, &rd);
        if (k < 0)
                return k;
        cas_blob_reader_free(reader_cache.reader);
        reader_cache.e = e;
        reader_cache.digest = i->digest;
        reader_cache.reader = rd;
        *ret = rd;
        return 0;
}

/* Reads size bytes at off into the reply (after the header), straight into
 * its buffers (for virtiofs: guest memory). */
static int read_into_reply(req *r, cas_blob_reader *rd, uint64_t off, size_t size)
{
        size_t pos = sizeof(struct fuse_out_header), left = size;
        for (int s = 0; s < r->out_cnt && left > 0; s++) {
                if (pos >= r->out[s].iov_len) {
                        pos -= r->out[s].iov_len;
                        continue;
                }
                size_t c = MIN(left, r->out[s].iov_len - pos);
                ssize_t got = cas_blob_reader_pread(rd, (uint8_t *)r->out[s].iov_base + pos, c, off);
                if (got < 0 || (size_t)got != c)
                        return got < 0 ? (int)got : -EIO;
                off += c;
                left -= c;
                pos = 0;
        }
        return 0;
}

/* Where the reply's payload starts (after its header), and the contiguous
 * room there (*ret_room); NULL when the buffers end first. */
static uint8_t *payload_start(const req *r, size_t *ret_room)
{
        size_t pos = sizeof(struct fuse_out_header);
        for (int s = 0; s < r->out_cnt; s++) {
                if (pos < r->out[s].iov_len) {
                        *ret_room = r->out[s].iov_len - pos;
                        return (uint8_t *)r->out[s].iov_base + pos;
                }
                pos -= r->out[s].iov_len;
        }
        *ret_room = 0;
        return NULL;
}

/* The reply's payload as one contiguous buffer of size bytes, when it is one. */
static uint8_t *reply_payload(req *r, size_t size)
{
        size_t room;
        uint8_t *p = payload_start(r, &room);
        return room >= size ? p : NULL;
}

/* Reads size bytes at off of a small blob into the reply, the blob checked
 * whole first. Most small files are read whole by one request: the blob is
 * then read once, into the reply's own buffer, and checked there. */
static int read_small(req *r, cas_inode *i, cas_blob_reader *rd, uint64_t off, size_t size)
{
        uint8_t *direct = atomic_load(&i->verified) == 0 && off == 0 && size == i->size ? reply_payload(r, size) : NULL;
        int k;

        if (!direct) {
                k = verify_small_blob(r->e, rd, i);
                return k < 0 ? k : read_into_reply(r, rd, off, size);
        }
        ssize_t n = cas_blob_reader_pread(rd, direct, size, 0);
        if (n < 0 || (size_t)n != size)
                return n < 0 ? (int)n : -EIO;
        if (cas_verify_buffer(direct, size, &i->digest) < 0) {
                memset(direct, 0, size); /* leave no unchecked byte in a reply buffer (guest memory) */
                atomic_store(&i->verified, 2);
                return -EBADMSG;
        }
        atomic_store(&i->verified, 1);
        return 0;
}

/* Reads size bytes at off of a large blob into the reply, checking every
 * group the range touches against the outboard first. A range of whole
 * groups is read and checked in the reply's own buffer; any other goes
 * through the thread's buffer. *ret_group: the group that did not match. */
static int read_checked(req *r, cas_inode *i, cas_blob_reader *rd, const uint8_t *ob, uint64_t off, size_t size,
                        uint64_t *ret_group)
{
        uint64_t start;
        size_t span = cas_verify_span(i->size, off, size, &start);
        size_t room = 0;
        uint8_t *direct = start == off && span == size ? payload_start(r, &room) : NULL;
        if (room < size)
                direct = NULL;
        uint8_t *buf = direct;
        if (!buf) /* a read inside a group: the groups go through the thread's buffer */
                buf = thread_buffer(room = MAX(CAS_DIRECT_LEN(span), (size_t)VERIFY_CHUNK));

        if (!buf)
                return -ENOMEM;
        int k = cas_verify_read_groups(rd, ob, i->size, start, span, buf, room, r->e->opts.direct_io, ret_group);
        if (k == -EBADMSG && direct) /* leave no unchecked byte in a reply buffer (guest memory) */
                memset(direct, 0, size);
        if (k < 0)
                return k;
        if (!direct && !out_put(r->out, r->out_cnt, sizeof(struct fuse_out_header), buf + (off - start), size))
                return -ENOBUFS;
        return 0;
}

/* ---- reading ahead ---- */

static void prefetch_push(cas_engine *e, const cas_node *n, uint64_t ino)
{
        pthread_mutex_lock(&e->prefetch_lock);
        if (e->prefetch_n < PREFETCH_QUEUE) { /* when full, the disk is busy enough: drop it */
                struct prefetch *p = &e->prefetch_ring[(e->prefetch_head + e->prefetch_n++) % PREFETCH_QUEUE];
                p->digest = n->digest;
                p->size = n->size;
                p->ino = ino;
                pthread_cond_signal(&e->prefetch_cond);
        }
        pthread_mutex_unlock(&e->prefetch_lock);
}

/* A large file looked up by name is about to be opened: its outboard is
 * loaded and checked in the background, so that its first read does not
 * wait for it (a 1 GiB blob's is 2 MiB, a few milliseconds). */
static void outboard_ahead(cas_engine *e, const cas_node *n, const cas_inode *i)
{
        if (e->opts.verify && e->opts.prefetch && i->type == CAS_NODE_FILE && cas_outboard_size(i->size) > 0 &&
            !atomic_load(&i->outboard) && atomic_load(&i->verified) != 2)
                prefetch_push(e, n, i->ino);
}

static void outboard_load(cas_engine *e, const struct prefetch *p)
{
        cas_inode *i = cas_inodes_get(e->inodes, p->ino);
        cas_blob_reader *rd;
        const uint8_t *ob;

        /* the kernel may have forgotten it meanwhile (its number then names another) */
        if (i && i->type == CAS_NODE_FILE && cas_digest_eq(&i->digest, &p->digest) &&
            cas_blobstore_open(e->store->blobs, &i->digest, &rd) >= 0) {
                if (cas_blob_reader_size(rd) == i->size)
                        (void)large_blob_outboard(e, rd, i, &ob); /* a failure is the READ's to report */
                cas_blob_reader_free(rd);
        }
        if (i)
                cas_inode_unref(e->inodes, i);
}

/* A reader starts on file i: queue the files after it in the directory it
 * was found in, keeping opts.prefetch of them ahead. Refills when half of
 * the window is used, so a reader going through a directory queues each
 * file once. */
static void read_ahead_after(cas_engine *e, cas_inode *i)
{
        uint64_t dir_ino = atomic_load_explicit(&i->seen_in, memory_order_relaxed);
        uint32_t at = atomic_load_explicit(&i->seen_at, memory_order_relaxed);
        uint32_t window = e->opts.prefetch;
        cas_dir_cache *cache;

        if (!dir_ino)
                return;
        cas_inode *d = cas_inodes_get(e->inodes, dir_ino);
        if (!d)
                return;
        uint32_t done = atomic_load(&d->read_ahead);
        /* within the window queued already, and more than half of it left: nothing to do */
        bool queued = done > at && done <= at + 1 + window;
        if (d->type != CAS_NODE_DIRECTORY || (queued && done - at > window / 2) ||
            cas_inode_directory(e->inodes, d, e->store->meta, &cache) < 0) {
                cas_inode_unref(e->inodes, d);
                return;
        }
        const cas_directory *dir = cache->dir;
        uint32_t from = queued ? done : at + 1;
        uint32_t to = (uint32_t)MIN((uint64_t)at + 1 + window, (uint64_t)dir->n_nodes);
        for (uint32_t k = from; k < to; k++)
                /* large blobs are read past the page cache (cas_verify_pread): nothing to warm */
                if (dir->nodes[k].type == CAS_NODE_FILE && dir->nodes[k].size > 0 &&
                    !(e->opts.direct_io && cas_outboard_size(dir->nodes[k].size) > 0))
                        prefetch_push(e, &dir->nodes[k], 0);
        atomic_store(&d->read_ahead, MAX(to, from));
        cas_dir_cache_unref(cache);
        cas_inode_unref(e->inodes, d);
}

void cas_engine_prefetch_worker(cas_engine *e)
{
        pthread_mutex_lock(&e->prefetch_lock);
        for (;;) {
                while (e->prefetch_n == 0 && !e->prefetch_stop)
                        pthread_cond_wait(&e->prefetch_cond, &e->prefetch_lock);
                if (e->prefetch_stop)
                        break;
                struct prefetch p = e->prefetch_ring[e->prefetch_head];
                e->prefetch_head = (e->prefetch_head + 1) % PREFETCH_QUEUE;
                e->prefetch_n--;
                pthread_mutex_unlock(&e->prefetch_lock);
                cas_blob_reader *rd;
                if (p.ino)
                        outboard_load(e, &p);
                else if (p.size <= PARK_MAX && park(e, &p))
                        ;
                /* opening waits for the disk (directory, inode); the data is read in the background */
                else if (cas_blobstore_open(e->store->blobs, &p.digest, &rd) >= 0) {
                        int fd = cas_blob_reader_fd(rd);
                        if (fd >= 0)
                                (void)readahead(fd, 0, (size_t)MIN(p.size, (uint64_t)PREFETCH_BYTES));
                        cas_blob_reader_free(rd);
                }
                pthread_mutex_lock(&e->prefetch_lock);
        }
        pthread_mutex_unlock(&e->prefetch_lock);
}

void cas_engine_stop_prefetch(cas_engine *e)
{
        pthread_mutex_lock(&e->prefetch_lock);
        e->prefetch_stop = true;
        pthread_cond_broadcast(&e->prefetch_cond);
        pthread_mutex_unlock(&e->prefetch_lock);
}

static int do_read(req *r, cas_inode *i)
{
        cas_engine *e = r->e;
        const struct fuse_read_in *in = ARG(struct fuse_read_in);
        struct fuse_out_header h = {.unique = r->in->unique};
        cas_blob_reader *rd;
        char what[128];
        int k;

        if (need(r, 24) < 0) /* fh, offset, size: in every version */
                return reply_err(r, EINVAL);
        if (i->type != CAS_NODE_FILE)
                return reply_err(r, i->type == CAS_NODE_DIRECTORY || i->ino == CAS_ROOT_INO ? EISDIR : EINVAL);
        uint64_t off = in->offset;
        size_t size = MIN((size_t)in->size, (size_t)e->max_pages * 4096);
        if (off >= i->size)
                size = 0;
        else
                size = (size_t)MIN((uint64_t)size, i->size - off);
        size = MIN(size, out_capacity(r) > sizeof(h) ? out_capacity(r) - sizeof(h) : 0);

        if (off == 0 && e->no_open && e->opts.prefetch) /* else OPEN did */
                read_ahead_after(e, i);
        uint8_t *parked = size > 0 && i->size <= PARK_MAX ? parked_take(e, &i->digest, i->size) : NULL;
        if (parked) {
                /* read ahead whole and checked (when verifying) */
                bool put = out_put(r->out, r->out_cnt, sizeof(h), parked + off, size);
                if (off + size < i->size)
                        parked_return(e, &i->digest, i->size, parked);
                else
                        buffer_put(e, parked, i->size);
                if (!put)
                        return -ENOBUFS;
                if (e->opts.verify)
                        atomic_store(&i->verified, 1);
        } else if (size > 0) {
                k = open_blob(e, i, &rd);
                if (k < 0) {
                        blob_error(i, k == -ENOENT ? "missing from the store" : strerror(-k));
                        return reply_err(r, EIO);
                }
                if (cas_blob_reader_size(rd) != i->size) {
                        blob_error(i, "stored with the wrong size");
                        return reply_err(r, EIO);
                }
                uint64_t bad_group = 0;
                const uint8_t *ob = NULL;
                uint8_t *payload;
                size_t room;
                if (!e->opts.verify && cas_outboard_size(i->size) > 0 && (payload = payload_start(r, &room)) &&
                    room >= size) {
                        ssize_t got = cas_verify_pread(rd, payload, room, size, off, e->opts.direct_io);
                        k = got < 0 ? (int)got : (size_t)got == size ? 0 : -EIO;
                } else if (!e->opts.verify)
                        k = read_into_reply(r, rd, off, size);
                else if (cas_outboard_size(i->size) == 0)
                        k = read_small(r, i, rd, off, size);
                else {
                        k = large_blob_outboard(e, rd, i, &ob);
                        if (k >= 0)
                                k = read_checked(r, i, rd, ob, off, size, &bad_group);
                }
                if (k == -EBADMSG && ob)
                        snprintf(what, sizeof(what),
                                 "corrupt: bytes %" PRIu64 "-%" PRIu64 " do not match the digest",
                                 bad_group << CAS_OUTBOARD_GROUP_SHIFT,
                                 MIN(i->size, (bad_group + 1) << CAS_OUTBOARD_GROUP_SHIFT) - 1);
                else if (k == -EBADMSG)
                        snprintf(what, sizeof(what), "corrupt: its bytes do not match the digest");
                else if (k < 0)
                        snprintf(what, sizeof(what), "%s", k == -EIO ? "short read" : strerror(-k));
                if (k < 0) {
                        blob_error(i, what);
                        return reply_err(r, EIO);
                }
        }
        h.len = (uint32_t)(sizeof(h) + size);
        if (!out_put(r->out, r->out_cnt, 0, &h, sizeof(h)))
                return -ENOBUFS;
        r->written = h.len;
        r->replied = true;
        return 0;
}

/* ---- directory listings ---- */

static size_t dirent_size(bool plus, size_t name_len)
{
        return FUSE_DIRENT_ALIGN((plus ? sizeof(struct fuse_entry_out) : 0) + FUSE_NAME_OFFSET + name_len);
}

static uint32_t dirent_type(uint8_t type)
{
        return type == CAS_NODE_FILE ? DT_REG : type == CAS_NODE_SYMLINK ? DT_LNK : DT_DIR;
}

/* Appends one entry at *pos (its entry_out first for READDIRPLUS; eo NULL:
 * an entry the kernel should not take a reference for, such as "."). */
static void put_dirent(req *r, size_t *pos, bool plus, const struct fuse_entry_out *eo, uint64_t ino,
                       uint64_t off, const char *name, size_t name_len, uint32_t type)
{
        uint8_t buf[sizeof(struct fuse_entry_out) + FUSE_NAME_OFFSET + CAS_NAME_MAX + 8];
        size_t padded = dirent_size(plus, name_len);
        struct fuse_dirent *de = (void *)(buf + (plus ? sizeof(*eo) : 0));

        memset(buf, 0, padded);
        if (plus && eo)
                memcpy(buf, eo, sizeof(*eo));
        de->ino = ino;
        de->off = off + 1;
        de->namelen = (uint32_t)name_len;
        de->type = type;
        memcpy(de->name, name, name_len);
        out_put(r->out, r->out_cnt, *pos, buf, padded);
        *pos += padded;
}

/* Emits directory entries from offset on; plus: READDIRPLUS. */
static int do_readdir_common(req *r, cas_inode *i, bool plus)
{
        cas_engine *e = r->e;
        const struct fuse_read_in *in = ARG(struct fuse_read_in);
        size_t cap, pos = sizeof(struct fuse_out_header);
        int k;

        if (need(r, 24) < 0)
                return reply_err(r, EINVAL);
        if (i->ino == CAS_ROOT_INO)
                return reply_err(r, EPERM); /* listing the top is do_readdir_top, when allowed */
        if (i->type != CAS_NODE_DIRECTORY)
                return reply_err(r, ENOTDIR);
        cas_dir_cache *cache;
        k = cas_inode_directory(e->inodes, i, e->store->meta, &cache);
        if (k < 0)
                return reply_err(r, -k);
        const cas_directory *d = cache->dir;
        const uint32_t *order = cache->order;

        cap = MIN((size_t)in->size + pos, out_capacity(r));
        /* offsets: 0 "." 1 ".." then 2 + k for the k-th entry in name order */
        uint64_t off;
        for (off = in->offset; off < 2 + d->n_nodes; off++) {
                const cas_node *n = off >= 2 ? &d->nodes[order[off - 2]] : NULL;
                const char *name = n ? n->name : off == 0 ? "." : "..";
                size_t name_len = n ? n->name_len : off + 1;
                cas_inode *c = NULL;
                struct fuse_entry_out eo;

                if (pos + dirent_size(plus, name_len) > cap)
                        break;
                if (n && plus) {
                        k = cas_inodes_lookup(e->inodes, n, &c);
                        if (k < 0)
                                break;
                        seen(c, i, order[off - 2]);
                        fill_entry(e, c, &eo);
                }
                put_dirent(r, &pos, plus, c ? &eo : NULL, c ? c->ino : (off == 0 ? i->ino : CAS_ROOT_INO), off,
                           name, name_len, dirent_type(n ? n->type : CAS_NODE_DIRECTORY));
                cas_inode_unref(e->inodes, c);
        }
        /* with READDIRPLUS the kernel now holds an entry for every child and
         * will not look them up: the decoded directory is no longer needed */
        bool complete = off >= 2 + d->n_nodes;
        cas_dir_cache_unref(cache);
        if (plus && complete)
                cas_inode_drop_directory(e->inodes, i);
        struct fuse_out_header h = {.len = (uint32_t)pos, .unique = r->in->unique};
        out_put(r->out, r->out_cnt, 0, &h, sizeof(h));
        r->written = pos;
        r->replied = true;
        return 0;
}

/* Listing the top (only with list_root): the roots, in name order. */
typedef struct top_list {
        req *r;
        bool plus;
        uint64_t index, from;
        size_t pos, cap;
        bool full;
} top_list;

static int top_list_cb(const cas_node *n, void *userdata)
{
        top_list *t = userdata;
        req *r = t->r;
        cas_engine *e = r->e;
        cas_inode *c = NULL;
        struct fuse_entry_out eo = {0};
        uint64_t off = 2 + t->index++;

        if (off < t->from)
                return 0;
        if (t->pos + dirent_size(t->plus, n->name_len) > t->cap) {
                t->full = true;
                return 1;
        }
        if (t->plus) {
                if (cas_inodes_lookup(e->inodes, n, &c) < 0)
                        return 1;
                fill_entry(e, c, &eo);
                top_remember(e, n->name, c);
        }
        put_dirent(r, &t->pos, t->plus, c ? &eo : NULL, c ? c->ino : 0xffffffffull, off, n->name, n->name_len,
                   dirent_type(n->type));
        cas_inode_unref(e->inodes, c);
        return 0;
}

static int do_readdir_top(req *r, bool plus)
{
        const struct fuse_read_in *in = ARG(struct fuse_read_in);
        top_list t = {.r = r, .plus = plus, .from = in->offset, .pos = sizeof(struct fuse_out_header)};

        t.cap = MIN((size_t)in->size + t.pos, out_capacity(r));
        for (uint64_t off = in->offset; off < 2; off++) {
                if (t.pos + dirent_size(plus, off + 1) > t.cap)
                        break;
                put_dirent(r, &t.pos, plus, NULL, CAS_ROOT_INO, off, "..", off + 1, DT_DIR);
        }
        int k = cas_metastore_foreach_root(r->e->store->meta, top_list_cb, &t);
        if (k < 0)
                return reply_err(r, EIO);
        struct fuse_out_header h = {.len = (uint32_t)t.pos, .unique = r->in->unique};
        out_put(r->out, r->out_cnt, 0, &h, sizeof(h));
        r->written = t.pos;
        r->replied = true;
        return 0;
}

static int do_readdir(req *r, cas_inode *i)
{
        if (i->ino == CAS_ROOT_INO && r->e->opts.list_root && need(r, 24) == 0)
                return do_readdir_top(r, false);
        return do_readdir_common(r, i, false);
}

static int do_readdirplus(req *r, cas_inode *i)
{
        if (i->ino == CAS_ROOT_INO && r->e->opts.list_root && need(r, 24) == 0)
                return do_readdir_top(r, true);
        return do_readdir_common(r, i, true);
}

static int do_statfs(req *r, cas_inode *i)
{
        struct fuse_statfs_out o = {0};
        struct statvfs sv;

        if (r->e->store->dir_fd >= 0 && fstatvfs(r->e->store->dir_fd, &sv) == 0) {
                o.st.blocks = sv.f_blocks * sv.f_frsize / 4096;
                o.st.bfree = 0; /* nothing can be written here */
                o.st.bavail = 0;
                o.st.files = sv.f_files - sv.f_ffree;
        }
        o.st.ffree = 0;
        o.st.bsize = 4096;
        o.st.frsize = 4096;
        o.st.namelen = CAS_NAME_MAX;
        return reply_ok(r, &o, sizeof(o));
}

/* The one attribute an inode has: its digest, when xattrs are on. */
static const char *xattr_name(cas_engine *e, const cas_inode *i)
{
        if (!e->opts.xattr)
                return NULL;
        if (i->type == CAS_NODE_DIRECTORY)
                return XATTR_DIR;
        if (i->type == CAS_NODE_FILE)
                return XATTR_BLOB;
        return NULL;
}

static int do_getxattr(req *r, cas_inode *i)
{
        size_t len;
        char text[CAS_DIGEST_TEXT_MAX];

        if (need(r, sizeof(struct fuse_getxattr_in)) < 0)
                return reply_err(r, EINVAL);
        uint32_t size = ARG(struct fuse_getxattr_in)->size;
        const char *name = arg_string(r, sizeof(struct fuse_getxattr_in), &len);
        const char *mine = xattr_name(r->e, i);
        if (!name)
                return reply_err(r, EINVAL);
        if (!mine || strcmp(name, mine) != 0)
                return reply_err(r, ENODATA);
        cas_digest_to_text(&i->digest, text);
        len = strlen(text);
        if (size == 0) {
                struct fuse_getxattr_out o = {.size = (uint32_t)len};
                return reply_ok(r, &o, sizeof(o));
        }
        if (size < len)
                return reply_err(r, ERANGE);
        return reply_ok(r, text, len);
}

static int do_listxattr(req *r, cas_inode *i)
{
        if (need(r, sizeof(struct fuse_getxattr_in)) < 0)
                return reply_err(r, EINVAL);
        uint32_t size = ARG(struct fuse_getxattr_in)->size;
        const char *mine = xattr_name(r->e, i);
        size_t len = mine ? strlen(mine) + 1 : 0;
        if (size == 0) {
                struct fuse_getxattr_out o = {.size = (uint32_t)len};
                return reply_ok(r, &o, sizeof(o));
        }
        if (size < len)
                return reply_err(r, ERANGE);
        return reply_ok(r, mine, len);
}

static int do_access(req *r, cas_inode *i)
{
        if (need(r, sizeof(struct fuse_access_in)) < 0)
                return reply_err(r, EINVAL);
        if (ARG(struct fuse_access_in)->mask & W_OK)
                return reply_err(r, EROFS);
        return reply_ok(r, NULL, 0);
}

static int do_lseek(req *r, cas_inode *i)
{
        if (need(r, sizeof(struct fuse_lseek_in)) < 0)
                return reply_err(r, EINVAL);
        const struct fuse_lseek_in *in = ARG(struct fuse_lseek_in);
        struct fuse_lseek_out o;
        if (i->type != CAS_NODE_FILE)
                return reply_err(r, EINVAL);
        if (in->whence == SEEK_DATA || in->whence == SEEK_HOLE) {
                /* blobs have no holes */
                if (in->offset >= i->size)
                        return reply_err(r, ENXIO);
                o.offset = in->whence == SEEK_DATA ? in->offset : i->size;
                return reply_ok(r, &o, sizeof(o));
        }
        return reply_err(r, EINVAL);
}

static int do_interrupt(req *r, cas_inode *i)
{
        /* requests finish quickly and are never waited on: nothing to interrupt */
        r->replied = true;
        return 0;
}

static int do_erofs(req *r, cas_inode *i)
{
        return reply_err(r, EROFS);
}

static int do_setattr(req *r, cas_inode *i)
{
        return reply_err(r, EROFS);
}

typedef struct op {
        handler fn;
        const char *name;
        bool no_inode; /* does not need a valid nodeid */
} op;

static const op ops[] = {
        [FUSE_INIT] = {do_init, "INIT", true},
        [FUSE_DESTROY] = {do_destroy, "DESTROY", true},
        [FUSE_LOOKUP] = {do_lookup, "LOOKUP"},
        [FUSE_FORGET] = {do_forget, "FORGET", true},
        [FUSE_BATCH_FORGET] = {do_batch_forget, "BATCH_FORGET", true},
        [FUSE_GETATTR] = {do_getattr, "GETATTR"},
        [FUSE_READLINK] = {do_readlink, "READLINK"},
        [FUSE_OPEN] = {do_open, "OPEN"},
        [FUSE_READ] = {do_read, "READ"},
        [FUSE_RELEASE] = {do_release, "RELEASE", true},
        [FUSE_OPENDIR] = {do_open, "OPENDIR"},
        [FUSE_READDIR] = {do_readdir, "READDIR"},
        [FUSE_READDIRPLUS] = {do_readdirplus, "READDIRPLUS"},
        [FUSE_RELEASEDIR] = {do_release, "RELEASEDIR", true},
        [FUSE_STATFS] = {do_statfs, "STATFS"},
        [FUSE_GETXATTR] = {do_getxattr, "GETXATTR"},
        [FUSE_LISTXATTR] = {do_listxattr, "LISTXATTR"},
        [FUSE_ACCESS] = {do_access, "ACCESS"},
        [FUSE_FLUSH] = {do_flush, "FLUSH", true},
        [FUSE_LSEEK] = {do_lseek, "LSEEK"},
        [FUSE_INTERRUPT] = {do_interrupt, "INTERRUPT", true},
        [FUSE_SETATTR] = {do_setattr, "SETATTR", true},
        [FUSE_SYMLINK] = {do_erofs, "SYMLINK", true},
        [FUSE_MKNOD] = {do_erofs, "MKNOD", true},
        [FUSE_MKDIR] = {do_erofs, "MKDIR", true},
        [FUSE_UNLINK] = {do_erofs, "UNLINK", true},
        [FUSE_RMDIR] = {do_erofs, "RMDIR", true},
        [FUSE_RENAME] = {do_erofs, "RENAME", true},
        [FUSE_RENAME2] = {do_erofs, "RENAME2", true},
        [FUSE_LINK] = {do_erofs, "LINK", true},
        [FUSE_WRITE] = {do_erofs, "WRITE", true},
        [FUSE_FSYNC] = {do_erofs, "FSYNC", true},
        [FUSE_FSYNCDIR] = {do_erofs, "FSYNCDIR", true},
        [FUSE_SETXATTR] = {do_erofs, "SETXATTR", true},
        [FUSE_REMOVEXATTR] = {do_erofs, "REMOVEXATTR", true},
        [FUSE_CREATE] = {do_erofs, "CREATE", true},
        [FUSE_FALLOCATE] = {do_erofs, "FALLOCATE", true},
        [FUSE_COPY_FILE_RANGE] = {do_erofs, "COPY_FILE_RANGE", true},
};

ssize_t cas_engine_handle(cas_engine *e, const struct iovec *in, int in_cnt, const struct iovec *out,
                          int out_cnt)
{
        req *r;
        size_t total = 0;
        int k;

        for (int s = 0; s < in_cnt; s++)
                total += in[s].iov_len;
        if (total < sizeof(struct fuse_in_header))
                return -EINVAL;

        /* the request struct is large (it can hold a scattered request): one per thread */
        static _Thread_local req tls_req;
        r = &tls_req;
        r->e = e;
        r->out = out;
        r->out_cnt = out_cnt;
        r->written = 0;
        r->replied = false;
        if ((in_cnt == 1 || in[0].iov_len >= total) && ((uintptr_t)in[0].iov_base % 8) == 0) {
                r->in = in[0].iov_base;
        } else {
                size_t n = 0;
                /* scattered or unaligned (a guest puts requests where it likes): gather what
                 * fits (writes, the only large requests, are refused anyway) */
                for (int s = 0; s < in_cnt && n < IN_MAX; s++) {
                        size_t c = MIN(in[s].iov_len, IN_MAX - n);
                        memcpy(r->copy + n, in[s].iov_base, c);
                        n += c;
                }
                total = n;
                r->in = (const void *)r->copy;
        }
        /* the header's length is the peer's word; trust the bytes we have */
        size_t len = MIN(total, (size_t)r->in->len);
        if (len < sizeof(struct fuse_in_header))
                len = sizeof(struct fuse_in_header);
        r->arg = (const uint8_t *)r->in + sizeof(struct fuse_in_header);
        r->arg_len = len - sizeof(struct fuse_in_header);

        uint32_t opcode = r->in->opcode;
        const op *o = opcode < ELEMENTSOF(ops) && ops[opcode].fn ? &ops[opcode] : NULL;
        if (!o)
                k = reply_err(r, ENOSYS);
        else if (!atomic_load(&e->initialized) && opcode != FUSE_INIT)
                k = reply_err(r, EIO);
        else if (o->no_inode)
                k = o->fn(r, NULL);
        else {
                cas_inode *i = cas_inodes_get(e->inodes, r->in->nodeid);
                if (!i)
                        k = reply_err(r, ESTALE);
                else {
                        /* Not where the refresh would notify the kernel: it
                         * waits for the top's lock, which the kernel holds
                         * for this very request (a deadlock). The transport
                         * refreshes every second instead. */
                        if (r->in->nodeid == CAS_ROOT_INO && !e->transport.notify &&
                            (opcode == FUSE_LOOKUP || opcode == FUSE_READDIRPLUS || opcode == FUSE_READDIR))
                                (void)cas_engine_refresh_roots(e);
                        k = o->fn(r, i);
                        cas_inode_unref(e->inodes, i);
                }
        }
        if (k < 0)
                return k;
        return (ssize_t)r->written;
}

void cas_engine_release_memory(cas_engine *e)
{
        parked_clear(e);
        malloc_trim(0);
        cas_metastore_release_memory(e->store->meta);
}

/* Inodes freed before memory is given back: a few FORGETs of a busy mount
 * are not worth dropping the mapped metadata pages the next lookups need. */
#define RELEASE_AFTER_FREED 256

void cas_engine_tick(cas_engine *e)
{
        uint64_t freed = cas_inodes_freed(e->inodes);

        /* Releasing while FORGETs still come would leave what they free
         * after: wait for a quiet tick. */
        if (freed == e->tick_freed && freed - e->released_freed >= RELEASE_AFTER_FREED) {
                cas_engine_release_memory(e);
                e->released_freed = freed;
        }
        e->tick_freed = freed;
}

uint64_t cas_engine_inode_count(cas_engine *e)
{
        return cas_inodes_count(e->inodes);
}

const cas_engine_options *cas_engine_options_of(const cas_engine *e)
{
        return &e->opts;
}

bool cas_engine_destroyed(cas_engine *e)
{
        return atomic_load(&e->destroyed);
}

static void release_backing(int32_t id, void *userdata)
{
        cas_engine *e = userdata;
        e->transport.backing_close(e->transport.userdata, id);
}

int cas_engine_new(cas_store *store, const cas_engine_options *opts, const cas_engine_transport *transport,
                   cas_engine **ret)
{
        cas_engine *e = calloc(1, sizeof(*e));
        int k;

        if (!e)
                return -ENOMEM;
        /* Fixed thresholds (glibc adapts both otherwise): a freed 2 MiB
         * block, as LMDB's at closing a store, would raise the trim threshold
         * to 4 MiB, and each worker thread's arena would keep up to that much
         * free memory resident for good (malloc_trim does not trim the top of
         * a thread's arena). With these, memory freed after FORGETs goes back
         * to the system. */
        (void)mallopt(M_MMAP_THRESHOLD, 256 * 1024);
        (void)mallopt(M_TRIM_THRESHOLD, 256 * 1024);
        (void)mallopt(M_MXFAST, 0);
        e->store = store;
        e->opts = *opts;
        if (transport)
                e->transport = *transport;
        e->max_pages = opts->max_pages ? opts->max_pages : DEFAULT_MAX_PAGES;
        pthread_mutex_init(&e->top_lock, NULL);
        pthread_mutex_init(&e->prefetch_lock, NULL);
        pthread_mutex_init(&e->parked_lock, NULL);
        pthread_mutex_init(&e->pool_lock, NULL);
        pthread_cond_init(&e->parked_cond, NULL);
        pthread_cond_init(&e->prefetch_cond, NULL);
        for (size_t n = 0; n < ELEMENTSOF(e->verify_locks); n++)
                pthread_mutex_init(&e->verify_locks[n], NULL);
        k = cas_inodes_new(&e->inodes);
        if (k < 0) {
                free(e);
                return k;
        }
        if (e->transport.backing_close)
                cas_inodes_set_backing_release(e->inodes, release_backing, e);
        (void)cas_metastore_roots_generation(store->meta, &e->roots_generation);
        *ret = e;
        return 0;
}

cas_engine *cas_engine_free(cas_engine *e)
{
        if (!e)
                return NULL;
        for (size_t k = 0; k < e->n_top; k++)
                free(e->top_names[k].name);
        free(e->top_names);
        cas_inodes_free(e->inodes);
        pthread_mutex_destroy(&e->top_lock);
        pthread_mutex_destroy(&e->prefetch_lock);
        pthread_cond_destroy(&e->prefetch_cond);
        parked_clear(e);
        pthread_mutex_destroy(&e->parked_lock);
        pthread_mutex_destroy(&e->pool_lock);
        pthread_cond_destroy(&e->parked_cond);
        for (size_t n = 0; n < ELEMENTSOF(e->verify_locks); n++)
                pthread_mutex_destroy(&e->verify_locks[n]);
        free(e);
        return NULL;
}

/* Frees the calling thread's cached blob reader (transports call it as a
 * worker thread ends). */
void cas_engine_thread_done(void)
{
        reader_cache.reader = cas_blob_reader_free(reader_cache.reader);
        reader_cache.e = NULL;
        free(reader_cache.buf);
        reader_cache.buf = NULL;
        reader_cache.buf_size = 0;
}
