/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "outboard.h"
#include "readpath.h"
#include "state.h"
#include "verify.h"

/* Whole-blob checks read in pieces of this size. */
#define VERIFY_CHUNK (1024 * 1024)

void cas_readpath_init(cas_readpath *rp, cas_blobstore *blobs, const cas_engine_options *opts, cas_parked *parked,
                       const cas_engine_transport *transport)
{
        *rp = (cas_readpath){
                .blobs = blobs,
                .verify = opts->verify,
                .direct_io = opts->direct_io,
                .parked = parked,
                .transport = transport,
        };
        for (size_t n = 0; n < ELEMENTSOF(rp->verify_locks); n++)
                pthread_mutex_init(&rp->verify_locks[n], NULL);
}

void cas_readpath_done(cas_readpath *rp)
{
        for (size_t n = 0; n < ELEMENTSOF(rp->verify_locks); n++)
                pthread_mutex_destroy(&rp->verify_locks[n]);
}

/* A blob reader cached per thread: sequential reads of one file by one
 * thread open its blob once. buf: where blob bytes are read and checked
 * before they are copied into a reply. */
static _Thread_local struct {
        cas_readpath *rp;
        cas_digest digest;
        cas_blob_reader *reader;
        uint8_t *buf;
        size_t buf_size;
} reader_cache;

void cas_readpath_thread_done(void)
{
        reader_cache.reader = cas_blob_reader_free(reader_cache.reader);
        reader_cache.rp = NULL;
        free(reader_cache.buf);
        reader_cache.buf = NULL;
        reader_cache.buf_size = 0;
}

/* At least n bytes, aligned for direct reads. */
static uint8_t *thread_buffer(size_t n)
{
        if (reader_cache.buf_size < n) {
                void *b;
                free(reader_cache.buf);
                reader_cache.buf = posix_memalign(&b, CAS_DIRECT_ALIGN, n) == 0 ? b : NULL;
                reader_cache.buf_size = reader_cache.buf ? n : 0;
        }
        return reader_cache.buf;
}

static int open_blob(cas_readpath *rp, const cas_inode *i, cas_blob_reader **ret)
{
        if (reader_cache.reader && reader_cache.rp == rp && cas_digest_eq(&reader_cache.digest, &i->digest)) {
                *ret = reader_cache.reader;
                return 0;
        }
        cas_blob_reader *rd;
        int r = cas_blobstore_open(rp->blobs, &i->digest, &rd);
        if (r < 0)
                return r;
        cas_blob_reader_free(reader_cache.reader);
        reader_cache.rp = rp;
        reader_cache.digest = i->digest;
        reader_cache.reader = rd;
        *ret = rd;
        return 0;
}

static void blob_error(const cas_inode *i, const char *what)
{
        char text[CAS_DIGEST_TEXT_MAX];
        cas_log(CAS_LOG_ERR, "blob %s: %s", cas_digest_to_text(&i->digest, text), what);
}

static pthread_mutex_t *verify_lock(cas_readpath *rp, const cas_inode *i)
{
        return &rp->verify_locks[((uintptr_t)i >> 6) % ELEMENTSOF(rp->verify_locks)];
}

/* The verdict of a whole check as the inode keeps it. */
static int verdict_status(cas_verdict v)
{
        return v == CAS_VERDICT_BAD ? -EBADMSG : 0;
}

/* Hashes the whole blob once and keeps the verdict; a large blob's outboard
 * is computed on the way (*ret_outboard). */
static int hash_whole_blob(cas_blob_reader *rd, cas_inode *i, uint8_t **ret_outboard)
{
        uint8_t *buf = thread_buffer(VERIFY_CHUNK);
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_verify_blob(rd, &i->digest, i->size, buf, VERIFY_CHUNK, ret_outboard);
        if (r == -EBADMSG)
                cas_state_set_verdict(i, CAS_VERDICT_BAD);
        else if (r >= 0)
                cas_state_set_verdict(i, CAS_VERDICT_GOOD);
        return r;
}

/* Small blobs: checked whole before their first byte is served, once per
 * inode (the kernel reads ahead with several requests at once: one thread
 * hashes while the others wait for its verdict). */
static int verify_small_blob(cas_readpath *rp, cas_blob_reader *rd, cas_inode *i)
{
        cas_verdict v = cas_state_verdict(i);
        int r;

        if (v != CAS_VERDICT_UNKNOWN)
                return verdict_status(v);
        pthread_mutex_lock(verify_lock(rp, i));
        v = cas_state_verdict(i);
        r = v != CAS_VERDICT_UNKNOWN ? verdict_status(v) : hash_whole_blob(rd, i, &(uint8_t *){NULL});
        pthread_mutex_unlock(verify_lock(rp, i));
        return r;
}

int cas_readpath_outboard(cas_readpath *rp, cas_blob_reader *rd, cas_inode *i, const uint8_t **ret)
{
        cas_inode_state *st = cas_state(i);
        uint8_t *ob = atomic_load(&st->outboard);
        int r = 0;

        if (ob) {
                *ret = ob;
                return 0;
        }
        if (cas_state_verdict(i) == CAS_VERDICT_BAD)
                return -EBADMSG;
        if (cas_blob_reader_checked(rd))
                return -EOPNOTSUPP; /* hashing it whole would fetch all of it */
        pthread_mutex_lock(verify_lock(rp, i));
        ob = atomic_load(&st->outboard);
        if (!ob && cas_state_verdict(i) == CAS_VERDICT_BAD)
                r = -EBADMSG;
        else if (!ob) {
                uint8_t *buf = thread_buffer(VERIFY_CHUNK);
                r = buf ? cas_verify_outboard(rp->blobs, rd, &i->digest, i->size, buf, VERIFY_CHUNK, &ob) : -ENOMEM;
                if (r == -EBADMSG)
                        cas_state_set_verdict(i, CAS_VERDICT_BAD);
                if (r >= 0)
                        atomic_store(&st->outboard, ob);
        }
        pthread_mutex_unlock(verify_lock(rp, i));
        if (r < 0)
                return r;
        *ret = ob;
        return 0;
}

/* The backing file id to serve file i by passthrough (the kernel then reads
 * the blob's file itself, as fast as any local file), or 0 to serve it
 * through READ: a large blob, whose reads are checked group by group; an
 * empty one; one missing, damaged or failing its check (READ answers EIO).
 * A small blob is checked whole first. The id is kept in the inode's state
 * and closed when the kernel forgets it. */
int32_t cas_readpath_backing_id(cas_readpath *rp, cas_inode *i)
{
        cas_inode_state *st = cas_state(i);
        const cas_engine_transport *t = rp->transport;
        cas_blob_reader *rd;
        int32_t id, none = 0;

        if (!rp->passthrough || atomic_load(&rp->passthrough_refused) || i->size == 0 ||
            (rp->verify && cas_outboard_size(i->size) > 0))
                return 0;
        id = atomic_load(&st->backing_id);
        if (id > 0)
                return id;
        if (open_blob(rp, i, &rd) < 0 || cas_blob_reader_size(rd) != i->size || cas_blob_reader_fd(rd) < 0)
                return 0;
        if (rp->verify && verify_small_blob(rp, rd, i) < 0)
                return 0;
        id = t->backing_open(t->userdata, cas_blob_reader_fd(rd));
        if (id <= 0) {
                if (id != -ENOMEM && id != -EMFILE && id != -ENFILE && !atomic_exchange(&rp->passthrough_refused, true))
                        cas_log(CAS_LOG_WARNING, "the kernel refuses passthrough (%s); serving reads itself",
                                strerror(id < 0 ? -id : EIO));
                return 0;
        }
        if (!atomic_compare_exchange_strong(&st->backing_id, &none, id)) {
                t->backing_close(t->userdata, id); /* another open was first */
                id = none;
        }
        return id;
}

/* Reads size bytes at off into the reply (after the header), straight into
 * its buffers (for virtiofs: guest memory). */
static int read_into_reply(cas_request *rq, cas_blob_reader *rd, uint64_t off, size_t size)
{
        size_t pos = sizeof(struct fuse_out_header), left = size;
        for (int s = 0; s < rq->out_cnt && left > 0; s++) {
                if (pos >= rq->out[s].iov_len) {
                        pos -= rq->out[s].iov_len;
                        continue;
                }
                size_t c = MIN(left, rq->out[s].iov_len - pos);
                ssize_t got = cas_blob_reader_pread(rd, (uint8_t *)rq->out[s].iov_base + pos, c, off);
                if (got < 0 || (size_t)got != c)
                        return got < 0 ? (int)got : -EIO;
                off += c;
                left -= c;
                pos = 0;
        }
        return 0;
}

/* The reply's payload as one contiguous buffer of size bytes, when it is one. */
static uint8_t *reply_payload(cas_request *rq, size_t size)
{
        size_t room;
        uint8_t *p = cas_request_payload(rq, &room);
        return room >= size ? p : NULL;
}

/* Reads size bytes at off of a small blob into the reply, the blob checked
 * whole first. Most small files are read whole by one request: the blob is
 * then read once, into the reply's own buffer, and checked there. */
static int read_small(cas_readpath *rp, cas_request *rq, cas_inode *i, cas_blob_reader *rd, uint64_t off,
                      size_t size)
{
        uint8_t *direct = cas_state_verdict(i) == CAS_VERDICT_UNKNOWN && off == 0 && size == i->size
                                  ? reply_payload(rq, size)
                                  : NULL;
        int r;

        if (!direct) {
                r = verify_small_blob(rp, rd, i);
                return r < 0 ? r : read_into_reply(rq, rd, off, size);
        }
        ssize_t n = cas_blob_reader_pread(rd, direct, size, 0);
        if (n < 0 || (size_t)n != size)
                return n < 0 ? (int)n : -EIO;
        if (cas_verify_buffer(direct, size, &i->digest) < 0) {
                memset(direct, 0, size); /* leave no unchecked byte in a reply buffer (guest memory) */
                cas_state_set_verdict(i, CAS_VERDICT_BAD);
                return -EBADMSG;
        }
        cas_state_set_verdict(i, CAS_VERDICT_GOOD);
        return 0;
}

/* Reads size bytes at off of a large blob into the reply, checking every
 * group the range touches against the outboard first. A range of whole
 * groups is read and checked in the reply's own buffer; any other goes
 * through the thread's buffer. *ret_group: the group that did not match. */
static int read_checked(cas_readpath *rp, cas_request *rq, cas_inode *i, cas_blob_reader *rd, const uint8_t *ob,
                        uint64_t off, size_t size, uint64_t *ret_group)
{
        uint64_t start;
        size_t span = cas_verify_span(i->size, off, size, &start);
        size_t room = 0;
        uint8_t *direct = start == off && span == size ? cas_request_payload(rq, &room) : NULL;
        if (room < size)
                direct = NULL;
        uint8_t *buf = direct;
        if (!buf) /* a read inside a group: the groups go through the thread's buffer */
                buf = thread_buffer(room = MAX(CAS_DIRECT_LEN(span), (size_t)VERIFY_CHUNK));

        if (!buf)
                return -ENOMEM;
        int r = cas_verify_read_groups(rd, ob, i->size, start, span, buf, room, rp->direct_io, ret_group);
        if (r == -EBADMSG && direct) /* leave no unchecked byte in a reply buffer (guest memory) */
                memset(direct, 0, size);
        if (r < 0)
                return r;
        if (!direct && !cas_request_put(rq, sizeof(struct fuse_out_header), buf + (off - start), size))
                return -ENOBUFS;
        return 0;
}

/* Reads a range of the blob, opened, into the reply: checked when verifying. */
static int read_blob(cas_readpath *rp, cas_request *rq, cas_inode *i, cas_blob_reader *rd, uint64_t off,
                     size_t size)
{
        uint64_t bad_group = 0;
        const uint8_t *ob = NULL;
        uint8_t *payload;
        size_t room;
        char what[128];
        int r;
        /* a reader of a remote blob partly cached checks what it reads itself */
        bool verify = rp->verify && !cas_blob_reader_checked(rd);

        /* a large blob read from the store: its outboard loaded (and checked) once per inode; when
         * that fails, read_checked below says why */
        bool large = cas_outboard_size(i->size) > 0 && !cas_blob_reader_checked(rd) &&
                     (!verify || cas_readpath_outboard(rp, rd, i, &ob) >= 0);
        bool around = large && rp->around && cas_around_wanted(rp->around, i, off, size);

        if (large && rp->streams && cas_streams_read(rp->streams, rq, i, ob, off, size))
                return 0; /* read ahead, and checked there when verifying */
        if (!verify && cas_outboard_size(i->size) > 0 && (payload = cas_request_payload(rq, &room)) &&
            room >= size) {
                ssize_t got = cas_verify_pread(rd, payload, room, size, off, rp->direct_io);
                r = got < 0 ? (int)got : (size_t)got == size ? 0 : -EIO;
        } else if (!verify)
                r = read_into_reply(rq, rd, off, size);
        else if (cas_outboard_size(i->size) == 0)
                r = read_small(rp, rq, i, rd, off, size);
        else {
                r = cas_readpath_outboard(rp, rd, i, &ob);
                if (r >= 0)
                        r = read_checked(rp, rq, i, rd, ob, off, size, &bad_group);
        }
        if (r >= 0 && around) /* the blob is there and the groups read matched */
                cas_around_queue(rp->around, i, ob, off);
        if (r >= 0)
                return 0;
        if (r == -EBADMSG && ob)
                snprintf(what, sizeof(what), "corrupt: bytes %" PRIu64 "-%" PRIu64 " do not match the digest",
                         bad_group << CAS_OUTBOARD_GROUP_SHIFT,
                         MIN(i->size, (bad_group + 1) << CAS_OUTBOARD_GROUP_SHIFT) - 1);
        else if (r == -EBADMSG)
                snprintf(what, sizeof(what), "corrupt: its bytes do not match the digest");
        else
                snprintf(what, sizeof(what), "%s", r == -EIO ? "short read" : strerror(-r));
        blob_error(i, what);
        return -EIO;
}

int cas_readpath_read(cas_readpath *rp, cas_request *rq, cas_inode *i, uint64_t off, size_t size)
{
        cas_blob_reader *rd;
        int r;

        uint8_t *parked = size > 0 && i->size <= CAS_PARKED_MAX ? cas_parked_take(rp->parked, &i->digest, i->size)
                                                                : NULL;
        if (parked) {
                /* read ahead whole and checked (when verifying) */
                bool put = cas_request_put(rq, sizeof(struct fuse_out_header), parked + off, size);
                if (off + size < i->size)
                        cas_parked_return(rp->parked, &i->digest, i->size, parked);
                else
                        cas_bufpool_put(rp->parked->pool, parked, i->size);
                if (!put)
                        return -ENOBUFS;
                if (rp->verify)
                        cas_state_set_verdict(i, CAS_VERDICT_GOOD);
        } else if (size > 0) {
                r = open_blob(rp, i, &rd);
                if (r < 0) {
                        blob_error(i, r == -ENOENT ? "missing from the store" : strerror(-r));
                        return cas_request_error(rq, -EIO);
                }
                if (cas_blob_reader_size(rd) != i->size) {
                        blob_error(i, "stored with the wrong size");
                        return cas_request_error(rq, -EIO);
                }
                r = read_blob(rp, rq, i, rd, off, size);
                if (r < 0)
                        return cas_request_error(rq, r);
        }
        return cas_request_finish(rq, size);
}

