/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "macro.h"
#include "virtqueue.h"

static void *translate(const cas_guest_memory *m, uint64_t addr, uint64_t len, bool uva)
{
        for (unsigned k = 0; k < m->n; k++) {
                const cas_guest_region *g = &m->regions[k];
                uint64_t start = uva ? g->uva : g->gpa;
                if (addr < start || addr - start >= g->size)
                        continue;
                if (len > g->size - (addr - start))
                        return NULL; /* runs past the region's end */
                return g->host + (addr - start);
        }
        return NULL;
}

void *cas_guest_gpa(const cas_guest_memory *m, uint64_t gpa, uint64_t len)
{
        return translate(m, gpa, len, false);
}

void *cas_guest_uva(const cas_guest_memory *m, uint64_t uva, uint64_t len)
{
        return translate(m, uva, len, true);
}

void cas_guest_memory_unmap(cas_guest_memory *m)
{
        for (unsigned k = 0; k < m->n; k++)
                if (m->regions[k].map)
                        munmap(m->regions[k].map, m->regions[k].map_len);
        m->n = 0;
}

int cas_virtqueue_map(cas_virtqueue *q, const cas_guest_memory *m)
{
        if (q->num == 0 || (q->num & (q->num - 1)) || q->num > 32768)
                return -EINVAL;
        /* the alignments virtio requires of the three parts */
        if (q->desc_uva % 16 || q->avail_uva % 2 || q->used_uva % 4)
                return -EFAULT;
        q->desc = cas_guest_uva(m, q->desc_uva, sizeof(struct vring_desc) * (uint64_t)q->num);
        /* flags, idx, ring[num], used_event */
        q->avail = cas_guest_uva(m, q->avail_uva, 4 + 2 * (uint64_t)q->num + 2);
        /* flags, idx, ring[num] of {id, len}, avail_event */
        q->used = cas_guest_uva(m, q->used_uva, 4 + 8 * (uint64_t)q->num + 2);
        if (!q->desc || !q->avail || !q->used)
                return -EFAULT;
        return 0;
}

/* Guest memory changes under us: read each shared field exactly once. */
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/* d is our own copy: the guest may change its memory while we look */
static int add_buffer(const cas_guest_memory *m, const struct vring_desc *d, struct iovec *in, int *n_in,
                      struct iovec *out, int *n_out)
{
        void *p;

        if (*n_in + *n_out >= CAS_CHAIN_MAX)
                return -EBADMSG;
        p = cas_guest_gpa(m, d->addr, d->len);
        if (!p && d->len > 0)
                return -EBADMSG;
        if (d->flags & VRING_DESC_F_WRITE) {
                out[(*n_out)++] = (struct iovec){p, d->len};
        } else {
                /* the device-readable part comes first in a chain */
                if (*n_out > 0)
                        return -EBADMSG;
                in[(*n_in)++] = (struct iovec){p, d->len};
        }
        return 0;
}

int cas_virtqueue_pop(cas_virtqueue *q, const cas_guest_memory *m, struct iovec *in, int *ret_n_in,
                      struct iovec *out, int *ret_n_out)
{
        int n_in = 0, n_out = 0, r;

        if (q->broken || !q->avail)
                return -EBADMSG;
        uint16_t avail_idx = READ_ONCE(q->avail->idx);
        if (avail_idx == q->last_avail)
                return -EAGAIN;
        /* more entries than the ring holds: the guest's index is nonsense */
        if ((uint16_t)(avail_idx - q->last_avail) > q->num)
                goto broken;
        atomic_thread_fence(memory_order_acquire); /* ring entries after the index */

        uint16_t head = READ_ONCE(q->avail->ring[q->last_avail % q->num]);
        if (head >= q->num)
                goto broken;

        /* descriptors are copied out one by one (memcpy: an indirect table
         * may sit at any address the guest likes) */
        const uint8_t *table = (const uint8_t *)q->desc;
        unsigned table_len = q->num, i = head, steps = 0;
        bool indirect = false;
        for (;;) {
                struct vring_desc d;

                memcpy(&d, table + (size_t)i * sizeof(d), sizeof(d));
                if (++steps > CAS_CHAIN_MAX)
                        goto broken; /* a loop */
                if (d.flags & VRING_DESC_F_INDIRECT) {
                        /* one level only, never mixed with a chain, a whole number of descriptors */
                        if (indirect || (d.flags & VRING_DESC_F_NEXT) || d.len == 0 ||
                            d.len % sizeof(struct vring_desc) || d.len / sizeof(struct vring_desc) > CAS_CHAIN_MAX)
                                goto broken;
                        table = cas_guest_gpa(m, d.addr, d.len);
                        if (!table)
                                goto broken;
                        table_len = d.len / sizeof(struct vring_desc);
                        indirect = true;
                        i = 0;
                        continue;
                }
                r = add_buffer(m, &d, in, &n_in, out, &n_out);
                if (r < 0)
                        goto broken;
                if (!(d.flags & VRING_DESC_F_NEXT))
                        break;
                i = d.next;
                if (i >= table_len)
                        goto broken;
        }
        q->last_avail++;
        *ret_n_in = n_in;
        *ret_n_out = n_out;
        return head;
broken:
        q->broken = true;
        return -EBADMSG;
}

void cas_virtqueue_push(cas_virtqueue *q, uint16_t head, uint32_t len)
{
        struct vring_used_elem *e = &q->used->ring[q->used_idx % q->num];

        WRITE_ONCE(e->id, head);
        WRITE_ONCE(e->len, len);
        atomic_thread_fence(memory_order_release); /* the entry before the index */
        q->used_idx++;
        WRITE_ONCE(q->used->idx, q->used_idx);
}

bool cas_virtqueue_should_notify(cas_virtqueue *q)
{
        atomic_thread_fence(memory_order_seq_cst);
        if (!q->event_idx)
                return !(READ_ONCE(q->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);

        /* event index: interrupt only when the used index crossed what the guest asked for */
        uint16_t old = q->signalled_used, new = q->used_idx;
        bool valid = q->signalled_used_valid;
        q->signalled_used = new;
        q->signalled_used_valid = true;
        if (!valid)
                return true;
        uint16_t event = READ_ONCE(*(const uint16_t *)&q->avail->ring[q->num]);
        return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

bool cas_virtqueue_arm(cas_virtqueue *q)
{
        if (q->broken || !q->avail)
                return false;
        if (q->event_idx)
                WRITE_ONCE(*(uint16_t *)&q->used->ring[q->num], q->last_avail);
        atomic_thread_fence(memory_order_seq_cst);
        return READ_ONCE(q->avail->idx) != q->last_avail;
}
