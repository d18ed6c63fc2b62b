/* SPDX-License-Identifier: MIT */
#include "fs-util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

/* Walks path's parents from the root, creating the missing ones with mode. With nofollow, each must then be a
 * directory that is not a symbolic link. */
static int mkdir_parents_walk(const char *path, mode_t mode, bool nofollow) {
        _cleanup_free_ char *copy = strdup(path);
        struct stat st;

        if (!copy)
                return -ENOMEM;
        char *slash = strrchr(copy, '/');
        if (!slash || slash == copy)
                return 0;
        *slash = '\0';

        for (char *p = copy + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                if (!nofollow) {
                        if (mkdir(copy, mode) < 0 && errno != EEXIST)
                                return -errno;
                } else {
                        if (lstat(copy, &st) < 0) {
                                if (errno != ENOENT)
                                        return -errno;
                                if (mkdir(copy, mode) < 0 && errno != EEXIST)
                                        return -errno;
                                if (lstat(copy, &st) < 0)
                                        return -errno;
                        }
                        if (S_ISLNK(st.st_mode))
                                return -ELOOP;
                        if (!S_ISDIR(st.st_mode))
                                return -ENOTDIR;
                }
                *p = saved;
                if (!saved)
                        return 0;
        }
}

int mkdir_parents(const char *path, mode_t mode) {
        return mkdir_parents_walk(path, mode, false);
}

int mkdir_parents_nofollow(const char *path, mode_t mode) {
        return mkdir_parents_walk(path, mode, true);
}

int write_all(int fd, const void *data, size_t n) {
        const uint8_t *p = data;

        while (n > 0) {
                ssize_t k = RETRY_ON_EINTR(write(fd, p, n));
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

ssize_t read_full(int fd, void *buf, size_t n) {
        uint8_t *p = buf;
        size_t done = 0;

        while (done < n) {
                ssize_t k = RETRY_ON_EINTR(read(fd, p + done, n - done));
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}
