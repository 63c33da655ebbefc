/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to the libcurl backend: objstore-xfer.c makes one request and
 * judges its answer, objstore-curl.c runs requests one at a time on pooled
 * handles (the synchronous calls), objstore-multi.c runs batches of them on
 * a multi handle. */

#include <curl/curl.h>

#include "objstore-internal.h"

#define MAX_REDIRS 5
#define POOL_MAX 64
#define MULTI_POOL_MAX 16
/* What is kept of an error answer's body (S3 puts its error code there). */
#define ERROR_BODY_MAX 2048

struct objstore_curl {
        CURLSH *share;
        pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
        pthread_mutex_t pool_lock;
        CURL *pool[POOL_MAX]; /* idle handles, protected by pool_lock */
        unsigned n_pool;      /* protected by pool_lock */
        /* multi handles of finished batches, with their live connections,
         * for the next batches; protected by pool_lock */
        objstore_multi *multis[MULTI_POOL_MAX];
        unsigned n_multis;
};

/* One request and what came back of it; reset before each attempt. */
typedef struct xfer {
        cas_objstore *os;
        const char *method; /* "GET", "HEAD", "PUT", "DELETE" */
        const char *op;     /* for messages: method, or "LIST", "check", "create" */
        char *key;          /* the object's key, or NULL for a request on the bucket */
        char *query;        /* canonical query string, or NULL */
        const uint8_t *body;
        size_t body_len, body_off;
        uint8_t *owned_body; /* a batch put's buffer */
        size_t max_size;
        uint64_t size; /* a head's answer */
        const char *if_none_match;
        bool check;     /* cas_objstore_check: the folder, not an object */
        bool want_size; /* a head: the size is the answer */
        bool range;
        uint64_t range_off;
        size_t range_n;
        uint8_t *range_dest; /* NULL: into buf */

        /* the answer */
        long status; /* of the last response seen (redirects included) */
        uint8_t *buf;
        size_t len, cap;
        uint64_t skip; /* bytes to drop: a server that ignored Range */
        bool too_big, range_done, bad_range;
        unsigned retry_after; /* seconds, from a 429 or 503 */
        char *etag;
        char errbody[ERROR_BODY_MAX + 1];
        size_t errbody_len;
        char curl_err[CURL_ERROR_SIZE];
        struct curl_slist *headers;
        unsigned attempt;

        /* batches */
        CURL *easy;
        objstore_xfer_op xop;
        cas_objstore_done_cb cb;
        void *userdata;
        uint64_t due_usec;
        int result;  /* once finished */
        char *error; /* its error line, once finished with an error */
        struct xfer *next;
} xfer;

/* Sets the request's method, op and key (copied) and leaves its other
 * fields as the caller set them. */
int xfer_init(xfer *x, cas_objstore *os, const char *method, const char *op, const char *key);
/* Frees what x holds (not x). */
void xfer_done(xfer *x);
/* Resets x for an attempt and sets h up to make it (share: NULL or the
 * handles' CURLSH); h's options point into x until h is reset. */
int xfer_setup(xfer *x, CURL *h, CURLSH *share);
/* Maps the outcome of a transfer to 0 (1: not modified) or a negative errno,
 * leaving the error line; *ret_retry says whether another attempt may help. */
int xfer_result(xfer *x, CURL *h, CURLcode res, bool *ret_retry);
/* Hands the answer's body out (never NULL: an empty one is still an
 * allocation) and its length. */
int xfer_take_body(xfer *x, void **ret_buf, size_t *ret_len);
/* S3's <Code> of an error answer, printable, or "". */
const char *xfer_error_code(const xfer *x, char *buf, size_t size);
/* How long to wait before attempt x->attempt + 1. */
unsigned xfer_backoff_ms(const xfer *x);

/* Frees a batch's multi handle and its idle handles (objstore-multi.c). */
void objstore_multi_destroy(objstore_multi *m);
