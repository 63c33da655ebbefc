/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The engine's state of an inode: what it learned about the inode's content
 * while serving it. It lives in the inode's tail (inodes.h) and is released
 * by the engine's hook as the inode goes. Symlinks have none. */

#include <stdatomic.h>
#include <stdint.h>

#include "inodes.h"

/* Whether content matched its digest, kept so that it is checked once. */
typedef enum cas_verdict {
        CAS_VERDICT_UNKNOWN = 0, /* not checked yet */
        CAS_VERDICT_GOOD,        /* it matched */
        CAS_VERDICT_BAD,         /* it did not, or is missing: every later use fails at once */
} cas_verdict;

/* The verdict is the inode's user_byte: files: the blob's (a small one's
 * whole; a large one's only when it was hashed whole and did not match);
 * directories: BAD once their record was found missing or corrupt (logged
 * once). The rest lives in the inode's tail: */
typedef struct cas_inode_state {
        /* files served by FUSE passthrough: the kernel's id of the blob's file
         * (0: none yet); closed when the kernel forgets the inode */
        _Atomic int32_t backing_id;
        /* files: the entry's index in the directory seen_in */
        _Atomic uint32_t seen_at;
        union {
                /* files: the directory (inode number) the kernel last found it in */
                _Atomic uint64_t seen_in;
                /* directories: entries below this index were already read ahead */
                _Atomic uint32_t read_ahead;
        };
        union {
                /* files over 1 MiB: the blob's outboard, checked against the
                 * digest; set once (under the read path's verify lock) */
                _Atomic(uint8_t *) outboard;
                /* directories: loaded on first use (dircache.h) */
                struct cas_dir_cache *dcache;
        };
} cas_inode_state;

static inline cas_inode_state *cas_state(cas_inode *i)
{
        return (cas_inode_state *)i->tail;
}

static inline cas_verdict cas_state_verdict(cas_inode *i)
{
        return (cas_verdict)atomic_load(&i->user_byte);
}

static inline void cas_state_set_verdict(cas_inode *i, cas_verdict v)
{
        atomic_store(&i->user_byte, (uint8_t)v);
}
