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

#include "digestmap.h"
#include "dircache.h"
#include "layout.h"
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

/* Stores that fetch over a network (cas_blobstore_can_prefetch) are read
 * ahead by fetching, in batches, by threads of their own so that many round
 * trips overlap: a read of a file that is not cached yet fetches the next
 * files of its directory; a reader that goes on in order is followed further,
 * past the end of the directory, in the order readers go (entries by name,
 * each subdirectory's before the next entry, then the parent's later
 * entries: find, tar, cp -r), a window of files and bytes that grows while
 * the reader reads most of it. Directories are local (a cache holds each
 * root's closure), so walking ahead costs no request; only a read of what
 * is not cached starts it, never a lookup nor a read of what is cached.
 * The threads above then only take blobs that are cached already. */
#define CAS_PREFETCH_FILES 1024
#define CAS_PREFETCH_FILES_MIN 32
#define CAS_PREFETCH_BYTES (64u * 1024 * 1024)
#define CAS_PREFETCH_THREADS 4
#define CAS_PREFETCH_BATCH 16
#define CAS_PREFETCH_QUEUE 4096

typedef struct cas_readahead {
        cas_blobstore *blobs;
        cas_inodes *inodes;
        cas_dircache *dirs;
        cas_readpath *rp;
        cas_parked *parked;
        unsigned window; /* files read ahead of a reader (0: none) */
        bool verify, direct_io;
        pthread_mutex_t lock; /* protects ring, head, n, stop, pf_ring, pf_head, pf_n */
        pthread_cond_t cond;
        cas_readahead_item ring[CAS_READAHEAD_QUEUE];
        unsigned head, n;
        bool stop;
        pthread_t threads[CAS_READAHEAD_THREADS];
        unsigned n_threads;

        /* reading further ahead (deep) */
        bool deep;
        cas_metastore *meta;
        pthread_mutex_t parents_lock; /* protects parents, parent_at */
        cas_digest_map parents;       /* directory digest -> index into parent_at */
        struct cas_readahead_parent *parent_at;
        size_t n_parents, alloc_parents;
        pthread_mutex_t walk_lock; /* one walk at a time; protects seen, deep_files, deep_hits */
        cas_digest_map seen;       /* files walked over or read (value: what for, readahead.c) */
        unsigned deep_files;       /* the window's files now */
        unsigned deep_hits;        /* reads in the window since the last walk */
        pthread_cond_t pf_cond;    /* the queue below, under lock */
        cas_chunk_ref pf_ring[CAS_PREFETCH_QUEUE];
        unsigned pf_head, pf_n;
        pthread_t pf_threads[CAS_PREFETCH_THREADS];
        unsigned n_pf_threads;
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
/* The kernel found c as entry index of directory p: where to read ahead
 * from (a file), the way back up for reading further ahead (a directory). */
void cas_readahead_seen(cas_readahead *ra, cas_inode *c, const cas_inode *p, uint32_t index);
