/* SPDX-License-Identifier: MIT */
#include "agent-log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "macro.h"

#define LOG_PREFIX "tether-agent: "

static int max_level = LOG_INFO;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_emit(int level, int error, const LogFields *fields, const char *format, ...) {
        int e = error < 0 ? -error : error;

        if (level > max_level)
                return -e;

        /* One write() per line, so lines from concurrent writers on the console do not interleave. */
        char line[512];
        size_t n = strlen(LOG_PREFIX);
        memcpy(line, LOG_PREFIX, n);

        va_list ap;
        va_start(ap, format);
        int saved_errno = errno;
        errno = e;
        int k = vformat(line + n, sizeof(line) - n - 1, format, ap);
        errno = saved_errno;
        va_end(ap);

        if (k < 0)
                k = 0;
        n += MIN((size_t) k, sizeof(line) - n - 2);
        line[n++] = '\n';

        (void) RETRY_ON_EINTR(write(STDERR_FILENO, line, n));

        errno = saved_errno;
        return -e;
}
