/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The entry point of the libcurl transport module (objstore-module.h). */
#include "objstore-module.h"

static const objstore_module module = {
        .version = CASFS_VERSION,
        .objstore_size = sizeof(cas_objstore),
        .open = objstore_curl_open,
        .multi_new = objstore_multi_new,
        .multi_queue = objstore_multi_queue,
        .multi_wait = objstore_multi_wait,
        .multi_free = objstore_multi_free,
};

const objstore_host *objstore_curl_host;

/* exported from the shared object, whatever -fvisibility says */
__attribute__((visibility("default"))) const objstore_module *
casfs_objstore_curl_module(const objstore_host *host);

const objstore_module *casfs_objstore_curl_module(const objstore_host *host)
{
        objstore_curl_host = host;
        return &module;
}
