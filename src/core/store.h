/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A store: blobs + directories + roots, opened from an address (a local
 * store's path, or an object store's URL: file://, s3://, http(s)://, see
 * objstore.h and docs/FORMAT.md) or in memory for tests. */

#include <stdbool.h>

#include "blobstore.h"
#include "metastore.h"
#include "objstore.h"

#define CAS_STORE_FORMAT "casfs-store 1"

typedef struct cas_store {
        char *path; /* NULL for a memory store; the address of a remote one */
        int dir_fd;
        int lock_fd;
        cas_blobstore *blobs;
        cas_metastore *meta;
        cas_objstore *remote; /* under blobs and meta of a remote store; else NULL */
        /* a remote store read through a local cache (cache.h): the two
         * stores under blobs and meta; else NULL */
        struct cas_store *cache_local, *cache_remote;
} cas_store;

enum {
        CAS_STORE_CREATE = 1 << 0,   /* create when missing */
        CAS_STORE_READONLY = 1 << 1, /* never write */
        CAS_STORE_NOCHECK = 1 << 2,  /* remote: do not ask whether it answers (a cache serves offline) */
};

int cas_store_open(const char *path, int flags, cas_store **ret);
/* Opens a local store's path or an object store's address (o: its
 * options, may be NULL). A remote store is checked with one request (a
 * missing bucket or folder is -ENOENT, unless CAS_STORE_CREATE asks for a
 * file:// folder to be made); cas_objstore_last_error() says what failed. */
int cas_store_open_address(const char *address, int flags, const cas_objstore_options *o,
                           cas_store **ret);
int cas_store_new_memory(cas_store **ret);
/* An empty store (no parts, no descriptors) for an opener to fill: those
 * above, and the cache's (cas_store_open_cached). */
int cas_store_new_empty(cas_store **ret);
cas_store *cas_store_free(cas_store *s);

/* Writers (import) hold the lock shared, gc holds it exclusive, so that gc never
 * deletes what an import in progress is about to reference. */
int cas_store_lock(cas_store *s, bool exclusive);
void cas_store_unlock(cas_store *s);

/* The default store path: $CASFS_STORE, else ${XDG_DATA_HOME:-~/.local/share}/casfs. */
int cas_store_default_path(char **ret);

/* Splits "NAME/a/b" and resolves it: the node at that path (name = last
 * component). -ENOENT, -ENOTDIR; symlinks are not followed. */
int cas_store_resolve(cas_store *s, const char *path, cas_node **ret);

DEFINE_TRIVIAL_CLEANUP_FUNC(cas_store *, cas_store_free);
