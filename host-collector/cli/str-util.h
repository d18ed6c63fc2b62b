/* SPDX-License-Identifier: MIT */
#pragma once

#include "macro.h"

/* A newly allocated formatted string, or NULL on allocation failure (unlike asprintf(), whose pointer is
 * undefined on failure, this is safe with _cleanup_free_). */
char *str_printf(const char *fmt, ...) _printf_(1, 2);
