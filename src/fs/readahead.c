/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdlib.h>

#include "chunker.h"
#include "macro.h"
#include "outboard.h"
#include "readahead.h"
#include "state.h"
#include "threads.h"
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
        ra->deep = ra->window > 0 && cas_blobstore_can_prefetch(blobs);
        ra->meta = dirs->meta;
        pthread_mutex_init(&ra->lock, NULL);
        pthread_cond_init(&ra->cond, NULL);
        pthread_mutex_init(&ra->parents_lock, NULL);
        pthread_mutex_init(&ra->walk_lock, NULL);
        pthread_cond_init(&ra->pf_cond, NULL);
}

void cas_readahead_done(cas_readahead *ra)
{
        cas_readahead_stop(ra);
        cas_digest_map_done(&ra->parents);
        free(ra->parent_at);
        cas_digest_map_done(&ra->seen);
        pthread_mutex_destroy(&ra->lock);
        pthread_cond_destroy(&ra->cond);
        pthread_mutex_destroy(&ra->parents_lock);
        pthread_mutex_destroy(&ra->walk_lock);
        pthread_cond_destroy(&ra->pf_cond);
}

/* Where a directory was last found: its parent and its index there. */
typedef struct cas_readahead_parent {
        cas_digest parent;
        uint32_t at;
} cas_readahead_parent;

/* Bounds the tables of reading further ahead: past it they start again
 * (which costs some walks, never a wrong byte). */
#define DEEP_TABLE_MAX (1u << 20)
/* How deep a walk goes (down, and back up), bounding its stack. */
#define DEEP_DEPTH_MAX 256

/* Room for one more parent (parents_lock held). */
static bool parents_room(cas_readahead *ra)
{
        if (ra->n_parents < ra->alloc_parents)
                return true;
        size_t na = MAX(2 * ra->alloc_parents, (size_t)1024);
        cas_readahead_parent *np = realloc(ra->parent_at, na * sizeof(*np));
        if (!np)
                return false;
        ra->parent_at = np;
        ra->alloc_parents = na;
        return true;
}

static void remember_parent(cas_readahead *ra, const cas_inode *c, const cas_inode *p, uint32_t index)
{
        uint64_t k;

        pthread_mutex_lock(&ra->parents_lock);
        if (ra->n_parents >= DEEP_TABLE_MAX) {
                cas_digest_map_done(&ra->parents);
                ra->n_parents = 0;
        }
        if (cas_digest_map_get(&ra->parents, &c->digest, &k))
                ra->parent_at[k] = (cas_readahead_parent){p->digest, index};
        /* out of memory: only less reading ahead */
        else if (parents_room(ra) && cas_digest_map_put(&ra->parents, &c->digest, ra->n_parents) >= 0)
                ra->parent_at[ra->n_parents++] = (cas_readahead_parent){p->digest, index};
        pthread_mutex_unlock(&ra->parents_lock);
}

static bool parent_of(cas_readahead *ra, const cas_digest *d, cas_digest *ret_parent, uint32_t *ret_at)
{
        uint64_t k;
        bool found;

        pthread_mutex_lock(&ra->parents_lock);
        found = cas_digest_map_get(&ra->parents, d, &k);
        if (found) {
                *ret_parent = ra->parent_at[k].parent;
                *ret_at = ra->parent_at[k].at;
        }
        pthread_mutex_unlock(&ra->parents_lock);
        return found;
}

/* Queues node n (ino: 0, or the file whose outboard to load) under lock;
 * false when the queue is full (the disk is busy enough: it is dropped). */
static bool enqueue(cas_readahead *ra, const cas_node *n, uint64_t ino)
{
        if (ra->n >= CAS_READAHEAD_QUEUE)
                return false;
        cas_readahead_item *p = &ra->ring[(ra->head + ra->n++) % CAS_READAHEAD_QUEUE];
        p->digest = n->digest;
        p->size = n->size;
        p->ino = ino;
        return true;
}

/* Wakes a worker for each of the n items queued, after the lock is let go:
 * one woken while it is held would only wait for it again, and on a busy
 * CPU each wait is two more switches. */
static void wake(cas_readahead *ra, uint32_t n)
{
        for (uint32_t k = 0; k < MIN(n, (uint32_t)CAS_READAHEAD_THREADS); k++)
                pthread_cond_signal(&ra->cond);
}

static void push(cas_readahead *ra, const cas_node *n, uint64_t ino)
{
        pthread_mutex_lock(&ra->lock);
        bool queued = enqueue(ra, n, ino);
        pthread_mutex_unlock(&ra->lock);
        wake(ra, queued);
}

void cas_readahead_seen(cas_readahead *ra, cas_inode *c, const cas_inode *p, uint32_t index)
{
        if (c->type == CAS_NODE_DIRECTORY && ra->deep && p->type == CAS_NODE_DIRECTORY)
                remember_parent(ra, c, p, index);
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

/* ---- reading further ahead ---- */

#define NO_ENTRY UINT32_MAX
/* What the table of files walked over (seen) holds for a file: */
#define QUEUED 1   /* walked over, not read yet */
#define REFILL 2   /* the same, and where the window is refilled when the reader gets there */
#define IN_ORDER 3 /* the same, and the file right after the one whose read started a walk in its
                    * directory: a reader that reads it next is followed further */
#define READ 4     /* read (what is read again starts nothing) */

typedef struct walk {
        cas_readahead *ra;
        cas_chunk_ref refs[CAS_PREFETCH_FILES];
        size_t n_refs;
        unsigned files, max_files;
        uint64_t bytes, max_bytes;
        bool flat;   /* only the rest of the directory, none of its subdirectories */
        bool refill; /* the refill marker is placed */
} walk;

/* One file on the way (walk_lock held); false once the window is used. */
static bool walk_file(walk *w, const cas_node *n)
{
        cas_readahead *ra = w->ra;
        uint64_t *v = cas_digest_map_find(&ra->seen, &n->digest);
        uint64_t was = v ? *v : 0;

        if (w->files >= w->max_files || w->bytes >= w->max_bytes)
                return false;
        w->files++;
        /* a file read already is no marker: the reader is past it */
        if (w->flat && w->files == 1 && was != READ)
                (void)cas_digest_map_put(&ra->seen, &n->digest, IN_ORDER);
        else if (!w->refill && w->files >= w->max_files / 2 && was != READ) {
                /* refilled when the reader gets here: the window stays ahead */
                (void)cas_digest_map_put(&ra->seen, &n->digest, REFILL);
                w->refill = true;
        } else if (!was)
                (void)cas_digest_map_put(&ra->seen, &n->digest, QUEUED);
        /* blobs of several chunks are fetched by chunks as they are read */
        if (was || n->size == 0 || n->size > CAS_CHUNK_MAX)
                return true;
        w->refs[w->n_refs++] = (cas_chunk_ref){n->digest, n->size};
        w->bytes += n->size;
        return true;
}

/* The entries of directory d after entry after (an index into its nodes;
 * NO_ENTRY: all of them), by name, subdirectories walked into; false once
 * the window is used. A directory that does not load is passed over (the
 * readers see its error). */
static bool walk_directory(walk *w, const cas_digest *d, uint32_t after, unsigned depth)
{
        _cleanup_free_ cas_directory *dir = NULL;
        _cleanup_free_ uint32_t *order = NULL;
        bool more = true;
        size_t k = 0;

        if (depth > DEEP_DEPTH_MAX || cas_metastore_get_directory(w->ra->meta, d, &dir) < 0)
                return true;
        order = malloc(MAX(dir->n_nodes, (size_t)1) * sizeof(*order));
        if (!order)
                return false;
        cas_directory_name_order(dir, order);
        if (after != NO_ENTRY) {
                while (k < dir->n_nodes && order[k] != after)
                        k++;
                k++;
        }
        for (; more && k < dir->n_nodes; k++) {
                const cas_node *n = &dir->nodes[order[k]];
                if (n->type == CAS_NODE_FILE)
                        more = walk_file(w, n);
                else if (n->type == CAS_NODE_DIRECTORY && !w->flat)
                        more = walk_directory(w, &n->digest, NO_ENTRY, depth + 1);
        }
        return more;
}

/* Reader on file i, entry at of directory d: walks a window of files from
 * there and queues their small blobs for the prefetching threads when the
 * reader waits for i (it is not cached: a fetch) or has got to where the
 * window is to be refilled. A reader of what is cached already waits for
 * nothing and gets no walk: a second run of a job fetches nothing more than
 * its first did. */
static void deep_after(cas_readahead *ra, cas_inode *i, const cas_inode *d, uint32_t at)
{
        _cleanup_free_ walk *w = NULL;
        cas_digest dir = d->digest;

        pthread_mutex_lock(&ra->walk_lock);
        if (ra->seen.n_used >= DEEP_TABLE_MAX)
                cas_digest_map_done(&ra->seen);
        uint64_t *v = cas_digest_map_find(&ra->seen, &i->digest);
        uint64_t was = v ? *v : 0;
        if (was == QUEUED)
                ra->deep_hits++;
        (void)cas_digest_map_put(&ra->seen, &i->digest, READ);
        /* A reader that read the next file of the directory after the one
         * that started a walk reads in order (a compiler opening headers,
         * python importing modules, rarely do): it is followed out of the
         * directory, from a small window. One that got to the middle of the
         * window reading most of it goes on in this order: the window
         * doubles. One that read little of it (a compiler's headers: in
         * name order, far apart) is not followed further: what it skips
         * would be fetched for nothing. A reader that waits for a file the
         * walks did not take starts again: a walk of the rest of its
         * directory, and what was queued for the last one is dropped. */
        bool go, flat = false, fresh = false;
        if (was == IN_ORDER) {
                go = true;
                ra->deep_files = CAS_PREFETCH_FILES_MIN;
        } else if (was == REFILL) {
                if ((go = ra->deep_hits >= ra->deep_files / 4))
                        ra->deep_files = MIN(2 * ra->deep_files, (unsigned)CAS_PREFETCH_FILES);
        } else if ((go = was != QUEUED && cas_blobstore_cached(ra->blobs, &i->digest) == 0)) {
                /* only a walk that starts resets the window: not a read of what is cached
                 * (content read before under another name, an empty file) */
                flat = fresh = true;
                ra->deep_files = CAS_PREFETCH_FILES_MIN;
        }
        if (!go || !(w = calloc(1, sizeof(*w)))) {
                pthread_mutex_unlock(&ra->walk_lock);
                return;
        }
        ra->deep_hits = 0;
        w->ra = ra;
        w->max_files = ra->deep_files;
        w->max_bytes = (uint64_t)CAS_PREFETCH_BYTES / CAS_PREFETCH_FILES * ra->deep_files;
        w->flat = flat;
        for (unsigned up = 0; up <= DEEP_DEPTH_MAX; up++)
                if (!walk_directory(w, &dir, at, 0) || flat || !parent_of(ra, &dir, &dir, &at))
                        break;
        pthread_mutex_unlock(&ra->walk_lock);

        pthread_mutex_lock(&ra->lock);
        if (fresh)
                ra->pf_n = 0;
        for (size_t k = 0; k < w->n_refs && ra->pf_n < CAS_PREFETCH_QUEUE; k++)
                ra->pf_ring[(ra->pf_head + ra->pf_n++) % CAS_PREFETCH_QUEUE] = w->refs[k];
        pthread_cond_broadcast(&ra->pf_cond);
        pthread_mutex_unlock(&ra->lock);
}

static void *prefetcher(void *userdata)
{
        cas_readahead *ra = userdata;
        cas_chunk_ref batch[CAS_PREFETCH_BATCH];

        pthread_mutex_lock(&ra->lock);
        for (;;) {
                while (ra->pf_n == 0 && !ra->stop)
                        pthread_cond_wait(&ra->pf_cond, &ra->lock);
                if (ra->stop)
                        break;
                size_t n = 0;
                for (; n < CAS_PREFETCH_BATCH && ra->pf_n > 0; n++, ra->pf_n--) {
                        batch[n] = ra->pf_ring[ra->pf_head];
                        ra->pf_head = (ra->pf_head + 1) % CAS_PREFETCH_QUEUE;
                }
                pthread_mutex_unlock(&ra->lock);
                (void)cas_blobstore_prefetch(ra->blobs, batch, n); /* a failure is the reads' to report */
                pthread_mutex_lock(&ra->lock);
        }
        pthread_mutex_unlock(&ra->lock);
        return NULL;
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
        if (ra->deep)
                deep_after(ra, i, d, at);
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
        uint32_t queued_now = 0;
        pthread_mutex_lock(&ra->lock);
        for (uint32_t k = from; k < to; k++)
                /* large blobs are read past the page cache (cas_verify_pread): nothing to warm */
                if (dir->nodes[k].type == CAS_NODE_FILE && dir->nodes[k].size > 0 &&
                    !(ra->direct_io && cas_outboard_size(dir->nodes[k].size) > 0))
                        queued_now += enqueue(ra, &dir->nodes[k], 0);
        pthread_mutex_unlock(&ra->lock);
        wake(ra, queued_now);
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
                /* over a remote store, fetching is the prefetching threads'
                 * (in batches, deep_after): these only take what is cached */
                if (ra->deep && !p.ino && cas_blobstore_cached(ra->blobs, &p.digest) != 1)
                        ;
                else if (p.ino)
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
        cas_threads_start(ra->threads, &ra->n_threads, CAS_READAHEAD_THREADS, worker, ra);
        if (ra->deep)
                cas_threads_start(ra->pf_threads, &ra->n_pf_threads, CAS_PREFETCH_THREADS, prefetcher, ra);
}

void cas_readahead_stop(cas_readahead *ra)
{
        pthread_mutex_lock(&ra->lock);
        ra->stop = true;
        pthread_cond_broadcast(&ra->cond);
        pthread_cond_broadcast(&ra->pf_cond);
        pthread_mutex_unlock(&ra->lock);
        cas_threads_join(ra->threads, &ra->n_threads);
        cas_threads_join(ra->pf_threads, &ra->n_pf_threads);
        ra->pf_n = 0;
}
