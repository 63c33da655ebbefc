/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One request of the libcurl backend: its URL, headers and SigV4 signature,
 * the callbacks that take its answer in, and the judgement of that answer.
 *
 * Every transfer is bounded: max_size bytes of body (checked against
 * Content-Length first, then while the body arrives), no progress for
 * timeout_sec, at most MAX_REDIRS redirects, retries with exponential
 * backoff on 5xx, 429 and dropped connections only. */
#include <inttypes.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "objstore-curl.h"

#define BACKOFF_BASE_MS 200
#define BACKOFF_MAX_MS 5000
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Exponential, or what the server asked for (Retry-After, in seconds),
 * within BACKOFF_MAX_MS. */
unsigned xfer_backoff_ms(const xfer *x)
{
        unsigned ms = BACKOFF_BASE_MS << MIN(x->attempt, 8u);
        uint16_t jitter = 0;

        if (x->retry_after > 0)
                ms = MAX(ms, MIN(x->retry_after, 60u) * 1000u);
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

int xfer_init(xfer *x, cas_objstore *os, const char *method, const char *op, const char *key)
{
        x->os = os;
        x->method = method;
        x->op = op;
        if (key) {
                x->key = strdup(key);
                if (!x->key)
                        return -ENOMEM;
        }
        return 0;
}

void xfer_done(xfer *x)
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

int xfer_setup(xfer *x, CURL *h, CURLSH *share)
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

const char *xfer_error_code(const xfer *x, char *buf, size_t size)
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

int xfer_result(xfer *x, CURL *h, CURLcode res, bool *ret_retry)
{
        const cas_objstore *os = x->os;
        char code[64];
        const char *what = x->key, *sp;
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
                const char *why = x->curl_err[0] ? x->curl_err : curl_easy_strerror(res);
                if (r == -ETIMEDOUT)
                        return objstore_error(os, r, x->op, what, "no progress for %u s (%s)",
                                              os->timeout_sec, why);
                return objstore_error(os, r, x->op, what, "%s", why);
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
        xfer_error_code(x, code, sizeof(code));
        sp = code[0] ? " " : "";
        if (status == 404) {
                if (strcmp(code, "NoSuchBucket") == 0)
                        return objstore_error(os, -ENOENT, x->op, what, "no such bucket %s",
                                              os->bucket ?: "");
                if (x->check)
                        return objstore_error(os, -ENOENT, x->op, what,
                                              "HTTP 404: no such folder");
                return objstore_error(os, -ENOENT, x->op, what, "HTTP 404%s%s", sp,
                                      code);
        }
        if (status == 401 || status == 403 ||
            (status == 400 &&
             (strcmp(code, "InvalidAccessKeyId") == 0 || strcmp(code, "ExpiredToken") == 0 ||
              strcmp(code, "InvalidToken") == 0 ||
              strcmp(code, "AuthorizationHeaderMalformed") == 0)))
                return objstore_error(os, -EACCES, x->op, what,
                                      "HTTP %ld%s%s (refused: wrong or missing credentials?)",
                                      status, sp, code);
        if (status >= 500 || status == 429 || (status == 503)) {
                *ret_retry = true;
                return objstore_error(os, -EIO, x->op, what, "HTTP %ld%s%s", status, sp,
                                      code);
        }
        if (status >= 300 && status < 400)
                return objstore_error(os, -EIO, x->op, what, "HTTP %ld%s%s (redirect%s)", status,
                                      sp, code,
                                      os->kind == OBJSTORE_S3 ? ": wrong region or endpoint?"
                                                              : " not followed");
        return objstore_error(os, -EIO, x->op, what, "HTTP %ld%s%s", status, sp, code);
}

int xfer_take_body(xfer *x, void **ret_buf, size_t *ret_len)
{
        void *buf = x->buf ?: malloc(1);

        if (!buf)
                return -ENOMEM;
        x->buf = NULL;
        *ret_buf = buf;
        *ret_len = x->len;
        return 0;
}

