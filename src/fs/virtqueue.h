/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Split virtqueues in guest memory shared by a VMM (virtio 1.x §2.7), with
 * indirect descriptors and event-index notification. Everything the guest
 * writes is checked: every address must fall inside a mapped region, every
 * index inside the ring, every chain must end within the ring's size. A
 * queue that breaks a rule is marked broken and served no further. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define CAS_GUEST_REGIONS_MAX 8
/* Longest chain accepted (direct and indirect descriptors together). */
#define CAS_CHAIN_MAX 1024

typedef struct cas_guest_region {
        uint64_t gpa;  /* guest physical address */
        uint64_t size;
        uint64_t uva;  /* the VMM's virtual address of the same memory */
        uint8_t *host; /* our mapping of it */
        void *map;     /* what mmap returned, and its length */
        size_t map_len;
} cas_guest_region;

typedef struct cas_guest_memory {
        cas_guest_region regions[CAS_GUEST_REGIONS_MAX];
        unsigned n;
} cas_guest_memory;

/* A host pointer for [addr, addr + len) when it lies wholly in one region, else NULL. */
void *cas_guest_gpa(const cas_guest_memory *m, uint64_t gpa, uint64_t len);
void *cas_guest_uva(const cas_guest_memory *m, uint64_t uva, uint64_t len);
void cas_guest_memory_unmap(cas_guest_memory *m);

typedef struct cas_virtqueue {
        uint16_t num;          /* entries; a power of two, at most 32768 */
        uint64_t desc_uva, avail_uva, used_uva;
        struct vring_desc *desc;
        struct vring_avail *avail;
        struct vring_used *used;
        uint16_t last_avail;   /* next entry of the available ring to take */
        uint16_t used_idx;     /* next entry of the used ring to fill */
        uint16_t signalled_used;
        bool signalled_used_valid;
        bool event_idx;
        bool broken;
} cas_virtqueue;

/* Resolves the ring addresses (VMM virtual addresses) in m. -EFAULT when they do not fit. */
int cas_virtqueue_map(cas_virtqueue *q, const cas_guest_memory *m);

/* The next request: its readable buffers into in[], writable ones into out[]
 * (at most CAS_CHAIN_MAX together). Returns the head index (>= 0), -EAGAIN
 * when the ring is empty, -EBADMSG when the guest broke a rule (the queue is
 * then broken). */
int cas_virtqueue_pop(cas_virtqueue *q, const cas_guest_memory *m, struct iovec *in, int *ret_n_in,
                      struct iovec *out, int *ret_n_out);

/* Returns a request to the guest with the number of bytes written. */
void cas_virtqueue_push(cas_virtqueue *q, uint16_t head, uint32_t len);

/* Before sleeping: asks the guest to kick for what comes after what was
 * taken (event index). True when more is available already. */
bool cas_virtqueue_arm(cas_virtqueue *q);

/* Whether the guest wants an interrupt now (event index, or the no-notify flag). */
bool cas_virtqueue_should_notify(cas_virtqueue *q);
