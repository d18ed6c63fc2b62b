/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "duration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "macro.h"

static const struct {
        uint64_t ns;
        const char *utf8;
        const char *ascii;
} units[] = {
        { 1, "ns", "ns" },
        { NSEC_PER_USEC, "µs", "us" },
        { NSEC_PER_MSEC, "ms", "ms" },
        { NSEC_PER_SEC, "s", "s" },
};

static const uint64_t powers_of_ten[] = { 1, 10, 100, 1000, 10000 };

char *format_duration(uint64_t ns, bool ascii, char buf[static DURATION_MAX]) {
        if (ns == 0) {
                snprintf(buf, DURATION_MAX, "0s");
                return buf;
        }
        if (ns < NSEC_PER_USEC) {
                snprintf(buf, DURATION_MAX, "%" PRIu64 "ns", ns);
                return buf;
        }

        if (ns < 60 * NSEC_PER_SEC) {
                size_t u = ELEMENTSOF(units) - 1;
                while (ns < units[u].ns)
                        u--;

                /* Pick the most decimals that keep four significant digits after rounding; rounding may carry
                 * into the next unit (999.96µs is 1.000ms). */
                for (; u < ELEMENTSOF(units); u++)
                        for (unsigned decimals = 3; decimals >= 1; decimals--) {
                                uint64_t q = (ns * powers_of_ten[decimals] + units[u].ns / 2) / units[u].ns;
                                if (q >= powers_of_ten[4])
                                        continue;
                                snprintf(
                                        buf,
                                        DURATION_MAX,
                                        "%" PRIu64 ".%0*" PRIu64 "%s",
                                        q / powers_of_ten[decimals],
                                        (int) decimals,
                                        q % powers_of_ten[decimals],
                                        ascii ? units[u].ascii : units[u].utf8);
                                return buf;
                        }
                /* Not reached: below 60s the seconds unit always fits, but fall through to minutes anyway. */
        }

        /* Rounded without adding first: ns may be close to UINT64_MAX. */
        const uint64_t tenth = NSEC_PER_SEC / 10;
        uint64_t tenths = ns / tenth + (ns % tenth >= tenth / 2);
        if (tenths < 3600 * 10) {
                snprintf(
                        buf,
                        DURATION_MAX,
                        "%" PRIu64 "m%02" PRIu64 ".%" PRIu64 "s",
                        tenths / 600,
                        tenths % 600 / 10,
                        tenths % 10);
                return buf;
        }

        uint64_t s = ns / NSEC_PER_SEC + (ns % NSEC_PER_SEC >= NSEC_PER_SEC / 2);
        snprintf(buf, DURATION_MAX, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600, s % 3600 / 60, s % 60);
        return buf;
}

char *format_offset(int64_t ns, bool show_plus, bool ascii, char buf[static DURATION_MAX]) {
        char d[DURATION_MAX];
        uint64_t magnitude = ns < 0 ? (uint64_t) 0 - (uint64_t) ns : (uint64_t) ns;

        format_duration(magnitude, ascii, d);
        snprintf(buf, DURATION_MAX, "%s%.*s", ns < 0 ? "-" : show_plus ? "+" : "", DURATION_MAX - 2, d);
        return buf;
}

/* "W" or "W.F" (digits only, at most `decimals` digits of F) as an integer in units of 10^-decimals. Returns 0,
 * -EINVAL (not such a number, or finer than the unit) or -ERANGE (does not fit 64 bits). */
static int parse_fixed_point(const char *s, unsigned decimals, uint64_t *ret) {
        uint64_t whole = 0, frac = 0, unit = 1;
        unsigned frac_digits = 0;
        const char *p = s;

        for (unsigned i = 0; i < decimals; i++)
                unit *= 10;
        if (!s || !(*p >= '0' && *p <= '9'))
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (whole > (UINT64_MAX / unit - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t) (*p - '0');
        }
        if (*p == '.') {
                p++;
                if (!(*p >= '0' && *p <= '9'))
                        return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++) {
                        if (frac_digits >= decimals)
                                return -EINVAL;
                        frac = frac * 10 + (uint64_t) (*p - '0');
                        frac_digits++;
                }
        }
        if (*p != '\0')
                return -EINVAL;
        for (; frac_digits < decimals; frac_digits++)
                frac *= 10;
        *ret = whole * unit + frac;
        return 0;
}

int parse_seconds(const char *s, uint64_t max_ms, uint64_t *ret_ms) {
        uint64_t ms;
        /* At most millisecond precision: the server's resolution. */
        int r = parse_fixed_point(s, 3, &ms);
        if (r < 0)
                return r;
        if (ms > max_ms)
                return -ERANGE;
        *ret_ms = ms;
        return 0;
}

int parse_epoch_ns(const char *s, uint64_t *ret_ns) {
        return parse_fixed_point(s, 9, ret_ns);
}
