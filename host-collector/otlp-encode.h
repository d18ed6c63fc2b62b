/* SPDX-License-Identifier: MIT */
#pragma once

/* OTLP protobuf encoding of what tetherd exports: a machine's resource, stitched spans, workload log lines and
 * lifecycle events, each encoded on its own so the queue can hold them as bytes; and the assembly of queued items
 * into one ExportTraceServiceRequest / ExportLogsServiceRequest. Pure: no I/O, no logging. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "stats.h"
#include "stitch.h"

#define OTLP_SCOPE_NAME "tether"

/* Resource attributes of one machine (and boot). Strings are borrowed; NULL ones are left out. */
typedef struct OtlpResource {
        const char *service_name; /* service.name */
        const char *host_name;    /* host.name: the guest's hostname */
        const char *host_id;      /* host.id: the machine id, the VM identity the operator knows */
        const char *machine_id;   /* tether.machine.id */
        const char *node_id;      /* tether.node.id */
        const char *request_id;   /* tether.request.id */
        const char *boot_id;      /* tether.boot.id */
        const Attr *attrs;        /* the registration's attributes, under their own keys (the above win) */
        size_t n_attrs;
} OtlpResource;

/* An encoded message with a reference count: one resource is shared by the queued items of a boot. */
typedef struct OtlpBlob {
        unsigned n_ref;
        size_t len;
        uint8_t data[];
} OtlpBlob;

OtlpBlob *otlp_blob_ref(OtlpBlob *b);
OtlpBlob *otlp_blob_unref(OtlpBlob *b);

/* Encodes an opentelemetry.proto.resource.v1.Resource. Returns 0 or -ENOMEM. */
int otlp_encode_resource(const OtlpResource *r, OtlpBlob **ret);

/* Encodes one opentelemetry.proto.trace.v1.Span of a stitched set. Returns 0 or -ENOMEM. */
int otlp_encode_span(const uint8_t trace_id[16], const Span *s, uint8_t **ret, size_t *ret_len);

/* One line of workload output. */
typedef struct OtlpLogLine {
        uint64_t time_unix_ns;     /* host time of the line (the guest time mapped by the clock estimate) */
        uint64_t observed_unix_ns; /* when tetherd received it */
        const uint8_t *trace_id;   /* 16 bytes, or NULL */
        const uint8_t *span_id;    /* 8 bytes, or NULL */
        int stream;                /* Tether__LogStream */
        const char *source;        /* may be NULL */
        uint64_t seq;
        const char *body; /* valid UTF-8, NUL-terminated */
        bool partial;     /* written without its newline: the stream's next line continues it */
} OtlpLogLine;

/* Encodes an opentelemetry.proto.logs.v1.LogRecord. Returns 0 or -ENOMEM. */
int otlp_encode_log_line(const OtlpLogLine *l, uint8_t **ret, size_t *ret_len);

/* A lifecycle event as a LogRecord with event_name "tether.machine.<transition>". details: the event's JSON
 * object; its members other than the resource's ids become attributes (strings, integers, reals, booleans).
 * Returns 0 or -ENOMEM/-EINVAL (no transition). */
int otlp_encode_event(
        const json_t *event,
        uint64_t observed_unix_ns,
        const uint8_t *trace_id,
        const uint8_t *span_id,
        uint8_t **ret,
        size_t *ret_len);

/* One queued item: an encoded Span or LogRecord and the encoded Resource it belongs to. */
typedef struct OtlpItem {
        const OtlpBlob *resource;
        const uint8_t *data;
        size_t len;
} OtlpItem;

/* Assembles an ExportTraceServiceRequest (EXPORT_SIGNAL_TRACES) or ExportLogsServiceRequest (LOGS): one
 * ResourceSpans/ResourceLogs per distinct resource, in order of first appearance, each with one scope holding
 * its items in queue order. Returns 0, -EINVAL (signal) or -ENOMEM. */
int otlp_encode_request(ExportSignal signal, const OtlpItem *items, size_t n, uint8_t **ret, size_t *ret_len);

/* Reads partial_success.rejected_spans / rejected_log_records of an export response (protobuf). Returns 0
 * (*ret_rejected 0 when absent), or -EBADMSG when the body does not decode. */
int otlp_decode_partial_success(ExportSignal signal, const uint8_t *body, size_t len, int64_t *ret_rejected);


/* gzip (RFC 1952) of data, as sent with Content-Encoding: gzip. Returns 0 or -ENOMEM/-EIO. */
int otlp_gzip(const uint8_t *data, size_t len, uint8_t **ret, size_t *ret_len);
