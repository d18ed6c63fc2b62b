/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* fdatasync off the event loop: a small pool of threads that sync file descriptors handed to them and report
 * completions through an eventfd, so that the loop never waits for a disk. The loop owns every job's
 * bookkeeping; the threads only see the fds. No sd-event here: the owner watches syncer_fd() and calls
 * syncer_dispatch() when it is readable (tests poll it).
 *
 *     SyncJob *j;
 *     syncer_submit(s, fd, dir_fd, on_done, userdata, &j);   // fds are duplicated: close yours when you like
 *     ...                                                   // fd readable: syncer_dispatch(s) calls on_done
 *     syncer_cancel(j);                                     // owner went away: on_done will not be called
 *
 * Several threads sync at once so that a filesystem's journal can commit many files' syncs together (ext4
 * batches concurrent fsyncs into one transaction); one slow file does not hold the others back.
 * Pure mechanism: never logs. */

#include <stdbool.h>
#include <stdint.h>

#define SYNCER_THREADS_DEFAULT 4u
#define SYNCER_THREADS_MAX 64u

typedef struct Syncer Syncer;
typedef struct SyncJob SyncJob;

/* error: 0, or -errno of the failed fdatasync/fsync. Called from syncer_dispatch(), on the owner's thread. */
typedef void (*SyncDoneHandler)(SyncJob *job, int error, void *userdata);

/* Starts n_threads (1..SYNCER_THREADS_MAX) threads. Returns 0 or -errno. */
int syncer_new(unsigned n_threads, Syncer **ret);
/* Waits for the jobs already submitted (their fds are synced, their handlers are not called) and joins the
 * threads. Accepts NULL. */
Syncer *syncer_free(Syncer *s);

/* The eventfd that becomes readable when completed jobs wait for syncer_dispatch(). */
int syncer_fd(const Syncer *s);

/* Queues fdatasync(fd) when fd >= 0, then fsync(dir_fd) when dir_fd >= 0 (a new file's directory entry must be
 * durable too; a rename or an unlink needs only the directory). At least one of them. Both are duplicated
 * (F_DUPFD_CLOEXEC). ret_job may be NULL when the caller never cancels. Returns 0 or
 * -errno. */
int syncer_submit(Syncer *s, int fd, int dir_fd, SyncDoneHandler done, void *userdata, SyncJob **ret_job);

/* The owner of a job goes away: its handler is not called. The sync itself still happens. Accepts NULL. */
void syncer_cancel(SyncJob *job);

/* Calls the handlers of completed jobs, in completion order, and frees them. Returns how many completed. */
unsigned syncer_dispatch(Syncer *s);

/* Jobs submitted and not yet dispatched (a gauge). */
unsigned syncer_in_flight(const Syncer *s);
