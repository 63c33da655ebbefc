/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* getxattr/listxattr with a buffer of a given size, for the tests of ERANGE:
 *   xattr-probe get PATH NAME SIZE    prints the value, or the errno's name
 *   xattr-probe list PATH SIZE        prints the names, one per line, or the errno's name */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static const char *errname(int e)
{
        switch (e) {
        case ERANGE:
                return "ERANGE";
        case ENODATA:
                return "ENODATA";
        case ENOTSUP:
                return "ENOTSUP";
        default:
                return strerror(e);
        }
}

int main(int argc, char **argv)
{
        char buf[4096];
        ssize_t n;

        if (argc == 5 && strcmp(argv[1], "get") == 0) {
                size_t size = (size_t)atoi(argv[4]);
                n = getxattr(argv[2], argv[3], size ? buf : NULL, size);
                if (n < 0)
                        printf("%s\n", errname(errno));
                else if (size == 0)
                        printf("size %zd\n", n);
                else
                        printf("%.*s\n", (int)n, buf);
                return 0;
        }
        if (argc == 4 && strcmp(argv[1], "list") == 0) {
                size_t size = (size_t)atoi(argv[3]);
                n = listxattr(argv[2], size ? buf : NULL, size);
                if (n < 0)
                        printf("%s\n", errname(errno));
                else if (size == 0)
                        printf("size %zd\n", n);
                else
                        for (char *p = buf; p < buf + n; p += strlen(p) + 1)
                                printf("%s\n", p);
                return 0;
        }
        fprintf(stderr, "usage: xattr-probe get PATH NAME SIZE | list PATH SIZE\n");
        return 2;
}
