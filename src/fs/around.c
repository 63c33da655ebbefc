/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <linux/fuse.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "around.h"
#include "macro.h"
#include "outboard.h"
#include "threads.h"
#include "verify.h"

void cas_around_init(cas_around *a, cas_inodes *inodes, const cas_engine_transport *transport)
{
        *a = (cas_around){.inodes = inodes, .transport = transport};
        pthread_mutex_init(&a->lock, NULL);
        pthread_cond_init(&a->work, NULL);
}

void cas_around_done(cas_around *a)
{
        cas_around_stop(a);
        free(TAKE_PTR(a->memory));
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->work);
}

/* Every group of the block matches the outboard (or nothing is checked). */
static bool block_good(const cas_around_block *b, const uint8_t *buf)
{
        uint64_t size = b->inode->size, end = b->start + b->len;

        if (!b->ob)
                return true;
        for (uint64_t g = b->start >> CAS_OUTBOARD_GROUP_SHIFT; (g << CAS_OUTBOARD_GROUP_SHIFT) < end; g++) {
                uint64_t at = g << CAS_OUTBOARD_GROUP_SHIFT;
                if (!cas_outboard_check_group(b->ob, size, g, buf + (at - b->start),
                                              (size_t)MIN(CAS_OUTBOARD_GROUP, size - at)))
                        return false;
        }
        return true;
}

/* Hands the checked block to the kernel's page cache of the file. It waits
 * for pages a READ still holds (the one that read the block, answered by
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

        pthread_mutex_lock(&a->lock);
        for (;;) {
                unsigned slot = CAS_AROUND_BLOCKS;
                while (!a->stop && slot == CAS_AROUND_BLOCKS) {
                        for (slot = 0; slot < CAS_AROUND_BLOCKS && !a->blocks[slot].queued; slot++)
                                ;
                        if (slot == CAS_AROUND_BLOCKS)
                                pthread_cond_wait(&a->work, &a->lock);
                }
                if (a->stop)
                        break;
                cas_around_block b = a->blocks[slot];
                uint8_t *buf = a->memory + (size_t)slot * CAS_AROUND;
                pthread_mutex_unlock(&a->lock);

                if (block_good(&b, buf))
                        store(a, &b, buf);
                cas_inode_unref(a->inodes, b.inode);

                pthread_mutex_lock(&a->lock);
                a->blocks[slot] = (cas_around_block){0};
                a->busy[slot] = false;
        }
        pthread_mutex_unlock(&a->lock);
        return NULL;
}

void cas_around_start(cas_around *a)
{
        if (!a->transport->notify || a->n_threads > 0)
                return;
        if (!a->memory && !(a->memory = cas_direct_buffer((size_t)CAS_AROUND_BLOCKS * CAS_AROUND)))
                return; /* no memory: reads read their own groups */
        a->stop = false;
        cas_threads_start(a->threads, &a->n_threads, ELEMENTSOF(a->threads), worker, a);
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
                if (a->blocks[slot].queued)
                        cas_inode_unref(a->inodes, a->blocks[slot].inode);
                a->blocks[slot] = (cas_around_block){0};
                a->busy[slot] = false;
        }
}

bool cas_around_wanted(cas_around *a, const cas_inode *i, uint64_t off, size_t size)
{
        uint64_t start = off / CAS_AROUND * CAS_AROUND;
        bool follows;
        unsigned k;

        if (a->n_threads == 0)
                return false;
        pthread_mutex_lock(&a->lock);
        for (k = 0; k < CAS_AROUND_HISTORY && a->history[k].inode != i; k++)
                ;
        if (k == CAS_AROUND_HISTORY) { /* new here: the oldest makes room */
                k = a->history_next++ % CAS_AROUND_HISTORY;
                a->history[k].inode = i;
                follows = off == 0;
        } else
                follows = off == a->history[k].end;
        a->history[k].end = off + size;
        pthread_mutex_unlock(&a->lock);
        return !follows && size < CAS_AROUND && i->size > CAS_AROUND && off + size <= start + CAS_AROUND;
}

uint8_t *cas_around_take(cas_around *a, unsigned *ret_slot)
{
        uint8_t *buf = NULL;

        pthread_mutex_lock(&a->lock);
        for (unsigned slot = 0; slot < CAS_AROUND_BLOCKS && !buf; slot++)
                if (!a->busy[slot]) {
                        a->busy[slot] = true;
                        *ret_slot = slot;
                        buf = a->memory + (size_t)slot * CAS_AROUND;
                }
        pthread_mutex_unlock(&a->lock);
        return buf;
}

void cas_around_give_back(cas_around *a, unsigned slot)
{
        pthread_mutex_lock(&a->lock);
        a->busy[slot] = false;
        pthread_mutex_unlock(&a->lock);
}

void cas_around_queue(cas_around *a, unsigned slot, cas_inode *i, const uint8_t *ob, uint64_t start, size_t len)
{
        cas_inode *ref = cas_inodes_get(a->inodes, i->ino);

        if (ref != i) { /* gone from the table meanwhile: nothing to store it for */
                if (ref)
                        cas_inode_unref(a->inodes, ref);
                cas_around_give_back(a, slot);
                return;
        }
        pthread_mutex_lock(&a->lock);
        a->blocks[slot] = (cas_around_block){.inode = ref, .ob = ob, .start = start, .len = len, .queued = true};
        pthread_cond_signal(&a->work);
        pthread_mutex_unlock(&a->lock);
}
