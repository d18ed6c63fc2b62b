/* SPDX-License-Identifier: MIT */
#pragma once

/* snprintf() for the subset the agent uses: %d %i %u %x %s %c %% %m, the flags '-' and '0', a width, a
 * precision for strings (%.8s, %.*s) and the length modifiers hh h l ll z j t. No floating point: musl's
 * printf drags 12 KB of it into a static binary that must stay under 128 KiB.
 * Like snprintf(): always NUL-terminates (size > 0) and returns the length the full output would have. */

#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

int vformat(char *buf, size_t size, const char *fmt, va_list ap);
int format(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);

/* A newly allocated formatted string, or NULL on ENOMEM. */
char *format_alloc(const char *fmt, ...) _printf_(1, 2);
