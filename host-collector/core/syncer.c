/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "syncer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "macro.h"

struct SyncJob {
        SyncJob *next;
        Syncer *syncer;
        int fd, dir_fd;
        int error;
        bool cancelled; /* touched by the owner's thread only */
        SyncDoneHandler done;
        void *userdata;
};

struct Syncer {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        /* Under lock: queued jobs (FIFO) and completed ones (FIFO). */
        SyncJob *queue_head, *queue_tail;
        SyncJob *done_head, *done_tail;
        bool stopping;
        unsigned in_flight; /* owner's thread only */
        int event_fd;
        pthread_t *threads;
        unsigned n_threads;
};

static void job_free(SyncJob *j) {
        safe_close(j->fd);
        safe_close(j->dir_fd);
        free(j);
}

static void push(SyncJob **head, SyncJob **tail, SyncJob *j) {
        j->next = NULL;
        if (*tail)
                (*tail)->next = j;
        else
                *head = j;
        *tail = j;
}

static SyncJob *pop(SyncJob **head, SyncJob **tail) {
        SyncJob *j = *head;
        if (j) {
                *head = j->next;
                if (!*head)
                        *tail = NULL;
                j->next = NULL;
        }
        return j;
}

static void *sync_thread(void *userdata) {
        Syncer *s = userdata;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                SyncJob *j = pop(&s->queue_head, &s->queue_tail);
                if (!j) {
                        if (s->stopping)
                                break;
                        pthread_cond_wait(&s->wake, &s->lock);
                        continue;
                }
                pthread_mutex_unlock(&s->lock);

                int error = 0;
                if (j->fd >= 0 && fdatasync(j->fd) < 0)
                        error = -errno;
                if (error == 0 && j->dir_fd >= 0 && fsync(j->dir_fd) < 0)
                        error = -errno;

                pthread_mutex_lock(&s->lock);
                j->error = error;
                bool was_empty = !s->done_head;
                push(&s->done_head, &s->done_tail, j);
                if (was_empty) {
                        /* One wakeup per batch of completions: the owner drains the whole list. Written outside
                         * the lock: a thread preempted in a system call while holding it would stall the event
                         * loop's next submit or dispatch (seen: 5.6 ms with a thousand busy guests on 2 cores). */
                        pthread_mutex_unlock(&s->lock);
                        uint64_t one = 1;
                        (void) !write(s->event_fd, &one, sizeof(one));
                        pthread_mutex_lock(&s->lock);
                }
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int syncer_new(unsigned n_threads, Syncer **ret) {
        sigset_t all, saved;
        int r = 0;

        if (n_threads == 0 || n_threads > SYNCER_THREADS_MAX)
                return -EINVAL;
        Syncer *s = calloc(1, sizeof(Syncer));
        if (!s)
                return -ENOMEM;
        s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        s->threads = calloc(n_threads, sizeof(pthread_t));
        if (s->event_fd < 0 || !s->threads) {
                r = s->event_fd < 0 ? -errno : -ENOMEM;
                safe_close(s->event_fd);
                free(s->threads);
                free(s);
                return r;
        }
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->wake, NULL);

        /* The threads must never take the process's signals (tetherd handles them through signalfd-like
         * sd-event sources on the main thread). */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &saved);
        for (; s->n_threads < n_threads; s->n_threads++) {
                int k = pthread_create(&s->threads[s->n_threads], NULL, sync_thread, s);
                if (k != 0) {
                        r = -k;
                        break;
                }
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                syncer_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

Syncer *syncer_free(Syncer *s) {
        if (!s)
                return NULL;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_broadcast(&s->wake);
        pthread_mutex_unlock(&s->lock);
        /* The threads drain the queue before they stop: whatever was submitted reaches the disk. */
        for (unsigned i = 0; i < s->n_threads; i++)
                pthread_join(s->threads[i], NULL);

        for (SyncJob *j; (j = pop(&s->queue_head, &s->queue_tail));)
                job_free(j);
        for (SyncJob *j; (j = pop(&s->done_head, &s->done_tail));)
                job_free(j);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        safe_close(s->event_fd);
        free(s->threads);
        free(s);
        return NULL;
}

int syncer_fd(const Syncer *s) {
        return s->event_fd;
}

int syncer_submit(Syncer *s, int fd, int dir_fd, SyncDoneHandler done, void *userdata, SyncJob **ret_job) {
        if (fd < 0 && dir_fd < 0)
                return -EBADF;
        SyncJob *j = calloc(1, sizeof(SyncJob));
        if (!j)
                return -ENOMEM;
        *j = (SyncJob) { .syncer = s, .fd = -1, .dir_fd = -1, .done = done, .userdata = userdata };
        if ((fd >= 0 && (j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) ||
            (dir_fd >= 0 && (j->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3)) < 0)) {
                int r = -errno;
                job_free(j);
                return r;
        }

        pthread_mutex_lock(&s->lock);
        push(&s->queue_head, &s->queue_tail, j);
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        s->in_flight++;
        if (ret_job)
                *ret_job = j;
        return 0;
}

void syncer_cancel(SyncJob *job) {
        if (job)
                job->cancelled = true;
}

unsigned syncer_dispatch(Syncer *s) {
        SyncJob *list, *tail;
        uint64_t counter;
        unsigned n = 0;

        (void) !read(s->event_fd, &counter, sizeof(counter));
        pthread_mutex_lock(&s->lock);
        list = s->done_head;
        tail = s->done_tail;
        s->done_head = s->done_tail = NULL;
        pthread_mutex_unlock(&s->lock);
        (void) tail;

        while (list) {
                SyncJob *j = list;
                list = j->next;
                s->in_flight--;
                n++;
                if (!j->cancelled && j->done)
                        j->done(j, j->error, j->userdata);
                job_free(j);
        }
        return n;
}

unsigned syncer_in_flight(const Syncer *s) {
        return s->in_flight;
}
