/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The spare pages of a checked group. A read inside a large blob's 16 KiB
 * group reads and checks the whole group, and the kernel keeps only the
 * pages it asked for: a later read of the group's other pages would read
 * and check it again. Its other pages are handed to the kernel's page cache
 * of the file instead (FUSE_NOTIFY_STORE), checked, so that such a read is
 * a page-cache hit: no request, and the bytes cached once, by the kernel.
 *
 * The store waits for each page's lock, which the kernel holds while one of
 * its own READs of that page is under way; the worker that would answer it
 * must never be the one waiting, so the stores go through a thread of their
 * own, through a bounded queue (when full, a group's spare pages are
 * dropped: only a later read pays). */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define CAS_SPARE_MAX 16384 /* bytes of one store: a group's */
#define CAS_SPARE_QUEUE 64

typedef struct cas_spare_item {
        uint64_t ino, off;
        uint32_t len;
        uint8_t *bytes; /* CAS_SPARE_MAX of them */
} cas_spare_item;

typedef struct cas_spare {
        const cas_engine_transport *transport;
        pthread_mutex_t lock; /* protects ring, head, n, stop */
        pthread_cond_t cond;
        cas_spare_item ring[CAS_SPARE_QUEUE];
        uint8_t *memory;
        unsigned head, n;
        bool stop, running;
        pthread_t thread;
} cas_spare;

void cas_spare_init(cas_spare *sp, const cas_engine_transport *transport);
/* Starts the thread when the transport can notify the kernel; otherwise
 * cas_spare_give does nothing. */
void cas_spare_start(cas_spare *sp);
void cas_spare_stop(cas_spare *sp);
void cas_spare_done(cas_spare *sp);

/* Hands len bytes (checked) at off of file ino to the kernel's page cache,
 * off a multiple of the page, len whole pages unless they end the file. */
void cas_spare_give(cas_spare *sp, uint64_t ino, uint64_t off, const uint8_t *bytes, size_t len);
