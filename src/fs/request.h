/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One FUSE request being answered: its bytes as the transport gave them and
 * the buffers its reply goes into (scattered, e.g. guest memory). Every reply
 * is finished by cas_request_finish, which writes its header. Errors are
 * negative errnos throughout, as the reply's header carries them. */

#include <linux/fuse.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The largest request argument we copy (a name, an xattr name). */
#define CAS_REQUEST_IN_MAX 8192
/* Pieces of a payload left where they lie (cas_request_refer). */
#define CAS_REQUEST_REFS 4

typedef struct cas_request {
        const struct fuse_in_header *in;
        const uint8_t *arg; /* the bytes after the header */
        size_t arg_len;
        const struct iovec *out;
        int out_cnt;
        size_t written; /* reply bytes (header included); 0: no reply */
        /* A transport that writes replies out itself (/dev/fuse) sets refs_ok: the payload may
         * then stay where it lies (refs, after the header in out), and the transport calls
         * cas_request_written once it has written the reply. */
        bool refs_ok;
        int n_refs;
        size_t refs_len;
        struct iovec refs[CAS_REQUEST_REFS];
        void (*written_fn)(void *userdata);
        void *written_userdata;
        _Alignas(8) uint8_t copy[CAS_REQUEST_IN_MAX]; /* the request gathered, when it came scattered or unaligned */
} cas_request;

/* Takes the request in in/in_cnt (gathered into rq->copy when it is
 * scattered or unaligned) with its reply going to out/out_cnt. -EINVAL when
 * it is shorter than a header. */
int cas_request_init(cas_request *rq, const struct iovec *in, int in_cnt, const struct iovec *out, int out_cnt);

/* The argument as type, when the request carries at least n bytes of it. */
#define CAS_REQUEST_ARG(rq, type) ((const type *)(rq)->arg)
static inline bool cas_request_has(const cas_request *rq, size_t n)
{
        return rq->arg_len >= n;
}
/* A NUL-terminated string argument at offset off; NULL when there is none. */
const char *cas_request_string(const cas_request *rq, size_t off, size_t *ret_len);

/* Copies bytes into the reply at pos (the header included); false when the
 * buffers are too small. */
bool cas_request_put(cas_request *rq, size_t pos, const void *data, size_t n);
/* Puts n bytes at data into the reply at pos, without copying them when the
 * transport allows it and pos follows the bytes put so far that way: they
 * must then stay as they are until cas_request_when_written's function is
 * called. Else copies them (and those put before), as cas_request_put. */
bool cas_request_refer(cas_request *rq, size_t pos, const void *data, size_t n);
/* Whether the reply's payload is (partly) left where it lies. */
static inline bool cas_request_refers(const cas_request *rq)
{
        return rq->n_refs > 0;
}
/* fn(userdata) is called once the transport is done with the reply (written
 * or not): one per request. */
void cas_request_when_written(cas_request *rq, void (*fn)(void *userdata), void *userdata);
/* The transport is done with the reply: runs the function given. */
void cas_request_written(cas_request *rq);
/* All the reply buffers' bytes. */
size_t cas_request_capacity(const cas_request *rq);
/* Where the reply's payload starts (after its header), and the contiguous
 * room there (*ret_room); NULL when the buffers end first. */
uint8_t *cas_request_payload(const cas_request *rq, size_t *ret_room);

/* Finishes the reply whose len payload bytes are in place: writes its
 * header. -ENOBUFS when not even that fits. */
int cas_request_finish(cas_request *rq, size_t len);
/* Replies error (a negative errno), or success with n bytes of data (a reply
 * too large for the buffers becomes -ERANGE). */
int cas_request_reply(cas_request *rq, const void *data, size_t n);
int cas_request_error(cas_request *rq, int error);
