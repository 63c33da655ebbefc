/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>

/* A pool's threads: threads[0..*n) run. Starts more, each fn(arg), until max
 * run or one cannot start (the pool then works with fewer). */
static inline void cas_threads_start(pthread_t *threads, unsigned *n, unsigned max, void *(*fn)(void *),
                                     void *arg)
{
        for (; *n < max; (*n)++)
                if (pthread_create(&threads[*n], NULL, fn, arg) != 0)
                        break;
}

/* Joins the threads started (the caller has told them to stop). */
static inline void cas_threads_join(pthread_t *threads, unsigned *n)
{
        for (unsigned k = 0; k < *n; k++)
                pthread_join(threads[k], NULL);
        *n = 0;
}
