/* SPDX-License-Identifier: MIT */
/* OTLP metrics: a guest sample's metrics and tetherd's fleet metrics assembled into an ExportMetricsServiceRequest
 * decode (protobuf-c) with their names, units, kinds, temporality, values and attributes; the partial success of
 * a metrics response; the OTLP/JSON rendering of a Metric. */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collector-test.h"
#include "macro.h"
#include "otlp-encode.h"
#include "otlp-json.h"
#include "otlp-metrics.h"
#include "otlp_metrics_service.pb-c.h"

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest Request;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberDataPoint;

#define assert_near(a, b, eps) assert_true(fabs((double) (a) - (double) (b)) <= (eps))

#define SEC UINT64_C(1000000000)
#define RECV (UINT64_C(1700000000) * SEC)

typedef struct Collected {
        uint8_t *data[64];
        size_t len[64];
        size_t n;
} Collected;

static int collect(const OtlpMetric *m, void *userdata) {
        Collected *c = userdata;
        assert_true(c->n < ELEMENTSOF(c->data));
        assert_int_equal(otlp_encode_metric(m, &c->data[c->n], &c->len[c->n]), 0);
        c->n++;
        return 0;
}

/* The collected metrics under one resource, as a request, decoded. */
static Request *assemble(Collected *c) {
        OtlpResource res = { .service_name = "svc", .machine_id = "vm-1", .node_id = "node-a" };
        OtlpBlob *blob;
        OtlpItem items[64];
        uint8_t *body;
        size_t len;

        assert_int_equal(otlp_encode_resource(&res, &blob), 0);
        for (size_t i = 0; i < c->n; i++)
                items[i] = (OtlpItem) { blob, c->data[i], c->len[i] };
        assert_int_equal(otlp_encode_request(EXPORT_SIGNAL_METRICS, items, c->n, &body, &len), 0);
        Request *r = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
                NULL, len, body);
        assert_non_null(r);
        free(body);
        otlp_blob_unref(blob);
        for (size_t i = 0; i < c->n; i++)
                free(c->data[i]);
        c->n = 0;
        assert_int_equal(r->n_resource_metrics, 1);
        assert_int_equal(r->resource_metrics[0]->n_scope_metrics, 1);
        assert_string_equal(r->resource_metrics[0]->scope_metrics[0]->scope->name, "tether");
        return r;
}

static const Metric *find(const Request *r, const char *name) {
        const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *s = r->resource_metrics[0]->scope_metrics[0];
        for (size_t i = 0; i < s->n_metrics; i++)
                if (strcmp(s->metrics[i]->name, name) == 0)
                        return s->metrics[i];
        return NULL;
}

/* The point of m whose attribute key has value (or the only point when key is NULL). */
static const NumberDataPoint *point(const Metric *m, const char *key, const char *value) {
        size_t n = m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM ? m->sum->n_data_points :
                                                                                         m->gauge->n_data_points;
        NumberDataPoint **pts = m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM ?
                m->sum->data_points :
                m->gauge->data_points;
        if (!key) {
                assert_int_equal(n, 1);
                return pts[0];
        }
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < pts[i]->n_attributes; j++)
                        if (strcmp(pts[i]->attributes[j]->key, key) == 0 &&
                            strcmp(pts[i]->attributes[j]->value->string_value, value) == 0)
                                return pts[i];
        fail_msg("no point %s=%s in %s", key, value, m->name);
        return NULL;
}

static void assert_sum(const Metric *m, bool monotonic, const char *unit) {
        assert_non_null(m);
        assert_int_equal(m->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
        assert_int_equal(
                m->sum->aggregation_temporality,
                OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
        assert_int_equal(m->sum->is_monotonic, monotonic);
        assert_string_equal(m->unit, unit);
}

static void assert_gauge(const Metric *m, const char *unit) {
        assert_non_null(m);
        assert_int_equal(m->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
        assert_string_equal(m->unit, unit);
}

static GuestSample sample(void) {
        GuestSample g = {
                .recv_unix_ns = RECV,
                .boottime_ns = 90 * SEC + 500000000,
                .cpus = 4,
                .mem_total_bytes = 1000 << 20,
                .mem_available_bytes = 600 << 20,
                .mem_free_bytes = 400 << 20,
                .swap_total_bytes = 100 << 20,
                .swap_free_bytes = 75 << 20,
                .load_centi = { 150, 75, 5 },
                .cgroup_present = true,
                .cgroup_current_bytes = 300 << 20,
                .cgroup_peak_bytes = 350 << 20,
                .cgroup_oom = 2,
                .cgroup_oom_kill = 1,
        };
        g.cpu_ns[SAMPLE_CPU_USER] = 12 * SEC + 250000000;
        g.cpu_ns[SAMPLE_CPU_IDLE] = 300 * SEC;
        g.cpu_ns[SAMPLE_CPU_IRQ] = SEC / 2;
        g.pressure[SAMPLE_PRESSURE_MEMORY] = (SamplePressureValues) {
                .present = true,
                .some_avg10_centipct = 1250, /* 12.5 % */
                .full_avg10_centipct = 300,
                .some_total_ns = 7 * SEC,
                .full_total_ns = 2 * SEC,
        };
        return g;
}

static void test_guest_sample(void **state) {
        Collected c = {};
        GuestSample g = sample();

        assert_int_equal(otlp_guest_sample_metrics(&g, NULL, NULL), 17); /* counted only */
        assert_int_equal(c.n, 0);
        assert_int_equal(otlp_guest_sample_metrics(&g, collect, &c), 17);
        size_t bytes = 0;
        for (size_t i = 0; i < c.n; i++)
                bytes += c.len[i];
        /* docs/otlp.md: at most 17 metrics (this sample has them all but the CPU and IO pressure points). */
        assert_int_equal(c.n, 17);
        print_message("a sample's metrics: %zu, %zu bytes of protobuf\n", c.n, bytes);
        Request *r = assemble(&c);

        const Metric *m = find(r, "system.cpu.time");
        assert_sum(m, true, "s");
        assert_int_equal(m->sum->n_data_points, _SAMPLE_CPU_MODE_MAX);
        const NumberDataPoint *p = point(m, "cpu.mode", "user");
        assert_int_equal(p->value_case, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
        assert_near(p->as_double, 12.25, 1e-9);
        /* Cumulative since the guest's boot: the receive time minus its uptime. */
        assert_int_equal(p->start_time_unix_nano, RECV - g.boottime_ns);
        assert_int_equal(p->time_unix_nano, RECV);
        assert_near(point(m, "cpu.mode", "interrupt")->as_double, 0.5, 1e-9);
        assert_near(point(m, "cpu.mode", "idle")->as_double, 300, 1e-9);

        m = find(r, "system.cpu.logical.count");
        assert_sum(m, false, "{cpu}");
        assert_int_equal(point(m, NULL, NULL)->as_int, 4);
        m = find(r, "system.memory.usage");
        assert_sum(m, false, "By");
        assert_int_equal(point(m, "system.memory.state", "used")->as_int, 400 << 20);
        assert_int_equal(point(m, "system.memory.state", "free")->as_int, 400 << 20);
        assert_int_equal(point(find(r, "system.memory.limit"), NULL, NULL)->as_int, 1000 << 20);
        m = find(r, "system.paging.usage");
        assert_int_equal(point(m, "system.paging.state", "used")->as_int, 25 << 20);

        m = find(r, "system.uptime");
        assert_gauge(m, "s");
        p = point(m, NULL, NULL);
        assert_near(p->as_double, 90.5, 1e-9);
        assert_int_equal(p->start_time_unix_nano, 0); /* gauges have none */
        assert_near(point(find(r, "system.cpu.load_average.1m"), NULL, NULL)->as_double, 1.5, 1e-9);

        m = find(r, "tether.guest.pressure.some_ratio");
        assert_gauge(m, "1");
        assert_int_equal(m->gauge->n_data_points, 1); /* only the resources the kernel reported */
        assert_near(point(m, "resource", "memory")->as_double, 0.125, 1e-9);
        assert_near(point(find(r, "tether.guest.pressure.full_ratio"), "resource", "memory")->as_double, 0.03, 1e-9);
        m = find(r, "tether.guest.pressure.some_time");
        assert_sum(m, true, "s");
        assert_near(point(m, "resource", "memory")->as_double, 7, 1e-9);

        m = find(r, "tether.guest.cgroup.memory.usage");
        assert_sum(m, false, "By");
        assert_int_equal(point(m, NULL, NULL)->as_int, 300 << 20);
        assert_int_equal(point(find(r, "tether.guest.cgroup.memory.peak"), NULL, NULL)->as_int, 350 << 20);
        m = find(r, "tether.guest.cgroup.memory.oom_kill");
        assert_sum(m, true, "{event}");
        assert_int_equal(point(m, NULL, NULL)->as_int, 1);
        assert_int_equal(point(find(r, "tether.guest.cgroup.memory.oom"), NULL, NULL)->as_int, 2);
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(r, NULL);

        /* Without a cgroup, swap or pressure: those metrics are left out. */
        g.cgroup_present = false;
        g.swap_total_bytes = 0;
        g.pressure[SAMPLE_PRESSURE_MEMORY].present = false;
        assert_int_equal(otlp_guest_sample_metrics(&g, collect, &c), 8);
        r = assemble(&c);
        assert_null(find(r, "tether.guest.cgroup.memory.usage"));
        assert_null(find(r, "system.paging.usage"));
        assert_null(find(r, "tether.guest.pressure.some_ratio"));
        assert_non_null(find(r, "system.cpu.time"));
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(r, NULL);
}

static int fail_third(const OtlpMetric *m, void *userdata) {
        unsigned *n = userdata;
        return ++*n == 3 ? -ENOSPC : 0;
}

static void test_emit_error_stops(void **state) {
        GuestSample g = sample();
        unsigned n = 0;

        assert_int_equal(otlp_guest_sample_metrics(&g, fail_third, &n), -ENOSPC);
        assert_int_equal(n, 3);
}

static void test_fleet(void **state) {
        static const uint64_t bounds[] = { SEC / 10, SEC, 10 * SEC };
        Stats stats = {};
        Histogram kernel, ready;
        Collected c = {};

        assert_int_equal(histogram_init(&kernel, bounds, ELEMENTSOF(bounds)), 0);
        assert_int_equal(histogram_init(&ready, bounds, ELEMENTSOF(bounds)), 0);
        histogram_observe(&kernel, SEC / 20);
        histogram_observe(&kernel, SEC / 2);
        histogram_observe(&kernel, 20 * SEC);
        stats.transitions[TRANSITION_READY] = 7;
        stats.transitions[TRANSITION_OOM_KILLED] = 1;
        stats.export.enabled[EXPORT_SIGNAL_TRACES] = true;
        stats.export.enabled[EXPORT_SIGNAL_METRICS] = true;
        stats.export.last_success_unix_ns[EXPORT_SIGNAL_TRACES] = RECV - 3 * SEC;
        stats.export.dropped[EXPORT_SIGNAL_METRICS][EXPORT_DROP_QUEUE_FULL] = 5;
        stats.export.items[EXPORT_SIGNAL_LOGS] = 42;
        OtlpFleetHistograms h = { .kernel = &kernel, .kernel_to_ready = &ready };
        OtlpFleetState st = {
                .machines = 3,
                .agents_connected = 2,
                .machines_by_state = { [MACHINE_READY] = 2, [MACHINE_REGISTERED] = 1 },
                .start_unix_ns = RECV - 100 * SEC,
                .now_unix_ns = RECV,
                .histograms = &h,
        };

        assert_int_equal(otlp_fleet_metrics(&stats, &st, collect, &c), 15);
        assert_int_equal(c.n, 15);
        Request *r = assemble(&c);

        const Metric *m = find(r, "tether.machine.transitions");
        assert_sum(m, true, "{event}");
        const NumberDataPoint *p = point(m, "tether.transition", "ready");
        assert_int_equal(p->as_int, 7);
        assert_int_equal(p->start_time_unix_nano, RECV - 100 * SEC);
        assert_int_equal(point(m, "tether.transition", "oom_killed")->as_int, 1);
        assert_int_equal(point(m, "tether.transition", "crashed")->as_int, 0);
        m = find(r, "tether.machines");
        assert_sum(m, false, "{machine}");
        assert_int_equal(point(m, "tether.machine.state", "ready")->as_int, 2);
        assert_int_equal(point(find(r, "tether.agent.connections"), NULL, NULL)->as_int, 2);
        assert_int_equal(point(find(r, "tether.export.items"), "signal", "logs")->as_int, 42);

        m = find(r, "tether.export.dropped");
        assert_sum(m, true, "{item}");
        bool seen = false;
        for (size_t i = 0; i < m->sum->n_data_points; i++) {
                const NumberDataPoint *d = m->sum->data_points[i];
                assert_int_equal(d->n_attributes, 2);
                if (strcmp(d->attributes[0]->value->string_value, "metrics") == 0 &&
                    strcmp(d->attributes[1]->value->string_value, "queue_full") == 0) {
                        assert_int_equal(d->as_int, 5);
                        seen = true;
                }
        }
        assert_true(seen);

        /* Freshness of the signals sent: since the last success, or since the start when none. */
        m = find(r, "tether.export.time_since_success");
        assert_gauge(m, "s");
        assert_int_equal(m->gauge->n_data_points, 2);
        assert_near(point(m, "signal", "traces")->as_double, 3, 1e-9);
        assert_near(point(m, "signal", "metrics")->as_double, 100, 1e-9);
        assert_null(find(r, "tether.export.spool.usage")); /* no spool */

        m = find(r, "tether.boot.stage.duration");
        assert_non_null(m);
        assert_int_equal(m->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
        assert_int_equal(
                m->histogram->aggregation_temporality,
                OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
        assert_int_equal(m->histogram->n_data_points, 1); /* only the histograms given */
        const Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp = m->histogram->data_points[0];
        assert_string_equal(hp->attributes[0]->key, "tether.boot.stage");
        assert_string_equal(hp->attributes[0]->value->string_value, "kernel");
        assert_int_equal(hp->count, 3);
        assert_near(hp->sum, 20.55, 1e-9);
        assert_int_equal(hp->n_explicit_bounds, 3);
        assert_near(hp->explicit_bounds[0], 0.1, 1e-12);
        assert_near(hp->explicit_bounds[2], 10, 1e-12);
        assert_int_equal(hp->n_bucket_counts, 4);
        assert_int_equal(hp->bucket_counts[0], 1);
        assert_int_equal(hp->bucket_counts[1], 1);
        assert_int_equal(hp->bucket_counts[2], 0);
        assert_int_equal(hp->bucket_counts[3], 1);
        assert_int_equal(hp->start_time_unix_nano, RECV - 100 * SEC);
        m = find(r, "tether.boot.kernel_to_ready");
        assert_non_null(m);
        assert_int_equal(m->histogram->data_points[0]->count, 0);
        assert_null(find(r, "tether.ready.delivery"));
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(r, NULL);
}

static void test_bad_metrics(void **state) {
        OtlpNumberPoint p = { .as_int = 1 };
        OtlpMetric m = { .name = "x", .kind = OTLP_METRIC_GAUGE, .points = &p, .n_points = 0 };
        uint8_t *data;
        size_t len;

        assert_int_equal(otlp_encode_metric(&m, &data, &len), -EINVAL);
        m.n_points = OTLP_METRIC_POINTS_MAX + 1;
        assert_int_equal(otlp_encode_metric(&m, &data, &len), -EINVAL);
        m.n_points = 1;
        m.kind = OTLP_METRIC_HISTOGRAM; /* without histogram points */
        assert_int_equal(otlp_encode_metric(&m, &data, &len), -EINVAL);
}

static void test_partial_success(void **state) {
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse resp =
                OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsPartialSuccess ps =
                OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        uint8_t buf[64];
        int64_t rejected = -1;

        ps.rejected_data_points = 6;
        ps.error_message = (char *) "too old";
        resp.partial_success = &ps;
        size_t len = opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__pack(&resp, buf);
        assert_int_equal(otlp_decode_partial_success(EXPORT_SIGNAL_METRICS, buf, len, &rejected), 0);
        assert_int_equal(rejected, 6);
        assert_int_equal(otlp_decode_partial_success(EXPORT_SIGNAL_METRICS, NULL, 0, &rejected), 0);
        assert_int_equal(rejected, 0);
}

static void test_json(void **state) {
        OtlpNumberPoint p[2] = {
                { .attrs = { { "cpu.mode", "user" } }, .n_attrs = 1, .is_double = true, .as_double = 1.5 },
                { .attrs = { { "cpu.mode", "idle" } }, .n_attrs = 1, .is_double = true, .as_double = 0 },
        };
        OtlpMetric m = {
                .name = "system.cpu.time",
                .unit = "s",
                .kind = OTLP_METRIC_SUM,
                .monotonic = true,
                .start_unix_ns = 1000,
                .time_unix_ns = 2000,
                .points = p,
                .n_points = 2,
        };
        uint8_t *data;
        size_t len, jlen;
        char *json;

        assert_int_equal(otlp_encode_metric(&m, &data, &len), 0);
        assert_int_equal(otlp_item_to_json(EXPORT_SIGNAL_METRICS, data, len, &json, &jlen), 0);
        assert_string_equal(
                json,
                "{\"name\":\"system.cpu.time\",\"unit\":\"s\",\"sum\":{\"dataPoints\":[{\"startTimeUnixNano\":\"1000\","
                "\"timeUnixNano\":\"2000\",\"asDouble\":1.5,\"attributes\":[{\"key\":\"cpu.mode\",\"value\":{"
                "\"stringValue\":\"user\"}}]},{\"startTimeUnixNano\":\"1000\",\"timeUnixNano\":\"2000\",\"asDouble\":0,"
                "\"attributes\":[{\"key\":\"cpu.mode\",\"value\":{\"stringValue\":\"idle\"}}]}],"
                "\"aggregationTemporality\":2,\"isMonotonic\":true}}");
        free(json);
        free(data);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_guest_sample),    cmocka_unit_test(test_emit_error_stops),
                cmocka_unit_test(test_fleet),           cmocka_unit_test(test_bad_metrics),
                cmocka_unit_test(test_partial_success), cmocka_unit_test(test_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
