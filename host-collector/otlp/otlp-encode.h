/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
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
        uint64_t pending_bytes; /* item bytes under this resource in queues, not released yet (otlp-queue.c) */
        void *owner;            /* its user's (NULL until set): the exporter's boot track whose items these are */
        char *json;             /* its OTLP/JSON, made when first needed (otlp_blob_resource_json()) */
        size_t json_len;
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
        unsigned priority;         /* Log.priority: 1 + the syslog priority, 0: none */
        uint64_t seq;
        const char *body; /* valid UTF-8, NUL-terminated */
        bool partial;     /* written without its newline: the stream's next line continues it */
} OtlpLogLine;

/* A log line's severity: from its syslog priority when it has one (the journal's lines), else ERROR for stderr and
 * INFO for everything else (workload output carries no level: stderr is where programs report problems). The
 * number is OTLP's SeverityNumber (emerg FATAL 21, alert ERROR3 19, crit ERROR2 18, err ERROR 17, warning WARN 13,
 * notice INFO2 10, info INFO 9, debug DEBUG 5); the text is the level as the source knows it (syslog's names). */
typedef struct OtlpSeverity {
        int number;
        const char *text;
} OtlpSeverity;
OtlpSeverity otlp_log_severity(int stream, unsigned priority);

/* Encodes an opentelemetry.proto.logs.v1.LogRecord with protobuf-c. Returns 0 or -ENOMEM. The exporter writes
 * log lines with the templates below instead; this is the reference they are tested against. */
int otlp_encode_log_line(const OtlpLogLine *l, uint8_t **ret, size_t *ret_len);

/* Workload log lines, written directly. Every line of one stored Log record shares all LogRecord fields but the
 * body and tether.log.partial: a template holds them encoded once per record (protobuf or OTLP/JSON), and each
 * line then costs a copy of those bytes and of its text, sanitized (and escaped) on the way. No allocation, no
 * protobuf-c structures; byte for byte what otlp_encode_log_line() packs. */
#define OTLP_LOG_TEMPLATE_MAX 8192u
typedef struct OtlpLogTemplate {
        size_t head_len;    /* fields before the body */
        size_t mid_len;     /* after the body, up to where tether.log.partial goes */
        size_t partial_len; /* tether.log.partial = true */
        size_t tail_len;    /* the rest */
        /* head, mid, tail, partial, tail (JSON: head, mid, tail, ',', head, partial, tail): one copy after a whole
         * line's body */
        uint8_t data[OTLP_LOG_TEMPLATE_MAX];
} OtlpLogTemplate;

/* From l without its body and partial. Returns 0 or -E2BIG (the source does not fit a template). */
int otlp_log_template_protobuf(const OtlpLogLine *l, OtlpLogTemplate *ret);
/* The exact size of the LogRecord message of one line (text: n bytes, sanitized when written). */
size_t otlp_log_line_protobuf_size(const OtlpLogTemplate *t, const char *text, size_t n, bool partial);
/* Writes the LogRecord message (otlp_log_line_protobuf_size() bytes) to out. Returns the bytes written. */
size_t otlp_log_line_protobuf(const OtlpLogTemplate *t, const char *text, size_t n, bool partial, uint8_t *out);

/* Invalid UTF-8 and NUL bytes become U+FFFD, as utf8_sanitize() does. The length once sanitized: */
size_t otlp_utf8_sanitized_len(const char *s, size_t n);
/* Writes the sanitized s (otlp_utf8_sanitized_len() bytes) to out; returns the bytes written. */
size_t otlp_utf8_sanitize_into(const char *s, size_t n, uint8_t *out);

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

/* Metrics. One Metric message (its name, kind and data points) is one queued item of the metrics signal. Sums and
 * histograms are cumulative from start_unix_ns; gauges have no start time. */
typedef enum OtlpMetricKind {
        OTLP_METRIC_GAUGE,
        OTLP_METRIC_SUM,
        OTLP_METRIC_HISTOGRAM,
} OtlpMetricKind;

/* A data point's attributes: at most this many, strings borrowed. */
#define OTLP_POINT_ATTRS_MAX 2u
/* Data points of one metric. */
#define OTLP_METRIC_POINTS_MAX 32u

typedef struct OtlpPointAttr {
        const char *key;
        const char *value;
} OtlpPointAttr;

typedef struct OtlpNumberPoint {
        OtlpPointAttr attrs[OTLP_POINT_ATTRS_MAX]; /* the first n_attrs */
        size_t n_attrs;
        bool is_double; /* as_double, else as_int */
        int64_t as_int;
        double as_double;
} OtlpNumberPoint;

typedef struct OtlpHistogramPoint {
        OtlpPointAttr attrs[OTLP_POINT_ATTRS_MAX];
        size_t n_attrs;
        uint64_t count;
        double sum;
        const double *bounds; /* n_bounds upper bounds, ascending; n_bounds + 1 bucket counts (the last: +Inf) */
        size_t n_bounds;
        const uint64_t *bucket_counts; /* per bucket, not cumulative */
} OtlpHistogramPoint;

typedef struct OtlpMetric {
        const char *name;
        const char *description; /* may be NULL */
        const char *unit;        /* UCUM, may be NULL */
        OtlpMetricKind kind;
        bool monotonic; /* sums */
        uint64_t start_unix_ns, time_unix_ns;
        const OtlpNumberPoint *points; /* gauges and sums */
        const OtlpHistogramPoint *histogram_points;
        size_t n_points; /* 1..OTLP_METRIC_POINTS_MAX */
} OtlpMetric;

/* Encodes an opentelemetry.proto.metrics.v1.Metric. Returns 0, -EINVAL (no points, too many, or a bad kind) or
 * -ENOMEM. */
int otlp_encode_metric(const OtlpMetric *m, uint8_t **ret, size_t *ret_len);

/* One queued item: an encoded Span, LogRecord or Metric and the encoded Resource it belongs to. */
typedef struct OtlpItem {
        const OtlpBlob *resource;
        const uint8_t *data;
        size_t len;
} OtlpItem;

/* Assembles an ExportTraceServiceRequest (EXPORT_SIGNAL_TRACES), ExportLogsServiceRequest (LOGS) or
 * ExportMetricsServiceRequest (METRICS): one ResourceSpans/ResourceLogs/ResourceMetrics per distinct resource, in order
 * of first appearance, each with one scope holding its items in queue order. Returns 0, -EINVAL (signal) or -ENOMEM. */
int otlp_encode_request(ExportSignal signal, const OtlpItem *items, size_t n, uint8_t **ret, size_t *ret_len);

/* Reads partial_success.rejected_spans / rejected_log_records / rejected_data_points of an export response (protobuf).
 * Returns 0
 * (*ret_rejected 0 when absent), or -EBADMSG when the body does not decode. */
int otlp_decode_partial_success(ExportSignal signal, const uint8_t *body, size_t len, int64_t *ret_rejected);


/* The encoded InstrumentationScope {name "tether", version} every request carries (static storage). */
const uint8_t *otlp_scope_protobuf(size_t *ret_len);

/* Protobuf wire helpers for writing straight into a buffer (the caller made room). */
size_t otlp_varint_size(uint64_t v);
/* A length-delimited field's tag and length (field numbers below 16). */
uint8_t *otlp_put_field_header(uint8_t *p, unsigned field, size_t len);
/* Bytes a length-delimited field of len bytes takes (field numbers below 16). */
size_t otlp_field_size(size_t len);

/* gzip (RFC 1952) of data, as sent with Content-Encoding: gzip. Returns 0 or -ENOMEM/-EIO. */
int otlp_gzip(const uint8_t *data, size_t len, uint8_t **ret, size_t *ret_len);
