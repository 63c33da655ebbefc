/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A remote store read through a local one: the cache is an ordinary local
 * store (usable on its own afterwards) that keeps what was read from the
 * remote. The pair presents itself as one store (a blobstore and a
 * metastore backend), so that the mount reads checked bytes and never knows
 * where they came from.
 *
 *   roots        from the remote, kept in memory with their ETag and asked
 *                again (conditionally) once they are older than `refresh`;
 *                each one fetched is also written to the cache, which answers
 *                when the remote does not
 *   directories  from the cache; a root's whole closure is fetched (one
 *                dirs/ object), checked and put there when the root is
 *                first looked up
 *   blobs        from the cache; a blob not there is fetched (checked chunk
 *                by chunk and whole), written to the cache (its outboard
 *                with it) and served from there; the same blob is never
 *                fetched twice at once
 *
 * With max_bytes, the blobs read least recently are removed once the
 * cache's blobs pass it; directories and roots are never removed. */

#include <stdint.h>

#include "store.h"

/* The file in a cache's folder naming the remote it caches. */
#define CAS_CACHE_MARKER "cache-of"

typedef struct cas_cache_options {
        unsigned refresh_sec; /* how long a root is taken as it was last seen; 0: 60 */
        uint64_t max_bytes;   /* bound on the cached blobs' bytes; 0: none */
} cas_cache_options;

/* Opens the remote store at address (o: its options) through the local
 * store at cache_dir (created when missing). ret is a store like any other:
 * path is the remote's address, remote is NULL. */
int cas_store_open_cached(const char *address, const char *cache_dir, const cas_objstore_options *o,
                          const cas_cache_options *co, cas_store **ret);

/* The default cache folder of a remote address:
 * ${XDG_CACHE_HOME:-~/.cache}/casfs/<host and path, made a file name>-<hash>,
 * the hash of the address and, for s3:// (whose address names no server),
 * of the endpoint it is reached at (NULL or "": AWS): one bucket name on
 * two servers is two stores, each with a cache of its own. */
int cas_cache_default_dir(const char *address, const char *s3_endpoint, char **ret);

/* 1 when the local store at dir_fd is the cache of a remote store, 0 when not. */
int cas_cache_is_cache(int dir_fd);
