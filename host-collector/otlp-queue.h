/* SPDX-License-Identifier: MIT */
#pragma once

/* The bounded in-memory queue of one signal: encoded items (spans or log records) with their resource, bounded
 * in bytes, taken out in batches by count and size, due when full enough or old enough. Pure: time is passed in. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otlp-encode.h"

/* Per-item bookkeeping counted against the byte bound beyond the item's own bytes. */
#define OTLP_QUEUE_ITEM_OVERHEAD 64u

typedef struct OtlpQueueLimits {
        uint64_t max_bytes;      /* whole queue */
        size_t batch_items;      /* a batch is due at this many items... */
        uint64_t batch_bytes;    /* ...or this many item bytes... */
        uint64_t batch_delay_ns; /* ...or when the oldest item waited this long */
} OtlpQueueLimits;

typedef struct OtlpQueue OtlpQueue;

int otlp_queue_new(ExportSignal signal, const OtlpQueueLimits *limits, OtlpQueue **ret);
OtlpQueue *otlp_queue_free(OtlpQueue *q);

/* Appends an item. Takes ownership of data and a reference to resource on success only. Returns 0, or -ENOBUFS
 * when it would exceed max_bytes (nothing changes), or -ENOMEM. */
int otlp_queue_push(OtlpQueue *q, OtlpBlob *resource, uint8_t *data, size_t len, uint64_t now_ns);

size_t otlp_queue_items(const OtlpQueue *q);
uint64_t otlp_queue_bytes(const OtlpQueue *q);

/* Whether a batch should go out now. With force, any item is enough. */
bool otlp_queue_batch_due(const OtlpQueue *q, uint64_t now_ns, bool force);
/* When the oldest item's delay expires (UINT64_MAX when empty). */
uint64_t otlp_queue_deadline(const OtlpQueue *q);

/* Removes up to batch_items items / batch_bytes bytes (at least one item) from the head and encodes them into
 * one export request. Returns 0 (*ret_items 0 and *ret NULL when empty), or -ENOMEM (the queue is unchanged). */
int otlp_queue_take(OtlpQueue *q, uint8_t **ret, size_t *ret_len, size_t *ret_items);

/* Drops everything; returns the number of items dropped. */
size_t otlp_queue_clear(OtlpQueue *q);
