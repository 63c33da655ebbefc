/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading around a small read of a large blob. A program reading a large
 * file here and there (a database, an archive's index, a model's tensors,
 * or anything under POSIX_FADV_RANDOM) gets no read-ahead from the kernel:
 * each page it touches is a READ of its own, a disk request and a check
 * each. Such a READ is answered as before (its groups read and checked) and
 * hands the block of CAS_AROUND bytes around it to threads of its own,
 * which read it in one direct read, check it against the outboard and give
 * it to the kernel's page cache of the file (FUSE_NOTIFY_STORE): the reads
 * that come near it later find their pages there. The READ does not wait
 * for any of it, so a reader that never comes back near its reads pays
 * only the disk's time. A block with a group that does not match is not
 * stored: its pages are read, checked and refused one READ at a time.
 * Nothing lands in the blob's own page cache: the bytes are cached once,
 * where the file is read from.
 *
 * Only for transports that notify the kernel (/dev/fuse: not virtiofs). */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blobstore.h"
#include "engine.h"
#include "inodes.h"

/* Bytes of a block: what is read and stored around a small read. */
#define CAS_AROUND (256 * 1024)
/* Blocks queued or being read at once: a READ that finds none free (a
 * reader faster than the disk) is not read around. */
#define CAS_AROUND_BLOCKS 8
#define CAS_AROUND_THREADS 2
/* Files followed at once (the oldest makes room). A READ that starts where
 * the file's last one ended is a reader moving forward, whose window the
 * kernel is still growing (its first READs are small too): not read around.
 * Nor is a file until reading around pays: until at least half of its last
 * 32 small READs fell in a block an earlier one fell in (so that a block read
 * around would have served them). A reader that never comes back near its
 * reads, for which every block read around would cost disk time and hashing
 * for nothing, is left alone. */
#define CAS_AROUND_FILES 16
#define CAS_AROUND_RECENT 32
/* Blocks a file's small READs fell in: one bit each, up to this many (a
 * larger file's blocks share bits). */
#define CAS_AROUND_BITS (UINT32_C(1) << 20)

typedef struct cas_around_file {
        const cas_inode *inode; /* only compared: it may be gone */
        uint64_t end;           /* where its last READ ended */
        uint64_t *touched;      /* blocks its small READs fell in (NULL until the first) */
        uint32_t bits;
        uint32_t recent; /* its last small READs, newest lowest: 1 for each that fell in a touched block */
        bool on;         /* reading around pays: it is read around from now on */
} cas_around_file;

typedef enum cas_around_state {
        CAS_AROUND_FREE,
        CAS_AROUND_QUEUED,
        CAS_AROUND_LOADING,
} cas_around_state;

typedef struct cas_around_block {
        cas_around_state state;
        cas_inode *inode;  /* held while queued or loading */
        const uint8_t *ob; /* its outboard (kept by the inode), NULL: not verifying */
        uint64_t start;
        size_t len;
} cas_around_block;

typedef struct cas_around {
        cas_blobstore *blobs;
        cas_inodes *inodes;
        const cas_engine_transport *transport;
        bool direct_io;
        pthread_mutex_t lock;
        pthread_cond_t work;
        bool stop;
        uint8_t *memory; /* CAS_AROUND_BLOCKS buffers of CAS_AROUND bytes, one region */
        cas_around_block blocks[CAS_AROUND_BLOCKS];
        cas_around_file files[CAS_AROUND_FILES];
        unsigned files_next;
        pthread_t threads[CAS_AROUND_THREADS];
        unsigned n_threads;
} cas_around;

void cas_around_init(cas_around *a, cas_blobstore *blobs, cas_inodes *inodes, const cas_engine_transport *transport,
                     bool direct_io);
void cas_around_start(cas_around *a);
void cas_around_stop(cas_around *a);
void cas_around_done(cas_around *a);

/* Called for every READ of a large file: true when this one, of size bytes
 * at off of file i, should be read around: the transport can store, the
 * threads run, the read is small, within one block, does not follow the
 * file's last READ (nor start it at 0), and reading around pays for the
 * file. */
bool cas_around_wanted(cas_around *a, const cas_inode *i, uint64_t off, size_t size);

/* Queues the block around off of file i, to be read, checked against ob
 * (NULL: not verifying) and stored, unless it is queued already or no block
 * is free. Takes its own reference on i. */
void cas_around_queue(cas_around *a, cas_inode *i, const uint8_t *ob, uint64_t off);
