/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Import of a filesystem tree (SPEC.md §4): the tree is walked on the calling
 * thread while worker threads read, hash and store file contents. */

#include <stdatomic.h>
#include <stdbool.h>

#include "store.h"

/* Counters a caller may watch from another thread while the import runs. */
typedef struct cas_import_progress {
        _Atomic uint64_t files_found, bytes_found; /* grows while the walk goes on */
        _Atomic uint64_t files_done, bytes_done;   /* hashed, stored or found cached */
        _Atomic uint64_t files_cached;             /* unchanged since the last import */
        _Atomic bool walk_done;
} cas_import_progress;

typedef struct cas_import_options {
        bool skip_special;   /* skip sockets, FIFOs, devices with a warning instead of failing */
        unsigned threads;    /* workers; 0: one per CPU */
        bool no_cache;       /* re-read every file, even when unchanged since the last import */
        cas_import_progress *progress; /* optional */
        /* Warnings (skipped files); optional. */
        void (*warn)(void *userdata, const char *path, const char *message);
        void *userdata;
} cas_import_options;

/* Imports the tree at path; on success *ret_node names it `name` (the caller
 * registers it as a root). On failure *ret_error (when given) gets a
 * malloc'ed message naming the path and the reason. Nothing becomes visible
 * on failure beyond unreferenced blobs. The caller holds the store lock shared. */
int cas_import(cas_store *s, const char *path, const char *name, const cas_import_options *o,
               cas_node **ret_node, char **ret_error);
