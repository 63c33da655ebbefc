/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "parked.h"

void cas_parked_init(cas_parked *pk, cas_bufpool *pool)
{
        *pk = (cas_parked){.pool = pool};
        pthread_mutex_init(&pk->lock, NULL);
        pthread_cond_init(&pk->cond, NULL);
}

void cas_parked_done(cas_parked *pk)
{
        cas_parked_clear(pk);
        pthread_mutex_destroy(&pk->lock);
        pthread_cond_destroy(&pk->cond);
}

/* The slot holding (or loading) blob d, or NULL. Under lock. */
static cas_parked_slot *find(cas_parked *pk, const cas_digest *d)
{
        for (size_t k = 0; k < CAS_PARKED_SLOTS; k++) {
                cas_parked_slot *p = &pk->slots[k];
                if ((p->bytes || p->loading) && cas_digest_eq(&p->digest, d))
                        return p;
        }
        return NULL;
}

uint8_t *cas_parked_take(cas_parked *pk, const cas_digest *d, uint64_t size)
{
        uint8_t *bytes = NULL;
        cas_parked_slot *p;

        pthread_mutex_lock(&pk->lock);
        while ((p = find(pk, d)) && p->loading)
                pthread_cond_wait(&pk->cond, &pk->lock);
        if (p && p->bytes && p->size == size) {
                bytes = p->bytes;
                p->bytes = NULL;
                pk->bytes -= size;
        }
        pthread_mutex_unlock(&pk->lock);
        return bytes;
}

/* A slot for blob d (size bytes), under lock: a free one, else (when evict)
 * the oldest kept, whose bytes go to *ret_old. NULL when d is there already,
 * no slot is left, or the budget is used up. The slot is charged to the
 * budget and stamped. */
static cas_parked_slot *slot_for(cas_parked *pk, const cas_digest *d, uint64_t size, bool evict, uint8_t **ret_old,
                                 uint64_t *ret_old_size)
{
        cas_parked_slot *p = NULL;

        *ret_old = NULL;
        if (find(pk, d))
                return NULL;
        for (size_t k = 0; k < CAS_PARKED_SLOTS; k++) {
                cas_parked_slot *q = &pk->slots[k];
                if (q->loading || (q->bytes && !evict))
                        continue;
                if (!q->bytes) {
                        p = q;
                        break;
                }
                if (!p || q->age < p->age)
                        p = q;
        }
        if (!p)
                return NULL;
        if (p->bytes) {
                pk->bytes -= p->size;
                *ret_old = p->bytes;
                *ret_old_size = p->size;
                p->bytes = NULL;
        }
        if (pk->bytes + size > CAS_PARKED_BUDGET)
                return NULL;
        p->digest = *d;
        p->size = size;
        p->age = ++pk->clock;
        pk->bytes += size;
        return p;
}

cas_parked_slot *cas_parked_claim(cas_parked *pk, const cas_digest *d, uint64_t size, bool *ret_there)
{
        uint64_t old_size = 0;
        uint8_t *old;

        pthread_mutex_lock(&pk->lock);
        *ret_there = find(pk, d);
        cas_parked_slot *p = slot_for(pk, d, size, true, &old, &old_size);
        if (p)
                p->loading = true;
        pthread_mutex_unlock(&pk->lock);
        cas_bufpool_put(pk->pool, old, old_size);
        return p;
}

void cas_parked_fill(cas_parked *pk, cas_parked_slot *p, uint8_t *bytes)
{
        pthread_mutex_lock(&pk->lock);
        p->bytes = bytes;
        p->loading = false;
        if (!bytes)
                pk->bytes -= p->size;
        pthread_cond_broadcast(&pk->cond);
        pthread_mutex_unlock(&pk->lock);
}

void cas_parked_return(cas_parked *pk, const cas_digest *d, uint64_t size, uint8_t *bytes)
{
        uint64_t unused;
        uint8_t *old;

        pthread_mutex_lock(&pk->lock);
        cas_parked_slot *p = slot_for(pk, d, size, false, &old, &unused); /* evicts nothing */
        if (p) {
                p->bytes = bytes;
                bytes = NULL;
        }
        pthread_mutex_unlock(&pk->lock);
        cas_bufpool_put(pk->pool, bytes, size);
}

void cas_parked_clear(cas_parked *pk)
{
        pthread_mutex_lock(&pk->lock);
        for (size_t k = 0; k < CAS_PARKED_SLOTS; k++)
                if (pk->slots[k].bytes) {
                        pk->bytes -= pk->slots[k].size;
                        free(pk->slots[k].bytes);
                        pk->slots[k].bytes = NULL;
                }
        pthread_mutex_unlock(&pk->lock);
}
