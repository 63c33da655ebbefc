/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The FUSE request engine, independent of the transport: it takes a request
 * as the kernel sent it (struct fuse_in_header first, <linux/fuse.h>), runs
 * it against the filesystem and writes the reply (struct fuse_out_header
 * first) into the transport's buffers. /dev/fuse and the virtiofs daemon both
 * feed it. Thread-safe: many threads may call cas_engine_handle at once. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "macro.h"
#include "request.h"
#include "store.h"

typedef struct cas_engine cas_engine;

typedef struct cas_engine_options {
        bool list_root;    /* allow listing the mount top */
        bool xattr;        /* expose user.castore.*.digest */
        bool verify;       /* check bytes against their digest before serving */
        bool set_owner;    /* report uid/gid below instead of 0:0 */
        uid_t uid;
        gid_t gid;
        uint32_t max_pages; /* largest read in pages the transport can carry (0: default) */
        unsigned prefetch;  /* files of a directory read ahead of a reader going through it (0: none) */
        bool direct_io;     /* large blobs: read with O_DIRECT when the reply buffer allows */
        uint32_t read_ahead; /* bytes the kernel may read ahead in a file, offered at INIT (0: its own choice) */
        /* The only roots the top shows, n_roots valid names (none: an empty
         * top), or NULL for every root. Read by cas_engine_new, which keeps a
         * copy. Whether they exist is not checked: a listed root the
         * registry lacks is not there until it is added. */
        const char *const *roots;
        size_t n_roots;
} cas_engine_options;

/* Unsolicited messages (FUSE notifications) go back through the transport. */
typedef struct cas_engine_transport {
        /* Sends one notification message (fuse_out_header with unique 0, then
         * its body). May be NULL when the transport has none (virtiofs). */
        int (*notify)(void *userdata, const struct iovec *iov, int iovcnt);
        /* FUSE passthrough (/dev/fuse, kernel 6.9+, CAP_SYS_ADMIN): registers
         * fd as a backing file and returns its id (> 0) or -errno; closes an
         * id. NULL when the transport has none. */
        int (*backing_open)(void *userdata, int fd);
        void (*backing_close)(void *userdata, int32_t id);
        void *userdata;
} cas_engine_transport;

/* The store must outlive the engine. */
int cas_engine_new(cas_store *store, const cas_engine_options *opts,
                   const cas_engine_transport *transport, cas_engine **ret);
cas_engine *cas_engine_free(cas_engine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(cas_engine *, cas_engine_free);

/* Handles one request. in/in_cnt: the request bytes (may be scattered);
 * out/out_cnt: where the reply is written (may be scattered, e.g. guest
 * memory). Returns the number of reply bytes written into out (0 when the
 * request has no reply, like FORGET), or a negative errno when the request is
 * malformed beyond answering or out is too small for even an error reply. */
ssize_t cas_engine_handle(cas_engine *e, const struct iovec *in, int in_cnt,
                          const struct iovec *out, int out_cnt);
/* As cas_engine_handle, for a transport that writes the reply out itself:
 * the payload may be left where it lies (*ret_rq holds the request, with
 * its pieces in refs: cas_request_refers), and cas_request_written(*ret_rq)
 * must be called once the reply is written or given up. */
ssize_t cas_engine_handle_refs(cas_engine *e, const struct iovec *in, int in_cnt, const struct iovec *out,
                               int out_cnt, cas_request **ret_rq);

/* Starts the engine's threads: those reading ahead (readahead.h), when
 * opts.prefetch is not 0, and the housekeeping one. Once a second, that one
 * gives memory back once the kernel forgot much (a cache drop, memory
 * pressure) and its FORGETs have stopped for a second: the heap's free pages,
 * blobs read ahead and not read, the store's mapped metadata pages; and,
 * where the transport can notify the kernel, it refreshes the roots. A
 * transport starts them once it serves and stops them (or frees the engine)
 * once its workers are gone. */
int cas_engine_start(cas_engine *e);
void cas_engine_stop(cas_engine *e);

/* How many inodes the kernel holds (or requests use) now. */
uint64_t cas_engine_inode_count(cas_engine *e);

/* Frees per-thread state (a cached blob reader); a worker thread calls it as it ends. */
void cas_engine_thread_done(void);

/* True once DESTROY was handled (the transport should stop). */
bool cas_engine_destroyed(cas_engine *e);

/* Re-reads the root registry and, when it changed, invalidates the kernel's
 * cached entries at the mount top through transport->notify. */
int cas_engine_refresh_roots(cas_engine *e);
