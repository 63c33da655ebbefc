/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cli.h"

int cmd_mount(int argc, char **argv)
{
        log_error("mount: not available in this build");
        return 1;
}
