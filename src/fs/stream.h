/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading ahead of a reader moving forward through a large blob. The kernel
 * asks for a large file a request at a time (1 MiB each), and each waited
 * for its direct read and then for its hashing: the disk stood idle while
 * the daemon hashed and copied the reply, and the reverse. A stream follows
 * such a reader: the chunks after the one it asks for are read from the
 * disk straight into buffers of their own (O_DIRECT: nothing in the blob's
 * page cache), several at once, and each is checked against the outboard
 * there, by threads of the stream's own, so that the request finds its
 * bytes read and checked. A chunk that fails to read or to match its
 * digest is never served: the request reads it itself, as without a
 * stream, and reports it.
 *
 * Only requests of STREAM_MIN bytes or more start or move a stream: the
 * kernel sends those when it reads ahead of a sequential reader, a random
 * reader gets exactly the pages it asks for and no stream. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blobstore.h"
#include "inodes.h"
#include "request.h"

/* Bytes of one chunk: what one direct read brings and one request takes. */
#define CAS_STREAM_CHUNK (1024 * 1024)
/* Chunks read ahead of a reader: enough for the disk's latency and a few
 * reads in flight; a stream holds a few more (CAS_STREAM_SLACK), for
 * requests that come out of order. */
#define CAS_STREAM_WINDOW 8
#define CAS_STREAM_SLACK 4
#define CAS_STREAM_DEPTH (CAS_STREAM_WINDOW + CAS_STREAM_SLACK)
/* Readers followed at once (the oldest makes room) and threads reading. */
#define CAS_STREAM_SLOTS 4
#define CAS_STREAM_THREADS 4
/* The smallest request that starts or moves a stream. */
#define CAS_STREAM_MIN (256 * 1024)
/* The smallest file followed: a smaller one fits in the kernel's own
 * read-ahead window (4 MiB by default, --read-ahead), which asks for all of
 * it at once, and a stream would only cost its blob's opening. */
#define CAS_STREAM_MIN_FILE (4 * 1024 * 1024)

typedef enum cas_chunk_state {
        CAS_CHUNK_FREE,
        CAS_CHUNK_QUEUED,
        CAS_CHUNK_LOADING,
        CAS_CHUNK_READY,  /* read and checked */
        CAS_CHUNK_TAKEN,  /* being copied into a reply */
        CAS_CHUNK_FAILED, /* the request reads it itself (and reports it) */
} cas_chunk_state;

typedef struct cas_stream_chunk {
        uint64_t index; /* offset / CAS_STREAM_CHUNK */
        cas_chunk_state state;
        uint8_t *buf; /* CAS_STREAM_CHUNK bytes of its stream's memory */
} cas_stream_chunk;

typedef struct cas_stream {
        cas_inode *inode; /* a reference held: keeps its outboard */
        cas_blob_reader *reader;
        const uint8_t *outboard; /* NULL: not verifying */
        uint64_t next;           /* the first chunk not yet queued */
        uint64_t age;
        uint64_t age_seen; /* its age at the last cas_streams_expire */
        unsigned busy; /* chunks loading or TAKEN: the slot is not reused meanwhile */
        uint8_t *memory; /* the chunks' buffers, one region in huge pages (allocated on first use) */
        cas_stream_chunk chunks[CAS_STREAM_DEPTH];
} cas_stream;

typedef struct cas_streams {
        cas_blobstore *blobs;
        cas_inodes *inodes;
        bool direct_io;
        pthread_mutex_t lock; /* protects everything below and the streams' contents */
        pthread_cond_t work;  /* a chunk is queued, or stop */
        pthread_cond_t done;  /* a chunk finished loading */
        cas_stream slots[CAS_STREAM_SLOTS];
        uint64_t clock;
        bool stop;
        pthread_t threads[CAS_STREAM_THREADS];
        unsigned n_threads;
} cas_streams;

void cas_streams_init(cas_streams *s, cas_blobstore *blobs, cas_inodes *inodes, bool direct_io);
/* Starts the threads; none started means no reading ahead. */
void cas_streams_start(cas_streams *s);
/* Stops and joins the threads and lets go of every stream (and the inode
 * references they hold). */
void cas_streams_stop(cas_streams *s);
void cas_streams_done(cas_streams *s);
/* Lets go of the streams unused since the last call (their inode, its
 * outboard and their buffers): called once a second, it keeps nothing of a
 * reader gone for a second or two. */
void cas_streams_expire(cas_streams *s);

/* Answers a READ of size bytes at off of large file i (ob: its
 * checked outboard, NULL when not verifying) from chunks
 * read ahead, and moves the stream of i forward (starting one when the
 * request is large enough). True when the reply holds the bytes, checked;
 * false when the caller reads them itself. */
bool cas_streams_read(cas_streams *s, cas_request *rq, cas_inode *i, const uint8_t *ob, uint64_t off, size_t size);
