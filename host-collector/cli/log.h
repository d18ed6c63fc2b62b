/* SPDX-License-Identifier: MIT */
#pragma once

/* The CLI's messages: one line on stderr, "tether: ...". Only top-level code (commands, main) logs. */

#include "macro.h"

/* Prints the message, with %m standing for strerror(-r), and returns r (negative errno) for
 * "return log_error_errno(r, ...)". */
int log_error_errno(int r, const char *fmt, ...) _printf_(2, 3);

void log_error(const char *fmt, ...) _printf_(1, 2);
