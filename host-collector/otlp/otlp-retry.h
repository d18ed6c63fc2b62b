/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* What to do with the answer to an export request, and when to try again. Pure. */

#include <stdint.h>

typedef enum OtlpVerdict {
        OTLP_VERDICT_SUCCESS, /* 2xx: delivered (partial_success may still reject some items) */
        OTLP_VERDICT_RETRY,   /* 429, 502, 503, 504, or no HTTP answer at all (connection failure, timeout) */
        OTLP_VERDICT_REJECT,  /* anything else (400, 401, 404, 413, 500...): never retried, items dropped */
} OtlpVerdict;

/* http_status 0 means the request got no HTTP answer. */
OtlpVerdict otlp_classify_status(long http_status);

/* Parses a Retry-After value: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime). A date in the past
 * is a delay of 0. Returns 0 and the delay in *ret_ns, or -EINVAL. */
int otlp_parse_retry_after(const char *value, uint64_t now_unix_ns, uint64_t *ret_ns);

/* Exponential backoff before retry number attempt (0 = first retry): initial * 2^attempt capped at max, then
 * scaled by a jitter factor in [0.5, 1.0] drawn from random (any 32-bit value). Retry-After, when given, is a
 * floor: the result is never below it. */
uint64_t otlp_backoff_ns(
        unsigned attempt, uint64_t initial_ns, uint64_t max_ns, uint32_t random, uint64_t retry_after_ns);
