/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "import.h"
#include "outboard.h"
#include "macro.h"

#define QUEUE_SIZE 4096
#define READ_BUFFER (1024u * 1024)
/* Deeper trees than this are refused rather than risking the stack. */
#define MAX_DEPTH 2048

typedef struct idir idir;

/* One entry of the tree being imported. node.name is owned (malloc'ed). */
typedef struct ientry {
        cas_node node;
        idir *dir;     /* directories: the children */
        char *path;    /* files: full path, until a worker has stored it */
        cas_stat_key key;
} ientry;

struct idir {
        ientry *entries;
        size_t n;
};

typedef struct importer {
        cas_store *store;
        const cas_import_options *opts;
        cas_import_progress local_progress, *progress;
        struct timespec started;

        pthread_mutex_t lock; /* protects everything below */
        pthread_cond_t cond;
        ientry *queue[QUEUE_SIZE];
        size_t head, tail, queued; /* ring buffer of pending file jobs */
        size_t in_flight;          /* jobs taken by a worker and not finished */
        bool done;                 /* no more jobs will come */
        char *error;               /* the first failure, "path: reason" */
} importer;

_printf_(2, 3) static void set_error(importer *im, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        pthread_mutex_lock(&im->lock);
        cas_keep_first_error(&im->error, fmt, ap);
        pthread_cond_broadcast(&im->cond);
        pthread_mutex_unlock(&im->lock);
        va_end(ap);
}

static bool failed(importer *im)
{
        pthread_mutex_lock(&im->lock);
        bool f = im->error != NULL;
        pthread_mutex_unlock(&im->lock);
        return f;
}

static int64_t ts_ns(const struct timespec *t)
{
        return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static cas_stat_key stat_key(const struct stat *st)
{
        return (cas_stat_key){.dev = st->st_dev, .ino = st->st_ino, .size = (uint64_t)st->st_size,
                              .mtime_ns = ts_ns(&st->st_mtim), .ctime_ns = ts_ns(&st->st_ctim)};
}

/* A file whose timestamps are this close to the start of the import may still
 * change within the same timestamp tick: do not trust its cache entry later. */
static bool racy(importer *im, const cas_stat_key *k)
{
        int64_t start = ts_ns(&im->started) - 2 * (int64_t)1000000000;
        return k->mtime_ns >= start || k->ctime_ns >= start;
}

/* Reads one file into the blob store; fills e->node.digest. */
static int store_file(importer *im, ientry *e, uint8_t *buf)
{
        cas_blob_writer *w = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        /* gc prunes the cache of what it removes, so a hit names a stored blob;
         * a large one stored before outboards existed is read again to get one */
        if (!im->opts->no_cache &&
            cas_metastore_statcache_get(im->store->meta, &e->key, &e->node.digest) >= 0 &&
            (cas_outboard_size(e->key.size) == 0 ||
             cas_blobstore_has_outboard(im->store->blobs, &e->node.digest, e->key.size) > 0)) {
                atomic_fetch_add(&im->progress->files_cached, 1);
                atomic_fetch_add(&im->progress->bytes_done, e->key.size);
                return 0;
        }

        fd = open(e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                set_error(im, "%s: %s", e->path, strerror(errno));
                return -errno;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != e->key.ino) {
                set_error(im, "%s: changed during import", e->path);
                return -ESTALE;
        }
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

        r = cas_blobstore_writer_new(im->store->blobs, &w);
        if (r < 0)
                goto fail;
        uint64_t total = 0;
        for (;;) {
                ssize_t n = cas_loop_read(fd, buf, READ_BUFFER);
                if (n < 0) {
                        r = (int)n;
                        goto fail;
                }
                if (n == 0)
                        break;
                r = cas_blob_writer_write(w, buf, (size_t)n);
                if (r < 0)
                        goto fail;
                total += (uint64_t)n;
                atomic_fetch_add(&im->progress->bytes_done, (uint64_t)n);
                if ((size_t)n < READ_BUFFER)
                        break;
        }
        r = cas_blob_writer_commit(TAKE_PTR(w), &e->node.digest, &e->node.size, NULL);
        if (r < 0)
                goto fail;
        if (total != e->key.size) {
                set_error(im, "%s: changed during import (size %" PRIu64 ", read %" PRIu64 ")",
                          e->path, e->key.size, total);
                return -ESTALE;
        }
        if (!racy(im, &e->key))
                (void)cas_metastore_statcache_put(im->store->meta, &e->key, &e->node.digest);
        return 0;
fail:
        cas_blob_writer_abort(w);
        set_error(im, "%s: %s", e->path, strerror(-r));
        return r;
}

static void *worker(void *userdata)
{
        importer *im = userdata;
        _cleanup_free_ uint8_t *buf = malloc(READ_BUFFER);

        if (!buf) {
                set_error(im, "out of memory");
                return NULL;
        }
        pthread_mutex_lock(&im->lock);
        for (;;) {
                while (im->queued == 0 && !im->done)
                        pthread_cond_wait(&im->cond, &im->lock);
                if (im->queued == 0)
                        break;
                ientry *e = im->queue[im->head];
                im->head = (im->head + 1) % QUEUE_SIZE;
                im->queued--;
                im->in_flight++;
                bool skip = im->error != NULL;
                pthread_cond_broadcast(&im->cond);
                pthread_mutex_unlock(&im->lock);

                if (!skip)
                        (void)store_file(im, e, buf);
                free(e->path);
                e->path = NULL;
                atomic_fetch_add(&im->progress->files_done, 1);

                pthread_mutex_lock(&im->lock);
                im->in_flight--;
                pthread_cond_broadcast(&im->cond);
        }
        pthread_mutex_unlock(&im->lock);
        return NULL;
}

static void enqueue(importer *im, ientry *e)
{
        pthread_mutex_lock(&im->lock);
        while (im->queued == QUEUE_SIZE)
                pthread_cond_wait(&im->cond, &im->lock);
        im->queue[im->tail] = e;
        im->tail = (im->tail + 1) % QUEUE_SIZE;
        im->queued++;
        pthread_cond_signal(&im->cond);
        pthread_mutex_unlock(&im->lock);
}

static void idir_free(idir *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free((char *)d->entries[i].node.name);
                free((char *)d->entries[i].node.target);
                free(d->entries[i].path);
                idir_free(d->entries[i].dir);
        }
        free(d->entries);
        free(d);
}

static char *join(const char *a, const char *b)
{
        char *p;
        size_t la = strlen(a);
        if (asprintf(&p, "%s%s%s", a, la && a[la - 1] == '/' ? "" : "/", b) < 0)
                return NULL;
        return p;
}

static int read_link(importer *im, int dir_fd, const char *name, const char *path, ientry *e)
{
        char buf[CAS_TARGET_MAX + 2];
        ssize_t n = readlinkat(dir_fd, name, buf, sizeof(buf));
        cas_error err;

        if (n < 0) {
                set_error(im, "%s: %s", path, strerror(errno));
                return -errno;
        }
        if (cas_target_validate(buf, (size_t)n, &err) < 0) {
                set_error(im, "%s: symlink target is not valid: %s", path,
                          cas_error_code_string(err.code));
                return -EINVAL;
        }
        e->node.type = CAS_NODE_SYMLINK;
        e->node.target = strndup(buf, (size_t)n);
        e->node.target_len = (uint32_t)n;
        return e->node.target ? 0 : -ENOMEM;
}

/* Classifies one entry from its lstat: fills e, queues files. 1 when it was
 * skipped (special file with skip_special). */
static int add_entry(importer *im, int dir_fd, const char *name, const char *path,
                     const struct stat *st, ientry *e)
{
        if (S_ISREG(st->st_mode)) {
                e->node.type = CAS_NODE_FILE;
                e->node.executable = st->st_mode & S_IXUSR;
                e->node.size = (uint64_t)st->st_size;
                e->key = stat_key(st);
                e->path = strdup(path);
                if (!e->path)
                        return -ENOMEM;
                atomic_fetch_add(&im->progress->files_found, 1);
                atomic_fetch_add(&im->progress->bytes_found, (uint64_t)st->st_size);
                return 0;
        }
        if (S_ISLNK(st->st_mode))
                return read_link(im, dir_fd, name, path, e);
        if (S_ISDIR(st->st_mode)) {
                e->node.type = CAS_NODE_DIRECTORY;
                return 0;
        }
        const char *what = S_ISSOCK(st->st_mode)  ? "socket"
                           : S_ISFIFO(st->st_mode) ? "FIFO"
                           : S_ISCHR(st->st_mode)  ? "character device"
                           : S_ISBLK(st->st_mode)  ? "block device"
                                                   : "file of unknown type";
        if (im->opts->skip_special) {
                if (im->opts->warn) {
                        char msg[64];
                        snprintf(msg, sizeof(msg), "skipping %s", what);
                        im->opts->warn(im->opts->userdata, path, msg);
                }
                return 1;
        }
        set_error(im, "%s: is a %s; special files are not part of the model (--skip-special skips them)",
                  path, what);
        return -EINVAL;
}

static int walk(importer *im, const char *path, idir **ret, unsigned depth)
{
        idir *d;
        DIR *dh;
        int fd, r = 0;

        if (depth > MAX_DEPTH) {
                set_error(im, "%s: tree deeper than %d levels", path, MAX_DEPTH);
                return -ELOOP;
        }
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        *ret = d;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                set_error(im, "%s: %s", path, strerror(errno));
                return -errno;
        }
        dh = fdopendir(fd);
        if (!dh) {
                r = -errno;
                close(fd);
                set_error(im, "%s: %s", path, strerror(-r));
                return r;
        }

        size_t alloc = 0;
        struct dirent *de;
        for (;;) {
                errno = 0;
                de = readdir(dh);
                if (!de) {
                        if (errno) {
                                r = -errno;
                                set_error(im, "%s: %s", path, strerror(errno));
                        }
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                _cleanup_free_ char *child = join(path, de->d_name);
                struct stat st;
                cas_error err;
                if (!child) {
                        r = -ENOMEM;
                        break;
                }
                if (cas_name_validate(de->d_name, strlen(de->d_name), &err) < 0) {
                        set_error(im, "%s: name is not valid: %s", child,
                                  cas_error_code_string(err.code));
                        r = -EINVAL;
                        break;
                }
                if (fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = -errno;
                        set_error(im, "%s: %s", child, strerror(errno));
                        break;
                }
                r = CAS_GROW(d->entries, alloc, d->n, 16);
                if (r < 0)
                        break;
                ientry *e = &d->entries[d->n];
                *e = (ientry){0};
                e->node.name = strdup(de->d_name);
                e->node.name_len = (uint32_t)strlen(de->d_name);
                if (!e->node.name) {
                        r = -ENOMEM;
                        break;
                }
                r = add_entry(im, dirfd(dh), de->d_name, child, &st, e);
                if (r == 1) {
                        free((char *)e->node.name);
                        r = 0;
                        continue;
                }
                d->n++;
                if (r < 0)
                        break;
                if (failed(im)) {
                        r = -ECANCELED;
                        break;
                }
        }
        closedir(dh);
        if (r < 0)
                return r;

        /* files go to the workers now; subdirectories are walked after this
         * folder's handle is closed, so the walk holds one descriptor at a time */
        for (size_t i = 0; i < d->n; i++)
                if (d->entries[i].node.type == CAS_NODE_FILE)
                        enqueue(im, &d->entries[i]);
        for (size_t i = 0; i < d->n && r >= 0; i++) {
                ientry *e = &d->entries[i];
                if (e->node.type != CAS_NODE_DIRECTORY)
                        continue;
                _cleanup_free_ char *child = join(path, e->node.name);
                if (!child)
                        return -ENOMEM;
                r = walk(im, child, &e->dir, depth + 1);
                if (r >= 0 && failed(im))
                        r = -ECANCELED;
        }
        return r;
}

typedef struct closure {
        cas_directory **dirs;
        size_t n, alloc;
} closure;

/* Builds the directories bottom-up, appending each to the closure after its
 * children (leaves first), and fills the node of the directory itself. */
static int build(importer *im, idir *d, cas_node *self, closure *c, const char *path)
{
        _cleanup_free_ cas_node *nodes = calloc(d->n ?: 1, sizeof(cas_node));
        cas_directory *dir = NULL;
        cas_error err;
        int r;

        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < d->n; i++) {
                ientry *e = &d->entries[i];
                if (e->node.type == CAS_NODE_DIRECTORY) {
                        _cleanup_free_ char *child = join(path, e->node.name);
                        if (!child)
                                return -ENOMEM;
                        r = build(im, e->dir, &e->node, c, child);
                        if (r < 0)
                                return r;
                }
                nodes[i] = e->node;
        }
        r = cas_directory_build(nodes, d->n, &dir);
        if (r < 0)
                return r;
        r = cas_directory_validate(dir, &err);
        if (r < 0) {
                char msg[256];
                set_error(im, "%s: %s", path, cas_error_format(&err, msg, sizeof(msg)));
                free(dir);
                return r;
        }
        if (cas_directory_digest(dir, &self->digest) < 0 || cas_directory_size(dir, &self->size) < 0) {
                free(dir);
                return -ENOMEM;
        }
        if (CAS_GROW(c->dirs, c->alloc, c->n, 64) < 0) {
                free(dir);
                return -ENOMEM;
        }
        c->dirs[c->n++] = dir;
        return 0;
}

static int finish_workers(importer *im, pthread_t *threads, unsigned n)
{
        pthread_mutex_lock(&im->lock);
        im->done = true;
        pthread_cond_broadcast(&im->cond);
        pthread_mutex_unlock(&im->lock);
        for (unsigned i = 0; i < n; i++)
                pthread_join(threads[i], NULL);
        return 0;
}

int cas_import(cas_store *s, const char *path, const char *name, const cas_import_options *o,
               cas_node **ret_node, char **ret_error)
{
        importer im = {.store = s, .opts = o};
        ientry top = {0};
        closure c = {0};
        struct stat st;
        cas_error err;
        unsigned n_threads = 0;
        pthread_t threads[64];
        int r;

        im.progress = o->progress ? o->progress : &im.local_progress;
        clock_gettime(CLOCK_REALTIME, &im.started);
        pthread_mutex_init(&im.lock, NULL);
        pthread_cond_init(&im.cond, NULL);

        if (cas_name_validate(name, strlen(name), &err) < 0) {
                set_error(&im, "%s: '%s' is not a valid root name: %s", path, name,
                          cas_error_code_string(err.code));
                r = -EINVAL;
                goto finish;
        }
        top.node.name = strdup(name);
        top.node.name_len = (uint32_t)strlen(name);
        if (!top.node.name) {
                r = -ENOMEM;
                goto finish;
        }
        if (lstat(path, &st) < 0) {
                r = -errno;
                set_error(&im, "%s: %s", path, strerror(errno));
                goto finish;
        }
        r = add_entry(&im, AT_FDCWD, path, path, &st, &top);
        if (r == 1) {
                set_error(&im, "%s: nothing to import", path);
                r = -EINVAL;
        }
        if (r < 0)
                goto finish;

        n_threads = o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = MAX(1u, MIN(n_threads, (unsigned)ELEMENTSOF(threads)));
        for (unsigned i = 0; i < n_threads; i++) {
                r = -pthread_create(&threads[i], NULL, worker, &im);
                if (r < 0) {
                        finish_workers(&im, threads, i);
                        n_threads = 0;
                        set_error(&im, "cannot start threads: %s", strerror(-r));
                        goto finish;
                }
        }

        if (top.node.type == CAS_NODE_FILE)
                enqueue(&im, &top);
        else if (top.node.type == CAS_NODE_DIRECTORY)
                r = walk(&im, path, &top.dir, 0);
        atomic_store(&im.progress->walk_done, true);
        finish_workers(&im, threads, n_threads);
        if (r < 0 || im.error)
                goto finish;

        if (top.node.type == CAS_NODE_DIRECTORY) {
                r = build(&im, top.dir, &top.node, &c, path);
                if (r < 0)
                        goto finish;
        }

        /* durable before visible: blobs on disk before the directories naming
         * them, directories before the caller's root */
        r = cas_blobstore_sync(s->blobs);
        if (r < 0) {
                set_error(&im, "%s: syncing the store: %s", path, strerror(-r));
                goto finish;
        }
        if (c.n > 0) {
                cas_digest root;
                r = cas_metastore_put_closure(s->meta, c.dirs, c.n, &root, &err);
                if (r < 0) {
                        char msg[256];
                        set_error(&im, "%s: storing directories: %s", path,
                                  r == -EBADMSG ? cas_error_format(&err, msg, sizeof(msg))
                                                : strerror(-r));
                        goto finish;
                }
        }
        (void)cas_metastore_statcache_flush(s->meta);

        *ret_node = cas_node_dup(&top.node, NULL, 0);
        r = *ret_node ? 0 : -ENOMEM;
finish:
        if (r < 0 && !im.error)
                set_error(&im, "%s: %s", path, strerror(-r));
        if (r >= 0 && im.error)
                r = -EIO;
        if (r < 0 && ret_error)
                *ret_error = TAKE_PTR(im.error);
        free(im.error);
        for (size_t i = 0; i < c.n; i++)
                free(c.dirs[i]);
        free(c.dirs);
        free((char *)top.node.name);
        free((char *)top.node.target);
        free(top.path);
        idir_free(top.dir);
        pthread_mutex_destroy(&im.lock);
        pthread_cond_destroy(&im.cond);
        return r;
}
