/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cli.h"

int cmd_virtiofs(int argc, char **argv)
{
        log_error("virtiofs: not available in this build");
        return 1;
}
