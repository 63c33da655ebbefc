/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading around a small read of a large blob. A program reading a large
 * file here and there (a database, an archive's index, a model's tensors,
 * or anything with POSIX_FADV_RANDOM) gets no read-ahead from the kernel:
 * each page it touches is a READ of its own, a disk request and a check
 * each. Such a READ reads the whole block of CAS_AROUND bytes around it in
 * one direct read (on this kind of disk barely slower than the group
 * alone), is answered once its own groups are checked, and hands the block
 * to a thread that checks the rest against the outboard and gives it to the
 * kernel's page cache of the file (FUSE_NOTIFY_STORE): the reads that come
 * near it find their pages there. A block with a group that does not match
 * is not stored: its pages are read, checked and refused one READ at a time.
 * Nothing lands in the blob's own page cache: the bytes are cached once,
 * where the file is read from.
 *
 * Only for transports that notify the kernel (/dev/fuse: not virtiofs). */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "inodes.h"

/* Bytes of a block: what a miss reads and stores. */
#define CAS_AROUND (256 * 1024)
/* Blocks being checked or stored at once; a READ that finds none free
 * reads only its own groups. */
#define CAS_AROUND_BLOCKS 8
/* Files whose last READ is remembered: a READ that starts where the last
 * one ended is a reader moving forward, whose window the kernel is still
 * growing (its first READs are small too): not read around. */
#define CAS_AROUND_HISTORY 16

typedef struct cas_around_block {
        cas_inode *inode;  /* held while queued (NULL: free) */
        const uint8_t *ob; /* its outboard (kept by the inode), NULL: not verifying */
        uint64_t start;
        size_t len;
        bool queued;
} cas_around_block;

typedef struct cas_around {
        cas_inodes *inodes;
        const cas_engine_transport *transport;
        pthread_mutex_t lock;
        pthread_cond_t work;
        bool stop;
        uint8_t *memory; /* CAS_AROUND_BLOCKS buffers of CAS_AROUND bytes, one region */
        cas_around_block blocks[CAS_AROUND_BLOCKS];
        bool busy[CAS_AROUND_BLOCKS]; /* taken by a READ or queued */
        struct {
                const cas_inode *inode; /* only compared: it may be gone */
                uint64_t end;
        } history[CAS_AROUND_HISTORY];
        unsigned history_next;
        pthread_t threads[1];
        unsigned n_threads;
} cas_around;

void cas_around_init(cas_around *a, cas_inodes *inodes, const cas_engine_transport *transport);
void cas_around_start(cas_around *a);
void cas_around_stop(cas_around *a);
void cas_around_done(cas_around *a);

/* Called for every READ of a large file: true when this one, of size bytes
 * at off of file i, should read around: the transport can store, the
 * thread runs, the read is small, within one block, and does not follow
 * the file's last READ (nor start it at 0). */
bool cas_around_wanted(cas_around *a, const cas_inode *i, uint64_t off, size_t size);

/* A free block's buffer (aligned for direct reads, CAS_AROUND bytes) and its
 * slot number, or NULL when every block is busy. */
uint8_t *cas_around_take(cas_around *a, unsigned *ret_slot);

/* Gives the slot back unused. */
void cas_around_give_back(cas_around *a, unsigned slot);

/* Queues the slot's buffer, holding the bytes [start, start + len) of file
 * i, to be checked against ob (NULL: not verifying) and stored; takes a
 * reference on i. */
void cas_around_queue(cas_around *a, unsigned slot, cas_inode *i, const uint8_t *ob, uint64_t start, size_t len);
