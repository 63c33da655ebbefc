/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "verify.h"

void cas_bufpool_init(cas_bufpool *p)
{
        *p = (cas_bufpool){0};
        pthread_mutex_init(&p->lock, NULL);
}

void cas_bufpool_clear(cas_bufpool *p)
{
        pthread_mutex_lock(&p->lock);
        for (size_t c = 0; c < CAS_BUFPOOL_CLASSES; c++)
                while (p->free[c]) {
                        void *b = p->free[c];
                        memcpy(&p->free[c], b, sizeof(void *));
                        free(b);
                }
        p->bytes = 0;
        pthread_mutex_unlock(&p->lock);
}

void cas_bufpool_done(cas_bufpool *p)
{
        cas_bufpool_clear(p);
        pthread_mutex_destroy(&p->lock);
}

static unsigned size_class(uint64_t size)
{
        unsigned c = 0;
        while ((UINT64_C(1) << (CAS_BUFPOOL_MIN_SHIFT + c)) < size)
                c++;
        return c;
}

uint8_t *cas_bufpool_get(cas_bufpool *p, uint64_t size)
{
        unsigned c = size_class(size);
        void *b;

        pthread_mutex_lock(&p->lock);
        b = p->free[c];
        if (b) {
                memcpy(&p->free[c], b, sizeof(void *));
                p->bytes -= UINT64_C(1) << (CAS_BUFPOOL_MIN_SHIFT + c);
        }
        pthread_mutex_unlock(&p->lock);
        if (!b && posix_memalign(&b, CAS_DIRECT_ALIGN, (size_t)1 << (CAS_BUFPOOL_MIN_SHIFT + c)) != 0)
                return NULL;
        return b;
}

void cas_bufpool_put(cas_bufpool *p, uint8_t *b, uint64_t size)
{
        unsigned c = size_class(size);
        uint64_t n = UINT64_C(1) << (CAS_BUFPOOL_MIN_SHIFT + c);

        if (!b)
                return;
        pthread_mutex_lock(&p->lock);
        if (p->bytes + n <= CAS_BUFPOOL_BUDGET) {
                memcpy(b, &p->free[c], sizeof(void *));
                p->free[c] = b;
                p->bytes += n;
                b = NULL;
        }
        pthread_mutex_unlock(&p->lock);
        free(b);
}
