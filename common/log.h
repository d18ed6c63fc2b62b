/* SPDX-License-Identifier: MIT */
#pragma once

/* The one logging API of every tether binary. Each binary links one backend, which defines log_emit() and the
 * LogFields it understands: tetherd's JSON lines or journal entries (host-collector/core/jsonlog.c, fields: the
 * machine, its request, the transition), the agent's console lines (guest-agent/log.c), the CLI's stderr
 * (host-collector/cli/log.c), tether-vsock's per-VM lines (host-collector/vsock/vsock-log.c). Library code
 * (common/, proto/) never logs: top-level code logs once, where it decides.
 *
 * Levels are syslog's. error is an errno value, either sign, 0 for none: "%m" in fmt stands for its description.
 * Every call returns -abs(error), so that "return log_error_errno(r, "Failed to ...: %m");" passes r on. */

#include <errno.h>
#include <syslog.h>

#include "macro.h"

typedef struct LogFields LogFields;

/* Logs one line when level is enabled; fields may be NULL. Returns -abs(error). */
int log_emit(int level, int error, const LogFields *fields, const char *fmt, ...) _printf_(4, 5);

#define log_debug(...) log_emit(LOG_DEBUG, 0, NULL, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, 0, NULL, __VA_ARGS__)
#define log_notice(...) log_emit(LOG_NOTICE, 0, NULL, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, 0, NULL, __VA_ARGS__)
#define log_error(...) log_emit(LOG_ERR, 0, NULL, __VA_ARGS__)
#define log_debug_errno(e, ...) log_emit(LOG_DEBUG, (e), NULL, __VA_ARGS__)
#define log_info_errno(e, ...) log_emit(LOG_INFO, (e), NULL, __VA_ARGS__)
#define log_notice_errno(e, ...) log_emit(LOG_NOTICE, (e), NULL, __VA_ARGS__)
#define log_warning_errno(e, ...) log_emit(LOG_WARNING, (e), NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_emit(LOG_ERR, (e), NULL, __VA_ARGS__)
#define log_oom() log_emit(LOG_ERR, ENOMEM, NULL, "Out of memory.")
