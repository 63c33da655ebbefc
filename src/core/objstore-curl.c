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
 * chunks in a batch of its own does not connect anew for every blob.
 *
 * Every transfer is bounded: max_size bytes of body (checked against
 * Content-Length first, then while the body arrives), no progress for
 * timeout_sec, at most MAX_REDIRS redirects, retries with exponential
 * backoff on 5xx, 429 and dropped connections only. */
#include <curl/curl.h>
#include <inttypes.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "objstore-internal.h"

#define MAX_REDIRS 5
#define POOL_MAX 64
#define MULTI_POOL_MAX 16
/* What is kept of an error answer's body (S3 puts its error code there). */
#define ERROR_BODY_MAX 2048
/* A page of ListObjectsV2 (1000 keys of up to 1 KiB, with their XML). */
#define LIST_PAGE_MAX (8u << 20)
#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 5000
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

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

static void multi_destroy(objstore_multi *m);

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
        bool check;          /* cas_objstore_check: the folder, not an object */
        bool want_size;      /* a head: the size is the answer */
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
        int result;    /* once finished */
        char *error;   /* its error line, once finished with an error */
        struct xfer *next;
} xfer;

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* How long to wait before the next attempt: exponential, or what the
 * server asked for (Retry-After, in seconds), within BACKOFF_MAX_MS. */
static unsigned backoff_ms(unsigned attempt, unsigned retry_after_sec)
{
        unsigned ms = BACKOFF_BASE_MS << MIN(attempt, 8u);
        uint16_t jitter = 0;

        if (retry_after_sec > 0)
                ms = MAX(ms, MIN(retry_after_sec, 60u) * 1000u);
        if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != sizeof(jitter))
                jitter = 0;
        return MIN(ms, (unsigned)BACKOFF_MAX_MS) + jitter % 100;
}

static void xfer_reset(xfer *x)
{
        x->status = 0;
        x->len = 0;
        x->body_off = 0;
        x->too_big = x->range_done = x->bad_range = false;
        x->retry_after = 0;
        x->skip = 0;
        x->errbody_len = 0;
        x->errbody[0] = 0;
        x->curl_err[0] = 0;
        free(x->etag);
        x->etag = NULL;
        curl_slist_free_all(x->headers);
        x->headers = NULL;
}

static void xfer_done(xfer *x)
{
        xfer_reset(x);
        free(x->buf);
        x->buf = NULL;
        free(x->key);
        free(x->query);
        free(x->owned_body);
}

/* ---- callbacks ---- */

static bool status_ok(long s)
{
        return s >= 200 && s < 300;
}

static size_t header_cb(char *data, size_t size, size_t n, void *userdata)
{
        xfer *x = userdata;
        size_t len = size * n;

        if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
                /* a new response (after a redirect or a 100 Continue) */
                const char *sp = memchr(data, ' ', len);
                x->status = sp && sp + 4 <= data + len ? strtol(sp + 1, NULL, 10) : 0;
                free(x->etag);
                x->etag = NULL;
                x->skip = x->range && x->status == 200 ? x->range_off : 0;
                return len;
        }
        const char *colon = memchr(data, ':', len);
        if (!colon)
                return len;
        size_t nl = (size_t)(colon - data);
        const char *v = colon + 1, *e = data + len;
        while (v < e && (*v == ' ' || *v == '\t'))
                v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
                e--;
        if (nl == 11 && strncasecmp(data, "retry-after", 11) == 0) {
                /* seconds only; an HTTP date is taken as no advice */
                unsigned long s = strtoul(v, NULL, 10);
                x->retry_after = (unsigned)MIN(s, 3600ul);
        } else if (nl == 4 && strncasecmp(data, "etag", 4) == 0 && e - v <= 256) {
                free(x->etag);
                x->etag = strndup(v, (size_t)(e - v));
        } else if (nl == 14 && strncasecmp(data, "content-length", 14) == 0 &&
                   status_ok(x->status) && !x->range && strcmp(x->method, "GET") == 0) {
                /* refuse an oversized body before its first byte */
                uint64_t cl = strtoull(v, NULL, 10);
                if (cl > x->max_size) {
                        x->too_big = true;
                        return 0;
                }
                /* room for the whole body at once (the size is within what
                 * the caller allows); the write callback still checks */
                if (cl + 1 > x->cap && cl < SIZE_MAX) {
                        uint8_t *b = realloc(x->buf, (size_t)cl + 1);
                        if (b) {
                                x->buf = b;
                                x->cap = (size_t)cl + 1;
                        }
                }
        } else if (nl == 13 && strncasecmp(data, "content-range", 13) == 0 && x->range &&
                   x->status == 206) {
                /* "bytes FIRST-LAST/TOTAL": it must start where asked */
                uint64_t first;
                if (e - v < 7 || strncmp(v, "bytes ", 6) != 0 ||
                    sscanf(v + 6, "%" SCNu64, &first) != 1 || first != x->range_off) {
                        x->bad_range = true;
                        return 0;
                }
        }
        return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userdata)
{
        xfer *x = userdata;
        size_t len = size * n;

        if (!status_ok(x->status)) {
                size_t k = MIN(len, ERROR_BODY_MAX - x->errbody_len);
                memcpy(x->errbody + x->errbody_len, data, k);
                x->errbody_len += k;
                x->errbody[x->errbody_len] = 0;
                return len;
        }
        if (x->range) {
                size_t k = len;
                if (x->skip > 0) {
                        size_t s = (size_t)MIN((uint64_t)k, x->skip);
                        x->skip -= s;
                        data += s;
                        k -= s;
                }
                if (x->len + k > x->range_n) {
                        /* the server sends more than asked: take what was asked */
                        k = x->range_n - x->len;
                        x->range_done = true;
                }
                memcpy((x->range_dest ?: x->buf) + x->len, data, k);
                x->len += k;
                return x->range_done ? 0 : len;
        }
        if (len > x->max_size - x->len) {
                x->too_big = true;
                return 0;
        }
        if (x->len + len + 1 > x->cap) {
                size_t c = MAX(x->cap * 2, x->len + len + 1);
                if (x->max_size < SIZE_MAX)
                        c = MIN(c, x->max_size + 1);
                uint8_t *b = realloc(x->buf, c);
                if (!b)
                        return 0;
                x->buf = b;
                x->cap = c;
        }
        memcpy(x->buf + x->len, data, len);
        x->len += len;
        x->buf[x->len] = 0; /* answers parsed as text end in a NUL */
        return len;
}

static size_t read_cb(char *data, size_t size, size_t n, void *userdata)
{
        xfer *x = userdata;
        size_t k = MIN(size * n, x->body_len - x->body_off);

        memcpy(data, x->body + x->body_off, k);
        x->body_off += k;
        return k;
}

static int seek_cb(void *userdata, curl_off_t off, int origin)
{
        xfer *x = userdata;

        if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->body_len)
                return CURL_SEEKFUNC_FAIL;
        x->body_off = (size_t)off;
        return CURL_SEEKFUNC_OK;
}

/* ---- building requests ---- */

/* The path of the request, percent-encoded: the same string goes into the
 * URL and into the canonical request of SigV4. */
static int xfer_path(const xfer *x, char **ret)
{
        const cas_objstore *os = x->os;
        char *buf = NULL;
        size_t len = 0, cap = 0;
        int r;

        if (x->key || x->check) {
                r = s3_uri_encode(os->path_prefix, true, &buf, &len, &cap);
                if (r >= 0)
                        r = s3_uri_encode("/", true, &buf, &len, &cap);
                if (r >= 0 && x->key)
                        r = s3_uri_encode(x->key, true, &buf, &len, &cap);
        } else {
                /* the bucket itself */
                r = s3_uri_encode(os->path_style ? "/" : "", true, &buf, &len, &cap);
                if (r >= 0 && os->path_style)
                        r = s3_uri_encode(os->bucket, true, &buf, &len, &cap);
                if (r >= 0 && !os->path_style)
                        r = s3_uri_encode("/", true, &buf, &len, &cap);
        }
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        return 0;
}

static int add_header(xfer *x, const char *fmt, ...) _printf_(2, 3);
static int add_header(xfer *x, const char *fmt, ...)
{
        _cleanup_free_ char *h = NULL;
        struct curl_slist *l;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&h, fmt, ap);
        va_end(ap);
        if (k < 0) {
                h = NULL;
                return -ENOMEM;
        }
        l = curl_slist_append(x->headers, h);
        explicit_bzero(h, strlen(h));
        if (!l)
                return -ENOMEM;
        x->headers = l;
        return 0;
}

static int s3_headers(xfer *x, const char *path)
{
        const cas_objstore *os = x->os;
        _cleanup_free_ char *auth = NULL;
        char amz_date[17], payload[65];
        struct tm tm;
        time_t t = time(NULL);
        int r;

        gmtime_r(&t, &tm);
        strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
        if (x->body_len > 0)
                s3_sha256_hex(x->body, x->body_len, payload);
        else
                memcpy(payload, EMPTY_SHA256, sizeof(payload));

        if ((r = add_header(x, "x-amz-content-sha256: %s", payload)) < 0 ||
            (r = add_header(x, "x-amz-date: %s", amz_date)) < 0)
                return r;
        if (os->session_token && (r = add_header(x, "x-amz-security-token: %s",
                                                 os->session_token)) < 0)
                return r;
        if (!os->access_key)
                return 0; /* anonymous */

        s3_header h[] = {
                { "host", os->host_header },
                { "x-amz-content-sha256", payload },
                { "x-amz-date", amz_date },
                { "x-amz-security-token", os->session_token },
        };
        r = s3_sign(x->method, path, x->query, h, os->session_token ? 4 : 3, payload, amz_date,
                    os->region, os->access_key, os->secret_key, &auth);
        if (r < 0)
                return r;
        r = add_header(x, "Authorization: %s", auth);
        explicit_bzero(auth, strlen(auth));
        return r;
}

static int xfer_setup(xfer *x, CURL *h, CURLSH *share)
{
        const cas_objstore *os = x->os;
        _cleanup_free_ char *path = NULL, *url = NULL;
        int r;

        xfer_reset(x);
        r = xfer_path(x, &path);
        if (r < 0)
                return r;
        if (objstore_asprintf(&url, "%s%s%s%s", os->base_url, path, x->query ? "?" : "",
                              x->query ?: "") < 0) {
                url = NULL;
                return -ENOMEM;
        }
        /* S3: the Host header is set, not left to curl, as it is signed */
        if (os->kind == OBJSTORE_S3 && (r = add_header(x, "Host: %s", os->host_header)) < 0)
                return r;
        if ((r = add_header(x, "Expect:")) < 0)
                return r;
        if (x->range && (r = add_header(x, "Range: bytes=%" PRIu64 "-%" PRIu64, x->range_off,
                                        x->range_off + x->range_n - 1)) < 0)
                return r;
        if (x->if_none_match && (r = add_header(x, "If-None-Match: %s", x->if_none_match)) < 0)
                return r;
        if (os->kind == OBJSTORE_S3 && (r = s3_headers(x, path)) < 0)
                return r;

        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->curl_err);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_PRIVATE, x);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)os->timeout_sec);
        /* no progress for timeout_sec: below one byte a second for that long */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)os->timeout_sec);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        if (share)
                curl_easy_setopt(h, CURLOPT_SHARE, share);
        if (os->ca_bundle)
                curl_easy_setopt(h, CURLOPT_CAINFO, os->ca_bundle);
        if (os->kind == OBJSTORE_HTTP) {
                /* signed S3 requests are never redirected: they would not
                 * verify elsewhere */
                curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
                curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)MAX_REDIRS);
                curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
                if (os->userpwd) {
                        curl_easy_setopt(h, CURLOPT_USERPWD, os->userpwd);
                        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                }
        }
        if (strcmp(x->method, "HEAD") == 0) {
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(x->method, "PUT") == 0) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
                curl_easy_setopt(h, CURLOPT_READDATA, x);
                curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
                curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body_len);
        } else if (strcmp(x->method, "DELETE") == 0) {
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        }
        cas_log_debug("objstore: %s %s%s%s", x->method, os->address, x->key ? "/" : "",
                      x->key ?: "");
        return 0;
}

/* ---- results ---- */

static int curl_errno(CURL *h, CURLcode res)
{
        long os_errno = 0;

        switch (res) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
                if (os_errno == EHOSTUNREACH || os_errno == ENETUNREACH)
                        return -EHOSTUNREACH;
                if (os_errno == ETIMEDOUT)
                        return -ETIMEDOUT;
                return -ECONNREFUSED;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

static bool curl_retryable(CURLcode res)
{
        switch (res) {
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

/* S3's <Code> of an error answer, or "". */
static const char *error_code(xfer *x, char *buf, size_t size)
{
        _cleanup_free_ char *code = s3_xml_element(x->errbody, x->errbody_len, "Code");
        size_t i;

        buf[0] = 0;
        if (!code)
                return buf;
        /* printable and short: the server wrote it */
        for (i = 0; code[i] && i + 1 < size; i++)
                buf[i] = (code[i] >= 0x20 && code[i] < 0x7f) ? code[i] : '?';
        buf[i] = 0;
        return buf;
}

/* Maps the outcome of a transfer to 0 (1: not modified) or a negative errno,
 * leaving the error line; *ret_retry says whether another attempt may help. */
static int xfer_result(xfer *x, CURL *h, CURLcode res, bool *ret_retry)
{
        const cas_objstore *os = x->os;
        char code[64];
        const char *what = x->key;
        long status = 0;

        *ret_retry = false;
        if (res == CURLE_WRITE_ERROR && x->range_done)
                res = CURLE_OK;
        if (res != CURLE_OK) {
                if (x->too_big || res == CURLE_FILESIZE_EXCEEDED)
                        return objstore_error(os, -EFBIG, x->op, what,
                                              "object larger than %zu bytes", x->max_size);
                if (x->bad_range)
                        return objstore_error(os, -EIO, x->op, what,
                                              "answer to a range request starts elsewhere");
                if (res == CURLE_TOO_MANY_REDIRECTS)
                        return objstore_error(os, -EIO, x->op, what,
                                              "too many redirects (more than %d)", MAX_REDIRS);
                *ret_retry = curl_retryable(res);
                int r = curl_errno(h, res);
                if (r == -ETIMEDOUT)
                        return objstore_error(os, r, x->op, what,
                                              "no progress for %u s (%s)", os->timeout_sec,
                                              x->curl_err[0] ? x->curl_err
                                                             : curl_easy_strerror(res));
                return objstore_error(os, r, x->op, what, "%s",
                                      x->curl_err[0] ? x->curl_err : curl_easy_strerror(res));
        }

        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status_ok(status) && x->want_size) {
                /* a head's answer is the object's Content-Length */
                curl_off_t cl = -1;
                curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
                if (cl < 0)
                        return objstore_error(os, -EIO, x->op, what,
                                              "no Content-Length in the answer");
                x->size = (uint64_t)cl;
        }
        if (status_ok(status))
                return 0;
        if (status == 304 && x->if_none_match)
                return 1;
        if (status == 416 && x->range)
                return 0; /* starts past the end: nothing */
        error_code(x, code, sizeof(code));
        if (status == 404) {
                if (strcmp(code, "NoSuchBucket") == 0)
                        return objstore_error(os, -ENOENT, x->op, what, "no such bucket %s",
                                              os->bucket ?: "");
                if (x->check)
                        return objstore_error(os, -ENOENT, x->op, what,
                                              "HTTP 404: no such folder");
                return objstore_error(os, -ENOENT, x->op, what, "HTTP 404%s%s",
                                      code[0] ? " " : "", code);
        }
        if (status == 401 || status == 403 ||
            (status == 400 &&
             (strcmp(code, "InvalidAccessKeyId") == 0 || strcmp(code, "ExpiredToken") == 0 ||
              strcmp(code, "InvalidToken") == 0 ||
              strcmp(code, "AuthorizationHeaderMalformed") == 0)))
                return objstore_error(os, -EACCES, x->op, what,
                                      "HTTP %ld%s%s (refused: wrong or missing credentials?)",
                                      status, code[0] ? " " : "", code);
        if (status >= 500 || status == 429 || (status == 503)) {
                *ret_retry = true;
                return objstore_error(os, -EIO, x->op, what, "HTTP %ld%s%s", status,
                                      code[0] ? " " : "", code);
        }
        if (status >= 300 && status < 400)
                return objstore_error(os, -EIO, x->op, what, "HTTP %ld%s%s (redirect%s)", status,
                                      code[0] ? " " : "", code,
                                      os->kind == OBJSTORE_S3 ? ": wrong region or endpoint?"
                                                              : " not followed");
        return objstore_error(os, -EIO, x->op, what, "HTTP %ld%s%s", status, code[0] ? " " : "",
                              code);
}

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

/* Runs x with its retries; returns as xfer_result. */
static int xfer_run(xfer *x)
{
        objstore_curl *c = x->os->curl;
        CURL *h = pool_get(c);
        bool retry;
        int r;

        if (!h)
                return -ENOMEM;
        for (x->attempt = 0;; x->attempt++) {
                r = xfer_setup(x, h, c->share);
                if (r < 0)
                        break;
                CURLcode res = curl_easy_perform(h);
                r = xfer_result(x, h, res, &retry);
                if (!retry || x->attempt >= x->os->retries)
                        break;
                unsigned ms = backoff_ms(x->attempt, x->retry_after);
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

static int xfer_init(xfer *x, cas_objstore *os, const char *method, const char *op,
                     const char *key)
{
        *x = (xfer){ .os = os, .method = method, .op = op };
        if (key) {
                x->key = strdup(key);
                if (!x->key)
                        return -ENOMEM;
        }
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(xfer *, xfer_done);

static int curl_get(cas_objstore *os, const char *key, size_t max_size, void **ret_buf,
                    size_t *ret_len)
{
        xfer x;
        int r;

        r = xfer_init(&x, os, "GET", "GET", key);
        if (r < 0)
                return r;
        x.max_size = max_size;
        r = xfer_run(&x);
        if (r >= 0) {
                *ret_buf = x.buf ?: malloc(1);
                if (!*ret_buf)
                        r = -ENOMEM;
                else
                        *ret_len = x.len;
                x.buf = NULL;
        }
        xfer_done(&x);
        return r;
}

static int curl_get_range(cas_objstore *os, const char *key, uint64_t off, size_t n, void *buf,
                          size_t *ret_len)
{
        xfer x;
        int r;

        r = xfer_init(&x, os, "GET", "GET", key);
        if (r < 0)
                return r;
        x.range = true;
        x.range_off = off;
        x.range_n = n;
        x.range_dest = buf;
        r = xfer_run(&x);
        if (r >= 0)
                *ret_len = x.len;
        xfer_done(&x);
        return r;
}

static int curl_get_if_changed(cas_objstore *os, const char *key, const char *etag,
                               size_t max_size, void **ret_buf, size_t *ret_len, char **ret_etag)
{
        xfer x;
        int r;

        r = xfer_init(&x, os, "GET", "GET", key);
        if (r < 0)
                return r;
        x.max_size = max_size;
        x.if_none_match = etag;
        r = xfer_run(&x);
        if (r == 1) {
                *ret_buf = NULL;
                *ret_len = 0;
                r = 0;
        } else if (r >= 0) {
                *ret_buf = x.buf ?: malloc(1);
                if (!*ret_buf) {
                        r = -ENOMEM;
                } else {
                        x.buf = NULL;
                        *ret_len = x.len;
                        *ret_etag = TAKE_PTR(x.etag);
                        r = 1;
                }
        }
        xfer_done(&x);
        return r;
}

static int curl_head(cas_objstore *os, const char *key, uint64_t *ret_size)
{
        xfer x;
        int r;

        r = xfer_init(&x, os, "HEAD", "HEAD", key);
        if (r < 0)
                return r;
        x.want_size = true;
        r = xfer_run(&x);
        if (r >= 0)
                *ret_size = x.size;
        xfer_done(&x);
        return r;
}

static int curl_put(cas_objstore *os, const char *key, const void *buf, size_t len)
{
        xfer x;
        int r;

        r = xfer_init(&x, os, "PUT", "PUT", key);
        if (r < 0)
                return r;
        x.body = buf;
        x.body_len = len;
        r = xfer_run(&x);
        xfer_done(&x);
        return r;
}

static int curl_delete(cas_objstore *os, const char *key)
{
        xfer x;
        int r;

        r = xfer_init(&x, os, "DELETE", "DELETE", key);
        if (r < 0)
                return r;
        r = xfer_run(&x);
        xfer_done(&x);
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
                _cleanup_(xfer_donep) xfer *xp = NULL;
                _cleanup_free_ char *next = NULL;
                xfer x;

                r = xfer_init(&x, os, "GET", op, NULL);
                if (r < 0)
                        return r;
                xp = &x;
                x.max_size = LIST_PAGE_MAX;
                r = list_query(full, token, max_keys, &x.query);
                if (r < 0)
                        return r;
                r = xfer_run(&x);
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
        xfer x;
        int r;

        if (os->kind == OBJSTORE_S3)
                return s3_list_pages(os, "check", "", 1, true, ignore_entry, NULL);

        /* a web server: the folder answers (a listing, or 403 without one) */
        r = xfer_init(&x, os, "HEAD", "check", NULL);
        if (r < 0)
                return r;
        x.check = true;
        r = xfer_run(&x);
        if (r == -EACCES && x.status == 403 && !os->userpwd)
                r = 0;
        xfer_done(&x);
        return r;
}

static int curl_create(cas_objstore *os)
{
        _cleanup_free_ char *body = NULL;
        char code[64];
        xfer x;
        int r;

        r = xfer_init(&x, os, "PUT", "create", NULL);
        if (r < 0)
                return r;
        if (strcmp(os->region, "us-east-1") != 0) {
                if (objstore_asprintf(
                        &body,
                        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
                        "2006-03-01/\"><LocationConstraint>%s</LocationConstraint>"
                        "</CreateBucketConfiguration>",
                        os->region) < 0) {
                        body = NULL;
                        xfer_done(&x);
                        return -ENOMEM;
                }
                x.body = (const uint8_t *)body;
                x.body_len = strlen(body);
        }
        r = xfer_run(&x);
        if (r == -EIO && x.status == 409) {
                error_code(&x, code, sizeof(code));
                if (strcmp(code, "BucketAlreadyOwnedByYou") == 0)
                        r = 0;
                else
                        r = objstore_error(os, -EEXIST, "create", NULL,
                                           "bucket %s exists (%s)", os->bucket, code);
        }
        xfer_done(&x);
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
                multi_destroy(c->multis[i]);
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

/* ---- batches ---- */

struct objstore_multi {
        cas_objstore *os;
        CURLM *multi;
        CURL **idle; /* up to jobs handles, with their connections */
        unsigned n_idle;
        unsigned running; /* in the multi handle */
        xfer *retry_head; /* waiting for their backoff, unordered */
        unsigned waiting;
};

static void multi_destroy(objstore_multi *m)
{
        for (unsigned i = 0; i < m->n_idle; i++)
                curl_easy_cleanup(m->idle[i]);
        if (m->multi)
                curl_multi_cleanup(m->multi);
        free(m->idle);
        free(m);
}

int objstore_multi_new(cas_objstore *os, objstore_multi **ret)
{
        objstore_curl *c = os->curl;
        objstore_multi *m = NULL;

        pthread_mutex_lock(&c->pool_lock);
        if (c->n_multis > 0)
                m = c->multis[--c->n_multis];
        pthread_mutex_unlock(&c->pool_lock);
        if (m) {
                *ret = m;
                return 0;
        }
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->os = os;
        m->idle = calloc(os->jobs, sizeof(CURL *));
        m->multi = curl_multi_init();
        if (!m->idle || !m->multi) {
                multi_destroy(m);
                return -ENOMEM;
        }
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)os->jobs);
        *ret = m;
        return 0;
}

static void finish(objstore_multi *m, xfer *x, int r)
{
        void *buf = NULL;
        size_t len = 0;

        if (r >= 0 && x->xop == OBJSTORE_XFER_GET) {
                buf = x->buf ?: malloc(1);
                x->buf = NULL;
                len = x->len;
                if (!buf)
                        r = -ENOMEM;
        } else if (r >= 0 && x->xop == OBJSTORE_XFER_HEAD) {
                len = (size_t)x->size;
        }
        if (r > 0)
                r = 0;
        char *key = TAKE_PTR(x->key);
        cas_objstore_done_cb cb = x->cb;
        void *userdata = x->userdata;
        /* other transfers ended since: the line of this one, for the callback */
        if (r < 0 && x->error)
                objstore_set_last_error(x->error);
        free(x->error);
        xfer_done(x);
        free(x);
        cb(r, key, r < 0 ? NULL : buf, r < 0 ? 0 : len, userdata);
        if (r < 0)
                free(buf);
        free(key);
}

static int start(objstore_multi *m, xfer *x)
{
        CURL *h = m->n_idle > 0 ? m->idle[--m->n_idle] : curl_easy_init();
        int r;

        if (!h)
                return -ENOMEM;
        r = xfer_setup(x, h, m->os->curl->share);
        if (r < 0 || curl_multi_add_handle(m->multi, h) != CURLM_OK) {
                curl_easy_cleanup(h);
                return r < 0 ? r : -ENOMEM;
        }
        x->easy = h;
        m->running++;
        return 0;
}

static void release(objstore_multi *m, CURL *h)
{
        curl_multi_remove_handle(m->multi, h);
        curl_easy_reset(h);
        if (m->n_idle < m->os->jobs)
                m->idle[m->n_idle++] = h;
        else
                curl_easy_cleanup(h);
}

/* One round: starts retries that are due, moves transfers along, handles
 * those that ended (callbacks run here), and waits a little if none did. */
static int drive(objstore_multi *m)
{
        xfer *done = NULL, **pp;
        uint64_t now = now_usec(), next_due = UINT64_MAX;
        int still, r;

        for (pp = &m->retry_head; *pp;) {
                xfer *x = *pp;
                if (x->due_usec <= now) {
                        *pp = x->next;
                        m->waiting--;
                        r = start(m, x);
                        if (r < 0) {
                                /* its callback runs below, not while this
                                 * list is walked */
                                x->result = r;
                                x->error = NULL;
                                x->next = done;
                                done = x;
                        }
                } else {
                        next_due = MIN(next_due, x->due_usec);
                        pp = &x->next;
                }
        }

        if (curl_multi_perform(m->multi, &still) != CURLM_OK)
                return -EIO;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                xfer *x = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
                /* the result is judged now, while the handle holds it */
                bool retry;
                CURL *h = msg->easy_handle;
                r = xfer_result(x, h, msg->data.result, &retry);
                release(m, h);
                x->easy = NULL;
                m->running--;
                if (r < 0 && retry && x->attempt < m->os->retries) {
                        x->due_usec =
                                now_usec() + backoff_ms(x->attempt, x->retry_after) * 1000u;
                        x->attempt++;
                        x->next = m->retry_head;
                        m->retry_head = x;
                        m->waiting++;
                        continue;
                }
                /* finished: callbacks run once the message queue is drained,
                 * as they may queue more */
                x->result = r;
                if (r < 0)
                        x->error = strdup(cas_objstore_last_error());
                x->next = done;
                done = x;
        }
        bool any = done != NULL;
        while (done) {
                xfer *x = done;
                done = x->next;
                /* the error line of the thread is this transfer's */
                finish(m, x, x->result);
        }
        if (!any && (m->running > 0 || m->waiting > 0)) {
                long ms = 1000;
                if (next_due != UINT64_MAX)
                        ms = (long)MIN((uint64_t)ms, (next_due - MIN(next_due, now_usec())) / 1000);
                if (curl_multi_poll(m->multi, NULL, 0, (int)ms, NULL) != CURLM_OK)
                        return -EIO;
        }
        return 0;
}

int objstore_multi_queue(objstore_multi *m, objstore_xfer_op op, const char *key,
                         size_t max_size, void *buf, size_t len, cas_objstore_done_cb cb,
                         void *userdata)
{
        static const char *const methods[] = {
                [OBJSTORE_XFER_GET] = "GET",
                [OBJSTORE_XFER_HEAD] = "HEAD",
                [OBJSTORE_XFER_PUT] = "PUT",
        };
        xfer *x;
        int r;

        while (m->running + m->waiting >= m->os->jobs) {
                r = drive(m);
                if (r < 0) {
                        free(buf);
                        return r;
                }
        }
        x = malloc(sizeof(*x));
        if (!x) {
                free(buf);
                return -ENOMEM;
        }
        r = xfer_init(x, m->os, methods[op], methods[op], key);
        if (r < 0) {
                free(buf);
                free(x);
                return r;
        }
        x->xop = op;
        x->want_size = op == OBJSTORE_XFER_HEAD;
        x->max_size = max_size;
        x->cb = cb;
        x->userdata = userdata;
        x->owned_body = buf;
        x->body = buf;
        x->body_len = len;
        r = start(m, x);
        if (r < 0) {
                xfer_done(x);
                free(x);
                return r;
        }
        return 0;
}

int objstore_multi_wait(objstore_multi *m)
{
        int r;

        while (m->running + m->waiting > 0) {
                r = drive(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

objstore_multi *objstore_multi_free(objstore_multi *m)
{
        objstore_curl *c;

        if (!m)
                return NULL;
        c = m->os->curl;
        /* only an idle one is kept: nothing added to it, nothing to retry */
        if (m->running == 0 && m->waiting == 0) {
                pthread_mutex_lock(&c->pool_lock);
                if (c->n_multis < MULTI_POOL_MAX) {
                        c->multis[c->n_multis++] = m;
                        m = NULL;
                }
                pthread_mutex_unlock(&c->pool_lock);
        }
        if (m)
                multi_destroy(m);
        return NULL;
}
