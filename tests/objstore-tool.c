/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Drives an object store from the shell, for the tests against real servers:
 *   objstore-tool [OPTIONS] ADDRESS COMMAND ARGS
 *     get KEY [MAXSIZE]        the object to stdout
 *     range KEY OFFSET LENGTH  bytes of it to stdout
 *     etag KEY [ETAG]          "unchanged", or "changed ETAG"
 *     head KEY                 its size
 *     put KEY FILE
 *     delete KEY
 *     list [PREFIX]            "KEY SIZE" lines
 *     check | create
 *     batch-put PREFIX COUNT   COUNT objects PREFIX/I of I bytes, in one batch
 *     batch-get PREFIX COUNT [ROUNDS]  reads them back in one batch and checks
 *                              them (ROUNDS times, a new batch each time)
 *     batch-head PREFIX COUNT  checks their sizes in one batch
 *     stress KEY THREADS COUNT THREADS threads get KEY COUNT times each (whole,
 *                              a range, and in a batch of 4 of their own)
 *   (a batch prints "objstore-tool: KEY: ENAME: LINE" for each failure)
 *   OPTIONS: --ca-bundle FILE --s3-endpoint URL --timeout SEC --retries N --jobs N
 * A failure prints "objstore-tool: ENAME: LINE" (ENAME the errno's name, LINE
 * cas_objstore_last_error()) and exits 1; a usage error exits 2. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "macro.h"
#include "objstore.h"

static int fail(int r)
{
        fprintf(stderr, "objstore-tool: %s: %s\n", strerrorname_np(-r) ?: "?",
                cas_objstore_last_error());
        return 1;
}

static int print_entry(const char *key, uint64_t size, void *userdata)
{
        printf("%s %" PRIu64 "\n", key, size);
        return 0;
}

static int read_file(const char *path, void **ret, size_t *ret_len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0, cap = 0, k;

        if (!f)
                return -errno;
        do {
                if (len == cap) {
                        cap = cap ? 2 * cap : 65536;
                        char *n = realloc(buf, cap);
                        if (!n) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = n;
                }
                k = fread(buf + len, 1, cap - len, f);
                len += k;
        } while (k > 0);
        *ret = buf;
        *ret_len = len;
        return 0;
}

typedef struct batch_state {
        unsigned done, bad;
        bool head;
} batch_state;

static void batch_cb(int r, const char *key, void *buf, size_t len, void *userdata)
{
        batch_state *st = userdata;
        const char *slash = strrchr(key, '/');
        unsigned i = slash ? (unsigned)strtoul(slash + 1, NULL, 10) : 0;

        st->done++;
        if (r < 0) {
                /* each failure with its own line, for the tests to match */
                fprintf(stderr, "objstore-tool: %s: %s: %s\n", key, strerrorname_np(-r) ?: "?",
                        cas_objstore_last_error());
                st->bad++;
                return;
        }
        if (st->head && len != i)
                st->bad++;
        if (buf) {
                bool ok = len == i;
                for (size_t k = 0; ok && k < len; k++)
                        ok = ((uint8_t *)buf)[k] == (uint8_t)(i + k);
                if (!ok)
                        st->bad++;
                free(buf);
        }
}

static int batch(cas_objstore *os, char what, const char *prefix, unsigned count)
{
        _cleanup_(cas_objstore_batch_freep) cas_objstore_batch *b = NULL;
        batch_state st = { .head = what == 'h' };
        char key[1100];
        int r;

        r = cas_objstore_batch_new(os, &b);
        if (r < 0)
                return fail(r);
        for (unsigned i = 0; i < count; i++) {
                snprintf(key, sizeof(key), "%s/%u", prefix, i);
                if (what == 'p') {
                        uint8_t *buf = malloc(i + 1);
                        if (!buf)
                                return fail(-ENOMEM);
                        for (unsigned k = 0; k < i; k++)
                                buf[k] = (uint8_t)(i + k);
                        r = cas_objstore_batch_put(b, key, buf, i, batch_cb, &st);
                } else if (what == 'h')
                        r = cas_objstore_batch_head(b, key, batch_cb, &st);
                else
                        r = cas_objstore_batch_get(b, key, 1 << 20, batch_cb, &st);
                if (r < 0)
                        return fail(r);
        }
        r = cas_objstore_batch_wait(b);
        if (r < 0)
                return fail(r);
        printf("%u done, %u bad\n", st.done, st.bad);
        return st.done == count && st.bad == 0 ? 0 : 1;
}

typedef struct stress_arg {
        cas_objstore *os;
        const char *key;
        unsigned count;
        const void *want;
        size_t want_len;
        unsigned bad;
} stress_arg;

static void stress_batch_cb(int r, const char *key, void *buf, size_t len, void *userdata)
{
        stress_arg *a = userdata;

        if (r < 0 || len != a->want_len || memcmp(buf, a->want, len) != 0)
                a->bad++;
        free(buf);
}

static void *stress_thread(void *p)
{
        stress_arg *a = p;
        for (unsigned i = 0; i < a->count; i++) {
                cas_objstore_batch *b = NULL;
                if (cas_objstore_batch_new(a->os, &b) < 0) {
                        a->bad++;
                } else {
                        for (unsigned k = 0; k < 4; k++)
                                if (cas_objstore_batch_get(b, a->key, 1 << 26, stress_batch_cb,
                                                           a) < 0)
                                        a->bad++;
                        if (cas_objstore_batch_wait(b) < 0)
                                a->bad++;
                        cas_objstore_batch_free(b);
                }
                void *buf = NULL;
                size_t len = 0;
                uint8_t part[100];
                if (cas_objstore_get(a->os, a->key, 1 << 26, &buf, &len) < 0 ||
                    len != a->want_len || memcmp(buf, a->want, len) != 0)
                        a->bad++;
                free(buf);
                size_t off = (i * 7919u) % (a->want_len ?: 1);
                if (cas_objstore_get_range(a->os, a->key, off, sizeof(part), part, &len) < 0 ||
                    len != MIN(sizeof(part), a->want_len - off) ||
                    memcmp(part, (const uint8_t *)a->want + off, len) != 0)
                        a->bad++;
        }
        return NULL;
}

static int stress(cas_objstore *os, const char *key, unsigned threads, unsigned count)
{
        _cleanup_free_ void *want = NULL;
        size_t want_len;
        stress_arg a[64];
        pthread_t t[64];
        unsigned bad = 0;
        int r;

        if (threads == 0 || threads > 64)
                return 2;
        r = cas_objstore_get(os, key, 1 << 26, &want, &want_len);
        if (r < 0)
                return fail(r);
        for (unsigned i = 0; i < threads; i++) {
                a[i] = (stress_arg){ os, key, count, want, want_len, 0 };
                if (pthread_create(&t[i], NULL, stress_thread, &a[i]) != 0)
                        return fail(-EAGAIN);
        }
        for (unsigned i = 0; i < threads; i++) {
                pthread_join(t[i], NULL);
                bad += a[i].bad;
        }
        printf("%u bad\n", bad);
        return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "ca-bundle", required_argument, NULL, 'c' },
                { "s3-endpoint", required_argument, NULL, 'e' },
                { "timeout", required_argument, NULL, 't' },
                { "retries", required_argument, NULL, 'r' },
                { "jobs", required_argument, NULL, 'j' },
                {},
        };
        cas_objstore_options o = { 0 };
        _cleanup_(cas_objstore_freep) cas_objstore *os = NULL;
        _cleanup_free_ void *buf = NULL;
        size_t len = 0;
        uint64_t size;
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        o.ca_bundle = optarg;
                        break;
                case 'e':
                        o.s3_endpoint = optarg;
                        break;
                case 't':
                        o.timeout_sec = (unsigned)atoi(optarg);
                        break;
                case 'r':
                        o.retries = (unsigned)atoi(optarg);
                        break;
                case 'j':
                        o.jobs = (unsigned)atoi(optarg);
                        break;
                default:
                        return 2;
                }
        }
        if (argc - optind < 2) {
                fprintf(stderr, "usage: objstore-tool [OPTIONS] ADDRESS COMMAND ARGS\n");
                return 2;
        }
        const char *address = argv[optind], *cmd = argv[optind + 1];
        char **args = argv + optind + 2;
        int n = argc - optind - 2;

        r = cas_objstore_open(address, &o, &os);
        if (r < 0) {
                fprintf(stderr, "objstore-tool: %s: invalid address\n", strerrorname_np(-r));
                return 1;
        }
        if (strcmp(cmd, "get") == 0 && (n == 1 || n == 2)) {
                r = cas_objstore_get(os, args[0], n == 2 ? strtoull(args[1], NULL, 10) : 1 << 30,
                                     &buf, &len);
                if (r < 0)
                        return fail(r);
                fwrite(buf, 1, len, stdout);
        } else if (strcmp(cmd, "range") == 0 && n == 3) {
                size_t want = strtoull(args[2], NULL, 10);
                buf = malloc(want ?: 1);
                if (!buf)
                        return fail(-ENOMEM);
                r = cas_objstore_get_range(os, args[0], strtoull(args[1], NULL, 10), want, buf,
                                           &len);
                if (r < 0)
                        return fail(r);
                fwrite(buf, 1, len, stdout);
        } else if (strcmp(cmd, "etag") == 0 && (n == 1 || n == 2)) {
                _cleanup_free_ char *etag = NULL;
                r = cas_objstore_get_if_changed(os, args[0], n == 2 ? args[1] : NULL, 1 << 30,
                                                &buf, &len, &etag);
                if (r < 0)
                        return fail(r);
                if (r == 0)
                        printf("unchanged\n");
                else
                        printf("changed %s\n", etag ?: "-");
        } else if (strcmp(cmd, "head") == 0 && n == 1) {
                r = cas_objstore_head(os, args[0], &size);
                if (r < 0)
                        return fail(r);
                printf("%" PRIu64 "\n", size);
        } else if (strcmp(cmd, "put") == 0 && n == 2) {
                r = read_file(args[1], &buf, &len);
                if (r < 0) {
                        fprintf(stderr, "objstore-tool: %s: %s\n", args[1], strerror(-r));
                        return 1;
                }
                r = cas_objstore_put(os, args[0], buf, len);
                if (r < 0)
                        return fail(r);
        } else if (strcmp(cmd, "delete") == 0 && n == 1) {
                r = cas_objstore_delete(os, args[0]);
                if (r < 0)
                        return fail(r);
        } else if (strcmp(cmd, "list") == 0 && n <= 1) {
                r = cas_objstore_list(os, n == 1 ? args[0] : "", print_entry, NULL);
                if (r < 0)
                        return fail(r);
        } else if (strcmp(cmd, "check") == 0 && n == 0) {
                r = cas_objstore_check(os);
                if (r < 0)
                        return fail(r);
        } else if (strcmp(cmd, "create") == 0 && n == 0) {
                r = cas_objstore_create_bucket(os);
                if (r < 0)
                        return fail(r);
        } else if ((strcmp(cmd, "batch-put") == 0 || strcmp(cmd, "batch-head") == 0) && n == 2) {
                return batch(os, cmd[6], args[0], (unsigned)atoi(args[1]));
        } else if (strcmp(cmd, "batch-get") == 0 && (n == 2 || n == 3)) {
                int rounds = n == 3 ? atoi(args[2]) : 1;
                for (int i = 0; i < rounds; i++) {
                        r = batch(os, 'g', args[0], (unsigned)atoi(args[1]));
                        if (r != 0)
                                return r;
                }
        } else if (strcmp(cmd, "stress") == 0 && n == 3) {
                return stress(os, args[0], (unsigned)atoi(args[1]), (unsigned)atoi(args[2]));
        } else {
                fprintf(stderr, "objstore-tool: unknown command or arguments: %s\n", cmd);
                return 2;
        }
        return 0;
}
