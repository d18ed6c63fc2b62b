/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-metrics.h"

#include <errno.h>

#include "machine.h"
#include "macro.h"

/* OpenTelemetry's cpu.mode values where they exist (interrupt), the kernel's /proc/stat names otherwise. */
static const char *const cpu_modes[_SAMPLE_CPU_MODE_MAX] = {
        [SAMPLE_CPU_USER] = "user",       [SAMPLE_CPU_NICE] = "nice",     [SAMPLE_CPU_SYSTEM] = "system",
        [SAMPLE_CPU_IDLE] = "idle",       [SAMPLE_CPU_IOWAIT] = "iowait", [SAMPLE_CPU_IRQ] = "interrupt",
        [SAMPLE_CPU_SOFTIRQ] = "softirq", [SAMPLE_CPU_STEAL] = "steal",
};

static OtlpNumberPoint int_point(uint64_t v) {
        return (OtlpNumberPoint) { .as_int = v > INT64_MAX ? INT64_MAX : (int64_t) v };
}

static OtlpNumberPoint double_point(double v) {
        return (OtlpNumberPoint) { .is_double = true, .as_double = v };
}

static OtlpNumberPoint attr_point(OtlpNumberPoint p, const char *key, const char *value) {
        if (p.n_attrs < OTLP_POINT_ATTRS_MAX)
                p.attrs[p.n_attrs++] = (OtlpPointAttr) { key, value };
        return p;
}

/* One metric of n points (none without points). Returns 1 when emitted (counted only when emit is NULL), 0 when
 * there are no points, or emit's error. */
static int emit_points(
        OtlpMetricEmit emit,
        void *userdata,
        const char *name,
        const char *unit,
        OtlpMetricKind kind,
        bool monotonic,
        uint64_t start_unix_ns,
        uint64_t time_unix_ns,
        const OtlpNumberPoint *points,
        size_t n) {
        if (n == 0)
                return 0;
        if (!emit)
                return 1;
        OtlpMetric m = {
                .name = name,
                .unit = unit,
                .kind = kind,
                .monotonic = monotonic,
                .start_unix_ns = start_unix_ns,
                .time_unix_ns = time_unix_ns,
                .points = points,
                .n_points = n,
        };
        int r = emit(&m, userdata);
        return r < 0 ? r : 1;
}

#define EMIT(name, unit, kind, monotonic, points, n)                                                       \
        do {                                                                                               \
                int _r_ = emit_points(emit, userdata, name, unit, kind, monotonic, start, now, points, n); \
                if (_r_ < 0)                                                                               \
                        return _r_;                                                                        \
                count += _r_;                                                                              \
        } while (0)

#define EMIT1(name, unit, kind, monotonic, point)           \
        do {                                                \
                OtlpNumberPoint _p_ = (point);              \
                EMIT(name, unit, kind, monotonic, &_p_, 1); \
        } while (0)

int otlp_guest_sample_metrics(const GuestSample *g, OtlpMetricEmit emit, void *userdata) {
        OtlpNumberPoint p[OTLP_METRIC_POINTS_MAX];
        uint64_t now = g->recv_unix_ns, start = g->recv_unix_ns > g->boottime_ns ? g->recv_unix_ns - g->boottime_ns : 0;
        size_t n;
        int count = 0;

        for (SampleCpuMode c = 0; c < _SAMPLE_CPU_MODE_MAX; c++)
                p[c] = attr_point(double_point((double) g->cpu_ns[c] / 1e9), "cpu.mode", cpu_modes[c]);
        EMIT("system.cpu.time", "s", OTLP_METRIC_SUM, true, p, (size_t) _SAMPLE_CPU_MODE_MAX);
        EMIT1("system.cpu.logical.count", "{cpu}", OTLP_METRIC_SUM, false, int_point(g->cpus));

        /* Validated by the session: available <= total, free <= total. */
        p[0] = attr_point(int_point(g->mem_total_bytes - g->mem_available_bytes), "system.memory.state", "used");
        p[1] = attr_point(int_point(g->mem_free_bytes), "system.memory.state", "free");
        EMIT("system.memory.usage", "By", OTLP_METRIC_SUM, false, p, 2);
        EMIT1("system.memory.limit", "By", OTLP_METRIC_SUM, false, int_point(g->mem_total_bytes));
        if (g->swap_total_bytes > 0) {
                uint64_t free_swap = MIN(g->swap_free_bytes, g->swap_total_bytes);
                p[0] = attr_point(int_point(g->swap_total_bytes - free_swap), "system.paging.state", "used");
                p[1] = attr_point(int_point(free_swap), "system.paging.state", "free");
                EMIT("system.paging.usage", "By", OTLP_METRIC_SUM, false, p, 2);
        }

        EMIT1("system.cpu.load_average.1m",
              "{thread}",
              OTLP_METRIC_GAUGE,
              false,
              double_point(g->load_centi[0] / 100.0));
        EMIT1("system.cpu.load_average.5m",
              "{thread}",
              OTLP_METRIC_GAUGE,
              false,
              double_point(g->load_centi[1] / 100.0));
        EMIT1("system.cpu.load_average.15m",
              "{thread}",
              OTLP_METRIC_GAUGE,
              false,
              double_point(g->load_centi[2] / 100.0));
        EMIT1("system.uptime", "s", OTLP_METRIC_GAUGE, false, double_point((double) g->boottime_ns / 1e9));

        /* Pressure stall information, where the guest kernel has it: the share of the last 10 s some (or all)
         * tasks stalled on the resource, and the stall time since boot. */
        OtlpNumberPoint full[_SAMPLE_PRESSURE_MAX], some_t[_SAMPLE_PRESSURE_MAX], full_t[_SAMPLE_PRESSURE_MAX];
        n = 0;
        for (SamplePressure r = 0; r < _SAMPLE_PRESSURE_MAX; r++) {
                const SamplePressureValues *v = &g->pressure[r];
                if (!v->present)
                        continue;
                const char *res = sample_pressure_to_string(r);
                p[n] = attr_point(double_point(v->some_avg10_centipct / 10000.0), "resource", res);
                full[n] = attr_point(double_point(v->full_avg10_centipct / 10000.0), "resource", res);
                some_t[n] = attr_point(double_point((double) v->some_total_ns / 1e9), "resource", res);
                full_t[n] = attr_point(double_point((double) v->full_total_ns / 1e9), "resource", res);
                n++;
        }
        EMIT("tether.guest.pressure.some_ratio", "1", OTLP_METRIC_GAUGE, false, p, n);
        EMIT("tether.guest.pressure.full_ratio", "1", OTLP_METRIC_GAUGE, false, full, n);
        EMIT("tether.guest.pressure.some_time", "s", OTLP_METRIC_SUM, true, some_t, n);
        EMIT("tether.guest.pressure.full_time", "s", OTLP_METRIC_SUM, true, full_t, n);

        if (g->cgroup_present) {
                EMIT1("tether.guest.cgroup.memory.usage",
                      "By",
                      OTLP_METRIC_SUM,
                      false,
                      int_point(g->cgroup_current_bytes));
                EMIT1("tether.guest.cgroup.memory.peak",
                      "By",
                      OTLP_METRIC_GAUGE,
                      false,
                      int_point(g->cgroup_peak_bytes));
                EMIT1("tether.guest.cgroup.memory.oom", "{event}", OTLP_METRIC_SUM, true, int_point(g->cgroup_oom));
                EMIT1("tether.guest.cgroup.memory.oom_kill",
                      "{event}",
                      OTLP_METRIC_SUM,
                      true,
                      int_point(g->cgroup_oom_kill));
        }
        return count;
}

/* One metric of Stats counted per signal. */
static int emit_per_signal(
        OtlpMetricEmit emit,
        void *userdata,
        const char *name,
        const char *unit,
        OtlpMetricKind kind,
        bool monotonic,
        uint64_t start,
        uint64_t now,
        const uint64_t *values) {
        OtlpNumberPoint p[_EXPORT_SIGNAL_MAX];
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++)
                p[s] = attr_point(int_point(values[s]), "signal", export_signal_to_string(s));
        return emit_points(emit, userdata, name, unit, kind, monotonic, start, now, p, _EXPORT_SIGNAL_MAX);
}

#define EMIT_PER_SIGNAL(name, unit, kind, monotonic, values)                                                \
        do {                                                                                                \
                int _r_ = emit_per_signal(emit, userdata, name, unit, kind, monotonic, start, now, values); \
                if (_r_ < 0)                                                                                \
                        return _r_;                                                                         \
                count += _r_;                                                                               \
        } while (0)

static int emit_histogram(
        OtlpMetricEmit emit,
        void *userdata,
        const char *name,
        uint64_t start,
        uint64_t now,
        const Histogram *const *h,
        const char *const *stages,
        size_t n) {
        OtlpHistogramPoint p[8];
        double bounds[8][HISTOGRAM_BOUNDS_MAX];
        size_t k = 0;

        if (n > ELEMENTSOF(p))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!h[i])
                        continue;
                for (size_t j = 0; j < h[i]->n_bounds; j++)
                        bounds[k][j] = (double) h[i]->bounds_ns[j] / 1e9;
                p[k] = (OtlpHistogramPoint) {
                        .count = h[i]->count,
                        .sum = (double) h[i]->sum_ns / 1e9,
                        .bounds = bounds[k],
                        .n_bounds = h[i]->n_bounds,
                        .bucket_counts = h[i]->buckets,
                };
                if (stages && stages[i])
                        p[k].attrs[p[k].n_attrs++] = (OtlpPointAttr) { "tether.boot.stage", stages[i] };
                k++;
        }
        if (k == 0)
                return 0;
        OtlpMetric m = {
                .name = name,
                .unit = "s",
                .kind = OTLP_METRIC_HISTOGRAM,
                .start_unix_ns = start,
                .time_unix_ns = now,
                .histogram_points = p,
                .n_points = k,
        };
        if (!emit)
                return 1;
        int r = emit(&m, userdata);
        return r < 0 ? r : 1;
}

#define EMIT_HISTOGRAM(name, hs, stages, n)                                                \
        do {                                                                               \
                int _r_ = emit_histogram(emit, userdata, name, start, now, hs, stages, n); \
                if (_r_ < 0)                                                               \
                        return _r_;                                                        \
                count += _r_;                                                              \
        } while (0)

int otlp_fleet_metrics(const Stats *stats, const OtlpFleetState *state, OtlpMetricEmit emit, void *userdata) {
        const ExportStats *ex = &stats->export;
        OtlpNumberPoint p[OTLP_METRIC_POINTS_MAX];
        uint64_t start = state->start_unix_ns, now = state->now_unix_ns;
        size_t n = 0;
        int count = 0;

        _Static_assert(_MACHINE_TRANSITION_MAX <= OTLP_METRIC_POINTS_MAX, "transitions");
        _Static_assert(_MACHINE_STATE_MAX <= OTLP_METRIC_POINTS_MAX, "states");
        _Static_assert(_EXPORT_SIGNAL_MAX * _EXPORT_DROP_REASON_MAX <= OTLP_METRIC_POINTS_MAX, "drops");

        for (MachineTransition t = 0; t < _MACHINE_TRANSITION_MAX; t++)
                p[t] = attr_point(
                        int_point(stats->transitions[t]), "tether.transition", machine_transition_to_string(t));
        EMIT("tether.machine.transitions", "{event}", OTLP_METRIC_SUM, true, p, (size_t) _MACHINE_TRANSITION_MAX);
        for (MachineState s = 0; s < _MACHINE_STATE_MAX; s++)
                p[s] = attr_point(
                        int_point(state->machines_by_state[s]), "tether.machine.state", machine_state_to_string(s));
        EMIT("tether.machines", "{machine}", OTLP_METRIC_SUM, false, p, (size_t) _MACHINE_STATE_MAX);
        EMIT1("tether.agent.connections", "{connection}", OTLP_METRIC_SUM, false, int_point(state->agents_connected));
        EMIT1("tether.resource_samples", "{sample}", OTLP_METRIC_SUM, true, int_point(stats->guest_samples));
        EMIT1("tether.resource_samples.refused",
              "{sample}",
              OTLP_METRIC_SUM,
              true,
              int_point(stats->guest_samples_refused));

        uint64_t dropped_records = 0;
        for (size_t i = 0; i < ELEMENTSOF(stats->dropped_records); i++)
                dropped_records += stats->dropped_records[i];
        EMIT1("tether.log.records.dropped", "{record}", OTLP_METRIC_SUM, true, int_point(dropped_records));

        EMIT_PER_SIGNAL("tether.export.requests", "{request}", OTLP_METRIC_SUM, true, ex->requests);
        EMIT_PER_SIGNAL("tether.export.failures", "{attempt}", OTLP_METRIC_SUM, true, ex->failures);
        EMIT_PER_SIGNAL("tether.export.items", "{item}", OTLP_METRIC_SUM, true, ex->items);
        EMIT_PER_SIGNAL("tether.export.bytes", "By", OTLP_METRIC_SUM, true, ex->bytes);
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++)
                for (ExportDropReason r = 0; r < _EXPORT_DROP_REASON_MAX; r++) {
                        p[n] = attr_point(int_point(ex->dropped[s][r]), "signal", export_signal_to_string(s));
                        p[n] = attr_point(p[n], "reason", export_drop_reason_to_string(r));
                        n++;
                }
        EMIT("tether.export.dropped", "{item}", OTLP_METRIC_SUM, true, p, n);
        n = 0;
        for (ExportSignal s = 0; s < _EXPORT_SIGNAL_MAX; s++) {
                if (!ex->enabled[s])
                        continue;
                uint64_t since = ex->last_success_unix_ns[s] ?: start;
                p[n++] = attr_point(
                        double_point(now > since ? (double) (now - since) / 1e9 : 0),
                        "signal",
                        export_signal_to_string(s));
        }
        EMIT("tether.export.time_since_success", "s", OTLP_METRIC_GAUGE, false, p, n);
        EMIT1("tether.export.queue.usage", "By", OTLP_METRIC_SUM, false, int_point(ex->queue_bytes));
        if (ex->spool_limit_bytes > 0) {
                EMIT1("tether.export.spool.usage", "By", OTLP_METRIC_SUM, false, int_point(ex->spool_bytes));
                EMIT1("tether.export.spool.limit", "By", OTLP_METRIC_SUM, false, int_point(ex->spool_limit_bytes));
        }

        const OtlpFleetHistograms *h = state->histograms;
        if (h) {
                const Histogram *stages[] = { h->kernel, h->init, h->workload_start, h->phase };
                static const char *const stage_names[] = { "kernel", "init", "workload.start", "phase" };
                EMIT_HISTOGRAM("tether.boot.stage.duration", stages, stage_names, ELEMENTSOF(stages));
                EMIT_HISTOGRAM("tether.boot.kernel_to_ready", &h->kernel_to_ready, NULL, 1);
                EMIT_HISTOGRAM("tether.boot.init_to_ready", &h->init_to_ready, NULL, 1);
                EMIT_HISTOGRAM("tether.boot.registered_to_ready", &h->registered_to_ready, NULL, 1);
                EMIT_HISTOGRAM("tether.ready.delivery", &h->ready_delivery, NULL, 1);
        }
        return count;
}
