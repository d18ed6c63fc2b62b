/* SPDX-License-Identifier: MIT */
#pragma once

/* The one rate limiter: at most burst events per interval, counted in fixed windows (systemd's ratelimit).
 * Pure: the caller passes the time (CLOCK_MONOTONIC ns) and decides what to do with the verdict. */

#include <stdbool.h>
#include <stdint.h>

typedef struct RateLimit {
        uint64_t interval_ns;
        unsigned burst;
        uint64_t begin_ns;   /* of the current window, 0 before the first event */
        unsigned num;        /* events in the current window */
        uint64_t suppressed; /* refused since the last allowed event */
} RateLimit;

#define RATELIMIT_INIT(interval, b) ((RateLimit) { .interval_ns = (interval), .burst = (b) })

/* True if one more event is allowed now. When it is, *ret_suppressed (if given) gets how many were refused
 * since the last allowed one, and that count starts again from 0. */
static inline bool ratelimit_below(RateLimit *rl, uint64_t now_ns, uint64_t *ret_suppressed) {
        if (rl->begin_ns == 0 || now_ns < rl->begin_ns || now_ns - rl->begin_ns >= rl->interval_ns) {
                rl->begin_ns = now_ns ?: 1;
                rl->num = 0;
        }
        if (rl->num >= rl->burst) {
                rl->suppressed++;
                return false;
        }
        rl->num++;
        if (ret_suppressed)
                *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
}
