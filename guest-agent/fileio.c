/* SPDX-License-Identifier: MIT */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "macro.h"

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        size_t cap = MIN(max, (size_t) 4096), len = 0;
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t k = read_full(fd, buf + len, cap - len);
                if (k < 0)
                        return (int) k;
                len += (size_t) k;
                if (len < cap)
                        break; /* end of file */
                if (cap >= max) {
                        /* Full: anything more means the file is too large. */
                        char c;
                        k = read_full(fd, &c, 1);
                        if (k < 0)
                                return (int) k;
                        if (k > 0)
                                return -EFBIG;
                        break;
                }
                size_t ncap = MIN(cap * 2, max);
                char *nb = realloc(buf, ncap + 1);
                if (!nb)
                        return -ENOMEM;
                buf = nb;
                cap = ncap;
        }

        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int read_one_line_file(const char *path, char **ret) {
        char *buf;
        int r = read_full_file(path, 4096, &buf, NULL);
        if (r < 0)
                return r;
        buf[strcspn(buf, "\n")] = '\0';
        *ret = buf;
        return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode) {
        int r = mkdir_parents(path, 0755);
        if (r < 0)
                return r;

        size_t n = strlen(path) + 16;
        _cleanup_free_ char *tmp = malloc(n);
        if (!tmp)
                return -ENOMEM;
        format(tmp, n, "%s.tmp%u", path, (unsigned) getpid());

        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        if ((r = write_all(fd, data, len)) < 0 || (fchmod(fd, mode) < 0 && (r = -errno))) {
                unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                unlink(tmp);
                return r;
        }
        return 0;
}
