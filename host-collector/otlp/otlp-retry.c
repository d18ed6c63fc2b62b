/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-retry.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"

OtlpVerdict otlp_classify_status(long http_status) {
        if (http_status == 0)
                return OTLP_VERDICT_RETRY;
        if (http_status >= 200 && http_status < 300)
                return OTLP_VERDICT_SUCCESS;
        switch (http_status) {
        case 429:
        case 502:
        case 503:
        case 504:
                return OTLP_VERDICT_RETRY;
        default:
                return OTLP_VERDICT_REJECT;
        }
}

/* Retry-After values beyond this are taken as this: a backend must not stall export for days. */
#define RETRY_AFTER_MAX_S UINT64_C(3600)

int otlp_parse_retry_after(const char *value, uint64_t now_unix_ns, uint64_t *ret_ns) {
        static const char *const formats[] = {
                "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
                "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
                "%a %b %e %H:%M:%S %Y",      /* asctime */
        };

        if (!value)
                return -EINVAL;
        while (*value == ' ' || *value == '\t')
                value++;
        if (!*value)
                return -EINVAL;

        if (isdigit((unsigned char) *value)) {
                char *end;
                errno = 0;
                unsigned long long s = strtoull(value, &end, 10);
                while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
                        end++;
                if (*end != '\0')
                        return -EINVAL;
                if (errno == ERANGE || s > RETRY_AFTER_MAX_S)
                        s = RETRY_AFTER_MAX_S;
                *ret_ns = (uint64_t) s * NSEC_PER_SEC;
                return 0;
        }

        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                struct tm tm = {};
                const char *end = strptime(value, formats[i], &tm);
                if (!end)
                        continue;
                while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
                        end++;
                if (*end != '\0')
                        continue;
                /* strptime() reads years 0..9999, which timegm() cannot overflow: -1 is 1969-12-31 23:59:59, a
                 * date in the past like any other, not an error. */
                time_t t = timegm(&tm);
                /* In whole seconds first: nanoseconds since 1970 overflow 64 bits in 2554, and a later date must
                 * still be capped, not wrap around to a short delay. */
                uint64_t at_s = t < 0 ? 0 : (uint64_t) t, now_s = now_unix_ns / NSEC_PER_SEC;
                if (at_s <= now_s)
                        *ret_ns = 0;
                else if (at_s - now_s > RETRY_AFTER_MAX_S)
                        *ret_ns = RETRY_AFTER_MAX_S * NSEC_PER_SEC;
                else
                        *ret_ns = (at_s - now_s) * NSEC_PER_SEC - now_unix_ns % NSEC_PER_SEC;
                return 0;
        }
        return -EINVAL;
}

uint64_t otlp_backoff_ns(
        unsigned attempt, uint64_t initial_ns, uint64_t max_ns, uint32_t random, uint64_t retry_after_ns) {
        uint64_t d = initial_ns;
        for (unsigned i = 0; i < attempt && d < max_ns; i++)
                d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
        d = MIN(d, max_ns);
        /* Full range [d/2, d]: clients retrying after the same outage spread out. */
        d = d / 2 + (uint64_t) ((double) (d / 2) * ((double) random / (double) UINT32_MAX));
        return MAX(d, retry_after_ns);
}
