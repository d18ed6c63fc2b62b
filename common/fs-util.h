/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* Creates the missing parent directories of path with mode (existing ones are left as they are).
 * Returns 0 or -errno. */
int mkdir_parents(const char *path, mode_t mode);

/* The same, but no parent may be a symbolic link (-ELOOP) or anything but a directory (-ENOTDIR): a path an
 * untrusted client chose cannot lead tetherd somewhere else. */
int mkdir_parents_nofollow(const char *path, mode_t mode);

/* Writes all of data to a blocking fd, retrying on EINTR. Returns 0, or -errno (-EIO if write() returns 0). */
int write_all(int fd, const void *data, size_t n);

/* Reads n bytes from a blocking fd, retrying on EINTR. Returns the bytes read (short only at end of file) or
 * -errno. */
ssize_t read_full(int fd, void *buf, size_t n);
