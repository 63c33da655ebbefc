/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Copies a root with everything it reaches from one store to another (local,
 * file://, s3://; http(s):// as a source), sending only what the destination
 * lacks, blobs several at once. The root is written last, once all it
 * reaches is in the destination: an interrupted copy leaves the destination
 * valid, and the next one sends only what is still missing. */

#include <stdatomic.h>

#include "store.h"

/* Counters a caller may watch from another thread (progress) and read at
 * the end (the summary). */
typedef struct cas_copy_progress {
        _Atomic uint64_t blobs_wanted,
            bytes_wanted;                        /* of the current root, not in the destination */
        _Atomic uint64_t blobs_done, bytes_done; /* of those, copied */
        _Atomic uint64_t blobs_sent, bytes_sent; /* over all roots: blobs written */
        _Atomic uint64_t blobs_present;          /* over all roots: found there already */
        _Atomic uint64_t trees_sent;             /* directory closures written */
        _Atomic uint64_t roots_sent;             /* roots written (not those already the same) */
} cas_copy_progress;

typedef struct cas_copy_options {
        unsigned jobs;               /* blobs copied at once; 0: 32 */
        cas_copy_progress *progress; /* optional */
} cas_copy_options;

/* Copies root (a node of src's registry) into dst under its name. On failure
 * *ret_error (when given) gets a malloc'ed line naming the object and the
 * store; dst then holds at most objects no root reaches yet. */
int cas_copy_root(cas_store *src, cas_store *dst, const cas_node *root, const cas_copy_options *o,
                  char **ret_error);
