/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdlib.h>

#include "macro.h"
#include "outboard.h"
#include "readahead.h"
#include "state.h"
#include "verify.h"

/* How much of a larger blob is read ahead (it gets the kernel's own
 * readahead once it is read). */
#define READAHEAD_BYTES (512 * 1024)

void cas_readahead_init(cas_readahead *ra, cas_blobstore *blobs, cas_inodes *inodes, cas_dircache *dirs,
                        cas_readpath *rp, cas_parked *parked, const cas_engine_options *opts)
{
        *ra = (cas_readahead){
                .blobs = blobs,
                .inodes = inodes,
                .dirs = dirs,
                .rp = rp,
                .parked = parked,
                .window = opts->prefetch,
                .verify = opts->verify,
                .direct_io = opts->direct_io,
        };
        pthread_mutex_init(&ra->lock, NULL);
        pthread_cond_init(&ra->cond, NULL);
}

void cas_readahead_done(cas_readahead *ra)
{
        cas_readahead_stop(ra);
        pthread_mutex_destroy(&ra->lock);
        pthread_cond_destroy(&ra->cond);
}

static void push(cas_readahead *ra, const cas_node *n, uint64_t ino)
{
        pthread_mutex_lock(&ra->lock);
        if (ra->n < CAS_READAHEAD_QUEUE) { /* when full, the disk is busy enough: drop it */
                cas_readahead_item *p = &ra->ring[(ra->head + ra->n++) % CAS_READAHEAD_QUEUE];
                p->digest = n->digest;
                p->size = n->size;
                p->ino = ino;
                pthread_cond_signal(&ra->cond);
        }
        pthread_mutex_unlock(&ra->lock);
}

void cas_readahead_seen(cas_inode *c, const cas_inode *p, uint32_t index)
{
        if (c->type != CAS_NODE_FILE)
                return;
        atomic_store_explicit(&cas_state(c)->seen_in, p->ino, memory_order_relaxed);
        atomic_store_explicit(&cas_state(c)->seen_at, index, memory_order_relaxed);
}

/* A large file looked up by name is about to be opened: its outboard is
 * loaded and checked in the background, so that its first read does not
 * wait for it (a 1 GiB blob's is 2 MiB, a few milliseconds). */
void cas_readahead_outboard(cas_readahead *ra, const cas_node *n, cas_inode *i)
{
        if (ra->verify && ra->window && i->type == CAS_NODE_FILE && cas_outboard_size(i->size) > 0 &&
            !atomic_load(&cas_state(i)->outboard) && cas_state_verdict(i) != CAS_VERDICT_BAD)
                push(ra, n, i->ino);
}

static void outboard_load(cas_readahead *ra, const cas_readahead_item *p)
{
        cas_inode *i = cas_inodes_get(ra->inodes, p->ino);
        cas_blob_reader *rd;
        const uint8_t *ob;

        /* the kernel may have forgotten it meanwhile (its number then names another) */
        if (i && i->type == CAS_NODE_FILE && cas_digest_eq(&i->digest, &p->digest) &&
            cas_blobstore_open(ra->blobs, &i->digest, &rd) >= 0) {
                if (cas_blob_reader_size(rd) == i->size)
                        (void)cas_readpath_outboard(ra->rp, rd, i, &ob); /* a failure is the READ's to report */
                cas_blob_reader_free(rd);
        }
        if (i)
                cas_inode_unref(ra->inodes, i);
}

/* Queues the files after file i in the directory it was found in, keeping
 * the window of them ahead. Refills when half of the window is used, so a
 * reader going through a directory queues each file once. */
void cas_readahead_after(cas_readahead *ra, cas_inode *i)
{
        uint64_t dir_ino = atomic_load_explicit(&cas_state(i)->seen_in, memory_order_relaxed);
        uint32_t at = atomic_load_explicit(&cas_state(i)->seen_at, memory_order_relaxed);
        uint32_t window = ra->window;
        cas_dir_cache *cache;

        if (!window || !dir_ino)
                return;
        cas_inode *d = cas_inodes_get(ra->inodes, dir_ino);
        if (!d)
                return;
        if (d->type != CAS_NODE_DIRECTORY) {
                cas_inode_unref(ra->inodes, d);
                return;
        }
        uint32_t done = atomic_load(&cas_state(d)->read_ahead);
        /* within the window queued already, and more than half of it left: nothing to do */
        bool queued = done > at && done <= at + 1 + window;
        if ((queued && done - at > window / 2) || cas_dircache_get(ra->dirs, d, &cache) < 0) {
                cas_inode_unref(ra->inodes, d);
                return;
        }
        const cas_directory *dir = cache->dir;
        uint32_t from = queued ? done : at + 1;
        uint32_t to = (uint32_t)MIN((uint64_t)at + 1 + window, (uint64_t)dir->n_nodes);
        for (uint32_t k = from; k < to; k++)
                /* large blobs are read past the page cache (cas_verify_pread): nothing to warm */
                if (dir->nodes[k].type == CAS_NODE_FILE && dir->nodes[k].size > 0 &&
                    !(ra->direct_io && cas_outboard_size(dir->nodes[k].size) > 0))
                        push(ra, &dir->nodes[k], 0);
        atomic_store(&cas_state(d)->read_ahead, MAX(to, from));
        cas_dir_cache_unref(cache);
        cas_inode_unref(ra->inodes, d);
}

/* Reads the small blob p whole into memory of its own, checks it when
 * verifying, and keeps it for the request that will read it. False when
 * every slot is busy or the budget used up (it is then read ahead into the
 * page cache). A blob that does not open, read or match is left to the request,
 * which tries again and reports it. */
static bool park(cas_readahead *ra, const cas_readahead_item *p)
{
        size_t whole = CAS_DIRECT_LEN(p->size);
        cas_blob_reader *rd = NULL;
        uint8_t *bytes = NULL;
        int fd;

        bool there;
        cas_parked_slot *slot = cas_parked_claim(ra->parked, &p->digest, p->size, &there);
        if (!slot)
                return there; /* read ahead already (the same content twice) */
        /* opening waits for the disk (directory, inode) */
        if (cas_blobstore_open(ra->blobs, &p->digest, &rd) >= 0 && cas_blob_reader_size(rd) == p->size &&
            (fd = cas_blob_reader_fd(rd)) >= 0 && (bytes = cas_bufpool_get(ra->parked->pool, p->size))) {
                int flags = fcntl(fd, F_GETFL);
                bool direct = ra->direct_io && flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
                ssize_t got = pread(fd, bytes, direct ? whole : (size_t)p->size, 0);
                if (direct) {
                        (void)fcntl(fd, F_SETFL, flags);
                        if (got < 0) /* a file system with other alignment rules */
                                got = pread(fd, bytes, (size_t)p->size, 0);
                }
                if (got < 0 || (uint64_t)got != p->size ||
                    (ra->verify && cas_verify_buffer(bytes, (size_t)p->size, &p->digest) < 0)) {
                        cas_bufpool_put(ra->parked->pool, bytes, p->size);
                        bytes = NULL;
                }
        }
        cas_blob_reader_free(rd);
        cas_parked_fill(ra->parked, slot, bytes);
        return true;
}

static void *worker(void *userdata)
{
        cas_readahead *ra = userdata;

        pthread_mutex_lock(&ra->lock);
        for (;;) {
                while (ra->n == 0 && !ra->stop)
                        pthread_cond_wait(&ra->cond, &ra->lock);
                if (ra->stop)
                        break;
                cas_readahead_item p = ra->ring[ra->head];
                ra->head = (ra->head + 1) % CAS_READAHEAD_QUEUE;
                ra->n--;
                pthread_mutex_unlock(&ra->lock);
                cas_blob_reader *rd;
                if (p.ino)
                        outboard_load(ra, &p);
                else if (p.size <= CAS_PARKED_MAX && park(ra, &p))
                        ;
                /* opening waits for the disk (directory, inode); the data is read in the background */
                else if (cas_blobstore_open(ra->blobs, &p.digest, &rd) >= 0) {
                        int fd = cas_blob_reader_fd(rd);
                        if (fd >= 0)
                                (void)readahead(fd, 0, (size_t)MIN(p.size, (uint64_t)READAHEAD_BYTES));
                        cas_blob_reader_free(rd);
                }
                pthread_mutex_lock(&ra->lock);
        }
        pthread_mutex_unlock(&ra->lock);
        cas_readpath_thread_done();
        return NULL;
}

void cas_readahead_start(cas_readahead *ra)
{
        if (!ra->window)
                return;
        ra->stop = false;
        for (; ra->n_threads < CAS_READAHEAD_THREADS; ra->n_threads++)
                if (pthread_create(&ra->threads[ra->n_threads], NULL, worker, ra) != 0)
                        break;
}

void cas_readahead_stop(cas_readahead *ra)
{
        pthread_mutex_lock(&ra->lock);
        ra->stop = true;
        pthread_cond_broadcast(&ra->cond);
        pthread_mutex_unlock(&ra->lock);
        for (unsigned k = 0; k < ra->n_threads; k++)
                pthread_join(ra->threads[k], NULL);
        ra->n_threads = 0;
}
