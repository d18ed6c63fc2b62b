/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* Creates a listening, non-blocking, close-on-exec Unix stream socket at path: creates missing parent
 * directories, replaces a stale socket file (a file of another type there is -EEXIST, a socket some process
 * listens on -EADDRINUSE), and applies mode (0 keeps the umask's). Returns the fd, -ENAMETOOLONG, -EEXIST,
 * -EADDRINUSE or -errno; nothing is left at path on failure. */
int unix_stream_listen(const char *path, mode_t mode);

/* Connects a blocking, close-on-exec Unix stream socket to path. Returns the fd, -ENAMETOOLONG or -errno. */
int unix_stream_connect(const char *path);
