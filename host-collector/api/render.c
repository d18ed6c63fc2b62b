/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#include "render.h"
#include "machine-json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "registry.h"
#include "syslog-priority.h"
#include "time-math.h"
#include "traceparent.h"
#include "utf8.h"

void render_hex(const uint8_t *id, size_t n, char *out) {
        hex_encode(id, n, out);
}

static json_t *str_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

/* Counters are unsigned and JSON integers signed: a value above INT64_MAX shows as INT64_MAX, never negative. */
static json_t *int_json(uint64_t v) {
        return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t) v);
}

/* A duration that boot_*_to_ready_ns() may not know. */
static json_t *duration_json(int (*get)(const Boot *b, uint64_t *ret), const Boot *b) {
        uint64_t v = 0;
        return get(b, &v) >= 0 ? int_json(v) : json_null();
}

static const char *agent_mode_to_string(int mode) {
        switch (mode) {
        case TETHER__AGENT_MODE__AGENT_MODE_INIT:
                return "init";
        case TETHER__AGENT_MODE__AGENT_MODE_SERVICE:
                return "service";
        default:
                return "unspecified";
        }
}

json_t *render_ready(const Machine *m, const Boot *b) {
        if (!b || !b->ready.set)
                return json_null();

        uint64_t ready = boot_to_unix_ns(b, b->ready.boottime_ns, b->ready.recv_unix_ns);
        return json_pack(
                "{s:s, s:s, s:I, s:I, s:o, s:o, s:I, s:o, s:I}",
                "source",
                b->ready.source,
                "detail",
                b->ready.detail ?: "",
                "seq",
                (json_int_t) b->ready.seq,
                "ready_unix_ns",
                (json_int_t) ready,
                "kernel_to_ready_ns",
                duration_json(boot_kernel_to_ready_ns, b),
                "init_to_ready_ns",
                duration_json(boot_init_to_ready_ns, b),
                "registered_to_ready_ns",
                (json_int_t) time_diff(ready, m->registered_unix_ns),
                "host_start_to_ready_ns",
                duration_json(boot_host_start_to_ready_ns, b),
                "delivered_unix_ns",
                (json_int_t) b->ready.recv_unix_ns);
}

static json_t *render_exit(const Boot *b) {
        if (!b->exit.set)
                return json_null();
        json_t *o = boot_exit_to_json(b);
        if (!o)
                return NULL;
        if (!b->exit.reason)
                json_object_set_new(o, "reason", json_string("")); /* the API has always shown "" here */
        json_object_set_new(
                o,
                "exit_unix_ns",
                json_integer((json_int_t) boot_to_unix_ns(b, b->exit.boottime_ns, b->exit.recv_unix_ns)));
        return o;
}

json_t *render_boot(const Machine *m, const Boot *b) {
        char trace[33];

        if (!b)
                return json_null();
        render_hex(b->trace_id, 16, trace);

        json_t *o = json_object();
        if (!o)
                return NULL;
        json_object_set_new(o, "boot_id", json_string(b->boot_id));
        json_object_set_new(o, "index", int_json(b->index));
        json_object_set_new(o, "trace_id", json_string(trace));
        json_object_set_new(o, "kernel_release", str_or_null(b->kernel_release));
        json_object_set_new(o, "hostname", str_or_null(b->hostname));
        json_object_set_new(o, "agent_version", str_or_null(b->agent_version));
        json_object_set_new(o, "agent_mode", json_string(agent_mode_to_string(b->agent_mode)));
        json_object_set_new(o, "first_seen_unix_ns", int_json(b->first_seen_unix_ns));
        json_object_set_new(
                o, "host_start_unix_ns", b->host_start_unix_ns ? int_json(b->host_start_unix_ns) : json_null());
        const BootMilestone *kernel_start = boot_find_milestone(b, BOOT_MILESTONE_KERNEL_START);
        json_object_set_new(
                o,
                "kernel_start_unix_ns",
                kernel_start ? int_json(boot_to_unix_ns(b, kernel_start->boottime_ns, b->first_seen_unix_ns)) :
                               json_null());
        json_object_set_new(o, "clock_error_ns", b->clock.valid ? int_json(b->clock.error_ns) : json_null());
        json_object_set_new(o, "clock_fixed", json_boolean(b->clock_fixed));
        int64_t drift;
        json_object_set_new(
                o, "clock_drift_ns", boot_clock_drift_ns(b, &drift) ? json_integer((json_int_t) drift) : json_null());
        json_object_set_new(o, "ready", render_ready(m, b));
        json_object_set_new(o, "exit", render_exit(b));
        json_object_set_new(o, "records", int_json(b->records));
        json_object_set_new(o, "last_seq", int_json(b->last_seq));
        json_object_set_new(o, "log_bytes", int_json(b->log_bytes_total));
        json_object_set_new(o, "log_bytes_stored", int_json(boot_log_bytes_stored(b)));
        json_object_set_new(o, "log_memory_bytes", int_json(b->logs.cost));
        json_object_set_new(o, "logs_dropped", int_json(b->logs_dropped));
        json_object_set_new(o, "logs_evicted", int_json(b->logs.evicted_records));
        json_object_set_new(o, "export_dropped", int_json(b->export_dropped));
        json_object_set_new(o, "export_deferred", int_json(b->export_deferred));
        json_object_set_new(o, "milestones", int_json(b->n_milestones));
        json_object_set_new(o, "milestones_dropped", int_json(b->milestones_dropped));
        json_object_set_new(o, "phases", int_json(b->n_phases));
        json_object_set_new(o, "phases_dropped", int_json(b->phases_dropped));
        json_object_set_new(o, "annotations_repeated", int_json(b->annotations_repeated));
        json_object_set_new(o, "duplicates", int_json(b->duplicates));
        json_object_set_new(o, "seq_gaps", int_json(b->seq_gaps));
        json_object_set_new(o, "protocol_errors", int_json(b->protocol_errors));
        return o;
}

/* A ratio (0..1) from millionths, with its six digits. */
static json_t *ppm_json(int64_t ppm) {
        return ppm >= 0 ? json_real((double) ppm / 1e6) : json_null();
}

json_t *render_sample(const GuestSample *g) {
        json_t *cpu = json_object(), *pressure = json_object();
        json_t *o = json_pack(
                "{s:o, s:o, s:I, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o}, s:[f, f, f], s:o}",
                "time_unix_ns",
                int_json(g->recv_unix_ns),
                "uptime_ns",
                int_json(g->boottime_ns),
                "cpus",
                (json_int_t) g->cpus,
                "cpu_ns",
                cpu,
                "memory",
                "total_bytes",
                int_json(g->mem_total_bytes),
                "available_bytes",
                int_json(g->mem_available_bytes),
                "used_bytes",
                int_json(g->mem_total_bytes - g->mem_available_bytes), /* validated: available <= total */
                "free_bytes",
                int_json(g->mem_free_bytes),
                "swap_total_bytes",
                int_json(g->swap_total_bytes),
                "swap_free_bytes",
                int_json(g->swap_free_bytes),
                "load",
                g->load_centi[0] / 100.0,
                g->load_centi[1] / 100.0,
                g->load_centi[2] / 100.0,
                "pressure",
                pressure);
        if (!o)
                return NULL;
        for (SampleCpuMode c = 0; c < _SAMPLE_CPU_MODE_MAX; c++)
                json_object_set_new(cpu, sample_cpu_mode_to_string(c), int_json(g->cpu_ns[c]));
        for (SamplePressure p = 0; p < _SAMPLE_PRESSURE_MAX; p++) {
                const SamplePressureValues *v = &g->pressure[p];
                if (!v->present)
                        continue;
                json_object_set_new(
                        pressure,
                        sample_pressure_to_string(p),
                        json_pack(
                                "{s:f, s:f, s:o, s:o}",
                                "some_avg10_pct",
                                v->some_avg10_centipct / 100.0,
                                "full_avg10_pct",
                                v->full_avg10_centipct / 100.0,
                                "some_total_ns",
                                int_json(v->some_total_ns),
                                "full_total_ns",
                                int_json(v->full_total_ns)));
        }
        if (g->cgroup_present)
                json_object_set_new(
                        o,
                        "cgroup",
                        json_pack(
                                "{s:o, s:o, s:o, s:o}",
                                "memory_current_bytes",
                                int_json(g->cgroup_current_bytes),
                                "memory_peak_bytes",
                                int_json(g->cgroup_peak_bytes),
                                "oom",
                                int_json(g->cgroup_oom),
                                "oom_kill",
                                int_json(g->cgroup_oom_kill)));
        return o;
}

/* The share of CPU busy between the two latest samples, or null. */
static json_t *cpu_busy_json(const SampleRing *r) {
        if (!r || r->n < 2)
                return json_null();
        return ppm_json(guest_sample_cpu_busy_ppm(sample_ring_get(r, r->n - 2), sample_ring_get(r, r->n - 1)));
}

json_t *render_resources(const Machine *m) {
        const SampleRing *r = m->samples;
        const GuestSample *g = r ? sample_ring_latest(r) : NULL;

        if (!g)
                return json_null();
        json_t *o = json_pack(
                "{s:o, s:o, s:o, s:o, s:o, s:o}",
                "time_unix_ns",
                int_json(g->recv_unix_ns),
                "uptime_ns",
                int_json(g->boottime_ns),
                "cpu_busy_ratio",
                cpu_busy_json(r),
                "memory_used_bytes",
                int_json(g->mem_total_bytes - g->mem_available_bytes),
                "memory_total_bytes",
                int_json(g->mem_total_bytes),
                "memory_pressure_some_avg10_pct",
                g->pressure[SAMPLE_PRESSURE_MEMORY].present ?
                        json_real(g->pressure[SAMPLE_PRESSURE_MEMORY].some_avg10_centipct / 100.0) :
                        json_null());
        return o;
}

json_t *render_machine_metrics(const Machine *m, const char *node_id) {
        const SampleRing *r = m->samples;
        json_t *history = json_array();
        json_t *o = json_pack(
                "{s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
                "machine_id",
                m->id,
                "node_id",
                node_id,
                "request_id",
                str_or_null(m->request_id),
                "boot_id",
                m->current ? json_string(m->current->boot_id) : json_null(),
                "cpu_busy_ratio",
                cpu_busy_json(r),
                "history_max",
                (json_int_t) SAMPLES_HISTORY,
                "min_interval_ns",
                (json_int_t) SAMPLES_MIN_INTERVAL_NS,
                "samples_kept",
                int_json(r ? r->accepted : 0),
                "samples_replaced",
                int_json(r ? r->replaced : 0),
                "samples_refused",
                int_json(r ? r->refused : 0),
                "latest",
                r && r->n > 0 ? render_sample(sample_ring_latest(r)) : json_null(),
                "history",
                history);
        if (!o)
                return NULL;
        for (size_t i = 0; r && i < r->n; i++) {
                json_t *s = render_sample(sample_ring_get(r, i));
                if (!s || json_array_append_new(history, s) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

json_t *render_machine(const Machine *m, const char *node_id) {
        /* The registration as machine.json holds it, and what the node knows of the machine now. */
        json_t *o = machine_registration_to_json(m);

        if (!o)
                return NULL;
        json_object_del(o, "version");
        json_object_set_new(o, "node_id", json_string(node_id));
        json_object_set_new(o, "state", json_string(machine_state_to_string(m->state)));
        json_object_set_new(o, "state_reason", str_or_null(m->state_reason));
        json_object_set_new(o, "connected", json_boolean(m->connected));
        json_object_set_new(o, "agent_seen", json_boolean(m->agent_seen));
        json_object_set_new(o, "boot", render_boot(m, m->current));
        json_object_set_new(o, "boots", int_json(m->n_boots));
        json_object_set_new(o, "protocol_errors", int_json(m->protocol_errors));
        json_object_set_new(o, "resources", render_resources(m));
        return o;
}

json_t *render_log_dropped(
        const Machine *m, const Boot *b, uint64_t seq, uint64_t records, uint64_t bytes, const char *reason) {
        return json_pack(
                "{s:s, s:s, s:I, s:{s:I, s:I, s:s}}",
                "machine_id",
                m->id,
                "boot_id",
                b->boot_id,
                "seq",
                (json_int_t) seq,
                "dropped",
                "records",
                (json_int_t) records,
                "bytes",
                (json_int_t) bytes,
                "reason",
                reason);
}

int render_log_lines(
        const Machine *m,
        const Boot *b,
        const LogEntry *e,
        const SpanSet *spans,
        size_t *offset,
        RenderLogLineFn fn,
        void *userdata) {
        const char *node_id = m->registry->config.node_id;
        char trace[33], span[17] = "";

        const Span *sp = span_set_find_for_time(spans, e->boottime_ns);
        render_hex(b->trace_id, 16, trace);
        if (sp)
                render_hex(sp->span_id, 8, span);
        uint64_t t = boot_to_unix_ns(b, e->boottime_ns, e->recv_unix_ns);

        /* One object per line of output; a trailing newline ends the last line rather than starting one. An empty
         * record has no line (and its data may be NULL: read back from a boot file). */
        size_t start = offset ? *offset : 0;
        if (start >= e->len)
                return 0;
        const char *p = (const char *) e->data + start, *end = (const char *) e->data + e->len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                _cleanup_free_ char *line = utf8_sanitize(p, n, NULL);
                if (!line)
                        return -ENOMEM;
                json_t *o = json_pack(
                        "{s:s, s:s, s:s?, s:s, s:I, s:s, s:s?, s:I, s:s, s:s, s:s}",
                        "machine_id",
                        m->id,
                        "node_id",
                        node_id,
                        "request_id",
                        m->request_id,
                        "boot_id",
                        b->boot_id,
                        "seq",
                        (json_int_t) e->seq,
                        "stream",
                        log_stream_to_string(e->stream),
                        "source",
                        e->source,
                        "time_unix_ns",
                        (json_int_t) t,
                        "line",
                        line,
                        "trace_id",
                        trace,
                        "span_id",
                        span);
                /* The agent sends what a workload wrote without its newline after a pause (a prompt, or a pipe's
                 * buffer cut mid-line): the next line of the stream continues it. */
                if (o && !nl)
                        json_object_set_new(o, "partial", json_true());
                /* The syslog priority, as journald's PRIORITY= (0 emerg … 7 debug); absent when the line has none. */
                if (o && e->priority >= 1 && e->priority <= SYSLOG_PRIORITY_MAX + 1)
                        json_object_set_new(o, "priority", json_integer((json_int_t) e->priority - 1));
                int r = fn(o, userdata);
                if (r < 0)
                        return r;
                p += n + (nl ? 1 : 0);
                if (r > 0 && p < end) {
                        if (offset)
                                *offset = (size_t) (p - (const char *) e->data);
                        return 1;
                }
        }
        return 0;
}

static json_t *render_span_attrs(const SpanAttr *a, size_t n) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < n; i++)
                json_object_set_new(o, a[i].key, a[i].value ? json_string(a[i].value) : json_integer(a[i].int_value));
        return o;
}

json_t *render_spans(const SpanSet *s) {
        char trace[33], id[17], parent[17];
        json_t *spans = json_array();

        if (!spans)
                return NULL;
        render_hex(s->trace_id, 16, trace);
        for (size_t i = 0; i < s->n_spans; i++) {
                const Span *sp = &s->spans[i];
                json_t *events = json_array();

                for (size_t j = 0; events && j < sp->n_events; j++)
                        json_array_append_new(
                                events,
                                json_pack(
                                        "{s:s, s:I, s:o}",
                                        "name",
                                        sp->events[j].name,
                                        "time_unix_ns",
                                        (json_int_t) sp->events[j].time_unix_ns,
                                        "attributes",
                                        render_span_attrs(sp->events[j].attrs, sp->events[j].n_attrs)));
                render_hex(sp->span_id, 8, id);
                if (sp->has_parent)
                        render_hex(sp->parent_span_id, 8, parent);
                json_t *o = json_pack(
                        "{s:s, s:s, s:s, s:o, s:I, s:I, s:b, s:o, s:o, s:s, s:s?}",
                        "name",
                        sp->name,
                        "trace_id",
                        trace,
                        "span_id",
                        id,
                        "parent_span_id",
                        sp->has_parent ? json_string(parent) : json_null(),
                        "start_unix_ns",
                        (json_int_t) sp->start_unix_ns,
                        "end_unix_ns",
                        (json_int_t) sp->end_unix_ns,
                        "open",
                        sp->open,
                        "attributes",
                        render_span_attrs(sp->attrs, sp->n_attrs),
                        "events",
                        events ?: json_array(),
                        "status",
                        span_status_to_string(sp->status),
                        "status_message",
                        sp->status_message);
                if (!o || json_array_append_new(spans, o) < 0) {
                        json_decref(spans);
                        return NULL;
                }
        }
        return json_pack("{s:s, s:o}", "trace_id", trace, "spans", spans);
}

/* {"traces": n, "logs": n, "metrics": n} */
static json_t *per_signal_json(const uint64_t v[_EXPORT_SIGNAL_MAX], bool zero_is_null) {
        json_t *o = json_object();

        for (ExportSignal i = 0; o && i < _EXPORT_SIGNAL_MAX; i++)
                json_object_set_new(
                        o, export_signal_to_string(i), zero_is_null && v[i] == 0 ? json_null() : int_json(v[i]));
        return o;
}

static json_t *export_stats_json(const ExportStats *x) {
        json_t *dropped = json_object();

        for (ExportSignal i = 0; dropped && i < _EXPORT_SIGNAL_MAX; i++) {
                json_t *by_reason = json_object();
                for (ExportDropReason r = 0; by_reason && r < _EXPORT_DROP_REASON_MAX; r++)
                        json_object_set_new(by_reason, export_drop_reason_to_string(r), int_json(x->dropped[i][r]));
                json_object_set_new(dropped, export_signal_to_string(i), by_reason);
        }
        return json_pack(
                "{s:o*, s:o*, s:o*, s:o*, s:o*, s:o, s:o, s:o*, s:o}",
                "requests",
                per_signal_json(x->requests, false),
                "failures",
                per_signal_json(x->failures, false),
                "items",
                per_signal_json(x->items, false),
                "bytes",
                per_signal_json(x->bytes, false),
                "dropped",
                dropped,
                "queue_bytes",
                int_json(x->queue_bytes),
                "spool_bytes",
                int_json(x->spool_bytes),
                "last_success_unix_ns",
                per_signal_json(x->last_success_unix_ns, true),
                "deferred",
                int_json(x->deferred));
}

json_t *render_stats(const Stats *s) {
        json_t *o = json_object(), *pe = json_object(), *dr = json_object(), *db = json_object(), *cr = json_object(),
               *cc = json_object(), *lr = json_object(), *lb = json_object();

        if (!o || !pe || !dr || !db || !cr || !cc || !lr || !lb) {
                json_decref(o);
                json_decref(pe);
                json_decref(dr);
                json_decref(db);
                json_decref(cr);
                json_decref(cc);
                json_decref(lr);
                json_decref(lb);
                return NULL;
        }
        for (int i = PROTOCOL_ERROR_NONE + 1; i < _PROTOCOL_ERROR_MAX; i++)
                json_object_set_new(pe, protocol_error_to_string(i), int_json(s->protocol_errors[i]));
        for (int i = 0; i < _DROP_REASON_MAX; i++) {
                json_object_set_new(dr, drop_reason_to_string(i), int_json(s->dropped_records[i]));
                json_object_set_new(db, drop_reason_to_string(i), int_json(s->dropped_bytes[i]));
        }
        for (int i = 0; i < _REFUSE_REASON_MAX; i++)
                json_object_set_new(cr, refuse_reason_to_string(i), int_json(s->connections_refused[i]));
        for (int i = 0; i < _CLOSE_REASON_MAX; i++)
                json_object_set_new(cc, close_reason_to_string(i), int_json(s->connections_closed[i]));
        for (int i = 1; i < STATS_LOG_STREAMS; i++) {
                json_object_set_new(lr, log_stream_to_string(i), int_json(s->log_records[i]));
                json_object_set_new(lb, log_stream_to_string(i), int_json(s->log_bytes[i]));
        }
        json_object_set_new(o, "protocol_errors", pe);
        json_object_set_new(o, "dropped_records", dr);
        json_object_set_new(o, "dropped_bytes", db);
        json_object_set_new(o, "connections_refused", cr);
        json_object_set_new(o, "connections_closed", cc);
        json_object_set_new(o, "log_records", lr);
        json_object_set_new(o, "log_bytes", lb);
        json_object_set_new(o, "connections_accepted", int_json(s->connections_accepted));
        json_object_set_new(o, "records_stored", int_json(s->records_stored));
        json_object_set_new(o, "records_duplicate", int_json(s->records_duplicate));
        json_object_set_new(o, "records_repersisted", int_json(s->records_repersisted));
        json_object_set_new(o, "seq_gaps", int_json(s->seq_gaps));
        json_object_set_new(o, "seq_gap_records", int_json(s->seq_gap_records));
        json_object_set_new(o, "clock_samples", int_json(s->clock_samples));
        json_object_set_new(o, "clock_samples_ignored", int_json(s->clock_samples_ignored));
        json_object_set_new(o, "guest_samples", int_json(s->guest_samples));
        json_object_set_new(o, "guest_samples_refused", int_json(s->guest_samples_refused));
        json_object_set_new(o, "acks_sent", int_json(s->acks_sent));
        json_object_set_new(o, "syncs", int_json(s->syncs));
        json_object_set_new(o, "persist_errors", int_json(s->persist_errors));
        json_object_set_new(o, "api_requests", int_json(s->api_requests));
        json_object_set_new(o, "events_evicted", int_json(s->events_evicted));
        json_object_set_new(o, "events_too_large", int_json(s->events_too_large));
        json_object_set_new(o, "api_connections_refused", int_json(s->api_connections_refused));
        json_object_set_new(o, "api_connections_timed_out", int_json(s->api_connections_timed_out));
        json_object_set_new(o, "api_connections_evicted", int_json(s->api_connections_evicted));
        json_object_set_new(
                o,
                "log_memory",
                json_pack(
                        "{s:I, s:I, s:I, s:I}",
                        "bytes",
                        (json_int_t) s->log_memory.bytes,
                        "limit",
                        (json_int_t) s->log_memory.limit,
                        "evicted_records",
                        (json_int_t) s->log_memory.evicted_records,
                        "evicted_bytes",
                        (json_int_t) s->log_memory.evicted_bytes));
        json_object_set_new(o, "export", export_stats_json(&s->export));
        return o;
}
