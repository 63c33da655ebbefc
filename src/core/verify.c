/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <sys/mman.h>

#include "log.h"
#include "macro.h"
#include "outboard.h"
#include "verify.h"

#define HUGE_PAGE (2u * 1024 * 1024)

void *cas_direct_buffer(size_t n)
{
        void *b;

        if (n < HUGE_PAGE / 2) /* not worth a huge page */
                return posix_memalign(&b, CAS_DIRECT_ALIGN, n) == 0 ? b : NULL;
        size_t whole = (n + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
        if (posix_memalign(&b, HUGE_PAGE, whole) != 0)
                return NULL;
        (void)madvise(b, whole, MADV_HUGEPAGE); /* a hint: ordinary pages otherwise */
        return b;
}

int cas_verify_buffer(const void *data, size_t n, const cas_digest *d)
{
        cas_digest got;

        cas_digest_of(data, n, &got);
        return cas_digest_eq(&got, d) ? 0 : -EBADMSG;
}

int cas_verify_blob(cas_blob_reader *rd, const cas_digest *d, uint64_t size, uint8_t *buf, size_t bufsize,
                    uint8_t **ret_outboard)
{
        _cleanup_free_ uint8_t *outboard = NULL;
        cas_tree_hasher h;
        cas_digest got;
        int r = 0;

        cas_tree_hasher_init(&h);
        for (uint64_t off = 0; off < size && r >= 0;) {
                ssize_t n = cas_blob_reader_pread(rd, buf, bufsize, off);
                if (n <= 0)
                        r = n < 0 ? (int)n : -EIO;
                else
                        r = cas_tree_hasher_update(&h, buf, (size_t)n);
                off += n > 0 ? (uint64_t)n : 0;
        }
        if (r >= 0)
                r = cas_tree_hasher_final(&h, &got, ret_outboard ? &outboard : NULL);
        cas_tree_hasher_done(&h);
        if (r < 0)
                return r;
        if (!cas_digest_eq(&got, d))
                return -EBADMSG;
        if (ret_outboard)
                *ret_outboard = TAKE_PTR(outboard);
        return 0;
}

static void blob_error(const cas_digest *d, const char *what)
{
        char text[CAS_DIGEST_TEXT_MAX];
        cas_log(CAS_LOG_ERR, "blob %s: %s", cas_digest_to_text(d, text), what);
}

int cas_verify_outboard(cas_blobstore *bs, cas_blob_reader *rd, const cas_digest *d, uint64_t size, uint8_t *buf,
                        size_t bufsize, uint8_t **ret)
{
        uint8_t *ob = NULL;
        int r;

        r = cas_blobstore_get_outboard(bs, d, size, &ob);
        if (r >= 0 && !cas_outboard_check(ob, size, d)) {
                blob_error(d, "its outboard does not match the digest; checking the blob whole");
                free(ob);
                ob = NULL;
                r = -EBADMSG;
        } else if (r == -EBADMSG)
                blob_error(d, "its outboard has the wrong size; checking the blob whole");
        /* stored without one (or with a damaged one): hashing the blob whole yields it */
        if (r < 0 && r != -ENOMEM)
                r = cas_verify_blob(rd, d, size, buf, bufsize, &ob);
        if (r < 0)
                return r;
        *ret = ob;
        return 0;
}

size_t cas_verify_span(uint64_t size, uint64_t off, size_t n, uint64_t *ret_start)
{
        uint64_t start = (off >> CAS_OUTBOARD_GROUP_SHIFT) << CAS_OUTBOARD_GROUP_SHIFT;
        uint64_t end = MIN(size, ((off + n + CAS_OUTBOARD_GROUP - 1) >> CAS_OUTBOARD_GROUP_SHIFT)
                                         << CAS_OUTBOARD_GROUP_SHIFT);

        *ret_start = start;
        return (size_t)(end - start);
}

int cas_verify_read_groups(cas_blob_reader *rd, const uint8_t *ob, uint64_t size, uint64_t start, size_t span,
                           uint8_t *buf, size_t room, bool direct, uint64_t *ret_bad_group)
{
        uint64_t first = start >> CAS_OUTBOARD_GROUP_SHIFT, end = start + span;

        ssize_t got = cas_verify_pread(rd, buf, room, span, start, direct);
        if (got < 0 || (size_t)got != span)
                return got < 0 ? (int)got : -EIO;
        for (uint64_t g = first; ob && (g << CAS_OUTBOARD_GROUP_SHIFT) < end; g++) {
                uint64_t at = (g - first) << CAS_OUTBOARD_GROUP_SHIFT;
                size_t len = (size_t)MIN(CAS_OUTBOARD_GROUP, size - (g << CAS_OUTBOARD_GROUP_SHIFT));
                if (!cas_outboard_check_group(ob, size, g, buf + at, len)) {
                        *ret_bad_group = g;
                        return -EBADMSG;
                }
        }
        return 0;
}

ssize_t cas_verify_pread(cas_blob_reader *rd, uint8_t *buf, size_t room, size_t n, uint64_t off, bool direct)
{
        size_t whole = CAS_DIRECT_LEN(n);
        int dfd;

        if (direct && ((uintptr_t)buf | off) % CAS_DIRECT_ALIGN == 0 && whole <= room &&
            (dfd = cas_blob_reader_direct_fd(rd)) >= 0) {
                ssize_t got = pread(dfd, buf, whole, (off_t)off);
                if (got >= 0)
                        return (size_t)got > n ? (ssize_t)n : got;
                /* EINVAL: the file system wants another alignment; read it the usual way */
        }
        return cas_blob_reader_pread(rd, buf, n, off);
}
