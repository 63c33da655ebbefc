/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "macro.h"
#include "vhost-user.h"
#include "virtqueue.h"
#include "log.h"

/* Message types of the vhost-user protocol (front-end to back-end). */
enum {
        VU_GET_FEATURES = 1,
        VU_SET_FEATURES = 2,
        VU_SET_OWNER = 3,
        VU_RESET_OWNER = 4,
        VU_SET_MEM_TABLE = 5,
        VU_SET_LOG_BASE = 6,
        VU_SET_LOG_FD = 7,
        VU_SET_VRING_NUM = 8,
        VU_SET_VRING_ADDR = 9,
        VU_SET_VRING_BASE = 10,
        VU_GET_VRING_BASE = 11,
        VU_SET_VRING_KICK = 12,
        VU_SET_VRING_CALL = 13,
        VU_SET_VRING_ERR = 14,
        VU_GET_PROTOCOL_FEATURES = 15,
        VU_SET_PROTOCOL_FEATURES = 16,
        VU_GET_QUEUE_NUM = 17,
        VU_SET_VRING_ENABLE = 18,
        VU_SET_BACKEND_REQ_FD = 21,
        _VU_MAX = 64,
};

#define VU_VERSION 0x1
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)
#define VU_PAYLOAD_MAX 4096
#define VU_FDS_MAX 8
#define VU_VRING_NOFD (1u << 8)

#define F_PROTOCOL_FEATURES (UINT64_C(1) << 30)
#define PF_MQ (UINT64_C(1) << 0)
#define PF_BACKEND_REQ (UINT64_C(1) << 5)

/* The features of SPEC.md §6. */
static const uint64_t offered_features = (UINT64_C(1) << VIRTIO_F_VERSION_1) |
                                         (UINT64_C(1) << VIRTIO_RING_F_INDIRECT_DESC) |
                                         (UINT64_C(1) << VIRTIO_RING_F_EVENT_IDX) | F_PROTOCOL_FEATURES;
static const uint64_t offered_protocol = PF_MQ | PF_BACKEND_REQ;

typedef struct vu_header {
        uint32_t request;
        uint32_t flags;
        uint32_t size;
} __attribute__((packed)) vu_header;

typedef struct vu_region {
        uint64_t gpa, size, uva, mmap_offset;
} vu_region;

typedef struct vu_memory {
        uint32_t nregions, padding;
        vu_region regions[CAS_GUEST_REGIONS_MAX];
} vu_memory;

typedef struct vu_msg {
        vu_header h;
        union {
                uint64_t u64;
                struct vhost_vring_state state;
                struct vhost_vring_addr addr;
                vu_memory memory;
                uint8_t raw[VU_PAYLOAD_MAX];
        };
} __attribute__((packed)) vu_msg;

typedef struct queue {
        struct cas_vhost *dev;
        unsigned index;
        pthread_mutex_t lock; /* protects vq while requests come and go */
        cas_virtqueue vq;
        int kick_fd, call_fd, err_fd;
        int stop_fd;          /* an eventfd that tells the workers to end */
        bool started;         /* has a kick fd and mapped rings: workers run */
        _Atomic bool enabled;
        pthread_t threads[16];
        unsigned n_threads;
        _Atomic bool logged_broken;
} queue;

struct cas_vhost {
        cas_engine *engine;
        int sock;
        uint64_t features, protocol_features;
        cas_guest_memory mem;
        queue q[CAS_VHOST_QUEUES_MAX];
        unsigned n_queues;
        unsigned threads_per_queue;
        int backend_fd;
};

/* ---- message validation ---- */

static size_t expected_size(uint32_t request, const void *payload, size_t len)
{
        switch (request) {
        case VU_SET_FEATURES:
        case VU_SET_PROTOCOL_FEATURES:
        case VU_SET_VRING_KICK:
        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR:
                return sizeof(uint64_t);
        case VU_SET_VRING_NUM:
        case VU_SET_VRING_BASE:
        case VU_GET_VRING_BASE:
        case VU_SET_VRING_ENABLE:
                return sizeof(struct vhost_vring_state);
        case VU_SET_VRING_ADDR:
                return sizeof(struct vhost_vring_addr);
        case VU_SET_MEM_TABLE: {
                uint32_t n;
                if (len < 8)
                        return 8;
                memcpy(&n, payload, sizeof(n));
                if (n == 0 || n > CAS_GUEST_REGIONS_MAX)
                        return SIZE_MAX;
                return 8 + n * sizeof(vu_region);
        }
        default:
                return len; /* no payload we read */
        }
}

int cas_vhost_check_message(const void *buf, size_t len, unsigned n_fds)
{
        vu_header h;

        if (len < sizeof(h))
                return -EBADMSG;
        memcpy(&h, buf, sizeof(h));
        if ((h.flags & 0x3) != VU_VERSION || h.size > VU_PAYLOAD_MAX || h.size != len - sizeof(h))
                return -EBADMSG;
        const uint8_t *p = (const uint8_t *)buf + sizeof(h);
        size_t want = expected_size(h.request, p, h.size);
        if (want == SIZE_MAX || h.size < want)
                return -EBADMSG;
        if (n_fds > VU_FDS_MAX)
                return -EBADMSG;
        if (h.request == VU_SET_MEM_TABLE) {
                uint32_t n;
                memcpy(&n, p, sizeof(n));
                if (n_fds != n)
                        return -EBADMSG;
                for (uint32_t k = 0; k < n; k++) {
                        vu_region r;
                        memcpy(&r, p + 8 + k * sizeof(r), sizeof(r));
                        uint64_t end;
                        if (r.size == 0 || __builtin_add_overflow(r.gpa, r.size, &end) ||
                            __builtin_add_overflow(r.uva, r.size, &end) ||
                            __builtin_add_overflow(r.mmap_offset, r.size, &end) || r.size > (UINT64_C(1) << 48))
                                return -EBADMSG;
                }
        }
        if (h.request == VU_SET_VRING_NUM || h.request == VU_SET_VRING_BASE || h.request == VU_GET_VRING_BASE ||
            h.request == VU_SET_VRING_ENABLE || h.request == VU_SET_VRING_ADDR) {
                uint32_t index;
                memcpy(&index, p, sizeof(index));
                if (index >= CAS_VHOST_QUEUES_MAX)
                        return -EBADMSG;
        }
        if (h.request == VU_SET_VRING_KICK || h.request == VU_SET_VRING_CALL || h.request == VU_SET_VRING_ERR) {
                uint64_t v;
                memcpy(&v, p, sizeof(v));
                if ((v & 0xff) >= CAS_VHOST_QUEUES_MAX || n_fds != ((v & VU_VRING_NOFD) ? 0u : 1u))
                        return -EBADMSG;
        }
        return 0;
}

/* ---- the queues ---- */

static void queue_log_broken(queue *q)
{
        if (!atomic_exchange(&q->logged_broken, true))
                cas_log(CAS_LOG_ERR, "virtqueue %u: the guest broke the ring's rules; queue stopped",
                        q->index);
}

static void *queue_worker(void *userdata)
{
        queue *q = userdata;
        cas_vhost *dev = q->dev;
        struct iovec *in = calloc(CAS_CHAIN_MAX, sizeof(*in)), *out = calloc(CAS_CHAIN_MAX, sizeof(*out));
        struct pollfd pfd[2] = {{.fd = q->kick_fd, .events = POLLIN}, {.fd = q->stop_fd, .events = POLLIN}};

        while (in && out) {
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pfd[1].revents)
                        break;
                if (!(pfd[0].revents & POLLIN))
                        continue;
                uint64_t v;
                (void)!read(q->kick_fd, &v, sizeof(v));

                for (;;) {
                        int n_in = 0, n_out = 0, head;
                        pthread_mutex_lock(&q->lock);
                        if (!atomic_load(&q->enabled)) {
                                pthread_mutex_unlock(&q->lock);
                                break;
                        }
                        head = cas_virtqueue_pop(&q->vq, &dev->mem, in, &n_in, out, &n_out);
                        if (head == -EAGAIN && cas_virtqueue_arm(&q->vq))
                                head = cas_virtqueue_pop(&q->vq, &dev->mem, in, &n_in, out, &n_out);
                        /* more waiting: wake another worker of this queue to take it */
                        bool more = head >= 0 && q->vq.avail->idx != q->vq.last_avail;
                        pthread_mutex_unlock(&q->lock);
                        if (head == -EBADMSG)
                                queue_log_broken(q);
                        if (head < 0)
                                break;
                        if (more && q->n_threads > 1) {
                                uint64_t one = 1;
                                (void)!write(q->kick_fd, &one, sizeof(one));
                        }

                        ssize_t n = cas_engine_handle(dev->engine, in, n_in, out, n_out);
                        pthread_mutex_lock(&q->lock);
                        cas_virtqueue_push(&q->vq, (uint16_t)head, n > 0 ? (uint32_t)n : 0);
                        bool notify = cas_virtqueue_should_notify(&q->vq);
                        pthread_mutex_unlock(&q->lock);
                        if (notify && q->call_fd >= 0) {
                                uint64_t one = 1;
                                (void)!write(q->call_fd, &one, sizeof(one));
                        }
                }
        }
        free(in);
        free(out);
        cas_engine_thread_done();
        return NULL;
}

static void queue_stop(queue *q)
{
        if (!q->started)
                return;
        uint64_t one = 1;
        (void)!write(q->stop_fd, &one, sizeof(one));
        for (unsigned k = 0; k < q->n_threads; k++)
                pthread_join(q->threads[k], NULL);
        q->n_threads = 0;
        q->started = false;
        uint64_t v;
        (void)!read(q->stop_fd, &v, sizeof(v));
}

static int queue_start(cas_vhost *dev, queue *q)
{
        if (q->started || q->kick_fd < 0 || dev->mem.n == 0 || q->vq.num == 0)
                return 0;
        int r = cas_virtqueue_map(&q->vq, &dev->mem);
        if (r < 0) {
                cas_log(CAS_LOG_ERR, "virtqueue %u: ring addresses outside guest memory", q->index);
                return r;
        }
        q->vq.event_idx = dev->features & (UINT64_C(1) << VIRTIO_RING_F_EVENT_IDX);
        /* the high-priority queue carries FORGETs: one thread is plenty */
        unsigned n = q->index == 0 ? 1 : dev->threads_per_queue;
        q->started = true;
        for (q->n_threads = 0; q->n_threads < n; q->n_threads++)
                if (pthread_create(&q->threads[q->n_threads], NULL, queue_worker, q) != 0)
                        break;
        return q->n_threads > 0 ? 0 : -EAGAIN;
}

static void stop_all(cas_vhost *dev)
{
        for (unsigned k = 0; k < CAS_VHOST_QUEUES_MAX; k++)
                queue_stop(&dev->q[k]);
}

/* ---- the protocol ---- */

static int send_reply(cas_vhost *dev, const vu_msg *req, const void *payload, uint32_t size)
{
        vu_msg m = {.h = {.request = req->h.request, .flags = VU_VERSION | VU_FLAG_REPLY, .size = size}};
        memcpy(m.raw, payload, size);
        size_t len = sizeof(m.h) + size;
        ssize_t n = send(dev->sock, &m, len, MSG_NOSIGNAL);
        return n == (ssize_t)len ? 0 : -EIO;
}

static int send_u64(cas_vhost *dev, const vu_msg *req, uint64_t v)
{
        return send_reply(dev, req, &v, sizeof(v));
}

/* Reads one message and its file descriptors. 0 on end of connection. */
static int receive(cas_vhost *dev, vu_msg *m, int *fds, unsigned *n_fds)
{
        char control[CMSG_SPACE(VU_FDS_MAX * sizeof(int))];
        struct iovec iov = {&m->h, sizeof(m->h)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                            .msg_controllen = sizeof(control)};
        ssize_t n;

        *n_fds = 0;
        do
                n = recvmsg(dev->sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return n == 0 ? 0 : -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        for (unsigned j = 0; j < k; j++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
                                if (*n_fds < VU_FDS_MAX)
                                        fds[(*n_fds)++] = fd;
                                else
                                        close(fd);
                        }
                }
        if (n != sizeof(m->h) || (mh.msg_flags & MSG_CTRUNC))
                return -EBADMSG;
        if (m->h.size > VU_PAYLOAD_MAX)
                return -EBADMSG;
        if (m->h.size > 0) {
                ssize_t k = cas_loop_read(dev->sock, m->raw, m->h.size);
                if (k != (ssize_t)m->h.size)
                        return -EBADMSG;
        }
        return 1;
}

static int set_mem_table(cas_vhost *dev, const vu_msg *m, int *fds, unsigned n_fds)
{
        cas_guest_memory next = {0};

        for (unsigned k = 0; k < m->memory.nregions; k++) {
                vu_region reg;
                memcpy(&reg, m->raw + 8 + k * sizeof(reg), sizeof(reg));
                size_t len = (size_t)(reg.size + reg.mmap_offset);
                void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fds[k], 0);
                if (p == MAP_FAILED) {
                        int e = -errno;
                        cas_guest_memory_unmap(&next);
                        cas_log(CAS_LOG_ERR, "cannot map guest memory: %s", strerror(-e));
                        return e;
                }
                next.regions[next.n++] = (cas_guest_region){.gpa = reg.gpa, .size = reg.size, .uva = reg.uva,
                                                            .host = (uint8_t *)p + reg.mmap_offset,
                                                            .map = p, .map_len = len};
        }
        /* the rings live in guest memory: stop them while it changes */
        bool was[CAS_VHOST_QUEUES_MAX];
        for (unsigned k = 0; k < CAS_VHOST_QUEUES_MAX; k++) {
                was[k] = dev->q[k].started;
                queue_stop(&dev->q[k]);
        }
        cas_guest_memory_unmap(&dev->mem);
        dev->mem = next;
        for (unsigned k = 0; k < CAS_VHOST_QUEUES_MAX; k++)
                if (was[k])
                        (void)queue_start(dev, &dev->q[k]);
        return 0;
}

static int handle(cas_vhost *dev, vu_msg *m, int *fds, unsigned n_fds)
{
        size_t len = sizeof(m->h) + m->h.size;
        queue *q = NULL;
        int r = 0;

        if (cas_vhost_check_message(m, len, n_fds) < 0) {
                cas_log(CAS_LOG_ERR, "malformed vhost-user message (type %u, %u bytes, %u fds)",
                        m->h.request, m->h.size, n_fds);
                return -EBADMSG;
        }
        switch (m->h.request) {
        case VU_SET_VRING_NUM:
        case VU_SET_VRING_ADDR:
        case VU_SET_VRING_BASE:
        case VU_GET_VRING_BASE:
        case VU_SET_VRING_ENABLE:
                q = &dev->q[m->state.index];
                break;
        case VU_SET_VRING_KICK:
        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR:
                q = &dev->q[m->u64 & 0xff];
                break;
        }

        switch (m->h.request) {
        case VU_GET_FEATURES:
                return send_u64(dev, m, offered_features);
        case VU_SET_FEATURES:
                dev->features = m->u64 & offered_features;
                break;
        case VU_GET_PROTOCOL_FEATURES:
                return send_u64(dev, m, offered_protocol);
        case VU_SET_PROTOCOL_FEATURES:
                dev->protocol_features = m->u64 & offered_protocol;
                break;
        case VU_GET_QUEUE_NUM:
                return send_u64(dev, m, dev->n_queues);
        case VU_SET_OWNER:
                break;
        case VU_RESET_OWNER:
                stop_all(dev);
                dev->features = 0;
                break;
        case VU_SET_MEM_TABLE:
                r = set_mem_table(dev, m, fds, n_fds);
                break;
        case VU_SET_VRING_NUM:
                if (m->state.num == 0 || (m->state.num & (m->state.num - 1)) || m->state.num > 32768 ||
                    m->state.index >= dev->n_queues)
                        return -EBADMSG;
                queue_stop(q);
                q->vq.num = (uint16_t)m->state.num;
                break;
        case VU_SET_VRING_ADDR:
                queue_stop(q);
                q->vq.desc_uva = m->addr.desc_user_addr;
                q->vq.used_uva = m->addr.used_user_addr;
                q->vq.avail_uva = m->addr.avail_user_addr;
                break;
        case VU_SET_VRING_BASE:
                queue_stop(q);
                q->vq.last_avail = q->vq.used_idx = (uint16_t)m->state.num;
                q->vq.signalled_used_valid = false;
                q->vq.broken = false;
                break;
        case VU_GET_VRING_BASE: {
                /* stops the ring; its state goes back to the front-end */
                queue_stop(q);
                struct vhost_vring_state s = {.index = m->state.index, .num = q->vq.last_avail};
                q->kick_fd = safe_close(q->kick_fd);
                atomic_store(&q->enabled, false);
                return send_reply(dev, m, &s, sizeof(s));
        }
        case VU_SET_VRING_KICK:
                queue_stop(q);
                q->kick_fd = safe_close(q->kick_fd);
                q->kick_fd = n_fds ? TAKE_FD(fds[0]) : -1;
                /* without protocol features a ring starts enabled; with them
                 * it waits for SET_VRING_ENABLE, which some VMMs send only to
                 * disable: start it, and let an explicit disable stop it */
                atomic_store(&q->enabled, true);
                r = queue_start(dev, q);
                break;
        case VU_SET_VRING_CALL:
                pthread_mutex_lock(&q->lock);
                safe_close(q->call_fd);
                q->call_fd = n_fds ? TAKE_FD(fds[0]) : -1;
                pthread_mutex_unlock(&q->lock);
                break;
        case VU_SET_VRING_ERR:
                safe_close(q->err_fd);
                q->err_fd = n_fds ? TAKE_FD(fds[0]) : -1;
                break;
        case VU_SET_VRING_ENABLE:
                atomic_store(&q->enabled, m->state.num != 0);
                if (m->state.num && q->kick_fd >= 0) {
                        uint64_t one = 1; /* look at what came while disabled */
                        (void)!write(q->kick_fd, &one, sizeof(one));
                }
                break;
        case VU_SET_BACKEND_REQ_FD:
                safe_close(dev->backend_fd);
                dev->backend_fd = n_fds ? TAKE_FD(fds[0]) : -1;
                break;
        default:
                /* not offered, so not expected: say so, and go on */
                cas_log(CAS_LOG_WARNING, "ignoring vhost-user message type %u", m->h.request);
                break;
        }
        if (r >= 0 && (m->h.flags & VU_FLAG_NEED_REPLY))
                return send_u64(dev, m, 0);
        return r;
}

int cas_vhost_listen(const char *socket_path, int *ret_fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct stat st;
        int fd;

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);
        /* replace a stale socket, never anything else */
        if (lstat(socket_path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                unlink(socket_path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int cas_vhost_serve(cas_engine *engine, int fd, unsigned request_queues, unsigned threads,
                    const sigset_t *stop_signals)
{
        cas_vhost *dev = calloc(1, sizeof(*dev));
        int r = 0;

        if (!dev) {
                close(fd);
                return -ENOMEM;
        }
        dev->engine = engine;
        dev->sock = fd;
        dev->backend_fd = -1;
        dev->n_queues = 1 + MAX(1u, MIN(request_queues, (unsigned)CAS_VHOST_QUEUES_MAX - 1));
        dev->threads_per_queue = MAX(1u, MIN(threads, 16u));
        for (unsigned k = 0; k < CAS_VHOST_QUEUES_MAX; k++) {
                queue *q = &dev->q[k];
                q->dev = dev;
                q->index = k;
                q->kick_fd = q->call_fd = q->err_fd = -1;
                q->stop_fd = eventfd(0, EFD_CLOEXEC);
                pthread_mutex_init(&q->lock, NULL);
                if (q->stop_fd < 0)
                        r = -errno;
        }

        /* signals arrive through a signalfd-less poll: block them, check with sigtimedwait */
        while (r >= 0) {
                struct pollfd p = {.fd = dev->sock, .events = POLLIN};
                int k = poll(&p, 1, 200);
                if (stop_signals) {
                        struct timespec zero = {0};
                        if (sigtimedwait(stop_signals, NULL, &zero) > 0)
                                break;
                }
                if (k < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (k <= 0)
                        continue;
                vu_msg m;
                int fds[VU_FDS_MAX];
                unsigned n_fds = 0;
                memset(&m.h, 0, sizeof(m.h));
                k = receive(dev, &m, fds, &n_fds);
                if (k == 0) {
                        for (unsigned j = 0; j < n_fds; j++)
                                safe_close(fds[j]);
                        break; /* the front-end went away */
                }
                if (k > 0)
                        k = handle(dev, &m, fds, n_fds);
                for (unsigned j = 0; j < n_fds; j++)
                        safe_close(fds[j]);
                if (k < 0) {
                        if (k != -EBADMSG && k != -ECONNRESET)
                                cas_log(CAS_LOG_ERR, "vhost-user connection: %s", strerror(-k));
                        r = k == -ECONNRESET ? 0 : k;
                        break;
                }
        }

        stop_all(dev);
        for (unsigned k = 0; k < CAS_VHOST_QUEUES_MAX; k++) {
                queue *q = &dev->q[k];
                safe_close(q->kick_fd);
                safe_close(q->call_fd);
                safe_close(q->err_fd);
                safe_close(q->stop_fd);
                pthread_mutex_destroy(&q->lock);
        }
        cas_guest_memory_unmap(&dev->mem);
        safe_close(dev->backend_fd);
        safe_close(dev->sock);
        free(dev);
        return r;
}
