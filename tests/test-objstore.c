/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The object-store interface against file:// in a temporary folder, and the
 * parsing of every kind of address. The web and S3 backends are tested
 * against real servers by tests/remote/. */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "objstore-internal.h"
#include "tests.h"

static char tmpdir[] = "/tmp/test-objstore.XXXXXX";

static void test_addresses(void)
{
        static const struct {
                const char *address, *printable;
                bool writable;
        } good[] = {
                { "file:///tmp/x", "file:///tmp/x", true },
                { "file:///tmp/x//", "file:///tmp/x", true },
                { "s3://bucket", "s3://bucket", true },
                { "s3://my-bucket/pre/fix/", "s3://my-bucket/pre/fix", true },
                { "s3://my.bucket/p", "s3://my.bucket/p", true },
                { "http://127.0.0.1:8080/p", "http://127.0.0.1:8080/p", false },
                { "http://example.org", "http://example.org", false },
                { "https://[::1]:8443/a/b/", "https://[::1]:8443/a/b", false },
                { "https://user:hunter2@example.org/cas", "https://example.org/cas", false },
                { "http://h/a%20b/c%2Bd", "http://h/a%20b/c%2Bd", false },
                { "http://h/x~y/%7e", "http://h/x~y/~", false },
        };
        static const char *bad[] = {
                "file://relative/path", "file:///", "file:///a/../b", "file:///a/.",
                "s3://", "s3://ab", "s3://AK:SK@bucket/p", "s3://bucket/a//b",
                "s3://bucket/a/../b", "s3://bu$ket", "http://", "http:///x",
                "http://host:99999/", "http://host:/", "http://host:x/", "http://h/a/../b",
                "http://h/p?q=1", "https://h/p#f", "http://h/a%2", "http://h/a%zz", "http://h/a%00",
                "http://h/%2e%2e/x", "ftp://host/x", "/plain/path", "",
        };
        cas_objstore *os;

        for (size_t i = 0; i < ELEMENTS(good); i++) {
                os = NULL;
                CHECK_RC(cas_objstore_open(good[i].address, NULL, &os), 0);
                if (!os)
                        continue;
                CHECK_STR(cas_objstore_address(os), good[i].printable);
                CHECK(!strstr(cas_objstore_address(os), "hunter2"));
                CHECK(cas_objstore_writable(os) == good[i].writable);
                cas_objstore_free(os);
        }
        for (size_t i = 0; i < ELEMENTS(bad); i++) {
                os = NULL;
                CHECK_RC(cas_objstore_open(bad[i], NULL, &os), -EINVAL);
                CHECK(os == NULL);
                if (os)
                        fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        CHECK(cas_objstore_is_address("s3://b"));
        CHECK(cas_objstore_is_address("file:///x"));
        CHECK(cas_objstore_is_address("https://h/x"));
        CHECK(!cas_objstore_is_address("/var/lib/casfs"));
        CHECK(!cas_objstore_is_address("store"));

        /* half the credentials is a mistake, not anonymous access */
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
        unsetenv("AWS_SECRET_ACCESS_KEY");
        CHECK_RC(cas_objstore_open("s3://bucket", NULL, &os), -EINVAL);
        unsetenv("AWS_ACCESS_KEY_ID");
        /* an endpoint with a path is refused */
        cas_objstore_options o = { .s3_endpoint = "http://127.0.0.1:1/x" };
        CHECK_RC(cas_objstore_open("s3://bucket", &o, &os), -EINVAL);
        o.s3_endpoint = "ftp://127.0.0.1:1";
        CHECK_RC(cas_objstore_open("s3://bucket", &o, &os), -EINVAL);
        o.s3_endpoint = "http://127.0.0.1:1/";
        os = NULL;
        CHECK_RC(cas_objstore_open("s3://bucket/p", &o, &os), 0);
        if (os)
                CHECK_STR(cas_objstore_address(os), "s3://bucket/p");
        cas_objstore_free(os);
}

/* The worked example of AWS's SigV4 documentation for S3 (GET Object with a
 * Range header). */
static void test_sigv4(void)
{
        static const char empty[] =
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        const s3_header h[] = {
                { "host", "examplebucket.s3.amazonaws.com" },
                { "range", "bytes=0-9" },
                { "x-amz-content-sha256", empty },
                { "x-amz-date", "20130524T000000Z" },
        };
        char *auth = NULL, hex[65];

        s3_sha256_hex("", 0, hex);
        CHECK_STR(hex, empty);
        CHECK_RC(s3_sign("GET", "/test.txt", "", h, ELEMENTS(h), empty, "20130524T000000Z",
                         "us-east-1", "AKIAIOSFODNN7EXAMPLE",
                         "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &auth),
                 0);
        CHECK_STR(auth, "AWS4-HMAC-SHA256 "
                        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        free(auth);

        char *enc = NULL;
        size_t len = 0, cap = 0;
        CHECK_RC(s3_uri_encode("a b/c+d~e_f.g-h=ü", true, &enc, &len, &cap), 0);
        CHECK_STR(enc, "a%20b/c%2Bd~e_f.g-h%3D%C3%BC");
        len = 0;
        CHECK_RC(s3_uri_encode("a/b", false, &enc, &len, &cap), 0);
        CHECK_STR(enc, "a%2Fb");
        free(enc);
}

typedef struct listed {
        unsigned n;
        uint64_t total;
        char last[64];
} listed;

static int listed_cb(const char *key, uint64_t size, void *userdata)
{
        listed *l = userdata;
        l->n++;
        l->total += size;
        snprintf(l->last, sizeof(l->last), "%s", key);
        return 0;
}

static void test_list_xml(void)
{
        static const char page[] =
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                "<Name>b</Name><IsTruncated>true</IsTruncated>"
                "<Contents><Key>a/1</Key><Size>10</Size></Contents>"
                "<Contents><ETag>&quot;x&quot;</ETag><Size>5</Size>"
                "<Key>a/&lt;b&gt; &amp; &#233;&#x20AC;</Key></Contents>"
                "<NextContinuationToken>1/2+3=</NextContinuationToken></ListBucketResult>";
        static const char *const bad[] = {
                "<Error><Code>NoSuchBucket</Code></Error>",
                "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",
                "<ListBucketResult><Contents><Key>a</Key><Size>1x</Size></Contents>",
                ("<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999</Size>"
                 "</Contents>"),
                "<ListBucketResult><Contents><Key>a&bogus;</Key><Size>1</Size></Contents>",
                "<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size></Contents>",
                "<ListBucketResult><Contents><Key>a&amp</Key><Size>1</Size></Contents>",
                "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        };
        listed l = { 0 };
        char *token = NULL;

        CHECK_RC(s3_parse_list(page, strlen(page), listed_cb, &l, &token), 0);
        CHECK_RC(l.n, 2);
        CHECK_RC(l.total, 15);
        CHECK_STR(l.last, "a/<b> & \xc3\xa9\xe2\x82\xac");
        CHECK_STR(token, "1/2+3=");
        free(token);
        for (size_t i = 0; i < ELEMENTS(bad); i++) {
                token = NULL;
                CHECK_RC(s3_parse_list(bad[i], strlen(bad[i]), listed_cb, &l, &token), -EBADMSG);
                CHECK(token == NULL);
        }
        static const char last[] = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                                   "<Contents><Key>k</Key><Size>0</Size></Contents>"
                                   "</ListBucketResult>";
        token = (char *)1;
        CHECK_RC(s3_parse_list(last, strlen(last), listed_cb, &l, &token), 0);
        CHECK(token == NULL);

        char *code = s3_xml_element(bad[0], strlen(bad[0]), "Code");
        CHECK_STR(code, "NoSuchBucket");
        free(code);
        CHECK(s3_xml_element(bad[0], strlen(bad[0]), "Message") == NULL);
}

static int count_cb(const char *key, uint64_t size, void *userdata)
{
        unsigned *n = userdata;
        (*n)++;
        return 0;
}

typedef struct seen {
        char keys[8][64];
        uint64_t sizes[8];
        unsigned n;
} seen;

static int collect_cb(const char *key, uint64_t size, void *userdata)
{
        seen *s = userdata;
        if (s->n >= ELEMENTS(s->keys))
                return -E2BIG;
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
        s->sizes[s->n++] = size;
        return 0;
}

static int stop_cb(const char *key, uint64_t size, void *userdata)
{
        return 42;
}

static bool seen_has(const seen *s, const char *key, uint64_t size)
{
        for (unsigned i = 0; i < s->n; i++)
                if (strcmp(s->keys[i], key) == 0 && s->sizes[i] == size)
                        return true;
        return false;
}

static void test_basic(cas_objstore *os)
{
        void *buf = NULL;
        size_t len = 0;
        uint64_t size = 0;
        char range[16];

        CHECK_RC(cas_objstore_check(os), 0);
        CHECK_RC(cas_objstore_put(os, "chunks/b3/ab12/ab12cd", "hello, world", 12), 0);
        CHECK_RC(cas_objstore_get(os, "chunks/b3/ab12/ab12cd", 100, &buf, &len), 0);
        CHECK_RC(len, 12);
        CHECK(buf && memcmp(buf, "hello, world", 12) == 0);
        free(buf);
        buf = NULL;

        /* exactly max_size is fine, one less is too little */
        CHECK_RC(cas_objstore_get(os, "chunks/b3/ab12/ab12cd", 12, &buf, &len), 0);
        free(buf);
        buf = NULL;
        CHECK_RC(cas_objstore_get(os, "chunks/b3/ab12/ab12cd", 11, &buf, &len), -EFBIG);
        CHECK(buf == NULL);
        CHECK(strstr(cas_objstore_last_error(), "chunks/b3/ab12/ab12cd") != NULL);

        CHECK_RC(cas_objstore_head(os, "chunks/b3/ab12/ab12cd", &size), 0);
        CHECK_RC(size, 12);
        CHECK_RC(cas_objstore_get_range(os, "chunks/b3/ab12/ab12cd", 7, 5, range, &len), 0);
        CHECK_RC(len, 5);
        CHECK(memcmp(range, "world", 5) == 0);
        CHECK_RC(cas_objstore_get_range(os, "chunks/b3/ab12/ab12cd", 10, 16, range, &len), 0);
        CHECK_RC(len, 2);
        CHECK_RC(cas_objstore_get_range(os, "chunks/b3/ab12/ab12cd", 12, 16, range, &len), 0);
        CHECK_RC(len, 0);
        CHECK_RC(cas_objstore_get_range(os, "chunks/b3/ab12/ab12cd", 1000, 16, range, &len), 0);
        CHECK_RC(len, 0);

        /* empty objects exist */
        CHECK_RC(cas_objstore_put(os, "roots/empty", "", 0), 0);
        CHECK_RC(cas_objstore_get(os, "roots/empty", 0, &buf, &len), 0);
        CHECK_RC(len, 0);
        free(buf);
        buf = NULL;

        /* missing */
        CHECK_RC(cas_objstore_get(os, "chunks/b3/ffff/ffff", 100, &buf, &len), -ENOENT);
        CHECK(strstr(cas_objstore_last_error(), "chunks/b3/ffff/ffff") != NULL);
        CHECK(strstr(cas_objstore_last_error(), cas_objstore_address(os)) != NULL);
        CHECK_RC(cas_objstore_head(os, "chunks/b3/ffff/ffff", &size), -ENOENT);
        CHECK_RC(cas_objstore_head(os, "chunks/b3/ab12/ab12cd/below", &size), -ENOENT);
        CHECK_RC(cas_objstore_head(os, "chunks/b3/ab12", &size), -ENOENT);
        CHECK_RC(cas_objstore_get_range(os, "nothing", 0, 4, range, &len), -ENOENT);

        /* keys that would leave the store or make no sense */
        CHECK_RC(cas_objstore_put(os, "../escape", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_put(os, "/abs", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_put(os, "a//b", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_put(os, "a/./b", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_put(os, "a/", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_put(os, "", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_put(os, "a\nb", "x", 1), -EINVAL);
        CHECK_RC(cas_objstore_get(os, "..", 10, &buf, &len), -EINVAL);

        /* replace */
        CHECK_RC(cas_objstore_put(os, "roots/r", "one", 3), 0);
        CHECK_RC(cas_objstore_put(os, "roots/r", "second", 6), 0);
        CHECK_RC(cas_objstore_get(os, "roots/r", 100, &buf, &len), 0);
        CHECK_RC(len, 6);
        CHECK(buf && memcmp(buf, "second", 6) == 0);
        free(buf);
        buf = NULL;

        /* list: string prefixes, not only folders */
        seen s = { 0 };
        CHECK_RC(cas_objstore_list(os, "", collect_cb, &s), 0);
        CHECK_RC(s.n, 3);
        CHECK(seen_has(&s, "chunks/b3/ab12/ab12cd", 12));
        CHECK(seen_has(&s, "roots/empty", 0));
        CHECK(seen_has(&s, "roots/r", 6));
        memset(&s, 0, sizeof(s));
        CHECK_RC(cas_objstore_list(os, "roots/", collect_cb, &s), 0);
        CHECK_RC(s.n, 2);
        memset(&s, 0, sizeof(s));
        CHECK_RC(cas_objstore_list(os, "roots/e", collect_cb, &s), 0);
        CHECK_RC(s.n, 1);
        CHECK(seen_has(&s, "roots/empty", 0));
        memset(&s, 0, sizeof(s));
        CHECK_RC(cas_objstore_list(os, "chunks/b3/ab", collect_cb, &s), 0);
        CHECK_RC(s.n, 1);
        memset(&s, 0, sizeof(s));
        CHECK_RC(cas_objstore_list(os, "ro", collect_cb, &s), 0);
        CHECK_RC(s.n, 2);
        memset(&s, 0, sizeof(s));
        CHECK_RC(cas_objstore_list(os, "nothing/here/", collect_cb, &s), 0);
        CHECK_RC(s.n, 0);
        CHECK_RC(cas_objstore_list(os, "", stop_cb, NULL), 42);
        CHECK_RC(cas_objstore_list(os, "../", count_cb, NULL), -EINVAL);

        /* delete; absent is fine */
        CHECK_RC(cas_objstore_delete(os, "roots/r"), 0);
        CHECK_RC(cas_objstore_head(os, "roots/r", &size), -ENOENT);
        CHECK_RC(cas_objstore_delete(os, "roots/r"), 0);
        CHECK_RC(cas_objstore_delete(os, "never/was"), 0);
}

static void test_if_changed(cas_objstore *os)
{
        void *buf = (void *)1;
        size_t len = 0;
        char *etag = NULL, *etag2 = NULL;

        CHECK_RC(cas_objstore_put(os, "roots/x", "v1", 2), 0);
        CHECK_RC(cas_objstore_get_if_changed(os, "roots/x", NULL, 100, &buf, &len, &etag), 1);
        CHECK(etag != NULL);
        CHECK_RC(len, 2);
        CHECK(buf && memcmp(buf, "v1", 2) == 0);
        free(buf);
        buf = (void *)1;
        CHECK_RC(cas_objstore_get_if_changed(os, "roots/x", etag, 100, &buf, &len, &etag2), 0);
        CHECK(buf == NULL);
        CHECK(etag2 == NULL);
        CHECK_RC(cas_objstore_put(os, "roots/x", "v2", 2), 0);
        CHECK_RC(cas_objstore_get_if_changed(os, "roots/x", etag, 100, &buf, &len, &etag2), 1);
        CHECK(buf && len == 2 && memcmp(buf, "v2", 2) == 0);
        CHECK(etag2 && strcmp(etag, etag2) != 0);
        free(buf);
        CHECK_RC(cas_objstore_get_if_changed(os, "roots/x", etag2, 1, &buf, &len, &etag), 0);
        CHECK_RC(cas_objstore_get_if_changed(os, "roots/x", "other", 1, &buf, &len, &etag),
                 -EFBIG);
        CHECK_RC(cas_objstore_get_if_changed(os, "roots/none", etag2, 10, &buf, &len, &etag),
                 -ENOENT);
        free(etag);
        free(etag2);
}

#define BATCH_N 400

typedef struct batch_state {
        unsigned done, failed, missing;
        uint64_t bytes;
} batch_state;

static void batch_cb(int r, const char *key, void *buf, size_t len, void *userdata)
{
        batch_state *st = userdata;
        unsigned i;

        st->done++;
        if (r == -ENOENT) {
                st->missing++;
                return;
        }
        if (r < 0) {
                st->failed++;
                return;
        }
        st->bytes += len;
        if (buf) {
                /* key "batch/NNN" holds NNN copies of its number's last digit */
                if (sscanf(key, "batch/%u", &i) != 1 || len != i)
                        st->failed++;
                for (size_t k = 0; k < len; k++)
                        if (((char *)buf)[k] != (char)('0' + i % 10)) {
                                st->failed++;
                                break;
                        }
                free(buf);
        }
}

static void test_batch(cas_objstore *os)
{
        cas_objstore_batch *b = NULL;
        batch_state puts = { 0 }, gets = { 0 }, heads = { 0 };
        uint64_t want = 0;
        char key[32];

        ASSERT(cas_objstore_batch_new(os, &b) == 0);
        for (unsigned i = 0; i < BATCH_N; i++) {
                char *buf = malloc(i + 1);
                ASSERT(buf);
                memset(buf, '0' + i % 10, i);
                snprintf(key, sizeof(key), "batch/%u", i);
                CHECK_RC(cas_objstore_batch_put(b, key, buf, i, batch_cb, &puts), 0);
                want += i;
        }
        CHECK_RC(cas_objstore_batch_wait(b), 0);
        CHECK_RC(puts.done, BATCH_N);
        CHECK_RC(puts.failed, 0);

        for (unsigned i = 0; i < BATCH_N; i++) {
                snprintf(key, sizeof(key), "batch/%u", i);
                CHECK_RC(cas_objstore_batch_get(b, key, 1 << 20, batch_cb, &gets), 0);
                CHECK_RC(cas_objstore_batch_head(b, key, batch_cb, &heads), 0);
        }
        CHECK_RC(cas_objstore_batch_get(b, "batch/none", 1 << 20, batch_cb, &gets), 0);
        CHECK_RC(cas_objstore_batch_wait(b), 0);
        CHECK_RC(gets.done, BATCH_N + 1);
        CHECK_RC(gets.failed, 0);
        CHECK_RC(gets.missing, 1);
        CHECK_RC(gets.bytes, want);
        CHECK_RC(heads.done, BATCH_N);
        CHECK_RC(heads.bytes, want);
        CHECK_RC(cas_objstore_batch_put(b, "../x", malloc(1), 1, batch_cb, &puts), -EINVAL);
        cas_objstore_batch_free(b);

        unsigned n = 0;
        CHECK_RC(cas_objstore_list(os, "batch/", count_cb, &n), 0);
        CHECK_RC(n, BATCH_N);
}

/* Many threads put the same key: a reader only ever sees one whole version,
 * and no temporary file stays behind. */
#define RACE_THREADS 4
#define RACE_ROUNDS 50
#define RACE_SIZE (64 * 1024)

static cas_objstore *race_os;
static unsigned race_torn;

static void *race_thread(void *arg)
{
        uintptr_t id = (uintptr_t)arg;
        char *buf = malloc(RACE_SIZE);
        ASSERT(buf);
        memset(buf, 'a' + (int)id, RACE_SIZE);
        for (unsigned i = 0; i < RACE_ROUNDS; i++) {
                void *got = NULL;
                size_t len = 0;
                if (cas_objstore_put(race_os, "race/key", buf, RACE_SIZE) < 0)
                        __atomic_add_fetch(&race_torn, 1, __ATOMIC_RELAXED);
                if (cas_objstore_get(race_os, "race/key", RACE_SIZE, &got, &len) < 0 ||
                    len != RACE_SIZE) {
                        __atomic_add_fetch(&race_torn, 1, __ATOMIC_RELAXED);
                } else {
                        for (size_t k = 1; k < len; k++)
                                if (((char *)got)[k] != ((char *)got)[0]) {
                                        __atomic_add_fetch(&race_torn, 1, __ATOMIC_RELAXED);
                                        break;
                                }
                }
                free(got);
        }
        free(buf);
        return NULL;
}

static void test_race(cas_objstore *os, const char *dir)
{
        pthread_t t[RACE_THREADS];
        char path[400];
        unsigned entries = 0;

        race_os = os;
        for (uintptr_t i = 0; i < RACE_THREADS; i++)
                ASSERT(pthread_create(&t[i], NULL, race_thread, (void *)i) == 0);
        for (unsigned i = 0; i < RACE_THREADS; i++)
                pthread_join(t[i], NULL);
        CHECK_RC(race_torn, 0);

        snprintf(path, sizeof(path), "%s/race", dir);
        DIR *d = opendir(path);
        CHECK(d != NULL);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.' || strlen(de->d_name) > 2)
                                entries++;
                closedir(d);
        }
        CHECK_RC(entries, 1); /* "key" only */
}

static void test_missing_folder(const char *dir)
{
        cas_objstore *os = NULL;
        char address[300];
        uint64_t size;

        snprintf(address, sizeof(address), "file://%s/not/yet", dir);
        ASSERT(cas_objstore_open(address, NULL, &os) == 0);
        CHECK_RC(cas_objstore_check(os), -ENOENT);
        CHECK(strstr(cas_objstore_last_error(), "not/yet") != NULL);
        CHECK_RC(cas_objstore_put(os, "k", "v", 1), -ENOENT);
        CHECK_RC(cas_objstore_list(os, "", count_cb, NULL), -ENOENT);
        CHECK_RC(cas_objstore_create_bucket(os), 0);
        CHECK_RC(cas_objstore_create_bucket(os), 0);
        CHECK_RC(cas_objstore_check(os), 0);
        CHECK_RC(cas_objstore_put(os, "k", "v", 1), 0);
        CHECK_RC(cas_objstore_head(os, "k", &size), 0);
        CHECK_RC(size, 1);
        cas_objstore_free(os);

        /* a file where the folder should be */
        snprintf(address, sizeof(address), "file://%s/not/yet/k", dir);
        ASSERT(cas_objstore_open(address, NULL, &os) == 0);
        CHECK_RC(cas_objstore_check(os), -ENOTDIR);
        cas_objstore_free(os);
}

int main(void)
{
        cas_objstore *os = NULL;
        char address[300];

        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        unsetenv("AWS_SESSION_TOKEN");
        unsetenv("AWS_ENDPOINT_URL");
        test_addresses();
        test_sigv4();
        test_list_xml();

        ASSERT(mkdtemp(tmpdir));
        snprintf(address, sizeof(address), "file://%s/store/", tmpdir);
        ASSERT(mkdir(address + 7, 0755) == 0);
        ASSERT(cas_objstore_open(address, NULL, &os) == 0);
        test_basic(os);
        test_if_changed(os);
        test_batch(os);
        test_race(os, address + 7);
        cas_objstore_free(os);
        test_missing_folder(tmpdir);

        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        return tests_finish("test-objstore");
}
