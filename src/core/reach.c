/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "macro.h"
#include "reach.h"

static void problem(cas_reach *rc, cas_fsck_kind kind, const cas_digest *d, uint64_t size, uint64_t want)
{
        cas_fsck_finding f = {.kind = kind, .root = rc->root, .size = size, .want = want};

        rc->problems++;
        if (!rc->cb)
                return;
        if (d)
                f.digest = *d;
        rc->cb(&f, rc->userdata);
}

static void mark_blob(cas_reach *rc, const cas_node *n)
{
        uint64_t size;

        if (cas_digest_map_get(&rc->blobs, &n->digest, &size)) {
                if (size != n->size)
                        problem(rc, CAS_FSCK_BLOB_SIZES, &n->digest, size, n->size);
                return;
        }
        (void)cas_digest_map_put(&rc->blobs, &n->digest, n->size);
}

static int mark_directory(const cas_digest *d, const cas_directory *dir, int error, void *userdata)
{
        cas_reach *rc = userdata;

        /* reached before through another root (a walk itself visits each
         * directory once): its subtree is marked already */
        if (cas_digest_map_get(&rc->dirs, d, NULL))
                return 1;
        if (cas_digest_map_put(&rc->dirs, d, 1) < 0)
                return -ENOMEM;
        if (!dir) {
                problem(rc, error == -ENOENT ? CAS_FSCK_MISSING_DIRECTORY : CAS_FSCK_CORRUPT_DIRECTORY, d, 0, 0);
                return 0;
        }
        for (size_t i = 0; i < dir->n_files; i++)
                mark_blob(rc, &dir->files[i]);
        return 0;
}

static int mark_root(const char *name, const cas_node *root, int error, void *userdata)
{
        cas_reach *rc = userdata;

        if (!root) {
                /* its closure is unknown: gc must not run (it could delete
                 * what the root held before its record was damaged) */
                rc->root = name;
                problem(rc, CAS_FSCK_CORRUPT_ROOT, NULL, 0, 0);
                rc->root = NULL;
                return 0;
        }
        rc->roots++;
        rc->root = root->name;
        if (root->type == CAS_NODE_FILE)
                mark_blob(rc, root);
        if (root->type != CAS_NODE_DIRECTORY || cas_digest_map_get(&rc->dirs, &root->digest, NULL))
                return 0;
        return cas_metastore_walk(rc->meta, &root->digest, mark_directory, rc);
}

int cas_reach_all(cas_reach *rc)
{
        int k = cas_metastore_foreach_root_record(rc->meta, mark_root, rc);
        rc->root = NULL;
        return k;
}

void cas_reach_done(cas_reach *rc)
{
        cas_digest_map_done(&rc->dirs);
        cas_digest_map_done(&rc->blobs);
}

int cas_listing_add_blob(const cas_digest *d, uint64_t size, void *userdata)
{
        cas_listing *l = userdata;
        int r = 0;

        pthread_mutex_lock(&l->lock);
        r = CAS_GROW(l->items, l->alloc, l->n, 1024);
        if (r == 0) {
                l->items[l->n++] = (cas_listed){.digest = *d, .size = size};
                /* a worker woken per blob costs more than the blob: one per batch */
                if (l->n % CAS_LISTING_BATCH == 0)
                        pthread_cond_signal(&l->more);
        }
        pthread_mutex_unlock(&l->lock);
        return r;
}

int cas_listing_add(const cas_digest *d, void *userdata)
{
        return cas_listing_add_blob(d, CAS_BLOB_SIZE_UNKNOWN, userdata);
}

void cas_listing_end(cas_listing *l, bool failed)
{
        pthread_mutex_lock(&l->lock);
        l->listed = true;
        if (failed)
                l->next = l->n;
        pthread_cond_broadcast(&l->more);
        pthread_mutex_unlock(&l->lock);
}

bool cas_listing_take(cas_listing *l, size_t *ret_index, cas_digest *ret_digest)
{
        bool got = false;

        pthread_mutex_lock(&l->lock);
        while (l->next >= l->n && !l->listed)
                pthread_cond_wait(&l->more, &l->lock);
        if (l->next < l->n) {
                *ret_index = l->next++;
                *ret_digest = l->items[*ret_index].digest; /* a copy: the array moves as it grows */
                got = true;
        }
        pthread_mutex_unlock(&l->lock);
        return got;
}

void cas_listing_done(cas_listing *l)
{
        free(l->items);
        pthread_cond_destroy(&l->more);
        pthread_mutex_destroy(&l->lock);
}
