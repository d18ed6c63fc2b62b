/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-encode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef __SSE2__
#        include <emmintrin.h>
#endif

#include "config.h"
#include "macro.h"
#include "otlp_logs.pb-c.h"
#include "otlp_logs_service.pb-c.h"
#include "otlp_metrics.pb-c.h"
#include "otlp_metrics_service.pb-c.h"
#include "otlp_resource.pb-c.h"
#include "otlp_trace.pb-c.h"
#include "otlp_trace_service.pb-c.h"
#include "syslog-priority.h"
#include "tether.pb-c.h"
#include "utf8.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;

/* KeyValue messages with their values and the pointer array protobuf-c wants, in one allocation. */
typedef struct KvList {
        size_t n, cap;
        KeyValue **ptrs;
        KeyValue *kv;
        AnyValue *av;
} KvList;

static int kv_list_init(KvList *l, size_t cap) {
        *l = (KvList) { .cap = cap };
        if (cap == 0)
                return 0;
        l->ptrs = calloc(cap, sizeof(KeyValue *));
        l->kv = calloc(cap, sizeof(KeyValue));
        l->av = calloc(cap, sizeof(AnyValue));
        if (!l->ptrs || !l->kv || !l->av) {
                free(l->ptrs);
                free(l->kv);
                free(l->av);
                return -ENOMEM;
        }
        return 0;
}

static void kv_list_done(KvList *l) {
        free(l->ptrs);
        free(l->kv);
        free(l->av);
}

static AnyValue *kv_list_add(KvList *l, const char *key) {
        if (l->n >= l->cap)
                return NULL;
        KeyValue *kv = &l->kv[l->n];
        AnyValue *av = &l->av[l->n];
        opentelemetry__proto__common__v1__key_value__init(kv);
        opentelemetry__proto__common__v1__any_value__init(av);
        kv->key = (char *) key;
        kv->value = av;
        l->ptrs[l->n++] = kv;
        return av;
}

static void kv_list_add_str(KvList *l, const char *key, const char *value) {
        if (!value)
                return;
        AnyValue *av = kv_list_add(l, key);
        if (!av)
                return;
        av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        av->string_value = (char *) value;
}

static void kv_list_add_int(KvList *l, const char *key, int64_t value) {
        AnyValue *av = kv_list_add(l, key);
        if (!av)
                return;
        av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        av->int_value = value;
}

static void kv_list_add_bool(KvList *l, const char *key, bool value) {
        AnyValue *av = kv_list_add(l, key);
        if (!av)
                return;
        av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        av->bool_value = value;
}

static int pack_message(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len) {
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(MAX(n, (size_t) 1));
        if (!buf)
                return -ENOMEM;
        protobuf_c_message_pack(m, buf);
        *ret = buf;
        *ret_len = n;
        return 0;
}

OtlpBlob *otlp_blob_ref(OtlpBlob *b) {
        if (b)
                b->n_ref++;
        return b;
}

OtlpBlob *otlp_blob_unref(OtlpBlob *b) {
        if (b && --b->n_ref == 0) {
                free(b->json);
                free(b);
        }
        return NULL;
}

int otlp_encode_resource(const OtlpResource *r, OtlpBlob **ret) {
        Opentelemetry__Proto__Resource__V1__Resource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
        KvList l;

        static const char *const reserved[] = { "service.name",      "host.name",      "host.id",
                                                "tether.machine.id", "tether.node.id", "tether.request.id",
                                                "tether.boot.id" };

        if (kv_list_init(&l, ELEMENTSOF(reserved) + r->n_attrs) < 0)
                return -ENOMEM;
        kv_list_add_str(&l, "service.name", r->service_name);
        kv_list_add_str(&l, "host.name", r->host_name);
        kv_list_add_str(&l, "host.id", r->host_id);
        kv_list_add_str(&l, "tether.machine.id", r->machine_id);
        kv_list_add_str(&l, "tether.node.id", r->node_id);
        kv_list_add_str(&l, "tether.request.id", r->request_id);
        kv_list_add_str(&l, "tether.boot.id", r->boot_id);
        for (size_t i = 0; i < r->n_attrs; i++) {
                bool taken = false;
                for (size_t j = 0; j < ELEMENTSOF(reserved) && !taken; j++)
                        taken = strcmp(r->attrs[i].key, reserved[j]) == 0;
                if (!taken)
                        kv_list_add_str(&l, r->attrs[i].key, r->attrs[i].value);
        }
        res.n_attributes = l.n;
        res.attributes = l.ptrs;

        size_t n = opentelemetry__proto__resource__v1__resource__get_packed_size(&res);
        OtlpBlob *b = malloc(sizeof(OtlpBlob) + n);
        if (!b) {
                kv_list_done(&l);
                return -ENOMEM;
        }
        *b = (OtlpBlob) { .n_ref = 1 };
        b->len = opentelemetry__proto__resource__v1__resource__pack(&res, b->data);
        kv_list_done(&l);
        *ret = b;
        return 0;
}

static int kv_list_from_span_attrs(KvList *l, const SpanAttr *a, size_t n) {
        int r = kv_list_init(l, n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (a[i].value)
                        kv_list_add_str(l, a[i].key, a[i].value);
                else
                        kv_list_add_int(l, a[i].key, a[i].int_value);
        return 0;
}

int otlp_encode_span(const uint8_t trace_id[16], const Span *s, uint8_t **ret, size_t *ret_len) {
        Opentelemetry__Proto__Trace__V1__Span span = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        Opentelemetry__Proto__Trace__V1__Status status = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
        _cleanup_free_ Opentelemetry__Proto__Trace__V1__Span__Event *events = NULL;
        _cleanup_free_ Opentelemetry__Proto__Trace__V1__Span__Event **event_ptrs = NULL;
        _cleanup_free_ KvList *event_attrs = NULL;
        KvList attrs;
        int r;

        if (s->n_events > 0) {
                events = calloc(s->n_events, sizeof(*events));
                event_ptrs = calloc(s->n_events, sizeof(*event_ptrs));
                event_attrs = calloc(s->n_events, sizeof(*event_attrs));
                if (!events || !event_ptrs || !event_attrs)
                        return -ENOMEM;
        }
        r = kv_list_from_span_attrs(&attrs, s->attrs, s->n_attrs);
        if (r < 0)
                return r;

        span.trace_id = (ProtobufCBinaryData) { 16, (uint8_t *) trace_id };
        span.span_id = (ProtobufCBinaryData) { 8, (uint8_t *) s->span_id };
        if (s->has_parent)
                span.parent_span_id = (ProtobufCBinaryData) { 8, (uint8_t *) s->parent_span_id };
        span.name = s->name;
        span.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
        span.start_time_unix_nano = s->start_unix_ns;
        span.end_time_unix_nano = MAX(s->end_unix_ns, s->start_unix_ns);
        span.n_attributes = attrs.n;
        span.attributes = attrs.ptrs;

        size_t n_done = 0;
        for (; n_done < s->n_events; n_done++) {
                const SpanEvent *e = &s->events[n_done];
                Opentelemetry__Proto__Trace__V1__Span__Event *ev = &events[n_done];

                r = kv_list_from_span_attrs(&event_attrs[n_done], e->attrs, e->n_attrs);
                if (r < 0)
                        break;
                opentelemetry__proto__trace__v1__span__event__init(ev);
                ev->name = e->name;
                ev->time_unix_nano = e->time_unix_ns;
                ev->n_attributes = event_attrs[n_done].n;
                ev->attributes = event_attrs[n_done].ptrs;
                event_ptrs[n_done] = ev;
        }
        if (r >= 0) {
                span.n_events = s->n_events;
                span.events = event_ptrs;
                if (s->status != SPAN_STATUS_UNSET) {
                        status.code = s->status == SPAN_STATUS_OK ?
                                OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK :
                                OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
                        if (s->status_message)
                                status.message = s->status_message;
                        span.status = &status;
                }
                r = pack_message(&span.base, ret, ret_len);
        }
        for (size_t i = 0; i < n_done; i++)
                kv_list_done(&event_attrs[i]);
        kv_list_done(&attrs);
        return r;
}

OtlpSeverity otlp_log_severity(int stream, unsigned priority) {
        static const int syslog_numbers[SYSLOG_PRIORITY_MAX + 1] = { 21, 19, 18, 17, 13, 10, 9, 5 };

        if (priority >= 1 && priority <= SYSLOG_PRIORITY_MAX + 1)
                return (OtlpSeverity) { syslog_numbers[priority - 1], syslog_priority_to_string(priority - 1) };
        if (stream == TETHER__LOG_STREAM__LOG_STREAM_STDERR)
                return (OtlpSeverity) { OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_ERROR,
                                        "ERROR" };
        return (OtlpSeverity) { OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO, "INFO" };
}

int otlp_encode_log_line(const OtlpLogLine *l, uint8_t **ret, size_t *ret_len) {
        Opentelemetry__Proto__Logs__V1__LogRecord rec = OPENTELEMETRY__PROTO__LOGS__V1__LOG_RECORD__INIT;
        AnyValue body = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
        KvList attrs;
        int r;

        r = kv_list_init(&attrs, 4);
        if (r < 0)
                return r;
        kv_list_add_str(&attrs, "log.iostream", log_stream_to_string(l->stream));
        kv_list_add_str(&attrs, "tether.log.source", l->source);
        kv_list_add_int(&attrs, "tether.log.seq", (int64_t) l->seq);
        if (l->partial)
                kv_list_add_bool(&attrs, "tether.log.partial", true);

        rec.time_unix_nano = l->time_unix_ns;
        rec.observed_time_unix_nano = l->observed_unix_ns;
        OtlpSeverity sev = otlp_log_severity(l->stream, l->priority);
        rec.severity_number = (Opentelemetry__Proto__Logs__V1__SeverityNumber) sev.number;
        rec.severity_text = (char *) sev.text;
        body.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        body.string_value = (char *) l->body;
        rec.body = &body;
        rec.n_attributes = attrs.n;
        rec.attributes = attrs.ptrs;
        if (l->trace_id) {
                rec.trace_id = (ProtobufCBinaryData) { 16, (uint8_t *) l->trace_id };
                rec.flags = 1; /* sampled, as the boot's trace is */
        }
        if (l->span_id)
                rec.span_id = (ProtobufCBinaryData) { 8, (uint8_t *) l->span_id };

        r = pack_message(&rec.base, ret, ret_len);
        kv_list_done(&attrs);
        return r;
}

static bool is_resource_key(const char *k) {
        return strcmp(k, "machine_id") == 0 || strcmp(k, "node_id") == 0 || strcmp(k, "request_id") == 0 ||
                strcmp(k, "time_unix_ns") == 0 || strcmp(k, "transition") == 0;
}

int otlp_encode_event(
        const json_t *event,
        uint64_t observed_unix_ns,
        const uint8_t *trace_id,
        const uint8_t *span_id,
        uint8_t **ret,
        size_t *ret_len) {
        Opentelemetry__Proto__Logs__V1__LogRecord rec = OPENTELEMETRY__PROTO__LOGS__V1__LOG_RECORD__INIT;
        _cleanup_free_ char *event_name = NULL;
        const char *key;
        json_t *v;
        KvList attrs;
        int r;

        const char *transition = json_string_value(json_object_get(event, "transition"));
        if (!transition || !*transition)
                return -EINVAL;
        if (asprintf(&event_name, "tether.machine.%s", transition) < 0)
                return -ENOMEM;
        r = kv_list_init(&attrs, json_object_size(event) + 2);
        if (r < 0)
                return r;
        /* Also as the attribute older consumers know (before LogRecord.event_name existed). */
        kv_list_add_str(&attrs, "event.name", event_name);
        kv_list_add_str(&attrs, "tether.transition", transition);
        json_object_foreach((json_t *) event, key, v) {
                if (is_resource_key(key))
                        continue;
                AnyValue *av;
                switch (json_typeof(v)) {
                case JSON_STRING:
                        kv_list_add_str(&attrs, key, json_string_value(v));
                        break;
                case JSON_INTEGER:
                        kv_list_add_int(&attrs, key, json_integer_value(v));
                        break;
                case JSON_REAL:
                        av = kv_list_add(&attrs, key);
                        if (av) {
                                av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
                                av->double_value = json_real_value(v);
                        }
                        break;
                case JSON_TRUE:
                case JSON_FALSE:
                        av = kv_list_add(&attrs, key);
                        if (av) {
                                av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
                                av->bool_value = json_is_true(v);
                        }
                        break;
                default:
                        break; /* nested details are not flattened */
                }
        }

        json_t *t = json_object_get(event, "time_unix_ns");
        rec.time_unix_nano = json_is_integer(t) ? (uint64_t) json_integer_value(t) : observed_unix_ns;
        rec.observed_time_unix_nano = observed_unix_ns;
        rec.severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO;
        if (strcmp(transition, "crashed") == 0 || strcmp(transition, "oom_killed") == 0 ||
            strcmp(transition, "protocol_error") == 0 || strcmp(transition, "logs_dropped") == 0 ||
            strcmp(transition, "disconnected") == 0)
                rec.severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN;
        rec.event_name = event_name;
        rec.n_attributes = attrs.n;
        rec.attributes = attrs.ptrs;
        if (trace_id) {
                rec.trace_id = (ProtobufCBinaryData) { 16, (uint8_t *) trace_id };
                rec.flags = 1;
        }
        if (span_id)
                rec.span_id = (ProtobufCBinaryData) { 8, (uint8_t *) span_id };
        r = pack_message(&rec.base, ret, ret_len);
        kv_list_done(&attrs);
        return r;
}

size_t otlp_varint_size(uint64_t v) {
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static uint8_t *otlp_put_varint(uint8_t *p, uint64_t v) {
        while (v >= 0x80) {
                *p++ = (uint8_t) (v | 0x80);
                v >>= 7;
        }
        *p++ = (uint8_t) v;
        return p;
}

size_t otlp_field_size(size_t len) {
        return 1 + otlp_varint_size(len) + len;
}

uint8_t *otlp_put_field_header(uint8_t *p, unsigned field, size_t len) {
        *p++ = (uint8_t) ((field << 3) | 2);
        return otlp_put_varint(p, len);
}

#define field_size otlp_field_size
#define put_field_header otlp_put_field_header

static uint8_t *put_field(uint8_t *p, unsigned field, const uint8_t *data, size_t len) {
        p = put_field_header(p, field, len);
        if (len > 0)
                memcpy(p, data, len);
        return p + len;
}

/* InstrumentationScope{name=1, version=2}: constant, written once. */
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberDataPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistogramDataPoint;

/* A data point's attributes (strings): the KeyValues in kv/av, their pointers in ptrs. */
static size_t point_attrs(const OtlpPointAttr *a, size_t n, KeyValue *kv, AnyValue *av, KeyValue **ptrs) {
        size_t k = 0;
        for (size_t i = 0; i < MIN(n, (size_t) OTLP_POINT_ATTRS_MAX); i++) {
                if (!a[i].key || !a[i].value)
                        continue;
                opentelemetry__proto__common__v1__key_value__init(&kv[k]);
                opentelemetry__proto__common__v1__any_value__init(&av[k]);
                av[k].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
                av[k].string_value = (char *) a[i].value;
                kv[k].key = (char *) a[i].key;
                kv[k].value = &av[k];
                ptrs[k] = &kv[k];
                k++;
        }
        return k;
}

int otlp_encode_metric(const OtlpMetric *m, uint8_t **ret, size_t *ret_len) {
        enum { N = OTLP_METRIC_POINTS_MAX, A = OTLP_POINT_ATTRS_MAX };
        Opentelemetry__Proto__Metrics__V1__Metric metric = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT;
        Opentelemetry__Proto__Metrics__V1__Gauge gauge = OPENTELEMETRY__PROTO__METRICS__V1__GAUGE__INIT;
        Opentelemetry__Proto__Metrics__V1__Sum sum = OPENTELEMETRY__PROTO__METRICS__V1__SUM__INIT;
        Opentelemetry__Proto__Metrics__V1__Histogram hist = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM__INIT;
        NumberDataPoint np[N];
        HistogramDataPoint hp[N];
        void *pp[N];
        KeyValue kv[N][A], *kvp[N][A];
        AnyValue av[N][A];
        bool cumulative = m->kind != OTLP_METRIC_GAUGE;

        if (!m->name || m->n_points == 0 || m->n_points > N)
                return -EINVAL;
        if (m->kind == OTLP_METRIC_HISTOGRAM ? !m->histogram_points : !m->points)
                return -EINVAL;
        metric.name = (char *) m->name;
        metric.description = (char *) (m->description ?: "");
        metric.unit = (char *) (m->unit ?: "");
        for (size_t i = 0; i < m->n_points; i++) {
                if (m->kind == OTLP_METRIC_HISTOGRAM) {
                        const OtlpHistogramPoint *h = &m->histogram_points[i];
                        opentelemetry__proto__metrics__v1__histogram_data_point__init(&hp[i]);
                        hp[i].n_attributes = point_attrs(h->attrs, h->n_attrs, kv[i], av[i], kvp[i]);
                        hp[i].attributes = kvp[i];
                        hp[i].start_time_unix_nano = m->start_unix_ns;
                        hp[i].time_unix_nano = m->time_unix_ns;
                        hp[i].count = h->count;
                        hp[i].sum = h->sum;
                        hp[i].n_bucket_counts = h->bucket_counts ? h->n_bounds + 1 : 0;
                        hp[i].bucket_counts = (uint64_t *) h->bucket_counts;
                        hp[i].n_explicit_bounds = h->bucket_counts ? h->n_bounds : 0;
                        hp[i].explicit_bounds = (double *) h->bounds;
                        pp[i] = &hp[i];
                } else {
                        const OtlpNumberPoint *p = &m->points[i];
                        opentelemetry__proto__metrics__v1__number_data_point__init(&np[i]);
                        np[i].n_attributes = point_attrs(p->attrs, p->n_attrs, kv[i], av[i], kvp[i]);
                        np[i].attributes = kvp[i];
                        np[i].start_time_unix_nano = cumulative ? m->start_unix_ns : 0;
                        np[i].time_unix_nano = m->time_unix_ns;
                        if (p->is_double) {
                                np[i].value_case =
                                        OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
                                np[i].as_double = p->as_double;
                        } else {
                                np[i].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
                                np[i].as_int = p->as_int;
                        }
                        pp[i] = &np[i];
                }
        }
        switch (m->kind) {
        case OTLP_METRIC_GAUGE:
                gauge.n_data_points = m->n_points;
                gauge.data_points = (NumberDataPoint **) pp;
                metric.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
                metric.gauge = &gauge;
                break;
        case OTLP_METRIC_SUM:
                sum.n_data_points = m->n_points;
                sum.data_points = (NumberDataPoint **) pp;
                sum.aggregation_temporality =
                        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
                sum.is_monotonic = m->monotonic;
                metric.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
                metric.sum = &sum;
                break;
        case OTLP_METRIC_HISTOGRAM:
                hist.n_data_points = m->n_points;
                hist.data_points = (HistogramDataPoint **) pp;
                hist.aggregation_temporality =
                        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
                metric.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
                metric.histogram = &hist;
                break;
        default:
                return -EINVAL;
        }
        return pack_message(&metric.base, ret, ret_len);
}

const uint8_t *otlp_scope_protobuf(size_t *ret_len) {
        static const char name[] = OTLP_SCOPE_NAME, version[] = TETHER_VERSION;
        static uint8_t buf[sizeof(name) + sizeof(version) + 8];
        static size_t len;

        if (len == 0) {
                uint8_t *p = put_field(buf, 1, (const uint8_t *) name, sizeof(name) - 1);
                p = put_field(p, 2, (const uint8_t *) version, sizeof(version) - 1);
                len = (size_t) (p - buf);
        }
        *ret_len = len;
        return buf;
}

/* ExportXServiceRequest{resource_x=1}; ResourceX{resource=1, scope_x=2}; ScopeX{scope=1, items=2}: the same
 * field numbers for traces, logs and metrics, so one assembly serves the three. */
int otlp_encode_request(ExportSignal signal, const OtlpItem *items, size_t n, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ bool *done = NULL;
        _cleanup_free_ size_t *scope_len = NULL;
        size_t scope_msg_len, total = 0;

        if (signal != EXPORT_SIGNAL_TRACES && signal != EXPORT_SIGNAL_LOGS && signal != EXPORT_SIGNAL_METRICS)
                return -EINVAL;
        const uint8_t *scope = otlp_scope_protobuf(&scope_msg_len);
        done = calloc(MAX(n, (size_t) 1), sizeof(bool));
        scope_len = calloc(MAX(n, (size_t) 1), sizeof(size_t));
        if (!done || !scope_len)
                return -ENOMEM;

        /* First pass: sizes per resource group (stored at the group's first item). */
        for (size_t i = 0; i < n; i++) {
                if (done[i])
                        continue;
                size_t sl = field_size(scope_msg_len);
                for (size_t j = i; j < n; j++)
                        if (!done[j] && items[j].resource == items[i].resource) {
                                sl += field_size(items[j].len);
                                done[j] = j != i;
                        }
                scope_len[i] = sl;
                size_t rl = field_size(items[i].resource->len) + field_size(sl);
                total += field_size(rl);
        }

        uint8_t *buf = malloc(MAX(total, (size_t) 1)), *p = buf;
        if (!buf)
                return -ENOMEM;
        memset(done, 0, n * sizeof(bool));
        for (size_t i = 0; i < n; i++) {
                if (done[i])
                        continue;
                size_t sl = scope_len[i];
                size_t rl = field_size(items[i].resource->len) + field_size(sl);
                p = put_field_header(p, 1, rl);
                p = put_field(p, 1, items[i].resource->data, items[i].resource->len);
                p = put_field_header(p, 2, sl);
                p = put_field(p, 1, scope, scope_msg_len);
                for (size_t j = i; j < n; j++)
                        if (!done[j] && items[j].resource == items[i].resource) {
                                p = put_field(p, 2, items[j].data, items[j].len);
                                done[j] = true;
                        }
        }
        *ret = buf;
        *ret_len = (size_t) (p - buf);
        return 0;
}

int otlp_decode_partial_success(ExportSignal signal, const uint8_t *body, size_t len, int64_t *ret_rejected) {
        int64_t rejected = 0;

        if (signal == EXPORT_SIGNAL_TRACES) {
                Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
                        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
                                NULL, len, body);
                if (!resp)
                        return -EBADMSG;
                if (resp->partial_success)
                        rejected = resp->partial_success->rejected_spans;
                opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(resp, NULL);
        } else if (signal == EXPORT_SIGNAL_LOGS) {
                Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse *resp =
                        opentelemetry__proto__collector__logs__v1__export_logs_service_response__unpack(
                                NULL, len, body);
                if (!resp)
                        return -EBADMSG;
                if (resp->partial_success)
                        rejected = resp->partial_success->rejected_log_records;
                opentelemetry__proto__collector__logs__v1__export_logs_service_response__free_unpacked(resp, NULL);
        } else if (signal == EXPORT_SIGNAL_METRICS) {
                Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *resp =
                        opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(
                                NULL, len, body);
                if (!resp)
                        return -EBADMSG;
                if (resp->partial_success)
                        rejected = resp->partial_success->rejected_data_points;
                opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__free_unpacked(
                        resp, NULL);
        } else
                return -EINVAL;
        *ret_rejected = rejected < 0 ? 0 : rejected;
        return 0;
}

int otlp_gzip(const uint8_t *data, size_t len, uint8_t **ret, size_t *ret_len) {
        z_stream z = {};
        int r;

        /* 15 + 16: a gzip header and trailer rather than zlib's. Level 6 costs little over 1 and halves logs. */
        if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                return -ENOMEM;
        size_t cap = deflateBound(&z, len) + 32;
        uint8_t *buf = malloc(cap);
        if (!buf) {
                deflateEnd(&z);
                return -ENOMEM;
        }
        z.next_in = (Bytef *) data;
        z.avail_in = (uInt) len;
        z.next_out = buf;
        z.avail_out = (uInt) cap;
        r = deflate(&z, Z_FINISH);
        size_t out = cap - z.avail_out;
        deflateEnd(&z);
        if (r != Z_STREAM_END) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_len = out;
        return 0;
}

/* ---- workload log lines, written directly ---- */

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* How many leading bytes are ASCII other than NUL: those need no look at all. 16 bytes at a time with SSE2, else
 * 8 (SWAR). */
static size_t plain_prefix(const uint8_t *p, size_t n) {
        size_t i = 0;

#ifdef __SSE2__
        for (; i + 16 <= n; i += 16) {
                /* Signed: NUL and bytes from 0x80 are not > 0. */
                __m128i v = _mm_loadu_si128((const __m128i *) (p + i));
                unsigned mask = (unsigned) _mm_movemask_epi8(_mm_cmpgt_epi8(v, _mm_setzero_si128())) ^ 0xffffu;
                if (mask)
                        return i + (size_t) __builtin_ctz(mask);
        }
#endif
        for (; i + 8 <= n; i += 8) {
                uint64_t v;
                memcpy(&v, p + i, 8);
                if (((v - ONES) & ~v & HIGHS) | (v & HIGHS))
                        break;
        }
        while (i < n && p[i] != 0 && p[i] < 0x80)
                i++;
        return i;
}

size_t otlp_utf8_sanitized_len(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        size_t i = plain_prefix(p, n), len = i;

        while (i < n) {
                size_t k = utf8_sequence_length(p + i, n - i);
                len += k ? k : 3;
                i += k ? k : 1;
                size_t m = plain_prefix(p + i, n - i);
                len += m;
                i += m;
        }
        return len;
}

size_t otlp_utf8_sanitize_into(const char *s, size_t n, uint8_t *out) {
        const uint8_t *p = (const uint8_t *) s;
        uint8_t *o = out;

        for (size_t i = 0; i < n;) {
                size_t m = plain_prefix(p + i, n - i);
                memcpy(o, p + i, m);
                o += m;
                i += m;
                if (i >= n)
                        break;
                size_t w;
                i += utf8_copy_char(p + i, n - i, o, &w);
                o += w;
        }
        return (size_t) (o - out);
}

static uint8_t *put_fixed64(uint8_t *p, unsigned field, uint64_t v) {
        *p++ = (uint8_t) ((field << 3) | 1);
        for (int i = 0; i < 8; i++)
                *p++ = (uint8_t) (v >> (8 * i));
        return p;
}

/* KeyValue{key=1, value=2 AnyValue} as attribute field 6 of a LogRecord, value already encoded. */
static uint8_t *put_kv(uint8_t *p, const char *key, const uint8_t *any, size_t any_len) {
        size_t kl = strlen(key);
        p = put_field_header(p, 6, field_size(kl) + field_size(any_len));
        p = put_field(p, 1, (const uint8_t *) key, kl);
        return put_field(p, 2, any, any_len);
}

static uint8_t *put_kv_str(uint8_t *p, const char *key, const char *value) {
        size_t n = strlen(value), sl = otlp_utf8_sanitized_len(value, n), kl = strlen(key);
        /* AnyValue{string_value=1} */
        p = put_field_header(p, 6, field_size(kl) + field_size(field_size(sl)));
        p = put_field(p, 1, (const uint8_t *) key, kl);
        p = put_field_header(p, 2, field_size(sl));
        p = put_field_header(p, 1, sl);
        return p + otlp_utf8_sanitize_into(value, n, p);
}

int otlp_log_template_protobuf(const OtlpLogLine *l, OtlpLogTemplate *ret) {
        uint8_t any[16], *p = ret->data, *start;
        const char *stream = log_stream_to_string(l->stream);
        size_t src_len = l->source ? strlen(l->source) : 0;

        /* Worst case: every source byte sanitized to 3; the fixed fields take well under 512. */
        if (src_len > (OTLP_LOG_TEMPLATE_MAX - 512) / 3)
                return -E2BIG;
        /* The field order of protobuf-c's packer: by field number, defaults (0, "") left out. */
        if (l->time_unix_ns != 0)
                p = put_fixed64(p, 1, l->time_unix_ns);
        OtlpSeverity sev = otlp_log_severity(l->stream, l->priority);
        *p++ = 2 << 3;               /* severity_number, varint */
        *p++ = (uint8_t) sev.number; /* every SeverityNumber fits one varint byte */
        p = put_field(p, 3, (const uint8_t *) sev.text, strlen(sev.text));
        ret->head_len = (size_t) (p - ret->data);

        start = p;
        if (stream)
                p = put_kv_str(p, "log.iostream", stream);
        if (l->source)
                p = put_kv_str(p, "tether.log.source", l->source);
        any[0] = 3 << 3; /* int_value, varint: int64 as its two's complement */
        p = put_kv(p, "tether.log.seq", any, (size_t) (otlp_put_varint(any + 1, l->seq) - any));
        ret->mid_len = (size_t) (p - start);

        start = p;
        if (l->trace_id) {
                *p++ = (8 << 3) | 5; /* flags, fixed32: sampled */
                memcpy(p, "\x01\0\0\0", 4);
                p += 4;
                p = put_field(p, 9, l->trace_id, 16);
        }
        if (l->span_id)
                p = put_field(p, 10, l->span_id, 8);
        if (l->observed_unix_ns != 0)
                p = put_fixed64(p, 11, l->observed_unix_ns);
        ret->tail_len = (size_t) (p - start);

        /* Then tether.log.partial and the tail again (see otlp_log_template_json()). */
        uint8_t *tail = start;
        start = p;
        any[0] = 2 << 3; /* bool_value */
        any[1] = 1;
        p = put_kv(p, "tether.log.partial", any, 2);
        ret->partial_len = (size_t) (p - start);
        memcpy(p, tail, ret->tail_len);
        return 0;
}

size_t otlp_log_line_protobuf_size(const OtlpLogTemplate *t, const char *text, size_t n, bool partial) {
        size_t any = field_size(otlp_utf8_sanitized_len(text, n)); /* AnyValue{string_value=1} */
        return t->head_len + field_size(any) + t->mid_len + (partial ? t->partial_len : 0) + t->tail_len;
}

size_t otlp_log_line_protobuf(const OtlpLogTemplate *t, const char *text, size_t n, bool partial, uint8_t *out) {
        const uint8_t *d = t->data;
        uint8_t *p = out;
        size_t sl = otlp_utf8_sanitized_len(text, n);

        memcpy(p, d, t->head_len);
        p += t->head_len;
        d += t->head_len;
        p = put_field_header(p, 5, field_size(sl)); /* body */
        p = put_field_header(p, 1, sl);
        /* Each invalid byte grows by 2 when sanitized: the same length means valid as it is. */
        if (sl == n) {
                memcpy(p, text, n);
                p += n;
        } else
                p += otlp_utf8_sanitize_into(text, n, p);
        if (!partial) {
                memcpy(p, d, t->mid_len + t->tail_len);
                return (size_t) (p - out) + t->mid_len + t->tail_len;
        }
        memcpy(p, d, t->mid_len);
        p += t->mid_len;
        d += t->mid_len + t->tail_len;
        memcpy(p, d, t->partial_len + t->tail_len);
        return (size_t) (p - out) + t->partial_len + t->tail_len;
}
