/* SPDX-License-Identifier: MIT */
#include "socket-util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"

/* Whether a process listens on the socket at sa: a connect() that succeeds, or finds the backlog full. Only
 * ECONNREFUSED (and a file that is gone) says nobody does. */
static bool unix_socket_is_listening(const struct sockaddr_un *sa) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) >= 0)
                return true;
        return errno == EAGAIN || errno == EINPROGRESS;
}

int unix_stream_listen_full(
        const char *path, mode_t mode, UnixListenFlags flags, uid_t stale_owner, struct stat *ret_st) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        size_t len = strlen(path);
        int r;

        if (len == 0 || len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);

        r = flags & UNIX_LISTEN_NO_SYMLINKS ? mkdir_parents_nofollow(path, 0711) : mkdir_parents(path, 0755);
        if (r < 0)
                return r;
        if (lstat(path, &st) >= 0) {
                /* Left over from a previous run (or a crashed VMM): a socket file of ours nobody listens on.
                 * Anything else is not ours to delete: another kind of file, a socket somebody listens on (a
                 * second tetherd would take the first one's API and machines), or one another user made (in a
                 * sticky directory such as /tmp, only its owner could have replaced it) unless it is the owner
                 * we give our socket there (stale_owner). */
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                if (unix_socket_is_listening(&sa))
                        return -EADDRINUSE;
                if (st.st_uid != geteuid() && (stale_owner == (uid_t) -1 || st.st_uid != stale_owner))
                        return -EEXIST;
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
        }

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if ((mode != 0 && chmod(path, mode) < 0) || listen(fd, SOMAXCONN) < 0 || lstat(path, &st) < 0) {
                r = -errno;
                (void) unlink(path);
                return r;
        }
        if (ret_st)
                *ret_st = st;
        return TAKE_FD(fd);
}

int unix_stream_listen(const char *path, mode_t mode) {
        return unix_stream_listen_full(path, mode, 0, (uid_t) -1, NULL);
}

int unix_socket_unlink(const char *path, const struct stat *bound) {
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode) || st.st_dev != bound->st_dev || st.st_ino != bound->st_ino)
                return 0; /* not the socket we bound any more: somebody else's file now */
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 1;
}

int unix_stream_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int cmsg_take_fds(struct msghdr *mh, int *fds, size_t max) {
        size_t n_fds = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (n_fds < max)
                                fds[n_fds++] = fd;
                        else
                                safe_close(fd);
                }
        }
        return (int) n_fds;
}
