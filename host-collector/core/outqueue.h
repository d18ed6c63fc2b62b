/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Bytes waiting to be written to a non-blocking socket, bounded: a peer that stops reading cannot make tetherd
 * buffer without limit. Never logs. */

#include <stddef.h>
#include <stdint.h>

typedef struct OutQueue {
        uint8_t *buf;
        size_t start, end, capacity;
        size_t max; /* bound on queued bytes */
} OutQueue;

void out_queue_init(OutQueue *q, size_t max);
void out_queue_done(OutQueue *q);

/* Returns 0, -ENOBUFS when the bytes would exceed the bound (nothing is queued), or -ENOMEM. */
int out_queue_append(OutQueue *q, const void *data, size_t n);

static inline size_t out_queue_size(const OutQueue *q) {
        return q->end - q->start;
}
static inline const uint8_t *out_queue_data(const OutQueue *q) {
        return q->buf + q->start;
}
void out_queue_consume(OutQueue *q, size_t n);

/* Writes as much as the socket takes. Returns 1 when everything is written, 0 when bytes remain
 * (EAGAIN), or -errno. */
int out_queue_flush(OutQueue *q, int fd);
