/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "macro.h"
#include "outboard.h"
#include "stream.h"
#include "threads.h"
#include "verify.h"

void cas_streams_init(cas_streams *s, cas_blobstore *blobs, cas_inodes *inodes, bool direct_io)
{
        *s = (cas_streams){.blobs = blobs, .inodes = inodes, .direct_io = direct_io};
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->done, NULL);
}

void cas_streams_done(cas_streams *s)
{
        cas_streams_stop(s);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->done);
}

/* The slot's chunks forgotten (their buffers kept), its inode and reader
 * handed out to be let go of outside the lock. Under lock, with no chunk
 * loading. A request waiting for one of its queued chunks is woken: it
 * finds the stream gone and reads for itself. */
static void reset(cas_streams *s, cas_stream *st, cas_inode **ret_inode, cas_blob_reader **ret_reader)
{
        pthread_cond_broadcast(&s->done);
        *ret_inode = st->inode;
        *ret_reader = st->reader;
        st->inode = NULL;
        st->reader = NULL;
        st->outboard = NULL;
        for (size_t k = 0; k < CAS_STREAM_DEPTH; k++)
                st->chunks[k].state = CAS_CHUNK_FREE;
}

static void let_go(cas_streams *s, cas_inode *i, cas_blob_reader *rd)
{
        cas_blob_reader_free(rd);
        if (i)
                cas_inode_unref(s->inodes, i);
}

/* A queued chunk, the oldest stream's lowest first. Under lock. */
static cas_stream_chunk *next_queued(cas_streams *s, cas_stream **ret)
{
        cas_stream_chunk *best = NULL;
        for (size_t n = 0; n < CAS_STREAM_SLOTS; n++)
                for (size_t k = 0; k < CAS_STREAM_DEPTH; k++) {
                        cas_stream_chunk *c = &s->slots[n].chunks[k];
                        if (c->state == CAS_CHUNK_QUEUED && (!best || c->index < best->index ||
                                                             (c->index == best->index && s->slots[n].age < (*ret)->age))) {
                                best = c;
                                *ret = &s->slots[n];
                        }
                }
        return best;
}

/* Reads one chunk and checks it: READY only when every group matched. */
static void *worker(void *userdata)
{
        cas_streams *s = userdata;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                cas_stream *st = NULL;
                cas_stream_chunk *c = NULL;
                while (!s->stop && !(c = next_queued(s, &st)))
                        pthread_cond_wait(&s->work, &s->lock);
                if (s->stop)
                        break;
                c->state = CAS_CHUNK_LOADING;
                st->busy++;
                cas_blob_reader *rd = st->reader;
                const uint8_t *ob = st->outboard;
                uint64_t size = st->inode->size, start = c->index * CAS_STREAM_CHUNK;
                /* one region for the stream's chunks: two to a huge page, none wasted (no memory is
                 * touched here: pages come as the reads fill them) */
                if (!st->memory)
                        st->memory = cas_direct_buffer((size_t)CAS_STREAM_DEPTH * CAS_STREAM_CHUNK);
                uint8_t *buf = st->memory ? st->memory + (size_t)(c - st->chunks) * CAS_STREAM_CHUNK : NULL;
                pthread_mutex_unlock(&s->lock);

                int r = buf ? 0 : -ENOMEM;
                size_t span = (size_t)MIN((uint64_t)CAS_STREAM_CHUNK, size - start);
                uint64_t bad;
                if (r == 0) /* checked when verifying (ob) */
                        r = cas_verify_read_groups(rd, ob, size, start, span, buf, CAS_STREAM_CHUNK, s->direct_io,
                                                   &bad);

                pthread_mutex_lock(&s->lock);
                c->buf = buf;
                c->state = r == 0 ? CAS_CHUNK_READY : CAS_CHUNK_FAILED;
                st->busy--;
                pthread_cond_broadcast(&s->done);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

void cas_streams_start(cas_streams *s)
{
        s->stop = false;
        cas_threads_start(s->threads, &s->n_threads, CAS_STREAM_THREADS, worker, s);
}

void cas_streams_stop(cas_streams *s)
{
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
        cas_threads_join(s->threads, &s->n_threads);
        for (size_t n = 0; n < CAS_STREAM_SLOTS; n++) {
                cas_inode *i;
                cas_blob_reader *rd;
                reset(s, &s->slots[n], &i, &rd);
                let_go(s, i, rd);
                for (size_t k = 0; k < CAS_STREAM_DEPTH; k++)
                        s->slots[n].chunks[k].buf = NULL;
                free(TAKE_PTR(s->slots[n].memory));
        }
}

void cas_streams_expire(cas_streams *s)
{
        cas_inode *gone[CAS_STREAM_SLOTS] = {NULL};
        cas_blob_reader *readers[CAS_STREAM_SLOTS] = {NULL};
        uint8_t *memory[CAS_STREAM_SLOTS] = {NULL};

        pthread_mutex_lock(&s->lock);
        for (size_t n = 0; n < CAS_STREAM_SLOTS; n++) {
                cas_stream *st = &s->slots[n];
                if (!st->inode || st->busy > 0 || st->age != st->age_seen) {
                        st->age_seen = st->age;
                        continue;
                }
                for (size_t k = 0; k < CAS_STREAM_DEPTH; k++)
                        st->chunks[k].buf = NULL; /* none is loading or taken: busy == 0 */
                memory[n] = TAKE_PTR(st->memory);
                reset(s, st, &gone[n], &readers[n]);
        }
        pthread_mutex_unlock(&s->lock);
        for (size_t n = 0; n < CAS_STREAM_SLOTS; n++) {
                free(memory[n]);
                let_go(s, gone[n], readers[n]);
        }
}

/* The stream following file i, or NULL. Under lock. */
static cas_stream *find(cas_streams *s, const cas_inode *i)
{
        for (size_t n = 0; n < CAS_STREAM_SLOTS; n++)
                if (s->slots[n].inode == i)
                        return &s->slots[n];
        return NULL;
}

/* A slot for a new stream: a free one, else the oldest with nothing
 * loading; its previous inode and reader go to *ret_*. Under lock. */
static cas_stream *claim(cas_streams *s, cas_inode **ret_inode, cas_blob_reader **ret_reader)
{
        cas_stream *best = NULL;
        for (size_t n = 0; n < CAS_STREAM_SLOTS; n++) {
                cas_stream *st = &s->slots[n];
                if (!st->inode) {
                        best = st;
                        break;
                }
                if (st->busy == 0 && (!best || st->age < best->age))
                        best = st;
        }
        *ret_inode = NULL;
        *ret_reader = NULL;
        if (best)
                reset(s, best, ret_inode, ret_reader);
        return best;
}

/* The chunk of index in st, or NULL. Under lock. */
static cas_stream_chunk *chunk_of(cas_stream *st, uint64_t index)
{
        for (size_t k = 0; k < CAS_STREAM_DEPTH; k++)
                if (st->chunks[k].state != CAS_CHUNK_FREE && st->chunks[k].index == index)
                        return &st->chunks[k];
        return NULL;
}

/* Queues the chunks after a request ending at end, up to CAS_STREAM_WINDOW
 * of them, reusing those the reader has left behind (skipped, before first)
 * or far ahead (it went back). The kernel's requests come a little out of
 * order (several threads take them): a chunk just behind a request or just
 * past the window is kept for the request that will come for it. Under
 * lock. */
static void advance(cas_streams *s, cas_stream *st, uint64_t first, uint64_t end)
{
        uint64_t last = (st->inode->size + CAS_STREAM_CHUNK - 1) / CAS_STREAM_CHUNK;
        uint64_t from = (end + CAS_STREAM_CHUNK - 1) / CAS_STREAM_CHUNK;
        uint64_t to = MIN(last, from + CAS_STREAM_WINDOW);
        bool queued = false;

        for (size_t k = 0; k < CAS_STREAM_DEPTH; k++) {
                cas_stream_chunk *c = &st->chunks[k];
                if ((c->state == CAS_CHUNK_READY || c->state == CAS_CHUNK_FAILED || c->state == CAS_CHUNK_QUEUED) &&
                    (c->index + CAS_STREAM_SLACK < first || c->index >= to + CAS_STREAM_SLACK)) {
                        c->state = CAS_CHUNK_FREE;
                        pthread_cond_broadcast(&s->done); /* a request waiting for it reads for itself */
                }
        }
        for (uint64_t x = MAX(from, MIN(st->next, to)); x < to; x++) {
                if (chunk_of(st, x))
                        continue;
                cas_stream_chunk *c = NULL;
                for (size_t k = 0; k < CAS_STREAM_DEPTH && !c; k++)
                        if (st->chunks[k].state == CAS_CHUNK_FREE)
                                c = &st->chunks[k];
                if (!c)
                        break;
                c->index = x;
                c->state = CAS_CHUNK_QUEUED;
                queued = true;
        }
        st->next = MAX(st->next, to);
        if (queued)
                pthread_cond_broadcast(&s->work);
}

/* Chunks a request took, until its reply is out. */
typedef struct taken {
        cas_streams *s;
        cas_stream *st;
        uint64_t first, off;
        size_t size;
        uint64_t file_size;
} taken;
/* A thread answers a request at a time, and its transport is done with one
 * reply before it takes the next request. */
static _Thread_local taken this_thread_taken;

/* Gives back the chunks a request took: those read to their end are done
 * with, the others' rest is still to come. */
static void give_back(void *userdata)
{
        const taken *t = userdata;
        cas_streams *s = t->s;
        cas_stream *st = t->st;
        uint64_t end = t->off + t->size;

        pthread_mutex_lock(&s->lock);
        for (uint64_t x = t->first; x * CAS_STREAM_CHUNK < end; x++) {
                cas_stream_chunk *c = chunk_of(st, x);
                bool whole = end >= MIN(t->file_size, (x + 1) * CAS_STREAM_CHUNK);
                c->state = whole ? CAS_CHUNK_FREE : CAS_CHUNK_READY;
                st->busy--;
        }
        if (t->size >= CAS_STREAM_MIN)
                advance(s, st, t->first, end); /* the chunks just freed can be queued again */
        pthread_cond_broadcast(&s->done);
        pthread_mutex_unlock(&s->lock);
}

bool cas_streams_read(cas_streams *s, cas_request *rq, cas_inode *i, const uint8_t *ob, uint64_t off, size_t size)
{
        cas_inode *old_inode = NULL, *ref = NULL;
        cas_blob_reader *old_reader = NULL, *rd = NULL;
        uint64_t end = off + size, first = off / CAS_STREAM_CHUNK;
        bool served = false;

        if (s->n_threads == 0 || size == 0 || i->size <= CAS_STREAM_MIN_FILE)
                return false;
        pthread_mutex_lock(&s->lock);
        cas_stream *st = find(s, i);
        if (!st && size >= CAS_STREAM_MIN) {
                /* opening waits for the disk: not under the lock */
                pthread_mutex_unlock(&s->lock);
                ref = cas_inodes_get(s->inodes, i->ino);
                if (ref == i && cas_blobstore_open(s->blobs, &i->digest, &rd) >= 0 &&
                    cas_blob_reader_size(rd) == i->size)
                        (void)cas_blob_reader_direct_fd(rd); /* opened once, before the threads share it */
                else
                        rd = cas_blob_reader_free(rd);
                pthread_mutex_lock(&s->lock);
                st = find(s, i);
                if (!st && rd && (st = claim(s, &old_inode, &old_reader))) {
                        st->inode = TAKE_PTR(ref);
                        st->reader = TAKE_PTR(rd);
                        st->outboard = ob;
                        st->next = 0;
                }
        }
        if (st) {
                st->age = ++s->clock;
                /* every chunk the request covers must be there, read and checked */
                for (bool wait = true; wait;) {
                        wait = false;
                        served = true;
                        for (uint64_t x = first; x * CAS_STREAM_CHUNK < end && served; x++) {
                                cas_stream_chunk *c = chunk_of(st, x);
                                if (c && (c->state == CAS_CHUNK_LOADING || c->state == CAS_CHUNK_TAKEN ||
                                          c->state == CAS_CHUNK_QUEUED))
                                        wait = true;
                                served = c && c->state == CAS_CHUNK_READY;
                        }
                        if (wait)
                                pthread_cond_wait(&s->done, &s->lock);
                        if (find(s, i) != st) { /* let go of meanwhile */
                                served = false;
                                st = NULL;
                                break;
                        }
                }
        }
        if (st && served)
                for (uint64_t x = first; x * CAS_STREAM_CHUNK < end; x++) {
                        chunk_of(st, x)->state = CAS_CHUNK_TAKEN;
                        st->busy++;
                }
        if (st && size >= CAS_STREAM_MIN)
                advance(s, st, first, end);
        pthread_mutex_unlock(&s->lock);

        if (served) {
                /* put outside the lock (left where they lie when the transport writes the reply
                 * itself); TAKEN keeps the chunks meanwhile */
                size_t pos = sizeof(struct fuse_out_header);
                for (uint64_t x = first; x * CAS_STREAM_CHUNK < end; x++) {
                        uint64_t from = MAX(off, x * CAS_STREAM_CHUNK), to = MIN(end, (x + 1) * CAS_STREAM_CHUNK);
                        pthread_mutex_lock(&s->lock);
                        cas_stream_chunk *c = chunk_of(st, x);
                        pthread_mutex_unlock(&s->lock);
                        if (!cas_request_refer(rq, pos, c->buf + (from - x * CAS_STREAM_CHUNK), (size_t)(to - from)))
                                served = false;
                        pos += (size_t)(to - from);
                }
                taken *t = &this_thread_taken;
                *t = (taken){s, st, first, off, size, i->size};
                if (served && cas_request_refers(rq))
                        cas_request_when_written(rq, give_back, t); /* once the reply is out */
                else
                        give_back(t);
        }
        let_go(s, old_inode, old_reader);
        let_go(s, ref, rd);
        return served;
}
