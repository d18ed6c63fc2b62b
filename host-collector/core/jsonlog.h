/* SPDX-License-Identifier: MIT */
#pragma once

/* tetherd's own log: one JSON object per line on stderr ({"time","level","msg",...}), or structured journal
 * entries when running under systemd. Machine-related lines carry machine_id, request_id and transition
 * (TETHER_MACHINE_ID=, TETHER_REQUEST_ID=, TETHER_TRANSITION= in the journal); every line carries node_id. */

#include <syslog.h>

#include "macro.h"
#include "ratelimit.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO, /* journal if $JOURNAL_STREAM is set, JSON lines otherwise */
        LOG_TARGET_JSON,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
} LogTarget;

typedef struct LogFields {
        const char *machine_id;
        const char *request_id;
        const char *transition;
        /* Lines a guest can cause go through its machine's limiter: beyond it they are counted, and the next
         * line it allows is preceded by "Suppressed N lines about machine ID." */
        RateLimit *ratelimit;
} LogFields;

void log_setup(LogTarget target, int max_level, const char *node_id);
int log_get_max_level(void);

/* Returns the LOG_* level or -EINVAL. Accepts debug, info, notice, warning, error. */
int log_level_from_string(const char *s);
int log_target_from_string(const char *s);

/* Logs one line when level is enabled. error is an errno value (either sign, 0 for none): "%m" in fmt expands
 * to its description. Returns -abs(error), so callers can write return log_error_errno(r, "...: %m"). */
int log_emit(int level, int error, const LogFields *fields, const char *fmt, ...) _printf_(4, 5);

#define log_debug(...) log_emit(LOG_DEBUG, 0, NULL, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, 0, NULL, __VA_ARGS__)
#define log_notice(...) log_emit(LOG_NOTICE, 0, NULL, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, 0, NULL, __VA_ARGS__)
#define log_error(...) log_emit(LOG_ERR, 0, NULL, __VA_ARGS__)
#define log_debug_errno(e, ...) log_emit(LOG_DEBUG, (e), NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_emit(LOG_WARNING, (e), NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_emit(LOG_ERR, (e), NULL, __VA_ARGS__)
#define log_oom() log_emit(LOG_ERR, ENOMEM, NULL, "Out of memory.")
