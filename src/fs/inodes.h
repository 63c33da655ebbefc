/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The inode table of the mounted filesystem (SPEC.md §5): identical content
 * shares one inode (files by blob digest and executable bit, directories by
 * digest, symlinks by target; each also by the size its record gives, so that
 * a record lying about it never lends its size to intact entries), and the
 * kernel's lookup counts decide when an inode goes: FORGET frees what the
 * kernel no longer holds, so memory follows the kernel's caches. An inode is
 * identity and lifetime only; what its user learns about it (verdicts,
 * loaded directories, ...) lives in the inode's state, which the user
 * defines and releases through one hook.
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
#include "macro.h"

#define CAS_ROOT_INO 1

typedef struct cas_inode {
        uint64_t ino;
        _Atomic uint64_t nlookup; /* the kernel's count; protected for 0 <-> 1 by the key shard lock */
        _Atomic uint32_t refs;
        uint8_t type;             /* cas_node_type; 0 for the mount top */
        bool executable;
        /* a byte of the user's state (as tail), in what would be padding:
         * with it a file's state fits the allocation an inode had before */
        _Atomic uint8_t user_byte;
        uint64_t size;            /* bytes of a file, entries of a directory, length of a target */
        cas_digest digest;        /* blob or directory digest; for a symlink the hash of its target */
        struct cas_inode *next_by_key, *next_by_ino; /* hash chains, under the shard locks */
        /* symlinks: the target, NUL-terminated (cas_inode_target); files,
         * directories and the top: the user's state of the inode
         * (cas_inodes_new's state_size bytes, zeroed at first), released by
         * its hook when the inode goes */
        _Alignas(8) uint8_t tail[];
} cas_inode;

static inline const char *cas_inode_target(const cas_inode *i)
{
        return (const char *)i->tail;
}

typedef struct cas_inodes cas_inodes;

/* Releases what the state of an inode (not a symlink's) holds, as the inode
 * goes: forgotten is true when the kernel forgot it, false when the whole
 * table goes (the connection is gone then, and so is what the kernel held). */
typedef void (*cas_inode_release_fn)(cas_inode *i, bool forgotten, void *userdata);

int cas_inodes_new(size_t state_size, cas_inode_release_fn release, void *userdata, cas_inodes **ret);
cas_inodes *cas_inodes_free(cas_inodes *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(cas_inodes *, cas_inodes_free);

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

/* How many inodes are live (for tests and statistics). */
uint64_t cas_inodes_count(cas_inodes *t);
/* How many inodes were freed since the table was made. */
uint64_t cas_inodes_freed(cas_inodes *t);
