/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* In a sequence of n elements sorted by a uint64_t key (key(base, i) for element i), the index of the first
 * element whose key is above x: n when there is none, so also the number of elements whose key is <= x.
 * Static inline, so that the key function is inlined. */
static inline size_t upper_bound_u64(
        const void *base, size_t n, uint64_t x, uint64_t (*key)(const void *base, size_t i)) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (key(base, mid) <= x)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}
