/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

#include "macro.h"

/* A newly allocated formatted string, or NULL on allocation failure (unlike asprintf(), whose pointer is
 * undefined on failure, this is safe with _cleanup_free_). */
char *str_printf(const char *fmt, ...) _printf_(1, 2);
