/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "cli-log.h"

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

int log_emit(int level, int error, const LogFields *fields, const char *fmt, ...) {
        int e = error < 0 ? -error : error;
        va_list ap;

        va_start(ap, fmt);
        log_va(e, fmt, ap);
        va_end(ap);
        return -e;
}
