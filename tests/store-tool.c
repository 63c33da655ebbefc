/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Damages a store on purpose, for the tests of what casfs does with data a
 * buggy or hostile writer left behind:
 *   store-tool STORE del-dir DIGEST
 *   store-tool STORE put-dir DIGEST HEXBYTES    (raw bytes, no checks)
 *   store-tool STORE put-root NAME HEXBYTES     (raw Node bytes, no checks)
 *   store-tool STORE blob-path DIGEST */
#include <stdio.h>

#include "macro.h"
#include "store.h"

static int unhex(const char *hex, uint8_t **ret, size_t *ret_len)
{
        size_t n = strlen(hex) / 2;
        uint8_t *b = malloc(n ?: 1);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
                        free(b);
                        return -EINVAL;
                }
                b[i] = (uint8_t)v;
        }
        *ret = b;
        *ret_len = n;
        return 0;
}

int main(int argc, char **argv)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        cas_digest d;
        size_t len;
        int r;

        if (argc < 4) {
                fprintf(stderr, "usage: store-tool STORE COMMAND ARGS\n");
                return 2;
        }
        r = cas_store_open(argv[1], 0, &s);
        if (r < 0) {
                fprintf(stderr, "store-tool: %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        const char *cmd = argv[2];
        if (strcmp(cmd, "put-root") == 0 && argc == 5) {
                if (unhex(argv[4], &buf, &len) < 0)
                        return 2;
                r = cas_metastore_put_raw_root(s->meta, argv[3], buf, len);
        } else {
                if (cas_digest_parse(argv[3], &d) < 0) {
                        fprintf(stderr, "store-tool: bad digest %s\n", argv[3]);
                        return 2;
                }
                if (strcmp(cmd, "del-dir") == 0 && argc == 4)
                        r = cas_metastore_remove_directories(s->meta, &d, 1);
                else if (strcmp(cmd, "put-dir") == 0 && argc == 5) {
                        if (unhex(argv[4], &buf, &len) < 0)
                                return 2;
                        r = cas_metastore_put_raw_directory(s->meta, &d, buf, len);
                } else if (strcmp(cmd, "blob-path") == 0 && argc == 4) {
                        _cleanup_free_ char *p = NULL;
                        r = cas_blobstore_path(s->blobs, &d, &p);
                        if (r >= 0)
                                puts(p);
                } else {
                        fprintf(stderr, "store-tool: unknown command\n");
                        return 2;
                }
        }
        if (r < 0) {
                fprintf(stderr, "store-tool: %s: %s\n", cmd, strerror(-r));
                return 1;
        }
        return 0;
}
