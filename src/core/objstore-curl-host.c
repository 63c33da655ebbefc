/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In the module only: the functions with state in the program that the
 * transport calls, forwarded to the program's own (objstore-module.h), so
 * that an error line the transport leaves is the one
 * cas_objstore_last_error() returns and its debug lines go where the
 * program's log goes. */
#include "objstore-module.h"

int objstore_error(const cas_objstore *os, int error, const char *op, const char *key,
                   const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        error = objstore_curl_host->verror(os, error, op, key, fmt, ap);
        va_end(ap);
        return error;
}

void objstore_set_last_error(const char *line)
{
        objstore_curl_host->set_last_error(line);
}

const char *cas_objstore_last_error(void)
{
        return objstore_curl_host->last_error();
}

cas_log_level cas_log_get_max_level(void)
{
        return objstore_curl_host->log_get_max_level();
}

void cas_log(cas_log_level level, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        objstore_curl_host->logv(level, fmt, ap);
        va_end(ap);
}
