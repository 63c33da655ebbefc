/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Checking a store whole: every blob re-hashed (and a large blob's stored
 * outboard compared with the hash), every directory and root record
 * re-validated, every root's closure walked. Only through the blobstore and
 * metastore interfaces, so that any backend of theirs is checked the same
 * way. What is found is handed to a callback, in the order found; the caller
 * words it. */

#include <stdint.h>

#include "blobstore.h"
#include "metastore.h"

typedef enum cas_fsck_kind {
        CAS_FSCK_CORRUPT_BLOB,      /* digest: its bytes do not hash to it */
        CAS_FSCK_UNREADABLE_BLOB,   /* digest: it does not open or read */
        CAS_FSCK_CORRUPT_OUTBOARD,  /* digest: the blob is fine, its stored outboard is not */
        CAS_FSCK_CORRUPT_DIRECTORY, /* digest; root: the root whose walk found it, or NULL */
        CAS_FSCK_MISSING_DIRECTORY, /* digest, root */
        CAS_FSCK_CORRUPT_ROOT,      /* root: a record that does not decode or names another root */
        CAS_FSCK_BLOB_SIZES,        /* digest, size, want, root: referenced with two sizes */
        CAS_FSCK_MISSING_BLOB,      /* digest: referenced, not stored */
        CAS_FSCK_BLOB_SIZE,         /* digest: stored with size bytes, referenced with want */
        /* not problems: objects no root reaches (gc removes them) */
        CAS_FSCK_UNREFERENCED_BLOB,      /* digest */
        CAS_FSCK_UNREFERENCED_DIRECTORY, /* digest */
} cas_fsck_kind;

typedef struct cas_fsck_finding {
        cas_fsck_kind kind;
        cas_digest digest;
        const char *root; /* a root's name, as the kind says (valid during the call) */
        uint64_t size, want;
} cas_fsck_finding;

typedef void (*cas_fsck_cb)(const cas_fsck_finding *f, void *userdata);

typedef struct cas_fsck_stats {
        uint64_t roots;       /* valid root records */
        uint64_t blobs;       /* blobs listed */
        uint64_t blob_bytes;  /* bytes of them hashed */
        uint64_t directories; /* directory records listed */
        uint64_t problems;
        uint64_t unreferenced_blobs, unreferenced_directories;
} cas_fsck_stats;

/* Checks the store, hashing blobs in n_threads threads while the listing goes
 * on (cold, listing a local store reads one folder after the other and the
 * hashing need not wait for it). Returns 0 once everything was checked (the
 * problems are in *ret_stats), or -errno (logged) when the store could not
 * be listed or walked. */
int cas_fsck(cas_blobstore *bs, cas_metastore *ms, unsigned n_threads, cas_fsck_cb cb, void *userdata,
             cas_fsck_stats *ret_stats);
