/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <time.h>

#include "cli.h"

static void *progress_thread(void *userdata)
{
        cli_progress *p = userdata;

        pthread_mutex_lock(&p->lock);
        while (!p->stop) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 250 * 1000000;
                if (until.tv_nsec >= 1000000000)
                        until.tv_sec++, until.tv_nsec -= 1000000000;
                pthread_cond_timedwait(&p->cond, &p->lock, &until);
                if (p->stop)
                        break;
                p->show(p->userdata);
        }
        pthread_mutex_unlock(&p->lock);
        fputs("\r\033[K", stderr);
        return NULL;
}

bool cli_progress_start(cli_progress *p, bool enable, void (*show)(void *userdata),
                        void *userdata)
{
        *p = (cli_progress){
                .show = show,
                .userdata = userdata,
                .lock = PTHREAD_MUTEX_INITIALIZER,
                .cond = PTHREAD_COND_INITIALIZER,
        };
        p->running = enable && pthread_create(&p->thread, NULL, progress_thread, p) == 0;
        return p->running;
}

void cli_progress_stop(cli_progress *p)
{
        if (!p->running)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        p->running = false;
}
