/* SPDX-License-Identifier: MIT */
/* Linked into the static musl build only. protobuf-c calls assert(); musl's __assert_fail() reports with
 * fprintf(), which alone would pull all of printf (12 KB) into the size-capped binary. Same behaviour: a
 * message on stderr, then abort(). */
#include <stdlib.h>

#include "agent-log.h"

_Noreturn void __assert_fail(const char *expr, const char *file, int line, const char *func);

_Noreturn void __assert_fail(const char *expr, const char *file, int line, const char *func) {
        log_error("assertion failed: %s (%s:%d: %s)", expr, file, line, func);
        abort();
}
