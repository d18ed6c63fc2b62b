/* SPDX-License-Identifier: MIT */
#pragma once

/* W3C Trace Context "traceparent": version-traceid-parentid-flags, e.g.
 * 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACEPARENT_STRLEN 55

typedef struct TraceParent {
        uint8_t trace_id[16];
        uint8_t span_id[8];
        uint8_t flags;
} TraceParent;

/* Returns 0, or -EINVAL for anything that is not a valid version-00 traceparent (all-zero ids included). */
int traceparent_parse(const char *s, TraceParent *ret);

/* Writes the 55 characters plus NUL into out. */
void traceparent_format(const TraceParent *tp, char out[TRACEPARENT_STRLEN + 1]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *data, size_t n, char *out);

/* Fills trace/span ids with random bytes (getrandom), never all zero. Returns 0, -EINVAL for n == 0, or -errno. */
int random_id(uint8_t *out, size_t n);
