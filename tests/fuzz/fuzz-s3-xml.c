/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Answers of an S3 server: a ListObjectsV2 page yields keys that are
 * strings no longer than the bytes they came from, or is refused; an error
 * answer's <Code> is found or not, within the input. */
#include <stdlib.h>
#include <string.h>

#include "objstore-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int entry(const char *key, uint64_t size, void *userdata)
{
        size_t max = *(size_t *)userdata;

        if (strlen(key) > max)
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *token = NULL, *code;
        /* no NUL at the end: the parsers must keep to the length */
        char *xml = malloc(size ?: 1);

        if (!xml)
                return 0;
        memcpy(xml, data, size);
        if (s3_parse_list(xml, size, entry, &size, &token) == 0) {
                if (token && (!*token || strlen(token) > size))
                        abort();
        } else if (token) {
                abort();
        }
        free(token);
        code = s3_xml_element(xml, size, "Code");
        if (code && strlen(code) > size)
                abort();
        free(code);
        free(xml);
        return 0;
}
