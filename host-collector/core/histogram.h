/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* A fixed-bucket histogram of durations for the Prometheus exposition (api/metrics.c) and the OTLP metrics
 * signal (otlp/otlp-metrics.c). Pure: no I/O, no allocation. Values and bounds are nanoseconds so that the sum is exact
 * (rendered as seconds with nanosecond precision). */

#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_BOUNDS_MAX 32u

typedef struct Histogram {
        const uint64_t *bounds_ns; /* upper bounds (le), strictly increasing; +Inf is implicit */
        size_t n_bounds;
        uint64_t buckets[HISTOGRAM_BOUNDS_MAX + 1]; /* per bucket, not cumulative; [n_bounds] is (last, +Inf) */
        uint64_t count;
        uint64_t sum_ns; /* saturates at UINT64_MAX */
} Histogram;

/* bounds (borrowed, must outlive h): 1..HISTOGRAM_BOUNDS_MAX strictly increasing values. Returns 0 or -EINVAL. */
int histogram_init(Histogram *h, const uint64_t *bounds_ns, size_t n_bounds);
void histogram_observe(Histogram *h, uint64_t value_ns);
/* Observations <= bounds_ns[i] (i == n_bounds: all of them, the +Inf bucket). */
uint64_t histogram_cumulative(const Histogram *h, size_t i);
