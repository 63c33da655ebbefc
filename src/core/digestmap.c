/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "digestmap.h"
#include "macro.h"

struct cas_digest_map_slot {
        cas_digest key;
        uint64_t value;
        bool used;
};

static size_t slot_of(const cas_digest *d, size_t n_slots)
{
        uint64_t h;
        memcpy(&h, d->bytes, sizeof(h));
        return (size_t)h & (n_slots - 1);
}

void cas_digest_map_done(cas_digest_map *m)
{
        free(m->slots);
        *m = (cas_digest_map){0};
}

uint64_t *cas_digest_map_find(const cas_digest_map *m, const cas_digest *d)
{
        if (m->n_slots == 0)
                return NULL;
        for (size_t i = slot_of(d, m->n_slots);; i = (i + 1) & (m->n_slots - 1)) {
                struct cas_digest_map_slot *s = &m->slots[i];
                if (!s->used)
                        return NULL;
                if (cas_digest_eq(&s->key, d))
                        return &s->value;
        }
}

bool cas_digest_map_get(const cas_digest_map *m, const cas_digest *d, uint64_t *ret_value)
{
        uint64_t *v = cas_digest_map_find(m, d);
        if (!v)
                return false;
        if (ret_value)
                *ret_value = *v;
        return true;
}

static void insert(struct cas_digest_map_slot *slots, size_t n_slots, const cas_digest *d,
                   uint64_t value)
{
        for (size_t i = slot_of(d, n_slots);; i = (i + 1) & (n_slots - 1))
                if (!slots[i].used) {
                        slots[i] = (struct cas_digest_map_slot){.key = *d, .value = value, .used = true};
                        return;
                }
}

int cas_digest_map_put(cas_digest_map *m, const cas_digest *d, uint64_t value)
{
        uint64_t *v = cas_digest_map_find(m, d);
        if (v) {
                *v = value;
                return 0;
        }
        /* keep the load under 1/2 */
        if ((m->n_used + 1) * 2 > m->n_slots) {
                size_t n = m->n_slots ? m->n_slots * 2 : 64;
                struct cas_digest_map_slot *slots = calloc(n, sizeof(*slots));
                if (!slots)
                        return -ENOMEM;
                for (size_t i = 0; i < m->n_slots; i++)
                        if (m->slots[i].used)
                                insert(slots, n, &m->slots[i].key, m->slots[i].value);
                free(m->slots);
                m->slots = slots;
                m->n_slots = n;
        }
        insert(m->slots, m->n_slots, d, value);
        m->n_used++;
        return 1;
}

bool cas_digest_map_next(const cas_digest_map *m, size_t *iter, cas_digest *ret_key,
                         uint64_t *ret_value)
{
        for (; *iter < m->n_slots; (*iter)++)
                if (m->slots[*iter].used) {
                        *ret_key = m->slots[*iter].key;
                        *ret_value = m->slots[*iter].value;
                        (*iter)++;
                        return true;
                }
        return false;
}

void cas_digest_queue_done(cas_digest_queue *q)
{
        cas_digest_map_done(&q->seen);
        free(q->items);
        *q = (cas_digest_queue){0};
}

int cas_digest_queue_push(cas_digest_queue *q, const cas_digest *d)
{
        int r;

        if (cas_digest_map_get(&q->seen, d, NULL))
                return 0;
        if (CAS_GROW(q->items, q->alloc, q->tail, 64) < 0)
                return -ENOMEM;
        r = cas_digest_map_put(&q->seen, d, 0);
        if (r < 0)
                return r;
        q->items[q->tail++] = *d;
        return 1;
}

bool cas_digest_queue_pop(cas_digest_queue *q, cas_digest *ret)
{
        if (q->head == q->tail)
                return false;
        *ret = q->items[q->head++];
        return true;
}
