/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "macro.h"

int cli_log_default_path(char **ret)
{
        if (geteuid() != 0)
                return cas_xdg_path("XDG_STATE_HOME", ".local/state", "casfs/casfs.log", ret);
        *ret = strdup(CLI_LOG_DEFAULT_ROOT);
        return *ret ? 0 : -ENOMEM;
}

/* Creates the folders above path (not path itself), as mkdir -p would. */
static int mkdir_above(const char *path)
{
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; (p = strchr(p, '/')); p++) {
                *p = 0;
                if (mkdir(copy, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        return 0;
}

int cli_log_check(const char *cmd, const char *path, char **ret_absolute)
{
        _cleanup_free_ char *abs = NULL;
        char cwd[PATH_MAX];

        if (path[0] == '/')
                abs = strdup(path);
        else if (!getcwd(cwd, sizeof(cwd)))
                return cas_log_errno(CAS_LOG_ERR, -errno, "%s: --log %s: %s", cmd, path, strerror(errno));
        else if (asprintf(&abs, "%s/%s", cwd, path) < 0)
                abs = NULL;
        if (!abs)
                return -ENOMEM;
        int fd = open(abs, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return cas_log_errno(CAS_LOG_ERR, -errno, "%s: --log %s: %s", cmd, path, strerror(errno));
        close(fd);
        *ret_absolute = TAKE_PTR(abs);
        return 0;
}

int cli_log_choose(const char *cmd, const char *path, bool background)
{
        _cleanup_free_ char *fallback = NULL;
        int r;

        if (!path && !background)
                return 0; /* stderr, as it is */
        if (!path && cas_log_syslog_available()) {
                cas_log_to_syslog();
                return 0;
        }
        if (!path) {
                /* no syslog to take the lines: never drop them silently */
                r = cli_log_default_path(&fallback);
                if (r < 0)
                        return cas_log_errno(CAS_LOG_ERR, r, "%s: no syslog and nowhere to log: give --log FILE",
                                             cmd);
                r = mkdir_above(fallback);
                if (r < 0)
                        return cas_log_errno(CAS_LOG_ERR, r, "%s: no syslog, and %s: %s; give --log FILE", cmd,
                                             fallback, strerror(-r));
                path = fallback;
        }
        r = cas_log_to_file(path);
        if (r < 0)
                return cas_log_errno(CAS_LOG_ERR, r, "%s: cannot log to %s: %s", cmd, path, strerror(-r));
        return 0;
}
