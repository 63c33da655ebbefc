/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "macro.h"
#include "spare.h"

void cas_spare_init(cas_spare *sp, const cas_engine_transport *transport)
{
        *sp = (cas_spare){.transport = transport};
        pthread_mutex_init(&sp->lock, NULL);
        pthread_cond_init(&sp->cond, NULL);
}

void cas_spare_done(cas_spare *sp)
{
        cas_spare_stop(sp);
        pthread_mutex_destroy(&sp->lock);
        pthread_cond_destroy(&sp->cond);
}

static void *storer(void *userdata)
{
        cas_spare *sp = userdata;

        pthread_mutex_lock(&sp->lock);
        for (;;) {
                while (sp->n == 0 && !sp->stop)
                        pthread_cond_wait(&sp->cond, &sp->lock);
                if (sp->stop)
                        break;
                cas_spare_item *p = &sp->ring[sp->head];
                pthread_mutex_unlock(&sp->lock);

                struct fuse_notify_store_out o = {.nodeid = p->ino, .offset = p->off, .size = p->len};
                struct fuse_out_header h = {.len = (uint32_t)(sizeof(h) + sizeof(o) + p->len),
                                            .error = FUSE_NOTIFY_STORE};
                struct iovec iov[3] = {{&h, sizeof(h)}, {&o, sizeof(o)}, {p->bytes, p->len}};
                /* ENOENT: the kernel forgot the inode meanwhile; any error only costs a later read */
                (void)sp->transport->notify(sp->transport->userdata, iov, 3);

                pthread_mutex_lock(&sp->lock);
                sp->head = (sp->head + 1) % CAS_SPARE_QUEUE; /* the slot is free once stored */
                sp->n--;
        }
        pthread_mutex_unlock(&sp->lock);
        return NULL;
}

void cas_spare_start(cas_spare *sp)
{
        if (!sp->transport || !sp->transport->notify || sp->running)
                return;
        sp->memory = malloc((size_t)CAS_SPARE_QUEUE * CAS_SPARE_MAX);
        if (!sp->memory)
                return;
        for (size_t k = 0; k < CAS_SPARE_QUEUE; k++)
                sp->ring[k].bytes = sp->memory + k * CAS_SPARE_MAX;
        sp->stop = false;
        sp->head = sp->n = 0;
        sp->running = pthread_create(&sp->thread, NULL, storer, sp) == 0;
        if (!sp->running) {
                free(sp->memory);
                sp->memory = NULL;
        }
}

void cas_spare_stop(cas_spare *sp)
{
        if (!sp->running)
                return;
        pthread_mutex_lock(&sp->lock);
        sp->stop = true;
        pthread_cond_signal(&sp->cond);
        pthread_mutex_unlock(&sp->lock);
        pthread_join(sp->thread, NULL);
        sp->running = false;
        free(sp->memory);
        sp->memory = NULL;
}

void cas_spare_give(cas_spare *sp, uint64_t ino, uint64_t off, const uint8_t *bytes, size_t len)
{
        if (!sp->running || len == 0 || len > CAS_SPARE_MAX)
                return;
        pthread_mutex_lock(&sp->lock);
        if (sp->n < CAS_SPARE_QUEUE && !sp->stop) {
                cas_spare_item *p = &sp->ring[(sp->head + sp->n) % CAS_SPARE_QUEUE];
                p->ino = ino;
                p->off = off;
                p->len = (uint32_t)len;
                memcpy(p->bytes, bytes, len);
                sp->n++;
                pthread_cond_signal(&sp->cond);
        }
        pthread_mutex_unlock(&sp->lock);
}
