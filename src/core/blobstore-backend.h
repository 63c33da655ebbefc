/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a blob store backend implements (blobstore.c has the local and memory
 * ones; blobstore-remote.c the object-store one). Not for users of the
 * interface, which is blobstore.h. */

#include <stdbool.h>

#include "blobstore.h"

typedef struct blobstore_ops {
        int (*stat)(cas_blobstore *bs, const cas_digest *d, uint64_t *ret_size);
        /* Optional: whether the blob is there, cheaper than stat (remote:
         * from one listing of the store); else stat. */
        int (*has)(cas_blobstore *bs, const cas_digest *d);
        int (*open)(cas_blobstore *bs, const cas_digest *d, cas_blob_reader **ret);
        /* Optional: an open that knows the blob's size (remote backends bound
         * and check what they fetch with it); else open, then the size compared. */
        int (*open_sized)(cas_blobstore *bs, const cas_digest *d, uint64_t size,
                          cas_blob_reader **ret);
        /* Optional (cache.c): fetches the blobs of refs[0..n) that are not
         * there yet into the store, many at once, and returns when they are
         * in (or failed: a failure is the open's to report). */
        int (*prefetch)(cas_blobstore *bs, const cas_chunk_ref *refs, size_t n);
        /* Optional (cache.c): 1 when the blob is there without a fetch, 0
         * when not; else always 1. */
        int (*cached)(cas_blobstore *bs, const cas_digest *d);
        /* Optional: the chunks a blob is stored as when it is stored as
         * several (remote: its index), *ret_n = 0 otherwise; else none. */
        int (*parts)(cas_blobstore *bs, const cas_digest *d, uint64_t size, cas_chunk_ref **ret,
                     size_t *ret_n);
        /* Stores bytes held in memory (digest known). */
        int (*put_buffer)(cas_blobstore *bs, const cas_digest *d, const void *buf, size_t n,
                          int *ret_existed);
        /* Links a finished temporary file in under its digest. */
        int (*put_file)(cas_blobstore *bs, const cas_digest *d, int fd, uint64_t size,
                        int *ret_existed);
        int (*sync)(cas_blobstore *bs);
        int (*foreach)(cas_blobstore *bs, cas_blob_cb cb, void *userdata);
        int (*remove)(cas_blobstore *bs, const cas_digest *d);
        /* Stores a blob's outboard (the blob is there already); keeps one already there. */
        int (*put_outboard)(cas_blobstore *bs, const cas_digest *d, const uint8_t *ob, size_t n);
        /* Reads a blob's outboard of exactly n bytes: -ENOENT without one, -EBADMSG when its size
         * is off. */
        int (*get_outboard)(cas_blobstore *bs, const cas_digest *d, uint8_t *ob, size_t n);
        /* 1 when the blob has an outboard of n bytes, 0 when not (none, or of another length). */
        int (*has_outboard)(cas_blobstore *bs, const cas_digest *d, size_t n);
        void (*free)(cas_blobstore *bs);
} blobstore_ops;

struct cas_blobstore {
        const blobstore_ops *ops;
        int dir_fd; /* local: the blobs/ folder; -1 for memory */
};

struct cas_blob_reader {
        int fd; /* local */
        _Atomic int
            direct_fd; /* local: the same file opened for direct I/O; -2 not yet tried, -1 none */
        const uint8_t *mem; /* memory */
        uint64_t size;
        /* Optional (cache.c: a blob whose chunks are fetched as reads need
         * them): reads go through pread, which hands out checked bytes
         * only; such a reader has no file descriptor (fd is -1). release
         * frees priv with the reader. */
        ssize_t (*pread)(cas_blob_reader *rd, void *buf, size_t n, uint64_t off);
        void (*release)(cas_blob_reader *rd);
        void *priv;
};

/* A reader over a file descriptor holding the blob's (checked) bytes; takes
 * ownership of fd on success. */
int cas_blob_reader_new_fd(int fd, uint64_t size, cas_blob_reader **ret);
