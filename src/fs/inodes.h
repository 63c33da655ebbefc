/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The inode table of the mounted filesystem (SPEC.md §5): identical content
 * shares one inode (files by blob digest and executable bit, directories by
 * digest, symlinks by target; each also by the size its record gives, so that
 * a record lying about it never lends its size to intact entries),
 * directories are loaded on first use, and the kernel's lookup counts decide
 * when an inode goes: FORGET frees what the kernel no longer holds, so memory
 * follows the kernel's caches.
 *
 * Lifetime: an inode carries a reference count. The kernel's holding (its
 * lookup count above zero) is one reference; each request working on the
 * inode holds another (cas_inodes_get / cas_inode_unref). An inode leaves the
 * tables when its lookup count reaches zero and is freed with its last
 * reference, so a request racing a FORGET (or a guest naming a forgotten
 * inode) never touches freed memory. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "castore.h"
#include "metastore.h"

#define CAS_ROOT_INO 1

typedef struct cas_inode {
        uint64_t ino;
        _Atomic uint64_t nlookup; /* the kernel's count; protected for 0 <-> 1 by the key shard lock */
        _Atomic uint32_t refs;
        uint8_t type;             /* cas_node_type; 0 for the mount top */
        bool executable;
        /* files verified whole: 0 not yet, 1 the blob matched its digest, 2 it
         * did not; directories: 2 once their record was found missing or
         * corrupt (every later use is EIO at once, and it is logged once) */
        _Atomic uint8_t verified;
        uint64_t size;            /* bytes of a file, entries of a directory, length of a target */
        cas_digest digest;        /* blob or directory digest; for a symlink the hash of its target */
        /* What only one type of inode has; each inode is of one type. */
        union {
                char *target; /* symlinks, NUL-terminated */
                /* files over 1 MiB: the blob's outboard, checked against the
                 * digest; set once (under the engine's verify lock) */
                _Atomic(uint8_t *) outboard;
                /* directories: loaded on first use; dropped again once the
                 * kernel has all entries (after a full READDIRPLUS), so that
                 * memory follows what is still needed. Protected by the
                 * table's dir locks. */
                struct cas_dir_cache *dcache;
        };
        union {
                /* files: the directory (inode number) the kernel last found it in */
                _Atomic uint64_t seen_in;
                /* directories: entries below this index were already read ahead */
                _Atomic uint32_t read_ahead;
        };
        /* files: the entry's index in that directory */
        _Atomic uint32_t seen_at;
        /* files served by FUSE passthrough: the kernel's id of the blob's file
         * (0: none yet); released when the inode goes */
        _Atomic int32_t backing_id;
        struct cas_inode *next_by_key, *next_by_ino; /* hash chains, under the shard locks */
} cas_inode;

typedef struct cas_inodes cas_inodes;

int cas_inodes_new(cas_inodes **ret);
cas_inodes *cas_inodes_free(cas_inodes *t);

/* Called with an inode's backing_id when the inode goes (FORGET), to close it. */
void cas_inodes_set_backing_release(cas_inodes *t, void (*fn)(int32_t id, void *userdata), void *userdata);

/* The mount top (never freed). */
cas_inode *cas_inodes_root(cas_inodes *t);

/* The inode for node, created when new; its lookup count and reference count
 * each grow by one (the caller answers a LOOKUP with it and then unrefs). */
int cas_inodes_lookup(cas_inodes *t, const cas_node *node, cas_inode **ret);

/* The inode with this number, with a reference, or NULL (never issued, or gone). */
cas_inode *cas_inodes_get(cas_inodes *t, uint64_t ino);
void cas_inode_unref(cas_inodes *t, cas_inode *i);

/* FORGET: drops n of the kernel's lookups. */
void cas_inodes_forget(cas_inodes *t, uint64_t ino, uint64_t n);

/* A loaded directory, shared by the requests using it. */
typedef struct cas_dir_cache {
        _Atomic uint32_t refs;
        cas_directory *dir;
        uint32_t order[]; /* nodes of dir in name order */
} cas_dir_cache;

/* The directory of inode i, loading it when needed; -EIO when it is missing
 * or corrupt in the store. That verdict is kept with the inode (verified):
 * the record is not read again and the log names it once per inode. The
 * caller releases it with cas_dir_cache_unref. */
int cas_inode_directory(cas_inodes *t, cas_inode *i, cas_metastore *ms, cas_dir_cache **ret);
void cas_dir_cache_unref(cas_dir_cache *c);
/* Forgets the loaded directory of i (it is loaded again when needed). */
void cas_inode_drop_directory(cas_inodes *t, cas_inode *i);

/* How many inodes are live (for tests and statistics). */
uint64_t cas_inodes_count(cas_inodes *t);
/* How many inodes were freed since the table was made. */
uint64_t cas_inodes_freed(cas_inodes *t);
