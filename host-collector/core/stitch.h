/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Stitches one boot into one trace. Pure: a function of the boot's stored records, its clock estimate and the
 * registration, so the same spans (and span ids) come out before and after a tetherd restart.
 *
 *   machine.boot     kernel.start (boottime 0) → ready (or → exit, or open until now); without kernel.start (an
 *                    agent in a container) from init.start, else from the earliest milestone; with a host-side
 *                    start (libvirt's "started", Boot.host_start_unix_ns) before that, from the host-side start
 *     host.start     host-side start → the guest's start (only with a host-side start before it)
 *     kernel         kernel.start → init.start (only when both are known)
 *     init           init.start → workload.exec
 *     workload.start workload.exec → ready (or exit, or open)
 *     <phase>        one span per Phase record
 *   milestones are span events on the root.
 *
 * Span ids are derived from (trace id, boot id, span key, ordinal), never random. The trace id is the boot's
 * (random per boot, or the registered traceparent's); with a registered traceparent, the root's parent is its
 * span id. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "boot.h"

typedef enum SpanKind {
        SPAN_KIND_ROOT,
        SPAN_KIND_STAGE, /* kernel, init, workload.start */
        SPAN_KIND_PHASE,
} SpanKind;

typedef enum SpanStatus {
        SPAN_STATUS_UNSET,
        SPAN_STATUS_OK,
        SPAN_STATUS_ERROR,
} SpanStatus;

typedef struct SpanAttr {
        char *key;
        char *value; /* string value, NULL for integers */
        int64_t int_value;
} SpanAttr;

typedef struct SpanEvent {
        char *name;
        uint64_t boottime_ns;
        uint64_t time_unix_ns;
        SpanAttr *attrs;
        size_t n_attrs;
} SpanEvent;

typedef struct Span {
        char *name;
        SpanKind kind;
        uint8_t span_id[8];
        bool has_parent;
        uint8_t parent_span_id[8];
        uint64_t start_boottime_ns;
        uint64_t end_boottime_ns; /* UINT64_MAX while open */
        uint64_t start_unix_ns;
        uint64_t end_unix_ns; /* "now" while open */
        bool open;
        bool host_side; /* host.start: before the guest's clock starts, never holds guest events */
        SpanStatus status;
        char *status_message;
        SpanAttr *attrs;
        size_t n_attrs;
        SpanEvent *events;
        size_t n_events;
} Span;

typedef struct SpanSet {
        uint8_t trace_id[16];
        Span *spans; /* root first, then children ordered by start */
        size_t n_spans;
} SpanSet;

typedef struct StitchContext {
        const char *machine_id;
        const char *node_id;
        const char *request_id;        /* may be NULL */
        const char *service_name;      /* may be NULL */
        const uint8_t *parent_span_id; /* the registered traceparent's span id, or NULL */
        uint64_t now_unix_ns;          /* end of open spans */
} StitchContext;

/* Returns 0 or -ENOMEM. */
int stitch_boot(const StitchContext *ctx, const Boot *b, SpanSet **ret);
SpanSet *span_set_free(SpanSet *s);

/* The deterministic span id of the span with this key ("machine.boot", "kernel", "init", "workload.start",
 * "phase:<name>") and ordinal (n-th phase with the same name, from 0) of a boot. Never all zero. */
void stitch_span_id(const uint8_t trace_id[16], const char *boot_id, const char *key, uint64_t ordinal, uint8_t ret[8]);

/* The span id of the boot's workload.start span: the parent that Welcome.traceparent hands to the workload,
 * known before the span itself exists. */
void stitch_workload_span_id(const Boot *b, uint8_t ret[8]);

/* The span id of the boot's root span, machine.boot: what lifecycle events outside the spans are parented to. */
void stitch_root_span_id(const Boot *b, uint8_t ret[8]);

/* The span a guest event at boottime_ns fell in: the latest-starting phase containing it, else the (guest) stage
 * containing it, else the root. NULL only for an empty set. */
const Span *span_set_find_for_time(const SpanSet *s, uint64_t boottime_ns);

const char *span_status_to_string(SpanStatus s);
