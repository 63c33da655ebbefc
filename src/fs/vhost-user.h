/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A vhost-user-fs device backend (the virtiofs daemon): the vhost-user
 * protocol on a UNIX socket (feature negotiation, the guest memory table,
 * vring set-up and teardown), and a thread per virtqueue that feeds each
 * request to the FUSE engine. Queue 0 is the high-priority queue (FORGET,
 * INTERRUPT), queues 1.. carry requests. */

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include "engine.h"

#define CAS_VHOST_QUEUES_MAX 16

typedef struct cas_vhost cas_vhost;

/* Parses one message header + payload; exposed for the fuzz target. Returns
 * 0 when the message is well formed for its type, -EBADMSG otherwise. */
int cas_vhost_check_message(const void *buf, size_t len, unsigned n_fds);

/* Listens on socket_path (a stale socket file is replaced). */
int cas_vhost_listen(const char *socket_path, int *ret_fd);

/* Serves one VMM connection on fd (taken over) until it disconnects (0), or
 * a signal in *stop_signals arrives (0), or a protocol error (< 0). Offers
 * request_queues request queues, each served by `threads` threads. */
int cas_vhost_serve(cas_engine *engine, int fd, unsigned request_queues, unsigned threads,
                    const sigset_t *stop_signals);
