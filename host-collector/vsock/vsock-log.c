/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "vsock-log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int max_level = LOG_INFO;

void vsock_log_set_max_level(int level) {
        max_level = level;
}

static const struct {
        const char *name;
        int level;
} levels[] = {
        { "debug", LOG_DEBUG },     { "info", LOG_INFO }, { "notice", LOG_NOTICE },
        { "warning", LOG_WARNING }, { "error", LOG_ERR },
};

int vsock_log_level_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                if (strcasecmp(s, levels[i].name) == 0)
                        return levels[i].level;
        return -EINVAL;
}

static const char *level_name(int level) {
        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                if (levels[i].level == level)
                        return levels[i].name;
        return "error";
}

int log_emit(int level, int error, const LogFields *fields, const char *fmt, ...) {
        int saved = errno;
        char msg[1024];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level) {
                errno = saved;
                return -error;
        }

        va_start(ap, fmt);
        errno = error; /* for %m */
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* One write per line so lines from concurrent processes on one stderr do not interleave. */
        fprintf(stderr,
                "tether-vsock[%s]: %s: %s\n",
                fields && fields->ident ? fields->ident : "",
                level_name(level),
                msg);
        errno = saved;
        return -error;
}
