/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(clockid_t clock) {
        struct timespec ts;
        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}
