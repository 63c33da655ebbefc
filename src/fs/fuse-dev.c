/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <malloc.h>
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse-dev.h"
#include "macro.h"
#include "log.h"
#include "verify.h"

struct cas_fuse {
        cas_engine *engine;
        struct fuse_session *se;
        int fd;
        char *mountpoint;
        unsigned n_threads;
        pthread_t threads[64];
        unsigned started;
        _Atomic unsigned running;
        _Atomic bool stopping;
        bool unmounted;
        size_t bufsize;
};

static int notify_cb(void *userdata, const struct iovec *iov, int iovcnt)
{
        cas_fuse *f = userdata;
        ssize_t n = writev(f->fd, iov, iovcnt);
        return n < 0 ? -errno : 0;
}

/* FUSE passthrough's ioctls (Linux 6.9), newer than the headers we build with. */
struct backing_map {
        int32_t fd;
        uint32_t flags;
        uint64_t padding;
};
#define IOC_BACKING_OPEN _IOW(229, 1, struct backing_map)
#define IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

static int backing_open_cb(void *userdata, int fd)
{
        cas_fuse *f = userdata;
        struct backing_map map = {.fd = fd};
        int id = ioctl(f->fd, IOC_BACKING_OPEN, &map);
        return id < 0 ? -errno : id;
}

static void backing_close_cb(void *userdata, int32_t id)
{
        cas_fuse *f = userdata;
        uint32_t u = (uint32_t)id;
        (void)ioctl(f->fd, IOC_BACKING_CLOSE, &u);
}

/* Whether the request of n bytes at in is a READ of half a MiB or more. */
static bool reads_large(const uint8_t *in, ssize_t n)
{
        const struct fuse_in_header *h = (const void *)in;
        const struct fuse_read_in *r = (const void *)(h + 1);

        return (size_t)n >= sizeof(*h) + sizeof(*r) && h->opcode == FUSE_READ && r->size >= 512 * 1024;
}

static void *worker(void *userdata)
{
        cas_fuse *f = userdata;
        _cleanup_free_ uint8_t *in = malloc(f->bufsize);
        _cleanup_free_ void *out_mem = NULL;
        bool huge = false;
        /* a reply's payload (after its 16-byte header) page-aligned, with a
         * page to spare: direct reads from the store land in it. Ordinary
         * pages until the first large READ, then huge ones (one disk request
         * for a 1 MiB read): an idle or walked mount holds no 2 MiB a thread. */
        if (posix_memalign(&out_mem, CAS_DIRECT_ALIGN, f->bufsize + 8192) != 0)
                out_mem = NULL;
        uint8_t *out = out_mem ? (uint8_t *)out_mem + 4096 - 16 /* sizeof(struct fuse_out_header) */ : NULL;

        while (in && out && !atomic_load(&f->stopping)) {
                ssize_t n = read(f->fd, in, f->bufsize);
                if (n < 0) {
                        /* ENOENT: a request interrupted before we got it */
                        if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
                                continue;
                        break; /* ENODEV: unmounted */
                }
                void *m;
                if (!huge && reads_large(in, n) && (m = cas_direct_buffer(f->bufsize + 8192))) {
                        free(out_mem);
                        out_mem = m;
                        out = (uint8_t *)m + 4096 - 16;
                        huge = true;
                }
                struct iovec iv = {in, (size_t)n}, ov = {out, f->bufsize + 4096};
                cas_request *rq;
                ssize_t w = cas_engine_handle_refs(f->engine, &iv, 1, &ov, 1, &rq);
                /* the header, and the payload where it lies (read ahead) or after it */
                struct iovec reply[1 + CAS_REQUEST_REFS] = {{out, w > 0 ? (size_t)w : 0}};
                int cnt = 1;
                if (w > 0 && cas_request_refers(rq)) {
                        reply[0].iov_len = sizeof(struct fuse_out_header);
                        for (int k = 0; k < rq->n_refs; k++)
                                reply[cnt++] = rq->refs[k];
                }
                bool gone = w > 0 && writev(f->fd, reply, cnt) < 0 && errno == ENODEV;
                cas_request_written(rq);
                if (gone)
                        break;
                if (cas_engine_destroyed(f->engine))
                        break;
        }
        cas_engine_thread_done();
        atomic_fetch_sub(&f->running, 1);
        return NULL;
}

/* Undoes mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape_mountinfo(char *s)
{
        char *o = s;
        for (; *s; s++) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
                    s[3] <= '7') {
                        *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 3;
                } else
                        *o++ = *s;
        }
        *o = 0;
}

/* Sets the read-ahead window of the FUSE mount at path (the kernel's
 * default is 128 KiB, which makes a sequential read many small requests).
 * The setting lives in sysfs, under the device number mountinfo gives the
 * mount; writing it needs root. The last mount at path is ours. */
static int set_read_ahead(const char *path, unsigned kib)
{
        _cleanup_free_ char *line = NULL;
        char dev[32] = "";
        size_t n = 0;

        FILE *mi = fopen("/proc/self/mountinfo", "re");
        if (!mi)
                return -errno;
        while (getline(&line, &n, mi) > 0) {
                char d[32], mp[4096], type[64];
                /* id parent major:minor root mountpoint options [tags] - type ... */
                if (sscanf(line, "%*u %*u %31s %*s %4095s", d, mp) != 2)
                        continue;
                const char *sep = strstr(line, " - ");
                if (!sep || sscanf(sep, " - %63s", type) != 1 || strcmp(type, "fuse.casfs") != 0)
                        continue;
                unescape_mountinfo(mp);
                if (strcmp(mp, path) == 0)
                        memcpy(dev, d, sizeof(dev));
        }
        fclose(mi);
        if (!dev[0])
                return -ENOENT;

        char sys[96];
        snprintf(sys, sizeof(sys), "/sys/class/bdi/%s/read_ahead_kb", dev);
        int fd = open(sys, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        char text[16];
        int len = snprintf(text, sizeof(text), "%u\n", kib);
        int r = write(fd, text, (size_t)len) == len ? 0 : -errno;
        close(fd);
        return r;
}

_printf_(2, 3) static void set_error(char **ret_error, const char *fmt, ...)
{
        va_list ap;
        if (!ret_error)
                return;
        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
}

int cas_fuse_mount(cas_store *store, const cas_engine_options *eo, const cas_fuse_options *fo,
                   const char *mountpoint, cas_fuse **ret, char **ret_error)
{
        static const struct fuse_lowlevel_ops no_ops = {0};
        cas_fuse *f;
        int r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->fd = -1;
        f->mountpoint = strdup(mountpoint);
        cas_engine_options o = *eo;
        if (!o.max_pages)
                o.max_pages = 256;
        o.read_ahead = fo->read_ahead_kib * 1024u;
        /* a request: header plus the largest write the kernel may send; a reply: header plus a read */
        f->bufsize = (size_t)o.max_pages * 4096 + 4096;
        cas_engine_transport t = {.notify = notify_cb, .userdata = f};
        if (fo->passthrough) {
                t.backing_open = backing_open_cb;
                t.backing_close = backing_close_cb;
        }
        r = cas_engine_new(store, &o, &t, &f->engine);
        if (r < 0 || !f->mountpoint) {
                cas_fuse_free(f);
                return r < 0 ? r : -ENOMEM;
        }

        /* libfuse mounts (directly as root, else through fusermount3); the
         * engine, not libfuse's loop, answers the requests */
        _cleanup_free_ char *opts = NULL, *fsname = NULL;
        if (asprintf(&fsname, "fsname=%s", fo->fsname ?: "casfs") < 0)
                fsname = NULL;
        if (!fsname || fuse_opt_add_opt(&opts, "ro,default_permissions,subtype=casfs") < 0 ||
            fuse_opt_add_opt_escaped(&opts, fsname) < 0 ||
            (fo->allow_other && fuse_opt_add_opt(&opts, "allow_other") < 0)) {
                cas_fuse_free(f);
                return -ENOMEM;
        }
        char *argv[] = {"casfs", "-o", opts, NULL};
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        f->se = fuse_session_new(&args, &no_ops, sizeof(no_ops), NULL);
        fuse_opt_free_args(&args); /* libfuse may have added to them */
        if (!f->se) {
                set_error(ret_error, "cannot set up a FUSE session");
                cas_fuse_free(f);
                return -EIO;
        }
        if (fuse_session_mount(f->se, mountpoint) != 0) {
                set_error(ret_error, "%s: mount failed (see the message above)", mountpoint);
                fuse_session_destroy(f->se);
                f->se = NULL;
                f->unmounted = true;
                cas_fuse_free(f);
                return -EIO;
        }
        f->fd = fuse_session_fd(f->se);
        /* before the workers answer INIT, where the kernel settles the window */
        if (fo->read_ahead_kib) {
                _cleanup_free_ char *real = realpath(mountpoint, NULL);
                r = real ? set_read_ahead(real, fo->read_ahead_kib) : -errno;
                if (r < 0 && fo->read_ahead_explicit)
                        cas_log(CAS_LOG_WARNING, "%s: cannot set the read-ahead window (%s); keeping the kernel's",
                                mountpoint, strerror(-r));
        }
        f->n_threads = fo->threads ? fo->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
        f->n_threads = MAX(1u, MIN(f->n_threads, (unsigned)ELEMENTSOF(f->threads)));
        *ret = f;
        return 0;
}

int cas_fuse_start(cas_fuse *f)
{
        int r = cas_engine_start(f->engine);
        if (r < 0)
                return r;
        for (; f->started < f->n_threads; f->started++) {
                atomic_fetch_add(&f->running, 1);
                r = pthread_create(&f->threads[f->started], NULL, worker, f);
                if (r != 0) {
                        atomic_fetch_sub(&f->running, 1);
                        if (f->started == 0)
                                return -r;
                        break;
                }
        }
        return 0;
}

static void do_unmount(cas_fuse *f)
{
        if (f->unmounted || !f->se)
                return;
        f->unmounted = true;
        atomic_store(&f->stopping, true);
        fuse_session_unmount(f->se);
}

int cas_fuse_wait(cas_fuse *f, const sigset_t *signals)
{
        struct timespec second = {.tv_sec = 1};

        sigset_t all = *signals;

        /* SIGUSR1 logs statistics */
        sigaddset(&all, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        while (atomic_load(&f->running) > 0) {
                int sig = sigtimedwait(&all, NULL, &second);
                if (sig > 0 && sig != SIGUSR1) {
                        do_unmount(f);
                        break;
                }
                if (sig == SIGUSR1) {
                        struct mallinfo2 mi = mallinfo2();
                        cas_log(CAS_LOG_NOTICE, "%" PRIu64 " inodes live, %zu bytes allocated",
                                cas_engine_inode_count(f->engine), mi.uordblks + mi.hblkhd);
                }
        }
        /* Unmounted from outside (the kernel closed the connection): the
         * unmount in cas_fuse_free still runs, finds the mount gone and frees
         * libfuse's copy of the mountpoint. */
        return 0;
}

cas_fuse *cas_fuse_free(cas_fuse *f)
{
        if (!f)
                return NULL;
        do_unmount(f);
        /* A lazy unmount of a busy mount keeps the connection until its last
         * user leaves, and workers stay in read() until then. Wait a little,
         * then leave them to the process's exit, which closes /dev/fuse and
         * so ends the connection (and frees nothing they might still use). */
        for (int k = 0; k < 200 && atomic_load(&f->running) > 0; k++)
                usleep(10 * 1000);
        if (atomic_load(&f->running) > 0)
                return NULL;
        for (unsigned k = 0; k < f->started; k++)
                pthread_join(f->threads[k], NULL);
        if (f->engine)
                cas_engine_stop(f->engine);
        if (f->se)
                fuse_session_destroy(f->se);
        cas_engine_free(f->engine);
        free(f->mountpoint);
        free(f);
        return NULL;
}
