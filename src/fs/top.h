/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The mount top: which roots it shows (every root of the registry, or only
 * those of a list, as a job's inputs), and the names the kernel learned, so
 * that when the registry changes, the kernel's cached entries of the names
 * that changed or went (and the top's listing) are invalidated. */

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
        /* the roots shown, sorted, without duplicates (set once at init) */
        bool filtered;
        char **shown;
        size_t n_shown;
} cas_top;

/* roots: the only roots the top shows (n_roots of them, valid names; copied),
 * or NULL for every root of the registry. */
int cas_top_init(cas_top *top, cas_metastore *meta, const cas_engine_transport *transport,
                 const char *const *roots, size_t n_roots);
void cas_top_done(cas_top *top);

/* Whether the top shows the root name (whether the registry has it or not). */
bool cas_top_shows(const cas_top *top, const char *name);

/* The roots the top shows that the registry has, in name order, as
 * cas_metastore_foreach_root visits them (a damaged record is left out),
 * from the one at index first on. Each comes with its index: its place in
 * the registry, or in the list when there is one (so that a root's index
 * stays while others come and go, and a walk from first reads no root before
 * it). cb returns 0 to go on; anything else stops the walk and is returned. */
typedef int (*cas_top_cb)(const cas_node *n, uint64_t index, void *userdata);
int cas_top_foreach(cas_top *top, uint64_t first, cas_top_cb cb, void *userdata);

/* The kernel learned name at the top as inode i. */
void cas_top_remember(cas_top *top, const char *name, const cas_inode *i);

/* Re-reads the registry's generation and, when it changed, forgets the names
 * whose root changed or went, telling the kernel through the transport when
 * notify (the connection is initialized and has notifications). 1 when it
 * changed, 0 when not, -errno. */
int cas_top_refresh(cas_top *top, bool notify);
