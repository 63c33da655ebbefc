/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Blobs: byte strings named by their BLAKE3 digest. An interface with three
 * backends: local files (blobs/ab/cd/<hex>), memory (tests) and an object
 * store (chunks/ and blobs/ of the remote layout, blobstore-remote.c). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "macro.h"

typedef struct cas_blobstore cas_blobstore;
typedef struct cas_blob_reader cas_blob_reader;
typedef struct cas_blob_writer cas_blob_writer;

/* Opens (creating when asked) the blob folder of a local store. */
int cas_blobstore_open_local(const char *dir, int dir_fd, cas_blobstore **ret);
int cas_blobstore_new_memory(cas_blobstore **ret);
/* Over an object store (borrowed: it must outlive the blob store). */
typedef struct cas_objstore cas_objstore;
int cas_blobstore_open_remote(cas_objstore *os, cas_blobstore **ret);
cas_blobstore *cas_blobstore_free(cas_blobstore *bs);

/* Size of a blob; -ENOENT when absent. */
int cas_blobstore_stat(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size);

/* 1 when the blob is there (complete), 0 when not: for copies that send only
 * what a store lacks. Remote stores answer from one listing of the store. */
int cas_blobstore_has(cas_blobstore *bs, const cas_digest *d);

/* Random-access reads. Thread-safe: a reader may be used by many threads. */
int cas_blobstore_open(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret);
/* The same, for a caller that knows the blob's size (from its FileNode): a
 * blob of another size is -EBADMSG. Remote stores need it to bound and check
 * what they fetch before anything is decompressed. */
int cas_blobstore_open_sized(cas_blobstore *bs, const cas_digest *d, uint64_t size,
                             cas_blob_reader **ret);
/* Stores that fetch what they open over a network (a remote store read
 * through a cache) take many blobs ahead of their reads at once, so that
 * the round trips overlap: refs[i] is a blob's digest and size. Returns once
 * each of them is in (or failed: its open reports it); -EOPNOTSUPP for a
 * store that does not fetch (cas_blobstore_can_prefetch is false), which
 * reads ahead by opening. Every blob is checked before it is stored. */
typedef struct cas_chunk_ref cas_chunk_ref;
bool cas_blobstore_can_prefetch(const cas_blobstore *bs);
int cas_blobstore_prefetch(cas_blobstore *bs, const cas_chunk_ref *refs, size_t n);
/* 1 when opening the blob would fetch nothing (always, for a store that
 * does not fetch), 0 when it is not there yet (or is being fetched): what
 * tells reading ahead a reader that waits from one that does not. */
int cas_blobstore_cached(cas_blobstore *bs, const cas_digest *d);
/* The chunks the blob d of size bytes is stored as, as objects of their own
 * (a remote store's blob index): *ret (to free) and *ret_n, 0 of them for a
 * blob stored whole (every blob of a local store). */
int cas_blobstore_parts(cas_blobstore *bs, const cas_digest *d, uint64_t size, cas_chunk_ref **ret,
                        size_t *ret_n);
uint64_t cas_blob_reader_size(const cas_blob_reader *rd);
/* Reads up to n bytes at off; short only at the end of the blob. */
ssize_t cas_blob_reader_pread(cas_blob_reader *rd, void *buf, size_t n, uint64_t off);
/* True when the reader's bytes are checked already, piece by piece, as it
 * reads them (a remote blob read through a cache before all of it is
 * there): no check of the blob whole or by its outboard is needed, nor
 * possible without reading all of it. */
bool cas_blob_reader_checked(const cas_blob_reader *rd);
/* The file descriptor behind the reader, or -1 when there is none (memory). */
int cas_blob_reader_fd(const cas_blob_reader *rd);
/* The same file opened for direct I/O (O_DIRECT: reads bypass the page
 * cache, straight into the caller's aligned buffer), or -1 when there is
 * none. Opened on first use, closed with the reader. */
int cas_blob_reader_direct_fd(cas_blob_reader *rd);
cas_blob_reader *cas_blob_reader_free(cas_blob_reader *rd);

/* Streaming put: the digest (and, for a large blob, its outboard) is computed
 * while the bytes go in. Small blobs
 * stay in memory until commit, so content already present is never written
 * again; larger ones go to a temporary file renamed into place. */
int cas_blobstore_writer_new(cas_blobstore *bs, cas_blob_writer **ret);
int cas_blob_writer_write(cas_blob_writer *w, const void *buf, size_t n);
/* Finishes and frees w (also on failure). ret_existed (optional) tells whether
 * the blob was already in the store. */
int cas_blob_writer_commit(cas_blob_writer *w, cas_digest *ret_digest, uint64_t *ret_size,
                           int *ret_existed);
/* Drops what was written; frees w. Accepts NULL. */
cas_blob_writer *cas_blob_writer_abort(cas_blob_writer *w);

int cas_blobstore_put(cas_blobstore *bs, const void *buf, size_t n, cas_digest *ret);

/* Makes every blob written so far durable (syncfs for the local backend). */
int cas_blobstore_sync(cas_blobstore *bs);

/* Enumerates stored blobs; stops early when cb returns non-zero (returned).
 * size is CAS_BLOB_SIZE_UNKNOWN where knowing it would cost a stat per blob
 * (the local backend): listing then reads no inode. */
#define CAS_BLOB_SIZE_UNKNOWN UINT64_MAX
typedef int (*cas_blob_cb)(const cas_digest *d, uint64_t size, void *userdata);
int cas_blobstore_foreach(cas_blobstore *bs, cas_blob_cb cb, void *userdata);
/* Removes a blob and its outboard. */
int cas_blobstore_remove(cas_blobstore *bs, const cas_digest *d);

/* Outboards (outboard.h): blobs larger than CAS_OUTBOARD_MIN get one when
 * written. get: the outboard of the blob of this digest and size, unchecked
 * (the caller checks it with cas_outboard_check), freed by the caller;
 * -ENOENT when the blob has none, -EBADMSG when it has the wrong length. */
int cas_blobstore_get_outboard(cas_blobstore *bs, const cas_digest *d, uint64_t size, uint8_t **ret);
/* 1 when the blob of this digest and size has a stored outboard of the right
 * length (its content unchecked), 0 when not or when its size needs none. */
int cas_blobstore_has_outboard(cas_blobstore *bs, const cas_digest *d, uint64_t size);
/* Stores an outboard for a blob already there (for blobs stored without one). */
int cas_blobstore_put_outboard(cas_blobstore *bs, const cas_digest *d, uint64_t size, const uint8_t *ob);
/* Removes temporary files left by writers that died (older than min_age seconds). */
int cas_blobstore_clean_temporary(cas_blobstore *bs, unsigned min_age, uint64_t *ret_count);

/* Test hook: the path of a blob's file, for tests that corrupt it. Local backend only. */
int cas_blobstore_path(cas_blobstore *bs, const cas_digest *d, char **ret);

DEFINE_TRIVIAL_CLEANUP_FUNC(cas_blob_reader *, cas_blob_reader_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(cas_blobstore *, cas_blobstore_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(cas_blob_writer *, cas_blob_writer_abort);
