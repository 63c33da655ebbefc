/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The object-store layout of a remote castore (docs/FORMAT.md, "Remote
 * stores"; tvix-castore's layout): object keys, and the codecs of the objects
 * kept under them. Pure functions, no I/O: whatever comes in is untrusted,
 * and every decoder checks sizes and digests before it hands out a byte. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "castore.h"
#include "digest.h"

/* "chunks/b3/HHHH/<64 hex>" and its kin, NUL included. */
#define CAS_LAYOUT_KEY_MAX 96

#define CAS_LAYOUT_CHUNKS "chunks/b3/"
#define CAS_LAYOUT_BLOBS  "blobs/b3/"
#define CAS_LAYOUT_DIRS   "dirs/b3/"
#define CAS_LAYOUT_ROOTS  "roots/"
/* The list of roots for readers that cannot list (http), rewritten by every
 * writer after each change of roots/. */
#define CAS_LAYOUT_ROOTS_INDEX "roots.index"

/* Limits on what a reader accepts (an object over its limit is corrupt). */
#define CAS_LAYOUT_CHUNK_STORED_MAX  (1u << 30)  /* compressed chunk, when its size is known */
#define CAS_LAYOUT_CHUNK_UNKNOWN_MAX (64u << 20) /* a chunk read without a known size */
#define CAS_LAYOUT_BLOB_INDEX_MAX    (16u << 20)
#define CAS_LAYOUT_DIRS_STORED_MAX   (256u << 20)
#define CAS_LAYOUT_DIRS_MAX          (1u << 30) /* a closure, uncompressed */
#define CAS_LAYOUT_ROOT_MAX          (64u << 10)
#define CAS_LAYOUT_ROOTS_INDEX_MAX   (64u << 20)

/* prefix: one of the CAS_LAYOUT_{CHUNKS,BLOBS,DIRS} above. */
void cas_layout_key(const char *prefix, const cas_digest *d, char key[static CAS_LAYOUT_KEY_MAX]);
/* The digest a listed key names: -EINVAL for a key that is not
 * prefix + "HHHH/<hex>" with HHHH matching (stray objects are ignored). */
int cas_layout_parse_key(const char *key, const char *prefix, cas_digest *ret);
/* "roots/<name>", malloc'ed. */
int cas_layout_root_key(const char *name, char **ret);

/* Why a decoder refused something, for messages ("chunk size 12 != 13"). */
typedef struct cas_layout_error {
        char reason[160];
} cas_layout_error;

/* ---- chunks: zstd of the bytes, named by BLAKE3 of the bytes ---- */

int cas_layout_chunk_encode(const void *buf, size_t n, void **ret, size_t *ret_len);
/* Decompresses a stored chunk and checks it against d. size: the chunk's
 * length as its reference states it (decompression stops there: more is
 * refused), or UINT64_MAX when unknown (then at most
 * CAS_LAYOUT_CHUNK_UNKNOWN_MAX). -EBADMSG for anything else than exactly
 * the bytes of d. *ret is malloc'ed. */
int cas_layout_chunk_decode(const void *z, size_t zlen, const cas_digest *d, uint64_t size,
                            void **ret, size_t *ret_len, cas_layout_error *ret_err);

/* ---- blob indexes: StatBlobResponse { repeated ChunkMeta chunks = 2 } ---- */

typedef struct cas_chunk_ref {
        cas_digest digest;
        uint64_t size;
} cas_chunk_ref;

int cas_layout_blob_index_encode(const cas_chunk_ref *chunks, size_t n, uint8_t **ret,
                                 size_t *ret_len);
/* Decodes and checks an index: at least one chunk, 32-byte digests, no empty
 * chunk, sizes adding up (without overflow) to size (UINT64_MAX: unknown,
 * then *ret_size tells). *ret is malloc'ed. */
int cas_layout_blob_index_decode(const void *buf, size_t len, uint64_t size, cas_chunk_ref **ret,
                                 size_t *ret_n, uint64_t *ret_size, cas_layout_error *ret_err);

/* ---- directory closures: zstd of frames (u32 big-endian length, bytes) ---- */

/* Looks a directory up for the encoder: its canonical bytes (borrowed until
 * the next call), -ENOENT when unknown. */
typedef int (*cas_layout_dir_lookup)(const cas_digest *d, const void **ret, size_t *ret_len,
                                     void *userdata);
/* Encodes the closure of top: top first, then every directory below it once,
 * each after its parent (breadth first). *ret is malloc'ed. -ENOENT when a
 * directory of the closure is unknown to lookup. */
int cas_layout_dirs_encode(const cas_digest *top, cas_layout_dir_lookup lookup, void *userdata,
                           void **ret, size_t *ret_len);

/* Gets each accepted directory: its digest and canonical bytes (valid during
 * the call). A non-zero return stops the decoding and is returned. */
typedef int (*cas_layout_dir_cb)(const cas_digest *d, const void *buf, size_t len, void *userdata);
/* Decodes a stored closure of top. A frame is accepted only when its digest
 * is top's (the first frame) or one named by a frame accepted before it, and
 * not accepted already; it must decode canonically (SPEC.md §2). The closure
 * must be complete (every directory named is there) and every
 * DirectoryNode's size must be its child's. All of it is checked before cb
 * sees anything: -EBADMSG and nothing delivered otherwise. */
int cas_layout_dirs_decode(const void *z, size_t zlen, const cas_digest *top, cas_layout_dir_cb cb,
                           void *userdata, cas_layout_error *ret_err);

/* ---- the roots index: frames (u32 big-endian length, Node bytes) ---- */

int cas_layout_roots_index_encode(uint8_t *const *nodes, const size_t *lens, size_t n,
                                  uint8_t **ret, size_t *ret_len);
/* Gets each frame's bytes (unchecked: the caller decodes the Node). -EBADMSG
 * for a truncated index. */
int cas_layout_roots_index_decode(const void *buf, size_t len,
                                  int (*cb)(const void *node, size_t len, void *userdata),
                                  void *userdata);
