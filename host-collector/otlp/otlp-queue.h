/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* The bounded in-memory queue of one signal. Items are written straight into the open batch, grouped by resource
 * (one buffer per resource, at most OTLP_BATCH_GROUPS resources per batch), already framed for the request they
 * will be part of. The open batch is sealed when it holds batch_items items or batch_bytes bytes, or when its
 * oldest item waited batch_delay_ns. Sealed batches are finished oldest first, a slice at a time
 * (otlp_queue_work()): protobuf batches become one request body (gzipped when configured), OTLP/JSON batches the
 * pieces of one line. Batches are taken out in order to be sent, spooled or written, and released when done.
 *
 * Bounded in bytes: every buffer the queue allocated counts against max_bytes (item buffers by capacity, bodies,
 * the gzip stream's state, the buffers kept for reuse, batches taken out until they are released, and what the
 * owner declares with otlp_queue_hold()). Pure: no I/O, no logging; time is passed in. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "otlp-encode.h"

typedef enum OtlpFormat {
        OTLP_FORMAT_PROTOBUF, /* Export{Trace,Logs}ServiceRequest */
        OTLP_FORMAT_JSON,     /* its OTLP/JSON, one line */
} OtlpFormat;

typedef struct OtlpQueueLimits {
        uint64_t max_bytes;      /* memory of the whole queue */
        size_t batch_items;      /* a batch is sealed at this many items... */
        uint64_t batch_bytes;    /* ...or this many encoded item bytes... */
        uint64_t batch_delay_ns; /* ...or when its oldest item waited this long */
        OtlpFormat format;
        bool gzip; /* protobuf bodies gzipped (RFC 1952) */
} OtlpQueueLimits;

#define OTLP_BATCH_GROUPS 64u

typedef struct OtlpQueue OtlpQueue;
typedef struct OtlpBatchPrivate OtlpBatchPrivate;

/* A sealed batch: one request. */
typedef struct OtlpBatch {
        uint64_t id;   /* the owner's (0 until set) */
        size_t items;  /* spans or log records */
        uint64_t keys; /* the order keys of its items, OR-ed */
        bool ready;    /* finished: body (protobuf) or iov (JSON) complete */
        bool gzip;     /* body is gzipped */
        uint8_t *body; /* protobuf: the request body */
        size_t body_len;
        struct iovec *iov; /* JSON: the pieces of the line, its newline included */
        size_t n_iov;
        OtlpBatchPrivate *priv;
} OtlpBatch;

int otlp_queue_new(ExportSignal signal, const OtlpQueueLimits *limits, OtlpQueue **ret);
OtlpQueue *otlp_queue_free(OtlpQueue *q);

/* Room in the open batch for one item of resource: size bytes exactly (protobuf: the encoded message, which the
 * queue frames), at most size bytes (JSON: the item's object, which the queue separates). Seals the open batch
 * first when the item would not fit in it. key: the item's order key (a bit, or 0). Returns 0 and where to write
 * the item, -ENOBUFS when the queue's bound does not allow it (the item is not in; the open batch may have been
 * sealed), or -ENOMEM. Every successful
 * reserve is followed by one otlp_queue_commit() before the queue is used otherwise. */
int otlp_queue_reserve(OtlpQueue *q, OtlpBlob *resource, uint64_t key, size_t size, uint64_t now_ns, uint8_t **ret);
/* The reserved item is written: len bytes (protobuf: exactly the reserved size). */
void otlp_queue_commit(OtlpQueue *q, size_t len);
/* JSON only: room for a run of items of resource, written back to back and separated by ','. Reserves as
 * otlp_queue_reserve() does for the run's first item (size: its most), then *ret_room: how many bytes the run may
 * take (at least size; the buffer's capacity, within what the batch may still take), *ret_items: how many items
 * (at least 1). Followed by one otlp_queue_commit_items(). Returns as otlp_queue_reserve(), or -EINVAL
 * (protobuf). */
int otlp_queue_reserve_items(
        OtlpQueue *q,
        OtlpBlob *resource,
        uint64_t key,
        size_t size,
        uint64_t now_ns,
        uint8_t **ret,
        size_t *ret_room,
        size_t *ret_items);
/* The run is written: len bytes, items items (at least 1). */
void otlp_queue_commit_items(OtlpQueue *q, size_t len, size_t items);

/* Items waiting (open and sealed batches, not those taken out). */
size_t otlp_queue_items(const OtlpQueue *q);
/* Memory held, counted against max_bytes. */
uint64_t otlp_queue_bytes(const OtlpQueue *q);
/* What waits: encoded item bytes not yet released, and what is held (0 once everything went out). Per resource,
 * its OtlpBlob's pending_bytes says the same of its own items (in every queue it is used in): the measure of
 * each boot's share. */
uint64_t otlp_queue_pending_bytes(const OtlpQueue *q);
/* Declares (delta > 0) or returns memory the owner holds for the queue, e.g. a body read back from disk. */
void otlp_queue_hold(OtlpQueue *q, int64_t delta);

/* Seals the open batch when it is due at now_ns (with force: when it holds anything). Returns 1 when it did. */
int otlp_queue_seal(OtlpQueue *q, uint64_t now_ns, bool force);
/* When the open batch falls due by age (UINT64_MAX when empty). */
uint64_t otlp_queue_deadline(const OtlpQueue *q);

/* Finishes sealed batches, oldest first, until about budget bytes of input went through (at least one slice).
 * Returns 1 when unfinished sealed batches remain, 0 when none, -ENOMEM (the batch stays, unfinished). */
int otlp_queue_work(OtlpQueue *q, uint64_t budget);
/* The oldest sealed batch (ready or not), or NULL. */
OtlpBatch *otlp_queue_head(const OtlpQueue *q);
/* Takes the oldest sealed batch out, finishing it first if needed. Returns 0 (*ret NULL when there is none),
 * -ENOMEM (the batch stays) or -EBADMSG (it could not be encoded: it is released, *ret_dropped set to its
 * items). The batch's memory stays counted until otlp_queue_release(). */
int otlp_queue_take(OtlpQueue *q, OtlpBatch **ret, size_t *ret_dropped);
/* Puts a batch taken out back at the head (it could not go where it was meant to). */
void otlp_queue_untake(OtlpQueue *q, OtlpBatch *b);
/* Frees a batch taken out (its buffers may be kept for reuse). */
void otlp_queue_release(OtlpQueue *q, OtlpBatch *b);

/* The i-th resource of a batch and how many of its items are under it (groups in request order). Returns 0, or
 * -ENOENT past the last. */
int otlp_batch_group(const OtlpBatch *b, size_t i, OtlpBlob **ret_resource, size_t *ret_items);

/* Drops every item not taken out; returns how many. */
size_t otlp_queue_clear(OtlpQueue *q);
