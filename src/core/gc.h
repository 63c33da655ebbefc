/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Removing what no root reaches, through the blobstore and metastore
 * interfaces. The caller holds the store's lock exclusively (store.h), so
 * that no import in progress loses what it is about to reference. */

#include <stdbool.h>
#include <stdint.h>

#include "blobstore.h"
#include "metastore.h"

typedef struct cas_gc_stats {
        uint64_t blobs, bytes, directories;  /* removed (or, dry, to be removed) */
        uint64_t kept_blobs, kept_directories;
} cas_gc_stats;

/* Removes (with dry_run: only counts) every blob and directory no root
 * reaches: first the import cache's entries for them, then directories, then
 * blobs, so that a crash in between leaves unreferenced objects, never
 * references (or cache entries) without objects. Refuses with -EUCLEAN when
 * a root record or a directory below a root is damaged (what it held is
 * unknown). Failures are logged. */
int cas_gc(cas_blobstore *bs, cas_metastore *ms, bool dry_run, cas_gc_stats *ret_stats);
