/* SPDX-License-Identifier: MIT */
#pragma once

/* Listening stream sockets on the event loop: the AF_VSOCK port, and the per-machine hybrid vsock Unix sockets
 * "<uds_path>_<port>". Accepted sockets are non-blocking and close-on-exec. Never logs: errors are returned,
 * accept failures are reported to the handler's owner through the error callback. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

typedef struct Listener Listener;

/* Takes ownership of fd (close it, or keep it). peer is the accepted socket's peer address. */
typedef void (*ListenerAcceptHandler)(
        Listener *l, int fd, const struct sockaddr *peer, socklen_t peer_len, void *userdata);
/* An accept() failure other than EAGAIN; on EMFILE/ENFILE the listener pauses for a second by itself. */
typedef void (*ListenerErrorHandler)(Listener *l, int error, void *userdata);

/* Accepts on a listening, non-blocking socket the caller made (taken, also on failure: closed by
 * listener_free(), no file removed). Returns 0 or -errno. */
int listener_new_fd(
        sd_event *e,
        int fd,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret);

/* Returns 0, -EAFNOSUPPORT when the host has no AF_VSOCK (no vhost_vsock/vsock_loopback), or -errno. */
int listener_new_vsock(
        sd_event *e,
        uint32_t port,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret);

/* Binds a Unix stream socket at path, replacing a stale socket file of ours there (never any other kind of
 * file, nor another user's socket: -EEXIST; nor one somebody listens on: -EADDRINUSE), creating missing parent
 * directories (0711); no parent may be a symbolic link (-ELOOP). owner ((uid_t) -1: none) is the owner the
 * caller gives the socket (listener_set_unix_owner()): a stale socket of that owner is replaced too. Returns 0
 * or -errno. */
int listener_new_unix(
        sd_event *e,
        const char *path,
        uid_t owner,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret);

/* A Unix listener's socket file: owner and group ((uid_t) -1 / (gid_t) -1 keep them) and mode (0 keeps it), if
 * the file at its path is still the socket bound (-ESTALE otherwise). Returns 0 or -errno. */
int listener_set_unix_owner(Listener *l, uid_t uid, gid_t gid, mode_t mode);

/* While held, nothing is accepted: connections wait in the socket's backlog, in the order they came (also from
 * the accept handler: no further connection is taken in that wakeup). */
void listener_hold(Listener *l, bool hold);

/* Closes the socket; a Unix socket's file is removed if it is still the one bound. */
Listener *listener_free(Listener *l);

const char *listener_description(const Listener *l);
