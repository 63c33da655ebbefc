/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "castore.h"
#include "castore.pb-c.h"
#include "macro.h"

typedef Tvix__Castore__V1__Directory PbDirectory;
typedef Tvix__Castore__V1__DirectoryNode PbDirectoryNode;
typedef Tvix__Castore__V1__FileNode PbFileNode;
typedef Tvix__Castore__V1__SymlinkNode PbSymlinkNode;
typedef Tvix__Castore__V1__Node PbNode;

static const char *const error_strings[_CAS_ERR_MAX] = {
        [CAS_ERR_NONE] = "no error",
        [CAS_ERR_DECODE] = "not a valid protobuf message",
        [CAS_ERR_NONCANONICAL] = "not in canonical encoding",
        [CAS_ERR_NAME_EMPTY] = "empty name",
        [CAS_ERR_NAME_DOT] = "name is '.' or '..'",
        [CAS_ERR_NAME_TOO_LONG] = "name longer than 255 bytes",
        [CAS_ERR_NAME_NUL] = "name contains a NUL byte",
        [CAS_ERR_NAME_SLASH] = "name contains '/'",
        [CAS_ERR_TARGET_EMPTY] = "empty symlink target",
        [CAS_ERR_TARGET_TOO_LONG] = "symlink target longer than 4095 bytes",
        [CAS_ERR_TARGET_NUL] = "symlink target contains a NUL byte",
        [CAS_ERR_UNSORTED] = "entries not sorted by name",
        [CAS_ERR_DUPLICATE] = "duplicate name",
        [CAS_ERR_DIGEST_LENGTH] = "digest is not 32 bytes",
        [CAS_ERR_SIZE_OVERFLOW] = "size sum overflows 64 bits",
        [CAS_ERR_SIZE_MISMATCH] = "directory size does not match the referenced directory",
        [CAS_ERR_DANGLING] = "reference to a directory that is not present",
        [CAS_ERR_ROOTS] = "closure does not have exactly one root directory",
        [CAS_ERR_NODE_TYPE] = "node of no known type",
};

const char *cas_error_code_string(cas_error_code code)
{
        if (code < 0 || code >= _CAS_ERR_MAX || !error_strings[code])
                return "unknown error";
        return error_strings[code];
}

char *cas_error_format(const cas_error *e, char *buf, size_t n)
{
        if (e->detail[0])
                snprintf(buf, n, "%s: %s", cas_error_code_string(e->code), e->detail);
        else
                snprintf(buf, n, "%s", cas_error_code_string(e->code));
        return buf;
}

/* Renders a byte string for a message: printable ASCII as is, the rest escaped. */
static void escape(char *out, size_t outsz, const char *s, size_t len)
{
        size_t o = 0;

        for (size_t i = 0; i < len && o + 5 < outsz; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c < 0x7f && c != '\\')
                        out[o++] = (char)c;
                else
                        o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
        }
        if (o + 5 >= outsz && outsz > 4)
                memcpy(out + outsz - 4, "...", 3), o = outsz - 1;
        out[MIN(o, outsz - 1)] = 0;
}

static int fail(cas_error *e, cas_error_code code, const char *s, size_t len)
{
        if (e) {
                e->code = code;
                e->detail[0] = 0;
                if (s) {
                        char esc[sizeof(e->detail) - 2];
                        escape(esc, sizeof(esc), s, len);
                        snprintf(e->detail, sizeof(e->detail), "'%s'", esc);
                }
        }
        return -EBADMSG;
}

int cas_name_validate(const char *name, size_t len, cas_error *ret_err)
{
        if (len == 0)
                return fail(ret_err, CAS_ERR_NAME_EMPTY, NULL, 0);
        if (len > CAS_NAME_MAX)
                return fail(ret_err, CAS_ERR_NAME_TOO_LONG, name, MIN(len, 40));
        if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
                return fail(ret_err, CAS_ERR_NAME_DOT, name, len);
        if (memchr(name, 0, len))
                return fail(ret_err, CAS_ERR_NAME_NUL, name, len);
        if (memchr(name, '/', len))
                return fail(ret_err, CAS_ERR_NAME_SLASH, name, len);
        return 0;
}

int cas_target_validate(const char *target, size_t len, cas_error *ret_err)
{
        if (len == 0)
                return fail(ret_err, CAS_ERR_TARGET_EMPTY, NULL, 0);
        if (len > CAS_TARGET_MAX)
                return fail(ret_err, CAS_ERR_TARGET_TOO_LONG, target, 40);
        if (memchr(target, 0, len))
                return fail(ret_err, CAS_ERR_TARGET_NUL, target, len);
        return 0;
}

int cas_node_validate(const cas_node *n, bool name_optional, cas_error *ret_err)
{
        int r;

        if (!(name_optional && n->name_len == 0)) {
                r = cas_name_validate(n->name, n->name_len, ret_err);
                if (r < 0)
                        return r;
        }
        switch (n->type) {
        case CAS_NODE_DIRECTORY:
        case CAS_NODE_FILE:
                return 0;
        case CAS_NODE_SYMLINK:
                return cas_target_validate(n->target, n->target_len, ret_err);
        }
        return fail(ret_err, CAS_ERR_NODE_TYPE, NULL, 0);
}

int cas_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
        int c = memcmp(a, b, MIN(alen, blen));
        if (c != 0)
                return c;
        return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int node_cmp(const cas_node *a, const cas_node *b)
{
        return cas_name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* Walks the three sorted lists in merged name order. */
typedef struct merge_iter {
        const cas_directory *d;
        size_t i[3];
} merge_iter;

static const cas_node *merge_next(merge_iter *it, int *ret_list)
{
        const cas_node *lists[3] = {it->d->directories, it->d->files, it->d->symlinks};
        const size_t n[3] = {it->d->n_directories, it->d->n_files, it->d->n_symlinks};
        const cas_node *best = NULL;
        int which = -1;

        for (int l = 0; l < 3; l++) {
                if (it->i[l] >= n[l])
                        continue;
                const cas_node *c = &lists[l][it->i[l]];
                if (!best || node_cmp(c, best) < 0) {
                        best = c;
                        which = l;
                }
        }
        if (best)
                it->i[which]++;
        if (ret_list)
                *ret_list = which;
        return best;
}

void cas_directory_name_order(const cas_directory *d, uint32_t *order)
{
        merge_iter it = {.d = d};
        const cas_node *n;
        size_t k = 0;

        while ((n = merge_next(&it, NULL)))
                order[k++] = (uint32_t)(n - d->nodes);
}

int cas_directory_size(const cas_directory *d, uint64_t *ret)
{
        uint64_t sum = d->n_nodes;

        for (size_t i = 0; i < d->n_directories; i++)
                if (__builtin_add_overflow(sum, d->directories[i].size, &sum))
                        return -EOVERFLOW;
        *ret = sum;
        return 0;
}

int cas_directory_validate(const cas_directory *d, cas_error *ret_err)
{
        const cas_node *lists[3] = {d->directories, d->files, d->symlinks};
        const size_t n[3] = {d->n_directories, d->n_files, d->n_symlinks};
        uint64_t size;
        int r;

        for (int l = 0; l < 3; l++)
                for (size_t i = 0; i < n[l]; i++) {
                        const cas_node *c = &lists[l][i];
                        r = cas_node_validate(c, false, ret_err);
                        if (r < 0)
                                return r;
                        if (i > 0 && node_cmp(&lists[l][i - 1], c) >= 0)
                                return fail(ret_err,
                                            node_cmp(&lists[l][i - 1], c) == 0 ? CAS_ERR_DUPLICATE
                                                                               : CAS_ERR_UNSORTED,
                                            c->name, c->name_len);
                }

        merge_iter it = {.d = d};
        const cas_node *prev = NULL, *c;
        while ((c = merge_next(&it, NULL))) {
                if (prev && node_cmp(prev, c) == 0)
                        return fail(ret_err, CAS_ERR_DUPLICATE, c->name, c->name_len);
                prev = c;
        }

        if (cas_directory_size(d, &size) < 0)
                return fail(ret_err, CAS_ERR_SIZE_OVERFLOW, NULL, 0);
        return 0;
}

/* Layout of one block: header, nodes, then the strings (each NUL-terminated). */
static cas_directory *directory_alloc(size_t n_dirs, size_t n_files, size_t n_links, size_t strings)
{
        size_t n = n_dirs + n_files + n_links;
        size_t sz;
        cas_directory *d;

        if (__builtin_mul_overflow(n, sizeof(cas_node), &sz) ||
            __builtin_add_overflow(sz, sizeof(cas_directory) + strings, &sz))
                return NULL;
        d = calloc(1, sz);
        if (!d)
                return NULL;
        d->n_nodes = n;
        d->n_directories = n_dirs;
        d->n_files = n_files;
        d->n_symlinks = n_links;
        d->directories = d->nodes;
        d->files = d->nodes + n_dirs;
        d->symlinks = d->nodes + n_dirs + n_files;
        return d;
}

static char *directory_strings(cas_directory *d)
{
        return (char *)(d->nodes + d->n_nodes);
}

static const char *copy_string(char **pool, const void *s, size_t len)
{
        char *p = *pool;
        if (len)
                memcpy(p, s, len);
        p[len] = 0;
        *pool += len + 1;
        return p;
}

static int bytes_to_digest(const ProtobufCBinaryData *b, cas_digest *ret, cas_error *e,
                           const ProtobufCBinaryData *name)
{
        if (b->len != CAS_DIGEST_SIZE)
                return fail(e, CAS_ERR_DIGEST_LENGTH, (const char *)name->data, name->len);
        memcpy(ret->bytes, b->data, CAS_DIGEST_SIZE);
        return 0;
}

/* What every node of the message has: its type and name (copied into the
 * pool); and, but for a symlink (digest NULL), its size and digest. */
static int node_from_pb(cas_node *n, cas_node_type type, const ProtobufCBinaryData *name, uint64_t size,
                        const ProtobufCBinaryData *digest, char **pool, cas_error *e)
{
        n->type = type;
        n->name = copy_string(pool, name->data, name->len);
        n->name_len = (uint32_t)name->len;
        if (!digest)
                return 0;
        n->size = size;
        return bytes_to_digest(digest, &n->digest, e, name);
}

int cas_directory_decode(const void *buf, size_t len, cas_directory **ret, cas_error *ret_err)
{
        PbDirectory *m;
        cas_directory *d = NULL;
        size_t strings = 0;
        int r;

        m = tvix__castore__v1__directory__unpack(NULL, len, buf);
        if (!m)
                return fail(ret_err, CAS_ERR_DECODE, NULL, 0);

        r = fail(ret_err, CAS_ERR_DECODE, NULL, 0);
        if (m->base.n_unknown_fields > 0)
                goto finish;
        for (size_t i = 0; i < m->n_directories; i++) {
                if (m->directories[i]->base.n_unknown_fields > 0)
                        goto finish;
                strings += m->directories[i]->name.len + 1;
        }
        for (size_t i = 0; i < m->n_files; i++) {
                if (m->files[i]->base.n_unknown_fields > 0)
                        goto finish;
                strings += m->files[i]->name.len + 1;
        }
        for (size_t i = 0; i < m->n_symlinks; i++) {
                if (m->symlinks[i]->base.n_unknown_fields > 0)
                        goto finish;
                strings += m->symlinks[i]->name.len + m->symlinks[i]->target.len + 2;
        }

        d = directory_alloc(m->n_directories, m->n_files, m->n_symlinks, strings);
        if (!d) {
                r = -ENOMEM;
                goto finish;
        }
        char *pool = directory_strings(d);
        for (size_t i = 0; i < m->n_directories; i++) {
                const PbDirectoryNode *p = m->directories[i];
                r = node_from_pb(&d->directories[i], CAS_NODE_DIRECTORY, &p->name, p->size, &p->digest,
                                 &pool, ret_err);
                if (r < 0)
                        goto finish;
        }
        for (size_t i = 0; i < m->n_files; i++) {
                const PbFileNode *p = m->files[i];
                d->files[i].executable = p->executable;
                r = node_from_pb(&d->files[i], CAS_NODE_FILE, &p->name, p->size, &p->digest, &pool, ret_err);
                if (r < 0)
                        goto finish;
        }
        for (size_t i = 0; i < m->n_symlinks; i++) {
                const PbSymlinkNode *p = m->symlinks[i];
                cas_node *n = &d->symlinks[i];
                (void)node_from_pb(n, CAS_NODE_SYMLINK, &p->name, 0, NULL, &pool, ret_err);
                n->target = copy_string(&pool, p->target.data, p->target.len);
                n->target_len = (uint32_t)p->target.len;
        }
        /* Lengths beyond 32 bits can not be valid names; catch truncation above. */
        for (size_t i = 0; i < d->n_nodes; i++)
                if (d->nodes[i].name_len > CAS_NAME_MAX + 1 || d->nodes[i].target_len > CAS_TARGET_MAX + 1) {
                        r = fail(ret_err,
                                 d->nodes[i].name_len > CAS_NAME_MAX + 1 ? CAS_ERR_NAME_TOO_LONG
                                                                         : CAS_ERR_TARGET_TOO_LONG,
                                 d->nodes[i].name, MIN(d->nodes[i].name_len, 40));
                        goto finish;
                }

        r = cas_directory_validate(d, ret_err);
        if (r < 0)
                goto finish;

        /* Canonical form: re-encoding must give back exactly the input. */
        {
                _cleanup_free_ uint8_t *again = NULL;
                size_t again_len;
                r = cas_directory_encode(d, &again, &again_len);
                if (r < 0)
                        goto finish;
                if (again_len != len || (len > 0 && memcmp(again, buf, len) != 0)) {
                        r = fail(ret_err, CAS_ERR_NONCANONICAL, NULL, 0);
                        goto finish;
                }
        }
        *ret = TAKE_PTR(d);
        r = 0;
finish:
        free(d);
        tvix__castore__v1__directory__free_unpacked(m, NULL);
        return r;
}

static ProtobufCBinaryData bin(const void *p, size_t n)
{
        return (ProtobufCBinaryData){.len = n, .data = (uint8_t *)(uintptr_t)p};
}

int cas_directory_encode(const cas_directory *d, uint8_t **ret, size_t *ret_len)
{
        PbDirectory m = TVIX__CASTORE__V1__DIRECTORY__INIT;
        _cleanup_free_ PbDirectoryNode *dn = NULL;
        _cleanup_free_ PbFileNode *fn = NULL;
        _cleanup_free_ PbSymlinkNode *sn = NULL;
        _cleanup_free_ void **ptrs = NULL;
        uint8_t *out;
        size_t len;

        if (d->n_nodes == 0) {
                *ret = NULL;
                *ret_len = 0;
                return 0;
        }
        dn = calloc(d->n_directories ?: 1, sizeof(*dn));
        fn = calloc(d->n_files ?: 1, sizeof(*fn));
        sn = calloc(d->n_symlinks ?: 1, sizeof(*sn));
        ptrs = calloc(d->n_nodes, sizeof(void *));
        if (!dn || !fn || !sn || !ptrs)
                return -ENOMEM;

        for (size_t i = 0; i < d->n_directories; i++) {
                const cas_node *n = &d->directories[i];
                dn[i] = (PbDirectoryNode)TVIX__CASTORE__V1__DIRECTORY_NODE__INIT;
                dn[i].name = bin(n->name, n->name_len);
                dn[i].digest = bin(n->digest.bytes, CAS_DIGEST_SIZE);
                dn[i].size = n->size;
                ptrs[i] = &dn[i];
        }
        for (size_t i = 0; i < d->n_files; i++) {
                const cas_node *n = &d->files[i];
                fn[i] = (PbFileNode)TVIX__CASTORE__V1__FILE_NODE__INIT;
                fn[i].name = bin(n->name, n->name_len);
                fn[i].digest = bin(n->digest.bytes, CAS_DIGEST_SIZE);
                fn[i].size = n->size;
                fn[i].executable = n->executable;
                ptrs[d->n_directories + i] = &fn[i];
        }
        for (size_t i = 0; i < d->n_symlinks; i++) {
                const cas_node *n = &d->symlinks[i];
                sn[i] = (PbSymlinkNode)TVIX__CASTORE__V1__SYMLINK_NODE__INIT;
                sn[i].name = bin(n->name, n->name_len);
                sn[i].target = bin(n->target, n->target_len);
                ptrs[d->n_directories + d->n_files + i] = &sn[i];
        }
        m.n_directories = d->n_directories;
        m.directories = (PbDirectoryNode **)ptrs;
        m.n_files = d->n_files;
        m.files = (PbFileNode **)(ptrs + d->n_directories);
        m.n_symlinks = d->n_symlinks;
        m.symlinks = (PbSymlinkNode **)(ptrs + d->n_directories + d->n_files);

        len = tvix__castore__v1__directory__get_packed_size(&m);
        out = malloc(len ?: 1);
        if (!out)
                return -ENOMEM;
        tvix__castore__v1__directory__pack(&m, out);
        *ret = out;
        *ret_len = len;
        return 0;
}

int cas_directory_digest(const cas_directory *d, cas_digest *ret)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = cas_directory_encode(d, &buf, &len);
        if (r < 0)
                return r;
        cas_digest_of(buf, len, ret);
        return 0;
}

static int qsort_node_cmp(const void *a, const void *b)
{
        return node_cmp(a, b);
}

int cas_directory_build(const cas_node *nodes, size_t n, cas_directory **ret)
{
        size_t counts[4] = {0}, strings = 0;
        cas_directory *d;

        for (size_t i = 0; i < n; i++) {
                if (nodes[i].type < CAS_NODE_DIRECTORY || nodes[i].type > CAS_NODE_SYMLINK)
                        return -EINVAL;
                counts[nodes[i].type]++;
                strings += nodes[i].name_len + 1;
                if (nodes[i].type == CAS_NODE_SYMLINK)
                        strings += nodes[i].target_len + 1;
        }
        d = directory_alloc(counts[CAS_NODE_DIRECTORY], counts[CAS_NODE_FILE],
                            counts[CAS_NODE_SYMLINK], strings);
        if (!d)
                return -ENOMEM;

        char *pool = directory_strings(d);
        size_t k[4] = {0};
        for (size_t i = 0; i < n; i++) {
                const cas_node *s = &nodes[i];
                cas_node *t = s->type == CAS_NODE_DIRECTORY ? &d->directories[k[1]++]
                              : s->type == CAS_NODE_FILE    ? &d->files[k[2]++]
                                                            : &d->symlinks[k[3]++];
                *t = *s;
                t->name = copy_string(&pool, s->name, s->name_len);
                if (s->type == CAS_NODE_SYMLINK)
                        t->target = copy_string(&pool, s->target, s->target_len);
                else
                        t->target = NULL, t->target_len = 0;
        }
        qsort(d->directories, d->n_directories, sizeof(cas_node), qsort_node_cmp);
        qsort(d->files, d->n_files, sizeof(cas_node), qsort_node_cmp);
        qsort(d->symlinks, d->n_symlinks, sizeof(cas_node), qsort_node_cmp);
        *ret = d;
        return 0;
}

static const cas_node *find_in(const cas_node *list, size_t n, const char *name, size_t len)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = cas_name_cmp(list[mid].name, list[mid].name_len, name, len);
                if (c == 0)
                        return &list[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const cas_node *cas_directory_find(const cas_directory *d, const char *name, size_t len)
{
        const cas_node *n;

        n = find_in(d->directories, d->n_directories, name, len);
        if (!n)
                n = find_in(d->files, d->n_files, name, len);
        if (!n)
                n = find_in(d->symlinks, d->n_symlinks, name, len);
        return n;
}

int cas_node_encode(const cas_node *n, uint8_t **ret, size_t *ret_len)
{
        PbNode m = TVIX__CASTORE__V1__NODE__INIT;
        PbDirectoryNode dn = TVIX__CASTORE__V1__DIRECTORY_NODE__INIT;
        PbFileNode fn = TVIX__CASTORE__V1__FILE_NODE__INIT;
        PbSymlinkNode sn = TVIX__CASTORE__V1__SYMLINK_NODE__INIT;
        uint8_t *out;
        size_t len;

        switch (n->type) {
        case CAS_NODE_DIRECTORY:
                dn.name = bin(n->name, n->name_len);
                dn.digest = bin(n->digest.bytes, CAS_DIGEST_SIZE);
                dn.size = n->size;
                m.node_case = TVIX__CASTORE__V1__NODE__NODE_DIRECTORY;
                m.directory = &dn;
                break;
        case CAS_NODE_FILE:
                fn.name = bin(n->name, n->name_len);
                fn.digest = bin(n->digest.bytes, CAS_DIGEST_SIZE);
                fn.size = n->size;
                fn.executable = n->executable;
                m.node_case = TVIX__CASTORE__V1__NODE__NODE_FILE;
                m.file = &fn;
                break;
        case CAS_NODE_SYMLINK:
                sn.name = bin(n->name, n->name_len);
                sn.target = bin(n->target, n->target_len);
                m.node_case = TVIX__CASTORE__V1__NODE__NODE_SYMLINK;
                m.symlink = &sn;
                break;
        default:
                return -EINVAL;
        }
        len = tvix__castore__v1__node__get_packed_size(&m);
        out = malloc(len ?: 1);
        if (!out)
                return -ENOMEM;
        tvix__castore__v1__node__pack(&m, out);
        *ret = out;
        *ret_len = len;
        return 0;
}

static cas_node *node_alloc(cas_node_type type, const void *name, size_t name_len,
                            const void *target, size_t target_len)
{
        cas_node *n = malloc(sizeof(cas_node) + name_len + 1 + target_len + 1);
        if (!n)
                return NULL;
        *n = (cas_node){.type = type};
        char *pool = (char *)(n + 1);
        n->name = copy_string(&pool, name, name_len);
        n->name_len = (uint32_t)name_len;
        if (type == CAS_NODE_SYMLINK) {
                n->target = copy_string(&pool, target, target_len);
                n->target_len = (uint32_t)target_len;
        }
        return n;
}

cas_node *cas_node_dup(const cas_node *n, const char *name, size_t name_len)
{
        cas_node *c;

        if (!name) {
                name = n->name;
                name_len = n->name_len;
        }
        c = node_alloc(n->type, name, name_len, n->target, n->target_len);
        if (!c)
                return NULL;
        c->digest = n->digest;
        c->size = n->size;
        c->executable = n->executable;
        return c;
}

int cas_node_decode(const void *buf, size_t len, cas_node **ret, cas_error *ret_err)
{
        PbNode *m;
        cas_node *n = NULL;
        int r;

        m = tvix__castore__v1__node__unpack(NULL, len, buf);
        if (!m)
                return fail(ret_err, CAS_ERR_DECODE, NULL, 0);
        switch (m->node_case) {
        case TVIX__CASTORE__V1__NODE__NODE_DIRECTORY:
                n = node_alloc(CAS_NODE_DIRECTORY, m->directory->name.data, m->directory->name.len,
                               NULL, 0);
                if (n) {
                        n->size = m->directory->size;
                        r = bytes_to_digest(&m->directory->digest, &n->digest, ret_err,
                                            &m->directory->name);
                        if (r < 0)
                                goto finish;
                }
                break;
        case TVIX__CASTORE__V1__NODE__NODE_FILE:
                n = node_alloc(CAS_NODE_FILE, m->file->name.data, m->file->name.len, NULL, 0);
                if (n) {
                        n->size = m->file->size;
                        n->executable = m->file->executable;
                        r = bytes_to_digest(&m->file->digest, &n->digest, ret_err, &m->file->name);
                        if (r < 0)
                                goto finish;
                }
                break;
        case TVIX__CASTORE__V1__NODE__NODE_SYMLINK:
                n = node_alloc(CAS_NODE_SYMLINK, m->symlink->name.data, m->symlink->name.len,
                               m->symlink->target.data, m->symlink->target.len);
                break;
        default:
                r = fail(ret_err, CAS_ERR_NODE_TYPE, NULL, 0);
                goto finish;
        }
        if (!n) {
                r = -ENOMEM;
                goto finish;
        }
        if (n->name_len > CAS_NAME_MAX + 1 || n->target_len > CAS_TARGET_MAX + 1) {
                r = fail(ret_err, CAS_ERR_NAME_TOO_LONG, NULL, 0);
                goto finish;
        }
        r = cas_node_validate(n, true, ret_err);
        if (r < 0)
                goto finish;
        *ret = TAKE_PTR(n);
        r = 0;
finish:
        free(n);
        tvix__castore__v1__node__free_unpacked(m, NULL);
        return r;
}

const char *cas_node_type_string(cas_node_type t)
{
        switch (t) {
        case CAS_NODE_DIRECTORY:
                return "directory";
        case CAS_NODE_FILE:
                return "file";
        case CAS_NODE_SYMLINK:
                return "symlink";
        }
        return "unknown";
}
