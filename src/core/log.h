/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One logging function for the whole program, with levels and a sink the
 * program chooses: stderr in the foreground (the default), syslog or a file
 * for a daemon in the background. The library never decides where lines go. */

#include <stdarg.h>

#include "macro.h"

typedef enum cas_log_level {
        CAS_LOG_ERR = 3, /* the numbers are syslog's priorities */
        CAS_LOG_WARNING = 4,
        CAS_LOG_NOTICE = 5,
        CAS_LOG_INFO = 6,
        CAS_LOG_DEBUG = 7,
} cas_log_level;

/* A sink gets one formatted line without its trailing newline. */
typedef void (*cas_log_sink)(cas_log_level level, const char *line, void *userdata);

/* Lines above max_level are dropped before they are formatted. */
void cas_log_set_max_level(cas_log_level max_level);
cas_log_level cas_log_get_max_level(void);
void cas_log_set_sink(cas_log_sink sink, void *userdata);

/* The sinks the program may choose from. stderr: "casfs: LINE" (warnings as
 * "casfs: warning: LINE"). syslog: tag "casfs", facility daemon. file: the
 * path opened for appending, each line stamped with the time; -errno when
 * it cannot be opened (the sink is then left as it was). */
void cas_log_to_stderr(void);
void cas_log_to_syslog(void);
int cas_log_to_file(const char *path);
/* Whether a syslog socket exists to take lines (/dev/log). */
int cas_log_syslog_available(void);

void cas_logv(cas_log_level level, const char *fmt, va_list ap) _printf_(2, 0);
void cas_log(cas_log_level level, const char *fmt, ...) _printf_(2, 3);
/* Logs and returns error (a negative errno), so that a failure is logged and
 * returned in one line: return cas_log_errno(CAS_LOG_ERR, r, "...: %s", ...). */
int cas_log_errno(cas_log_level level, int error, const char *fmt, ...) _printf_(3, 4);

/* Formats nothing unless debugging. */
#define cas_log_debug(...)                                                                         \
        do {                                                                                       \
                if (_unlikely_(cas_log_get_max_level() >= CAS_LOG_DEBUG))                          \
                        cas_log(CAS_LOG_DEBUG, __VA_ARGS__);                                       \
        } while (0)
