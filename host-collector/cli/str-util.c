/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "str-util.h"

#include <stdarg.h>
#include <stdio.h>

char *str_printf(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);

        return r < 0 ? NULL : s;
}
