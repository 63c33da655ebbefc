/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Directories of the mount, loaded from the store on first use and kept with
 * their inode (its state, state.h) until the kernel has all their entries or
 * forgets the inode, so that memory follows what is still needed. A record
 * missing or corrupt in the store is judged once per inode. */

#include <pthread.h>
#include <stdatomic.h>

#include "inodes.h"
#include "metastore.h"

/* A loaded directory, shared by the requests using it. */
typedef struct cas_dir_cache {
        _Atomic uint32_t refs;
        cas_directory *dir;
        uint32_t order[]; /* nodes of dir in name order */
} cas_dir_cache;

typedef struct cas_dircache {
        cas_metastore *meta;
        pthread_mutex_t locks[64]; /* protect each inode's dcache pointer, by address */
} cas_dircache;

void cas_dircache_init(cas_dircache *dc, cas_metastore *meta);
void cas_dircache_done(cas_dircache *dc);

/* The directory of inode i, loading it when needed; -EIO when it is missing
 * or corrupt in the store. That verdict is kept with the inode: the record is
 * not read again and the log names it once per inode. The caller releases it
 * with cas_dir_cache_unref. */
int cas_dircache_get(cas_dircache *dc, cas_inode *i, cas_dir_cache **ret);
/* Forgets the loaded directory of i (it is loaded again when needed). */
void cas_dircache_drop(cas_dircache *dc, cas_inode *i);
void cas_dir_cache_unref(cas_dir_cache *c);
