/* SPDX-License-Identifier: MIT */
#include "traceparent.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

#include "macro.h"

static int unhex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1; /* the spec allows lower case only */
}

static int unhex(const char *s, uint8_t *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int hi = unhex_digit(s[2 * i]), lo = unhex_digit(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

int traceparent_parse(const char *s, TraceParent *ret) {
        TraceParent tp;

        if (!s || strlen(s) != TRACEPARENT_STRLEN)
                return -EINVAL;
        if (s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-')
                return -EINVAL;
        if (unhex(s + 3, tp.trace_id, 16) < 0 || unhex(s + 36, tp.span_id, 8) < 0 || unhex(s + 53, &tp.flags, 1) < 0)
                return -EINVAL;
        if (all_zero(tp.trace_id, 16) || all_zero(tp.span_id, 8))
                return -EINVAL;

        *ret = tp;
        return 0;
}

void hex_encode(const uint8_t *data, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[data[i] >> 4];
                out[2 * i + 1] = digits[data[i] & 0xF];
        }
        out[2 * n] = '\0';
}

void traceparent_format(const TraceParent *tp, char out[TRACEPARENT_STRLEN + 1]) {
        memcpy(out, "00-", 3);
        hex_encode(tp->trace_id, 16, out + 3);
        out[35] = '-';
        hex_encode(tp->span_id, 8, out + 36);
        out[52] = '-';
        hex_encode(&tp->flags, 1, out + 53);
}

int random_id(uint8_t *out, size_t n) {
        /* Zero bytes are "all zero" forever: the loop below would never end. */
        if (n == 0)
                return -EINVAL;

        do {
                size_t done = 0;
                while (done < n) {
                        ssize_t k = RETRY_ON_EINTR(getrandom(out + done, n - done, 0));
                        if (k < 0)
                                return -errno;
                        done += (size_t) k;
                }
        } while (all_zero(out, n));
        return 0;
}
