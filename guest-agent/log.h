/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent's own diagnostics: short lines on stderr (the console in init mode), prefixed "tether-agent: ".
 * Only top-level code (the loop, the transport, main) logs; the pure modules return errors instead. */

#include <stdbool.h>

#include "macro.h"

enum {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG,
};

void log_set_max_level(int level);
int log_get_max_level(void);

/* Logs at level with errno set to |error| (so "%m" names it). Returns -|error|, or 0 if error is 0. */
int log_internal(int level, int error, const char *format, ...) _printf_(3, 4);

#define log_error(...) log_internal(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(error, ...) log_internal(LOG_LEVEL_ERROR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_internal(LOG_LEVEL_WARNING, (error), __VA_ARGS__)
#define log_info_errno(error, ...) log_internal(LOG_LEVEL_INFO, (error), __VA_ARGS__)
#define log_debug_errno(error, ...) log_internal(LOG_LEVEL_DEBUG, (error), __VA_ARGS__)
