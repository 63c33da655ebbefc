/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Directories and the root registry. Two backends: LMDB (meta.lmdb in a local
 * store) and memory (tests). The validation of SPEC.md §2 happens here, above
 * the backends, so that both refuse the same closures. */

#include <stdbool.h>
#include <stdint.h>

#include "castore.h"
#include "macro.h"

typedef struct cas_metastore cas_metastore;

int cas_metastore_open_lmdb(const char *path, bool readonly, cas_metastore **ret);
int cas_metastore_new_memory(cas_metastore **ret);
/* Over an object store (borrowed: it must outlive the metadata store). */
typedef struct cas_objstore cas_objstore;
int cas_metastore_open_remote(cas_objstore *os, cas_metastore **ret);
/* A remote one read through a local one (cache.h); all three borrowed. */
int cas_metastore_open_cache(cas_metastore *local, cas_metastore *remote, cas_objstore *os,
                             unsigned refresh_sec, cas_metastore **ret);
cas_metastore *cas_metastore_free(cas_metastore *ms);
DEFINE_TRIVIAL_CLEANUP_FUNC(cas_metastore *, cas_metastore_free);

/* --- directories --- */

/* A stored directory, decoded and validated: -ENOENT when absent, -EBADMSG
 * when the stored bytes are not a valid canonical directory or do not hash
 * to d. The caller frees *ret. */
int cas_metastore_get_directory(cas_metastore *ms, const cas_digest *d, cas_directory **ret);
int cas_metastore_has_directory(cas_metastore *ms, const cas_digest *d);

/* Stores a closure, leaves first (SPEC.md §2): each directory may refer only
 * to directories earlier in dirs[] or already stored, each DirectoryNode's
 * size must match, exactly one directory is unreferenced at the end (the
 * root, whose digest is returned). All or nothing, durable on return. */
int cas_metastore_put_closure(cas_metastore *ms, cas_directory *const *dirs, size_t n,
                              cas_digest *ret_root, cas_error *ret_err);

/* Visits the directory d and every directory below it, breadth first, each
 * once. cb gets the digest and the decoded directory (valid during the call),
 * or dir NULL and error -ENOENT / -EBADMSG for one that is missing or
 * corrupt (the walk goes on past it). cb returns 0 to go on, 1 to skip what
 * is below this directory, or a negative errno, which stops the walk and is
 * returned. */
typedef int (*cas_directory_cb)(const cas_digest *d, const cas_directory *dir, int error,
                                void *userdata);
int cas_metastore_walk(cas_metastore *ms, const cas_digest *root, cas_directory_cb cb,
                       void *userdata);

typedef int (*cas_digest_cb)(const cas_digest *d, void *userdata);
int cas_metastore_foreach_directory(cas_metastore *ms, cas_digest_cb cb, void *userdata);
/* Stores bytes under a digest without any check: for tests that need a store
 * written by a buggy or hostile writer, and for repair tools. */
int cas_metastore_put_raw_directory(cas_metastore *ms, const cas_digest *d, const void *buf,
                                    size_t len);
int cas_metastore_put_raw_root(cas_metastore *ms, const char *name, const void *buf, size_t len);
int cas_metastore_remove_directories(cas_metastore *ms, const cas_digest *ds, size_t n);

/* --- roots: name -> node (the node carries the name) --- */

int cas_metastore_set_root(cas_metastore *ms, const cas_node *node);
/* Sets several roots in one transaction: all or none. */
int cas_metastore_set_roots(cas_metastore *ms, cas_node *const *nodes, size_t n);
/* -ENOENT when there is no such root. The caller frees *ret. */
int cas_metastore_get_root(cas_metastore *ms, const char *name, cas_node **ret);
int cas_metastore_remove_root(cas_metastore *ms, const char *name);
/* In name order; node valid during the call. Only valid roots: a record that
 * does not decode, is not a valid node or does not carry its key as its name
 * is skipped (cas_metastore_get_root refuses it with -EBADMSG). */
typedef int (*cas_root_cb)(const cas_node *node, void *userdata);
int cas_metastore_foreach_root(cas_metastore *ms, cas_root_cb cb, void *userdata);
/* Every record of the registry, in name order, damaged ones too (fsck, gc):
 * cb gets the record's key and its node (both valid during the call), or node
 * NULL and error -EBADMSG for a record that foreach_root skips. */
typedef int (*cas_root_record_cb)(const char *name, const cas_node *node, int error,
                                  void *userdata);
int cas_metastore_foreach_root_record(cas_metastore *ms, cas_root_record_cb cb, void *userdata);
/* A number that changes whenever the root registry changes (for mounts). */
int cas_metastore_roots_generation(cas_metastore *ms, uint64_t *ret);

/* Drops this process's mappings of metadata pages (they stay in the page
 * cache and come back on the next read): for a long-running reader whose
 * resident size should follow what it still uses. */
void cas_metastore_release_memory(cas_metastore *ms);

/* --- the import cache: (device, inode, size, mtime, ctime) -> blob digest --- */

typedef struct cas_stat_key {
        uint64_t dev, ino, size;
        int64_t mtime_ns, ctime_ns;
} cas_stat_key;

int cas_metastore_statcache_get(cas_metastore *ms, const cas_stat_key *k, cas_digest *ret);
/* Entries are buffered and written in one transaction by _flush. */
int cas_metastore_statcache_put(cas_metastore *ms, const cas_stat_key *k, const cas_digest *d);
int cas_metastore_statcache_flush(cas_metastore *ms);
/* Drops the entries whose digest is_dead() says was removed (gc): a cache hit
 * then always names a blob the store has, and import need not check. */
int cas_metastore_statcache_prune(cas_metastore *ms, bool (*is_dead)(const cas_digest *d, void *u),
                                  void *userdata);
