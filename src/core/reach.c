/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "macro.h"
#include "reach.h"

static void problem(cas_reach *r, cas_fsck_kind kind, const cas_digest *d, uint64_t size, uint64_t want)
{
        cas_fsck_finding f = {.kind = kind, .root = r->root, .size = size, .want = want};

        r->problems++;
        if (!r->cb)
                return;
        if (d)
                f.digest = *d;
        r->cb(&f, r->userdata);
}

static void mark_blob(cas_reach *r, const cas_node *n)
{
        uint64_t size;

        if (cas_digest_map_get(&r->blobs, &n->digest, &size)) {
                if (size != n->size)
                        problem(r, CAS_FSCK_BLOB_SIZES, &n->digest, size, n->size);
                return;
        }
        (void)cas_digest_map_put(&r->blobs, &n->digest, n->size);
}

static int mark_directory(const cas_digest *d, const cas_directory *dir, int error, void *userdata)
{
        cas_reach *r = userdata;

        /* reached before through another root (a walk itself visits each
         * directory once): its subtree is marked already */
        if (cas_digest_map_get(&r->dirs, d, NULL))
                return 1;
        if (cas_digest_map_put(&r->dirs, d, 1) < 0)
                return -ENOMEM;
        if (!dir) {
                problem(r, error == -ENOENT ? CAS_FSCK_MISSING_DIRECTORY : CAS_FSCK_CORRUPT_DIRECTORY, d, 0, 0);
                return 0;
        }
        for (size_t i = 0; i < dir->n_files; i++)
                mark_blob(r, &dir->files[i]);
        return 0;
}

static int mark_root(const char *name, const cas_node *root, int error, void *userdata)
{
        cas_reach *r = userdata;

        if (!root) {
                /* its closure is unknown: gc must not run (it could delete
                 * what the root held before its record was damaged) */
                r->root = name;
                problem(r, CAS_FSCK_CORRUPT_ROOT, NULL, 0, 0);
                r->root = NULL;
                return 0;
        }
        r->roots++;
        r->root = root->name;
        if (root->type == CAS_NODE_FILE)
                mark_blob(r, root);
        if (root->type != CAS_NODE_DIRECTORY || cas_digest_map_get(&r->dirs, &root->digest, NULL))
                return 0;
        return cas_metastore_walk(r->meta, &root->digest, mark_directory, r);
}

int cas_reach_all(cas_reach *r)
{
        int k = cas_metastore_foreach_root_record(r->meta, mark_root, r);
        r->root = NULL;
        return k;
}

void cas_reach_done(cas_reach *r)
{
        cas_digest_map_done(&r->dirs);
        cas_digest_map_done(&r->blobs);
}

int cas_listing_add_blob(const cas_digest *d, uint64_t size, void *userdata)
{
        cas_listing *l = userdata;
        int r = 0;

        pthread_mutex_lock(&l->lock);
        if (l->n == l->alloc) {
                size_t na = l->alloc ? l->alloc * 2 : 1024;
                cas_digest *nd = realloc(l->d, na * sizeof(*nd));
                if (nd)
                        l->d = nd;
                uint64_t *ns = realloc(l->size, na * sizeof(*ns));
                if (ns)
                        l->size = ns;
                uint8_t *nst = realloc(l->state, na);
                if (nst)
                        l->state = nst;
                if (!nd || !ns || !nst)
                        r = -ENOMEM;
                else
                        l->alloc = na;
        }
        if (r == 0) {
                l->d[l->n] = *d;
                l->size[l->n] = size;
                l->state[l->n] = 0;
                l->n++;
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
                *ret_digest = l->d[*ret_index]; /* a copy: the arrays move as they grow */
                got = true;
        }
        pthread_mutex_unlock(&l->lock);
        return got;
}

void cas_listing_done(cas_listing *l)
{
        free(l->d);
        free(l->size);
        free(l->state);
        pthread_cond_destroy(&l->more);
        pthread_mutex_destroy(&l->lock);
}
