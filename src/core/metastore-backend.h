/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a metadata store backend implements (metastore.c has the LMDB and
 * memory ones; metastore-remote.c the object-store one). Not for users of
 * the interface, which is metastore.h. */

#include <pthread.h>

#include "metastore.h"

/* A raw record of the root registry: its key (not NUL-terminated) and value. */
typedef int (*raw_root_cb)(const void *key, size_t key_len, const void *buf, size_t len, void *u);

/* The raw operations a backend provides; validation and decoding live above. */
typedef struct metastore_ops {
        /* *ret is malloc'ed */
        int (*get_dir)(cas_metastore *ms, const cas_digest *d, void **ret, size_t *ret_len);
        int (*has_dir)(cas_metastore *ms, const cas_digest *d);
        /* Stores all or nothing, durably. */
        int (*put_dirs)(cas_metastore *ms, const cas_digest *ds, uint8_t *const *bufs,
                        const size_t *lens, size_t n);
        int (*foreach_dir)(cas_metastore *ms, cas_digest_cb cb, void *userdata);
        int (*remove_dirs)(cas_metastore *ms, const cas_digest *ds, size_t n);
        /* Sets (buf != NULL) or removes roots, all in one transaction. */
        int (*put_roots)(cas_metastore *ms, const char *const *names, uint8_t *const *bufs,
                         const size_t *lens, size_t n);
        int (*get_root)(cas_metastore *ms, const char *name, void **ret, size_t *ret_len);
        int (*foreach_root)(cas_metastore *ms, raw_root_cb cb, void *userdata);
        int (*generation)(cas_metastore *ms, uint64_t *ret);
        /* The import cache: optional, all three or none. Without them the
         * cache finds nothing and keeps nothing (memory, remote, cache). */
        int (*statcache_get)(cas_metastore *ms, const cas_stat_key *k, cas_digest *ret);
        int (*statcache_put)(cas_metastore *ms, const cas_stat_key *ks, const cas_digest *ds,
                             size_t n);
        int (*statcache_prune)(cas_metastore *ms, bool (*is_dead)(const cas_digest *d, void *u),
                               void *userdata);
        void (*release_memory)(cas_metastore *ms);
        void (*free)(cas_metastore *ms);
} metastore_ops;

struct cas_metastore {
        const metastore_ops *ops;
        pthread_mutex_t pending_lock; /* protects the pending statcache entries */
        cas_stat_key *pending_keys;
        cas_digest *pending_digests;
        size_t n_pending, n_pending_alloc;
};

/* Sets up the part of ms above the backend. */
void cas_metastore_init(cas_metastore *ms, const metastore_ops *ops);
