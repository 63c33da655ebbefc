/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <linux/fuse.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "around.h"
#include "macro.h"
#include "outboard.h"
#include "threads.h"
#include "verify.h"

void cas_around_init(cas_around *a, cas_blobstore *blobs, cas_inodes *inodes, const cas_engine_transport *transport,
                     bool direct_io)
{
        *a = (cas_around){.blobs = blobs, .inodes = inodes, .transport = transport, .direct_io = direct_io};
        pthread_mutex_init(&a->lock, NULL);
        pthread_cond_init(&a->work, NULL);
}

void cas_around_done(cas_around *a)
{
        cas_around_stop(a);
        free(TAKE_PTR(a->memory));
        for (unsigned k = 0; k < CAS_AROUND_FILES; k++)
                free(TAKE_PTR(a->files[k].touched));
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->work);
}

/* Reads the block into buf: true when it was read whole and every group
 * matches the outboard (or nothing is checked). rd: the thread's reader,
 * kept for the next block of the same blob. */
static bool load(cas_around *a, const cas_around_block *b, uint8_t *buf, cas_blob_reader **rd, cas_digest *rd_digest)
{
        uint64_t size = b->inode->size;

        if (!*rd || !cas_digest_eq(rd_digest, &b->inode->digest)) {
                *rd = cas_blob_reader_free(*rd);
                if (cas_blobstore_open(a->blobs, &b->inode->digest, rd) < 0)
                        return false;
                *rd_digest = b->inode->digest;
        }
        if (cas_blob_reader_size(*rd) != size)
                return false;
        uint64_t bad;
        return cas_verify_read_groups(*rd, b->ob, size, b->start, b->len, buf, CAS_AROUND, a->direct_io, &bad) == 0;
}

/* Hands the checked block to the kernel's page cache of the file. It waits
 * for pages a READ still holds (the one that queued the block, answered by
 * now or soon): never on a thread that answers READs. */
static void store(cas_around *a, const cas_around_block *b, uint8_t *buf)
{
        struct fuse_notify_store_out o = {.nodeid = b->inode->ino, .offset = b->start, .size = (uint32_t)b->len};
        struct fuse_out_header h = {.len = (uint32_t)(sizeof(h) + sizeof(o) + b->len), .error = FUSE_NOTIFY_STORE};
        struct iovec iov[] = {{&h, sizeof(h)}, {&o, sizeof(o)}, {buf, b->len}};

        /* the kernel may have forgotten the file meanwhile (ENOENT): nothing to store */
        (void)a->transport->notify(a->transport->userdata, iov, ELEMENTSOF(iov));
}

static void *worker(void *userdata)
{
        cas_around *a = userdata;
        cas_blob_reader *rd = NULL;
        cas_digest rd_digest;

        pthread_mutex_lock(&a->lock);
        for (;;) {
                unsigned slot = CAS_AROUND_BLOCKS;
                while (!a->stop && slot == CAS_AROUND_BLOCKS) {
                        for (slot = 0; slot < CAS_AROUND_BLOCKS && a->blocks[slot].state != CAS_AROUND_QUEUED; slot++)
                                ;
                        if (slot == CAS_AROUND_BLOCKS)
                                pthread_cond_wait(&a->work, &a->lock);
                }
                if (a->stop)
                        break;
                a->blocks[slot].state = CAS_AROUND_LOADING;
                cas_around_block b = a->blocks[slot];
                uint8_t *buf = a->memory + (size_t)slot * CAS_AROUND;
                pthread_mutex_unlock(&a->lock);

                if (load(a, &b, buf, &rd, &rd_digest))
                        store(a, &b, buf);
                cas_inode_unref(a->inodes, b.inode);

                pthread_mutex_lock(&a->lock);
                a->blocks[slot] = (cas_around_block){0};
        }
        pthread_mutex_unlock(&a->lock);
        cas_blob_reader_free(rd);
        return NULL;
}

void cas_around_start(cas_around *a)
{
        if (!a->transport->notify || a->n_threads > 0)
                return;
        if (!a->memory && !(a->memory = cas_direct_buffer((size_t)CAS_AROUND_BLOCKS * CAS_AROUND)))
                return; /* no memory: no reading around */
        a->stop = false;
        cas_threads_start(a->threads, &a->n_threads, CAS_AROUND_THREADS, worker, a);
}

void cas_around_stop(cas_around *a)
{
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_broadcast(&a->work);
        pthread_mutex_unlock(&a->lock);
        cas_threads_join(a->threads, &a->n_threads);
        /* blocks still queued are dropped: the inodes they hold go back */
        for (unsigned slot = 0; slot < CAS_AROUND_BLOCKS; slot++) {
                if (a->blocks[slot].state != CAS_AROUND_FREE)
                        cas_inode_unref(a->inodes, a->blocks[slot].inode);
                a->blocks[slot] = (cas_around_block){0};
        }
}

/* Notes a small READ in block of file f: whether reading around pays. */
static bool note_small(cas_around_file *f, const cas_inode *i, uint64_t block)
{
        if (!f->touched) {
                uint64_t blocks = (i->size + CAS_AROUND - 1) / CAS_AROUND;
                f->bits = (uint32_t)MIN((uint64_t)CAS_AROUND_BITS, (blocks + 63) / 64 * 64);
                f->touched = calloc(f->bits / 64, sizeof(uint64_t));
                if (!f->touched)
                        return false;
        }
        uint32_t bit = (uint32_t)(block % f->bits);
        bool again = f->touched[bit / 64] & (UINT64_C(1) << (bit % 64));
        f->touched[bit / 64] |= UINT64_C(1) << (bit % 64);
        f->recent = f->recent << 1 | again;
        if (__builtin_popcount(f->recent) >= CAS_AROUND_RECENT / 2)
                f->on = true;
        return f->on;
}

bool cas_around_wanted(cas_around *a, const cas_inode *i, uint64_t off, size_t size)
{
        uint64_t start = off / CAS_AROUND * CAS_AROUND;
        bool follows, small, want = false;
        unsigned k;

        if (a->n_threads == 0)
                return false;
        pthread_mutex_lock(&a->lock);
        for (k = 0; k < CAS_AROUND_FILES && a->files[k].inode != i; k++)
                ;
        if (k == CAS_AROUND_FILES) { /* new here: the oldest makes room */
                k = a->files_next++ % CAS_AROUND_FILES;
                free(a->files[k].touched);
                a->files[k] = (cas_around_file){.inode = i};
                follows = off == 0;
        } else
                follows = off == a->files[k].end;
        a->files[k].end = off + size;
        small = !follows && size < CAS_AROUND && i->size > CAS_AROUND && off + size <= start + CAS_AROUND;
        if (small)
                want = note_small(&a->files[k], i, off / CAS_AROUND);
        pthread_mutex_unlock(&a->lock);
        return want;
}

void cas_around_queue(cas_around *a, cas_inode *i, const uint8_t *ob, uint64_t off)
{
        uint64_t start = off / CAS_AROUND * CAS_AROUND;
        cas_around_block *free_block = NULL;
        cas_inode *ref = cas_inodes_get(a->inodes, i->ino);

        if (ref != i) { /* gone from the table meanwhile: nothing to store it for */
                if (ref)
                        cas_inode_unref(a->inodes, ref);
                return;
        }
        bool pending = false;
        pthread_mutex_lock(&a->lock);
        for (unsigned slot = 0; slot < CAS_AROUND_BLOCKS; slot++) {
                cas_around_block *b = &a->blocks[slot];
                if (b->state == CAS_AROUND_FREE)
                        free_block = free_block ? free_block : b;
                else if (b->inode == i && b->start == start)
                        pending = true; /* on its way already */
        }
        if (free_block && !pending) {
                *free_block = (cas_around_block){.state = CAS_AROUND_QUEUED, .inode = TAKE_PTR(ref), .ob = ob,
                                                 .start = start, .len = (size_t)MIN((uint64_t)CAS_AROUND, i->size - start)};
                pthread_cond_signal(&a->work);
        }
        pthread_mutex_unlock(&a->lock);
        if (ref)
                cas_inode_unref(a->inodes, ref);
}
