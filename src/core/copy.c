/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>

#include "copy.h"
#include "digestmap.h"
#include "macro.h"

#define COPY_BUFFER (1u << 20)
#define JOBS_MAX    256

typedef struct blob_ref {
        cas_digest d;
        uint64_t size;
} blob_ref;

typedef struct copy_ctx {
        cas_store *src, *dst;
        cas_copy_progress *progress;
        /* the closure: directories breadth first from the top */
        cas_directory **dirs;
        size_t n_dirs, alloc_dirs;
        cas_digest_map blob_seen;
        blob_ref *blobs; /* the blobs dst lacks */
        size_t n_blobs, alloc_blobs;
        pthread_mutex_t lock; /* protects next, error */
        size_t next;
        char *error; /* the first failure's line */
        int r;
} copy_ctx;

_printf_(3, 4) static int fail(copy_ctx *c, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        pthread_mutex_lock(&c->lock);
        if (cas_keep_first_error(&c->error, fmt, ap))
                c->r = r;
        pthread_mutex_unlock(&c->lock);
        va_end(ap);
        return r;
}

static const char *what(int r)
{
        return r == -ENOENT ? "is missing" : r == -EBADMSG ? "is corrupt" : strerror(-r);
}

static int want_blob(copy_ctx *c, const cas_digest *d, uint64_t size)
{
        char text[CAS_DIGEST_TEXT_MAX];
        int r;

        if (cas_digest_map_get(&c->blob_seen, d, NULL))
                return 0;
        r = cas_digest_map_put(&c->blob_seen, d, size);
        if (r < 0)
                return r;
        r = cas_blobstore_has(c->dst->blobs, d);
        if (r < 0)
                return fail(c, r, "blob %s in %s: %s", cas_digest_to_text(d, text), c->dst->path,
                            strerror(-r));
        if (r > 0) {
                if (c->progress)
                        c->progress->blobs_present++;
                return 0;
        }
        if (CAS_GROW(c->blobs, c->alloc_blobs, c->n_blobs, 256) < 0)
                return -ENOMEM;
        c->blobs[c->n_blobs++] = (blob_ref){*d, size};
        if (c->progress) {
                c->progress->blobs_wanted++;
                c->progress->bytes_wanted += size;
        }
        return 0;
}

static int collect_dir(const cas_digest *d, const cas_directory *dir, int error, void *userdata)
{
        copy_ctx *c = userdata;
        char text[CAS_DIGEST_TEXT_MAX];
        int r;

        if (!dir)
                return fail(c, error, "directory %s in %s %s", cas_digest_to_text(d, text),
                            c->src->path, what(error));
        if (CAS_GROW(c->dirs, c->alloc_dirs, c->n_dirs, 256) < 0)
                return -ENOMEM;
        /* a copy: the walk's directory lives for the call only */
        uint8_t *buf;
        size_t len;
        r = cas_directory_encode(dir, &buf, &len);
        if (r < 0)
                return r;
        r = cas_directory_decode(buf, len, &c->dirs[c->n_dirs], NULL);
        free(buf);
        if (r < 0)
                return r;
        c->n_dirs++;
        for (size_t i = 0; i < dir->n_files; i++) {
                r = want_blob(c, &dir->files[i].digest, dir->files[i].size);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Reads a blob from src and writes it to dst: a local destination's blob
 * writer makes the outboard as import does, a remote one chunks it. What
 * was written must have the digest its references name. */
static int copy_blob(copy_ctx *c, const blob_ref *b, uint8_t *buf)
{
        _cleanup_(cas_blob_reader_freep) cas_blob_reader *rd = NULL;
        cas_blob_writer *w = NULL;
        char text[CAS_DIGEST_TEXT_MAX];
        cas_digest got;
        int existed = 0, r;

        r = cas_blobstore_open_sized(c->src->blobs, &b->d, b->size, &rd);
        if (r < 0)
                return fail(c, r, "blob %s in %s %s", cas_digest_to_text(&b->d, text), c->src->path,
                            what(r));
        r = cas_blobstore_writer_new(c->dst->blobs, &w);
        if (r < 0)
                return r;
        for (uint64_t off = 0; off < b->size;) {
                ssize_t n = cas_blob_reader_pread(rd, buf, COPY_BUFFER, off);
                if (n <= 0) {
                        cas_blob_writer_abort(w);
                        r = n < 0 ? (int)n : -EIO;
                        return fail(c, r, "blob %s in %s: reading: %s",
                                    cas_digest_to_text(&b->d, text), c->src->path, strerror(-r));
                }
                r = cas_blob_writer_write(w, buf, (size_t)n);
                if (r < 0) {
                        cas_blob_writer_abort(w);
                        return fail(c, r, "blob %s to %s: %s", cas_digest_to_text(&b->d, text),
                                    c->dst->path, strerror(-r));
                }
                off += (uint64_t)n;
                if (c->progress)
                        c->progress->bytes_done += (uint64_t)n;
        }
        r = cas_blob_writer_commit(w, &got, NULL, &existed);
        if (r < 0)
                return fail(c, r, "blob %s to %s: %s", cas_digest_to_text(&b->d, text),
                            c->dst->path, strerror(-r));
        if (!cas_digest_eq(&got, &b->d))
                return fail(c, -EBADMSG,
                            "blob %s in %s is corrupt (its bytes do not match the digest)",
                            cas_digest_to_text(&b->d, text), c->src->path);
        if (c->progress) {
                c->progress->blobs_done++;
                if (!existed) {
                        c->progress->blobs_sent++;
                        c->progress->bytes_sent += b->size;
                }
        }
        return 0;
}

static void *copy_worker(void *userdata)
{
        copy_ctx *c = userdata;
        _cleanup_free_ uint8_t *buf = malloc(COPY_BUFFER);

        if (!buf) {
                fail(c, -ENOMEM, "out of memory");
                return NULL;
        }
        for (;;) {
                pthread_mutex_lock(&c->lock);
                bool stop = c->error || c->next >= c->n_blobs;
                size_t i = c->next++;
                pthread_mutex_unlock(&c->lock);
                if (stop)
                        break;
                int r = copy_blob(c, &c->blobs[i], buf);
                if (r < 0)
                        fail(c, r, "blob: %s", strerror(-r)); /* kept only when nothing said more */
        }
        return NULL;
}

static int copy_blobs(copy_ctx *c, unsigned jobs)
{
        pthread_t threads[JOBS_MAX];
        unsigned started = 0;

        jobs = MIN(jobs ? jobs : 32, (unsigned)JOBS_MAX);
        jobs = (unsigned)MIN((size_t)jobs, MAX(c->n_blobs, (size_t)1));
        for (; started < jobs; started++)
                if (pthread_create(&threads[started], NULL, copy_worker, c) != 0)
                        break;
        if (started == 0)
                copy_worker(c);
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        return c->error ? c->r : 0;
}

static int same_root(cas_store *dst, const cas_node *root)
{
        _cleanup_free_ cas_node *have = NULL;
        _cleanup_free_ uint8_t *a = NULL, *b = NULL;
        size_t alen, blen;

        if (cas_metastore_get_root(dst->meta, root->name, &have) < 0)
                return 0;
        if (cas_node_encode(have, &a, &alen) < 0 || cas_node_encode(root, &b, &blen) < 0)
                return 0;
        return alen == blen && memcmp(a, b, alen) == 0;
}

int cas_copy_root(cas_store *src, cas_store *dst, const cas_node *root, const cas_copy_options *o,
                  char **ret_error)
{
        copy_ctx c = {.src = src,
                      .dst = dst,
                      .progress = o ? o->progress : NULL,
                      .lock = PTHREAD_MUTEX_INITIALIZER};
        char text[CAS_DIGEST_TEXT_MAX];
        int r = 0;

        if (c.progress)
                c.progress->blobs_wanted = c.progress->bytes_wanted = c.progress->blobs_done =
                    c.progress->bytes_done = 0;
        /* the same root there already: everything it reaches is there too */
        if (same_root(dst, root))
                goto finish;

        if (root->type == CAS_NODE_FILE)
                r = want_blob(&c, &root->digest, root->size);
        else if (root->type == CAS_NODE_DIRECTORY) {
                r = cas_metastore_has_directory(dst->meta, &root->digest);
                if (r > 0)
                        r = 0; /* the tree is there (a closure is stored whole): its blobs too */
                else if (r == 0)
                        r = cas_metastore_walk(src->meta, &root->digest, collect_dir, &c);
                else
                        fail(&c, r, "directory %s in %s: %s",
                             cas_digest_to_text(&root->digest, text), dst->path, strerror(-r));
        }
        if (r < 0 || c.error)
                goto finish;

        r = copy_blobs(&c, o ? o->jobs : 0);
        if (r < 0)
                goto finish;
        r = cas_blobstore_sync(dst->blobs);
        if (r < 0) {
                fail(&c, r, "%s: syncing: %s", dst->path, strerror(-r));
                goto finish;
        }
        if (c.n_dirs > 0) {
                /* leaves first, as a closure is stored */
                _cleanup_free_ cas_directory **rev = calloc(c.n_dirs, sizeof(*rev));
                cas_error err;
                if (!rev) {
                        r = -ENOMEM;
                        goto finish;
                }
                for (size_t i = 0; i < c.n_dirs; i++)
                        rev[i] = c.dirs[c.n_dirs - 1 - i];
                r = cas_metastore_put_closure(dst->meta, rev, c.n_dirs, NULL, &err);
                if (r < 0) {
                        char why[200];
                        fail(&c, r, "directory %s to %s: %s",
                             cas_digest_to_text(&root->digest, text), dst->path,
                             r == -EBADMSG ? cas_error_format(&err, why, sizeof(why))
                                           : strerror(-r));
                        goto finish;
                }
                if (c.progress)
                        c.progress->trees_sent++;
        }
        r = cas_metastore_set_root(dst->meta, root);
        if (r < 0) {
                fail(&c, r, "root %s to %s: %s", root->name, dst->path, strerror(-r));
                goto finish;
        }
        if (c.progress)
                c.progress->roots_sent++;
finish:
        if (r >= 0 && c.error)
                r = c.r;
        if (r < 0 && ret_error) {
                *ret_error = TAKE_PTR(c.error);
                if (!*ret_error && asprintf(ret_error, "%s", strerror(-r)) < 0)
                        *ret_error = NULL;
        }
        for (size_t i = 0; i < c.n_dirs; i++)
                free(c.dirs[i]);
        free(c.dirs);
        free(c.blobs);
        free(c.error);
        cas_digest_map_done(&c.blob_seen);
        pthread_mutex_destroy(&c.lock);
        return r < 0 ? r : 0;
}
