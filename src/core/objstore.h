/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Object stores: flat namespaces of immutable byte strings under keys
 * ("chunks/b3/ab12/<hex>"), the transport under a remote castore (remote.h,
 * SPEC.md §7). Three backends behind one interface:
 *
 *   file:///PATH               a local folder, keys as relative paths
 *   s3://BUCKET[/PREFIX]       the S3 API, AWS Signature V4 (libcurl)
 *   http(s)://HOST[:PORT]/PFX  any static web server, read-only (GET, Range)
 *
 * Nothing here knows castore: what comes back is untrusted bytes, which the
 * layer above checks against digests. Every call is bounded: a size limit
 * per object, a timeout, a bounded number of retries with backoff on 5xx
 * answers and dropped connections. Credentials never appear in errors or
 * logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cas_objstore cas_objstore;

typedef struct cas_objstore_options {
        const char *s3_endpoint; /* --s3-endpoint / $AWS_ENDPOINT_URL; NULL: AWS */
        const char *ca_bundle;   /* --ca-bundle / $CASFS_CA_BUNDLE; NULL: system CAs */
        unsigned timeout_sec;    /* a transfer making no progress this long fails; 0: 10 s */
        unsigned retries;        /* attempts after the first on 5xx / resets; 0: default (3) */
        unsigned jobs;           /* transfers in flight in a batch; 0: default (32) */
} cas_objstore_options;

/* Whether a store address names an object store (has one of the schemes
 * above) rather than a local casfs store's path. */
bool cas_objstore_is_address(const char *address);

/* The S3 endpoint o names: --s3-endpoint, else $AWS_ENDPOINT_URL; NULL or
 * "": AWS's. */
const char *cas_objstore_s3_endpoint(const cas_objstore_options *o);

/* Parses the address and prepares the backend; contacts nothing yet.
 * -EINVAL for a malformed address (the caller says so). Credentials come from
 * $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY / $AWS_SESSION_TOKEN (none:
 * anonymous requests), the region from $AWS_REGION (default us-east-1). */
int cas_objstore_open(const char *address, const cas_objstore_options *o, cas_objstore **ret);
cas_objstore *cas_objstore_free(cas_objstore *os);

/* The address without credentials, for messages ("s3://bucket/prefix"). */
const char *cas_objstore_address(const cas_objstore *os);
/* False for http(s):// (puts and deletes fail with -EROFS). */
bool cas_objstore_writable(const cas_objstore *os);

/* Errors of every call: -ENOENT the object (or, from cas_objstore_check, the
 * bucket or folder) does not exist; -EACCES refused (credentials);
 * -EFBIG the object is larger than max_size; -ETIMEDOUT no answer in time;
 * -EHOSTUNREACH / -ECONNREFUSED the endpoint cannot be reached; -EIO any
 * other failure after the retries (a line saying what went wrong is left for
 * cas_objstore_last_error of the calling thread). */
const char *cas_objstore_last_error(void);

/* How the stores over an object store (the remote blob and directory
 * stores, the cache's) take a request for key at address that failed
 * with r. -ENOENT and -ENOMEM are returned as they are, unsaid. -EFBIG, an
 * object larger than the reader allows, is corrupt data: said as
 * "ADDRESS: KEY: larger than LIMIT", -EBADMSG. Anything else is said in
 * cas_objstore_last_error's line (it names the store, without
 * credentials): with down NULL each time, returning r; else only when
 * *down was false (it is then set), followed by " (WHILE_DOWN)", returning
 * -EIO, so that a store that stops answering is one line, not one per
 * request (cas_objstore_answers says when it answers again). */
int cas_objstore_failed(const char *address, const char *key, int r, const char *limit, _Atomic bool *down,
                        const char *while_down);
/* A request to address answered: says so when *down was set, and clears it. */
void cas_objstore_answers(const char *address, _Atomic bool *down);

/* Checks that the store answers and exists (the bucket, the folder, the
 * server), with one request. s3://: a listing of one key (a missing bucket
 * is -ENOENT, "no such bucket NAME"); http(s)://: the prefix's folder
 * answers (403, a server that lists no folders, counts as there). */
int cas_objstore_check(cas_objstore *os);
/* Creates the bucket (s3://, in $AWS_REGION) or the folder and its parents
 * (file://); one that exists already and is ours is fine (-EEXIST: the
 * bucket is someone else's). -EROFS for http(s)://. */
int cas_objstore_create_bucket(cas_objstore *os);

/* The whole object, at most max_size bytes (more: -EFBIG, nothing
 * returned). The caller frees *ret_buf. Thread-safe. */
int cas_objstore_get(cas_objstore *os, const char *key, size_t max_size, void **ret_buf,
                     size_t *ret_len);
/* Bytes [off, off+n) of an object (an HTTP Range request); short only at the
 * end of the object. */
int cas_objstore_get_range(cas_objstore *os, const char *key, uint64_t off, size_t n, void *buf,
                           size_t *ret_len);
/* A conditional get: when etag (may be NULL) still matches, returns 0 and
 * sets *ret_buf NULL (not modified); else 1 with the object and its new
 * ETag (*ret_etag, freed by the caller; NULL when the server gives none). */
int cas_objstore_get_if_changed(cas_objstore *os, const char *key, const char *etag,
                                size_t max_size, void **ret_buf, size_t *ret_len, char **ret_etag);
/* Size of an object; -ENOENT when absent. */
int cas_objstore_head(cas_objstore *os, const char *key, uint64_t *ret_size);
/* Writes an object whole; a reader never sees it half written (file://:
 * a temporary file renamed into place). */
int cas_objstore_put(cas_objstore *os, const char *key, const void *buf, size_t len);
/* Removes an object; absent is not an error. */
int cas_objstore_delete(cas_objstore *os, const char *key);
/* Every key under prefix with its size, in no particular order; cb returns
 * non-zero to stop (returned). -EOPNOTSUPP for http(s)://, which has no
 * listing. */
typedef int (*cas_objstore_list_cb)(const char *key, uint64_t size, void *userdata);
int cas_objstore_list(cas_objstore *os, const char *prefix, cas_objstore_list_cb cb,
                      void *userdata);

/* Many transfers at once, over reused connections (`jobs` in flight). Not
 * thread-safe: one thread drives a batch; completion callbacks run on that
 * thread, inside batch_get/batch_put (when they wait for a free slot) or
 * batch_wait. r is 0 or a negative errno as above; for a get, buf/len is
 * the object (owned by the callback: it must free buf); for a put, NULL/0. */
typedef struct cas_objstore_batch cas_objstore_batch;
typedef void (*cas_objstore_done_cb)(int r, const char *key, void *buf, size_t len,
                                     void *userdata);
int cas_objstore_batch_new(cas_objstore *os, cas_objstore_batch **ret);
/* Queues a get (max_size as for cas_objstore_get). */
int cas_objstore_batch_get(cas_objstore_batch *b, const char *key, size_t max_size,
                           cas_objstore_done_cb cb, void *userdata);
/* Queues a head: the callback gets len = the object's size, buf NULL. */
int cas_objstore_batch_head(cas_objstore_batch *b, const char *key, cas_objstore_done_cb cb,
                            void *userdata);
/* Queues a put; takes ownership of buf (freed once sent). */
int cas_objstore_batch_put(cas_objstore_batch *b, const char *key, void *buf, size_t len,
                           cas_objstore_done_cb cb, void *userdata);
/* Runs until every queued transfer is done. */
int cas_objstore_batch_wait(cas_objstore_batch *b);
/* Waits for what is in flight, then frees. Accepts NULL. */
cas_objstore_batch *cas_objstore_batch_free(cas_objstore_batch *b);

static inline void cas_objstore_freep(cas_objstore **os)
{
        if (*os)
                cas_objstore_free(*os);
}
static inline void cas_objstore_batch_freep(cas_objstore_batch **b)
{
        if (*b)
                cas_objstore_batch_free(*b);
}
