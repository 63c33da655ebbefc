/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The engine's read path: a READ's bytes, checked against their digest
 * (verify.h) before they go into the reply, once per inode where the check
 * is whole: a small blob is hashed whole before its first byte is served (the
 * verdict is kept in the inode's state), a large one's outboard is loaded and
 * checked once and each read checks the groups it touches. Also the blob's
 * file handed to the kernel for FUSE passthrough. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "around.h"
#include "engine.h"
#include "inodes.h"
#include "parked.h"
#include "request.h"
#include "stream.h"

typedef struct cas_readpath {
        cas_blobstore *blobs;
        bool verify;    /* check bytes before serving them */
        bool direct_io; /* large blobs: read with O_DIRECT when the reply buffer allows */
        cas_parked *parked;
        cas_streams *streams; /* reading ahead of sequential readers of large blobs (NULL: none) */
        cas_around *around;   /* reading around small reads of large blobs (NULL: none) */
        const cas_engine_transport *transport;
        bool passthrough;                 /* the kernel reads verified blobs' files itself (set at INIT) */
        _Atomic bool passthrough_refused; /* the kernel refused a backing file: stop trying */
        pthread_mutex_t verify_locks[16]; /* one thread hashes a blob while others wait for its verdict */
} cas_readpath;

void cas_readpath_init(cas_readpath *rp, cas_blobstore *blobs, const cas_engine_options *opts, cas_parked *parked,
                       const cas_engine_transport *transport);
void cas_readpath_done(cas_readpath *rp);

/* Answers a READ of size bytes at off (within the file) of file i: the
 * bytes, checked, or EIO (logged, naming the blob) when the blob is missing,
 * damaged or unreadable. */
int cas_readpath_read(cas_readpath *rp, cas_request *rq, cas_inode *i, uint64_t off, size_t size);

/* The checked outboard of the large file i, loaded once per inode (rd: the
 * blob's reader). */
int cas_readpath_outboard(cas_readpath *rp, cas_blob_reader *rd, cas_inode *i, const uint8_t **ret);

/* The backing file id to serve file i by passthrough, or 0 to serve it
 * through READ. */
int32_t cas_readpath_backing_id(cas_readpath *rp, cas_inode *i);

/* Frees the calling thread's cached blob reader and buffer. */
void cas_readpath_thread_done(void);
