/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Saturating arithmetic for times: guest timestamps are arbitrary 64-bit values, and an overflow must never be
 * undefined behaviour or wrap into a plausible-looking time. */

#include <stdint.h>

/* t + offset, clamped to [0, UINT64_MAX]. */
static inline uint64_t time_add_offset(uint64_t t, int64_t offset) {
        if (offset >= 0)
                return t > UINT64_MAX - (uint64_t) offset ? UINT64_MAX : t + (uint64_t) offset;
        uint64_t magnitude = (uint64_t) (-(offset + 1)) + 1;
        return t < magnitude ? 0 : t - magnitude;
}

/* a - b as a signed value, clamped to [INT64_MIN, INT64_MAX]. */
static inline int64_t time_diff(uint64_t a, uint64_t b) {
        if (a >= b)
                return a - b > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) (a - b);
        return b - a > (uint64_t) INT64_MAX ? INT64_MIN : -(int64_t) (b - a);
}
