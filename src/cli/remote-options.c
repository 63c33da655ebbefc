/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cli.h"
#include "macro.h"

const char cli_remote_help[] =
    "\n"
    "A remote store (--store s3://..., http(s)://..., file://...) is served through\n"
    "a local cache, itself a casfs store (usable with --store DIR afterwards):\n"
    "      --cache DIR    the cache's folder (default: one per remote address, and for\n"
    "                     s3:// per endpoint, under ${XDG_CACHE_HOME:-~/.cache}/casfs/)\n"
    "      --cache-size SIZE  keep the cached blobs under SIZE bytes (suffix K, M or G),\n"
    "                     removing those read least recently (default: unbounded)\n"
    "      --jobs N       requests in flight for the chunks of one blob (default: 32)\n"
    "      --timeout SEC  a request that makes no progress for SEC seconds fails: a\n"
    "                     read of what is not cached is then EIO (default: 10)\n"
    "      --refresh SEC  roots replaced or removed on the remote show within SEC\n"
    "                     seconds (default: 60)\n";

/* "SIZE[K|M|G]" in bytes; -EINVAL when it is not one. */
static int parse_size(const char *s, uint64_t *ret)
{
        char *end;
        errno = 0;
        unsigned long long n = strtoull(s, &end, 10);
        unsigned shift = 0;

        if (errno || end == s || s[0] == '-')
                return -EINVAL;
        switch (*end) {
        case 0:
                break;
        case 'k':
        case 'K':
                shift = 10;
                break;
        case 'm':
        case 'M':
                shift = 20;
                break;
        case 'g':
        case 'G':
                shift = 30;
                break;
        default:
                return -EINVAL;
        }
        if (*end && end[1])
                return -EINVAL;
        if (n > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = (uint64_t)n << shift;
        return 0;
}

int cli_remote_option(const char *cmd, int c, const char *arg, cli_remote_options *ro)
{
        switch (c) {
        case CLI_OPT_CACHE:
                ro->cache_dir = arg;
                break;
        case CLI_OPT_CACHE_SIZE:
                if (parse_size(arg, &ro->cache_size) < 0 || ro->cache_size == 0) {
                        log_error("%s: --cache-size takes a size in bytes, with K, M or G after it",
                                  cmd);
                        return -EINVAL;
                }
                break;
        case CLI_OPT_JOBS:
                if (cli_parse_number(cmd, "jobs", arg, 1, 256, &ro->jobs) < 0)
                        return -EINVAL;
                break;
        case CLI_OPT_TIMEOUT:
                if (cli_parse_number(cmd, "timeout", arg, 1, 3600, &ro->timeout_sec) < 0)
                        return -EINVAL;
                break;
        case CLI_OPT_REFRESH:
                if (cli_parse_number(cmd, "refresh", arg, 1, 86400, &ro->refresh_sec) < 0)
                        return -EINVAL;
                break;
        default:
                return 0;
        }
        ro->given = true;
        return 1;
}

int cli_open_served_store(const char *cmd, const cli_remote_options *ro, cas_store **ret)
{
        _cleanup_free_ char *path = NULL, *dir = NULL;
        int r;

        if (arg_store)
                path = strdup(arg_store);
        else if (cas_store_default_path(&path) < 0)
                return cli_open_store(0, ret); /* says why */
        if (!path)
                return -ENOMEM;
        if (!cas_objstore_is_address(path)) {
                if (ro->given) {
                        log_error(
                            "%s: --cache, --cache-size, --jobs, --timeout and --refresh are for "
                            "a remote store",
                            cmd);
                        return -EINVAL;
                }
                return cli_open_store(0, ret);
        }
        /* a remote that stops answering costs about --timeout, not the
         * objstore's default of four attempts of it: two of half */
        cas_objstore_options o = {
            .s3_endpoint = arg_s3_endpoint,
            .ca_bundle = arg_ca_bundle,
            .timeout_sec = MAX(1u, ro->timeout_sec / 2),
            .retries = 1,
            .jobs = ro->jobs,
        };
        if (ro->cache_dir) {
                dir = realpath(ro->cache_dir, NULL);
                if (!dir && errno == ENOENT && ro->cache_dir[0] == '/')
                        dir = strdup(ro->cache_dir);
                if (!dir) {
                        log_error("%s: --cache %s: %s", cmd, ro->cache_dir, strerror(errno));
                        return -errno;
                }
        } else if (cas_cache_default_dir(path, cas_objstore_s3_endpoint(&o), &dir) < 0) {
                log_error("%s: no cache folder: set --cache, $XDG_CACHE_HOME or $HOME", cmd);
                return -ENXIO;
        }
        cas_cache_options co = {.refresh_sec = ro->refresh_sec, .max_bytes = ro->cache_size};
        r = cas_store_open_cached(path, dir, &o, &co, ret);
        if (r < 0) {
                const char *e = cas_objstore_last_error();
                if (r == -EINVAL)
                        log_error("%s: not a valid store address", path);
                else if (e && *e)
                        log_error("%s", e);
                else
                        log_error("%s: cannot open store: %s", path, strerror(-r));
        }
        return r;
}
