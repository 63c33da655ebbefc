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
#include <time.h>

#include "bufpool.h"
#include "dircache.h"
#include "engine.h"
#include "inodes.h"
#include "log.h"
#include "macro.h"
#include "parked.h"
#include "readahead.h"
#include "readpath.h"
#include "request.h"
#include "state.h"
#include "top.h"

/* Contents never change, so the kernel may keep entries and attributes
 * forever; the mount top is invalidated explicitly when roots change. */
#define FOREVER UINT64_C(0xffffffffffff)
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

/* Inodes freed before memory is given back: a few FORGETs of a busy mount
 * are not worth dropping the mapped metadata pages the next lookups need. */
#define RELEASE_AFTER_FREED 256

struct cas_engine {
        cas_store *store;
        cas_engine_options opts;
        cas_engine_transport transport;
        cas_inodes *inodes;
        uint32_t max_pages;
        _Atomic bool destroyed;
        _Atomic bool initialized;
        bool no_open;    /* the kernel opens files without a round trip */
        bool no_opendir; /* and directories */

        cas_dircache dirs;
        cas_readpath rp;
        cas_bufpool pool;
        cas_parked parked;
        cas_readahead ra;
        cas_streams streams;
        cas_around around;
        cas_top top;

        /* the housekeeping thread (cas_engine_start) */
        pthread_t ticker;
        bool ticking;
        pthread_mutex_t tick_lock; /* protects stop_ticking */
        pthread_cond_t tick_cond;
        bool stop_ticking;
        /* tick's: inodes freed at the last tick and at the last release */
        uint64_t tick_freed, released_freed;
};

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

/* ---- request handlers: each decodes its request and makes one call ---- */

#define ARG(type) CAS_REQUEST_ARG(rq, type)

static int do_init(cas_engine *e, cas_request *rq, cas_inode *i)
{
        const struct fuse_init_in *in = ARG(struct fuse_init_in);
        struct fuse_init_out o = {0};

        /* the first 16 bytes (major, minor, max_readahead, flags) exist in every version */
        if (!cas_request_has(rq, 16))
                return cas_request_error(rq, -EINVAL);
        o.major = FUSE_KERNEL_VERSION;
        o.minor = FUSE_KERNEL_MINOR_VERSION;
        if (in->major < 7)
                return cas_request_error(rq, -EPROTO);
        if (in->major > 7) /* the kernel will ask again with major 7 */
                return cas_request_reply(rq, &o, 8);
        if (in->minor < o.minor)
                o.minor = in->minor;

        uint64_t offered = in->flags;
        if (cas_request_has(rq, sizeof(*in)) && (in->flags & FUSE_INIT_EXT))
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
        e->rp.passthrough = flags & FUSE_PASSTHROUGH;
        /* 7.40's max_stack_depth, the first of 7.38's unused words: the blob
         * files live on an ordinary file system (stacking depth 0) */
        if (e->rp.passthrough)
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
        return cas_request_reply(rq, &o, len);
}

static int do_destroy(cas_engine *e, cas_request *rq, cas_inode *i)
{
        atomic_store(&e->destroyed, true);
        return cas_request_reply(rq, NULL, 0);
}

/* Resolves name in directory p to a node: a root at the top (*ret_root holds
 * it), an entry below (*ret_cache holds the directory it lives in). */
static int find_child(cas_engine *e, cas_inode *p, const char *name, size_t len, cas_node **ret_root,
                      cas_dir_cache **ret_cache, const cas_node **ret_node)
{
        int r;

        if (p->ino == CAS_ROOT_INO) {
                if (len == 0 || len > CAS_NAME_MAX || memchr(name, '/', len) || !cas_top_shows(&e->top, name))
                        return -ENOENT;
                r = cas_metastore_get_root(e->store->meta, name, ret_root);
                if (r < 0)
                        return r == -ENOENT ? -ENOENT : -EIO;
                *ret_node = *ret_root;
                return 0;
        }
        if (p->type != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        r = cas_dircache_get(&e->dirs, p, ret_cache);
        if (r < 0)
                return r;
        const cas_node *n = cas_directory_find((*ret_cache)->dir, name, len);
        if (!n)
                return -ENOENT;
        *ret_node = n;
        return 0;
}

/* The entry name names in directory p, with a lookup the kernel holds. */
static int lookup(cas_engine *e, cas_request *rq, cas_inode *p, const char *name, size_t len)
{
        _cleanup_free_ cas_node *root = NULL;
        cas_dir_cache *cache = NULL;
        const cas_node *n;
        cas_inode *c;
        int r;

        r = find_child(e, p, name, len, &root, &cache, &n);
        if (r >= 0)
                r = cas_inodes_lookup(e->inodes, n, &c);
        if (r >= 0 && cache)
                cas_readahead_seen(&e->ra, c, p, (uint32_t)(n - cache->dir->nodes));
        if (r >= 0)
                cas_readahead_outboard(&e->ra, n, c);
        cas_dir_cache_unref(cache);
        if (r < 0)
                return cas_request_error(rq, r);
        struct fuse_entry_out o;
        fill_entry(e, c, &o);
        if (p->ino == CAS_ROOT_INO)
                cas_top_remember(&e->top, name, c);
        cas_inode_unref(e->inodes, c);
        return cas_request_reply(rq, &o, sizeof(o));
}

static int do_lookup(cas_engine *e, cas_request *rq, cas_inode *p)
{
        size_t len;
        const char *name = cas_request_string(rq, 0, &len);

        if (!name)
                return cas_request_error(rq, -EINVAL);
        return lookup(e, rq, p, name, len);
}

static int do_forget(cas_engine *e, cas_request *rq, cas_inode *unused)
{
        if (cas_request_has(rq, sizeof(struct fuse_forget_in)))
                cas_inodes_forget(e->inodes, rq->in->nodeid, ARG(struct fuse_forget_in)->nlookup);
        return 0; /* no reply */
}

static int do_batch_forget(cas_engine *e, cas_request *rq, cas_inode *unused)
{
        if (cas_request_has(rq, sizeof(struct fuse_batch_forget_in))) {
                const struct fuse_batch_forget_in *b = ARG(struct fuse_batch_forget_in);
                size_t max = (rq->arg_len - sizeof(*b)) / sizeof(struct fuse_forget_one);
                const struct fuse_forget_one *one = (const void *)(b + 1);
                for (size_t k = 0; k < MIN((size_t)b->count, max); k++)
                        cas_inodes_forget(e->inodes, one[k].nodeid, one[k].nlookup);
        }
        return 0; /* no reply */
}

static int do_getattr(cas_engine *e, cas_request *rq, cas_inode *i)
{
        struct fuse_attr_out o = {.attr_valid = FOREVER};
        fill_attr(e, i, &o.attr);
        if (i->ino == CAS_ROOT_INO)
                o.attr_valid = 1; /* the top's entry count may change */
        return cas_request_reply(rq, &o, sizeof(o));
}

static int do_readlink(cas_engine *e, cas_request *rq, cas_inode *i)
{
        if (i->type != CAS_NODE_SYMLINK)
                return cas_request_error(rq, -EINVAL);
        return cas_request_reply(rq, cas_inode_target(i), i->size);
}

/* Whether an OPEN or OPENDIR asks for more than reading. */
static bool opens_to_write(const cas_request *rq)
{
        if (!cas_request_has(rq, sizeof(struct fuse_open_in)))
                return false;
        uint32_t fl = ARG(struct fuse_open_in)->flags;
        return (fl & O_ACCMODE) != O_RDONLY || (fl & O_TRUNC);
}

/* Opening needs nothing from us: reads name the inode, content is
 * immutable. Saying ENOSYS once (the kernel then sends no more OPEN, FLUSH
 * or RELEASE) saves a round trip per open file, and the kernel keeps the
 * page cache across opens. Writes never get here: EROFS. */
static int do_open(cas_engine *e, cas_request *rq, cas_inode *i)
{
        if (opens_to_write(rq))
                return cas_request_error(rq, -EROFS);
        if (i->type != CAS_NODE_FILE)
                return cas_request_error(rq, i->type == CAS_NODE_DIRECTORY || i->ino == CAS_ROOT_INO ? -EISDIR
                                                                                                   : -ELOOP);
        if (e->no_open)
                return cas_request_error(rq, -ENOSYS);
        struct fuse_open_out o = {.open_flags = FOPEN_KEEP_CACHE};
        cas_readahead_after(&e->ra, i);
        int32_t id = cas_readpath_backing_id(&e->rp, i);
        if (id > 0) {
                o.open_flags = FOPEN_PASSTHROUGH;
                o.padding = (uint32_t)id; /* 7.40's backing_id */
        }
        return cas_request_reply(rq, &o, sizeof(o));
}

static int do_opendir(cas_engine *e, cas_request *rq, cas_inode *i)
{
        if (opens_to_write(rq))
                return cas_request_error(rq, -EROFS);
        if (i->ino != CAS_ROOT_INO && i->type != CAS_NODE_DIRECTORY)
                return cas_request_error(rq, -ENOTDIR);
        if (e->no_opendir)
                return cas_request_error(rq, -ENOSYS);
        struct fuse_open_out o = {.open_flags = FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR};
        return cas_request_reply(rq, &o, sizeof(o));
}

static int do_release(cas_engine *e, cas_request *rq, cas_inode *i)
{
        return cas_request_reply(rq, NULL, 0);
}

static int do_flush(cas_engine *e, cas_request *rq, cas_inode *i)
{
        return cas_request_error(rq, -ENOSYS);
}

static int do_read(cas_engine *e, cas_request *rq, cas_inode *i)
{
        const struct fuse_read_in *in = ARG(struct fuse_read_in);
        size_t cap = cas_request_capacity(rq), header = sizeof(struct fuse_out_header);

        if (!cas_request_has(rq, 24)) /* fh, offset, size: in every version */
                return cas_request_error(rq, -EINVAL);
        if (i->type != CAS_NODE_FILE)
                return cas_request_error(rq, i->type == CAS_NODE_DIRECTORY || i->ino == CAS_ROOT_INO ? -EISDIR
                                                                                                   : -EINVAL);
        uint64_t off = in->offset;
        size_t size = MIN((size_t)in->size, (size_t)e->max_pages * 4096);
        if (off >= i->size)
                size = 0;
        else
                size = (size_t)MIN((uint64_t)size, i->size - off);
        size = MIN(size, cap > header ? cap - header : 0);
        if (off == 0 && e->no_open) /* else OPEN did */
                cas_readahead_after(&e->ra, i);
        return cas_readpath_read(&e->rp, rq, i, off, size);
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

/* A listing being written into a reply: entries from offset from on, each
 * at pos, until cap. */
typedef struct listing {
        cas_engine *e;
        cas_request *rq;
        bool plus; /* READDIRPLUS: each entry with its entry_out */
        uint64_t from;
        size_t pos, cap;
} listing;

static void listing_init(listing *l, cas_engine *e, cas_request *rq, bool plus)
{
        const struct fuse_read_in *in = CAS_REQUEST_ARG(rq, struct fuse_read_in);
        *l = (listing){.e = e, .rq = rq, .plus = plus, .from = in->offset};
        l->pos = sizeof(struct fuse_out_header);
        l->cap = MIN((size_t)in->size + l->pos, cas_request_capacity(rq));
}

/* Appends one entry at offset off (c: its inode, for READDIRPLUS; NULL: an
 * entry the kernel should not take a reference for, such as "."). False
 * when it does not fit. */
static bool listing_put(listing *l, const cas_inode *c, uint64_t ino, uint64_t off, const char *name,
                        size_t name_len, uint32_t type)
{
        uint8_t buf[sizeof(struct fuse_entry_out) + FUSE_NAME_OFFSET + CAS_NAME_MAX + 8];
        size_t padded = dirent_size(l->plus, name_len);
        struct fuse_dirent *de = (void *)(buf + (l->plus ? sizeof(struct fuse_entry_out) : 0));

        if (l->pos + padded > l->cap)
                return false;
        memset(buf, 0, padded);
        if (l->plus && c)
                fill_entry(l->e, c, (struct fuse_entry_out *)(void *)buf);
        de->ino = ino;
        de->off = off + 1;
        de->namelen = (uint32_t)name_len;
        de->type = type;
        memcpy(de->name, name, name_len);
        cas_request_put(l->rq, l->pos, buf, padded);
        l->pos += padded;
        return true;
}

/* Emits directory entries from offset on. */
static int list_directory(cas_engine *e, cas_request *rq, cas_inode *i, bool plus)
{
        cas_dir_cache *cache;
        listing l;
        int r;

        if (i->type != CAS_NODE_DIRECTORY)
                return cas_request_error(rq, -ENOTDIR);
        r = cas_dircache_get(&e->dirs, i, &cache);
        if (r < 0)
                return cas_request_error(rq, r);
        const cas_directory *d = cache->dir;
        const uint32_t *order = cache->order;

        listing_init(&l, e, rq, plus);
        /* offsets: 0 "." 1 ".." then 2 + k for the k-th entry in name order */
        uint64_t off;
        for (off = l.from; off < 2 + d->n_nodes; off++) {
                const cas_node *n = off >= 2 ? &d->nodes[order[off - 2]] : NULL;
                const char *name = n ? n->name : off == 0 ? "." : "..";
                size_t name_len = n ? n->name_len : off + 1;
                cas_inode *c = NULL;

                if (l.pos + dirent_size(plus, name_len) > l.cap)
                        break;
                if (n && plus) {
                        if (cas_inodes_lookup(e->inodes, n, &c) < 0)
                                break;
                        cas_readahead_seen(&e->ra, c, i, order[off - 2]);
                }
                listing_put(&l, c, c ? c->ino : (off == 0 ? i->ino : CAS_ROOT_INO), off, name, name_len,
                            dirent_type(n ? n->type : CAS_NODE_DIRECTORY));
                cas_inode_unref(e->inodes, c);
        }
        /* with READDIRPLUS the kernel now holds an entry for every child and
         * will not look them up: the decoded directory is no longer needed */
        bool complete = off >= 2 + d->n_nodes;
        cas_dir_cache_unref(cache);
        if (plus && complete)
                cas_dircache_drop(&e->dirs, i);
        return cas_request_finish(rq, l.pos - sizeof(struct fuse_out_header));
}

/* Listing the top (only with list_root): the roots it shows, in name order. */
static int top_list_cb(const cas_node *n, uint64_t index, void *userdata)
{
        listing *l = userdata;
        cas_engine *e = l->e;
        cas_inode *c = NULL;
        uint64_t off = 2 + index;

        if (l->pos + dirent_size(l->plus, n->name_len) > l->cap)
                return 1;
        if (l->plus) {
                if (cas_inodes_lookup(e->inodes, n, &c) < 0)
                        return 1;
                cas_top_remember(&e->top, n->name, c);
        }
        listing_put(l, c, c ? c->ino : 0xffffffffull, off, n->name, n->name_len, dirent_type(n->type));
        cas_inode_unref(e->inodes, c);
        return 0;
}

static int list_top(cas_engine *e, cas_request *rq, bool plus)
{
        listing l;

        listing_init(&l, e, rq, plus);
        for (uint64_t off = l.from; off < 2; off++)
                if (!listing_put(&l, NULL, CAS_ROOT_INO, off, "..", off + 1, DT_DIR))
                        break;
        if (cas_top_foreach(&e->top, l.from > 2 ? l.from - 2 : 0, top_list_cb, &l) < 0)
                return cas_request_error(rq, -EIO);
        return cas_request_finish(rq, l.pos - sizeof(struct fuse_out_header));
}

static int readdir_any(cas_engine *e, cas_request *rq, cas_inode *i, bool plus)
{
        if (!cas_request_has(rq, 24))
                return cas_request_error(rq, -EINVAL);
        if (i->ino != CAS_ROOT_INO)
                return list_directory(e, rq, i, plus);
        if (!e->opts.list_root)
                return cas_request_error(rq, -EPERM);
        return list_top(e, rq, plus);
}

static int do_readdir(cas_engine *e, cas_request *rq, cas_inode *i)
{
        return readdir_any(e, rq, i, false);
}

static int do_readdirplus(cas_engine *e, cas_request *rq, cas_inode *i)
{
        return readdir_any(e, rq, i, true);
}

static int do_statfs(cas_engine *e, cas_request *rq, cas_inode *i)
{
        struct fuse_statfs_out o = {0};
        struct statvfs sv;

        if (e->store->dir_fd >= 0 && fstatvfs(e->store->dir_fd, &sv) == 0) {
                o.st.blocks = sv.f_blocks * sv.f_frsize / 4096;
                o.st.bfree = 0; /* nothing can be written here */
                o.st.bavail = 0;
                o.st.files = sv.f_files - sv.f_ffree;
        }
        o.st.ffree = 0;
        o.st.bsize = 4096;
        o.st.frsize = 4096;
        o.st.namelen = CAS_NAME_MAX;
        return cas_request_reply(rq, &o, sizeof(o));
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

/* Replies with value (len bytes) to a request for size bytes of it (0: its size). */
static int reply_xattr(cas_request *rq, uint32_t size, const char *value, size_t len)
{
        if (size == 0) {
                struct fuse_getxattr_out o = {.size = (uint32_t)len};
                return cas_request_reply(rq, &o, sizeof(o));
        }
        if (size < len)
                return cas_request_error(rq, -ERANGE);
        return cas_request_reply(rq, value, len);
}

static int do_getxattr(cas_engine *e, cas_request *rq, cas_inode *i)
{
        size_t len;
        char text[CAS_DIGEST_TEXT_MAX];

        if (!cas_request_has(rq, sizeof(struct fuse_getxattr_in)))
                return cas_request_error(rq, -EINVAL);
        const char *name = cas_request_string(rq, sizeof(struct fuse_getxattr_in), &len);
        const char *mine = xattr_name(e, i);
        if (!name)
                return cas_request_error(rq, -EINVAL);
        if (!mine || strcmp(name, mine) != 0)
                return cas_request_error(rq, -ENODATA);
        cas_digest_to_text(&i->digest, text);
        return reply_xattr(rq, ARG(struct fuse_getxattr_in)->size, text, strlen(text));
}

static int do_listxattr(cas_engine *e, cas_request *rq, cas_inode *i)
{
        if (!cas_request_has(rq, sizeof(struct fuse_getxattr_in)))
                return cas_request_error(rq, -EINVAL);
        const char *mine = xattr_name(e, i);
        return reply_xattr(rq, ARG(struct fuse_getxattr_in)->size, mine, mine ? strlen(mine) + 1 : 0);
}

static int do_access(cas_engine *e, cas_request *rq, cas_inode *i)
{
        if (!cas_request_has(rq, sizeof(struct fuse_access_in)))
                return cas_request_error(rq, -EINVAL);
        if (ARG(struct fuse_access_in)->mask & W_OK)
                return cas_request_error(rq, -EROFS);
        return cas_request_reply(rq, NULL, 0);
}

static int do_lseek(cas_engine *e, cas_request *rq, cas_inode *i)
{
        if (!cas_request_has(rq, sizeof(struct fuse_lseek_in)))
                return cas_request_error(rq, -EINVAL);
        const struct fuse_lseek_in *in = ARG(struct fuse_lseek_in);
        struct fuse_lseek_out o;
        if (i->type != CAS_NODE_FILE)
                return cas_request_error(rq, -EINVAL);
        if (in->whence == SEEK_DATA || in->whence == SEEK_HOLE) {
                /* blobs have no holes */
                if (in->offset >= i->size)
                        return cas_request_error(rq, -ENXIO);
                o.offset = in->whence == SEEK_DATA ? in->offset : i->size;
                return cas_request_reply(rq, &o, sizeof(o));
        }
        return cas_request_error(rq, -EINVAL);
}

static int do_interrupt(cas_engine *e, cas_request *rq, cas_inode *i)
{
        /* requests finish quickly and are never waited on: nothing to interrupt */
        return 0; /* no reply */
}

static int do_erofs(cas_engine *e, cas_request *rq, cas_inode *i)
{
        return cas_request_error(rq, -EROFS);
}

typedef int (*handler)(cas_engine *e, cas_request *rq, cas_inode *i);

typedef struct op {
        handler fn;
        const char *name; /* for the debug trace */
        bool no_inode;    /* does not need a valid nodeid */
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
        [FUSE_OPENDIR] = {do_opendir, "OPENDIR"},
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
        [FUSE_SETATTR] = {do_erofs, "SETATTR", true},
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

/* The debug trace: one line per request, by its opcode's name, with the
 * name it looks up. */
static void trace(const cas_request *rq, const op *o)
{
        size_t len;
        const char *name = rq->in->opcode == FUSE_LOOKUP ? cas_request_string(rq, 0, &len) : NULL;

        if (o)
                cas_log_debug("%s nodeid=%" PRIu64 "%s%s", o->name, (uint64_t)rq->in->nodeid,
                        name ? " " : "", name ?: "");
        else
                cas_log_debug("opcode %" PRIu32 " nodeid=%" PRIu64 ": not implemented", rq->in->opcode,
                        (uint64_t)rq->in->nodeid);
}

/* Runs the request against the inode it names. */
static int dispatch(cas_engine *e, cas_request *rq, const op *o)
{
        uint32_t opcode = rq->in->opcode;
        int r;

        if (!o)
                return cas_request_error(rq, -ENOSYS);
        if (!atomic_load(&e->initialized) && opcode != FUSE_INIT)
                return cas_request_error(rq, -EIO);
        if (o->no_inode)
                return o->fn(e, rq, NULL);
        cas_inode *i = cas_inodes_get(e->inodes, rq->in->nodeid);
        if (!i)
                return cas_request_error(rq, -ESTALE);
        /* Not where the refresh would notify the kernel: it waits for the
         * top's lock, which the kernel holds for this very request (a
         * deadlock). The housekeeping thread refreshes every second instead. */
        if (rq->in->nodeid == CAS_ROOT_INO && !e->transport.notify &&
            (opcode == FUSE_LOOKUP || opcode == FUSE_READDIRPLUS || opcode == FUSE_READDIR))
                (void)cas_engine_refresh_roots(e);
        r = o->fn(e, rq, i);
        cas_inode_unref(e->inodes, i);
        return r;
}

static ssize_t handle(cas_engine *e, const struct iovec *in, int in_cnt, const struct iovec *out, int out_cnt,
                      bool refs_ok, cas_request **ret_rq)
{
        /* the request struct is large (it can hold a scattered request): one per thread */
        static _Thread_local cas_request tls_request;
        cas_request *rq = &tls_request;
        int r;

        r = cas_request_init(rq, in, in_cnt, out, out_cnt);
        if (ret_rq)
                *ret_rq = rq;
        if (r < 0)
                return r;
        rq->refs_ok = refs_ok;
        uint32_t opcode = rq->in->opcode;
        const op *o = opcode < ELEMENTSOF(ops) && ops[opcode].fn ? &ops[opcode] : NULL;
        if (_unlikely_(cas_log_get_max_level() >= CAS_LOG_DEBUG))
                trace(rq, o);
        r = dispatch(e, rq, o);
        if (r < 0)
                return r;
        return (ssize_t)rq->written;
}

ssize_t cas_engine_handle(cas_engine *e, const struct iovec *in, int in_cnt, const struct iovec *out,
                          int out_cnt)
{
        return handle(e, in, in_cnt, out, out_cnt, false, NULL);
}

ssize_t cas_engine_handle_refs(cas_engine *e, const struct iovec *in, int in_cnt, const struct iovec *out,
                               int out_cnt, cas_request **ret_rq)
{
        return handle(e, in, in_cnt, out, out_cnt, true, ret_rq);
}

/* ---- the engine ---- */

int cas_engine_refresh_roots(cas_engine *e)
{
        return cas_top_refresh(&e->top, atomic_load(&e->initialized));
}

static void release_memory(cas_engine *e)
{
        cas_parked_clear(&e->parked);
        cas_bufpool_clear(&e->pool);
        malloc_trim(0);
        cas_metastore_release_memory(e->store->meta);
}

/* Once the kernel forgot inodes and its FORGETs stopped for a tick, the
 * memory goes back. */
static void tick(cas_engine *e)
{
        uint64_t freed = cas_inodes_freed(e->inodes);

        cas_streams_expire(&e->streams);
        /* Releasing while FORGETs still come would leave what they free
         * after: wait for a quiet tick. */
        if (freed == e->tick_freed && freed - e->released_freed >= RELEASE_AFTER_FREED) {
                release_memory(e);
                e->released_freed = freed;
        }
        e->tick_freed = freed;
}

/* The housekeeping thread: once a second, the tick and (where the
 * transport can notify the kernel) the roots' refresh. */
static void *ticker(void *userdata)
{
        cas_engine *e = userdata;
        struct timespec next;

        clock_gettime(CLOCK_MONOTONIC, &next);
        pthread_mutex_lock(&e->tick_lock);
        while (!e->stop_ticking) {
                next.tv_sec++;
                while (!e->stop_ticking && pthread_cond_timedwait(&e->tick_cond, &e->tick_lock, &next) != ETIMEDOUT)
                        ;
                if (e->stop_ticking)
                        break;
                pthread_mutex_unlock(&e->tick_lock);
                tick(e);
                if (e->transport.notify)
                        (void)cas_engine_refresh_roots(e);
                pthread_mutex_lock(&e->tick_lock);
        }
        pthread_mutex_unlock(&e->tick_lock);
        return NULL;
}

int cas_engine_start(cas_engine *e)
{
        int r;

        cas_readahead_start(&e->ra);
        cas_streams_start(&e->streams);
        cas_around_start(&e->around);
        e->stop_ticking = false;
        r = pthread_create(&e->ticker, NULL, ticker, e);
        if (r != 0) {
                cas_readahead_stop(&e->ra);
                cas_streams_stop(&e->streams);
                cas_around_stop(&e->around);
                return -r;
        }
        e->ticking = true;
        return 0;
}

void cas_engine_stop(cas_engine *e)
{
        if (e->ticking) {
                pthread_mutex_lock(&e->tick_lock);
                e->stop_ticking = true;
                pthread_cond_signal(&e->tick_cond);
                pthread_mutex_unlock(&e->tick_lock);
                pthread_join(e->ticker, NULL);
                e->ticking = false;
        }
        cas_readahead_stop(&e->ra);
        cas_streams_stop(&e->streams); /* lets go of the inodes it holds, before the table goes */
        cas_around_stop(&e->around);   /* likewise */
}

uint64_t cas_engine_inode_count(cas_engine *e)
{
        return cas_inodes_count(e->inodes);
}

bool cas_engine_destroyed(cas_engine *e)
{
        return atomic_load(&e->destroyed);
}

/* What the engine's state of an inode holds, released as the inode goes. */
static void release_state(cas_inode *i, bool forgotten, void *userdata)
{
        cas_engine *e = userdata;
        cas_inode_state *st = cas_state(i);
        int32_t id = atomic_load(&st->backing_id);

        /* the table going means the connection is gone: so are its backing files */
        if (forgotten && id > 0 && e->transport.backing_close)
                e->transport.backing_close(e->transport.userdata, id);
        if (i->type == CAS_NODE_FILE)
                free(atomic_load(&st->outboard));
        else if (i->type == CAS_NODE_DIRECTORY)
                cas_dir_cache_unref(st->dcache);
}

int cas_engine_new(cas_store *store, const cas_engine_options *opts, const cas_engine_transport *transport,
                   cas_engine **ret)
{
        cas_engine *e = calloc(1, sizeof(*e));
        int r;

        if (!e)
                return -ENOMEM;
        e->store = store;
        e->opts = *opts;
        if (transport)
                e->transport = *transport;
        e->max_pages = opts->max_pages ? opts->max_pages : DEFAULT_MAX_PAGES;
        /* the list is the caller's: the top keeps its own copy */
        e->opts.roots = NULL;
        r = cas_top_init(&e->top, store->meta, &e->transport, opts->roots, opts->n_roots);
        if (r < 0) {
                free(e);
                return r;
        }
        r = cas_inodes_new(sizeof(cas_inode_state), release_state, e, &e->inodes);
        if (r < 0) {
                cas_top_done(&e->top);
                free(e);
                return r;
        }
        pthread_mutex_init(&e->tick_lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->tick_cond, &ca);
        pthread_condattr_destroy(&ca);
        cas_dircache_init(&e->dirs, store->meta);
        cas_bufpool_init(&e->pool);
        cas_parked_init(&e->parked, &e->pool);
        cas_readpath_init(&e->rp, store->blobs, &e->opts, &e->parked, &e->transport);
        cas_readahead_init(&e->ra, store->blobs, e->inodes, &e->dirs, &e->rp, &e->parked, &e->opts);
        cas_streams_init(&e->streams, store->blobs, e->inodes, e->opts.direct_io);
        e->rp.streams = &e->streams;
        cas_around_init(&e->around, store->blobs, e->inodes, &e->transport, e->opts.direct_io);
        e->rp.around = &e->around;
        *ret = e;
        return 0;
}

cas_engine *cas_engine_free(cas_engine *e)
{
        if (!e)
                return NULL;
        cas_engine_stop(e);
        cas_inodes_free(e->inodes);
        cas_top_done(&e->top);
        cas_readahead_done(&e->ra);
        cas_streams_done(&e->streams);
        cas_around_done(&e->around);
        cas_readpath_done(&e->rp);
        cas_parked_done(&e->parked);
        cas_bufpool_done(&e->pool);
        cas_dircache_done(&e->dirs);
        pthread_mutex_destroy(&e->tick_lock);
        pthread_cond_destroy(&e->tick_cond);
        free(e);
        return NULL;
}

void cas_engine_thread_done(void)
{
        cas_readpath_thread_done();
}
