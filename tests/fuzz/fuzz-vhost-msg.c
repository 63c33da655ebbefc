/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vhost-user message checker: any bytes (the first byte picks the number
 * of file descriptors that came with them). */
#include <stdint.h>
#include <stdlib.h>

#include "vhost-user.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        (void)cas_vhost_check_message(data + 1, size - 1, data[0] % 10);
        return 0;
}
