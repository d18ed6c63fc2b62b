/* SPDX-License-Identifier: MIT */
/* What an OTLP/HTTP backend answers the exporter, through the pure functions on_http_done() hands it to: the
 * status's verdict (otlp_classify_status()), the body's partial_success (otlp_decode_partial_success(), as
 * ExportTraceServiceResponse, ExportLogsServiceResponse and ExportMetricsServiceResponse), the Retry-After header
 * (otlp_parse_retry_after()) and the wait before the next attempt (otlp_backoff_ns()). Whoever runs the backend, or
 * sits between tetherd and it, writes this answer. Checked against docs/otlp.md, "Delivery (HTTP)":
 *   - the verdict of every status is the documented one;
 *   - a body either does not decode (and the count is left alone: the exporter counts no rejection then) or gives
 *     a count >= 0, the same for traces, logs and metrics (their responses are the same message);
 *   - Retry-After in delay-seconds is that many seconds, capped at 1 hour; an HTTP date in any of the three forms
 *     is the time until that date, 0 in the past, capped at 1 hour (the target also formats dates itself from an
 *     exact time, to compare with what the parser makes of them); nothing else is accepted;
 *   - the backoff is within [d/2, d] for d = min(initial * 2^attempt, max), unless Retry-After is more: then it
 *     is Retry-After.
 *
 * Input: a 29-byte header, the Retry-After value and the body. Header, little-endian:
 *   0       date mode: 0 = Retry-After as given; 1..3 = Retry-After replaced by the date of bytes 11..18 formatted
 *           as IMF-fixdate, RFC 850 or asctime; bit 7 = those bytes are seconds relative to now, not since 1970
 *   1..2    HTTP status (0: no answer)
 *   3..10   now (Unix ns)
 *   11..18  the date's time in seconds (int64), date modes only
 *   19      retry attempt
 *   20..23  jitter random value
 *   24..27  --otlp-retry-max-ms, taken modulo its range 1..3600000
 *   28      length of the Retry-After value + 1 (0: no Retry-After; the value is cut at a NUL as otlp-http.c's
 *           strndup() cuts it) */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "macro.h"
#include "otlp-encode.h"
#include "otlp-http.h"
#include "otlp-retry.h"

#define HEADER_SIZE 29u
#define RETRY_AFTER_CAP_NS (UINT64_C(3600) * NSEC_PER_SEC)
/* main.c's range for --otlp-retry-max-ms, and the initial backoff (1 s, or the maximum if less). */
#define RETRY_MAX_MS_LIMIT 3600000u
#define BACKOFF_INITIAL_NS NSEC_PER_SEC
/* Years an HTTP date writes with four digits; RFC 850's two, as glibc's strptime reads them back (69-99: 19xx). */
#define SECONDS_YEAR_1 INT64_C(-62135596800)
#define SECONDS_YEAR_10000 INT64_C(253402300800)
#define SECONDS_YEAR_1969 INT64_C(-31536000)
#define SECONDS_YEAR_2069 INT64_C(3124137600)

typedef enum DateMode {
        DATE_AS_GIVEN,
        DATE_IMF,
        DATE_RFC850,
        DATE_ASCTIME,
} DateMode;

static uint64_t get_le(const uint8_t *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

/* ---- status ---- */

static void check_status(long status) {
        OtlpVerdict expected;

        if (status == 0 || status == 429 || status == 502 || status == 503 || status == 504)
                expected = OTLP_VERDICT_RETRY;
        else if (status >= 200 && status <= 299)
                expected = OTLP_VERDICT_SUCCESS;
        else
                expected = OTLP_VERDICT_REJECT;
        FUZZ_ASSERT(otlp_classify_status(status) == expected);
}

/* ---- body ---- */

static void check_body(const uint8_t *body, size_t len) {
        /* What the exporter starts from: a body that does not decode rejects nothing. */
        int64_t traces = -1, logs = -1, metrics = -1, other = -1;
        int rt, rl, rm;

        rt = otlp_decode_partial_success(EXPORT_SIGNAL_TRACES, body, len, &traces);
        rl = otlp_decode_partial_success(EXPORT_SIGNAL_LOGS, body, len, &logs);
        rm = otlp_decode_partial_success(EXPORT_SIGNAL_METRICS, body, len, &metrics);
        FUZZ_ASSERT(rt == 0 || rt == -EBADMSG);
        FUZZ_ASSERT(rt == rl && rt == rm);
        if (rt < 0)
                FUZZ_ASSERT(traces == -1 && logs == -1 && metrics == -1);
        else
                FUZZ_ASSERT(traces >= 0 && traces == logs && traces == metrics);
        FUZZ_ASSERT(otlp_decode_partial_success(_EXPORT_SIGNAL_MAX, body, len, &other) == -EINVAL);
        FUZZ_ASSERT(other == -1);
}

/* ---- Retry-After ---- */

/* delay-seconds (RFC 9110: 1*DIGIT), blanks around it allowed: -EINVAL, or the delay capped at 1 hour. */
static int expected_delay_seconds(const char *v, uint64_t *ret_ns) {
        uint64_t s = 0;

        while (*v == ' ' || *v == '\t')
                v++;
        if (*v < '0' || *v > '9')
                return -EINVAL;
        for (; *v >= '0' && *v <= '9'; v++)
                s = MIN(s * 10 + (uint64_t) (*v - '0'), UINT64_C(3601));
        v += strspn(v, " \t\r\n");
        if (*v)
                return -EINVAL;
        *ret_ns = MIN(s * NSEC_PER_SEC, RETRY_AFTER_CAP_NS);
        return 0;
}

/* The delay until t (seconds since 1970) from now: 0 if t is not later, capped at 1 hour. */
static uint64_t expected_delay_until(int64_t t, uint64_t now_ns) {
        unsigned __int128 at = t <= 0 ? 0 : (unsigned __int128) t * NSEC_PER_SEC;

        if (at <= now_ns)
                return 0;
        return (uint64_t) MIN(at - now_ns, (unsigned __int128) RETRY_AFTER_CAP_NS);
}

/* Formats t as an HTTP date the way a backend writes one. Returns false when the form cannot carry that year. */
static bool format_date(DateMode mode, int64_t t, char *buf, size_t size) {
        static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        static const char *const long_days[] = { "Sunday",   "Monday", "Tuesday", "Wednesday",
                                                 "Thursday", "Friday", "Saturday" };
        static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        time_t tt = (time_t) t;
        struct tm tm;

        if (t < SECONDS_YEAR_1 || t >= SECONDS_YEAR_10000 || !gmtime_r(&tt, &tm))
                return false;
        int year = tm.tm_year + 1900;
        switch (mode) {
        case DATE_IMF:
                snprintf(
                        buf,
                        size,
                        "%s, %02d %s %04d %02d:%02d:%02d GMT",
                        days[tm.tm_wday],
                        tm.tm_mday,
                        months[tm.tm_mon],
                        year,
                        tm.tm_hour,
                        tm.tm_min,
                        tm.tm_sec);
                return true;
        case DATE_RFC850:
                if (t < SECONDS_YEAR_1969 || t >= SECONDS_YEAR_2069)
                        return false;
                snprintf(
                        buf,
                        size,
                        "%s, %02d-%s-%02d %02d:%02d:%02d GMT",
                        long_days[tm.tm_wday],
                        tm.tm_mday,
                        months[tm.tm_mon],
                        year % 100,
                        tm.tm_hour,
                        tm.tm_min,
                        tm.tm_sec);
                return true;
        case DATE_ASCTIME:
                snprintf(
                        buf,
                        size,
                        "%s %s %2d %02d:%02d:%02d %04d",
                        days[tm.tm_wday],
                        months[tm.tm_mon],
                        tm.tm_mday,
                        tm.tm_hour,
                        tm.tm_min,
                        tm.tm_sec,
                        year);
                return true;
        default:
                return false;
        }
}

/* Returns the delay the exporter takes from this Retry-After value (0 when it is refused). */
static uint64_t check_retry_after(const char *value, uint64_t now_ns, bool date, int64_t date_t) {
        uint64_t d = 7, later = 7, expected;
        char first = value[strspn(value, " \t")];
        int r;

        r = otlp_parse_retry_after(value, now_ns, &d);
        FUZZ_ASSERT(r == 0 || r == -EINVAL);
        if (date)
                FUZZ_ASSERT(r == 0 && d == expected_delay_until(date_t, now_ns));
        else if (expected_delay_seconds(value, &expected) >= 0)
                FUZZ_ASSERT(r == 0 && d == expected);
        else if (first >= '0' && first <= '9')
                FUZZ_ASSERT(r == -EINVAL); /* digits and junk: no date starts with a digit either */
        if (r < 0) {
                FUZZ_ASSERT(d == 7); /* the exporter's 0 stays 0 */
                return 0;
        }
        FUZZ_ASSERT(d <= RETRY_AFTER_CAP_NS);

        /* Later, a date is no further away, and delay-seconds are the same. */
        if (now_ns <= UINT64_MAX - NSEC_PER_SEC) {
                FUZZ_ASSERT(otlp_parse_retry_after(value, now_ns + NSEC_PER_SEC, &later) == 0);
                FUZZ_ASSERT(later <= d);
        }
        return d;
}

/* ---- backoff ---- */

static void check_backoff(unsigned attempt, uint32_t max_ms, uint32_t random, uint64_t retry_after_ns) {
        uint64_t max_ns = (uint64_t) max_ms * NSEC_PER_MSEC, initial_ns = MIN(BACKOFF_INITIAL_NS, max_ns);
        uint64_t d = initial_ns;

        for (unsigned i = 0; i < attempt && d < max_ns; i++)
                d *= 2; /* below 2 * 3600 s: no overflow */
        d = MIN(d, max_ns);

        uint64_t wait = otlp_backoff_ns(attempt, initial_ns, max_ns, random, retry_after_ns);
        FUZZ_ASSERT(wait >= retry_after_ns);
        FUZZ_ASSERT(wait >= d / 2);
        FUZZ_ASSERT(wait <= MAX(d, retry_after_ns));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *retry_after = NULL;
        char date_buf[64];
        bool date = false;
        int64_t date_t = 0;

        if (size < HEADER_SIZE)
                return 0;
        uint8_t mode = data[0];
        long status = (long) get_le(data + 1, 2);
        uint64_t now_ns = get_le(data + 3, 8);
        int64_t t = (int64_t) get_le(data + 11, 8);
        unsigned attempt = data[19];
        uint32_t random = (uint32_t) get_le(data + 20, 4);
        uint32_t max_ms = (uint32_t) (get_le(data + 24, 4) % RETRY_MAX_MS_LIMIT) + 1;

        /* The rest, as otlp-http.c hands it over: the header's value (a C string) and at most
         * OTLP_HTTP_RESPONSE_MAX bytes of body. */
        const uint8_t *body = data + HEADER_SIZE;
        size_t body_len = size - HEADER_SIZE;
        if (data[28] > 0) {
                size_t n = MIN((size_t) data[28] - 1, body_len);
                retry_after = strndup((const char *) body, n);
                FUZZ_ASSERT(retry_after);
                body += n;
                body_len -= n;
        }
        body_len = MIN(body_len, (size_t) OTLP_HTTP_RESPONSE_MAX);

        DateMode dm = (DateMode) ((mode & 0x7f) % 4);
        if (dm != DATE_AS_GIVEN) {
                /* Relative: within 68 years of now either way, where the dates that matter are. */
                date_t = mode & 0x80 ? (int64_t) (now_ns / NSEC_PER_SEC) + (int32_t) t : t;
                if (format_date(dm, date_t, date_buf, sizeof(date_buf))) {
                        free(retry_after);
                        retry_after = strdup(date_buf);
                        FUZZ_ASSERT(retry_after);
                        date = true;
                }
        }

        check_status(status);
        check_body(body, body_len);
        uint64_t retry_after_ns = retry_after ? check_retry_after(retry_after, now_ns, date, date_t) : 0;
        check_backoff(attempt, max_ms, random, retry_after_ns);
        return 0;
}
