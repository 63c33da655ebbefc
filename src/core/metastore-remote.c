/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdatomic.h>

#include "digestmap.h"
#include "layout.h"
#include "log.h"
#include "macro.h"
#include "metastore-backend.h"
#include "objstore.h"

/* Directories and roots in an object store (docs/FORMAT.md, "Remote
 * stores"). Only the top of a tree has an object, dirs/b3/HHHH/<top>, which
 * holds the whole closure; a closure is fetched whole, checked whole
 * (layout.c) and kept in memory, so that the directories below the top are
 * served from there. Writing a closure writes the object of its top with
 * every directory below it, also those that were stored before: each tree's
 * object stands on its own. The memory kept here is where a later local
 * cache would take over (the closures are checked, canonical bytes). */

typedef struct dir_rec {
        void *buf;
        size_t len;
} dir_rec;

typedef struct remote_metastore {
        cas_metastore base;
        cas_objstore *os;
        pthread_mutex_t lock; /* protects everything below */
        cas_digest_map dirs;  /* digest -> index into recs: directories fetched or written */
        dir_rec *recs;
        size_t n_recs, alloc_recs;
        cas_digest_map tops; /* dirs/ objects known to be there */
        _Atomic int tops_listed; /* 1: tops holds the listing of dirs/; -1: it failed */
} remote_metastore;

#define REMOTE(ms) ((remote_metastore *)(ms))

static const char *where(remote_metastore *rm)
{
        return cas_objstore_address(rm->os);
}

static int transfer_failed(remote_metastore *rm, int r, const char *key)
{
        return cas_objstore_failed(where(rm), key, r, "allowed", NULL, NULL);
}

/* Keeps a directory's bytes (a copy), once. Called with the lock held. */
static int remember(remote_metastore *rm, const cas_digest *d, const void *buf, size_t len)
{
        void *copy;

        if (cas_digest_map_get(&rm->dirs, d, NULL))
                return 0;
        if (CAS_GROW(rm->recs, rm->alloc_recs, rm->n_recs, 256) < 0)
                return -ENOMEM;
        copy = malloc(len ?: 1);
        if (!copy)
                return -ENOMEM;
        if (len) /* the empty directory's bytes are none (and may be NULL) */
                memcpy(copy, buf, len);
        int r = cas_digest_map_put(&rm->dirs, d, rm->n_recs);
        if (r < 0) {
                free(copy);
                return r;
        }
        rm->recs[rm->n_recs++] = (dir_rec){copy, len};
        return 0;
}

/* Hands out a copy of a directory kept in memory: 0, or -ENOENT. */
static int recall(remote_metastore *rm, const cas_digest *d, void **ret, size_t *ret_len)
{
        uint64_t i;
        int r = -ENOENT;

        pthread_mutex_lock(&rm->lock);
        if (cas_digest_map_get(&rm->dirs, d, &i)) {
                void *copy = malloc(rm->recs[i].len ?: 1);
                if (copy) {
                        memcpy(copy, rm->recs[i].buf, rm->recs[i].len);
                        *ret = copy;
                        *ret_len = rm->recs[i].len;
                        r = 0;
                } else
                        r = -ENOMEM;
        }
        pthread_mutex_unlock(&rm->lock);
        return r;
}

static int remember_cb(const cas_digest *d, const void *buf, size_t len, void *userdata)
{
        return remember(userdata, d, buf, len);
}

/* Fetches and checks the closure of top, keeping all of it. -ENOENT when
 * there is no such object, -EBADMSG (said) when it does not check. */
static int fetch_closure(remote_metastore *rm, const cas_digest *top)
{
        char key[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ void *z = NULL;
        cas_layout_error e;
        size_t zlen;
        int r;

        cas_layout_key(CAS_LAYOUT_DIRS, top, key);
        r = cas_objstore_get(rm->os, key, CAS_LAYOUT_DIRS_STORED_MAX, &z, &zlen);
        if (r < 0)
                return transfer_failed(rm, r, key);
        pthread_mutex_lock(&rm->lock);
        r = cas_layout_dirs_decode(z, zlen, top, remember_cb, rm, &e);
        if (r >= 0)
                r = cas_digest_map_put(&rm->tops, top, 1);
        pthread_mutex_unlock(&rm->lock);
        if (r == -EBADMSG)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: directory closure %s is corrupt: %s",
                                     where(rm), key, e.reason);
        return r < 0 ? r : 0;
}

static int remote_get_dir(cas_metastore *ms, const cas_digest *d, void **ret, size_t *ret_len)
{
        remote_metastore *rm = REMOTE(ms);
        int r;

        r = recall(rm, d, ret, ret_len);
        if (r != -ENOENT)
                return r;
        /* not reached through a top fetched before: maybe a top itself */
        r = fetch_closure(rm, d);
        if (r < 0)
                return r;
        return recall(rm, d, ret, ret_len);
}

static int lookup_cb(const cas_digest *d, const void **ret, size_t *ret_len, void *userdata)
{
        remote_metastore *rm = userdata;
        uint64_t i;

        if (!cas_digest_map_get(&rm->dirs, d, &i))
                return -ENOENT;
        *ret = rm->recs[i].buf;
        *ret_len = rm->recs[i].len;
        return 0;
}

static int remote_has_dir(cas_metastore *ms, const cas_digest *d);

/* The metastore above checked the closure (leaves first, sizes, one root);
 * here it becomes one object, named by its root, holding everything below. */
static int remote_put_dirs(cas_metastore *ms, const cas_digest *ds, uint8_t *const *bufs,
                           const size_t *lens, size_t n)
{
        remote_metastore *rm = REMOTE(ms);
        cas_digest_map referenced = {0};
        char key[CAS_LAYOUT_KEY_MAX];
        _cleanup_free_ void *z = NULL;
        const cas_digest *top = NULL;
        size_t zlen;
        int r = 0;

        if (n == 0)
                return 0;
        pthread_mutex_lock(&rm->lock);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ cas_directory *dir = NULL;
                r = remember(rm, &ds[i], bufs[i], lens[i]);
                if (r >= 0)
                        r = cas_directory_decode(bufs[i], lens[i], &dir, NULL);
                for (size_t c = 0; r >= 0 && c < dir->n_directories; c++)
                        r = cas_digest_map_put(&referenced, &dir->directories[c].digest, 1);
        }
        for (size_t i = 0; r >= 0 && i < n && !top; i++)
                if (!cas_digest_map_get(&referenced, &ds[i], NULL))
                        top = &ds[i];
        if (r >= 0 && !top)
                r = -EBADMSG;
        pthread_mutex_unlock(&rm->lock);
        cas_digest_map_done(&referenced);
        if (r < 0)
                return r;
        /* stored before (its object holds the same closure): not again */
        r = remote_has_dir(ms, top);
        if (r != 0)
                return r < 0 ? r : 0;
        pthread_mutex_lock(&rm->lock);
        r = cas_layout_dirs_encode(top, lookup_cb, rm, &z, &zlen);
        pthread_mutex_unlock(&rm->lock);
        if (r < 0)
                return r;
        cas_layout_key(CAS_LAYOUT_DIRS, top, key);
        r = cas_objstore_put(rm->os, key, z, zlen);
        if (r < 0)
                return transfer_failed(rm, r, key);
        pthread_mutex_lock(&rm->lock);
        r = cas_digest_map_put(&rm->tops, top, 1);
        pthread_mutex_unlock(&rm->lock);
        return r < 0 ? r : 0;
}

static int top_list_cb(const char *key, uint64_t size, void *userdata)
{
        remote_metastore *rm = userdata;
        cas_digest d;

        if (cas_layout_parse_key(key, CAS_LAYOUT_DIRS, &d) < 0)
                return 0;
        pthread_mutex_lock(&rm->lock);
        int r = cas_digest_map_put(&rm->tops, &d, 0);
        pthread_mutex_unlock(&rm->lock);
        return r < 0 ? r : 0;
}

/* Lists dirs/ (only tops have objects). */
static int list_tops(remote_metastore *rm)
{
        int r = cas_objstore_list(rm->os, CAS_LAYOUT_DIRS, top_list_cb, rm);
        if (r == -ENOENT)
                return 0;
        if (r == -EOPNOTSUPP)
                return r; /* http: the caller asks per object */
        return r < 0 ? transfer_failed(rm, r, CAS_LAYOUT_DIRS) : 0;
}

static int remote_has_dir(cas_metastore *ms, const cas_digest *d)
{
        remote_metastore *rm = REMOTE(ms);
        char key[CAS_LAYOUT_KEY_MAX];
        uint64_t size;
        int r;

        /* dirs/ is listed once, rather than asked about each tree */
        if (rm->tops_listed == 0)
                rm->tops_listed = list_tops(rm) < 0 ? -1 : 1;
        /* only a top has its own object: a directory known from inside
         * another's closure is not one a root could point at */
        pthread_mutex_lock(&rm->lock);
        bool found = cas_digest_map_get(&rm->tops, d, NULL);
        pthread_mutex_unlock(&rm->lock);
        if (found)
                return 1;
        if (rm->tops_listed > 0)
                return 0;
        cas_layout_key(CAS_LAYOUT_DIRS, d, key);
        r = cas_objstore_head(rm->os, key, &size);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? transfer_failed(rm, r, key) : 1;
}

/* Every directory of every closure: each top's object is fetched and
 * checked; a top whose object does not check is still listed (reading it
 * then fails, which is how fsck finds it). */
static int remote_foreach_dir(cas_metastore *ms, cas_digest_cb cb, void *userdata)
{
        remote_metastore *rm = REMOTE(ms);
        cas_digest_map all = {0};
        cas_digest d;
        uint64_t v;
        int r;

        r = list_tops(rm);
        pthread_mutex_lock(&rm->lock);
        for (size_t it = 0; r >= 0 && cas_digest_map_next(&rm->tops, &it, &d, &v);)
                r = cas_digest_map_put(&all, &d, 0);
        pthread_mutex_unlock(&rm->lock);
        for (size_t it = 0; r >= 0 && cas_digest_map_next(&all, &it, &d, &v);) {
                int k = 0;
                pthread_mutex_lock(&rm->lock);
                bool loaded = cas_digest_map_get(&rm->dirs, &d, NULL);
                pthread_mutex_unlock(&rm->lock);
                if (!loaded)
                        k = fetch_closure(rm, &d);
                if (k < 0 && k != -EBADMSG && k != -ENOENT)
                        r = k;
        }
        pthread_mutex_lock(&rm->lock);
        for (size_t it = 0; r >= 0 && cas_digest_map_next(&rm->dirs, &it, &d, &v);)
                r = cas_digest_map_put(&all, &d, 0);
        pthread_mutex_unlock(&rm->lock);
        if (r > 0)
                r = 0; /* the last put was new */
        for (size_t it = 0; r == 0 && cas_digest_map_next(&all, &it, &d, &v);)
                r = cb(&d, userdata);
        cas_digest_map_done(&all);
        return r;
}

static int remote_remove_dirs(cas_metastore *ms, const cas_digest *ds, size_t n)
{
        /* a directory below a top lives inside other objects */
        return -EOPNOTSUPP;
}

/* ---- roots ---- */

static int remote_get_root(cas_metastore *ms, const char *name, void **ret, size_t *ret_len)
{
        remote_metastore *rm = REMOTE(ms);
        _cleanup_free_ char *key = NULL;
        int r;

        if (cas_name_validate(name, strlen(name), NULL) < 0)
                return -ENOENT;
        r = cas_layout_root_key(name, &key);
        if (r < 0)
                return r;
        r = cas_objstore_get(rm->os, key, CAS_LAYOUT_ROOT_MAX, ret, ret_len);
        return r < 0 ? transfer_failed(rm, r, key) : 0;
}

typedef struct name_list {
        char **names;
        size_t n, alloc;
} name_list;

static int name_list_cb(const char *key, uint64_t size, void *userdata)
{
        name_list *l = userdata;
        const char *name = key + strlen(CAS_LAYOUT_ROOTS);

        if (strncmp(key, CAS_LAYOUT_ROOTS, strlen(CAS_LAYOUT_ROOTS)) != 0 || !*name ||
            strchr(name, '/'))
                return 0;
        if (CAS_GROW(l->names, l->alloc, l->n, 32) < 0)
                return -ENOMEM;
        l->names[l->n] = strdup(name);
        if (!l->names[l->n])
                return -ENOMEM;
        l->n++;
        return 0;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_list_done(name_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
}

typedef int (*raw_root_each)(const char *name, const void *buf, size_t len, void *userdata);

/* Each root record under roots/, in name order. */
static int each_listed_root(remote_metastore *rm, raw_root_each each, void *userdata)
{
        name_list l = {0};
        int r;

        r = cas_objstore_list(rm->os, CAS_LAYOUT_ROOTS, name_list_cb, &l);
        if (r == -ENOENT)
                r = 0;
        if (r < 0) {
                name_list_done(&l);
                return r;
        }
        if (l.n)
                qsort(l.names, l.n, sizeof(char *), name_cmp);
        for (size_t i = 0; r == 0 && i < l.n; i++) {
                _cleanup_free_ void *buf = NULL;
                size_t len;
                r = remote_get_root(&rm->base, l.names[i], &buf, &len);
                if (r == -ENOENT) { /* removed meanwhile */
                        r = 0;
                        continue;
                }
                if (r < 0)
                        break;
                r = each(l.names[i], buf, len, userdata);
        }
        name_list_done(&l);
        return r;
}

typedef struct index_ctx {
        raw_root_cb cb;
        void *userdata;
} index_ctx;

static int index_entry_cb(const void *buf, size_t len, void *userdata)
{
        index_ctx *c = userdata;
        _cleanup_free_ cas_node *n = NULL;

        /* the index is a listing only: a record that does not decode has no
         * name to show it under */
        if (cas_node_decode(buf, len, &n, NULL) < 0 || n->name_len == 0)
                return 0;
        return c->cb(n->name, n->name_len, buf, len, c->userdata);
}

typedef struct raw_ctx {
        raw_root_cb cb;
        void *userdata;
} raw_ctx;

static int raw_each(const char *name, const void *buf, size_t len, void *userdata)
{
        raw_ctx *c = userdata;
        return c->cb(name, strlen(name), buf, len, c->userdata);
}

static int remote_foreach_root(cas_metastore *ms, raw_root_cb cb, void *userdata)
{
        remote_metastore *rm = REMOTE(ms);
        raw_ctx rc = {cb, userdata};
        _cleanup_free_ void *buf = NULL;
        size_t len;
        int r;

        r = each_listed_root(rm, raw_each, &rc);
        if (r != -EOPNOTSUPP)
                return r < 0 ? transfer_failed(rm, r, CAS_LAYOUT_ROOTS) : r;
        /* no listing (http): the index the writers keep */
        r = cas_objstore_get(rm->os, CAS_LAYOUT_ROOTS_INDEX, CAS_LAYOUT_ROOTS_INDEX_MAX, &buf,
                             &len);
        if (r == -ENOENT)
                return 0; /* no root was ever written */
        if (r < 0)
                return transfer_failed(rm, r, CAS_LAYOUT_ROOTS_INDEX);
        index_ctx c = {cb, userdata};
        r = cas_layout_roots_index_decode(buf, len, index_entry_cb, &c);
        if (r == -EBADMSG)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: %s is corrupt", where(rm),
                                     CAS_LAYOUT_ROOTS_INDEX);
        return r;
}

typedef struct index_build {
        uint8_t **nodes;
        size_t *lens;
        size_t n, alloc;
} index_build;

static int index_add(const char *name, const void *buf, size_t len, void *userdata)
{
        index_build *b = userdata;
        if (b->n == b->alloc) {
                size_t na = b->alloc ? b->alloc * 2 : 32;
                uint8_t **nn = realloc(b->nodes, na * sizeof(*nn));
                if (nn)
                        b->nodes = nn;
                size_t *nl = realloc(b->lens, na * sizeof(*nl));
                if (nl)
                        b->lens = nl;
                if (!nn || !nl)
                        return -ENOMEM;
                b->alloc = na;
        }
        b->nodes[b->n] = malloc(len ?: 1);
        if (!b->nodes[b->n])
                return -ENOMEM;
        memcpy(b->nodes[b->n], buf, len);
        b->lens[b->n++] = len;
        return 0;
}

/* Rewrites roots.index from roots/ as it is now. */
static int write_index(remote_metastore *rm)
{
        index_build b = {0};
        _cleanup_free_ uint8_t *index = NULL;
        size_t len;
        int r;

        r = each_listed_root(rm, index_add, &b);
        if (r >= 0)
                r = cas_layout_roots_index_encode(b.nodes, b.lens, b.n, &index, &len);
        if (r >= 0) {
                r = cas_objstore_put(rm->os, CAS_LAYOUT_ROOTS_INDEX, index, len);
                if (r < 0)
                        r = transfer_failed(rm, r, CAS_LAYOUT_ROOTS_INDEX);
        }
        for (size_t i = 0; i < b.n; i++)
                free(b.nodes[i]);
        free(b.nodes);
        free(b.lens);
        return r;
}

/* Each root is its own object: several roots change one after the other, not
 * at once (an object store has no transactions). */
static int remote_put_roots(cas_metastore *ms, const char *const *names, uint8_t *const *bufs,
                            const size_t *lens, size_t n)
{
        remote_metastore *rm = REMOTE(ms);
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *key = NULL;
                for (const char *p = names[i]; *p; p++)
                        if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                return cas_log_errno(
                                    CAS_LOG_ERR, -EINVAL,
                                    "%s: a root name with control characters cannot be a key there",
                                    where(rm));
                r = cas_layout_root_key(names[i], &key);
                if (r < 0)
                        break;
                if (bufs[i])
                        r = cas_objstore_put(rm->os, key, bufs[i], lens[i]);
                else
                        r = cas_objstore_delete(rm->os, key);
                if (r < 0)
                        r = transfer_failed(rm, r, key);
        }
        if (r >= 0)
                r = write_index(rm);
        return r;
}

static int remote_generation(cas_metastore *ms, uint64_t *ret)
{
        *ret = 0;
        return 0;
}

static void remote_free(cas_metastore *ms)
{
        remote_metastore *rm = REMOTE(ms);

        for (size_t i = 0; i < rm->n_recs; i++)
                free(rm->recs[i].buf);
        free(rm->recs);
        cas_digest_map_done(&rm->dirs);
        cas_digest_map_done(&rm->tops);
        pthread_mutex_destroy(&rm->lock);
        free(rm);
}

static const metastore_ops remote_ops = {
    .get_dir = remote_get_dir,
    .has_dir = remote_has_dir,
    .put_dirs = remote_put_dirs,
    .foreach_dir = remote_foreach_dir,
    .remove_dirs = remote_remove_dirs,
    .put_roots = remote_put_roots,
    .get_root = remote_get_root,
    .foreach_root = remote_foreach_root,
    .generation = remote_generation,
    .free = remote_free,
};

int cas_metastore_open_remote(cas_objstore *os, cas_metastore **ret)
{
        remote_metastore *rm = calloc(1, sizeof(*rm));
        if (!rm)
                return -ENOMEM;
        cas_metastore_init(&rm->base, &remote_ops);
        rm->os = os;
        pthread_mutex_init(&rm->lock, NULL);
        *ret = &rm->base;
        return 0;
}
