/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Checked bytes: every way the store's bytes are checked against their
 * digest before anyone sees them, over a cas_blob_reader, so that the mount,
 * `cat` and fsck read through one path and it never matters where the reader
 * gets its bytes from (a local file, memory, a remote source).
 *
 * A small blob (no outboard, up to CAS_OUTBOARD_MIN bytes) is checked whole
 * before its first byte is used. A large one is checked through its outboard
 * (outboard.h): the outboard once against the digest, then each 16 KiB group
 * a read touches against its chaining value. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blobstore.h"
#include "digest.h"

/* Direct reads (O_DIRECT) need buffer, offset and length aligned to the
 * disk's block. */
#define CAS_DIRECT_ALIGN 4096
/* n bytes rounded up to whole blocks: the length of a direct read of them */
#define CAS_DIRECT_LEN(n) (((size_t)(n) + CAS_DIRECT_ALIGN - 1) & ~(size_t)(CAS_DIRECT_ALIGN - 1))

/* n bytes aligned for direct reads, in huge pages where the kernel gives
 * them (freed with free()). A direct read into ordinary pages is cut into
 * disk requests of at most max_segments pages (254 on virtio-blk: under
 * 1 MiB), one per scattered page; into a huge page it is one segment, so a
 * 1 MiB read is one request. NULL when out of memory. */
void *cas_direct_buffer(size_t n);

/* 0 when the n bytes at data hash to d, else -EBADMSG. */
int cas_verify_buffer(const void *data, size_t n, const cas_digest *d);

/* Hashes the blob behind rd whole (size bytes, read in pieces of bufsize
 * through buf) and compares it with d: 0, -EBADMSG when it does not match,
 * -EIO when the reader ends early, -errno. A large blob's outboard is
 * computed on the way: *ret_outboard (when not NULL) gets it on success, or
 * NULL for a blob too small to carry one. */
int cas_verify_blob(cas_blob_reader *rd, const cas_digest *d, uint64_t size, uint8_t *buf, size_t bufsize,
                    uint8_t **ret_outboard);

/* The outboard of the large blob d (size bytes), checked against the digest:
 * the stored one when it is intact, else (logged) the one hashing the blob
 * whole yields. -EBADMSG when the blob itself does not match its digest. buf
 * and bufsize as for cas_verify_blob. The caller frees *ret. */
int cas_verify_outboard(cas_blobstore *bs, cas_blob_reader *rd, const cas_digest *d, uint64_t size, uint8_t *buf,
                        size_t bufsize, uint8_t **ret);

/* The whole groups that cover n bytes at off of a blob of size bytes: where
 * they start (*ret_start) and how many bytes they span (returned). */
size_t cas_verify_span(uint64_t size, uint64_t off, size_t n, uint64_t *ret_start);

/* Reads span bytes at start (a span of cas_verify_span) of a large blob into
 * buf (room bytes there) with cas_verify_pread, and checks each group against
 * the outboard ob (checked already; NULL: no check). -EBADMSG with the first
 * group that did not match in *ret_bad_group; -EIO on a short read. */
int cas_verify_read_groups(cas_blob_reader *rd, const uint8_t *ob, uint64_t size, uint64_t start, size_t span,
                           uint8_t *buf, size_t room, bool direct, uint64_t *ret_bad_group);

/* Reads n bytes at off into buf (room bytes there), unchecked. With direct,
 * straight from the disk when buf and off are aligned for it (O_DIRECT): the
 * bytes are then copied once on their way, not also through the blob's own
 * page cache. The length is rounded up to the block, within room; a read past
 * the end of the blob stops there. Otherwise (or when the file system wants
 * another alignment) an ordinary read. */
ssize_t cas_verify_pread(cas_blob_reader *rd, uint8_t *buf, size_t room, size_t n, uint64_t off, bool direct);
