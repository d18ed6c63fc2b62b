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

int unix_stream_listen(const char *path, mode_t mode) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        size_t len = strlen(path);
        int r;

        if (len == 0 || len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);

        r = mkdir_parents(path, 0755);
        if (r < 0)
                return r;
        if (lstat(path, &st) >= 0) {
                /* Left over from a previous run (or a crashed VMM): a socket file nobody listens on. Anything
                 * else is not ours to delete, and neither is a socket somebody listens on (a second tetherd
                 * would take the first one's API and machines). */
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                if (unix_socket_is_listening(&sa))
                        return -EADDRINUSE;
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
        }

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if ((mode != 0 && chmod(path, mode) < 0) || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                (void) unlink(path);
                return r;
        }
        return TAKE_FD(fd);
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
