/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static void stderr_sink(cas_log_level level, const char *line, void *userdata);

/* Set by the program before its threads start; read by every thread after. */
static cas_log_level max_level = CAS_LOG_INFO;
static cas_log_sink sink = stderr_sink;
static void *sink_userdata;
static FILE *log_file; /* the file sink's stream, line-buffered */

void cas_log_set_max_level(cas_log_level level)
{
        max_level = level;
}

cas_log_level cas_log_get_max_level(void)
{
        return max_level;
}

void cas_log_set_sink(cas_log_sink s, void *userdata)
{
        sink = s ?: stderr_sink;
        sink_userdata = userdata;
}

static void stderr_sink(cas_log_level level, const char *line, void *userdata)
{
        /* one write per line, so that lines of several threads do not mix */
        fprintf(stderr, "casfs: %s%s\n", level == CAS_LOG_WARNING ? "warning: " : "", line);
}

void cas_log_to_stderr(void)
{
        cas_log_set_sink(stderr_sink, NULL);
}

static void syslog_sink(cas_log_level level, const char *line, void *userdata)
{
        syslog((int)level, "%s", line);
}

void cas_log_to_syslog(void)
{
        openlog("casfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        cas_log_set_sink(syslog_sink, NULL);
}

int cas_log_syslog_available(void)
{
        struct stat st;
        return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

static void file_sink(cas_log_level level, const char *line, void *userdata)
{
        static const char *const names[] = {
                [CAS_LOG_ERR] = "error", [CAS_LOG_WARNING] = "warning", [CAS_LOG_NOTICE] = "notice",
                [CAS_LOG_INFO] = "info", [CAS_LOG_DEBUG] = "debug",
        };
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(log_file, "%s.%03ldZ casfs[%d]: %s: %s\n", stamp, ts.tv_nsec / 1000000, (int)getpid(),
                names[level], line);
}

int cas_log_to_file(const char *path)
{
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return -errno;
        FILE *f = fdopen(fd, "ae");
        if (!f) {
                int r = -errno;
                close(fd);
                return r;
        }
        setvbuf(f, NULL, _IOLBF, 0);
        if (log_file)
                fclose(log_file);
        log_file = f;
        cas_log_set_sink(file_sink, NULL);
        return 0;
}

void cas_logv(cas_log_level level, const char *fmt, va_list ap)
{
        char line[2048];

        if (level > max_level)
                return;
        int saved = errno;
        vsnprintf(line, sizeof(line), fmt, ap);
        sink(level, line, sink_userdata);
        errno = saved;
}

void cas_log(cas_log_level level, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        cas_logv(level, fmt, ap);
        va_end(ap);
}

int cas_log_errno(cas_log_level level, int error, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        cas_logv(level, fmt, ap);
        va_end(ap);
        return error;
}
