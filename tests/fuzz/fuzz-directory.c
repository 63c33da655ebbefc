/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Directory decoding and validation: whatever decodes must re-encode to the
 * same bytes (and so the same digest). */
#include <stdlib.h>

#include "castore.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cas_directory *d = NULL;
        cas_error e;

        if (cas_directory_decode(data, size, &d, &e) == 0) {
                uint8_t *again;
                size_t len;
                uint64_t n;
                if (cas_directory_encode(d, &again, &len) < 0)
                        abort();
                if (len != size || (size && memcmp(again, data, size) != 0))
                        abort(); /* accepted bytes that are not canonical */
                if (cas_directory_validate(d, NULL) < 0 || cas_directory_size(d, &n) < 0)
                        abort();
                for (size_t i = 0; i < d->n_nodes; i++)
                        if (cas_directory_find(d, d->nodes[i].name, d->nodes[i].name_len) != &d->nodes[i])
                                abort();
                free(again);
                free(d);
        }
        return 0;
}
