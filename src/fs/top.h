/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The mount top: the root registry's names the kernel learned, so that when
 * the registry changes, the kernel's cached entries of the names that changed
 * or went (and the top's listing) are invalidated. */

#include <pthread.h>
#include <stdbool.h>

#include "engine.h"
#include "inodes.h"

typedef struct cas_top_name {
        char *name;
        cas_digest key; /* what the name pointed to when the kernel learned it */
        uint8_t type;
} cas_top_name;

typedef struct cas_top {
        cas_metastore *meta;
        const cas_engine_transport *transport;
        pthread_mutex_t lock; /* protects names, n, alloc, generation */
        cas_top_name *names;
        size_t n, alloc;
        uint64_t generation; /* of the registry the names were checked against */
} cas_top;

void cas_top_init(cas_top *top, cas_metastore *meta, const cas_engine_transport *transport);
void cas_top_done(cas_top *top);

/* The kernel learned name at the top as inode i. */
void cas_top_remember(cas_top *top, const char *name, const cas_inode *i);

/* Re-reads the registry's generation and, when it changed, forgets the names
 * whose root changed or went, telling the kernel through the transport when
 * notify (the connection is initialized and has notifications). 1 when it
 * changed, 0 when not, -errno. */
int cas_top_refresh(cas_top *top, bool notify);
