/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define DURATION_MAX 32

/* Formats a duration for people, about four significant digits, unit chosen after rounding:
 * 0s, 850ns, 12.34µs, 4.123ms, 1.214s, 12.35s, 2m05.3s, 1h02m03s. ascii writes "us" instead of "µs".
 * Returns buf. */
char *format_duration(uint64_t ns, bool ascii, char buf[static DURATION_MAX]);

/* Same, for a signed offset: a leading '-' or '+' when show_plus. */
char *format_offset(int64_t ns, bool show_plus, bool ascii, char buf[static DURATION_MAX]);

/* Parses decimal seconds ("30", "0.5", "2.125"; at most millisecond precision, no sign, no exponent) into
 * milliseconds. Returns 0, -EINVAL if s is not such a number, -ERANGE if it exceeds max_ms. */
int parse_seconds(const char *s, uint64_t max_ms, uint64_t *ret_ms);

/* A point in time as seconds since the epoch with up to 9 decimals ("1795944362.904520200", what `date +%s.%N`
 * prints) → ns. Returns 0, -EINVAL or -ERANGE. */
int parse_epoch_ns(const char *s, uint64_t *ret_ns);
