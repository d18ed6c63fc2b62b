/* SPDX-License-Identifier: MIT */
#include "listener.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "socket-util.h"

/* Accepting is cheap, but a flood of connections must not starve established sessions. */
#define ACCEPTS_PER_WAKEUP 16
#define PAUSE_AFTER_EMFILE_USEC (1 * USEC_PER_SEC)

struct Listener {
        int fd;
        char *path;        /* Unix sockets only */
        struct stat bound; /* the socket file bound at path: only that one is removed */
        char *description;
        sd_event_source *io;
        sd_event_source *pause_timer;
        ListenerAcceptHandler on_accept;
        ListenerErrorHandler on_error;
        void *userdata;
        bool held;   /* listener_hold(): not accepting until released */
        bool paused; /* after EMFILE, until pause_timer */
};

static void listener_update_io(Listener *l) {
        (void) sd_event_source_set_enabled(l->io, l->held || l->paused ? SD_EVENT_OFF : SD_EVENT_ON);
}

static int resume_listening(sd_event_source *s, uint64_t usec, void *userdata) {
        Listener *l = userdata;
        l->paused = false;
        listener_update_io(l);
        return 0;
}

static int on_listen_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;

        for (int i = 0; i < ACCEPTS_PER_WAKEUP && !l->held; i++) {
                struct sockaddr_storage peer;
                socklen_t len = sizeof(peer);

                int cfd = accept4(l->fd, (struct sockaddr *) &peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        int err = errno;
                        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
                                return 0;
                        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                                /* Level-triggered: without a pause the loop would spin on the pending
                                 * connection until an fd frees up. */
                                l->paused = true;
                                listener_update_io(l);
                                if (l->pause_timer) {
                                        (void) sd_event_source_set_time_relative(
                                                l->pause_timer, PAUSE_AFTER_EMFILE_USEC);
                                        (void) sd_event_source_set_enabled(l->pause_timer, SD_EVENT_ONESHOT);
                                } else
                                        (void) sd_event_add_time_relative(
                                                sd_event_source_get_event(s),
                                                &l->pause_timer,
                                                CLOCK_MONOTONIC,
                                                PAUSE_AFTER_EMFILE_USEC,
                                                0,
                                                resume_listening,
                                                l);
                        }
                        if (l->on_error)
                                l->on_error(l, -err, l->userdata);
                        return 0;
                }
                l->on_accept(l, cfd, (struct sockaddr *) &peer, len, l->userdata);
        }
        return 0;
}

/* Watches l's socket and hands l to *ret; frees l on failure. */
static int listener_start(Listener *l, sd_event *e, Listener **ret) {
        int r = sd_event_add_io(e, &l->io, l->fd, EPOLLIN, on_listen_io, l);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

/* A listener without its socket yet, described by the printf-style description (NULL when out of memory). */
_printf_(4, 5) static Listener *listener_alloc(
        ListenerAcceptHandler on_accept, ListenerErrorHandler on_error, void *userdata, const char *fmt, ...) {
        va_list ap;
        int n;

        Listener *l = calloc(1, sizeof(Listener));
        if (!l)
                return NULL;
        l->fd = -1;
        l->on_accept = on_accept;
        l->on_error = on_error;
        l->userdata = userdata;
        va_start(ap, fmt);
        n = vasprintf(&l->description, fmt, ap);
        va_end(ap);
        if (n < 0) {
                l->description = NULL;
                return listener_free(l);
        }
        return l;
}

int listener_new_fd(
        sd_event *e,
        int fd,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret) {
        Listener *l = listener_alloc(on_accept, on_error, userdata, "fd:%d", fd);
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        l->fd = fd;
        return listener_start(l, e, ret);
}

int listener_new_vsock(
        sd_event *e,
        uint32_t port,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret) {
        struct sockaddr_vm sa = {
                .svm_family = AF_VSOCK,
                .svm_port = port,
                .svm_cid = VMADDR_CID_ANY,
        };
        int r;

        Listener *l = listener_alloc(on_accept, on_error, userdata, "vsock:*:%u", port);
        if (!l)
                return -ENOMEM;
        l->fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (l->fd < 0) {
                r = -errno;
                listener_free(l);
                return r == -EINVAL || r == -EPROTONOSUPPORT ? -EAFNOSUPPORT : r;
        }
        if (bind(l->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(l->fd, SOMAXCONN) < 0) {
                r = -errno;
                listener_free(l);
                /* A vsock core without a host transport refuses the bind this way. */
                return r == -EADDRNOTAVAIL || r == -ENODEV ? -EAFNOSUPPORT : r;
        }
        return listener_start(l, e, ret);
}

int listener_new_unix(
        sd_event *e,
        const char *path,
        uid_t owner,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret) {
        int r;

        Listener *l = listener_alloc(on_accept, on_error, userdata, "unix:%s", path);
        if (!l)
                return -ENOMEM;
        /* l->path stays unset until the socket exists: never unlink someone else's file. The path comes from
         * an API client: no symbolic link on the way. */
        l->fd = unix_stream_listen_full(path, 0, UNIX_LISTEN_NO_SYMLINKS, owner, &l->bound);
        if (l->fd < 0) {
                r = l->fd;
                listener_free(l);
                return r;
        }
        if (!(l->path = strdup(path))) {
                (void) unix_socket_unlink(path, &l->bound);
                listener_free(l);
                return -ENOMEM;
        }
        return listener_start(l, e, ret);
}

int listener_set_unix_owner(Listener *l, uid_t uid, gid_t gid, mode_t mode) {
        struct stat st;

        if (!l->path)
                return -EINVAL;
        /* Only the socket bound: a file put there since is somebody else's. */
        if (lstat(l->path, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode) || st.st_dev != l->bound.st_dev || st.st_ino != l->bound.st_ino)
                return -ESTALE;
        if ((uid != (uid_t) -1 || gid != (gid_t) -1) && lchown(l->path, uid, gid) < 0)
                return -errno;
        if (mode != 0 && chmod(l->path, mode) < 0)
                return -errno;
        return 0;
}

void listener_hold(Listener *l, bool hold) {
        if (l->held == hold)
                return;
        l->held = hold;
        if (l->io)
                listener_update_io(l);
}

Listener *listener_free(Listener *l) {
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->io);
        sd_event_source_disable_unref(l->pause_timer);
        safe_close(l->fd);
        if (l->path)
                (void) unix_socket_unlink(l->path, &l->bound);
        free(l->path);
        free(l->description);
        free(l);
        return NULL;
}

const char *listener_description(const Listener *l) {
        return l->description;
}
