/* SPDX-License-Identifier: MIT */
#pragma once

/* Small file helpers without stdio (keeps the static binary small). Never log. */

#include <stddef.h>
#include <sys/types.h>

#include "fs-util.h" /* mkdir_parents(), write_all(), read_full() */

/* Reads at most max bytes of path into a NUL-terminated buffer. Returns 0, -EFBIG when the file is larger,
 * or -errno. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_len);

/* Reads the first line of a small file without its newline. Returns 0 or -errno. */
int read_one_line_file(const char *path, char **ret);

/* Writes data to path atomically (temporary file in the same directory, then rename), creating the parent
 * directory. Returns 0 or -errno. */
int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode);
