/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "castore.h"
#include "macro.h"
#include "fixtures.h"
#include "tests.h"
#include "vectors.h"

static const vector_dir *vdir(const char *name)
{
        for (size_t i = 0; i < ELEMENTS(vector_dirs); i++)
                if (strcmp(vector_dirs[i].name, name) == 0)
                        return &vector_dirs[i];
        fprintf(stderr, "vector %s missing\n", name);
        exit(1);
}

static cas_node lnode(const char *name, const char *target, size_t target_len)
{
        return (cas_node){.type = CAS_NODE_SYMLINK, .name = name, .name_len = (uint32_t)strlen(name),
                          .target = target, .target_len = (uint32_t)target_len};
}

/* Builds a directory, checks it against its vector (digest, size, encoding,
 * round trip) and returns its digest and size. */
static void check_dir(const char *vname, const cas_node *nodes, size_t n, cas_digest *ret,
                      uint64_t *ret_size)
{
        const vector_dir *v = vdir(vname);
        _cleanup_free_ cas_directory *d = NULL, *again = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        cas_digest dg;
        uint64_t size;
        char hex[CAS_DIGEST_HEX_MAX], text[CAS_DIGEST_TEXT_MAX];

        ASSERT(cas_directory_build(nodes, n, &d) == 0);
        CHECK_RC(cas_directory_validate(d, NULL), 0);
        CHECK_RC(cas_directory_encode(d, &buf, &len), 0);
        cas_digest_of(buf, len, &dg);
        CHECK_STR(cas_digest_to_hex(&dg, hex), v->hex);
        if (v->text)
                CHECK_STR(cas_digest_to_text(&dg, text), v->text);
        if (v->encoded_hex) {
                uint8_t want[4096];
                size_t want_len;
                hex_to_bytes(v->encoded_hex, want, &want_len);
                CHECK(want_len == len && (len == 0 || memcmp(want, buf, len) == 0));
        }
        CHECK_RC(cas_directory_size(d, &size), 0);
        CHECK_RC(size, v->size);

        /* decode -> encode reproduces the digest */
        CHECK_RC(cas_directory_decode(buf, len, &again, NULL), 0);
        if (again) {
                cas_digest d2;
                CHECK_RC(cas_directory_digest(again, &d2), 0);
                CHECK(cas_digest_eq(&dg, &d2));
                CHECK_RC(again->n_nodes, d->n_nodes);
        }
        *ret = dg;
        *ret_size = size;
}

static void test_vectors(void)
{
        cas_digest a, keep, b, c, dd;
        uint64_t sa, skeep, sb, sc, sd;

        check_dir("DIRECTORY_A", NULL, 0, &a, &sa);
        CHECK(cas_digest_eq(&a, &cas_digest_empty));

        cas_node k[] = {fnode(".keep", &cas_digest_empty, 0, false)};
        check_dir("DIRECTORY_WITH_KEEP", k, 1, &keep, &skeep);

        cas_node nb[] = {dnode("a", &a, sa)};
        check_dir("DIRECTORY_B", nb, 1, &b, &sb);

        cas_node nc[] = {dnode("a'", &a, sa), dnode("a", &a, sa)};
        check_dir("DIRECTORY_C", nc, 2, &c, &sc);

        cas_node nd[] = {dnode("b", &b, sb), dnode("a", &a, sa)};
        check_dir("DIRECTORY_D", nd, 2, &dd, &sd);
}

static int validate_nodes(const cas_node *nodes, size_t n, cas_error_code *ret_code)
{
        _cleanup_free_ cas_directory *d = NULL;
        cas_error e = {0};
        int r;

        ASSERT(cas_directory_build(nodes, n, &d) == 0);
        r = cas_directory_validate(d, &e);
        *ret_code = e.code;
        if (r < 0)
                return r;
        /* whatever validates also encodes and decodes back */
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ cas_directory *again = NULL;
        size_t len;
        ASSERT(cas_directory_encode(d, &buf, &len) == 0);
        return cas_directory_decode(buf, len, &again, NULL);
}

/* Encodes a directory without sorting or validating, then decodes the bytes:
 * what a hostile writer could store. */
static int decode_raw(cas_directory *d, cas_error_code *ret_code)
{
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ cas_directory *again = NULL;
        cas_error e = {0};
        size_t len;
        int r;

        ASSERT(cas_directory_encode(d, &buf, &len) == 0);
        r = cas_directory_decode(buf, len, &again, &e);
        *ret_code = e.code;
        return r;
}

static void test_must_fail(void)
{
        cas_error_code code;
        _cleanup_free_ cas_directory *d = NULL;

        /* the vectors' list is what this test covers (the closure cases are in test-metastore) */
        CHECK_RC(ELEMENTS(vector_must_fail), 8);

        /* 1: files 'b' then 'a' */
        cas_node ab[] = {fnode("a", &cas_digest_empty, 0, false), fnode("b", &cas_digest_empty, 0, false)};
        ASSERT(cas_directory_build(ab, 2, &d) == 0);
        cas_node t = d->files[0];
        d->files[0] = d->files[1];
        d->files[1] = t;
        CHECK_RC(cas_directory_validate(d, NULL), -EBADMSG);
        CHECK_RC(decode_raw(d, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_UNSORTED);

        /* 2: directory 'x' and file 'x'; also the same name twice in one list */
        cas_node xx[] = {dnode("x", &cas_digest_empty, 0), fnode("x", &cas_digest_empty, 0, false)};
        CHECK_RC(validate_nodes(xx, 2, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_DUPLICATE);
        cas_node yy[] = {lnode("y", "t", 1), lnode("y", "u", 1)};
        CHECK_RC(validate_nodes(yy, 2, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_DUPLICATE);
        cas_node zz[] = {lnode("z", "t", 1), dnode("a", &cas_digest_empty, 0),
                         fnode("z", &cas_digest_empty, 0, false)};
        CHECK_RC(validate_nodes(zz, 3, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_DUPLICATE);

        /* 3: bad names */
        char n255[256], n256[257];
        memset(n255, 'n', 255), n255[255] = 0;
        memset(n256, 'n', 256), n256[256] = 0;
        struct {
                const char *name;
                size_t len;
                cas_error_code code;
        } names[] = {
                {".", 1, CAS_ERR_NAME_DOT},     {"..", 2, CAS_ERR_NAME_DOT},
                {"", 0, CAS_ERR_NAME_EMPTY},    {"a/b", 3, CAS_ERR_NAME_SLASH},
                {"a\0b", 3, CAS_ERR_NAME_NUL},  {n256, 256, CAS_ERR_NAME_TOO_LONG},
        };
        for (size_t i = 0; i < ELEMENTS(names); i++)
                for (int type = CAS_NODE_DIRECTORY; type <= CAS_NODE_SYMLINK; type++) {
                        cas_node n = {.type = type, .name = names[i].name,
                                      .name_len = (uint32_t)names[i].len, .digest = cas_digest_empty,
                                      .target = "t", .target_len = 1};
                        CHECK_RC(validate_nodes(&n, 1, &code), -EBADMSG);
                        CHECK_RC(code, names[i].code);
                        _cleanup_free_ cas_directory *raw = NULL;
                        ASSERT(cas_directory_build(&n, 1, &raw) == 0);
                        CHECK_RC(decode_raw(raw, &code), -EBADMSG);
                        CHECK_RC(code, names[i].code);
                }
        cas_node ok255 = fnode(n255, &cas_digest_empty, 0, false);
        CHECK_RC(validate_nodes(&ok255, 1, &code), 0);
        cas_node okdots[] = {fnode("...", &cas_digest_empty, 0, false), fnode(".a", &cas_digest_empty, 0, false)};
        CHECK_RC(validate_nodes(okdots, 2, &code), 0);

        /* 4: a digest of 31 or 33 bytes, in raw protobuf (field 2 = files) */
        for (int dl = 31; dl <= 33; dl += 2) {
                uint8_t raw[64] = {0x12, (uint8_t)(5 + dl), 0x0a, 0x01, 'a', 0x12, (uint8_t)dl};
                _cleanup_free_ cas_directory *x = NULL;
                cas_error e = {0};
                CHECK_RC(cas_directory_decode(raw, 7 + (size_t)dl, &x, &e), -EBADMSG);
                CHECK_RC(e.code, CAS_ERR_DIGEST_LENGTH);
                raw[0] = 0x0a; /* the same as a DirectoryNode */
                CHECK_RC(cas_directory_decode(raw, 7 + (size_t)dl, &x, &e), -EBADMSG);
                CHECK_RC(e.code, CAS_ERR_DIGEST_LENGTH);
        }

        /* 5: symlink targets */
        char t4095[4096], t4096[4097];
        memset(t4095, 't', 4095), t4095[4095] = 0;
        memset(t4096, 't', 4096), t4096[4096] = 0;
        cas_node l0 = lnode("l", "", 0), lnul = lnode("l", "a\0b", 3), l4096 = lnode("l", t4096, 4096),
                 l4095 = lnode("l", t4095, 4095);
        CHECK_RC(validate_nodes(&l0, 1, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_TARGET_EMPTY);
        CHECK_RC(validate_nodes(&lnul, 1, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_TARGET_NUL);
        CHECK_RC(validate_nodes(&l4096, 1, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_TARGET_TOO_LONG);
        CHECK_RC(validate_nodes(&l4095, 1, &code), 0);
}

static void test_noncanonical(void)
{
        _cleanup_free_ cas_directory *d = NULL;
        cas_error e = {0};

        /* FileNode 'a' with digest, then an explicit size = 0 (a default written out) */
        uint8_t raw[64] = {0x12, 0x27, 0x0a, 0x01, 'a', 0x12, 0x20};
        memcpy(raw + 7, cas_digest_empty.bytes, 32);
        raw[39] = 0x18, raw[40] = 0x00;
        CHECK_RC(cas_directory_decode(raw, 41, &d, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_NONCANONICAL);
        /* the same without it is fine */
        raw[1] = 0x25;
        CHECK_RC(cas_directory_decode(raw, 39, &d, &e), 0);
        free(TAKE_PTR(d));
        /* a non-minimal varint for the size 1 */
        raw[1] = 0x28, raw[39] = 0x18, raw[40] = 0x81, raw[41] = 0x00;
        CHECK_RC(cas_directory_decode(raw, 42, &d, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_NONCANONICAL);
        /* an unknown field (7, varint) */
        raw[1] = 0x27, raw[39] = 0x38, raw[40] = 0x01;
        CHECK_RC(cas_directory_decode(raw, 41, &d, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_DECODE);
        /* garbage, truncation */
        CHECK_RC(cas_directory_decode("\xff\xff\xff", 3, &d, &e), -EBADMSG);
        CHECK_RC(cas_directory_decode(raw, 20, &d, &e), -EBADMSG);
        /* fields out of order: symlinks (3) before files (2) */
        uint8_t ooo[] = {0x1a, 0x06, 0x0a, 0x01, 'z', 0x12, 0x01, 't', 0x1a, 0x06, 0x0a, 0x01, 'y', 0x12, 0x01, 't'};
        CHECK_RC(cas_directory_decode(ooo, sizeof(ooo), &d, &e), -EBADMSG);
        CHECK_RC(e.code, CAS_ERR_UNSORTED);
        /* a size sum overflowing 64 bits */
        cas_node big[] = {dnode("a", &cas_digest_empty, UINT64_MAX), dnode("b", &cas_digest_empty, 1)};
        cas_error_code code;
        CHECK_RC(validate_nodes(big, 2, &code), -EBADMSG);
        CHECK_RC(code, CAS_ERR_SIZE_OVERFLOW);
}

static void test_nodes(void)
{
        cas_node n = fnode("hello", &cas_digest_empty, 0, true);
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ cas_node *back = NULL;
        size_t len;

        CHECK_RC(cas_node_encode(&n, &buf, &len), 0);
        CHECK_RC(cas_node_decode(buf, len, &back, NULL), 0);
        if (back) {
                CHECK(back->type == CAS_NODE_FILE && back->executable);
                CHECK_STR(back->name, "hello");
                CHECK(cas_digest_eq(&back->digest, &cas_digest_empty));
        }
        cas_node l = lnode("ln", "../x", 4);
        free(TAKE_PTR(buf));
        free(TAKE_PTR(back));
        CHECK_RC(cas_node_encode(&l, &buf, &len), 0);
        CHECK_RC(cas_node_decode(buf, len, &back, NULL), 0);
        if (back)
                CHECK_STR(back->target, "../x");
        cas_error e;
        CHECK_RC(cas_node_decode("", 0, &back, &e), -EBADMSG); /* no node set */
        CHECK_RC(e.code, CAS_ERR_NODE_TYPE);
}

static void test_find_and_order(void)
{
        cas_node nodes[] = {fnode("b", &cas_digest_empty, 0, false), dnode("c", &cas_digest_empty, 0),
                            lnode("a", "t", 1), dnode("aa", &cas_digest_empty, 0)};
        _cleanup_free_ cas_directory *d = NULL;
        uint32_t order[4];

        ASSERT(cas_directory_build(nodes, 4, &d) == 0);
        cas_directory_name_order(d, order);
        const char *want[] = {"a", "aa", "b", "c"};
        for (int i = 0; i < 4; i++)
                CHECK_STR(d->nodes[order[i]].name, want[i]);
        CHECK(cas_directory_find(d, "aa", 2) && cas_directory_find(d, "aa", 2)->type == CAS_NODE_DIRECTORY);
        CHECK(cas_directory_find(d, "a", 1) && cas_directory_find(d, "a", 1)->type == CAS_NODE_SYMLINK);
        CHECK(!cas_directory_find(d, "d", 1));
        CHECK(!cas_directory_find(d, "", 0));
}

int main(void)
{
        test_vectors();
        test_must_fail();
        test_noncanonical();
        test_nodes();
        test_find_and_order();
        return tests_finish("test-castore");
}
