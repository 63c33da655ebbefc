/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The two formats of the S3 API that casfs speaks itself: AWS Signature V4
 * (signed here with libcrypto rather than by curl, to control the canonical
 * request: the query of ListObjectsV2 sorted and encoded as the server
 * recomputes it) and the XML of ListObjectsV2 and of errors, read by a small
 * bounded scanner (S3 answers have no nesting that matters here, no CDATA,
 * and every '<' inside text arrives as an entity). */
#include <inttypes.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "objstore-internal.h"

static const char hexdigits[] = "0123456789abcdef";

static void to_hex(const uint8_t *b, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hexdigits[b[i] >> 4];
                out[2 * i + 1] = hexdigits[b[i] & 15];
        }
        out[2 * n] = 0;
}

void s3_sha256_hex(const void *buf, size_t len, char ret_hex[static 65])
{
        uint8_t md[SHA256_DIGEST_LENGTH];

        SHA256(buf, len, md);
        to_hex(md, sizeof(md), ret_hex);
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
        int r = objstore_grow(buf, cap, *len + n + 1);
        if (r < 0)
                return r;
        memcpy(*buf + *len, s, n);
        *len += n;
        (*buf)[*len] = 0;
        return 0;
}

static void hmac(const void *key, size_t key_len, const char *msg, uint8_t out[static 32])
{
        unsigned out_len = 32;

        HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out,
             &out_len);
}

int s3_sign(const char *method, const char *canonical_uri, const char *canonical_query,
            const s3_header *headers, size_t n_headers, const char *payload_hash,
            const char *amz_date, const char *region, const char *access_key,
            const char *secret_key, char **ret_authorization)
{
        _cleanup_free_ char *creq = NULL, *signed_names = NULL, *sts = NULL, *k0 = NULL;
        size_t len = 0, cap = 0, slen = 0, scap = 0;
        char date[9], creq_hash[65], sig[65];
        uint8_t k[32];
        int r;

        if (strlen(amz_date) != 16)
                return -EINVAL;
        memcpy(date, amz_date, 8);
        date[8] = 0;

        /* the canonical request */
        if ((r = append(&creq, &len, &cap, method, strlen(method))) < 0 ||
            (r = append(&creq, &len, &cap, "\n", 1)) < 0 ||
            (r = append(&creq, &len, &cap, canonical_uri, strlen(canonical_uri))) < 0 ||
            (r = append(&creq, &len, &cap, "\n", 1)) < 0 ||
            (r = append(&creq, &len, &cap, canonical_query ?: "", strlen(canonical_query ?: ""))) <
                    0 ||
            (r = append(&creq, &len, &cap, "\n", 1)) < 0)
                return r;
        for (size_t i = 0; i < n_headers; i++) {
                if ((r = append(&creq, &len, &cap, headers[i].name, strlen(headers[i].name))) < 0 ||
                    (r = append(&creq, &len, &cap, ":", 1)) < 0 ||
                    (r = append(&creq, &len, &cap, headers[i].value, strlen(headers[i].value))) <
                            0 ||
                    (r = append(&creq, &len, &cap, "\n", 1)) < 0)
                        return r;
                if ((i > 0 && (r = append(&signed_names, &slen, &scap, ";", 1)) < 0) ||
                    (r = append(&signed_names, &slen, &scap, headers[i].name,
                                strlen(headers[i].name))) < 0)
                        return r;
        }
        if (!signed_names)
                return -EINVAL;
        if ((r = append(&creq, &len, &cap, "\n", 1)) < 0 ||
            (r = append(&creq, &len, &cap, signed_names, slen)) < 0 ||
            (r = append(&creq, &len, &cap, "\n", 1)) < 0 ||
            (r = append(&creq, &len, &cap, payload_hash, strlen(payload_hash))) < 0)
                return r;
        s3_sha256_hex(creq, len, creq_hash);

        /* the string to sign, and the key derived for this day and region */
        if (objstore_asprintf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amz_date,
                              date, region, creq_hash) < 0) {
                sts = NULL;
                return -ENOMEM;
        }
        if (objstore_asprintf(&k0, "AWS4%s", secret_key) < 0) {
                k0 = NULL;
                return -ENOMEM;
        }
        hmac(k0, strlen(k0), date, k);
        explicit_bzero(k0, strlen(k0));
        hmac(k, 32, region, k);
        hmac(k, 32, "s3", k);
        hmac(k, 32, "aws4_request", k);
        uint8_t s[32];
        hmac(k, 32, sts, s);
        explicit_bzero(k, sizeof(k));
        to_hex(s, 32, sig);

        if (objstore_asprintf(
                ret_authorization,
                "AWS4-HMAC-SHA256 Credential=%s/%s/%s/s3/aws4_request, SignedHeaders=%s, "
                "Signature=%s",
                access_key, date, region, signed_names, sig) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- XML ---- */

/* Finds the next <tag>...</tag> in [p, end): the text's bounds. */
static bool find_element(const char *p, const char *end, const char *tag, const char **ret_start,
                         const char **ret_end)
{
        char open[64], close[64];
        int no = snprintf(open, sizeof(open), "<%s>", tag);
        int nc = snprintf(close, sizeof(close), "</%s>", tag);
        const char *a, *b;

        a = memmem(p, (size_t)(end - p), open, (size_t)no);
        if (!a)
                return false;
        a += no;
        b = memmem(a, (size_t)(end - a), close, (size_t)nc);
        if (!b)
                return false;
        *ret_start = a;
        *ret_end = b;
        return true;
}

static int put_utf8(uint32_t c, char **o)
{
        char *s = *o;
        if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
                return -EBADMSG;
        if (c < 0x80) {
                *s++ = (char)c;
        } else if (c < 0x800) {
                *s++ = (char)(0xC0 | (c >> 6));
                *s++ = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
                *s++ = (char)(0xE0 | (c >> 12));
                *s++ = (char)(0x80 | ((c >> 6) & 0x3F));
                *s++ = (char)(0x80 | (c & 0x3F));
        } else {
                *s++ = (char)(0xF0 | (c >> 18));
                *s++ = (char)(0x80 | ((c >> 12) & 0x3F));
                *s++ = (char)(0x80 | ((c >> 6) & 0x3F));
                *s++ = (char)(0x80 | (c & 0x3F));
        }
        *o = s;
        return 0;
}

/* Decodes XML text (the five entities and character references) into a new
 * string; an entity decodes to no more bytes than it takes. */
static int xml_text(const char *a, const char *b, char **ret)
{
        _cleanup_free_ char *s = malloc((size_t)(b - a) + 1);
        char *o = s;

        if (!s)
                return -ENOMEM;
        while (a < b) {
                if (*a == '<')
                        return -EBADMSG;
                if (*a != '&') {
                        *o++ = *a++;
                        continue;
                }
                const char *semi = memchr(a, ';', (size_t)(b - a));
                if (!semi || semi - a > 10)
                        return -EBADMSG;
                size_t n = (size_t)(semi - a - 1);
                const char *e = a + 1;
                if (n == 3 && memcmp(e, "amp", 3) == 0)
                        *o++ = '&';
                else if (n == 2 && memcmp(e, "lt", 2) == 0)
                        *o++ = '<';
                else if (n == 2 && memcmp(e, "gt", 2) == 0)
                        *o++ = '>';
                else if (n == 4 && memcmp(e, "quot", 4) == 0)
                        *o++ = '"';
                else if (n == 4 && memcmp(e, "apos", 4) == 0)
                        *o++ = '\'';
                else if (n >= 2 && e[0] == '#') {
                        bool hex = e[1] == 'x';
                        const char *d = e + 1 + hex;
                        uint32_t c = 0;
                        if (d == semi)
                                return -EBADMSG;
                        for (; d < semi; d++) {
                                int v;
                                if (*d >= '0' && *d <= '9')
                                        v = *d - '0';
                                else if (hex && *d >= 'a' && *d <= 'f')
                                        v = *d - 'a' + 10;
                                else if (hex && *d >= 'A' && *d <= 'F')
                                        v = *d - 'A' + 10;
                                else
                                        return -EBADMSG;
                                c = c * (hex ? 16 : 10) + (uint32_t)v;
                                if (c > 0x10FFFF)
                                        return -EBADMSG;
                        }
                        int r = put_utf8(c, &o);
                        if (r < 0)
                                return r;
                } else
                        return -EBADMSG;
                a = semi + 1;
        }
        *o = 0;
        *ret = TAKE_PTR(s);
        return 0;
}

char *s3_xml_element(const char *xml, size_t len, const char *tag)
{
        const char *a, *b;
        char *s = NULL;

        if (!xml || !find_element(xml, xml + len, tag, &a, &b) || b - a > 4096)
                return NULL;
        if (xml_text(a, b, &s) < 0)
                return NULL;
        return s;
}

static int parse_u64(const char *a, const char *b, uint64_t *ret)
{
        uint64_t v = 0;

        if (a == b || b - a > 20)
                return -EBADMSG;
        for (; a < b; a++) {
                if (*a < '0' || *a > '9')
                        return -EBADMSG;
                if (v > (UINT64_MAX - (uint64_t)(*a - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(*a - '0');
        }
        *ret = v;
        return 0;
}

int s3_parse_list(const char *xml, size_t len, s3_list_entry_cb cb, void *userdata,
                  char **ret_next_token)
{
        const char *end = xml + len, *p = xml, *a, *b;
        _cleanup_free_ char *truncated = NULL, *token = NULL;
        int r;

        if (!memmem(xml, len, "<ListBucketResult", 17))
                return -EBADMSG;
        while (find_element(p, end, "Contents", &a, &b)) {
                _cleanup_free_ char *key = NULL;
                const char *ka, *kb, *sa, *sb;
                uint64_t size;

                if (!find_element(a, b, "Key", &ka, &kb) || !find_element(a, b, "Size", &sa, &sb))
                        return -EBADMSG;
                if (kb - ka > 4 * OBJSTORE_KEY_MAX)
                        return -EBADMSG;
                r = xml_text(ka, kb, &key);
                if (r < 0)
                        return r;
                r = parse_u64(sa, sb, &size);
                if (r < 0)
                        return r;
                r = cb(key, size, userdata);
                if (r != 0)
                        return r;
                p = b;
        }
        truncated = s3_xml_element(xml, len, "IsTruncated");
        if (truncated && strcmp(truncated, "true") == 0) {
                token = s3_xml_element(xml, len, "NextContinuationToken");
                if (!token || !*token)
                        return -EBADMSG;
        }
        *ret_next_token = TAKE_PTR(token);
        return 0;
}
