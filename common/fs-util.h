/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* Creates the missing parent directories of path with mode (existing ones are left as they are).
 * Returns 0 or -errno. */
int mkdir_parents(const char *path, mode_t mode);
