/* SPDX-License-Identifier: MIT */
#pragma once

/* The renderer checks of fuzz-render (a live session's state) and fuzz-store-replay (a state directory's): the
 * API's JSON, spans, log lines read back through the log store, OTLP protobuf and JSON (decoded again with
 * protobuf-c and jansson), the direct log line writers against their references, and Prometheus label
 * escaping. Whatever a renderer writes must parse again, hold valid UTF-8 only, and name the machine it is
 * about, never another. */

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fuzz-util.h"
#include "fuzz.h"
#include "log-store.h"
#include "macro.h"
#include "metrics.h"
#include "otlp-encode.h"
#include "otlp-json.h"
#include "otlp_logs.pb-c.h"
#include "otlp_logs_service.pb-c.h"
#include "otlp_resource.pb-c.h"
#include "otlp_trace.pb-c.h"
#include "otlp_trace_service.pb-c.h"
#include "registry.h"
#include "render.h"
#include "stitch.h"
#include "store.h"
#include "time-util.h"

/* Log entries whose lines get the full OTLP comparison (the rest are rendered for the API only); the first
 * line of the first one also goes through a whole export request. */
#define DIRECT_CHECK_ENTRIES 16u

static inline const char *json_str(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

/* ---- OTLP ---- */

/* Every attribute "tether.machine.id" or "host.id" in an OTLP/JSON value names machine_id. */
static inline void check_otlp_json_identity(const json_t *v, const char *machine_id) {
        const char *key;
        json_t *item;
        size_t i;

        if (json_is_object(v)) {
                const char *k = json_str(v, "key");
                if (k && (strcmp(k, "tether.machine.id") == 0 || strcmp(k, "host.id") == 0)) {
                        const char *s = json_str(json_object_get(v, "value"), "stringValue");
                        FUZZ_ASSERT(s && strcmp(s, machine_id) == 0);
                }
                json_object_foreach((json_t *) v, key, item) check_otlp_json_identity(item, machine_id);
        } else if (json_is_array(v))
                json_array_foreach(v, i, item) check_otlp_json_identity(item, machine_id);
}

static inline void check_item_json(ExportSignal signal, const uint8_t *data, size_t len, const char *machine_id) {
        _cleanup_free_ char *text = NULL;
        size_t n;

        FUZZ_ASSERT(otlp_item_to_json(signal, data, len, &text, &n) >= 0);
        json_t *o = fuzz_check_json_text(text, n);
        check_otlp_json_identity(o, machine_id);
        json_decref(o);
}

static inline void check_request(ExportSignal signal, const OtlpItem *items, size_t n, const char *machine_id) {
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_free_ char *text = NULL;
        size_t len;

        if (n == 0)
                return;
        FUZZ_ASSERT(otlp_encode_request(signal, items, n, &body, &len) >= 0);
        if (signal == EXPORT_SIGNAL_TRACES) {
                Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *rq =
                        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
                                NULL, len, body);
                FUZZ_ASSERT(rq);
                size_t spans = 0;
                for (size_t i = 0; i < rq->n_resource_spans; i++)
                        for (size_t j = 0; j < rq->resource_spans[i]->n_scope_spans; j++)
                                spans += rq->resource_spans[i]->scope_spans[j]->n_spans;
                FUZZ_ASSERT(spans == n);
                opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(rq, NULL);
        } else {
                Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *rq =
                        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(NULL, len, body);
                FUZZ_ASSERT(rq);
                size_t records = 0;
                for (size_t i = 0; i < rq->n_resource_logs; i++)
                        for (size_t j = 0; j < rq->resource_logs[i]->n_scope_logs; j++)
                                records += rq->resource_logs[i]->scope_logs[j]->n_log_records;
                FUZZ_ASSERT(records == n);
                opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(rq, NULL);
        }
        FUZZ_ASSERT(otlp_request_to_json(signal, body, len, &text) >= 0);
        json_t *o = fuzz_check_json_text(text, strlen(text));
        check_otlp_json_identity(o, machine_id);
        json_decref(o);
}

static inline OtlpBlob *check_resource(const Machine *m, const Boot *b) {
        OtlpResource res = {
                .service_name = m->service_name,
                .host_name = b->hostname,
                .host_id = m->id,
                .machine_id = m->id,
                .node_id = m->registry->config.node_id,
                .request_id = m->request_id,
                .boot_id = b->boot_id,
                .attrs = m->attrs,
                .n_attrs = m->n_attrs,
        };
        OtlpBlob *blob;
        const char *text;
        size_t len;

        FUZZ_ASSERT(otlp_encode_resource(&res, &blob) >= 0);
        Opentelemetry__Proto__Resource__V1__Resource *r = opentelemetry__proto__resource__v1__resource__unpack(
                NULL, blob->len, blob->data);
        FUZZ_ASSERT(r);
        opentelemetry__proto__resource__v1__resource__free_unpacked(r, NULL);
        FUZZ_ASSERT(otlp_blob_resource_json(blob, &text, &len) >= 0);
        json_t *o = fuzz_check_json_text(text, len);
        check_otlp_json_identity(o, m->id);
        json_decref(o);
        return blob;
}

/* The direct log line writers against the references (as tests/unit/collector/test-otlp-encode.c does for fixed
 * text): protobuf byte for byte what protobuf-c packs, JSON equal to the generic writer's. */
static inline void check_log_line_direct(
        const OtlpLogLine *l, const char *text, size_t n, OtlpBlob *res, const char *machine_id) {
        static OtlpLogTemplate pt, jt;
        _cleanup_free_ uint8_t *want = NULL, *out = NULL;
        _cleanup_free_ char *jout = NULL, *generic = NULL;
        size_t want_len, generic_len;
        OtlpLogLine ref = *l;

        /* A source is at most 1024 bytes (envelope_validate()): it always fits a template. */
        FUZZ_ASSERT(otlp_log_template_protobuf(l, &pt) >= 0);
        _cleanup_free_ char *body = utf8_sanitize(text, n, NULL);
        _cleanup_free_ char *src = l->source ? utf8_sanitize(l->source, strlen(l->source), NULL) : NULL;
        FUZZ_ASSERT(body && (!l->source || src));
        ref.body = body;
        ref.source = src;
        FUZZ_ASSERT(otlp_encode_log_line(&ref, &want, &want_len) >= 0);

        size_t size = otlp_log_line_protobuf_size(&pt, text, n, l->partial);
        FUZZ_ASSERT(size == want_len);
        out = malloc(size + 1);
        FUZZ_ASSERT(out);
        FUZZ_ASSERT(otlp_log_line_protobuf(&pt, text, n, l->partial, out) == want_len);
        FUZZ_ASSERT(memcmp(out, want, want_len) == 0);

        Opentelemetry__Proto__Logs__V1__LogRecord *rec = opentelemetry__proto__logs__v1__log_record__unpack(
                NULL, want_len, want);
        FUZZ_ASSERT(rec);
        FUZZ_ASSERT(rec->trace_id.len == 16 && memcmp(rec->trace_id.data, l->trace_id, 16) == 0);
        opentelemetry__proto__logs__v1__log_record__free_unpacked(rec, NULL);

        FUZZ_ASSERT(otlp_log_template_json(l, &jt) >= 0);
        size_t max = otlp_log_line_json_max(&jt, n);
        jout = malloc(max + 1);
        FUZZ_ASSERT(jout);
        size_t jn = otlp_log_line_json(&jt, text, n, l->partial, jout);
        FUZZ_ASSERT(jn <= max);
        jout[jn] = '\0';
        FUZZ_ASSERT(otlp_item_to_json(EXPORT_SIGNAL_LOGS, want, want_len, &generic, &generic_len) >= 0);
        /* Same members in the same order: byte for byte. */
        FUZZ_ASSERT(jn == generic_len && memcmp(jout, generic, jn) == 0);
        json_decref(fuzz_check_json_text(jout, jn));

        if (res)
                check_request(
                        EXPORT_SIGNAL_LOGS,
                        &(OtlpItem) { .resource = res, .data = want, .len = want_len },
                        1,
                        machine_id);
}

/* ---- Prometheus ---- */

/* A label value as metrics_put_label_value() writes it: no raw newline or quote, and it reads back to value. */
static inline void check_label_value(const char *value) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;

        if (!value)
                return;
        FILE *f = open_memstream(&text, &len);
        FUZZ_ASSERT(f);
        metrics_put_label_value(f, value);
        FUZZ_ASSERT(fclose(f) == 0);

        size_t j = 0;
        for (size_t i = 0; i < len; i++) {
                FUZZ_ASSERT(text[i] != '\n' && text[i] != '"');
                char c = text[i];
                if (c == '\\') {
                        FUZZ_ASSERT(i + 1 < len);
                        c = text[++i];
                        FUZZ_ASSERT(c == '\\' || c == '"' || c == 'n');
                        if (c == 'n')
                                c = '\n';
                }
                FUZZ_ASSERT(value[j++] == c);
        }
        FUZZ_ASSERT(value[j] == '\0');
}

static inline bool metric_name_char(char c, bool first) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                (!first && c >= '0' && c <= '9');
}

/* One sample line of the text format 0.0.4: name{label="value",...} value */
static inline void check_sample_line(const char *p, const char *end) {
        FUZZ_ASSERT(p < end && metric_name_char(*p, true));
        while (p < end && metric_name_char(*p, false))
                p++;
        if (p < end && *p == '{') {
                p++;
                while (p < end && *p != '}') {
                        FUZZ_ASSERT(metric_name_char(*p, true));
                        while (p < end && metric_name_char(*p, false))
                                p++;
                        FUZZ_ASSERT(end - p >= 2 && p[0] == '=' && p[1] == '"');
                        p += 2;
                        while (p < end && *p != '"') {
                                if (*p == '\\') {
                                        FUZZ_ASSERT(end - p >= 2 && (p[1] == '\\' || p[1] == '"' || p[1] == 'n'));
                                        p++;
                                }
                                p++;
                        }
                        FUZZ_ASSERT(p < end);
                        p++;
                        if (p < end && *p == ',')
                                p++;
                }
                FUZZ_ASSERT(p < end && *p == '}');
                p++;
        }
        FUZZ_ASSERT(p < end && *p == ' ');
        p++;
        FUZZ_ASSERT(p < end);
        for (; p < end; p++)
                FUZZ_ASSERT(
                        (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '+' || *p == 'e' || *p == 'E' ||
                        *p == 'I' || *p == 'n' || *p == 'f' || *p == 'N' || *p == 'a');
}

static inline void check_exposition(const Metrics *mt) {
        _cleanup_free_ char *text = NULL;
        size_t len;

        FUZZ_ASSERT(metrics_render(mt, &text, &len) >= 0);
        FUZZ_ASSERT(strlen(text) == len && len > 0 && text[len - 1] == '\n');
        FUZZ_ASSERT(utf8_is_valid(text, len));
        for (const char *p = text, *end = text + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                FUZZ_ASSERT(nl);
                if (strncmp(p, "# HELP ", 7) != 0 && strncmp(p, "# TYPE ", 7) != 0)
                        check_sample_line(p, nl);
                p = nl + 1;
        }
}

static inline void check_labels_of_boot(const Boot *b) {
        check_label_value(b->boot_id);
        check_label_value(b->hostname);
        check_label_value(b->kernel_release);
        check_label_value(b->agent_version);
        check_label_value(b->ready.source);
        check_label_value(b->ready.detail);
        check_label_value(b->exit.reason);
        for (size_t i = 0; i < b->n_milestones; i++) {
                check_label_value(b->milestones[i].name);
                for (size_t j = 0; j < b->milestones[i].n_attrs; j++) {
                        check_label_value(b->milestones[i].attrs[j].key);
                        check_label_value(b->milestones[i].attrs[j].value);
                }
        }
        for (size_t i = 0; i < b->n_phases; i++) {
                check_label_value(b->phases[i].name);
                check_label_value(b->phases[i].message);
        }
}

/* ---- the API's JSON ---- */

typedef struct LogCheck {
        const Machine *machine;
        const Boot *boot;
        const SpanSet *spans;
        OtlpBlob *resource;
        uint64_t last_seq;
        size_t entries, lines;
        const LogEntry *entry;
} LogCheck;

static inline int check_api_log_line(json_t *o, void *userdata) {
        LogCheck *lc = userdata;
        json_t *back = fuzz_check_rendered(o);

        FUZZ_ASSERT(strcmp(json_str(back, "machine_id"), lc->machine->id) == 0);
        FUZZ_ASSERT(strcmp(json_str(back, "node_id"), lc->machine->registry->config.node_id) == 0);
        FUZZ_ASSERT(strcmp(json_str(back, "boot_id"), lc->boot->boot_id) == 0);
        FUZZ_ASSERT((uint64_t) json_integer_value(json_object_get(back, "seq")) == lc->entry->seq);
        const char *line = json_str(back, "line");
        FUZZ_ASSERT(line && !strchr(line, '\n'));
        json_decref(back);
        lc->lines++;
        return 0;
}

static inline int count_and_stop(json_t *o, void *userdata) {
        FUZZ_ASSERT(o);
        json_decref(o);
        (*(size_t *) userdata)++;
        return 1;
}

/* The logs API renders a long record a chunk at a time: stopping after every line and resuming at the offset
 * returned gives the same lines, one per call. */
static inline void check_log_lines_resumed(const LogCheck *lc, const LogEntry *e, size_t lines) {
        size_t offset = 0, seen = 0, calls = 0;
        int r;

        do {
                r = render_log_lines(lc->machine, lc->boot, e, lc->spans, &offset, count_and_stop, &seen);
                FUZZ_ASSERT(r == 0 || r == 1);
                calls++;
                FUZZ_ASSERT(seen == calls);
                FUZZ_ASSERT(r == 0 || offset < e->len);
        } while (r == 1);
        FUZZ_ASSERT(seen == lines);
}

static inline int check_log_entry(const LogEntry *e, void *userdata) {
        LogCheck *lc = userdata;
        const Boot *b = lc->boot;

        /* In seq order, each once, only what the boot stored. */
        FUZZ_ASSERT(e->seq > lc->last_seq && e->seq <= b->last_seq);
        lc->last_seq = e->seq;
        lc->entry = e;
        lc->entries++;
        FUZZ_ASSERT(lc->entries <= b->records);

        if (e->kind == LOG_ENTRY_DROPPED) {
                json_t *back = fuzz_check_rendered(render_log_dropped(
                        lc->machine, b, e->seq, e->dropped_records, e->dropped_bytes, "agent_buffer"));
                FUZZ_ASSERT(strcmp(json_str(back, "machine_id"), lc->machine->id) == 0);
                json_decref(back);
                return 0;
        }
        size_t lines_before = lc->lines;
        FUZZ_ASSERT(render_log_lines(lc->machine, b, e, lc->spans, NULL, check_api_log_line, lc) == 0);

        if (lc->entries > DIRECT_CHECK_ENTRIES || e->len == 0)
                return 0;
        check_log_lines_resumed(lc, e, lc->lines - lines_before);
        const Span *sp = span_set_find_for_time(lc->spans, e->boottime_ns);
        OtlpLogLine l = {
                .time_unix_ns = boot_to_unix_ns(b, e->boottime_ns, e->recv_unix_ns),
                .observed_unix_ns = e->recv_unix_ns,
                .trace_id = b->trace_id,
                .span_id = sp ? sp->span_id : NULL,
                .stream = e->stream,
                .source = e->source && *e->source ? e->source : NULL,
                .seq = e->seq,
        };
        const char *p = (const char *) e->data, *end = p + e->len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                l.partial = !nl;
                check_log_line_direct(
                        &l,
                        p,
                        n,
                        lc->entries == 1 && p == (const char *) e->data ? lc->resource : NULL,
                        lc->machine->id);
                p += n + (nl ? 1 : 0);
        }
        return 0;
}

/* Renders one boot every way there is. Returns what reading its log records back returned. */
static inline int check_boot(Store *store, const Machine *m, Boot *b) {
        char trace[33];
        SpanSet *set;

        json_decref(fuzz_check_rendered(render_boot(m, b)));
        json_decref(fuzz_check_rendered(render_ready(m, b)));
        check_labels_of_boot(b);
        FUZZ_ASSERT(b->n_milestones <= b->limits.max_milestones && b->n_phases <= b->limits.max_phases);
        FUZZ_ASSERT(b->n_instances <= BOOT_INSTANCES_MAX && b->n_gaps <= BOOT_GAPS_MAX);

        StitchContext ctx = {
                .machine_id = m->id,
                .node_id = m->registry->config.node_id,
                .request_id = m->request_id,
                .service_name = m->service_name,
                .parent_span_id = m->has_parent ? m->parent.span_id : NULL,
                .now_unix_ns = now_ns(CLOCK_REALTIME),
        };
        FUZZ_ASSERT(stitch_boot(&ctx, b, &set) >= 0);
        FUZZ_ASSERT(memcmp(set->trace_id, b->trace_id, 16) == 0);
        json_t *spans = fuzz_check_rendered(render_spans(set));
        render_hex(b->trace_id, 16, trace);
        FUZZ_ASSERT(strcmp(json_str(spans, "trace_id"), trace) == 0);
        FUZZ_ASSERT(json_array_size(json_object_get(spans, "spans")) == set->n_spans);
        json_decref(spans);

        OtlpBlob *res = check_resource(m, b);
        OtlpItem *items = calloc(set->n_spans + 1, sizeof(OtlpItem));
        FUZZ_ASSERT(items);
        for (size_t i = 0; i < set->n_spans; i++) {
                uint8_t *data;
                size_t len;
                FUZZ_ASSERT(otlp_encode_span(set->trace_id, &set->spans[i], &data, &len) >= 0);
                Opentelemetry__Proto__Trace__V1__Span *sp = opentelemetry__proto__trace__v1__span__unpack(
                        NULL, len, data);
                FUZZ_ASSERT(sp);
                FUZZ_ASSERT(sp->trace_id.len == 16 && memcmp(sp->trace_id.data, b->trace_id, 16) == 0);
                FUZZ_ASSERT(sp->span_id.len == 8 && memcmp(sp->span_id.data, set->spans[i].span_id, 8) == 0);
                opentelemetry__proto__trace__v1__span__free_unpacked(sp, NULL);
                check_item_json(EXPORT_SIGNAL_TRACES, data, len, m->id);
                items[i] = (OtlpItem) { .resource = res, .data = data, .len = len };
        }
        check_request(EXPORT_SIGNAL_TRACES, items, set->n_spans, m->id);
        for (size_t i = 0; i < set->n_spans; i++)
                free((uint8_t *) items[i].data);
        free(items);

        LogCheck lc = { .machine = m, .boot = b, .spans = set, .resource = res };
        LogCursor cursor = {};
        int r = log_store_read(store, b, &cursor, check_log_entry, &lc);
        otlp_blob_unref(res);
        span_set_free(set);
        return r;
}
