/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* http(s):// and s3:// over libcurl.
 *
 * Synchronous calls come from many threads at once (the mount's workers), so
 * each takes an easy handle from a pool and gives it back: a handle keeps
 * its live connections across uses (curl_easy_reset leaves them), so a
 * connection is reused by whichever thread takes the handle next. DNS
 * answers and TLS sessions are shared by every handle through a CURLSH
 * guarded by one mutex per kind of data. The connection cache itself is not
 * shared: a connection cache shared by concurrent threads is one of
 * libcurl's known bugs (data races on connections in use).
 *
 * Batches drive a multi handle from one thread, `jobs` transfers in flight.
 * A multi handle holds its connections, so a finished batch leaves its
 * handle in a pool for the next one: a reader that fetches each blob's
 * chunks in a batch of its own does not connect anew for every blob
 * (objstore-multi.c).
 *
 * One request, its bounds and the judgement of its answer are in
 * objstore-xfer.c. */
#include <time.h>

#include "log.h"
#include "objstore-curl.h"

/* A page of ListObjectsV2 (1000 keys of up to 1 KiB, with their XML). */
#define LIST_PAGE_MAX (8u << 20)

/* ---- synchronous calls ---- */

static CURL *pool_get(objstore_curl *c)
{
        CURL *h = NULL;

        pthread_mutex_lock(&c->pool_lock);
        if (c->n_pool > 0)
                h = c->pool[--c->n_pool];
        pthread_mutex_unlock(&c->pool_lock);
        return h ?: curl_easy_init();
}

static void pool_put(objstore_curl *c, CURL *h)
{
        pthread_mutex_lock(&c->pool_lock);
        if (c->n_pool < POOL_MAX) {
                c->pool[c->n_pool++] = h;
                h = NULL;
        }
        pthread_mutex_unlock(&c->pool_lock);
        if (h)
                curl_easy_cleanup(h);
}

/* Makes the request that method, op, key and the fields the caller set in
 * x (the others zero) describe, with its retries; returns as xfer_result.
 * x is the caller's to xfer_done. */
static int xfer_run(xfer *x, cas_objstore *os, const char *method, const char *op,
                    const char *key)
{
        objstore_curl *c = os->curl;
        bool retry;
        CURL *h;
        int r;

        r = xfer_init(x, os, method, op, key);
        if (r < 0)
                return r;
        h = pool_get(c);
        if (!h)
                return -ENOMEM;
        for (x->attempt = 0;; x->attempt++) {
                r = xfer_setup(x, h, c->share);
                if (r < 0)
                        break;
                CURLcode res = curl_easy_perform(h);
                r = xfer_result(x, h, res, &retry);
                if (!retry || x->attempt >= os->retries)
                        break;
                unsigned ms = xfer_backoff_ms(x);
                cas_log_debug("objstore: %s; again in %u ms", cas_objstore_last_error(), ms);
                struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
        /* the handle's options point into x */
        curl_easy_reset(h);
        pool_put(c, h);
        return r;
}

static int curl_get(cas_objstore *os, const char *key, size_t max_size, void **ret_buf,
                    size_t *ret_len)
{
        _cleanup_(xfer_done) xfer x = { .max_size = max_size };
        int r;

        r = xfer_run(&x, os, "GET", "GET", key);
        if (r < 0)
                return r;
        return xfer_take_body(&x, ret_buf, ret_len);
}

static int curl_get_range(cas_objstore *os, const char *key, uint64_t off, size_t n, void *buf,
                          size_t *ret_len)
{
        _cleanup_(xfer_done) xfer x = {
                .range = true, .range_off = off, .range_n = n, .range_dest = buf
        };
        int r;

        r = xfer_run(&x, os, "GET", "GET", key);
        if (r >= 0)
                *ret_len = x.len;
        return r;
}

static int curl_get_if_changed(cas_objstore *os, const char *key, const char *etag,
                               size_t max_size, void **ret_buf, size_t *ret_len, char **ret_etag)
{
        _cleanup_(xfer_done) xfer x = { .max_size = max_size, .if_none_match = etag };
        int r;

        r = xfer_run(&x, os, "GET", "GET", key);
        if (r < 0)
                return r;
        if (r == 1) {
                *ret_buf = NULL;
                *ret_len = 0;
                return 0;
        }
        r = xfer_take_body(&x, ret_buf, ret_len);
        if (r < 0)
                return r;
        *ret_etag = TAKE_PTR(x.etag);
        return 1;
}

static int curl_head(cas_objstore *os, const char *key, uint64_t *ret_size)
{
        _cleanup_(xfer_done) xfer x = { .want_size = true };
        int r;

        r = xfer_run(&x, os, "HEAD", "HEAD", key);
        if (r >= 0)
                *ret_size = x.size;
        return r;
}

static int curl_put(cas_objstore *os, const char *key, const void *buf, size_t len)
{
        _cleanup_(xfer_done) xfer x = { .body = buf, .body_len = len };

        return xfer_run(&x, os, "PUT", "PUT", key);
}

static int curl_delete(cas_objstore *os, const char *key)
{
        _cleanup_(xfer_done) xfer x = {};
        int r;

        r = xfer_run(&x, os, "DELETE", "DELETE", key);
        return r == -ENOENT ? 0 : r;
}

static int append_raw(const char *s, char **buf, size_t *len, size_t *cap)
{
        size_t n = strlen(s);
        char *b = *buf;

        if (*len + n + 1 > *cap) {
                size_t c = MAX(*cap * 2, *len + n + 64);
                b = realloc(*buf, c);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *cap = c;
        }
        memcpy(b + *len, s, n + 1);
        *len += n;
        return 0;
}

/* The canonical query of a ListObjectsV2 request: names sorted, names and
 * values encoded, as SigV4 wants and as the URL carries it. */
static int list_query(const char *prefix, const char *token, unsigned max_keys, char **ret)
{
        char num[32];
        const char *parts[8];
        size_t n = 0, len = 0, cap = 0;
        char *q = NULL;
        int r = 0;

        snprintf(num, sizeof(num), "%u", max_keys);
        if (token) {
                parts[n++] = "continuation-token";
                parts[n++] = token;
        }
        parts[n++] = "list-type";
        parts[n++] = "2";
        parts[n++] = "max-keys";
        parts[n++] = num;
        parts[n++] = "prefix";
        parts[n++] = prefix;
        for (size_t i = 0; r >= 0 && i < n; i += 2) {
                if (i > 0)
                        r = append_raw("&", &q, &len, &cap);
                if (r >= 0)
                        r = s3_uri_encode(parts[i], false, &q, &len, &cap);
                if (r >= 0)
                        r = append_raw("=", &q, &len, &cap);
                if (r >= 0)
                        r = s3_uri_encode(parts[i + 1], false, &q, &len, &cap);
        }
        if (r < 0) {
                free(q);
                return r;
        }
        *ret = q;
        return 0;
}

typedef struct list_ctx {
        const cas_objstore *os;
        size_t strip; /* bytes of the store's prefix and its '/' */
        cas_objstore_list_cb cb;
        void *userdata;
        unsigned n;
} list_ctx;

static int list_entry(const char *key, uint64_t size, void *userdata)
{
        list_ctx *l = userdata;

        l->n++;
        if (strncmp(key, l->os->prefix, l->strip ? l->strip - 1 : 0) != 0 ||
            (l->strip && key[l->strip - 1] != '/') || !objstore_key_valid(key + l->strip, false)) {
                cas_log_debug("objstore: %s: LIST: key outside the prefix skipped",
                              l->os->address);
                return 0;
        }
        return l->cb(key + l->strip, size, l->userdata);
}

static int s3_list_pages(cas_objstore *os, const char *op, const char *prefix, unsigned max_keys,
                         bool one_page, cas_objstore_list_cb cb, void *userdata)
{
        _cleanup_free_ char *full = NULL, *token = NULL;
        list_ctx l = { .os = os, .cb = cb, .userdata = userdata };
        int r;

        l.strip = os->prefix[0] ? strlen(os->prefix) + 1 : 0;
        if (objstore_asprintf(&full, "%s%s%s", os->prefix, os->prefix[0] ? "/" : "", prefix) < 0)
                return -ENOMEM;
        for (;;) {
                _cleanup_(xfer_done) xfer x = { .max_size = LIST_PAGE_MAX };
                _cleanup_free_ char *next = NULL;

                r = list_query(full, token, max_keys, &x.query);
                if (r < 0)
                        return r;
                r = xfer_run(&x, os, "GET", op, NULL);
                if (r < 0)
                        return r;
                l.n = 0;
                r = s3_parse_list(x.buf ? (char *)x.buf : "", x.len, list_entry, &l, &next);
                if (r == -EBADMSG)
                        return objstore_error(os, -EIO, op, prefix,
                                              "malformed ListObjectsV2 answer");
                if (r != 0)
                        return r;
                if (!next || one_page)
                        return 0;
                /* a page without keys that asks for more, or the same token
                 * again, would go on forever */
                if (l.n == 0 || (token && strcmp(token, next) == 0))
                        return objstore_error(os, -EIO, op, prefix,
                                              "listing does not advance");
                free(token);
                token = TAKE_PTR(next);
        }
}

static int curl_list(cas_objstore *os, const char *prefix, cas_objstore_list_cb cb,
                     void *userdata)
{
        return s3_list_pages(os, "LIST", prefix, 1000, false, cb, userdata);
}

static int ignore_entry(const char *key, uint64_t size, void *userdata)
{
        return 0;
}

static int curl_check(cas_objstore *os)
{
        _cleanup_(xfer_done) xfer x = { .check = true };
        int r;

        if (os->kind == OBJSTORE_S3)
                return s3_list_pages(os, "check", "", 1, true, ignore_entry, NULL);

        /* a web server: the folder answers (a listing, or 403 without one) */
        r = xfer_run(&x, os, "HEAD", "check", NULL);
        if (r == -EACCES && x.status == 403 && !os->userpwd)
                r = 0;
        return r;
}

static int curl_create(cas_objstore *os)
{
        _cleanup_free_ char *body = NULL;
        _cleanup_(xfer_done) xfer x = {};
        char code[64];
        int r;

        if (strcmp(os->region, "us-east-1") != 0) {
                if (objstore_asprintf(
                        &body,
                        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
                        "2006-03-01/\"><LocationConstraint>%s</LocationConstraint>"
                        "</CreateBucketConfiguration>",
                        os->region) < 0)
                        return -ENOMEM;
                x.body = (const uint8_t *)body;
                x.body_len = strlen(body);
        }
        r = xfer_run(&x, os, "PUT", "create", NULL);
        if (r == -EIO && x.status == 409) {
                xfer_error_code(&x, code, sizeof(code));
                if (strcmp(code, "BucketAlreadyOwnedByYou") == 0)
                        r = 0;
                else
                        r = objstore_error(os, -EEXIST, "create", NULL,
                                           "bucket %s exists (%s)", os->bucket, code);
        }
        return r;
}

/* ---- set-up ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userdata)
{
        objstore_curl *c = userdata;
        pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userdata)
{
        objstore_curl *c = userdata;
        pthread_mutex_unlock(&c->share_locks[data]);
}

static void curl_free_backend(cas_objstore *os)
{
        objstore_curl *c = os->curl;

        if (!c)
                return;
        for (unsigned i = 0; i < c->n_multis; i++)
                objstore_multi_destroy(c->multis[i]);
        for (unsigned i = 0; i < c->n_pool; i++)
                curl_easy_cleanup(c->pool[i]);
        if (c->share)
                curl_share_cleanup(c->share);
        for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_destroy(&c->share_locks[i]);
        pthread_mutex_destroy(&c->pool_lock);
        free(c);
        os->curl = NULL;
}

static const objstore_ops curl_ops = {
        .check = curl_check,
        .create = curl_create,
        .get = curl_get,
        .get_range = curl_get_range,
        .get_if_changed = curl_get_if_changed,
        .head = curl_head,
        .put = curl_put,
        .delete = curl_delete,
        .list = curl_list,
        .free = curl_free_backend,
};

static CURLcode global_init_result = CURLE_FAILED_INIT;

static void global_init(void)
{
        global_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int objstore_curl_open(cas_objstore *os)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        objstore_curl *c;

        pthread_once(&once, global_init);
        if (global_init_result != CURLE_OK)
                return -EIO;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        os->curl = c;
        os->ops = &curl_ops;
        for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init(&c->share_locks[i], NULL);
        pthread_mutex_init(&c->pool_lock, NULL);
        c->share = curl_share_init();
        if (!c->share)
                return -ENOMEM;
        curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        return 0;
}

