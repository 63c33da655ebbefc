/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "log.h"
#include "objstore-module.h"

/* The one piece of state outside a store: the error line of the calling
 * thread's last failed call, as the header promises (errno's model). */
static _Thread_local char last_error[512];

const char *cas_objstore_last_error(void)
{
        return last_error;
}

void objstore_set_last_error(const char *line)
{
        snprintf(last_error, sizeof(last_error), "%s", line);
}

int cas_objstore_failed(const char *address, const char *key, int r, const char *limit, _Atomic bool *down,
                        const char *while_down)
{
        if (r == -ENOENT || r == -ENOMEM)
                return r;
        if (r == -EFBIG)
                return cas_log_errno(CAS_LOG_ERR, -EBADMSG, "%s: %s: larger than %s", address, key, limit);
        const char *e = cas_objstore_last_error();
        const char *line = e && *e ? e : strerror(-r);
        if (!down)
                return cas_log_errno(CAS_LOG_ERR, r, "%s", line);
        if (!atomic_exchange(down, true))
                cas_log(CAS_LOG_ERR, "%s (%s)", line, while_down);
        return -EIO;
}

void cas_objstore_answers(const char *address, _Atomic bool *down)
{
        if (atomic_load(down) && atomic_exchange(down, false))
                cas_log(CAS_LOG_NOTICE, "%s answers again", address);
}

int objstore_verror(const cas_objstore *os, int error, const char *op, const char *key,
                    const char *fmt, va_list ap)
{
        char msg[384];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        snprintf(last_error, sizeof(last_error), "%s: %s%s%s: %s", os ? os->address : "?", op,
                 key ? " " : "", key ?: "", msg);
        cas_log_debug("objstore: %s", last_error);
        return error;
}

int objstore_error(const cas_objstore *os, int error, const char *op, const char *key,
                   const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        error = objstore_verror(os, error, op, key, fmt, ap);
        va_end(ap);
        return error;
}

static bool has_prefix(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool cas_objstore_is_address(const char *address)
{
        return has_prefix(address, "file://") || has_prefix(address, "s3://") ||
               has_prefix(address, "http://") || has_prefix(address, "https://");
}

/* A prefix from an address: slashes at either end dropped; every component
 * valid. Empty is fine. */
static int parse_prefix(const char *s, char **ret)
{
        _cleanup_free_ char *p = NULL;
        size_t n;

        while (*s == '/')
                s++;
        p = strdup(s);
        if (!p)
                return -ENOMEM;
        n = strlen(p);
        while (n > 0 && p[n - 1] == '/')
                p[--n] = 0;
        if (strpbrk(p, "?#") || !objstore_key_valid(p, true))
                return -EINVAL;
        *ret = TAKE_PTR(p);
        return 0;
}

/* "host[:port]" with host a name, an IPv4 address or "[v6]"; the port, if
 * any, 1..65535. */
static bool authority_valid(const char *a)
{
        const char *port;

        if (a[0] == '[') {
                const char *e = strchr(a, ']');
                if (!e || e == a + 1)
                        return false;
                for (const char *p = a + 1; p < e; p++)
                        if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                                return false;
                port = e + 1;
                if (*port == 0)
                        return true;
                if (*port != ':')
                        return false;
        } else {
                size_t l = strcspn(a, ":");
                if (l == 0 || l > 253)
                        return false;
                for (size_t i = 0; i < l; i++)
                        if (!isalnum((unsigned char)a[i]) && a[i] != '-' && a[i] != '.' &&
                            a[i] != '_')
                                return false;
                port = a + l;
                if (*port == 0)
                        return true;
        }
        port++;
        if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
                return false;
        long v = strtol(port, NULL, 10);
        return v >= 1 && v <= 65535;
}

/* Splits "scheme://[userinfo@]authority[/path]" (after the scheme) into
 * base_url "scheme://authority", host header, userinfo and the path. */
static int parse_url(cas_objstore *os, const char *scheme, const char *rest, bool allow_path,
                     char **ret_path)
{
        _cleanup_free_ char *auth = NULL;
        const char *slash = strchr(rest, '/');
        size_t l = slash ? (size_t)(slash - rest) : strlen(rest);
        const char *at;
        char *a;

        auth = strndup(rest, l);
        if (!auth)
                return -ENOMEM;
        a = auth;
        at = strrchr(a, '@');
        if (at) {
                os->userpwd = strndup(a, (size_t)(at - a));
                if (!os->userpwd)
                        return -ENOMEM;
                a = (char *)at + 1;
        }
        if (!authority_valid(a))
                return -EINVAL;
        if (!allow_path && slash && slash[strspn(slash, "/")])
                return -EINVAL;
        if (objstore_asprintf(&os->base_url, "%s://%s", scheme, a) < 0) {
                os->base_url = NULL;
                return -ENOMEM;
        }
        /* the Host header curl would send: the port only when not the default */
        const char *colon = a[0] == '[' ? strstr(a, "]:") : strchr(a, ':');
        if (colon && a[0] == '[')
                colon++;
        if (colon && ((strcmp(scheme, "http") == 0 && strcmp(colon, ":80") == 0) ||
                      (strcmp(scheme, "https") == 0 && strcmp(colon, ":443") == 0)))
                os->host_header = strndup(a, (size_t)(colon - a));
        else
                os->host_header = strdup(a);
        if (!os->host_header)
                return -ENOMEM;
        if (ret_path) {
                *ret_path = strdup(slash ?: "");
                if (!*ret_path)
                        return -ENOMEM;
        }
        return 0;
}

/* Decodes %XX escapes of a URL's path in place; a NUL or a malformed
 * escape is refused. */
static int percent_decode(char *s)
{
        char *o = s;

        for (const char *p = s; *p; p++) {
                if (*p != '%') {
                        *o++ = *p;
                        continue;
                }
                if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                        return -EINVAL;
                char hex[3] = { p[1], p[2], 0 };
                char c = (char)strtol(hex, NULL, 16);
                if (c == 0)
                        return -EINVAL;
                *o++ = c;
                p += 2;
        }
        *o = 0;
        return 0;
}

static int parse_http(cas_objstore *os, const char *address)
{
        _cleanup_free_ char *path = NULL, *shown = NULL;
        size_t len = 0, cap = 0;
        bool tls = has_prefix(address, "https://");
        int r;

        os->kind = OBJSTORE_HTTP;
        r = parse_url(os, tls ? "https" : "http", address + (tls ? 8 : 7), true, &path);
        if (r < 0)
                return r;
        /* the prefix as the server's path names it: "a%20b" is "a b", and
         * requests encode it again */
        if (strpbrk(path, "?#"))
                return -EINVAL;
        r = percent_decode(path);
        if (r < 0)
                return r;
        r = parse_prefix(path, &os->prefix);
        if (r < 0)
                return r;
        if (objstore_asprintf(&os->path_prefix, "%s%s", os->prefix[0] ? "/" : "", os->prefix) < 0)
                return -ENOMEM;
        r = s3_uri_encode(os->path_prefix, true, &shown, &len, &cap);
        if (r < 0)
                return r;
        if (objstore_asprintf(&os->address, "%s%s", os->base_url, shown ?: "") < 0)
                return -ENOMEM;
        return 0;
}

static bool bucket_valid(const char *b)
{
        size_t n = strlen(b);

        if (n < 3 || n > 63)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)b[i]) && b[i] != '-' && b[i] != '.' && b[i] != '_')
                        return false;
        return true;
}

static int dup_env(const char *name, char **ret)
{
        const char *v = getenv(name);

        *ret = NULL;
        if (!v || !*v)
                return 0;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

const char *cas_objstore_s3_endpoint(const cas_objstore_options *o)
{
        return o && o->s3_endpoint ? o->s3_endpoint : getenv("AWS_ENDPOINT_URL");
}

static int parse_s3(cas_objstore *os, const char *address, const cas_objstore_options *o)
{
        const char *rest = address + 5, *slash, *endpoint;
        int r;

        os->kind = OBJSTORE_S3;
        slash = strchr(rest, '/');
        os->bucket = strndup(rest, slash ? (size_t)(slash - rest) : strlen(rest));
        if (!os->bucket)
                return -ENOMEM;
        /* no credentials in addresses: they would show in process lists */
        if (!bucket_valid(os->bucket))
                return -EINVAL;
        r = parse_prefix(slash ?: "", &os->prefix);
        if (r < 0)
                return r;

        r = dup_env("AWS_REGION", &os->region);
        if (r < 0)
                return r;
        if (!os->region) {
                os->region = strdup("us-east-1");
                if (!os->region)
                        return -ENOMEM;
        }
        if (!bucket_valid(os->region))
                return -EINVAL;
        if ((r = dup_env("AWS_ACCESS_KEY_ID", &os->access_key)) < 0 ||
            (r = dup_env("AWS_SECRET_ACCESS_KEY", &os->secret_key)) < 0 ||
            (r = dup_env("AWS_SESSION_TOKEN", &os->session_token)) < 0)
                return r;
        if (!os->access_key != !os->secret_key)
                return -EINVAL;

        endpoint = cas_objstore_s3_endpoint(o);
        if (endpoint && *endpoint) {
                bool tls = has_prefix(endpoint, "https://");
                if (!tls && !has_prefix(endpoint, "http://"))
                        return -EINVAL;
                r = parse_url(os, tls ? "https" : "http", endpoint + (tls ? 8 : 7), false,
                              NULL);
                if (r < 0)
                        return r;
                if (os->userpwd)
                        return -EINVAL;
                /* path-style, what Ceph RGW and MinIO expect */
                os->path_style = true;
                if (objstore_asprintf(&os->path_prefix, "/%s%s%s", os->bucket,
                                      os->prefix[0] ? "/" : "", os->prefix) < 0)
                        return -ENOMEM;
        } else {
                _cleanup_free_ char *host = NULL;
                /* virtual-host style, except for dotted names that the
                 * wildcard certificate does not cover */
                bool vhost = !strchr(os->bucket, '.');
                os->path_style = !vhost;
                if (objstore_asprintf(&host, "%s%ss3.%s.amazonaws.com", vhost ? os->bucket : "",
                                      vhost ? "." : "", os->region) < 0)
                        return -ENOMEM;
                r = parse_url(os, "https", host, false, NULL);
                if (r < 0)
                        return r;
                if (objstore_asprintf(&os->path_prefix, "%s%s%s%s", vhost ? "" : "/",
                                      vhost ? "" : os->bucket, os->prefix[0] ? "/" : "",
                                      os->prefix) < 0)
                        return -ENOMEM;
        }
        if (objstore_asprintf(&os->address, "s3://%s%s%s", os->bucket, os->prefix[0] ? "/" : "",
                              os->prefix) < 0)
                return -ENOMEM;
        return 0;
}

static void free_secret(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

cas_objstore *cas_objstore_free(cas_objstore *os)
{
        if (!os)
                return NULL;
        if (os->ops)
                os->ops->free(os);
        safe_close(os->root_fd);
        free(os->address);
        free(os->ca_bundle);
        free(os->root);
        free(os->base_url);
        free(os->host_header);
        free(os->path_prefix);
        free(os->prefix);
        free_secret(os->userpwd);
        free(os->bucket);
        free(os->region);
        free(os->access_key);
        free_secret(os->secret_key);
        free_secret(os->session_token);
        free(os);
        return NULL;
}

int cas_objstore_open(const char *address, const cas_objstore_options *o, cas_objstore **ret)
{
        _cleanup_(cas_objstore_freep) cas_objstore *os = NULL;
        const char *ca;
        int r;

        if (!address || strlen(address) > 4096)
                return -EINVAL;
        os = calloc(1, sizeof(*os));
        if (!os)
                return -ENOMEM;
        os->root_fd = -1;
        os->timeout_sec = o && o->timeout_sec ? o->timeout_sec : 10;
        os->retries = o && o->retries ? o->retries : 3;
        os->jobs = o && o->jobs ? o->jobs : 32;
        os->jobs = MIN(os->jobs, 1024u);
        ca = o && o->ca_bundle ? o->ca_bundle : getenv("CASFS_CA_BUNDLE");
        if (ca && *ca) {
                os->ca_bundle = strdup(ca);
                if (!os->ca_bundle)
                        return -ENOMEM;
        }

        if (has_prefix(address, "file://")) {
                os->kind = OBJSTORE_FILE;
                r = objstore_file_open(os, address + 7);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(os);
                return 0;
        }
        if (has_prefix(address, "s3://"))
                r = parse_s3(os, address, o);
        else if (has_prefix(address, "http://") || has_prefix(address, "https://"))
                r = parse_http(os, address);
        else
                r = -EINVAL;
        if (r < 0)
                return r;
        r = objstore_module_get(os, &os->module);
        if (r < 0)
                return r;
        r = os->module->open(os);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(os);
        return 0;
}

const char *cas_objstore_address(const cas_objstore *os)
{
        return os->address;
}

bool cas_objstore_writable(const cas_objstore *os)
{
        return os->kind != OBJSTORE_HTTP;
}

int cas_objstore_check(cas_objstore *os)
{
        return os->ops->check(os);
}

int cas_objstore_create_bucket(cas_objstore *os)
{
        if (!cas_objstore_writable(os))
                return objstore_error(os, -EROFS, "create", NULL, "read-only store");
        return os->ops->create(os);
}

#define CHECK_KEY(os, op, key)                                                                     \
        do {                                                                                       \
                if (!objstore_key_valid(key, false))                                               \
                        return objstore_error(os, -EINVAL, op, NULL, "invalid key");               \
        } while (0)

int cas_objstore_get(cas_objstore *os, const char *key, size_t max_size, void **ret_buf,
                     size_t *ret_len)
{
        CHECK_KEY(os, "GET", key);
        return os->ops->get(os, key, max_size, ret_buf, ret_len);
}

int cas_objstore_get_range(cas_objstore *os, const char *key, uint64_t off, size_t n, void *buf,
                           size_t *ret_len)
{
        CHECK_KEY(os, "GET", key);
        if (n == 0) {
                *ret_len = 0;
                return 0;
        }
        if (off > INT64_MAX || n > INT64_MAX - off)
                return objstore_error(os, -EINVAL, "GET", key, "range out of bounds");
        return os->ops->get_range(os, key, off, n, buf, ret_len);
}

int cas_objstore_get_if_changed(cas_objstore *os, const char *key, const char *etag,
                                size_t max_size, void **ret_buf, size_t *ret_len, char **ret_etag)
{
        CHECK_KEY(os, "GET", key);
        if (etag && (strlen(etag) > 256 || strpbrk(etag, "\r\n")))
                return objstore_error(os, -EINVAL, "GET", key, "invalid ETag");
        return os->ops->get_if_changed(os, key, etag, max_size, ret_buf, ret_len, ret_etag);
}

int cas_objstore_head(cas_objstore *os, const char *key, uint64_t *ret_size)
{
        CHECK_KEY(os, "HEAD", key);
        return os->ops->head(os, key, ret_size);
}

int cas_objstore_put(cas_objstore *os, const char *key, const void *buf, size_t len)
{
        CHECK_KEY(os, "PUT", key);
        if (!cas_objstore_writable(os))
                return objstore_error(os, -EROFS, "PUT", key, "read-only store");
        return os->ops->put(os, key, buf, len);
}

int cas_objstore_delete(cas_objstore *os, const char *key)
{
        CHECK_KEY(os, "DELETE", key);
        if (!cas_objstore_writable(os))
                return objstore_error(os, -EROFS, "DELETE", key, "read-only store");
        return os->ops->delete(os, key);
}

int cas_objstore_list(cas_objstore *os, const char *prefix, cas_objstore_list_cb cb,
                      void *userdata)
{
        if (!prefix)
                prefix = "";
        if (!objstore_key_valid(prefix, true))
                return objstore_error(os, -EINVAL, "LIST", NULL, "invalid prefix");
        if (os->kind == OBJSTORE_HTTP)
                return objstore_error(os, -EOPNOTSUPP, "LIST", prefix,
                                      "a web server has no listing");
        return os->ops->list(os, prefix, cb, userdata);
}

/* ---- batches ---- */

int cas_objstore_batch_new(cas_objstore *os, cas_objstore_batch **ret)
{
        _cleanup_(cas_objstore_batch_freep) cas_objstore_batch *b = NULL;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->os = os;
        if (os->kind != OBJSTORE_FILE) {
                r = os->module->multi_new(os, &b->multi);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(b);
        return 0;
}

int cas_objstore_batch_get(cas_objstore_batch *b, const char *key, size_t max_size,
                           cas_objstore_done_cb cb, void *userdata)
{
        void *buf = NULL;
        size_t len = 0;
        int r;

        CHECK_KEY(b->os, "GET", key);
        if (b->multi)
                return b->os->module->multi_queue(b->multi, OBJSTORE_XFER_GET, key, max_size,
                                                  NULL, 0, cb, userdata);
        r = cas_objstore_get(b->os, key, max_size, &buf, &len);
        cb(r < 0 ? r : 0, key, r < 0 ? NULL : buf, r < 0 ? 0 : len, userdata);
        return 0;
}

int cas_objstore_batch_head(cas_objstore_batch *b, const char *key, cas_objstore_done_cb cb,
                            void *userdata)
{
        uint64_t size = 0;
        int r;

        CHECK_KEY(b->os, "HEAD", key);
        if (b->multi)
                return b->os->module->multi_queue(b->multi, OBJSTORE_XFER_HEAD, key, 0, NULL, 0,
                                                  cb, userdata);
        r = cas_objstore_head(b->os, key, &size);
        cb(r < 0 ? r : 0, key, NULL, r < 0 ? 0 : (size_t)size, userdata);
        return 0;
}

int cas_objstore_batch_put(cas_objstore_batch *b, const char *key, void *buf, size_t len,
                           cas_objstore_done_cb cb, void *userdata)
{
        int r;

        if (!objstore_key_valid(key, false)) {
                free(buf);
                return objstore_error(b->os, -EINVAL, "PUT", NULL, "invalid key");
        }
        if (!cas_objstore_writable(b->os)) {
                free(buf);
                return objstore_error(b->os, -EROFS, "PUT", key, "read-only store");
        }
        if (b->multi)
                return b->os->module->multi_queue(b->multi, OBJSTORE_XFER_PUT, key, 0, buf, len,
                                                  cb, userdata);
        r = cas_objstore_put(b->os, key, buf, len);
        free(buf);
        cb(r < 0 ? r : 0, key, NULL, 0, userdata);
        return 0;
}

int cas_objstore_batch_wait(cas_objstore_batch *b)
{
        return b->multi ? b->os->module->multi_wait(b->multi) : 0;
}

cas_objstore_batch *cas_objstore_batch_free(cas_objstore_batch *b)
{
        if (!b)
                return NULL;
        if (b->multi) {
                (void)b->os->module->multi_wait(b->multi);
                b->os->module->multi_free(b->multi);
        }
        free(b);
        return NULL;
}
