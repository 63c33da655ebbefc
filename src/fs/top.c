/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <linux/fuse.h>
#include <stdlib.h>

#include "macro.h"
#include "top.h"

void cas_top_init(cas_top *top, cas_metastore *meta, const cas_engine_transport *transport)
{
        *top = (cas_top){.meta = meta, .transport = transport};
        pthread_mutex_init(&top->lock, NULL);
        (void)cas_metastore_roots_generation(meta, &top->generation);
}

void cas_top_done(cas_top *top)
{
        for (size_t k = 0; k < top->n; k++)
                free(top->names[k].name);
        free(top->names);
        pthread_mutex_destroy(&top->lock);
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
        if (top->n == top->alloc) {
                size_t n = top->alloc ? top->alloc * 2 : 16;
                void *p = realloc(top->names, n * sizeof(*top->names));
                if (!p)
                        goto done;
                top->names = p;
                top->alloc = n;
        }
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
