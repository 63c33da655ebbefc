/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the object-store backends share: the store's parsed address, the
 * table of operations each backend fills, and the per-thread error line. */

#include <pthread.h>
#include <stdarg.h>

#include "macro.h"
#include "objstore.h"

/* asprintf() that leaves NULL behind on failure (glibc leaves the pointer
 * undefined, and cleanup handlers would free it). */
int objstore_asprintf(char **ret, const char *fmt, ...) _printf_(2, 3);

/* Makes room for need bytes in a growing string. */
int objstore_grow(char **buf, size_t *cap, size_t need);

/* Keys and prefixes are bounded: S3 allows 1024 bytes per key. */
#define OBJSTORE_KEY_MAX 1024u

typedef enum objstore_kind {
        OBJSTORE_FILE,
        OBJSTORE_HTTP,
        OBJSTORE_S3,
} objstore_kind;

typedef struct objstore_ops {
        int (*check)(cas_objstore *os);
        int (*create)(cas_objstore *os);
        int (*get)(cas_objstore *os, const char *key, size_t max_size, void **ret_buf,
                   size_t *ret_len);
        int (*get_range)(cas_objstore *os, const char *key, uint64_t off, size_t n, void *buf,
                         size_t *ret_len);
        int (*get_if_changed)(cas_objstore *os, const char *key, const char *etag,
                              size_t max_size, void **ret_buf, size_t *ret_len, char **ret_etag);
        int (*head)(cas_objstore *os, const char *key, uint64_t *ret_size);
        int (*put)(cas_objstore *os, const char *key, const void *buf, size_t len);
        int (*delete)(cas_objstore *os, const char *key);
        int (*list)(cas_objstore *os, const char *prefix, cas_objstore_list_cb cb,
                    void *userdata);
        void (*free)(cas_objstore *os);
} objstore_ops;

typedef struct objstore_curl objstore_curl;
struct objstore_module;

struct cas_objstore {
        const objstore_ops *ops;
        const struct objstore_module *module; /* http(s):// and s3:// */
        objstore_kind kind;
        char *address; /* printable: no credentials */
        unsigned timeout_sec, retries, jobs;
        char *ca_bundle;

        /* file:// */
        char *root;
        int root_fd;

        /* http(s):// and s3:// */
        char *base_url;    /* scheme://host[:port], no trailing slash */
        char *host_header; /* host[:port] as sent in Host: (what SigV4 signs) */
        char *path_prefix; /* "/prefix" or "/bucket/prefix" (path-style) or "", not encoded */
        char *prefix;      /* the key prefix (no slashes at either end), may be "" */
        char *userpwd;     /* http(s): basic-auth "user:password", or NULL */
        char *bucket;      /* s3 */
        bool path_style;   /* s3: the bucket in the path, not in the host name */
        char *region;
        char *access_key, *secret_key, *session_token;
        objstore_curl *curl;
};

/* Leaves "ADDRESS: OP KEY: MESSAGE" for cas_objstore_last_error() of this
 * thread and returns error (a negative errno). key may be NULL. */
int objstore_error(const cas_objstore *os, int error, const char *op, const char *key,
                   const char *fmt, ...) _printf_(5, 6);

int objstore_verror(const cas_objstore *os, int error, const char *op, const char *key,
                    const char *fmt, va_list ap) _printf_(5, 0);

/* Sets the calling thread's error line to one saved before. */
void objstore_set_last_error(const char *line);

/* Whether a key (or, with allow_empty, a prefix) is acceptable: at most
 * OBJSTORE_KEY_MAX bytes, printable, no empty, "." or ".." component. */
bool objstore_key_valid(const char *key, bool allow_empty);

/* The file backend (objstore-file.c). */
int objstore_file_open(cas_objstore *os, const char *path);

/* The http(s) and s3 backends over libcurl (objstore-curl.c, with
 * objstore-xfer.c and objstore-multi.c): a module of their own, loaded at
 * the first remote address (objstore-module.h). */
int objstore_curl_open(cas_objstore *os);

/* Batches: the curl backends run transfers on a multi handle
 * (objstore-multi.c); the file backend runs each at once (multi NULL). */
typedef enum objstore_xfer_op {
        OBJSTORE_XFER_GET,
        OBJSTORE_XFER_HEAD,
        OBJSTORE_XFER_PUT,
} objstore_xfer_op;
typedef struct objstore_multi objstore_multi;
struct cas_objstore_batch {
        cas_objstore *os;
        objstore_multi *multi;
};
int objstore_multi_new(cas_objstore *os, objstore_multi **ret);
/* Takes ownership of buf (a put's body) also on failure. */
int objstore_multi_queue(objstore_multi *m, objstore_xfer_op op, const char *key,
                         size_t max_size, void *buf, size_t len, cas_objstore_done_cb cb,
                         void *userdata);
int objstore_multi_wait(objstore_multi *m);
objstore_multi *objstore_multi_free(objstore_multi *m);

/* AWS Signature V4 (objstore-s3.c). headers are "name:value" pairs with
 * lower-case names, sorted by name, every one of them signed; the
 * Authorization header's value is returned (caller frees). payload_hash is
 * the hex SHA-256 of the body. amz_date is "YYYYMMDDTHHMMSSZ". */
typedef struct s3_header {
        const char *name;
        const char *value;
} s3_header;
int s3_sign(const char *method, const char *canonical_uri, const char *canonical_query,
            const s3_header *headers, size_t n_headers, const char *payload_hash,
            const char *amz_date, const char *region, const char *access_key,
            const char *secret_key, char **ret_authorization);
/* Hex SHA-256 of bytes (65 bytes with the NUL). */
void s3_sha256_hex(const void *buf, size_t len, char ret_hex[static 65]);
/* Appends s, percent-encoded as SigV4 wants (unreserved kept; '/' kept when
 * keep_slash), to a growing string (objstore-util.c: addresses need it
 * without the transport). */
int s3_uri_encode(const char *s, bool keep_slash, char **buf, size_t *len, size_t *cap);

/* A page of ListObjectsV2's answer. cb gets each <Contents>' decoded Key
 * and Size. ret_next_token: NULL when the listing is complete. -EBADMSG
 * for a malformed answer. */
typedef int (*s3_list_entry_cb)(const char *key, uint64_t size, void *userdata);
int s3_parse_list(const char *xml, size_t len, s3_list_entry_cb cb, void *userdata,
                  char **ret_next_token);
/* The text of the first <TAG> element of an answer (decoded), or NULL. */
char *s3_xml_element(const char *xml, size_t len, const char *tag);
