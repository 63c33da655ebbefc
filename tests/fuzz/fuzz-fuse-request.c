/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FUSE engine fed raw request bytes, as a hostile guest could send them
 * over virtiofs, against a small store held in memory. The first byte picks
 * how the request and reply buffers are scattered. */
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cas_engine *engine;
static cas_store *store;

static void setup(void)
{
        cas_digest blob;
        cas_node file = {.type = CAS_NODE_FILE, .name = "f", .name_len = 1, .size = 5};
        cas_node link = {.type = CAS_NODE_SYMLINK, .name = "l", .name_len = 1, .target = "f", .target_len = 1};
        cas_directory *d;
        cas_digest root;

        if (cas_store_new_memory(&store) < 0 || cas_blobstore_put(store->blobs, "hello", 5, &blob) < 0)
                abort();
        file.digest = blob;
        cas_node nodes[] = {file, link};
        if (cas_directory_build(nodes, 2, &d) < 0 || cas_metastore_put_closure(store->meta, &d, 1, &root, NULL) < 0)
                abort();
        cas_node top = {.type = CAS_NODE_DIRECTORY, .name = "tree", .name_len = 4, .digest = root, .size = 2};
        free(d);
        if (cas_metastore_set_root(store->meta, &top) < 0)
                abort();
        cas_engine_options o = {.verify = true, .xattr = true, .list_root = true};
        if (cas_engine_new(store, &o, NULL, &engine) < 0)
                abort();
        /* the engine answers nothing before INIT */
        struct {
                struct fuse_in_header h;
                struct fuse_init_in i;
        } init = {.h = {.len = sizeof(init), .opcode = FUSE_INIT, .unique = 1},
                  .i = {.major = 7, .minor = 38, .max_readahead = 65536}};
        uint8_t reply[256];
        struct iovec iv = {&init, sizeof(init)}, ov = {reply, sizeof(reply)};
        if (cas_engine_handle(engine, &iv, 1, &ov, 1) <= 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t out[3][8192];
        struct iovec in[3], ov[3];
        int n_in, n_out;

        if (!engine)
                setup();
        if (size < 1)
                return 0;
        uint8_t shape = data[0];
        data++, size--;
        /* split the request in up to three pieces */
        size_t a = size ? (shape % 7) % (size + 1) : 0;
        n_in = 0;
        if (shape & 8 && a > 0 && a < size) {
                in[n_in++] = (struct iovec){(void *)data, a};
                in[n_in++] = (struct iovec){(void *)(data + a), size - a};
        } else
                in[n_in++] = (struct iovec){(void *)data, size};
        n_out = 1 + (shape >> 4) % 3;
        for (int k = 0; k < n_out; k++)
                ov[k] = (struct iovec){out[k], k == 0 ? (size_t)(24 + (shape >> 6) * 16) : sizeof(out[k])};
        ssize_t n = cas_engine_handle(engine, in, n_in, ov, n_out);
        size_t cap = 0;
        for (int k = 0; k < n_out; k++)
                cap += ov[k].iov_len;
        if (n > (ssize_t)cap)
                abort(); /* claims more bytes than it had room for */
        return 0;
}
