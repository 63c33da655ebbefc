/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The /dev/fuse transport: mounts (through libfuse's mount helper, which
 * also serves unprivileged users via fusermount3) and feeds the kernel's
 * requests to the engine with worker threads. */

#include <stdbool.h>

#include "engine.h"

typedef struct cas_fuse cas_fuse;

typedef struct cas_fuse_options {
        unsigned threads;  /* workers reading /dev/fuse; 0: one per CPU */
        bool allow_other;  /* let other users in (mount option allow_other) */
        bool passthrough;  /* let the kernel read checked blobs' files itself (FUSE passthrough) */
        unsigned read_ahead_kib; /* the mount's read-ahead window (needs root); 0: the kernel's default */
        bool read_ahead_explicit; /* asked for by the user: say so when it cannot be set */
        const char *fsname; /* the mount's source in /proc/mounts (the store's path); NULL: "casfs" */
} cas_fuse_options;

/* Mounts at mountpoint; on failure *ret_error (optional) says why. */
int cas_fuse_mount(cas_store *store, const cas_engine_options *eo, const cas_fuse_options *fo,
                   const char *mountpoint, cas_fuse **ret, char **ret_error);

/* Starts the workers; returns at once. */
int cas_fuse_start(cas_fuse *f);

/* Serves until the filesystem is unmounted (fusermount3 -u, umount) or one
 * of the signals in sigset arrives (then it unmounts). Blocks those signals
 * in the calling thread. Also polls the root registry every second so that
 * roots added, replaced or removed show at the top. */
int cas_fuse_wait(cas_fuse *f, const sigset_t *signals);

/* Unmounts (when still mounted), stops the workers, frees. Accepts NULL. */
cas_fuse *cas_fuse_free(cas_fuse *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(cas_fuse *, cas_fuse_free);
