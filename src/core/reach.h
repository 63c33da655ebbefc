/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What fsck and gc share: what the roots reach, and the store's objects as
 * its listing finds them. */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blobstore.h"
#include "digestmap.h"
#include "fsck.h"
#include "metastore.h"

typedef struct cas_reach {
        cas_metastore *meta;
        cas_digest_map dirs;  /* reachable directories (also missing or corrupt ones) */
        cas_digest_map blobs; /* reachable blobs -> expected size */
        uint64_t roots;       /* valid root records */
        uint64_t problems;
        cas_fsck_cb cb;       /* told each problem (NULL: only counted) */
        void *userdata;
        const char *root;     /* the root being walked, for findings */
} cas_reach;

/* Walks every root record and every root's closure into r (meta, cb and
 * userdata set by the caller). */
int cas_reach_all(cas_reach *rc);
void cas_reach_done(cas_reach *rc);

/* The store's objects in the order the listing finds them. Blobs may be
 * added by the listing while workers take them (fsck): lock guards it. */
typedef struct cas_listed {
        cas_digest digest;
        uint64_t size; /* CAS_BLOB_SIZE_UNKNOWN unless the listing or a reader told it */
        uint8_t state; /* the user's (fsck: the blob's verdict), 0 when added */
} cas_listed;

typedef struct cas_listing {
        pthread_mutex_t lock; /* protects items, n, alloc, next and listed */
        pthread_cond_t more;  /* signalled per CAS_LISTING_BATCH blobs and when the listing ends */
        cas_listed *items;
        size_t n, alloc;
        size_t next; /* the next object a worker takes */
        bool listed; /* the listing has ended; nothing beyond n will come */
} cas_listing;

#define CAS_LISTING_INIT {.lock = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER}
#define CAS_LISTING_BATCH 64

/* A cas_blob_cb and a cas_digest_cb that add to the listing (userdata). */
int cas_listing_add_blob(const cas_digest *d, uint64_t size, void *userdata);
int cas_listing_add(const cas_digest *d, void *userdata);
/* The listing has ended (failed: no worker takes anything more). */
void cas_listing_end(cas_listing *l, bool failed);
/* The next object for a worker, waiting for the listing; false when all
 * were taken and the listing has ended. */
bool cas_listing_take(cas_listing *l, size_t *ret_index, cas_digest *ret_digest);
void cas_listing_done(cas_listing *l);
