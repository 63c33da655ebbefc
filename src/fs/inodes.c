/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "inodes.h"
#include "macro.h"
#include "log.h"

/* Both maps are split into shards, each with its own lock, so that lookups
 * on different inodes do not serialize on one lock. */
#define SHARDS 64
#define MIN_BUCKETS 16

typedef struct shard {
        pthread_mutex_t lock; /* protects buckets, n_buckets, n and the chains */
        cas_inode **buckets;
        size_t n_buckets; /* a power of two */
        size_t n;
        /* the buckets of a small shard: an empty table takes no allocation of
         * its own, so tables shrunk after FORGETs leave no small blocks
         * scattered over the heap (each would keep a page of it resident) */
        cas_inode *few[MIN_BUCKETS];
} shard;

struct cas_inodes {
        shard by_key[SHARDS]; /* chains through next_by_key */
        shard by_ino[SHARDS]; /* chains through next_by_ino */
        _Atomic uint64_t next_ino;
        _Atomic uint64_t count;
        _Atomic uint64_t freed;
        cas_inode *root;
        size_t state_size;
        cas_inode_release_fn release; /* see cas_inodes_new */
        void *release_userdata;
};

/* An inode's key is everything its attributes come from: type, executable
 * bit, size and digest. The size is not implied by the digest when a record
 * lies about it (a FileNode giving its blob the wrong size): such a record
 * gets an inode of its own, which reads as EIO, and never changes the size
 * of the intact files with that blob. Intact records of the same content
 * agree on the size and still share one inode (SPEC.md §5). */
static uint64_t key_hash(uint8_t type, bool executable, uint64_t size, const cas_digest *d)
{
        uint64_t h;
        memcpy(&h, d->bytes + 8, sizeof(h));
        return h ^ ((uint64_t)type << 1) ^ (uint64_t)executable ^ (size * 0x9e3779b97f4a7c15ull);
}

static uint64_t ino_hash(uint64_t ino)
{
        ino *= 0x9e3779b97f4a7c15ull;
        return ino ^ (ino >> 29);
}

static bool same_key(const cas_inode *i, uint8_t type, bool executable, uint64_t size,
                     const cas_digest *d)
{
        return i->type == type && i->executable == executable && i->size == size &&
               cas_digest_eq(&i->digest, d);
}

/* Rehashes a shard into n buckets: twice as many as it grows, half as many
 * once the kernel forgot most of it, so memory follows the live inodes. */
static int shard_resize(shard *s, bool by_key, size_t n)
{
        cas_inode *old_few[MIN_BUCKETS], **old = s->buckets;
        cas_inode **b;

        n = MAX(n, (size_t)MIN_BUCKETS);
        if (n == MIN_BUCKETS) {
                /* the inline buckets are the target: move what they hold aside */
                if (old == s->few) {
                        memcpy(old_few, s->few, sizeof(old_few));
                        old = old_few;
                }
                b = s->few;
                memset(b, 0, sizeof(s->few));
        } else if (!(b = calloc(n, sizeof(*b))))
                return -ENOMEM;
        for (size_t k = 0; k < s->n_buckets; k++) {
                cas_inode *i = old[k], *next;
                for (; i; i = next) {
                        uint64_t h;
                        if (by_key) {
                                next = i->next_by_key;
                                h = key_hash(i->type, i->executable, i->size, &i->digest) / SHARDS;
                                i->next_by_key = b[h & (n - 1)];
                        } else {
                                next = i->next_by_ino;
                                h = ino_hash(i->ino) / SHARDS;
                                i->next_by_ino = b[h & (n - 1)];
                        }
                        b[h & (n - 1)] = i;
                }
        }
        if (s->buckets != s->few)
                free(s->buckets);
        s->buckets = b;
        s->n_buckets = n;
        return 0;
}

int cas_inodes_new(size_t state_size, cas_inode_release_fn release, void *userdata, cas_inodes **ret)
{
        cas_inodes *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->root = calloc(1, sizeof(cas_inode) + state_size);
        if (!t->root) {
                free(t);
                return -ENOMEM;
        }
        for (int k = 0; k < SHARDS; k++) {
                pthread_mutex_init(&t->by_key[k].lock, NULL);
                pthread_mutex_init(&t->by_ino[k].lock, NULL);
        }
        t->state_size = state_size;
        t->release = release;
        t->release_userdata = userdata;
        t->next_ino = CAS_ROOT_INO + 1;
        t->root->ino = CAS_ROOT_INO;
        t->root->type = 0;
        t->root->refs = 1;
        t->root->nlookup = 1;
        *ret = t;
        return 0;
}

static void inode_free(cas_inodes *t, cas_inode *i, bool forgotten)
{
        if (i->type != CAS_NODE_SYMLINK && t->release)
                t->release(i, forgotten, t->release_userdata);
        free(i);
}

cas_inodes *cas_inodes_free(cas_inodes *t)
{
        if (!t)
                return NULL;
        for (int k = 0; k < SHARDS; k++) {
                shard *s = &t->by_ino[k];
                for (size_t b = 0; b < s->n_buckets; b++) {
                        cas_inode *i = s->buckets[b], *next;
                        for (; i; i = next) {
                                next = i->next_by_ino;
                                inode_free(t, i, false);
                        }
                }
                if (s->buckets != s->few)
                        free(s->buckets);
                if (t->by_key[k].buckets != t->by_key[k].few)
                        free(t->by_key[k].buckets);
                pthread_mutex_destroy(&t->by_key[k].lock);
                pthread_mutex_destroy(&s->lock);
        }
        inode_free(t, t->root, false);
        free(t);
        return NULL;
}

cas_inode *cas_inodes_root(cas_inodes *t)
{
        return t->root;
}

uint64_t cas_inodes_count(cas_inodes *t)
{
        return atomic_load(&t->count);
}

uint64_t cas_inodes_freed(cas_inodes *t)
{
        return atomic_load(&t->freed);
}

int cas_inodes_lookup(cas_inodes *t, const cas_node *node, cas_inode **ret)
{
        cas_digest key = node->digest;
        bool executable = node->type == CAS_NODE_FILE && node->executable;
        uint64_t size = node->type == CAS_NODE_SYMLINK ? node->target_len : node->size;
        uint8_t type = (uint8_t)node->type;
        uint64_t h;
        shard *ks;
        cas_inode *i;

        if (node->type == CAS_NODE_SYMLINK) {
                /* symlinks are keyed by their target */
                cas_digest_of(node->target, node->target_len, &key);
        }
        h = key_hash(type, executable, size, &key);
        ks = &t->by_key[h % SHARDS];

        pthread_mutex_lock(&ks->lock);
        if (ks->n_buckets)
                for (i = ks->buckets[(h / SHARDS) & (ks->n_buckets - 1)]; i; i = i->next_by_key)
                        if (same_key(i, type, executable, size, &key)) {
                                /* a kernel holding it already (nlookup > 0) owns one ref;
                                 * found at 0 it is between FORGET and removal, and the
                                 * FORGET will see the count back above 0 and keep it */
                                atomic_fetch_add(&i->nlookup, 1);
                                atomic_fetch_add(&i->refs, 1);
                                pthread_mutex_unlock(&ks->lock);
                                *ret = i;
                                return 0;
                        }

        /* a symlink's tail holds its target, any other's the user's state */
        i = calloc(1, sizeof(*i) + (node->type == CAS_NODE_SYMLINK ? (size_t)size + 1 : t->state_size));
        if (!i)
                goto nomem;
        i->type = type;
        i->executable = executable;
        i->digest = key;
        i->size = size;
        if (node->type == CAS_NODE_SYMLINK)
                memcpy(i->tail, node->target, node->target_len);
        i->nlookup = 1;
        i->refs = 2; /* the kernel's and the caller's */
        i->ino = atomic_fetch_add(&t->next_ino, 1);

        if (ks->n * 2 >= ks->n_buckets && shard_resize(ks, true, ks->n_buckets * 2) < 0)
                goto nomem;
        shard *is = &t->by_ino[ino_hash(i->ino) % SHARDS];
        pthread_mutex_lock(&is->lock);
        if (is->n * 2 >= is->n_buckets && shard_resize(is, false, is->n_buckets * 2) < 0) {
                pthread_mutex_unlock(&is->lock);
                goto nomem;
        }
        size_t b = (ino_hash(i->ino) / SHARDS) & (is->n_buckets - 1);
        i->next_by_ino = is->buckets[b];
        is->buckets[b] = i;
        is->n++;
        pthread_mutex_unlock(&is->lock);

        b = (h / SHARDS) & (ks->n_buckets - 1);
        i->next_by_key = ks->buckets[b];
        ks->buckets[b] = i;
        ks->n++;
        pthread_mutex_unlock(&ks->lock);
        atomic_fetch_add(&t->count, 1);
        *ret = i;
        return 0;
nomem:
        pthread_mutex_unlock(&ks->lock);
        free(i);
        return -ENOMEM;
}

cas_inode *cas_inodes_get(cas_inodes *t, uint64_t ino)
{
        shard *s;
        cas_inode *i = NULL;

        if (ino == CAS_ROOT_INO)
                return t->root;
        s = &t->by_ino[ino_hash(ino) % SHARDS];
        pthread_mutex_lock(&s->lock);
        if (s->n_buckets)
                for (i = s->buckets[(ino_hash(ino) / SHARDS) & (s->n_buckets - 1)]; i; i = i->next_by_ino)
                        if (i->ino == ino) {
                                atomic_fetch_add(&i->refs, 1);
                                break;
                        }
        pthread_mutex_unlock(&s->lock);
        return i;
}

void cas_inode_unref(cas_inodes *t, cas_inode *i)
{
        if (!i || i == t->root)
                return;
        if (atomic_fetch_sub(&i->refs, 1) == 1) {
                inode_free(t, i, true);
                atomic_fetch_sub(&t->count, 1);
                atomic_fetch_add(&t->freed, 1);
        }
}

static void unlink_chain(cas_inode **head, cas_inode *i, bool by_key)
{
        for (cas_inode **p = head; *p; p = by_key ? &(*p)->next_by_key : &(*p)->next_by_ino)
                if (*p == i) {
                        *p = by_key ? i->next_by_key : i->next_by_ino;
                        return;
                }
}

void cas_inodes_forget(cas_inodes *t, uint64_t ino, uint64_t n)
{
        cas_inode *i = cas_inodes_get(t, ino);
        bool removed = false;

        if (!i || i == t->root)
                return;
        uint64_t old = atomic_load(&i->nlookup);
        /* never below zero, whatever a confused peer sends */
        do {
                if (old == 0)
                        break;
        } while (!atomic_compare_exchange_weak(&i->nlookup, &old, old > n ? old - n : 0));

        if (old != 0 && old <= n) {
                uint64_t h = key_hash(i->type, i->executable, i->size, &i->digest);
                shard *ks = &t->by_key[h % SHARDS];
                pthread_mutex_lock(&ks->lock);
                if (atomic_load(&i->nlookup) == 0) {
                        shard *is = &t->by_ino[ino_hash(i->ino) % SHARDS];
                        unlink_chain(&ks->buckets[(h / SHARDS) & (ks->n_buckets - 1)], i, true);
                        ks->n--;
                        if (ks->n * 8 < ks->n_buckets && ks->n_buckets > MIN_BUCKETS)
                                (void)shard_resize(ks, true, ks->n_buckets / 4);
                        pthread_mutex_lock(&is->lock);
                        unlink_chain(&is->buckets[(ino_hash(i->ino) / SHARDS) & (is->n_buckets - 1)], i,
                                     false);
                        is->n--;
                        if (is->n * 8 < is->n_buckets && is->n_buckets > MIN_BUCKETS)
                                (void)shard_resize(is, false, is->n_buckets / 4);
                        pthread_mutex_unlock(&is->lock);
                        removed = true;
                }
                pthread_mutex_unlock(&ks->lock);
        }
        if (removed)
                cas_inode_unref(t, i); /* the kernel's reference */
        cas_inode_unref(t, i);         /* ours */
}
