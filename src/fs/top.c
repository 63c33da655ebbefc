/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "top.h"

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_shown(cas_top *top)
{
        for (size_t k = 0; k < top->n_shown; k++)
                free(top->shown[k]);
        free(top->shown);
        top->shown = NULL;
        top->n_shown = 0;
}

/* Sorted bytewise (strcmp compares unsigned chars: the registry's order), so
 * that lookups are a binary search and listings come in name order. */
static int set_shown(cas_top *top, const char *const *roots, size_t n_roots)
{
        top->filtered = true;
        if (n_roots == 0)
                return 0;
        top->shown = calloc(n_roots, sizeof(char *));
        if (!top->shown)
                return -ENOMEM;
        for (size_t k = 0; k < n_roots; k++) {
                if (cas_name_validate(roots[k], strlen(roots[k]), NULL) < 0)
                        return -EINVAL;
                top->shown[k] = strdup(roots[k]);
                if (!top->shown[k])
                        return -ENOMEM;
                top->n_shown++;
        }
        qsort(top->shown, n_roots, sizeof(char *), name_cmp);
        size_t kept = 1;
        for (size_t k = 1; k < n_roots; k++) {
                if (strcmp(top->shown[k], top->shown[kept - 1]) == 0)
                        free(top->shown[k]);
                else
                        top->shown[kept++] = top->shown[k];
        }
        top->n_shown = kept;
        return 0;
}

int cas_top_init(cas_top *top, cas_metastore *meta, const cas_engine_transport *transport,
                 const char *const *roots, size_t n_roots)
{
        int r;

        *top = (cas_top){.meta = meta, .transport = transport};
        if (roots) {
                r = set_shown(top, roots, n_roots);
                if (r < 0) {
                        free_shown(top);
                        return r;
                }
        }
        pthread_mutex_init(&top->lock, NULL);
        (void)cas_metastore_roots_generation(meta, &top->generation);
        return 0;
}

void cas_top_done(cas_top *top)
{
        for (size_t k = 0; k < top->n; k++)
                free(top->names[k].name);
        free(top->names);
        free_shown(top);
        pthread_mutex_destroy(&top->lock);
}

bool cas_top_shows(const cas_top *top, const char *name)
{
        if (!top->filtered)
                return true;
        return top->n_shown > 0 &&
               bsearch(&name, top->shown, top->n_shown, sizeof(char *), name_cmp) != NULL;
}

typedef struct walk {
        cas_top_cb cb;
        void *userdata;
        uint64_t index, first;
} walk;

static int walk_cb(const cas_node *n, void *userdata)
{
        walk *w = userdata;
        uint64_t index = w->index++;

        return index < w->first ? 0 : w->cb(n, index, w->userdata);
}

int cas_top_foreach(cas_top *top, uint64_t first, cas_top_cb cb, void *userdata)
{
        int r;

        if (!top->filtered) {
                walk w = {.cb = cb, .userdata = userdata, .first = first};
                return cas_metastore_foreach_root(top->meta, walk_cb, &w);
        }
        /* one get per listed root from first on, not a walk of the whole
         * registry (on a remote store, a listing and a request per root) */
        for (size_t k = first; k < top->n_shown; k++) {
                _cleanup_free_ cas_node *n = NULL;
                r = cas_metastore_get_root(top->meta, top->shown[k], &n);
                /* gone, or damaged: not shown, as foreach_root leaves it out */
                if (r == -ENOENT || r == -EBADMSG)
                        continue;
                if (r < 0)
                        return r;
                r = cb(n, k, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

void cas_top_remember(cas_top *top, const char *name, const cas_inode *i)
{
        pthread_mutex_lock(&top->lock);
        for (size_t k = 0; k < top->n; k++)
                if (strcmp(top->names[k].name, name) == 0) {
                        top->names[k].key = i->digest;
                        top->names[k].type = i->type;
                        goto done;
                }
        if (CAS_GROW(top->names, top->alloc, top->n, 16) < 0)
                goto done;
        top->names[top->n].name = strdup(name);
        if (top->names[top->n].name) {
                top->names[top->n].key = i->digest;
                top->names[top->n].type = i->type;
                top->n++;
        }
done:
        pthread_mutex_unlock(&top->lock);
}

/* The inode key a root node maps to (as cas_inodes_lookup computes it). */
static void node_key(const cas_node *n, cas_digest *ret)
{
        if (n->type == CAS_NODE_SYMLINK)
                cas_digest_of(n->target, n->target_len, ret);
        else
                *ret = n->digest;
}

static int notify_inval_entry(cas_top *top, uint64_t parent, const char *name)
{
        struct fuse_out_header h = {.error = FUSE_NOTIFY_INVAL_ENTRY};
        struct fuse_notify_inval_entry_out o = {.parent = parent, .namelen = (uint32_t)strlen(name)};
        struct iovec iov[3] = {
                {&h, sizeof(h)},
                {&o, sizeof(o)},
                {(void *)name, o.namelen + 1},
        };
        h.len = (uint32_t)(sizeof(h) + sizeof(o) + o.namelen + 1);
        return top->transport->notify(top->transport->userdata, iov, 3);
}

static int notify_inval_inode(cas_top *top, uint64_t ino)
{
        struct fuse_out_header h = {.error = FUSE_NOTIFY_INVAL_INODE};
        struct fuse_notify_inval_inode_out o = {.ino = ino, .off = 0, .len = -1};
        struct iovec iov[2] = {{&h, sizeof(h)}, {&o, sizeof(o)}};
        h.len = sizeof(h) + sizeof(o);
        return top->transport->notify(top->transport->userdata, iov, 2);
}

int cas_top_refresh(cas_top *top, bool notify)
{
        uint64_t gen;
        int r;

        notify = notify && top->transport->notify;
        r = cas_metastore_roots_generation(top->meta, &gen);
        if (r < 0)
                return r;
        pthread_mutex_lock(&top->lock);
        if (gen == top->generation) {
                pthread_mutex_unlock(&top->lock);
                return 0;
        }
        top->generation = gen;
        /* names whose root changed or went: drop them from the kernel's cache */
        size_t kept = 0;
        for (size_t k = 0; k < top->n; k++) {
                cas_top_name *t = &top->names[k];
                _cleanup_free_ cas_node *n = NULL;
                cas_digest key;
                bool same = false;
                if (cas_metastore_get_root(top->meta, t->name, &n) >= 0) {
                        node_key(n, &key);
                        same = n->type == t->type && cas_digest_eq(&key, &t->key);
                }
                if (same) {
                        top->names[kept++] = *t;
                        continue;
                }
                if (notify)
                        (void)notify_inval_entry(top, CAS_ROOT_INO, t->name);
                free(t->name);
        }
        top->n = kept;
        pthread_mutex_unlock(&top->lock);
        /* the top's listing, cached by the kernel, changed too */
        if (notify)
                (void)notify_inval_inode(top, CAS_ROOT_INO);
        return 1;
}
