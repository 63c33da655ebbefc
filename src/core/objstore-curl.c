/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "objstore-internal.h"

int objstore_curl_open(cas_objstore *os)
{
        return 0;
}

int objstore_multi_new(cas_objstore *os, objstore_multi **ret)
{
        return -EOPNOTSUPP;
}

int objstore_multi_queue(objstore_multi *m, objstore_xfer_op op, const char *key,
                         size_t max_size, void *buf, size_t len, cas_objstore_done_cb cb,
                         void *userdata)
{
        free(buf);
        return -EOPNOTSUPP;
}

int objstore_multi_wait(objstore_multi *m)
{
        return -EOPNOTSUPP;
}

objstore_multi *objstore_multi_free(objstore_multi *m)
{
        return NULL;
}
