/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Root records: a Node decodes to something valid, or is refused. */
#include <stdlib.h>

#include "castore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cas_node *n = NULL;

        if (cas_node_decode(data, size, &n, NULL) == 0) {
                if (cas_node_validate(n, true, NULL) < 0)
                        abort();
                uint8_t *buf;
                size_t len;
                if (cas_node_encode(n, &buf, &len) < 0)
                        abort();
                free(buf);
                free(n);
        }
        return 0;
}
