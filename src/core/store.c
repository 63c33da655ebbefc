/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "layout.h"
#include "macro.h"
#include "store.h"

/* Creates every missing folder of path (like mkdir -p). */
static int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int read_format(int dir_fd)
{
        char buf[128];
        _cleanup_close_ int fd = openat(dir_fd, "format", O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = cas_loop_read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return (int)n;
        buf[n] = 0;
        if (n > 0 && buf[n - 1] == '\n')
                buf[n - 1] = 0;
        /* a store of another format (or a newer version) is not ours to touch */
        return strcmp(buf, CAS_STORE_FORMAT) == 0 ? 0 : -EPROTONOSUPPORT;
}

static int write_format(int dir_fd)
{
        static const char text[] = CAS_STORE_FORMAT "\n";
        _cleanup_close_ int fd = -1;
        int r;

        fd = openat(dir_fd, "format.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = cas_loop_write(fd, text, sizeof(text) - 1);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return -errno;
        if (renameat(dir_fd, "format.tmp", dir_fd, "format") < 0)
                return -errno;
        return 0;
}

int cas_store_open(const char *path, int flags, cas_store **ret)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        bool readonly = flags & CAS_STORE_READONLY;
        int r;

        r = cas_store_new_empty(&s);
        if (r < 0)
                return r;
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;

        s->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dir_fd < 0 && errno == ENOENT && (flags & CAS_STORE_CREATE) && !readonly) {
                r = mkdir_parents(path, 0755);
                if (r < 0)
                        return r;
                s->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (s->dir_fd < 0)
                return -errno;

        r = read_format(s->dir_fd);
        if (r == -ENOENT) {
                /* a new store only in an empty folder (or one we started before) */
                if (readonly || !(flags & CAS_STORE_CREATE))
                        return -ENOENT;
                if (faccessat(s->dir_fd, "meta.lmdb", F_OK, 0) == 0)
                        return -EPROTONOSUPPORT;
                if (mkdirat(s->dir_fd, "blobs", 0755) < 0 && errno != EEXIST)
                        return -errno;
                r = write_format(s->dir_fd);
        }
        if (r < 0)
                return r;

        s->lock_fd = openat(s->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lock_fd < 0 && !readonly)
                return -errno;

        r = cas_blobstore_open_local("blobs", s->dir_fd, &s->blobs);
        if (r < 0)
                return r;

        _cleanup_free_ char *meta = NULL;
        if (asprintf(&meta, "%s/meta.lmdb", path) < 0)
                return -ENOMEM;
        r = cas_metastore_open_lmdb(meta, readonly, &s->meta);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static int open_remote(const char *address, int flags, const cas_objstore_options *o,
                       cas_store **ret)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        int r;

        r = cas_store_new_empty(&s);
        if (r < 0)
                return r;
        r = cas_objstore_open(address, o, &s->remote);
        if (r < 0)
                return r;
        s->path = strdup(cas_objstore_address(s->remote));
        if (!s->path)
                return -ENOMEM;
        /* a folder is made like a local store's; a bucket is the owner's to make */
        if ((flags & CAS_STORE_CREATE) && !(flags & CAS_STORE_READONLY) &&
            strncmp(address, "file://", 7) == 0)
                r = cas_objstore_create_bucket(s->remote);
        else if (flags & CAS_STORE_NOCHECK)
                r = 0;
        else
                r = cas_objstore_check(s->remote);
        if (r == -ENOENT && !cas_objstore_writable(s->remote)) {
                /* many web servers answer 404 for a folder without an index
                 * page: a store there still has its roots index */
                uint64_t size;
                if (cas_objstore_head(s->remote, CAS_LAYOUT_ROOTS_INDEX, &size) >= 0)
                        r = 0;
        }
        if (r < 0)
                return r;
        r = cas_blobstore_open_remote(s->remote, &s->blobs);
        if (r < 0)
                return r;
        r = cas_metastore_open_remote(s->remote, &s->meta);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int cas_store_open_address(const char *address, int flags, const cas_objstore_options *o,
                           cas_store **ret)
{
        if (cas_objstore_is_address(address))
                return open_remote(address, flags, o, ret);
        return cas_store_open(address, flags, ret);
}

int cas_store_new_empty(cas_store **ret)
{
        cas_store *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->dir_fd = s->lock_fd = -1;
        *ret = s;
        return 0;
}

int cas_store_new_memory(cas_store **ret)
{
        _cleanup_(cas_store_freep) cas_store *s = NULL;
        int r;

        r = cas_store_new_empty(&s);
        if (r < 0)
                return r;
        r = cas_blobstore_new_memory(&s->blobs);
        if (r < 0)
                return r;
        r = cas_metastore_new_memory(&s->meta);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

cas_store *cas_store_free(cas_store *s)
{
        if (!s)
                return NULL;
        cas_metastore_free(s->meta);
        cas_blobstore_free(s->blobs);
        cas_store_free(s->cache_local);
        cas_store_free(s->cache_remote);
        cas_objstore_free(s->remote);
        safe_close(s->lock_fd);
        safe_close(s->dir_fd);
        free(s->path);
        free(s);
        return NULL;
}

int cas_store_lock(cas_store *s, bool exclusive)
{
        if (s->lock_fd < 0)
                return 0;
        while (flock(s->lock_fd, exclusive ? LOCK_EX : LOCK_SH) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

void cas_store_unlock(cas_store *s)
{
        if (s->lock_fd >= 0)
                (void)flock(s->lock_fd, LOCK_UN);
}

int cas_store_default_path(char **ret)
{
        const char *e = getenv("CASFS_STORE");

        if (!e || !*e)
                return cas_xdg_path("XDG_DATA_HOME", ".local/share", "casfs", ret);
        *ret = strdup(e);
        return *ret ? 0 : -ENOMEM;
}

int cas_store_resolve(cas_store *s, const char *path, cas_node **ret)
{
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_free_ cas_node *node = NULL;
        char *save = NULL, *part;
        int r;

        if (!copy)
                return -ENOMEM;
        part = strtok_r(copy, "/", &save);
        if (!part)
                return -ENOENT;
        r = cas_metastore_get_root(s->meta, part, &node);
        if (r < 0)
                return r;
        while ((part = strtok_r(NULL, "/", &save))) {
                _cleanup_free_ cas_directory *dir = NULL;
                const cas_node *child;

                if (node->type != CAS_NODE_DIRECTORY)
                        return -ENOTDIR;
                r = cas_metastore_get_directory(s->meta, &node->digest, &dir);
                if (r < 0)
                        return r;
                child = cas_directory_find(dir, part, strlen(part));
                if (!child)
                        return -ENOENT;
                free(node);
                node = cas_node_dup(child, NULL, 0);
                if (!node)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(node);
        return 0;
}
