/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Content-defined chunking for the object-store layout (docs/FORMAT.md):
 * FastCDC with normalized chunking, as tvix writes remote blobs (minimum
 * 128 KiB, average 256 KiB, maximum 512 KiB). A boundary depends only on the
 * bytes before it within the current chunk, so an edit in the middle of a
 * large blob changes the chunks around it and leaves the others as they were:
 * they are stored once and not sent again. */

#include <stddef.h>
#include <stdint.h>

#define CAS_CHUNK_MIN (128u * 1024)
#define CAS_CHUNK_AVG (256u * 1024)
#define CAS_CHUNK_MAX (512u * 1024)

/* The length of the chunk that starts at buf, given the n bytes from there
 * to the end of the blob: between CAS_CHUNK_MIN and CAS_CHUNK_MAX, or n when
 * fewer bytes remain than a chunk needs. A caller walking a blob passes what
 * is left after each chunk. 0 only for n == 0. */
size_t cas_chunker_next(const uint8_t *buf, size_t n);
