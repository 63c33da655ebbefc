/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cache.h"
#include "layout.h"
#include "log.h"
#include "macro.h"
#include "metastore-backend.h"
#include "objstore.h"

/* The metadata of a remote store read through a local cache (cache.h).
 * Nothing here holds its lock across a request. */

typedef struct root_seen {
        char *name;
        void *buf; /* the record as last seen; NULL: there was none */
        size_t len;
        char *etag;
        uint64_t checked; /* when it was last asked for (CLOCK_MONOTONIC, ns); 0: never */
} root_seen;

typedef struct cache_metastore {
        cas_metastore base;
        cas_metastore *local;  /* the cache's LMDB (borrowed) */
        cas_metastore *remote; /* the remote's metastore (borrowed) */
        cas_objstore *os;
        uint64_t refresh_ns;
        pthread_mutex_t lock; /* protects roots, n_roots, alloc_roots */
        root_seen *roots;
        size_t n_roots, alloc_roots;
        _Atomic uint64_t generation;  /* bumped whenever a root seen changes */
        _Atomic bool down;            /* the last request failed (said once) */
        pthread_mutex_t closure_lock; /* one closure fetched at a time (no fetch twice at once) */
} cache_metastore;

#define CACHE(ms) ((cache_metastore *)(ms))

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *where(cache_metastore *cm)
{
        return cas_objstore_address(cm->os);
}

/* A request that failed: one line when the store stops answering, another
 * once it answers again (transfer_ok), not one per root every second. */
static int transfer_failed(cache_metastore *cm, int r, const char *key)
{
        return cas_objstore_failed(where(cm), key, r, "allowed", &cm->down,
                                   "serving the roots and directories cached until it answers");
}

static void transfer_ok(cache_metastore *cm)
{
        cas_objstore_answers(where(cm), &cm->down);
}

/* ---- directories: the cache's, a closure fetched whole when missing ---- */

typedef struct closure {
        cas_digest *ds;
        uint8_t **bufs;
        size_t *lens;
        size_t n, alloc;
} closure;

static void closure_done(closure *c)
{
        for (size_t i = 0; i < c->n; i++)
                free(c->bufs[i]);
        free(c->ds);
        free(c->bufs);
        free(c->lens);
}

static int closure_add(const cas_digest *d, const void *buf, size_t len, void *userdata)
{
        closure *c = userdata;

        if (c->n == c->alloc) {
                size_t na = c->alloc ? c->alloc * 2 : 64;
                cas_digest *nd = realloc(c->ds, na * sizeof(*nd));
                if (nd)
                        c->ds = nd;
                uint8_t **nb = realloc(c->bufs, na * sizeof(*nb));
                if (nb)
                        c->bufs = nb;
                size_t *nl = realloc(c->lens, na * sizeof(*nl));
                if (nl)
                        c->lens = nl;
                if (!nd || !nb || !nl)
                        return -ENOMEM;
                c->alloc = na;
        }
        c->bufs[c->n] = malloc(len ?: 1);
        if (!c->bufs[c->n])
                return -ENOMEM;
        if (len)
                memcpy(c->bufs[c->n], buf, len);
        c->ds[c->n] = *d;
        c->lens[c->n++] = len;
        return 0;
}

/* Fetches the closure of top (one dirs/ object), checks it frame by frame
 * (layout.c) and puts all of it into the cache in one transaction. */
static int fetch_closure(cache_metastore *cm, const cas_digest *top)
{
        char key[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ void *z = NULL;
        closure c = {0};
        cas_layout_error e;
        size_t zlen;
        int r;

        pthread_mutex_lock(&cm->closure_lock);
        /* fetched meanwhile by whoever held the lock */
        r = cm->local->ops->has_dir(cm->local, top);
        if (r != 0) {
                pthread_mutex_unlock(&cm->closure_lock);
                return r < 0 ? r : 0;
        }
        cas_layout_key(CAS_LAYOUT_DIRS, top, key);
        r = cas_objstore_get(cm->os, key, CAS_LAYOUT_DIRS_STORED_MAX, &z, &zlen);
        if (r < 0)
                r = transfer_failed(cm, r, key);
        else {
                r = cas_layout_dirs_decode(z, zlen, top, closure_add, &c, &e);
                if (r == -EBADMSG)
                        cas_log(CAS_LOG_ERR, "%s: directory closure %s is corrupt: %s", where(cm),
                                key, e.reason);
        }
        if (r >= 0 && c.n > 0)
                r = cm->local->ops->put_dirs(cm->local, c.ds, c.bufs, c.lens, c.n);
        pthread_mutex_unlock(&cm->closure_lock);
        closure_done(&c);
        return r < 0 ? r : 0;
}

static int cache_get_dir(cas_metastore *ms, const cas_digest *d, void **ret, size_t *ret_len)
{
        cache_metastore *cm = CACHE(ms);
        int r;

        r = cm->local->ops->get_dir(cm->local, d, ret, ret_len);
        if (r != -ENOENT)
                return r;
        /* not below a root looked up before: maybe a top itself */
        r = fetch_closure(cm, d);
        if (r < 0)
                return r;
        return cm->local->ops->get_dir(cm->local, d, ret, ret_len);
}

static int cache_has_dir(cas_metastore *ms, const cas_digest *d)
{
        cache_metastore *cm = CACHE(ms);
        int r = cm->local->ops->has_dir(cm->local, d);
        return r != 0 ? r : cm->remote->ops->has_dir(cm->remote, d);
}

static int cache_put_dirs(cas_metastore *ms, const cas_digest *ds, uint8_t *const *bufs,
                          const size_t *lens, size_t n)
{
        return CACHE(ms)->local->ops->put_dirs(CACHE(ms)->local, ds, bufs, lens, n);
}

static int cache_foreach_dir(cas_metastore *ms, cas_digest_cb cb, void *userdata)
{
        return CACHE(ms)->local->ops->foreach_dir(CACHE(ms)->local, cb, userdata);
}

static int cache_remove_dirs(cas_metastore *ms, const cas_digest *ds, size_t n)
{
        return -EOPNOTSUPP; /* the cache keeps every directory it has */
}

/* ---- roots: the remote's, asked again once older than refresh ---- */

static root_seen *root_find(cache_metastore *cm, const char *name)
{
        for (size_t i = 0; i < cm->n_roots; i++)
                if (strcmp(cm->roots[i].name, name) == 0)
                        return &cm->roots[i];
        return NULL;
}

/* The entry of name, added when missing. Called with the lock held. */
static root_seen *root_entry(cache_metastore *cm, const char *name)
{
        root_seen *s = root_find(cm, name);
        if (s)
                return s;
        if (CAS_GROW(cm->roots, cm->alloc_roots, cm->n_roots, 16) < 0)
                return NULL;
        s = &cm->roots[cm->n_roots];
        *s = (root_seen){.name = strdup(name)};
        if (!s->name)
                return NULL;
        cm->n_roots++;
        return s;
}

static int copy_out(const void *buf, size_t len, void **ret, size_t *ret_len)
{
        void *copy = malloc(len ?: 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, buf, len);
        *ret = copy;
        *ret_len = len;
        return 0;
}

/* Writes a root record (buf NULL: its removal) to the cache, so that the
 * cache stands on its own and answers while the remote does not. Only a
 * record that is a valid node carrying its name is kept. */
static void persist_root(cache_metastore *cm, const char *name, uint8_t *buf, size_t len)
{
        if (buf) {
                _cleanup_free_ cas_node *n = NULL;
                if (cas_node_decode(buf, len, &n, NULL) < 0 || n->name_len != strlen(name) ||
                    memcmp(n->name, name, n->name_len) != 0)
                        return;
        }
        (void)cm->local->ops->put_roots(cm->local, &name, &buf, &len, 1);
}

/* A directory root's closure is fetched with its root: walking a tree of
 * any size then costs no further request. */
static void fetch_root_closure(cache_metastore *cm, const void *buf, size_t len)
{
        _cleanup_free_ cas_node *n = NULL;

        if (cas_node_decode(buf, len, &n, NULL) < 0 || n->type != CAS_NODE_DIRECTORY)
                return;
        if (cm->local->ops->has_dir(cm->local, &n->digest) == 0)
                (void)fetch_closure(cm, &n->digest);
}

/* Asks the remote for root name when what was seen of it is older than
 * refresh (or force): conditionally, so that an unchanged root costs a 304.
 * Updates the entry; 0, or -errno when the remote did not answer. */
static int root_check(cache_metastore *cm, const char *name, bool force)
{
        _cleanup_free_ char *key = NULL, *etag = NULL, *new_etag = NULL;
        _cleanup_free_ void *buf = NULL;
        size_t len = 0;
        uint64_t now = now_ns();
        int r;

        pthread_mutex_lock(&cm->lock);
        root_seen *s = root_find(cm, name);
        if (s && s->checked && !force && now - s->checked < cm->refresh_ns) {
                pthread_mutex_unlock(&cm->lock);
                return 0;
        }
        if (s && s->etag && s->buf)
                etag = strdup(s->etag);
        pthread_mutex_unlock(&cm->lock);

        r = cas_layout_root_key(name, &key);
        if (r < 0)
                return r;
        r = cas_objstore_get_if_changed(cm->os, key, etag, CAS_LAYOUT_ROOT_MAX, &buf, &len,
                                        &new_etag);
        if (r < 0 && r != -ENOENT) {
                /* asked again after the next refresh period, not at every look */
                pthread_mutex_lock(&cm->lock);
                s = root_find(cm, name);
                if (s && s->checked)
                        s->checked = now_ns();
                pthread_mutex_unlock(&cm->lock);
                return transfer_failed(cm, r, key);
        }
        transfer_ok(cm);

        bool changed = false;
        pthread_mutex_lock(&cm->lock);
        s = root_entry(cm, name);
        if (!s) {
                pthread_mutex_unlock(&cm->lock);
                return -ENOMEM;
        }
        s->checked = now_ns();
        if (r == -ENOENT) {
                changed = s->buf != NULL;
                free(s->buf);
                s->buf = NULL;
                free(s->etag);
                s->etag = NULL;
        } else if (r > 0) {
                changed = !s->buf || s->len != len || memcmp(s->buf, buf, len) != 0;
                free(s->buf);
                s->buf = TAKE_PTR(buf);
                s->len = len;
                free(s->etag);
                s->etag = TAKE_PTR(new_etag);
        }
        void *rec = NULL;
        size_t rec_len = 0;
        if (changed && s->buf)
                (void)copy_out(s->buf, s->len, &rec, &rec_len);
        pthread_mutex_unlock(&cm->lock);
        if (changed) {
                atomic_fetch_add(&cm->generation, 1);
                persist_root(cm, name, rec, rec_len);
                free(rec);
        }
        return 0;
}

static int cache_get_root(cas_metastore *ms, const char *name, void **ret, size_t *ret_len)
{
        cache_metastore *cm = CACHE(ms);
        int r, k;

        if (cas_name_validate(name, strlen(name), NULL) < 0)
                return -ENOENT;
        k = root_check(cm, name, false);
        pthread_mutex_lock(&cm->lock);
        root_seen *s = root_find(cm, name);
        if (s && s->checked)
                r = s->buf ? copy_out(s->buf, s->len, ret, ret_len) : -ENOENT;
        else
                r = -ENODATA;
        pthread_mutex_unlock(&cm->lock);
        if (r == -ENODATA) {
                /* the remote did not answer and the root was not seen yet:
                 * the cache's record, from an earlier mount */
                r = cm->local->ops->get_root(cm->local, name, ret, ret_len);
                if (r == -ENOENT && k < 0)
                        r = k;
        }
        if (r >= 0)
                fetch_root_closure(cm, *ret, *ret_len);
        return r;
}

static int cache_foreach_root(cas_metastore *ms, raw_root_cb cb, void *userdata)
{
        cache_metastore *cm = CACHE(ms);
        int r = cm->remote->ops->foreach_root(cm->remote, cb, userdata);
        if (r == -EIO || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ECONNREFUSED)
                return cm->local->ops->foreach_root(cm->local, cb, userdata);
        return r;
}

static int cache_put_roots(cas_metastore *ms, const char *const *names, uint8_t *const *bufs,
                           const size_t *lens, size_t n)
{
        return -EROFS; /* roots are the remote's */
}

/* The roots seen change only when asked again: the ones older than refresh
 * are asked now (by the mount's housekeeping thread, which holds no lock of
 * the engine), then the count of changes seen is the generation. */
static int cache_generation(cas_metastore *ms, uint64_t *ret)
{
        cache_metastore *cm = CACHE(ms);
        uint64_t now = now_ns();
        char **due = NULL;
        size_t n_due = 0;

        pthread_mutex_lock(&cm->lock);
        if (cm->n_roots)
                due = calloc(cm->n_roots, sizeof(*due));
        for (size_t i = 0; due && i < cm->n_roots; i++)
                if (cm->roots[i].checked && now - cm->roots[i].checked >= cm->refresh_ns)
                        due[n_due++] = strdup(cm->roots[i].name);
        pthread_mutex_unlock(&cm->lock);
        for (size_t i = 0; i < n_due; i++) {
                if (due[i])
                        (void)root_check(cm, due[i], false);
                free(due[i]);
        }
        free(due);
        *ret = atomic_load(&cm->generation);
        return 0;
}

static void cache_release_memory(cas_metastore *ms)
{
        cas_metastore *local = CACHE(ms)->local;
        if (local->ops->release_memory)
                local->ops->release_memory(local);
}

static void cache_free(cas_metastore *ms)
{
        cache_metastore *cm = CACHE(ms);

        for (size_t i = 0; i < cm->n_roots; i++) {
                free(cm->roots[i].name);
                free(cm->roots[i].buf);
                free(cm->roots[i].etag);
        }
        free(cm->roots);
        pthread_mutex_destroy(&cm->lock);
        pthread_mutex_destroy(&cm->closure_lock);
        free(cm);
}

static const metastore_ops cache_ops = {
    .get_dir = cache_get_dir,
    .has_dir = cache_has_dir,
    .put_dirs = cache_put_dirs,
    .foreach_dir = cache_foreach_dir,
    .remove_dirs = cache_remove_dirs,
    .put_roots = cache_put_roots,
    .get_root = cache_get_root,
    .foreach_root = cache_foreach_root,
    .generation = cache_generation,
    .release_memory = cache_release_memory,
    .free = cache_free,
};

int cas_metastore_open_cache(cas_metastore *local, cas_metastore *remote, cas_objstore *os,
                             unsigned refresh_sec, cas_metastore **ret)
{
        cache_metastore *cm = calloc(1, sizeof(*cm));
        if (!cm)
                return -ENOMEM;
        cas_metastore_init(&cm->base, &cache_ops);
        cm->local = local;
        cm->remote = remote;
        cm->os = os;
        cm->refresh_ns = (uint64_t)(refresh_sec ?: 60) * 1000000000u;
        pthread_mutex_init(&cm->lock, NULL);
        pthread_mutex_init(&cm->closure_lock, NULL);
        *ret = &cm->base;
        return 0;
}
