/* SPDX-License-Identifier: MIT */
/* OTLP encoding: a stitched boot assembled into an ExportTraceServiceRequest decodes (protobuf-c) with the stitched
 * ids, parent links, host times, attributes and resource; log lines and events become LogRecords with their
 * correlation ids; the OTLP/JSON rendering has lowerCamelCase keys, hex ids, integer enums and 64-bit strings. */

#include <errno.h>
#include <string.h>

#include "boot.h"
#include "collector-test.h"
#include "macro.h"
#include "otlp-encode.h"
#include "otlp-json.h"
#include "otlp_logs_service.pb-c.h"
#include "otlp_trace_service.pb-c.h"
#include "stitch.h"
#include "utf8.h"

#define MS UINT64_C(1000000)
#define OFFSET (UINT64_C(1700000000000000000))

static void apply(Boot *b, const Bytes *frame) {
        FrameReader r;
        const uint8_t *p;
        size_t len;
        Tether__Envelope *e;
        BootApplyResult res;

        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, frame->data, frame->len);
        while (frame_reader_next(&r, &p, &len) == 1) {
                assert_int_equal(envelope_unpack(p, len, &e), 0);
                assert_int_equal(boot_apply_record(b, NULL, e, OFFSET, &res), 0);
                envelope_free(e);
        }
        frame_reader_done(&r);
}

static const uint8_t parent[8] = { 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7 };
static const uint8_t trace[16] = { 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                   0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36 };

static SpanSet *stitched(void) {
        Boot *b;
        Bytes f = {};
        SpanSet *s;
        StitchContext ctx = {
                .machine_id = "vm-1",
                .node_id = "node-a",
                .request_id = "req-9",
                .service_name = "svc",
                .parent_span_id = parent,
                .now_unix_ns = OFFSET + 5000 * MS,
        };

        assert_int_equal(boot_new(1, "boot-a", trace, NULL, &b), 0);
        b->clock = (ClockEstimate) { .valid = true, .offset_ns = (int64_t) OFFSET, .error_ns = 1234 };
        milestone_frame(&f, 1, "kernel.start", 0);
        milestone_frame(&f, 2, "init.start", 100 * MS);
        phase_frame(&f, 3, "mount", 120 * MS, 200 * MS);
        milestone_frame(&f, 4, "workload.exec", 300 * MS);
        ready_frame(&f, 5, "sd_notify", 900 * MS);
        apply(b, &f);
        bytes_free(&f);
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        boot_free(b);
        return s;
}

static const char *kv_string(Opentelemetry__Proto__Common__V1__KeyValue **kv, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(kv[i]->key, key) == 0 && kv[i]->value &&
                    kv[i]->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
                        return kv[i]->value->string_value;
        return NULL;
}

static OtlpBlob *resource(void) {
        /* Registration attributes: their own keys, but never over the fixed ones. */
        static const Attr attrs[] = { { (char *) "env", (char *) "prod" }, { (char *) "service.name", (char *) "x" } };
        OtlpResource r = {
                .attrs = attrs,
                .n_attrs = 2,
                .service_name = "svc",
                .host_name = "guest-host",
                .host_id = "vm-1",
                .machine_id = "vm-1",
                .node_id = "node-a",
                .request_id = "req-9",
                .boot_id = "boot-a",
        };
        OtlpBlob *b;
        assert_int_equal(otlp_encode_resource(&r, &b), 0);
        return b;
}

static void test_spans_request(void **state) {
        SpanSet *s = stitched();
        OtlpBlob *res = resource(), *other = resource();
        OtlpItem items[32];
        uint8_t *data[32];
        uint8_t *body;
        size_t len;

        assert_true(s->n_spans >= 4 && s->n_spans < 32);
        for (size_t i = 0; i < s->n_spans; i++) {
                size_t n;
                assert_int_equal(otlp_encode_span(s->trace_id, &s->spans[i], &data[i], &n), 0);
                /* The last span belongs to another resource: a second ResourceSpans. */
                items[i] = (OtlpItem) { .resource = i + 1 == s->n_spans ? other : res, .data = data[i], .len = n };
        }
        assert_int_equal(otlp_encode_request(EXPORT_SIGNAL_TRACES, items, s->n_spans, &body, &len), 0);

        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req =
                opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len, body);
        assert_non_null(req);
        assert_int_equal(req->n_resource_spans, 2);
        Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = req->resource_spans[0];
        assert_string_equal(kv_string(rs->resource->attributes, rs->resource->n_attributes, "service.name"), "svc");
        assert_string_equal(kv_string(rs->resource->attributes, rs->resource->n_attributes, "host.name"), "guest-host");
        assert_string_equal(kv_string(rs->resource->attributes, rs->resource->n_attributes, "env"), "prod");
        size_t n_service_names = 0;
        for (size_t i = 0; i < rs->resource->n_attributes; i++)
                n_service_names += strcmp(rs->resource->attributes[i]->key, "service.name") == 0;
        assert_int_equal(n_service_names, 1);
        assert_string_equal(
                kv_string(rs->resource->attributes, rs->resource->n_attributes, "tether.machine.id"), "vm-1");
        assert_int_equal(rs->n_scope_spans, 1);
        assert_string_equal(rs->scope_spans[0]->scope->name, OTLP_SCOPE_NAME);
        assert_int_equal(rs->scope_spans[0]->n_spans + req->resource_spans[1]->scope_spans[0]->n_spans, s->n_spans);

        for (size_t i = 0; i + 1 < s->n_spans; i++) {
                const Opentelemetry__Proto__Trace__V1__Span *sp = rs->scope_spans[0]->spans[i];
                const Span *want = &s->spans[i];
                assert_string_equal(sp->name, want->name);
                assert_int_equal(sp->trace_id.len, 16);
                assert_memory_equal(sp->trace_id.data, trace, 16);
                assert_memory_equal(sp->span_id.data, want->span_id, 8);
                assert_int_equal(sp->parent_span_id.len, want->has_parent ? 8 : 0);
                if (want->has_parent)
                        assert_memory_equal(sp->parent_span_id.data, want->parent_span_id, 8);
                assert_int_equal(sp->start_time_unix_nano, want->start_unix_ns);
                assert_int_equal(sp->end_time_unix_nano, want->end_unix_ns);
                assert_non_null(kv_string(sp->attributes, sp->n_attributes, "tether.transition"));
                assert_int_equal(sp->n_events, want->n_events);
        }
        /* The root's parent is the registered span; it carries the milestones as events. */
        assert_memory_equal(rs->scope_spans[0]->spans[0]->parent_span_id.data, parent, 8);
        assert_true(rs->scope_spans[0]->spans[0]->n_events >= 3);
        assert_int_equal(rs->scope_spans[0]->spans[0]->events[0]->time_unix_nano, OFFSET);

        /* OTLP/JSON of the same request. */
        char *line;
        assert_int_equal(otlp_request_to_json(EXPORT_SIGNAL_TRACES, body, len, &line), 0);
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        json_t *js = json_array_get(
                json_object_get(
                        json_array_get(
                                json_object_get(json_array_get(json_object_get(o, "resourceSpans"), 0), "scopeSpans"),
                                0),
                        "spans"),
                0);
        assert_non_null(js);
        assert_string_equal(json_string_value(json_object_get(js, "traceId")), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_string_equal(json_string_value(json_object_get(js, "parentSpanId")), "00f067aa0ba902b7");
        assert_true(json_is_string(json_object_get(js, "startTimeUnixNano")));
        char want_start[32];
        snprintf(want_start, sizeof(want_start), "%llu", (unsigned long long) s->spans[0].start_unix_ns);
        assert_string_equal(json_string_value(json_object_get(js, "startTimeUnixNano")), want_start);
        assert_true(json_is_integer(json_object_get(js, "kind")));
        assert_int_equal(json_integer_value(json_object_get(js, "kind")), 1);
        assert_null(json_object_get(js, "trace_id"));
        assert_non_null(json_object_get(json_array_get(json_object_get(js, "events"), 0), "timeUnixNano"));
        json_decref(o);
        free(line);

        opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req, NULL);
        free(body);
        for (size_t i = 0; i < s->n_spans; i++)
                free(data[i]);
        otlp_blob_unref(res);
        otlp_blob_unref(other);
        span_set_free(s);
}

static void test_logs_request(void **state) {
        OtlpBlob *res = resource();
        uint8_t span[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        OtlpLogLine line = {
                .time_unix_ns = OFFSET + 5,
                .observed_unix_ns = OFFSET + 9,
                .trace_id = trace,
                .span_id = span,
                .stream = TETHER__LOG_STREAM__LOG_STREAM_STDERR,
                .seq = 42,
                .body = "hello \"world\"",
        };
        uint8_t *l, *ev, *body;
        size_t l_len, ev_len, len;

        assert_int_equal(otlp_encode_log_line(&line, &l, &l_len), 0);
        json_t *event = json_pack(
                "{s:s, s:s, s:I, s:s, s:i}",
                "machine_id",
                "vm-1",
                "transition",
                "exited",
                "time_unix_ns",
                (json_int_t) (OFFSET + 7),
                "reason",
                "done",
                "code",
                3);
        assert_int_equal(otlp_encode_event(event, OFFSET + 8, trace, span, &ev, &ev_len), 0);
        json_t *bad = json_pack("{s:s}", "machine_id", "vm-1");
        assert_int_equal(otlp_encode_event(bad, OFFSET, NULL, NULL, &body, &len), -EINVAL);
        json_decref(bad);
        json_decref(event);

        OtlpItem items[] = { { res, l, l_len }, { res, ev, ev_len } };
        assert_int_equal(otlp_encode_request(EXPORT_SIGNAL_LOGS, items, 2, &body, &len), 0);
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req =
                opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(NULL, len, body);
        assert_non_null(req);
        assert_int_equal(req->n_resource_logs, 1);
        assert_int_equal(req->resource_logs[0]->scope_logs[0]->n_log_records, 2);
        Opentelemetry__Proto__Logs__V1__LogRecord *r = req->resource_logs[0]->scope_logs[0]->log_records[0];
        assert_int_equal(r->time_unix_nano, OFFSET + 5);
        assert_int_equal(r->observed_time_unix_nano, OFFSET + 9);
        assert_memory_equal(r->trace_id.data, trace, 16);
        assert_memory_equal(r->span_id.data, span, 8);
        assert_string_equal(r->body->string_value, "hello \"world\"");
        assert_string_equal(kv_string(r->attributes, r->n_attributes, "log.iostream"), "stderr");
        Opentelemetry__Proto__Logs__V1__LogRecord *e = req->resource_logs[0]->scope_logs[0]->log_records[1];
        assert_string_equal(e->event_name, "tether.machine.exited");
        assert_string_equal(kv_string(e->attributes, e->n_attributes, "event.name"), "tether.machine.exited");
        assert_string_equal(kv_string(e->attributes, e->n_attributes, "reason"), "done");
        assert_null(kv_string(e->attributes, e->n_attributes, "machine_id"));
        assert_int_equal(e->time_unix_nano, OFFSET + 7);

        char *text;
        assert_int_equal(otlp_request_to_json(EXPORT_SIGNAL_LOGS, body, len, &text), 0);
        json_t *o = json_loads(text, 0, NULL);
        assert_non_null(o);
        json_t *rec = json_array_get(
                json_object_get(
                        json_array_get(
                                json_object_get(json_array_get(json_object_get(o, "resourceLogs"), 0), "scopeLogs"), 0),
                        "logRecords"),
                0);
        assert_string_equal(json_string_value(json_object_get(rec, "spanId")), "0102030405060708");
        assert_true(json_is_string(json_object_get(rec, "observedTimeUnixNano")));
        assert_int_equal(json_integer_value(json_object_get(rec, "severityNumber")), 17);
        json_t *seq = NULL;
        json_t *a;
        size_t i;
        json_array_foreach(
                json_object_get(rec, "attributes"),
                i,
                a) if (strcmp(json_string_value(json_object_get(a, "key")), "tether.log.seq") == 0) seq = a;
        assert_non_null(seq);
        assert_string_equal(json_string_value(json_object_get(json_object_get(seq, "value"), "intValue")), "42");
        json_decref(o);
        free(text);
        assert_int_equal(
                otlp_request_to_json(EXPORT_SIGNAL_LOGS, (const uint8_t *) "\xff\xff\xff", 3, &text), -EBADMSG);

        opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req, NULL);
        free(body);
        free(l);
        free(ev);
        otlp_blob_unref(res);
}

static void test_partial_success_and_gzip(void **state) {
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse resp =
                OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsPartialSuccess ps =
                OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_PARTIAL_SUCCESS__INIT;
        uint8_t buf[64];
        int64_t rejected = -1;

        size_t n = opentelemetry__proto__collector__logs__v1__export_logs_service_response__pack(&resp, buf);
        assert_int_equal(otlp_decode_partial_success(EXPORT_SIGNAL_LOGS, buf, n, &rejected), 0);
        assert_int_equal(rejected, 0);
        ps.rejected_log_records = 7;
        resp.partial_success = &ps;
        n = opentelemetry__proto__collector__logs__v1__export_logs_service_response__pack(&resp, buf);
        assert_int_equal(otlp_decode_partial_success(EXPORT_SIGNAL_LOGS, buf, n, &rejected), 0);
        assert_int_equal(rejected, 7);
        assert_int_equal(
                otlp_decode_partial_success(EXPORT_SIGNAL_LOGS, (const uint8_t *) "\x0a\x10", 2, &rejected), -EBADMSG);

        uint8_t *gz;
        size_t gz_len;
        char text[4096];
        memset(text, 'a', sizeof(text));
        assert_int_equal(otlp_gzip((const uint8_t *) text, sizeof(text), &gz, &gz_len), 0);
        assert_true(gz_len > 18 && gz_len < sizeof(text));
        assert_int_equal(gz[0], 0x1f);
        assert_int_equal(gz[1], 0x8b);
        free(gz);
}

/* The OTLP/JSON writer: every byte that needs escaping, invalid UTF-8, the integer and bytes encodings, nesting;
 * jansson parses the result back. */
static void test_json_writer(void **state) {
        Opentelemetry__Proto__Common__V1__AnyValue s = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT,
                                                   i = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT,
                                                   d = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT,
                                                   bin = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT,
                                                   f = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT,
                                                   kv = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
        Opentelemetry__Proto__Common__V1__KeyValue k[5];
        Opentelemetry__Proto__Common__V1__KeyValue *kp[5];
        Opentelemetry__Proto__Common__V1__KeyValueList list = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
        char raw[40];
        uint8_t bytes[4] = { 0xfb, 0xff, 0x00, 0x41 };

        /* every control character, quote, backslash, then invalid UTF-8 and a valid 2-byte sequence */
        for (int c = 1; c < 32; c++)
                raw[c - 1] = (char) c;
        memcpy(raw + 31,
               "\"\\\xff"
               "\xc3\xa9",
               5);
        raw[36] = '\0';
        s.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        s.string_value = raw;
        i.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        i.int_value = INT64_MIN;
        d.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        d.double_value = -0.125;
        bin.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
        bin.bytes_value.data = bytes;
        bin.bytes_value.len = sizeof(bytes);
        f.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        f.bool_value = false; /* in a oneof: written although it is the default */
        const char *keys[] = { "s", "i", "d", "b", "f" };
        Opentelemetry__Proto__Common__V1__AnyValue *vals[] = { &s, &i, &d, &bin, &f };
        for (size_t n = 0; n < 5; n++) {
                opentelemetry__proto__common__v1__key_value__init(&k[n]);
                k[n].key = (char *) keys[n];
                k[n].value = vals[n];
                kp[n] = &k[n];
        }
        list.n_values = 5;
        list.values = kp;
        kv.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
        kv.kvlist_value = &list;

        char *text;
        assert_int_equal(otlp_message_to_json(&kv.base, &text), 0);
        json_error_t err;
        json_t *o = json_loads(text, 0, &err);
        assert_non_null(o);
        json_t *values = json_object_get(json_object_get(o, "kvlistValue"), "values");
        assert_int_equal(json_array_size(values), 5);

        char want[64];
        for (int c = 1; c < 32; c++)
                want[c - 1] = (char) c;
        memcpy(want + 31, "\"\\\xef\xbf\xbd\xc3\xa9", 8); /* the invalid byte became U+FFFD */
        want[39] = '\0';
        json_t *sv = json_object_get(json_object_get(json_array_get(values, 0), "value"), "stringValue");
        assert_string_equal(json_string_value(sv), want);
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(json_array_get(values, 1), "value"), "intValue")),
                "-9223372036854775808");
        assert_true(
                json_real_value(json_object_get(json_object_get(json_array_get(values, 2), "value"), "doubleValue")) ==
                -0.125);
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(json_array_get(values, 3), "value"), "bytesValue")),
                "+/8AQQ==");
        assert_true(json_is_false(json_object_get(json_object_get(json_array_get(values, 4), "value"), "boolValue")));
        json_decref(o);
        free(text);

        /* An empty message is an empty object; defaults are left out. */
        Opentelemetry__Proto__Common__V1__KeyValue empty = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
        assert_int_equal(otlp_message_to_json(&empty.base, &text), 0);
        assert_string_equal(text, "{}");
        free(text);
}

/* A line written without its newline says so; a complete one carries no such attribute. */
static void test_partial_line(void **state) {
        OtlpLogLine line = { .stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT, .body = "abc", .partial = true };
        for (int partial = 1; partial >= 0; partial--) {
                uint8_t *data;
                size_t len;
                line.partial = partial;
                assert_int_equal(otlp_encode_log_line(&line, &data, &len), 0);
                Opentelemetry__Proto__Logs__V1__LogRecord *r = opentelemetry__proto__logs__v1__log_record__unpack(
                        NULL, len, data);
                assert_non_null(r);
                const Opentelemetry__Proto__Common__V1__AnyValue *v = NULL;
                for (size_t i = 0; i < r->n_attributes; i++)
                        if (strcmp(r->attributes[i]->key, "tether.log.partial") == 0)
                                v = r->attributes[i]->value;
                if (partial) {
                        assert_non_null(v);
                        assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
                        assert_true(v->bool_value);
                } else
                        assert_null(v);
                opentelemetry__proto__logs__v1__log_record__free_unpacked(r, NULL);
                free(data);
        }
}


/* The direct writers against the references: protobuf byte for byte what protobuf-c packs, JSON parsed-equal
 * to the generic writer's rendering of the decoded record; hostile text sanitized and escaped alike. */
static void check_direct(const OtlpLogLine *l, const char *text, size_t n) {
        OtlpLogTemplate pt, jt;
        OtlpLogLine ref = *l;
        uint8_t *want, out[4 * 8192];
        char jout[6 * 8192 + 8192];
        size_t want_len;

        /* The reference packs what it is given: sanitize as the exporter did before writing directly. */
        _cleanup_free_ char *body = utf8_sanitize(text, n, NULL);
        _cleanup_free_ char *src = l->source ? utf8_sanitize(l->source, strlen(l->source), NULL) : NULL;
        assert_non_null(body);
        ref.body = body;
        ref.source = src;
        assert_int_equal(otlp_encode_log_line(&ref, &want, &want_len), 0);

        assert_int_equal(otlp_log_template_protobuf(l, &pt), 0);
        size_t size = otlp_log_line_protobuf_size(&pt, text, n, l->partial);
        assert_int_equal(size, want_len);
        assert_int_equal(otlp_log_line_protobuf(&pt, text, n, l->partial, out), want_len);
        assert_memory_equal(out, want, want_len);

        assert_int_equal(otlp_log_template_json(l, &jt), 0);
        assert_true(otlp_log_line_json_max(&jt, n) <= sizeof(jout));
        size_t jn = otlp_log_line_json(&jt, text, n, l->partial, jout);
        assert_true(jn <= otlp_log_line_json_max(&jt, n));
        jout[jn] = '\0';
        char *generic;
        assert_int_equal(otlp_item_to_json(EXPORT_SIGNAL_LOGS, want, want_len, &generic, &want_len), 0);
        json_error_t e1, e2;
        json_t *a = json_loads(jout, 0, &e1), *b = json_loads(generic, 0, &e2);
        if (!a)
                fail_msg("direct JSON does not parse: %s: %s", e1.text, jout);
        assert_non_null(b);
        if (!json_equal(a, b))
                fail_msg("direct JSON differs:\n%s\n%s", jout, generic);
        /* Same member order too: byte for byte. */
        assert_string_equal(jout, generic);
        json_decref(a);
        json_decref(b);
        free(generic);
        free(want);
}

static void test_direct_log_lines(void **state) {
        uint8_t span[8] = { 1, 2, 3, 4, 5, 6, 7, 0xff };
        char hostile[300], big[8000];
        size_t hn = 0;

        for (int c = 0; c < 256; c++)
                hostile[hn++] = (char) c; /* every byte: NUL, controls, quote, backslash, lone continuations... */
        memcpy(hostile + hn, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80\xe2\x82", 20);
        hn += 20;
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (char) ('a' + i % 26);

        const struct {
                const char *text;
                size_t n;
        } texts[] = {
                { "", 0 },       { "hello", 5 },       { "line 000000000001 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 50 },
                { hostile, hn }, { big, sizeof(big) }, { "a\"b\\c\td", 8 },
        };
        const OtlpLogLine lines[] = {
                { .time_unix_ns = OFFSET + 5,
                  .observed_unix_ns = OFFSET + 9,
                  .trace_id = trace,
                  .span_id = span,
                  .stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT,
                  .seq = 42 },
                { .time_unix_ns = OFFSET,
                  .observed_unix_ns = OFFSET,
                  .trace_id = trace,
                  .stream = TETHER__LOG_STREAM__LOG_STREAM_STDERR,
                  .seq = UINT64_MAX,
                  .source = "app\"1\x01\xff",
                  .partial = true },
                { .stream = TETHER__LOG_STREAM__LOG_STREAM_KMSG, .seq = 0 },
                { .time_unix_ns = 1,
                  .stream = TETHER__LOG_STREAM__LOG_STREAM_CONSOLE,
                  .seq = 1u << 31,
                  .source = "",
                  .partial = true },
                { .stream = 99, .seq = 7, .span_id = span },
                { .stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL,
                  .source = "nginx.service",
                  .priority = 1,
                  .seq = 8 },
                { .stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL,
                  .source = "nginx.service",
                  .priority = 5,
                  .seq = 9 },
                { .stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, .priority = 8, .seq = 10 },
                { .stream = TETHER__LOG_STREAM__LOG_STREAM_STDERR, .priority = 7, .seq = 11 },
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                for (size_t j = 0; j < ELEMENTSOF(texts); j++) {
                        check_direct(&lines[i], texts[j].text, texts[j].n);
                        OtlpLogLine other = lines[i];
                        other.partial = !other.partial;
                        check_direct(&other, texts[j].text, texts[j].n);
                }

        /* Sanitizing alone: utf8_sanitize()'s result, for every prefix of the hostile text. */
        for (size_t n = 0; n <= hn; n++) {
                _cleanup_free_ char *want = utf8_sanitize(hostile, n, NULL);
                uint8_t out[4 * 300];
                assert_int_equal(otlp_utf8_sanitized_len(hostile, n), strlen(want));
                assert_int_equal(otlp_utf8_sanitize_into(hostile, n, out), strlen(want));
                assert_memory_equal(out, want, strlen(want));
        }
        /* Escaping alone, at every offset and length (the wide scans see every alignment and tail): sanitized as
         * utf8_sanitize() does, then escaped byte by byte, into exactly the room promised (on the heap, so that
         * AddressSanitizer sees a wide store beyond it). */
        char mixed[96];
        for (size_t i = 0; i < sizeof(mixed); i++)
                mixed[i] = i % 23 == 5 ? '"' :
                        i % 29 == 3    ? '\\' :
                        i % 31 == 7    ? '\x01' :
                        i % 37 == 9    ? (char) 0xc3 :
                                         (char) ('a' + i % 26);
        const char *const corpora[] = { hostile, mixed };
        const size_t corpus_len[] = { hn, sizeof(mixed) };
        for (size_t c = 0; c < 2; c++)
                for (size_t off = 0; off < 40; off++)
                        for (size_t n = 0; off + n <= corpus_len[c] && n < 70; n++) {
                                char want[6 * 70 + 1];
                                _cleanup_free_ char *got = malloc(MAX(OTLP_JSON_ESCAPED_MAX(n), (size_t) 1));
                                assert_non_null(got);
                                _cleanup_free_ char *clean = utf8_sanitize(corpora[c] + off, n, NULL);
                                size_t w = 0;
                                for (const unsigned char *q = (const unsigned char *) clean; *q; q++) {
                                        if (*q == '"' || *q == '\\') {
                                                want[w++] = '\\';
                                                want[w++] = (char) *q;
                                        } else if (*q == '\n')
                                                w += (size_t) sprintf(want + w, "\\n");
                                        else if (*q == '\r')
                                                w += (size_t) sprintf(want + w, "\\r");
                                        else if (*q == '\t')
                                                w += (size_t) sprintf(want + w, "\\t");
                                        else if (*q < 0x20)
                                                w += (size_t) sprintf(want + w, "\\u%04x", *q);
                                        else
                                                want[w++] = (char) *q;
                                }
                                size_t g = otlp_json_escape_into(corpora[c] + off, n, got);
                                assert_int_equal(g, w);
                                assert_memory_equal(got, want, w);
                                assert_int_equal(otlp_utf8_sanitized_len(corpora[c] + off, n), strlen(clean));
                        }

        /* A source too long for a template is refused, not overrun. */
        char *huge = malloc(OTLP_LOG_TEMPLATE_MAX);
        assert_non_null(huge);
        memset(huge, 'x', OTLP_LOG_TEMPLATE_MAX - 1);
        huge[OTLP_LOG_TEMPLATE_MAX - 1] = '\0';
        OtlpLogLine l = { .source = huge };
        OtlpLogTemplate t;
        assert_int_equal(otlp_log_template_protobuf(&l, &t), -E2BIG);
        assert_int_equal(otlp_log_template_json(&l, &t), -E2BIG);
        free(huge);
}

/* A record's lines in one run: what the line writer gives for each line, joined by ','; cut after as many lines as
 * max_items allows, or before the first line whose most would not fit in room (written into exactly room bytes on
 * the heap, so that AddressSanitizer sees a store beyond). */
static void test_log_lines_run(void **state) {
        uint8_t tid[16] = { 0x4b, 0xf9 }, sid[8] = { 1, 2 };
        char text[1024];
        size_t len = 0;
        const char *parts[] = {
                "first\n", "\n", "third \"q\" \x01\n", "line 000000000004 xxxxxxxxxxxxxxxxxxxxxxxxx\n"
        };
        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                memcpy(text + len, parts[i], strlen(parts[i]));
                len += strlen(parts[i]);
        }
        for (int c = 0; c < 256; c++)
                text[len++] = (char) c; /* every byte, a newline among them */
        const char *last = "\xc3\xa9 last, partial";
        memcpy(text + len, last, strlen(last));
        len += strlen(last);
        OtlpLogLine l = { .time_unix_ns = OFFSET,
                          .observed_unix_ns = OFFSET + 1,
                          .trace_id = tid,
                          .span_id = sid,
                          .stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT,
                          .source = "app",
                          .seq = 9 };
        OtlpLogTemplate t;
        assert_int_equal(otlp_log_template_json(&l, &t), 0);

        /* The reference, line by line. */
        char want[64 * 1024];
        size_t want_len = 0, n_lines = 0, ends[16], line_max[16], text_end[16];
        for (const char *p = text, *end = text + len; p < end; n_lines++) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                if (n_lines > 0)
                        want[want_len++] = ',';
                want_len += otlp_log_line_json(&t, p, n, !nl, want + want_len);
                ends[n_lines] = want_len;
                line_max[n_lines] = otlp_log_line_json_max(&t, n);
                p += n + (nl ? 1 : 0);
                text_end[n_lines] = (size_t) (p - text);
        }
        assert_int_equal(n_lines, 6);

        for (size_t room = 0; room <= want_len + line_max[n_lines - 1]; room++)
                for (size_t max_items = 0; max_items <= n_lines + 1; max_items++) {
                        _cleanup_free_ char *out = malloc(MAX(room, (size_t) 1));
                        size_t consumed = 99, items = 99;
                        assert_non_null(out);
                        size_t w = otlp_log_lines_json(&t, text, len, room, max_items, out, &consumed, &items);
                        if (max_items == 0 || room < line_max[0]) {
                                assert_int_equal(w, 0);
                                assert_int_equal(items, 0);
                                assert_int_equal(consumed, 0);
                                continue;
                        }
                        assert_true(items >= 1 && items <= MIN(max_items, n_lines));
                        assert_int_equal(w, ends[items - 1]);
                        assert_true(w <= room);
                        assert_memory_equal(out, want, w);
                        assert_int_equal(consumed, text_end[items - 1]);
                        /* Each line after the first went in only with its most in room... */
                        for (size_t k = 1; k < items; k++)
                                assert_true(ends[k - 1] + 1 + line_max[k] <= room);
                        /* ...and it stopped for a reason: the end, max_items, or the next line's most. */
                        if (items < n_lines && items < max_items)
                                assert_true(w + 1 + line_max[items] > room);
                }
}

/* The journal's syslog priority is the severity; without one, stderr is ERROR and the rest INFO. */
static void test_log_severity(void **state) {
        static const struct {
                int stream;
                unsigned priority;
                int number;
                const char *text;
        } cases[] = {
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 1, 21, "emerg" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 2, 19, "alert" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 3, 18, "crit" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 4, 17, "err" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 5, 13, "warning" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 6, 10, "notice" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 7, 9, "info" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 8, 5, "debug" },
                { TETHER__LOG_STREAM__LOG_STREAM_STDERR, 7, 9, "info" }, /* a priority wins over the stream */
                { TETHER__LOG_STREAM__LOG_STREAM_STDERR, 0, 17, "ERROR" },
                { TETHER__LOG_STREAM__LOG_STREAM_STDOUT, 0, 9, "INFO" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 0, 9, "INFO" },
                { TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, 9, 9, "INFO" }, /* out of range: none */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                OtlpSeverity s = otlp_log_severity(cases[i].stream, cases[i].priority);
                assert_int_equal(s.number, cases[i].number);
                assert_string_equal(s.text, cases[i].text);
        }

        /* And in what the exporter writes: the OTLP/JSON of a journal warning. */
        OtlpLogLine l = { .stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL, .source = "a.service", .priority = 5 };
        OtlpLogTemplate t;
        char out[8192];
        assert_int_equal(otlp_log_template_json(&l, &t), 0);
        size_t n = otlp_log_line_json(&t, "disk almost full", 16, false, out);
        out[n] = '\0';
        assert_non_null(strstr(out, "\"severityNumber\":13,\"severityText\":\"warning\""));
        assert_non_null(strstr(out, "\"log.iostream\",\"value\":{\"stringValue\":\"journal\"}"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spans_request),
                cmocka_unit_test(test_logs_request),
                cmocka_unit_test(test_json_writer),
                cmocka_unit_test(test_partial_line),
                cmocka_unit_test(test_direct_log_lines),
                cmocka_unit_test(test_log_severity),
                cmocka_unit_test(test_partial_success_and_gzip),
                cmocka_unit_test(test_log_lines_run),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
