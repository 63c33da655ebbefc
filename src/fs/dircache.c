/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "dircache.h"
#include "log.h"
#include "macro.h"
#include "state.h"

void cas_dircache_init(cas_dircache *dc, cas_metastore *meta)
{
        dc->meta = meta;
        for (size_t k = 0; k < ELEMENTSOF(dc->locks); k++)
                pthread_mutex_init(&dc->locks[k], NULL);
}

void cas_dircache_done(cas_dircache *dc)
{
        for (size_t k = 0; k < ELEMENTSOF(dc->locks); k++)
                pthread_mutex_destroy(&dc->locks[k]);
}

void cas_dir_cache_unref(cas_dir_cache *c)
{
        if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
                free(c->dir);
                free(c);
        }
}

static pthread_mutex_t *dir_lock(cas_dircache *dc, const cas_inode *i)
{
        return &dc->locks[((uintptr_t)i >> 6) % ELEMENTSOF(dc->locks)];
}

int cas_dircache_get(cas_dircache *dc, cas_inode *i, cas_dir_cache **ret)
{
        cas_inode_state *st = cas_state(i);
        cas_dir_cache *c;
        cas_directory *d;
        int r;

        if (i->type != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        if (cas_state_verdict(i) == CAS_VERDICT_BAD)
                return -EIO;
        pthread_mutex_lock(dir_lock(dc, i));
        c = st->dcache;
        if (c)
                atomic_fetch_add(&c->refs, 1);
        pthread_mutex_unlock(dir_lock(dc, i));
        if (c) {
                *ret = c;
                return 0;
        }

        r = cas_metastore_get_directory(dc->meta, &i->digest, &d);
        if (r == -ENOENT || r == -EBADMSG) {
                /* a verdict on the record, not a passing failure: kept, so
                 * that neither the store read nor the log line repeats on every
                 * LOOKUP and READDIR (a file's failed blob check is kept the
                 * same way); of requests failing at once, one logs */
                if (atomic_exchange(&i->user_byte, CAS_VERDICT_BAD) != CAS_VERDICT_BAD) {
                        char text[CAS_DIGEST_TEXT_MAX];
                        cas_log(CAS_LOG_ERR, "directory %s is %s", cas_digest_to_text(&i->digest, text),
                                r == -ENOENT ? "missing from the store" : "corrupt in the store");
                }
                return -EIO;
        }
        if (r < 0)
                return r;
        c = malloc(sizeof(*c) + (d->n_nodes ?: 1) * sizeof(uint32_t));
        if (!c) {
                free(d);
                return -ENOMEM;
        }
        c->dir = d;
        c->refs = 2; /* the inode's and the caller's */
        cas_directory_name_order(d, c->order);

        pthread_mutex_lock(dir_lock(dc, i));
        if (st->dcache) {
                /* loaded meanwhile by another request: use that one */
                cas_dir_cache *other = st->dcache;
                atomic_fetch_add(&other->refs, 1);
                pthread_mutex_unlock(dir_lock(dc, i));
                free(d);
                free(c);
                *ret = other;
                return 0;
        }
        st->dcache = c;
        pthread_mutex_unlock(dir_lock(dc, i));
        *ret = c;
        return 0;
}

void cas_dircache_drop(cas_dircache *dc, cas_inode *i)
{
        pthread_mutex_lock(dir_lock(dc, i));
        cas_dir_cache *c = cas_state(i)->dcache;
        cas_state(i)->dcache = NULL;
        pthread_mutex_unlock(dir_lock(dc, i));
        cas_dir_cache_unref(c);
}
