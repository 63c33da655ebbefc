/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What several unit tests build: the nodes of a directory (a directory, a
 * file), a damaged object in a file:// store. */

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "castore.h"
#include "layout.h"
#include "tests.h"

static inline cas_node dnode(const char *name, const cas_digest *d, uint64_t size)
{
        return (cas_node){.type = CAS_NODE_DIRECTORY, .name = name, .name_len = (uint32_t)strlen(name),
                          .digest = *d, .size = size};
}

static inline cas_node fnode(const char *name, const cas_digest *d, uint64_t size, bool executable)
{
        return (cas_node){.type = CAS_NODE_FILE, .name = name, .name_len = (uint32_t)strlen(name),
                          .digest = *d, .size = size, .executable = executable};
}

/* Overwrites the object of d (prefix: CAS_LAYOUT_CHUNKS, ...) in the layout
 * under the folder root with four bytes of junk. */
static inline void damage_object(const char *root, const char *prefix, const cas_digest *d)
{
        char key[CAS_LAYOUT_KEY_MAX], path[256];
        cas_layout_key(prefix, d, key);
        snprintf(path, sizeof(path), "%s/%s", root, key);
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        ASSERT(fd >= 0);
        ASSERT(write(fd, "junk", 4) == 4);
        close(fd);
}
