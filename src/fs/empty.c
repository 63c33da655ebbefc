/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Keeps the library non-empty while the filesystem sources are being written. */
typedef int cas_fs_empty_unit;
