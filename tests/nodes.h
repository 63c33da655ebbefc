/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Nodes of the directories the tests build: a directory, a file. */

#include <stdbool.h>
#include <string.h>

#include "castore.h"

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
