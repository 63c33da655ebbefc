/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Batches of the libcurl backend: a multi handle driven from one thread,
 * `jobs` transfers in flight, each retried after its backoff without
 * holding up the others. */
#include <time.h>

#include "objstore-curl.h"

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct objstore_multi {
        cas_objstore *os;
        CURLM *multi;
        CURL **idle; /* up to jobs handles, with their connections */
        unsigned n_idle;
        unsigned running; /* in the multi handle */
        xfer *retry_head; /* waiting for their backoff, unordered */
        unsigned waiting;
};

void objstore_multi_destroy(objstore_multi *m)
{
        for (unsigned i = 0; i < m->n_idle; i++)
                curl_easy_cleanup(m->idle[i]);
        if (m->multi)
                curl_multi_cleanup(m->multi);
        free(m->idle);
        free(m);
}

int objstore_multi_new(cas_objstore *os, objstore_multi **ret)
{
        objstore_curl *c = os->curl;
        objstore_multi *m = NULL;

        pthread_mutex_lock(&c->pool_lock);
        if (c->n_multis > 0)
                m = c->multis[--c->n_multis];
        pthread_mutex_unlock(&c->pool_lock);
        if (m) {
                *ret = m;
                return 0;
        }
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->os = os;
        m->idle = calloc(os->jobs, sizeof(CURL *));
        m->multi = curl_multi_init();
        if (!m->idle || !m->multi) {
                objstore_multi_destroy(m);
                return -ENOMEM;
        }
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)os->jobs);
        *ret = m;
        return 0;
}

static void finish(objstore_multi *m, xfer *x, int r)
{
        void *buf = NULL;
        size_t len = 0;

        if (r >= 0 && x->xop == OBJSTORE_XFER_GET) {
                r = xfer_take_body(x, &buf, &len);
        } else if (r >= 0 && x->xop == OBJSTORE_XFER_HEAD) {
                len = (size_t)x->size;
        }
        if (r > 0)
                r = 0;
        char *key = TAKE_PTR(x->key);
        cas_objstore_done_cb cb = x->cb;
        void *userdata = x->userdata;
        /* other transfers ended since: the line of this one, for the callback */
        if (r < 0 && x->error)
                objstore_set_last_error(x->error);
        free(x->error);
        xfer_done(x);
        free(x);
        cb(r, key, r < 0 ? NULL : buf, r < 0 ? 0 : len, userdata);
        if (r < 0)
                free(buf);
        free(key);
}

static int start(objstore_multi *m, xfer *x)
{
        CURL *h = m->n_idle > 0 ? m->idle[--m->n_idle] : curl_easy_init();
        int r;

        if (!h)
                return -ENOMEM;
        r = xfer_setup(x, h, m->os->curl->share);
        if (r < 0 || curl_multi_add_handle(m->multi, h) != CURLM_OK) {
                curl_easy_cleanup(h);
                return r < 0 ? r : -ENOMEM;
        }
        x->easy = h;
        m->running++;
        return 0;
}

static void release(objstore_multi *m, CURL *h)
{
        curl_multi_remove_handle(m->multi, h);
        curl_easy_reset(h);
        if (m->n_idle < m->os->jobs)
                m->idle[m->n_idle++] = h;
        else
                curl_easy_cleanup(h);
}

/* One round: starts retries that are due, moves transfers along, handles
 * those that ended (callbacks run here), and waits a little if none did. */
static int drive(objstore_multi *m)
{
        xfer *done = NULL, **pp;
        uint64_t now = now_usec(), next_due = UINT64_MAX;
        int still, r;

        for (pp = &m->retry_head; *pp;) {
                xfer *x = *pp;
                if (x->due_usec <= now) {
                        *pp = x->next;
                        m->waiting--;
                        r = start(m, x);
                        if (r < 0) {
                                /* its callback runs below, not while this
                                 * list is walked */
                                x->result = r;
                                x->error = NULL;
                                x->next = done;
                                done = x;
                        }
                } else {
                        next_due = MIN(next_due, x->due_usec);
                        pp = &x->next;
                }
        }

        if (curl_multi_perform(m->multi, &still) != CURLM_OK)
                return -EIO;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                xfer *x = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
                /* the result is judged now, while the handle holds it */
                bool retry;
                CURL *h = msg->easy_handle;
                r = xfer_result(x, h, msg->data.result, &retry);
                release(m, h);
                x->easy = NULL;
                m->running--;
                if (r < 0 && retry && x->attempt < m->os->retries) {
                        x->due_usec = now_usec() + xfer_backoff_ms(x) * 1000u;
                        x->attempt++;
                        x->next = m->retry_head;
                        m->retry_head = x;
                        m->waiting++;
                        continue;
                }
                /* finished: callbacks run once the message queue is drained,
                 * as they may queue more */
                x->result = r;
                if (r < 0)
                        x->error = strdup(cas_objstore_last_error());
                x->next = done;
                done = x;
        }
        bool any = done != NULL;
        while (done) {
                xfer *x = done;
                done = x->next;
                /* the error line of the thread is this transfer's */
                finish(m, x, x->result);
        }
        if (!any && (m->running > 0 || m->waiting > 0)) {
                long ms = 1000;
                if (next_due != UINT64_MAX)
                        ms = (long)MIN((uint64_t)ms, (next_due - MIN(next_due, now_usec())) / 1000);
                if (curl_multi_poll(m->multi, NULL, 0, (int)ms, NULL) != CURLM_OK)
                        return -EIO;
        }
        return 0;
}

int objstore_multi_queue(objstore_multi *m, objstore_xfer_op op, const char *key,
                         size_t max_size, void *buf, size_t len, cas_objstore_done_cb cb,
                         void *userdata)
{
        static const char *const methods[] = {
                [OBJSTORE_XFER_GET] = "GET",
                [OBJSTORE_XFER_HEAD] = "HEAD",
                [OBJSTORE_XFER_PUT] = "PUT",
        };
        xfer *x;
        int r;

        while (m->running + m->waiting >= m->os->jobs) {
                r = drive(m);
                if (r < 0) {
                        free(buf);
                        return r;
                }
        }
        x = calloc(1, sizeof(*x));
        if (!x) {
                free(buf);
                return -ENOMEM;
        }
        r = xfer_init(x, m->os, methods[op], methods[op], key);
        if (r < 0) {
                free(buf);
                free(x);
                return r;
        }
        x->xop = op;
        x->want_size = op == OBJSTORE_XFER_HEAD;
        x->max_size = max_size;
        x->cb = cb;
        x->userdata = userdata;
        x->owned_body = buf;
        x->body = buf;
        x->body_len = len;
        r = start(m, x);
        if (r < 0) {
                xfer_done(x);
                free(x);
                return r;
        }
        return 0;
}

int objstore_multi_wait(objstore_multi *m)
{
        int r;

        while (m->running + m->waiting > 0) {
                r = drive(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

objstore_multi *objstore_multi_free(objstore_multi *m)
{
        objstore_curl *c;

        if (!m)
                return NULL;
        c = m->os->curl;
        /* only an idle one is kept: nothing added to it, nothing to retry */
        if (m->running == 0 && m->waiting == 0) {
                pthread_mutex_lock(&c->pool_lock);
                if (c->n_multis < MULTI_POOL_MAX) {
                        c->multis[c->n_multis++] = m;
                        m = NULL;
                }
                pthread_mutex_unlock(&c->pool_lock);
        }
        if (m)
                objstore_multi_destroy(m);
        return NULL;
}
