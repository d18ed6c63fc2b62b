/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Creates a listening, non-blocking, close-on-exec Unix stream socket at path: creates missing parent
 * directories, replaces a stale socket file of this user's (a file of another type or another user's socket
 * there is -EEXIST, a socket some process listens on -EADDRINUSE), and applies mode (0 keeps the umask's). Returns the
 * fd, -ENAMETOOLONG, -EEXIST, -EADDRINUSE or -errno; nothing is left at path on failure. */
int unix_stream_listen(const char *path, mode_t mode);

typedef enum UnixListenFlags {
        /* A path an untrusted client chose: no parent may be a symbolic link (-ELOOP); missing parents are
         * created 0711 (traversable, not listable). */
        UNIX_LISTEN_NO_SYMLINKS = 1 << 0,
} UnixListenFlags;

/* unix_stream_listen() with flags, returning in *ret_st (if given) the bound socket's lstat(), for
 * unix_socket_unlink(). A stale socket owned by stale_owner ((uid_t) -1: none) counts as ours too: the owner
 * the caller gives its socket after binding it. */
int unix_stream_listen_full(
        const char *path, mode_t mode, UnixListenFlags flags, uid_t stale_owner, struct stat *ret_st);

/* Removes the socket at path only if it is still the one bound (same device and inode, see
 * unix_stream_listen_full()): never a file somebody put there since. Returns 1 if removed, 0 if there was
 * nothing of ours to remove, or -errno. */
int unix_socket_unlink(const char *path, const struct stat *bound);

/* Connects a blocking, close-on-exec Unix stream socket to path. Returns the fd, -ENAMETOOLONG or -errno. */
int unix_stream_connect(const char *path);

/* Takes the fds a received message carries (SCM_RIGHTS): the first max go to fds (NULL if max is 0), the rest
 * are closed, so that none is left open unseen. Returns how many went to fds. */
int cmsg_take_fds(struct msghdr *mh, int *fds, size_t max);
