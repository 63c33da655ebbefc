/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading ahead: the first read of a file queues the next files of the
 * directory it was found in (a window of them), so that the disk works on
 * them while the reader is still on this one. A small blob (up to
 * CAS_PARKED_MAX) is read whole from the disk straight into memory of the
 * pool, and checked there, for the request that will read it (parked.h); a
 * larger one is read into the page cache. A large file looked up by name
 * (with verification on) has its outboard loaded and checked by the same
 * threads, so that its first read does not wait for it. The work is done by
 * CAS_READAHEAD_THREADS threads of its own (opening and reading a blob wait
 * for the disk, so they wait in parallel). */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dircache.h"
#include "inodes.h"
#include "parked.h"
#include "readpath.h"

#define CAS_READAHEAD_THREADS 16
/* How many blobs may wait to be read ahead. */
#define CAS_READAHEAD_QUEUE 256

typedef struct cas_readahead_item {
        cas_digest digest;
        uint64_t size; /* of the blob */
        uint64_t ino;  /* not 0: load and check the outboard of this large file instead */
} cas_readahead_item;

typedef struct cas_readahead {
        cas_blobstore *blobs;
        cas_inodes *inodes;
        cas_dircache *dirs;
        cas_readpath *rp;
        cas_parked *parked;
        unsigned window; /* files read ahead of a reader (0: none) */
        bool verify, direct_io;
        pthread_mutex_t lock; /* protects ring, head, n, stop */
        pthread_cond_t cond;
        cas_readahead_item ring[CAS_READAHEAD_QUEUE];
        unsigned head, n;
        bool stop;
        pthread_t threads[CAS_READAHEAD_THREADS];
        unsigned n_threads;
} cas_readahead;

void cas_readahead_init(cas_readahead *ra, cas_blobstore *blobs, cas_inodes *inodes, cas_dircache *dirs,
                        cas_readpath *rp, cas_parked *parked, const cas_engine_options *opts);
/* Starts the threads (none when the window is 0); fewer when some cannot
 * be started, which only means less reading ahead. */
void cas_readahead_start(cas_readahead *ra);
/* Stops and joins the threads. */
void cas_readahead_stop(cas_readahead *ra);
void cas_readahead_done(cas_readahead *ra);

/* A reader starts on file i: queue the files after it in its directory. */
void cas_readahead_after(cas_readahead *ra, cas_inode *i);
/* A file was looked up by name: load its outboard when it is large. */
void cas_readahead_outboard(cas_readahead *ra, const cas_node *n, cas_inode *i);
/* The kernel found file c as entry index of directory p: where to read ahead from. */
void cas_readahead_seen(cas_inode *c, const cas_inode *p, uint32_t index);
