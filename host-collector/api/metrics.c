/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "macro.h"
#include "time-util.h"

#define MS_NS NSEC_PER_MSEC
#define S_NS NSEC_PER_SEC

/* Boots take milliseconds (a container, a unikernel) to minutes (a distro VM with a slow workload): roughly
 * 1-2.5-5 steps from 1 ms to 120 s. */
const uint64_t metrics_boot_buckets_ns[] = {
        1 * MS_NS, 2500000,      5 * MS_NS, 10 * MS_NS, 25 * MS_NS, 50 * MS_NS, 100 * MS_NS, 250 * MS_NS, 500 * MS_NS,
        1 * S_NS,  2500 * MS_NS, 5 * S_NS,  10 * S_NS,  20 * S_NS,  30 * S_NS,  60 * S_NS,   120 * S_NS,
};
const size_t metrics_boot_buckets_n = ELEMENTSOF(metrics_boot_buckets_ns);

/* Delivery of a Ready over vsock is sub-millisecond when all is well; clock error and a busy host add to it. */
const uint64_t metrics_delivery_buckets_ns[] = {
        100000,     250000,      500000,      1 * MS_NS,   2500000,  5 * MS_NS,    10 * MS_NS, 25 * MS_NS,
        50 * MS_NS, 100 * MS_NS, 250 * MS_NS, 500 * MS_NS, 1 * S_NS, 2500 * MS_NS, 5 * S_NS,   10 * S_NS,
};
const size_t metrics_delivery_buckets_n = ELEMENTSOF(metrics_delivery_buckets_ns);

static const char *const phase_names[_METRICS_PHASE_MAX] = {
        [METRICS_PHASE_KERNEL] = "kernel",
        [METRICS_PHASE_INIT] = "init",
        [METRICS_PHASE_WORKLOAD_START] = "workload.start",
        [METRICS_PHASE_OTHER] = "other",
};

/* ---- observation ---- */

static bool str_eq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static uint64_t span_ns(uint64_t start, uint64_t end) {
        return end > start ? end - start : 0;
}

/* The first milestone of this name, if it was stored strictly before seq (i.e. known before this record). */
static const BootMilestone *milestone_before(const Boot *b, const char *name, uint64_t seq) {
        const BootMilestone *ms = boot_find_milestone(b, name);
        return ms && ms->seq < seq ? ms : NULL;
}

/* The record stored the first milestone of its name (not a repeat, not one dropped by the per-boot bound). */
static const BootMilestone *milestone_stored_by(const Boot *b, const Tether__Envelope *e) {
        const BootMilestone *ms;

        if (e->msg_case != TETHER__ENVELOPE__MSG_MILESTONE || !e->milestone->name)
                return NULL;
        ms = boot_find_milestone(b, e->milestone->name);
        return ms && ms->seq == e->seq ? ms : NULL;
}

/* Whether the boot's root span had ended (ready, or exit) before this record. */
static bool boot_ended_before(const Boot *b, uint64_t seq) {
        return (b->ready.set && b->ready.seq < seq) || (b->exit.set && b->exit.seq < seq);
}

static void observe_milestone(Metrics *mt, const Boot *b, const BootMilestone *ms) {
        const BootMilestone *other;

        /* A stage is observed when its later end is stored; milestones after the boot's end close nothing (the
         * stage already ended with the root, as in stitch.c). */
        if (str_eq(ms->name, BOOT_MILESTONE_INIT_START)) {
                if ((other = milestone_before(b, BOOT_MILESTONE_KERNEL_START, ms->seq)))
                        histogram_observe(
                                &mt->phase[METRICS_PHASE_KERNEL], span_ns(other->boottime_ns, ms->boottime_ns));
        } else if (str_eq(ms->name, BOOT_MILESTONE_KERNEL_START)) {
                if ((other = milestone_before(b, BOOT_MILESTONE_INIT_START, ms->seq)))
                        histogram_observe(
                                &mt->phase[METRICS_PHASE_KERNEL], span_ns(ms->boottime_ns, other->boottime_ns));
        } else if (str_eq(ms->name, BOOT_MILESTONE_WORKLOAD_EXEC)) {
                if ((other = milestone_before(b, BOOT_MILESTONE_INIT_START, ms->seq)))
                        histogram_observe(&mt->phase[METRICS_PHASE_INIT], span_ns(other->boottime_ns, ms->boottime_ns));
        }
}

/* The root ended (ready, or exit before ready) with the record at seq: the open stage ends with it. */
static void observe_boot_end(Metrics *mt, const Boot *b, uint64_t seq, uint64_t end_boottime_ns) {
        const BootMilestone *exec = boot_find_milestone(b, BOOT_MILESTONE_WORKLOAD_EXEC);
        const BootMilestone *init = boot_find_milestone(b, BOOT_MILESTONE_INIT_START);

        if (exec && exec->seq <= seq)
                histogram_observe(
                        &mt->phase[METRICS_PHASE_WORKLOAD_START], span_ns(exec->boottime_ns, end_boottime_ns));
        else if (init && init->seq <= seq)
                histogram_observe(&mt->phase[METRICS_PHASE_INIT], span_ns(init->boottime_ns, end_boottime_ns));
}

static void observe_ready(Metrics *mt, const Machine *m, const Boot *b) {
        uint64_t d;

        if (boot_kernel_to_ready_ns(b, &d) >= 0)
                histogram_observe(&mt->kernel_to_ready, d);
        else if (boot_init_to_ready_ns(b, &d) >= 0)
                histogram_observe(&mt->init_to_ready, d);

        /* Mapping the guest's ready time to host time needs a clock: the probe estimate, else the Hello's. */
        if (b->clock.valid || b->hello_offset_valid) {
                uint64_t ready_unix_ns = boot_to_unix_ns(b, b->ready.boottime_ns, b->ready.recv_unix_ns);

                histogram_observe(&mt->ready_delivery, span_ns(ready_unix_ns, b->ready.recv_unix_ns));
                /* The host-side start: libvirt's "started" when known (any boot), else the registration, which
                 * is the start of the first boot only. */
                if (b->host_start_unix_ns)
                        histogram_observe(&mt->registered_to_ready, span_ns(b->host_start_unix_ns, ready_unix_ns));
                else if (b->index == 1)
                        histogram_observe(&mt->registered_to_ready, span_ns(m->registered_unix_ns, ready_unix_ns));
        }
}

static void on_record_stored(
        Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns, void *userdata) {
        Metrics *mt = userdata;
        const BootMilestone *ms;

        if (boot_ended_before(b, e->seq))
                return;

        if ((ms = milestone_stored_by(b, e)))
                observe_milestone(mt, b, ms);
        else if (
                e->msg_case == TETHER__ENVELOPE__MSG_PHASE && b->n_phases > 0 &&
                b->phases[b->n_phases - 1].seq == e->seq)
                histogram_observe(
                        &mt->phase[METRICS_PHASE_OTHER],
                        span_ns(b->phases[b->n_phases - 1].start_boottime_ns,
                                b->phases[b->n_phases - 1].end_boottime_ns));

        if (b->ready.set && b->ready.seq == e->seq) {
                observe_boot_end(mt, b, e->seq, b->ready.boottime_ns);
                observe_ready(mt, m, b);
        } else if (!b->ready.set && b->exit.set && b->exit.seq == e->seq)
                observe_boot_end(mt, b, e->seq, b->exit.boottime_ns);
}

int metrics_new(Registry *registry, const Stats *stats, bool per_machine, Metrics **ret) {
        RegistryObserver o = { .record_stored = on_record_stored };
        int r;

        Metrics *mt = calloc(1, sizeof(Metrics));
        if (!mt)
                return -ENOMEM;
        mt->registry = registry;
        mt->stats = stats;
        mt->start_unix_ns = now_ns(CLOCK_REALTIME);
        mt->per_machine = per_machine;
        r = 0;
        for (size_t i = 0; i < _METRICS_PHASE_MAX; i++)
                r = r ?: histogram_init(&mt->phase[i], metrics_boot_buckets_ns, metrics_boot_buckets_n);
        r = r ?: histogram_init(&mt->kernel_to_ready, metrics_boot_buckets_ns, metrics_boot_buckets_n);
        r = r ?: histogram_init(&mt->init_to_ready, metrics_boot_buckets_ns, metrics_boot_buckets_n);
        r = r ?: histogram_init(&mt->registered_to_ready, metrics_boot_buckets_ns, metrics_boot_buckets_n);
        r = r ?: histogram_init(&mt->ready_delivery, metrics_delivery_buckets_ns, metrics_delivery_buckets_n);

        o.userdata = mt;
        r = r ?: registry_add_observer(registry, &o);
        if (r < 0) {
                free(mt);
                return r;
        }
        *ret = mt;
        return 0;
}

Metrics *metrics_free(Metrics *mt) {
        if (!mt)
                return NULL;
        registry_remove_observers(mt->registry, mt);
        free(mt);
        return NULL;
}

/* ---- exposition ---- */

void metrics_put_label_value(FILE *f, const char *value) {
        for (const char *p = value; *p; p++) {
                if (*p == '\\' || *p == '"')
                        fputc('\\', f);
                if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        }
}

/* Seconds with nanosecond precision and no trailing zeros: exact, and what a reader expects ("0.0025", "120"). */
static void put_seconds(FILE *f, uint64_t ns) {
        char frac[16];
        size_t n;

        fprintf(f, "%" PRIu64, ns / S_NS);
        if (ns % S_NS == 0)
                return;
        n = (size_t) snprintf(frac, sizeof(frac), "%09" PRIu64, ns % S_NS);
        while (n > 0 && frac[n - 1] == '0')
                frac[--n] = '\0';
        fprintf(f, ".%s", frac);
}

static void put_family(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} (labels optional: k1 NULL for none, k2 NULL for one). */
static void put_labels(FILE *f, const char *k1, const char *v1, const char *k2, const char *v2) {
        if (!k1)
                return;
        fprintf(f, "{%s=\"", k1);
        metrics_put_label_value(f, v1);
        if (k2) {
                fprintf(f, "\",%s=\"", k2);
                metrics_put_label_value(f, v2);
        }
        fputs("\"}", f);
}

static void put_series(FILE *f, const char *name, const char *k1, const char *v1, const char *k2, const char *v2) {
        fputs(name, f);
        put_labels(f, k1, v1, k2, v2);
}

static void put_u64(
        FILE *f, const char *name, const char *k1, const char *v1, const char *k2, const char *v2, uint64_t v) {
        put_series(f, name, k1, v1, k2, v2);
        fprintf(f, " %" PRIu64 "\n", v);
}

/* A family with one label over an enum: one series per value from first to max - 1, values indexed by it. */
#define PUT_BY_LABEL(f, name, type, help, label, Enum, first, max, to_string, values)     \
        do {                                                                              \
                put_family(f, name, type, help);                                          \
                for (Enum _i = (first); _i < (max); _i++)                                 \
                        put_u64(f, name, label, to_string(_i), NULL, NULL, (values)[_i]); \
        } while (0)

static void put_scalar(FILE *f, const char *name, const char *type, const char *help, uint64_t v) {
        put_family(f, name, type, help);
        put_u64(f, name, NULL, NULL, NULL, NULL, v);
}

/* One labelled series of a histogram family (label NULL for none). */
static void put_histogram(FILE *f, const char *name, const char *label, const char *value, const Histogram *h) {
        for (size_t i = 0; i <= h->n_bounds; i++) {
                fprintf(f, "%s_bucket{", name);
                if (label) {
                        fprintf(f, "%s=\"", label);
                        metrics_put_label_value(f, value);
                        fputs("\",", f);
                }
                fputs("le=\"", f);
                if (i < h->n_bounds)
                        put_seconds(f, h->bounds_ns[i]);
                else
                        fputs("+Inf", f);
                fprintf(f, "\"} %" PRIu64 "\n", histogram_cumulative(h, i));
        }
        fprintf(f, "%s_sum", name);
        put_labels(f, label, value, NULL, NULL);
        fputc(' ', f);
        put_seconds(f, h->sum_ns);
        fprintf(f, "\n%s_count", name);
        put_labels(f, label, value, NULL, NULL);
        fprintf(f, " %" PRIu64 "\n", h->count);
}

static void render_counters(FILE *f, const Stats *st) {
        PUT_BY_LABEL(
                f,
                "tether_machine_transitions_total",
                "counter",
                "Lifecycle events, by transition (registered, booted, ready, exited, crashed, OOM-killed...).",
                "transition",
                MachineTransition,
                0,
                _MACHINE_TRANSITION_MAX,
                machine_transition_to_string,
                st->transitions);
        PUT_BY_LABEL(
                f,
                "tether_log_records_total",
                "counter",
                "Log records stored, by stream.",
                "stream",
                int,
                1,
                STATS_LOG_STREAMS,
                log_stream_to_string,
                st->log_records);
        PUT_BY_LABEL(
                f,
                "tether_log_bytes_total",
                "counter",
                "Log data bytes stored, by stream.",
                "stream",
                int,
                1,
                STATS_LOG_STREAMS,
                log_stream_to_string,
                st->log_bytes);

        PUT_BY_LABEL(
                f,
                "tether_dropped_records_total",
                "counter",
                "Records not in the store, by reason.",
                "reason",
                DropReason,
                0,
                _DROP_REASON_MAX,
                drop_reason_to_string,
                st->dropped_records);
        PUT_BY_LABEL(
                f,
                "tether_dropped_bytes_total",
                "counter",
                "Bytes of the records not in the store, by reason.",
                "reason",
                DropReason,
                0,
                _DROP_REASON_MAX,
                drop_reason_to_string,
                st->dropped_bytes);

        PUT_BY_LABEL(
                f,
                "tether_protocol_errors_total",
                "counter",
                "Agent connections closed for a protocol error, by reason.",
                "reason",
                ProtocolError,
                PROTOCOL_ERROR_NONE + 1,
                _PROTOCOL_ERROR_MAX,
                protocol_error_to_string,
                st->protocol_errors);

        put_scalar(
                f,
                "tether_connections_accepted_total",
                "counter",
                "Agent connections accepted.",
                st->connections_accepted);
        PUT_BY_LABEL(
                f,
                "tether_connections_refused_total",
                "counter",
                "Agent connections refused, by reason.",
                "reason",
                RefuseReason,
                0,
                _REFUSE_REASON_MAX,
                refuse_reason_to_string,
                st->connections_refused);
        PUT_BY_LABEL(
                f,
                "tether_connections_closed_total",
                "counter",
                "Agent connections closed, by reason.",
                "reason",
                CloseReason,
                0,
                _CLOSE_REASON_MAX,
                close_reason_to_string,
                st->connections_closed);
        PUT_BY_LABEL(
                f,
                "tether_vmm_notify_refused_total",
                "counter",
                "systemd notifications (vmm.notify port) refused, by reason.",
                "reason",
                NotifyRefuseReason,
                0,
                _NOTIFY_REFUSE_REASON_MAX,
                notify_refuse_reason_to_string,
                st->notify_refused);
        PUT_BY_LABEL(
                f,
                "tether_vmm_notify_connections_closed_total",
                "counter",
                "Connections on the vmm.notify port closed by tetherd, by what ended them.",
                "reason",
                NotifyCloseReason,
                0,
                _NOTIFY_CLOSE_REASON_MAX,
                notify_close_reason_to_string,
                st->notify_closed);

        /* The plain counters and gauges, in exposition order. */
        static const struct {
                const char *name, *type, *help;
                size_t offset; /* of the uint64_t in Stats */
        } scalars[] = {
                { "tether_records_stored_total",
                  "counter",
                  "Records stored (and acked).",
                  offsetof(Stats, records_stored) },
                { "tether_records_duplicate_total",
                  "counter",
                  "Records received again after a lost ack (ignored).",
                  offsetof(Stats, records_duplicate) },
                { "tether_records_repersisted_total",
                  "counter",
                  "Records kept out of their boot file by a failed write, written when the agent resent them.",
                  offsetof(Stats, records_repersisted) },
                { "tether_seq_gaps_total",
                  "counter",
                  "Sequence gaps no LogDropped explained.",
                  offsetof(Stats, seq_gaps) },
                { "tether_seq_gap_records_total",
                  "counter",
                  "Sequence numbers missing in unexplained gaps.",
                  offsetof(Stats, seq_gap_records) },
                { "tether_clock_samples_total",
                  "counter",
                  "Clock probe answers used.",
                  offsetof(Stats, clock_samples) },
                { "tether_clock_samples_ignored_total",
                  "counter",
                  "Clock probe answers ignored (unknown or repeated ids).",
                  offsetof(Stats, clock_samples_ignored) },
                { "tether_resource_samples_total",
                  "counter",
                  "Guest resource samples kept (appended, or in place of one less than a guest second older).",
                  offsetof(Stats, guest_samples) },
                { "tether_resource_samples_refused_total",
                  "counter",
                  "Guest resource samples refused (a guest clock going backwards, or no memory).",
                  offsetof(Stats, guest_samples_refused) },
                { "tether_acks_sent_total", "counter", "Acks sent to agents.", offsetof(Stats, acks_sent) },
                { "tether_syncs_total", "counter", "fdatasync calls before acks.", offsetof(Stats, syncs) },
                { "tether_persist_errors_total",
                  "counter",
                  "Failed writes to the state directory.",
                  offsetof(Stats, persist_errors) },
                { "tether_api_requests_total", "counter", "HTTP API requests.", offsetof(Stats, api_requests) },
                { "tether_events_evicted_total",
                  "counter",
                  "Events evicted from the event log by its bounds (from the machine holding the most).",
                  offsetof(Stats, events_evicted) },
                { "tether_events_too_large_total",
                  "counter",
                  "Events not kept: larger than an eighth of the event log's bytes.",
                  offsetof(Stats, events_too_large) },
                { "tether_api_connections_refused_total",
                  "counter",
                  "HTTP API connections refused (503) at the connection limit.",
                  offsetof(Stats, api_connections_refused) },
                { "tether_api_connections_timed_out_total",
                  "counter",
                  "HTTP API connections shut down: no whole request within the request timeout.",
                  offsetof(Stats, api_connections_timed_out) },
                { "tether_api_connections_evicted_total",
                  "counter",
                  "HTTP API connections cut off at the limit to make room: still waiting for their request.",
                  offsetof(Stats, api_connections_evicted) },
                { "tether_vmm_notify_messages_total",
                  "counter",
                  "systemd notifications (vmm.notify port) applied.",
                  offsetof(Stats, notify_messages) },
                { "tether_vmm_notify_keys_ignored_total",
                  "counter",
                  "Lines of systemd notifications with a key tetherd does not use.",
                  offsetof(Stats, notify_keys_ignored) },
                { "tether_vmm_notify_lines_invalid_total",
                  "counter",
                  "Lines of systemd notifications that were not KEY=VALUE, had a bad value, or were beyond a bound.",
                  offsetof(Stats, notify_lines_invalid) },
                { "tether_vmm_notify_connections_open",
                  "gauge",
                  "Connections open on the vmm.notify port.",
                  offsetof(Stats, notify_connections_open) },
                { "tether_log_memory_evicted_records_total",
                  "counter",
                  "Log records evicted from memory by --log-memory-bytes (lost, or still in their boot file).",
                  offsetof(Stats, log_memory.evicted_records) },
                { "tether_log_memory_evicted_bytes_total",
                  "counter",
                  "Log data bytes evicted from memory by --log-memory-bytes.",
                  offsetof(Stats, log_memory.evicted_bytes) },
                { "tether_log_memory_bytes",
                  "gauge",
                  "Log data held in memory, all boots together (as charged: 64 bytes per entry plus its data).",
                  offsetof(Stats, log_memory.bytes) },
                { "tether_log_memory_limit_bytes",
                  "gauge",
                  "The bound of tether_log_memory_bytes (--log-memory-bytes).",
                  offsetof(Stats, log_memory.limit) },
        };
        for (size_t i = 0; i < ELEMENTSOF(scalars); i++)
                put_scalar(
                        f,
                        scalars[i].name,
                        scalars[i].type,
                        scalars[i].help,
                        *(const uint64_t *) ((const char *) st + scalars[i].offset));
}

/* Seconds since the last accepted export of each signal the exporter sends (since start_unix_ns when none has
 * been yet): what a staleness alert wants, without time() arithmetic that breaks on "0 = never". */
static void render_export_freshness(FILE *f, const ExportStats *ex, uint64_t start_unix_ns, uint64_t now_unix_ns) {
        uint64_t enabled[_EXPORT_SIGNAL_MAX];
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++)
                enabled[s] = ex->enabled[s];
        PUT_BY_LABEL(
                f,
                "tether_export_enabled",
                "gauge",
                "1 for each signal the OTLP exporter sends, else 0.",
                "signal",
                ExportSignal,
                0,
                _EXPORT_SIGNAL_MAX,
                export_signal_to_string,
                enabled);
        put_family(
                f,
                "tether_export_seconds_since_success",
                "gauge",
                "Seconds since the last accepted export (since tetherd started if none yet), for each signal sent.");
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++) {
                if (!ex->enabled[s])
                        continue;
                uint64_t since = ex->last_success_unix_ns[s] ?: start_unix_ns;
                put_series(f, "tether_export_seconds_since_success", "signal", export_signal_to_string(s), NULL, NULL);
                fputc(' ', f);
                put_seconds(f, now_unix_ns > since ? now_unix_ns - since : 0);
                fputc('\n', f);
        }
        put_scalar(
                f,
                "tether_export_spool_limit_bytes",
                "gauge",
                "The on-disk export spool's bound (0: no spool); with tether_export_spool_bytes, its fill.",
                ex->spool_limit_bytes);
}

static void render_export(FILE *f, const ExportStats *ex) {
        PUT_BY_LABEL(
                f,
                "tether_export_requests_total",
                "counter",
                "OTLP export requests the backend accepted, by signal.",
                "signal",
                ExportSignal,
                0,
                _EXPORT_SIGNAL_MAX,
                export_signal_to_string,
                ex->requests);
        PUT_BY_LABEL(
                f,
                "tether_export_failures_total",
                "counter",
                "Failed OTLP export attempts (each retry), by signal.",
                "signal",
                ExportSignal,
                0,
                _EXPORT_SIGNAL_MAX,
                export_signal_to_string,
                ex->failures);
        PUT_BY_LABEL(
                f,
                "tether_export_items_total",
                "counter",
                "Items (spans, log records, points) exported, by signal.",
                "signal",
                ExportSignal,
                0,
                _EXPORT_SIGNAL_MAX,
                export_signal_to_string,
                ex->items);
        PUT_BY_LABEL(
                f,
                "tether_export_bytes_total",
                "counter",
                "OTLP request bytes sent, by signal.",
                "signal",
                ExportSignal,
                0,
                _EXPORT_SIGNAL_MAX,
                export_signal_to_string,
                ex->bytes);
        put_family(
                f,
                "tether_export_dropped_items_total",
                "counter",
                "Items that never reached the backend, by signal and reason.");
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++)
                for (ExportDropReason d = 0; d < _EXPORT_DROP_REASON_MAX; d++)
                        put_u64(f,
                                "tether_export_dropped_items_total",
                                "signal",
                                export_signal_to_string(s),
                                "reason",
                                export_drop_reason_to_string(d),
                                ex->dropped[s][d]);

        put_scalar(
                f,
                "tether_export_queue_bytes",
                "gauge",
                "Bytes waiting in the in-memory export queue.",
                ex->queue_bytes);
        put_scalar(
                f, "tether_export_spool_bytes", "gauge", "Bytes waiting in the on-disk export spool.", ex->spool_bytes);
        put_scalar(
                f,
                "tether_export_deferred_total",
                "counter",
                "Times a boot's live log export was left to the log store, read back later: it held more than its "
                "fair share of a pressed logs queue.",
                ex->deferred);
        put_family(
                f,
                "tether_export_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last accepted export, by signal (0: never).");
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++) {
                put_series(
                        f,
                        "tether_export_last_success_timestamp_seconds",
                        "signal",
                        export_signal_to_string(s),
                        NULL,
                        NULL);
                fputc(' ', f);
                put_seconds(f, ex->last_success_unix_ns[s]);
                fputc('\n', f);
        }
}

static void render_registry(FILE *f, const Registry *r) {
        uint64_t by_state[_MACHINE_STATE_MAX] = {}, connected = 0;

        for (const Machine *m = r->machines; m; m = m->machines_next) {
                if ((unsigned) m->state < _MACHINE_STATE_MAX)
                        by_state[m->state]++;
                connected += m->connected;
        }
        PUT_BY_LABEL(
                f,
                "tether_machines",
                "gauge",
                "Registered machines, by state.",
                "state",
                MachineState,
                0,
                _MACHINE_STATE_MAX,
                machine_state_to_string,
                by_state);
        put_scalar(f, "tether_agents_connected", "gauge", "Machines whose agent is connected.", connected);
}

/* One series of a per-machine family: machine_id first, then the optional label. */
static void put_guest(FILE *f, const char *name, const Machine *m, const char *k, const char *v) {
        put_series(f, name, "machine_id", m->id, k, v);
        fputc(' ', f);
}

/* --metrics-per-machine: the latest resource sample of every machine that has one (docs/metrics.md: 18 series a
 * machine at most). A family's series stay together: one pass over the machines per family. */
static void render_guests(FILE *f, const Registry *r) {
        static const struct {
                const char *name, *type, *help;
        } families[] = {
                { "tether_guest_cpu_seconds_total", "counter", "Guest CPU time, all CPUs, by mode (/proc/stat)." },
                { "tether_guest_cpus", "gauge", "Guest online CPUs." },
                { "tether_guest_memory_total_bytes", "gauge", "Guest MemTotal." },
                { "tether_guest_memory_available_bytes", "gauge", "Guest MemAvailable." },
                { "tether_guest_load1", "gauge", "Guest 1-minute load average." },
                { "tether_guest_pressure_some_ratio",
                  "gauge",
                  "Share of the last 10 s some guest task stalled on the resource (PSI some avg10 / 100)." },
                { "tether_guest_uptime_seconds", "gauge", "Guest uptime at its latest sample." },
                { "tether_guest_cgroup_memory_bytes", "gauge", "The workload cgroup's memory.current." },
                { "tether_guest_cgroup_oom_kills_total", "counter", "The workload cgroup's memory.events oom_kill." },
        };

        for (size_t i = 0; i < ELEMENTSOF(families); i++) {
                put_family(f, families[i].name, families[i].type, families[i].help);
                for (const Machine *m = r->machines; m; m = m->machines_next) {
                        const GuestSample *g = m->samples ? sample_ring_latest(m->samples) : NULL;
                        if (!g)
                                continue;
                        const char *name = families[i].name;
                        switch (i) {
                        case 0:
                                for (SampleCpuMode c = 0; c < _SAMPLE_CPU_MODE_MAX; c++) {
                                        put_guest(f, name, m, "mode", sample_cpu_mode_to_string(c));
                                        put_seconds(f, g->cpu_ns[c]);
                                        fputc('\n', f);
                                }
                                break;
                        case 1:
                                put_guest(f, name, m, NULL, NULL);
                                fprintf(f, "%" PRIu32 "\n", g->cpus);
                                break;
                        case 2:
                        case 3:
                                put_guest(f, name, m, NULL, NULL);
                                fprintf(f, "%" PRIu64 "\n", i == 2 ? g->mem_total_bytes : g->mem_available_bytes);
                                break;
                        case 4:
                                put_guest(f, name, m, NULL, NULL);
                                fprintf(f,
                                        "%" PRIu32 ".%02" PRIu32 "\n",
                                        g->load_centi[0] / 100,
                                        g->load_centi[0] % 100);
                                break;
                        case 5:
                                for (SamplePressure p = 0; p < _SAMPLE_PRESSURE_MAX; p++) {
                                        if (!g->pressure[p].present)
                                                continue;
                                        uint32_t v =
                                                g->pressure[p].some_avg10_centipct; /* 0..10000: hundredths of a % */
                                        put_guest(f, name, m, "resource", sample_pressure_to_string(p));
                                        fprintf(f, "%" PRIu32 ".%04" PRIu32 "\n", v / 10000, v % 10000);
                                }
                                break;
                        case 6:
                                put_guest(f, name, m, NULL, NULL);
                                put_seconds(f, g->boottime_ns);
                                fputc('\n', f);
                                break;
                        case 7:
                        case 8:
                                if (!g->cgroup_present)
                                        break;
                                put_guest(f, name, m, NULL, NULL);
                                fprintf(f, "%" PRIu64 "\n", i == 7 ? g->cgroup_current_bytes : g->cgroup_oom_kill);
                                break;
                        }
                }
        }
}

static void render_histograms(FILE *f, const Metrics *mt) {
        put_family(
                f,
                "tether_boot_phase_duration_seconds",
                "histogram",
                "Duration of boot stages (kernel, init, workload.start) and of guest-reported phases (other).");
        for (MetricsPhase p = 0; p < _METRICS_PHASE_MAX; p++)
                put_histogram(f, "tether_boot_phase_duration_seconds", "phase", phase_names[p], &mt->phase[p]);
        const struct {
                const char *name, *help;
                const Histogram *histogram;
        } unlabelled[] = {
                { "tether_boot_kernel_to_ready_seconds",
                  "Guest time from kernel.start to ready (VM boots).",
                  &mt->kernel_to_ready },
                { "tether_boot_init_to_ready_seconds",
                  "Guest time from init.start to ready, for boots without kernel.start (containers).",
                  &mt->init_to_ready },
                { "tether_boot_registered_to_ready_seconds",
                  "Host time from registration to ready (first boot of a machine).",
                  &mt->registered_to_ready },
                { "tether_ready_delivery_seconds",
                  "From the guest's ready time (mapped to host time) to tetherd processing the Ready.",
                  &mt->ready_delivery },
        };
        for (size_t i = 0; i < ELEMENTSOF(unlabelled); i++) {
                put_family(f, unlabelled[i].name, "histogram", unlabelled[i].help);
                put_histogram(f, unlabelled[i].name, NULL, NULL, unlabelled[i].histogram);
        }
}

int metrics_render(const Metrics *mt, char **ret_text, size_t *ret_len) {
        char *text = NULL;
        size_t len = 0;

        FILE *f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;

        render_histograms(f, mt);
        render_counters(f, mt->stats);
        render_export(f, &mt->stats->export);
        render_export_freshness(f, &mt->stats->export, mt->start_unix_ns, now_ns(CLOCK_REALTIME));
        render_registry(f, mt->registry);
        if (mt->per_machine)
                render_guests(f, mt->registry);
        put_family(f, "tether_build_info", "gauge", "Always 1; the version label says which tetherd this is.");
        put_u64(f, "tether_build_info", "version", TETHER_VERSION, NULL, NULL, 1);
        put_family(f, "process_start_time_seconds", "gauge", "Unix time tetherd started serving metrics.");
        fputs("process_start_time_seconds ", f);
        put_seconds(f, mt->start_unix_ns);
        fputc('\n', f);

        bool failed = ferror(f);
        if (fclose(f) != 0 || failed || !text) {
                free(text);
                return -ENOMEM;
        }
        *ret_text = text;
        *ret_len = len;
        return 0;
}
