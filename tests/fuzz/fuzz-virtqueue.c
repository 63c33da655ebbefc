/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The descriptor walker over guest memory the input fills: rings, chains,
 * indirect tables, all hostile. Every buffer handed out must lie inside the
 * guest's memory. */
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM (64 * 1024)

static void check_inside(const struct iovec *v, int n, const uint8_t *mem)
{
        for (int i = 0; i < n; i++)
                if (v[i].iov_len && ((const uint8_t *)v[i].iov_base < mem ||
                                     (const uint8_t *)v[i].iov_base + v[i].iov_len > mem + MEM))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t *mem;
        static struct iovec in[CAS_CHAIN_MAX], out[CAS_CHAIN_MAX];
        cas_guest_memory m = {0};
        cas_virtqueue q = {0};

        if (!mem)
                mem = malloc(MEM);
        if (size < 2)
                return 0;
        memset(mem, 0, MEM);
        memcpy(mem, data + 2, size - 2 < MEM ? size - 2 : MEM);
        /* one region: guest physical 0x1000.., the VMM's addresses 0x7f0000000000.. */
        m.regions[0] = (cas_guest_region){.gpa = 0x1000, .size = MEM, .uva = 0x7f0000000000ull, .host = mem};
        m.n = 1;
        q.num = (uint16_t)(1u << (data[0] % 9)); /* 1 .. 256 */
        q.desc_uva = 0x7f0000000000ull;
        q.avail_uva = 0x7f0000000000ull + 16 * 256;
        q.used_uva = 0x7f0000000000ull + 16 * 256 + 1024;
        q.event_idx = data[1] & 1;
        if (cas_virtqueue_map(&q, &m) < 0)
                abort();
        for (int k = 0; k < 64; k++) {
                int n_in = 0, n_out = 0;
                int head = cas_virtqueue_pop(&q, &m, in, &n_in, out, &n_out);
                if (head < 0)
                        break;
                if (head >= q.num || n_in + n_out > CAS_CHAIN_MAX)
                        abort();
                check_inside(in, n_in, mem);
                check_inside(out, n_out, mem);
                cas_virtqueue_push(&q, (uint16_t)head, 0);
                (void)cas_virtqueue_should_notify(&q);
                (void)cas_virtqueue_arm(&q);
        }
        return 0;
}
