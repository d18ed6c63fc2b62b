/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static void log_va(int error, const char *fmt, va_list ap) {
        int saved = errno;

        /* stdout may hold lines already printed: keep the order a reader of both streams sees. */
        fflush(stdout);
        errno = error;
        fputs("tether: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        errno = saved;
}

int log_error_errno(int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_va(r < 0 ? -r : r, fmt, ap);
        va_end(ap);
        return r < 0 ? r : -r;
}

void log_error(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_va(errno, fmt, ap);
        va_end(ap);
}
