/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The castore model (SPEC.md §1-2): nodes, directories, their canonical
 * protobuf encoding, and validation. Pure functions: no I/O, no globals. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define CAS_NAME_MAX 255
#define CAS_TARGET_MAX 4095

typedef enum cas_node_type {
        CAS_NODE_DIRECTORY = 1,
        CAS_NODE_FILE = 2,
        CAS_NODE_SYMLINK = 3,
} cas_node_type;

/* One entry. Strings are byte strings with a length; the decoder and the
 * builders also NUL-terminate them (a valid name or target holds no NUL). */
typedef struct cas_node {
        cas_node_type type;
        bool executable;   /* file */
        uint32_t name_len;
        uint32_t target_len; /* symlink */
        const char *name;
        const char *target; /* symlink */
        cas_digest digest;  /* directory, file */
        uint64_t size;      /* directory: entries below; file: bytes */
} cas_node;

/* A directory. The three lists are slices of nodes[], each sorted by name.
 * Allocated as one block (nodes and strings included): free() releases it. */
typedef struct cas_directory {
        size_t n_directories, n_files, n_symlinks;
        cas_node *directories, *files, *symlinks;
        size_t n_nodes;
        cas_node nodes[];
} cas_directory;

typedef enum cas_error_code {
        CAS_ERR_NONE = 0,
        CAS_ERR_DECODE,        /* not a protobuf message of the expected type */
        CAS_ERR_NONCANONICAL,  /* decodes, but does not re-encode to the same bytes */
        CAS_ERR_NAME_EMPTY,
        CAS_ERR_NAME_DOT,      /* "." or ".." */
        CAS_ERR_NAME_TOO_LONG,
        CAS_ERR_NAME_NUL,
        CAS_ERR_NAME_SLASH,
        CAS_ERR_TARGET_EMPTY,
        CAS_ERR_TARGET_TOO_LONG,
        CAS_ERR_TARGET_NUL,
        CAS_ERR_UNSORTED,
        CAS_ERR_DUPLICATE,
        CAS_ERR_DIGEST_LENGTH,
        CAS_ERR_SIZE_OVERFLOW,
        CAS_ERR_SIZE_MISMATCH, /* a DirectoryNode's size differs from the child's */
        CAS_ERR_DANGLING,      /* a reference to a directory that is nowhere */
        CAS_ERR_ROOTS,         /* a closure with not exactly one unreferenced directory */
        CAS_ERR_NODE_TYPE,     /* a Node with none of the three set */
        _CAS_ERR_MAX,
} cas_error_code;

/* What went wrong, for messages: the code and the entry it concerns. */
typedef struct cas_error {
        cas_error_code code;
        char detail[160];
} cas_error;

const char *cas_error_code_string(cas_error_code code);
/* "<reason>: <detail>" into buf; returns buf. */
char *cas_error_format(const cas_error *e, char *buf, size_t n);

int cas_name_validate(const char *name, size_t len, cas_error *ret_err);
int cas_target_validate(const char *target, size_t len, cas_error *ret_err);
/* Validates one node on its own: name (unless name_optional and empty), target, type. */
int cas_node_validate(const cas_node *n, bool name_optional, cas_error *ret_err);

/* Validates a directory: names, targets, ordering, uniqueness, size sum.
 * Returns 0 or -EBADMSG with ret_err filled (when given). */
int cas_directory_validate(const cas_directory *d, cas_error *ret_err);

/* Parses canonical bytes into a validated directory: -EBADMSG for bytes that
 * do not decode, decode to an invalid directory, or are not canonical. */
int cas_directory_decode(const void *buf, size_t len, cas_directory **ret, cas_error *ret_err);

/* Canonical encoding. *ret is malloc'ed (NULL for the empty directory, with length 0). */
int cas_directory_encode(const cas_directory *d, uint8_t **ret, size_t *ret_len);
int cas_directory_digest(const cas_directory *d, cas_digest *ret);

/* The size a DirectoryNode pointing at d must carry: own entries plus each
 * child directory's size. -EOVERFLOW when it does not fit 64 bits. */
int cas_directory_size(const cas_directory *d, uint64_t *ret);

/* Builds a directory from nodes in any order (strings are copied, lists sorted).
 * Does not validate. */
int cas_directory_build(const cas_node *nodes, size_t n, cas_directory **ret);

/* Finds an entry by name (binary search in each list); NULL if absent. */
const cas_node *cas_directory_find(const cas_directory *d, const char *name, size_t len);

/* Fills order[0..n_nodes) with the indexes of nodes[] in name order across the three lists. */
void cas_directory_name_order(const cas_directory *d, uint32_t *order);

/* Bytewise name comparison, as the model orders names. */
int cas_name_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* A single Node (a root): encode and decode. The decoded node is one malloc'ed
 * block with its strings; free() releases it. The name may be empty. */
int cas_node_encode(const cas_node *n, uint8_t **ret, size_t *ret_len);
int cas_node_decode(const void *buf, size_t len, cas_node **ret, cas_error *ret_err);
/* A copy of n in one malloc'ed block, with name replaced by the given one (when name != NULL). */
cas_node *cas_node_dup(const cas_node *n, const char *name, size_t name_len);

const char *cas_node_type_string(cas_node_type t);
