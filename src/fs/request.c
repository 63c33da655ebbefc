/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "macro.h"
#include "request.h"

/* No piece left where it lies: the payload is in out, or there is none. */
static void drop_refs(cas_request *rq)
{
        rq->n_refs = 0;
        rq->refs_len = 0;
}

int cas_request_init(cas_request *rq, const struct iovec *in, int in_cnt, const struct iovec *out, int out_cnt)
{
        size_t total = 0;

        rq->written = 0;
        rq->refs_ok = false;
        drop_refs(rq);
        rq->written_fn = NULL;
        for (int s = 0; s < in_cnt; s++)
                total += in[s].iov_len;
        if (total < sizeof(struct fuse_in_header))
                return -EINVAL;
        rq->out = out;
        rq->out_cnt = out_cnt;
        if ((in_cnt == 1 || in[0].iov_len >= total) && ((uintptr_t)in[0].iov_base % 8) == 0) {
                rq->in = in[0].iov_base;
        } else {
                size_t n = 0;
                /* scattered or unaligned (a guest puts requests where it likes): gather what
                 * fits (writes, the only large requests, are refused anyway) */
                for (int s = 0; s < in_cnt && n < CAS_REQUEST_IN_MAX; s++) {
                        size_t c = MIN(in[s].iov_len, CAS_REQUEST_IN_MAX - n);
                        memcpy(rq->copy + n, in[s].iov_base, c);
                        n += c;
                }
                total = n;
                rq->in = (const void *)rq->copy;
        }
        /* the header's length is the peer's word; trust the bytes we have */
        size_t len = MIN(total, (size_t)rq->in->len);
        if (len < sizeof(struct fuse_in_header))
                len = sizeof(struct fuse_in_header);
        rq->arg = (const uint8_t *)rq->in + sizeof(struct fuse_in_header);
        rq->arg_len = len - sizeof(struct fuse_in_header);
        return 0;
}

const char *cas_request_string(const cas_request *rq, size_t off, size_t *ret_len)
{
        if (off >= rq->arg_len)
                return NULL;
        const char *s = (const char *)rq->arg + off;
        const char *end = memchr(s, 0, rq->arg_len - off);
        if (!end)
                return NULL;
        *ret_len = (size_t)(end - s);
        return s;
}

bool cas_request_put(cas_request *rq, size_t pos, const void *data, size_t n)
{
        const uint8_t *p = data;
        for (int k = 0; k < rq->out_cnt && n > 0; k++) {
                if (pos >= rq->out[k].iov_len) {
                        pos -= rq->out[k].iov_len;
                        continue;
                }
                size_t c = MIN(n, rq->out[k].iov_len - pos);
                memcpy((uint8_t *)rq->out[k].iov_base + pos, p, c);
                p += c;
                n -= c;
                pos = 0;
        }
        return n == 0;
}

bool cas_request_refer(cas_request *rq, size_t pos, const void *data, size_t n)
{
        if (rq->refs_ok && rq->n_refs < CAS_REQUEST_REFS && pos == sizeof(struct fuse_out_header) + rq->refs_len) {
                rq->refs[rq->n_refs++] = (struct iovec){(void *)data, n};
                rq->refs_len += n;
                return true;
        }
        /* the pieces before it copied first: a payload is left where it lies whole or not at all */
        size_t at = sizeof(struct fuse_out_header);
        bool put = true;
        for (int k = 0; k < rq->n_refs && put; k++) {
                put = cas_request_put(rq, at, rq->refs[k].iov_base, rq->refs[k].iov_len);
                at += rq->refs[k].iov_len;
        }
        drop_refs(rq);
        return put && cas_request_put(rq, pos, data, n);
}

void cas_request_when_written(cas_request *rq, void (*fn)(void *userdata), void *userdata)
{
        rq->written_fn = fn;
        rq->written_userdata = userdata;
}

void cas_request_written(cas_request *rq)
{
        void (*fn)(void *) = rq->written_fn;

        rq->written_fn = NULL;
        drop_refs(rq);
        if (fn)
                fn(rq->written_userdata);
}

size_t cas_request_capacity(const cas_request *rq)
{
        size_t c = 0;
        for (int k = 0; k < rq->out_cnt; k++)
                c += rq->out[k].iov_len;
        return c;
}

uint8_t *cas_request_payload(const cas_request *rq, size_t *ret_room)
{
        size_t pos = sizeof(struct fuse_out_header);
        for (int s = 0; s < rq->out_cnt; s++) {
                if (pos < rq->out[s].iov_len) {
                        *ret_room = rq->out[s].iov_len - pos;
                        return (uint8_t *)rq->out[s].iov_base + pos;
                }
                pos -= rq->out[s].iov_len;
        }
        *ret_room = 0;
        return NULL;
}

static int finish(cas_request *rq, int error, size_t len)
{
        struct fuse_out_header h = {
                .len = (uint32_t)(sizeof(h) + len),
                .error = error,
                .unique = rq->in->unique,
        };
        if (rq->n_refs > 0 && error == 0 && len != rq->refs_len)
                return finish(rq, -EIO, 0); /* never a payload half left where it lay */
        if (error != 0) /* an error has no payload */
                drop_refs(rq);
        if (!cas_request_put(rq, 0, &h, sizeof(h)))
                return -ENOBUFS;
        rq->written = h.len;
        return 0;
}

int cas_request_finish(cas_request *rq, size_t len)
{
        return finish(rq, 0, len);
}

int cas_request_error(cas_request *rq, int error)
{
        return finish(rq, error, 0);
}

int cas_request_reply(cas_request *rq, const void *data, size_t n)
{
        if (n && !cas_request_put(rq, sizeof(struct fuse_out_header), data, n))
                return finish(rq, -ERANGE, 0); /* too large for the buffers given: say so instead */
        return finish(rq, 0, n);
}
