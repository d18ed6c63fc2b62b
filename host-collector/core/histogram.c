/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "histogram.h"

#include "macro.h"

#include <errno.h>
#include <string.h>

int histogram_init(Histogram *h, const uint64_t *bounds_ns, size_t n_bounds) {
        if (!bounds_ns || n_bounds == 0 || n_bounds > HISTOGRAM_BOUNDS_MAX)
                return -EINVAL;
        for (size_t i = 1; i < n_bounds; i++)
                if (bounds_ns[i] <= bounds_ns[i - 1])
                        return -EINVAL;
        memset(h, 0, sizeof(*h));
        h->bounds_ns = bounds_ns;
        h->n_bounds = n_bounds;
        return 0;
}

void histogram_observe(Histogram *h, uint64_t value_ns) {
        size_t lo = 0, hi = h->n_bounds;

        /* The first bound >= value ("le" is inclusive); n_bounds when above every bound. */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (h->bounds_ns[mid] >= value_ns)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        h->buckets[lo]++;
        h->count++;
        h->sum_ns = add_sat(h->sum_ns, value_ns);
}

uint64_t histogram_cumulative(const Histogram *h, size_t i) {
        uint64_t n = 0;

        if (i > h->n_bounds)
                i = h->n_bounds;
        for (size_t k = 0; k <= i; k++)
                n += h->buckets[k];
        return n;
}
