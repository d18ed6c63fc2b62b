/* SPDX-License-Identifier: MIT */
#include "otlp-queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

typedef struct QueueEntry {
        OtlpBlob *resource;
        uint8_t *data;
        size_t len;
        uint64_t enqueued_ns;
} QueueEntry;

struct OtlpQueue {
        ExportSignal signal;
        OtlpQueueLimits limits;
        QueueEntry *ring;
        size_t cap, head, n;
        uint64_t bytes;      /* counted against max_bytes */
        uint64_t data_bytes; /* item bytes only */
};

static uint64_t entry_cost(size_t len) {
        return (uint64_t) len + OTLP_QUEUE_ITEM_OVERHEAD;
}

int otlp_queue_new(ExportSignal signal, const OtlpQueueLimits *limits, OtlpQueue **ret) {
        if (limits->batch_items == 0 || limits->max_bytes == 0)
                return -EINVAL;
        OtlpQueue *q = calloc(1, sizeof(OtlpQueue));
        if (!q)
                return -ENOMEM;
        q->signal = signal;
        q->limits = *limits;
        *ret = q;
        return 0;
}

static QueueEntry *entry_at(const OtlpQueue *q, size_t i) {
        return &q->ring[(q->head + i) % q->cap];
}

size_t otlp_queue_clear(OtlpQueue *q) {
        size_t n = q->n;
        for (size_t i = 0; i < q->n; i++) {
                QueueEntry *e = entry_at(q, i);
                otlp_blob_unref(e->resource);
                free(e->data);
        }
        q->n = q->head = 0;
        q->bytes = q->data_bytes = 0;
        return n;
}

OtlpQueue *otlp_queue_free(OtlpQueue *q) {
        if (!q)
                return NULL;
        otlp_queue_clear(q);
        free(q->ring);
        free(q);
        return NULL;
}

int otlp_queue_push(OtlpQueue *q, OtlpBlob *resource, uint8_t *data, size_t len, uint64_t now_ns) {
        uint64_t cost = entry_cost(len);

        if (q->bytes + cost > q->limits.max_bytes)
                return -ENOBUFS;
        if (q->n == q->cap) {
                size_t cap = MAX(q->cap * 2, (size_t) 64);
                QueueEntry *ring = malloc(cap * sizeof(QueueEntry));
                if (!ring)
                        return -ENOMEM;
                for (size_t i = 0; i < q->n; i++)
                        ring[i] = *entry_at(q, i);
                free(q->ring);
                q->ring = ring;
                q->cap = cap;
                q->head = 0;
        }
        *entry_at(q, q->n) = (QueueEntry) {
                .resource = otlp_blob_ref(resource),
                .data = data,
                .len = len,
                .enqueued_ns = now_ns,
        };
        q->n++;
        q->bytes += cost;
        q->data_bytes += len;
        return 0;
}

size_t otlp_queue_items(const OtlpQueue *q) {
        return q->n;
}

uint64_t otlp_queue_bytes(const OtlpQueue *q) {
        return q->bytes;
}

uint64_t otlp_queue_deadline(const OtlpQueue *q) {
        if (q->n == 0)
                return UINT64_MAX;
        uint64_t t = entry_at(q, 0)->enqueued_ns;
        return t > UINT64_MAX - q->limits.batch_delay_ns ? UINT64_MAX : t + q->limits.batch_delay_ns;
}

bool otlp_queue_batch_due(const OtlpQueue *q, uint64_t now_ns, bool force) {
        if (q->n == 0)
                return false;
        return force || q->n >= q->limits.batch_items || q->data_bytes >= q->limits.batch_bytes ||
                now_ns >= otlp_queue_deadline(q);
}

int otlp_queue_take(OtlpQueue *q, uint8_t **ret, size_t *ret_len, size_t *ret_items) {
        _cleanup_free_ OtlpItem *items = NULL;
        size_t n = 0;
        uint64_t bytes = 0;
        int r;

        if (q->n == 0) {
                *ret = NULL;
                *ret_len = 0;
                *ret_items = 0;
                return 0;
        }
        while (n < q->n && n < q->limits.batch_items) {
                size_t len = entry_at(q, n)->len;
                if (n > 0 && bytes + len > q->limits.batch_bytes)
                        break;
                bytes += len;
                n++;
        }
        items = calloc(n, sizeof(OtlpItem));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                QueueEntry *e = entry_at(q, i);
                items[i] = (OtlpItem) { .resource = e->resource, .data = e->data, .len = e->len };
        }
        r = otlp_encode_request(q->signal, items, n, ret, ret_len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                QueueEntry *e = entry_at(q, i);
                q->bytes -= entry_cost(e->len);
                q->data_bytes -= e->len;
                otlp_blob_unref(e->resource);
                free(e->data);
        }
        q->head = (q->head + n) % q->cap;
        q->n -= n;
        *ret_items = n;
        return 0;
}
