/* SPDX-License-Identifier: MIT */
#include "modules.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

int module_load(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        /* musl has no finit_module() wrapper. */
        if (syscall(SYS_finit_module, fd, "", 0) < 0)
                return errno == EEXIST ? 0 : -errno;
        return 1;
}
