/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The libcurl transport (http(s):// and s3://) as a loadable module.
 *
 * libcurl brings libssl, libcrypto and a dozen more libraries: linked into
 * the program, they cost every command about 5.7 MiB of resident memory
 * (measured: a mount daemon of a local store, idle, 3,040 KiB without them,
 * 8,770 KiB with; `casfs roots` 2.3 MiB against 8.5 MiB), though only
 * remote addresses use them. So the transport (objstore-curl.c,
 * objstore-xfer.c, objstore-multi.c, objstore-s3.c) is built into a shared
 * object of its own, OBJSTORE_MODULE_NAME, which the program opens with
 * dlopen() at the first http(s):// or s3:// address (objstore-load.c);
 * local stores and file:// never load it. (dlopen() of libcurl itself would
 * cost remote stores the same, measured, and need a pointer for each of
 * the 36 libcurl and libcrypto functions the transport calls.)
 *
 * The module and the program exchange two tables: the program lends the
 * module what has state in the program (the thread's error line, the log),
 * the module gives the program its entry points. Both are built from the
 * same tree: the module says which version it is and the size of the
 * struct they share, and one of another build is refused. */

#include <stdarg.h>

#include "log.h"
#include "objstore-internal.h"

#define OBJSTORE_MODULE_NAME "objstore-curl.so"
#define OBJSTORE_MODULE_ENTRY "casfs_objstore_curl_module"

/* What the program lends the module. */
typedef struct objstore_host {
        int (*verror)(const cas_objstore *os, int error, const char *op, const char *key,
                      const char *fmt, va_list ap);
        void (*set_last_error)(const char *line);
        const char *(*last_error)(void);
        cas_log_level (*log_get_max_level)(void);
        void (*logv)(cas_log_level level, const char *fmt, va_list ap);
} objstore_host;

/* What the module gives: the calls of objstore-internal.h that objstore.c
 * makes into the transport. */
typedef struct objstore_module {
        const char *version;  /* CASFS_VERSION it was built as */
        size_t objstore_size; /* sizeof(cas_objstore) */
        int (*open)(cas_objstore *os);
        int (*multi_new)(cas_objstore *os, objstore_multi **ret);
        int (*multi_queue)(objstore_multi *m, objstore_xfer_op op, const char *key,
                           size_t max_size, void *buf, size_t len, cas_objstore_done_cb cb,
                           void *userdata);
        int (*multi_wait)(objstore_multi *m);
        objstore_multi *(*multi_free)(objstore_multi *m);
} objstore_module;

/* The module's one exported symbol, OBJSTORE_MODULE_ENTRY, is of this type
 * (objstore-curl-module.c). host stays valid for the life of the process
 * (the module is never unloaded). */
typedef const objstore_module *(*objstore_module_entry)(const objstore_host *host);

/* The host table the module was given: set once, before the first call into
 * the module (objstore-curl-module.c), read by the forwarders of
 * objstore-curl-host.c, which only the shared object has. */
extern const objstore_host *objstore_curl_host;

/* The transport: the module, loaded once and kept (or, in programs that
 * link the transport in, such as the tests, that one). -ELIBACC when it
 * cannot be loaded, with an error line naming the file and why
 * (cas_objstore_last_error; os names the store in it). Thread-safe. */
int objstore_module_get(const cas_objstore *os, const objstore_module **ret);
