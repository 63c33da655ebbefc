/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finds and loads the libcurl transport module (objstore-module.h).
 *
 * Where it is looked for, in order, and nowhere else:
 *   1. next to the running program (/proc/self/exe's folder): the build
 *      tree, where the program and the module are built side by side;
 *   2. CASFS_MODULE_DIR, fixed at build time: the installed module
 *      (LIBDIR/casfs).
 * Neither comes from the environment or the current folder, so a mount
 * daemon running as root loads only what its own installation put there:
 * whoever can write into the program's folder can replace the program. */
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "objstore-module.h"

/* A program that links the transport in (the tests, the fuzz targets) has
 * the entry point itself; hidden, so that the link, not the dynamic loader,
 * resolves it (to NULL in the casfs program). */
extern const objstore_module *casfs_objstore_curl_module(const objstore_host *host)
        __attribute__((weak, visibility("hidden")));

static const objstore_host host = {
        .verror = objstore_verror,
        .set_last_error = objstore_set_last_error,
        .last_error = cas_objstore_last_error,
        .log_get_max_level = cas_log_get_max_level,
        .logv = cas_logv,
};

/* The outcome of the one attempt to load, made under pthread_once: the
 * module, or why not (the message is repeated for every store that needs
 * it). Written once, read only after pthread_once returns. */
static const objstore_module *loaded;
static char load_error[PATH_MAX + 256];

static void module_path(char *buf, size_t size)
{
        char exe[PATH_MAX];
        ssize_t n;
        char *slash;

        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
                struct stat st;

                exe[n] = 0;
                slash = strrchr(exe, '/');
                if (slash) {
                        *slash = 0;
                        snprintf(buf, size, "%s/%s", exe, OBJSTORE_MODULE_NAME);
                        if (stat(buf, &st) == 0)
                                return;
                }
        }
        snprintf(buf, size, "%s/%s", CASFS_MODULE_DIR, OBJSTORE_MODULE_NAME);
}

static void load(void)
{
        char path[PATH_MAX + 64];
        const objstore_module *m;
        objstore_module_entry entry;
        void *dl;

        if (casfs_objstore_curl_module) {
                loaded = casfs_objstore_curl_module(&host);
                return;
        }
        module_path(path, sizeof(path));
        /* RTLD_LOCAL: the module's symbols (and libcurl's) stay out of the
         * program's namespace; never closed, as stores keep its functions */
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                snprintf(load_error, sizeof(load_error), "cannot load the remote transport %s: %s",
                         path, dlerror());
                return;
        }
        entry = (objstore_module_entry)dlsym(dl, OBJSTORE_MODULE_ENTRY);
        if (!entry) {
                snprintf(load_error, sizeof(load_error), "cannot load the remote transport %s: %s",
                         path, dlerror());
                return;
        }
        m = entry(&host);
        if (!m || strcmp(m->version, CASFS_VERSION) != 0 ||
            m->objstore_size != sizeof(cas_objstore)) {
                snprintf(load_error, sizeof(load_error),
                         "cannot load the remote transport %s: not of this build of casfs "
                         "(module %s, program %s)",
                         path, m ? m->version : "?", CASFS_VERSION);
                return;
        }
        cas_log_debug("objstore: loaded %s", path);
        loaded = m;
}

int objstore_module_get(const cas_objstore *os, const objstore_module **ret)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, load);
        if (!loaded)
                return objstore_error(os, -ELIBACC, "open", NULL, "%s",
                                      load_error[0] ? load_error :
                                                      "cannot load the remote transport");
        *ret = loaded;
        return 0;
}
