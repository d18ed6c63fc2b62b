/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "log-index.h"

#include <errno.h>
#include <stdlib.h>

#include "bsearch-util.h"

static uint64_t block_size(const LogIndex *x) {
        return x->block ?: LOG_INDEX_BLOCK_INITIAL;
}

/* Keeps every other point (the first one always): the scans get twice as long, the index stays bounded. */
static void thin(LogIndex *x) {
        size_t k = 0;
        for (size_t i = 0; i < x->n; i += 2)
                x->points[k++] = x->points[i];
        x->n = k;
        x->block = block_size(x) * 2;
}

int log_index_add(LogIndex *x, uint64_t seq, uint64_t offset) {
        if (x->n > 0 && offset - x->points[x->n - 1].offset < block_size(x))
                return 0;
        if (x->n == LOG_INDEX_POINTS_MAX) {
                thin(x);
                if (offset - x->points[x->n - 1].offset < block_size(x))
                        return 0;
        }
        if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 4;
                LogIndexPoint *a = realloc(x->points, cap * sizeof(LogIndexPoint));
                if (!a)
                        return -ENOMEM;
                x->points = a;
                x->cap = cap;
        }
        x->points[x->n++] = (LogIndexPoint) { .seq = seq, .offset = offset };
        return 0;
}

static uint64_t point_seq_at(const void *base, size_t i) {
        return ((const LogIndex *) base)->points[i].seq;
}

int log_index_lookup(const LogIndex *x, uint64_t after_seq, uint64_t *ret_offset) {
        if (x->n == 0)
                return -ENOENT;
        /* The last point at or before after_seq, or the first when all are after it. */
        size_t above = upper_bound_u64(x, x->n, after_seq, point_seq_at);
        *ret_offset = x->points[above > 0 ? above - 1 : 0].offset;
        return 0;
}

void log_index_done(LogIndex *x) {
        free(x->points);
        *x = (LogIndex) {};
}

void log_index_truncate(LogIndex *x, uint64_t offset) {
        while (x->n > 0 && x->points[x->n - 1].offset >= offset)
                x->n--;
}
