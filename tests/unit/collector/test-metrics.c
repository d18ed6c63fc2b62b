/* SPDX-License-Identifier: MIT */
/* The Prometheus exposition: histogram bucketing, exact lines for a Stats fixture, the text format's structure
 * (HELP/TYPE once per family, contiguous families, cumulative buckets with +Inf == _count), label escaping, a
 * series count independent of the number of machines, and boot histograms observed exactly once per boot, fed
 * through real sessions, across replays and across a restart that reloads the state directory. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collector-test.h"
#include "jsonlog.h"
#include "metrics.h"
#include "session.h"
#include "store.h"
#include "time-util.h"

#define MS UINT64_C(1000000)

typedef struct World {
        char dir[64];
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext ctx;
        Metrics *metrics;
        bool per_machine;
} World;

static void world_open(World *w, bool persist) {
        RegistryConfig c = {
                .node_id = "node-a",
                .max_machines = 1000,
                .max_boots = 4,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        StoreConfig sc = { .dir = w->dir, .sync = false };

        memset(&w->stats, 0, sizeof(w->stats));
        assert_int_equal(registry_new(&c, &w->stats, &w->registry), 0);
        if (persist)
                assert_int_equal(store_open(&sc, &w->stats, &w->store), 0);
        session_context_init(&w->ctx, w->registry, w->store, &w->stats);
        assert_int_equal(metrics_new(w->registry, &w->stats, w->per_machine, &w->metrics), 0);
}

static void world_close(World *w) {
        w->metrics = metrics_free(w->metrics);
        w->store = store_free(w->store);
        w->registry = registry_free(w->registry);
}

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        log_setup(LOG_TARGET_JSON, LOG_CRIT, "test");
        test_dir_make(w->dir, sizeof(w->dir), "metrics");
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        world_close(w);
        test_dir_remove(w->dir);
        free(w);
        return 0;
}

static Machine *register_machine(World *w, const char *id) {
        MachineSpec spec = { .machine_id = id, .uds_path = NULL, .ready_condition = "any" };
        char uds[96];
        const char *err;
        Machine *m;

        snprintf(uds, sizeof(uds), "/run/test/%s.vsock", id);
        spec.uds_path = uds;
        assert_int_equal(registry_add_machine(w->registry, &spec, &m, &err), 0);
        if (w->store)
                test_save_machine(w->store, m);
        return m;
}

/* One connection: feeds the frames, ends the session as a lost connection would. */
static void run_session(World *w, Machine *m, Bytes *in) {
        Session *s;

        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        assert_int_equal(session_feed(s, in->data, in->len), 0);
        bytes_free(in);
        if (w->store)
                (void) session_flush_ack(s);
        session_end(s, CLOSE_EOF);
        session_free(s);
}

/* A VM boot: kernel 100 ms, init 200 ms, a guest phase of 40 ms, workload.start 600 ms, ready at 900 ms. */
static void vm_boot_frames(Bytes *in, const char *boot_id) {
        hello_frame(in, boot_id, "guest");
        milestone_frame(in, 1, "kernel.start", 0);
        milestone_frame(in, 2, "init.start", 100 * MS);
        phase_frame(in, 3, "mount", 120 * MS, 160 * MS);
        milestone_frame(in, 4, "workload.exec", 300 * MS);
        log_frame(in, 5, 1, "hello\n", 400 * MS);
        ready_frame(in, 6, "sd_notify", 900 * MS);
}

static char *render(World *w) {
        char *text;
        size_t len;
        assert_int_equal(metrics_render(w->metrics, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        return text;
}

static void assert_line(const char *text, const char *line) {
        char *needle;
        assert_true(asprintf(&needle, "\n%s\n", line) > 0);
        if (!strstr(text, needle))
                fail_msg("missing line: %s", line);
        free(needle);
}

static size_t count_samples(const char *text) {
        size_t n = 0;
        for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
                if (*p != '#')
                        n++;
                assert_non_null(strchr(p, '\n'));
        }
        return n;
}

/* The text format's structure: every sample belongs to the family whose TYPE came last (for histograms: its
 * _bucket/_sum/_count), no family is declared twice, HELP comes right before TYPE, buckets are cumulative and
 * +Inf equals _count. */
static void assert_well_formed(const char *text) {
        char family[128] = "", type[16] = "", declared[4096] = " ";
        uint64_t last_bucket = 0, inf_bucket = UINT64_MAX;
        bool help_pending = false;

        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                char line[512], name[128];
                assert_non_null(nl);
                assert_true((size_t) (nl - p) < sizeof(line));
                memcpy(line, p, nl - p);
                line[nl - p] = '\0';
                p = nl + 1;

                if (strncmp(line, "# HELP ", 7) == 0) {
                        assert_false(help_pending);
                        assert_int_equal(sscanf(line + 7, "%127s", name), 1);
                        help_pending = true;
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        char key[140];
                        assert_true(help_pending);
                        help_pending = false;
                        assert_int_equal(sscanf(line + 7, "%127s %15s", family, type), 2);
                        assert_string_equal(family, name);
                        snprintf(key, sizeof(key), " %s ", family);
                        if (strstr(declared, key))
                                fail_msg("family declared twice: %s", family);
                        assert_true(strlen(declared) + strlen(key) < sizeof(declared));
                        strcat(declared, family);
                        strcat(declared, " ");
                        if (strcmp(type, "counter") == 0)
                                assert_non_null(strstr(family, "_total"));
                        last_bucket = 0;
                        continue;
                }
                assert_false(help_pending);
                size_t n = strcspn(line, "{ ");
                memcpy(name, line, n);
                name[n] = '\0';
                uint64_t value = strtoull(strrchr(line, ' ') + 1, NULL, 10);
                if (strcmp(type, "histogram") == 0) {
                        size_t fl = strlen(family);
                        if (strncmp(name, family, fl) != 0)
                                fail_msg("sample %s outside its family %s", name, family);
                        const char *suffix = name + fl;
                        if (strcmp(suffix, "_bucket") == 0) {
                                assert_true(value >= last_bucket);
                                last_bucket = value;
                                if (strstr(line, "le=\"+Inf\"")) {
                                        inf_bucket = value;
                                        last_bucket = 0;
                                }
                        } else if (strcmp(suffix, "_count") == 0) {
                                assert_int_equal(value, inf_bucket);
                                inf_bucket = UINT64_MAX;
                        } else if (strcmp(suffix, "_sum") != 0)
                                fail_msg("unexpected histogram sample %s", name);
                } else if (strcmp(name, family) != 0)
                        fail_msg("sample %s outside its family %s", name, family);
        }
}

static void test_histogram_buckets(void **state) {
        static const uint64_t bounds[] = { 1 * MS, 10 * MS, 100 * MS };
        static const uint64_t bad[] = { 10 * MS, 10 * MS };
        Histogram h;

        assert_int_equal(histogram_init(&h, bad, 2), -EINVAL);
        assert_int_equal(histogram_init(&h, bounds, 0), -EINVAL);
        assert_int_equal(histogram_init(&h, bounds, 3), 0);
        histogram_observe(&h, 0);
        histogram_observe(&h, 1 * MS); /* le is inclusive */
        histogram_observe(&h, 1 * MS + 1);
        histogram_observe(&h, 100 * MS);
        histogram_observe(&h, 5000 * MS);
        assert_int_equal(histogram_cumulative(&h, 0), 2);
        assert_int_equal(histogram_cumulative(&h, 1), 3);
        assert_int_equal(histogram_cumulative(&h, 2), 4);
        assert_int_equal(histogram_cumulative(&h, 3), 5); /* +Inf */
        assert_int_equal(h.count, 5);
        assert_int_equal(h.sum_ns, 5102 * MS + 1);

        /* The boot buckets are what docs/metrics.md says: 1 ms .. 120 s, increasing. */
        assert_int_equal(metrics_boot_buckets_ns[0], 1 * MS);
        assert_int_equal(metrics_boot_buckets_ns[metrics_boot_buckets_n - 1], 120000 * MS);
        assert_int_equal(histogram_init(&h, metrics_boot_buckets_ns, metrics_boot_buckets_n), 0);
        assert_int_equal(histogram_init(&h, metrics_delivery_buckets_ns, metrics_delivery_buckets_n), 0);
        (void) state;
}

static void test_exposition_of_stats(void **state) {
        World *w = *state;

        world_open(w, false);
        w->stats.log_records[TETHER__LOG_STREAM__LOG_STREAM_STDOUT] = 7;
        w->stats.log_bytes[TETHER__LOG_STREAM__LOG_STREAM_STDERR] = 1234;
        w->stats.dropped_records[DROP_EVICTED] = 3;
        w->stats.protocol_errors[PROTOCOL_ERROR_SEQ_REGRESSION] = 2;
        w->stats.connections_refused[REFUSE_UNKNOWN_CID] = 5;
        w->stats.connections_closed[CLOSE_HEARTBEAT_TIMEOUT] = 4;
        w->stats.records_duplicate = 11;
        w->stats.export.requests[EXPORT_SIGNAL_TRACES] = 9;
        w->stats.export.dropped[EXPORT_SIGNAL_LOGS][EXPORT_DROP_QUEUE_FULL] = 4;
        w->stats.export.queue_bytes = 4096;
        w->stats.log_memory.evicted_records = 21;
        w->stats.log_memory.bytes = 5000;
        w->stats.export.last_success_unix_ns[EXPORT_SIGNAL_TRACES] = UINT64_C(1700000000500000000);
        registry_announce_machine(w->registry, register_machine(w, "vm-1"));

        char *text = render(w);
        assert_well_formed(text);
        assert_line(text, "# HELP tether_log_records_total Log records stored, by stream.");
        assert_line(text, "# TYPE tether_log_records_total counter");
        assert_line(text, "tether_log_records_total{stream=\"stdout\"} 7");
        assert_line(text, "tether_log_records_total{stream=\"kmsg\"} 0");
        assert_line(text, "tether_log_bytes_total{stream=\"stderr\"} 1234");
        assert_line(text, "tether_dropped_records_total{reason=\"evicted\"} 3");
        assert_line(text, "tether_protocol_errors_total{reason=\"seq_regression\"} 2");
        assert_line(text, "tether_connections_refused_total{reason=\"unknown_cid\"} 5");
        assert_line(text, "tether_connections_closed_total{reason=\"heartbeat_timeout\"} 4");
        assert_line(text, "tether_records_duplicate_total 11");
        assert_line(text, "tether_export_requests_total{signal=\"traces\"} 9");
        assert_line(text, "tether_export_failures_total{signal=\"metrics\"} 0");
        assert_line(text, "tether_export_dropped_items_total{signal=\"logs\",reason=\"queue_full\"} 4");
        assert_line(text, "# TYPE tether_export_queue_bytes gauge");
        assert_line(text, "tether_export_queue_bytes 4096");
        assert_line(text, "tether_log_memory_evicted_records_total 21");
        assert_line(text, "tether_log_memory_evicted_bytes_total 0");
        assert_line(text, "# TYPE tether_log_memory_bytes gauge");
        assert_line(text, "tether_log_memory_bytes 5000");
        assert_line(text, "tether_log_memory_limit_bytes 33554432");
        assert_line(text, "tether_export_last_success_timestamp_seconds{signal=\"traces\"} 1700000000.5");
        assert_line(text, "tether_export_last_success_timestamp_seconds{signal=\"logs\"} 0");
        /* Lifecycle counters: every transition present; the registration counted. */
        assert_line(text, "tether_machine_transitions_total{transition=\"registered\"} 1");
        assert_line(text, "tether_machine_transitions_total{transition=\"oom_killed\"} 0");
        /* Export freshness only for signals the exporter sends (none here), the spool's bound. */
        assert_line(text, "tether_export_enabled{signal=\"traces\"} 0");
        assert_line(text, "# TYPE tether_export_seconds_since_success gauge");
        assert_null(strstr(text, "tether_export_seconds_since_success{"));
        assert_line(text, "tether_export_spool_limit_bytes 0");
        /* Every state is present, 0 when no machine is in it. */
        assert_line(text, "tether_machines{state=\"registered\"} 1");
        assert_line(text, "tether_machines{state=\"ready\"} 0");
        assert_line(text, "tether_machines{state=\"disconnected\"} 0");
        assert_line(text, "tether_agents_connected 0");
        const char *info = strstr(text, "\ntether_build_info{version=\"");
        assert_non_null(info);
        assert_memory_equal(strchr(info + 1, '\n') - 4, "\"} 1", 4);
        /* An empty histogram still has every bucket, a 0 sum and count. */
        assert_line(text, "tether_boot_kernel_to_ready_seconds_bucket{le=\"0.001\"} 0");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_bucket{le=\"0.0025\"} 0");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_bucket{le=\"120\"} 0");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_bucket{le=\"+Inf\"} 0");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_sum 0");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_count 0");
        assert_null(strstr(text, "vm-1"));
        free(text);
}

/* Export freshness: seconds since the last success, or since start when there was none, per signal sent. */
static void test_export_freshness(void **state) {
        World *w = *state;

        world_open(w, false);
        uint64_t now = now_ns(CLOCK_REALTIME);
        w->stats.export.enabled[EXPORT_SIGNAL_TRACES] = w->stats.export.enabled[EXPORT_SIGNAL_LOGS] = true;
        w->stats.export.last_success_unix_ns[EXPORT_SIGNAL_TRACES] = now - 3600 * NSEC_PER_SEC;
        w->metrics->start_unix_ns = now - 7200 * NSEC_PER_SEC; /* logs: never exported since start */
        w->stats.export.spool_limit_bytes = 1 << 20;
        char *text = render(w);
        assert_well_formed(text);
        assert_line(text, "tether_export_enabled{signal=\"logs\"} 1");
        assert_line(text, "tether_export_enabled{signal=\"metrics\"} 0");
        assert_line(text, "tether_export_spool_limit_bytes 1048576");
        double traces = -1, logs = -1;
        const char *p = strstr(text, "\ntether_export_seconds_since_success{signal=\"traces\"} ");
        assert_non_null(p);
        traces = strtod(strchr(p + 1, ' ') + 1, NULL);
        p = strstr(text, "\ntether_export_seconds_since_success{signal=\"logs\"} ");
        assert_non_null(p);
        logs = strtod(strchr(p + 1, ' ') + 1, NULL);
        assert_true(traces >= 3600 && traces < 3700);
        assert_true(logs >= 7200 && logs < 7300);
        assert_null(strstr(text, "tether_export_seconds_since_success{signal=\"metrics\"}"));
        free(text);
}

/* --metrics-per-machine: the latest sample of each machine that has one, 18 series at most a machine. */
static void test_per_machine(void **state) {
        World *w = *state;

        w->per_machine = true;
        world_open(w, false);
        Machine *a = register_machine(w, "vm-a");
        register_machine(w, "vm-b"); /* no samples: no series */
        a->samples = calloc(1, sizeof(SampleRing));
        assert_non_null(a->samples);
        GuestSample g = {
                .boottime_ns = 12 * NSEC_PER_SEC + 500 * MS,
                .cpus = 2,
                .cpu_ns = { [SAMPLE_CPU_USER] = 3 * NSEC_PER_SEC, [SAMPLE_CPU_IDLE] = 20 * NSEC_PER_SEC },
                .mem_total_bytes = 1 << 30,
                .mem_available_bytes = 1 << 29,
                .load_centi = { 150, 0, 0 },
                .pressure = { [SAMPLE_PRESSURE_MEMORY] = { .present = true, .some_avg10_centipct = 250 } },
                .cgroup_present = true,
                .cgroup_current_bytes = 4096,
                .cgroup_oom_kill = 2,
        };
        assert_int_equal(sample_ring_push(a->samples, &g), 1);

        char *text = render(w);
        assert_well_formed(text);
        assert_line(text, "tether_guest_cpu_seconds_total{machine_id=\"vm-a\",mode=\"user\"} 3");
        assert_line(text, "tether_guest_cpu_seconds_total{machine_id=\"vm-a\",mode=\"steal\"} 0");
        assert_line(text, "tether_guest_cpus{machine_id=\"vm-a\"} 2");
        assert_line(text, "tether_guest_memory_total_bytes{machine_id=\"vm-a\"} 1073741824");
        assert_line(text, "tether_guest_memory_available_bytes{machine_id=\"vm-a\"} 536870912");
        assert_line(text, "tether_guest_load1{machine_id=\"vm-a\"} 1.50");
        assert_line(text, "tether_guest_pressure_some_ratio{machine_id=\"vm-a\",resource=\"memory\"} 0.0250");
        assert_null(strstr(text, "resource=\"cpu\""));
        assert_line(text, "tether_guest_uptime_seconds{machine_id=\"vm-a\"} 12.5");
        assert_line(text, "tether_guest_cgroup_memory_bytes{machine_id=\"vm-a\"} 4096");
        assert_line(text, "tether_guest_cgroup_oom_kills_total{machine_id=\"vm-a\"} 2");
        assert_null(strstr(text, "vm-b"));
        size_t with = count_samples(text);
        free(text);

        /* Off (the default): none of it. */
        world_close(w);
        w->per_machine = false;
        world_open(w, false);
        a = register_machine(w, "vm-a");
        a->samples = calloc(1, sizeof(SampleRing));
        assert_int_equal(sample_ring_push(a->samples, &g), 1);
        text = render(w);
        assert_null(strstr(text, "machine_id="));
        assert_int_equal(with - count_samples(text), 16); /* vm-a's series (one PSI resource) */
        free(text);
}

static char *escaped(const char *value) {
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);
        assert_non_null(f);
        metrics_put_label_value(f, value);
        assert_int_equal(fclose(f), 0);
        return s;
}

static void test_label_escaping(void **state) {
        char *s;

        assert_string_equal(s = escaped("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        free(s);
        assert_string_equal(s = escaped("plain"), "plain");
        free(s);
        assert_string_equal(s = escaped(""), "");
        free(s);
        (void) state;
}

static size_t series_with_machines(World *w, size_t n) {
        world_open(w, false);
        for (size_t i = 0; i < n; i++) {
                char id[32], boot[32];
                Bytes in = {};
                snprintf(id, sizeof(id), "vm-%zu", i);
                snprintf(boot, sizeof(boot), "boot-%zu", i);
                Machine *m = register_machine(w, id);
                vm_boot_frames(&in, boot);
                run_session(w, m, &in);
                assert_int_equal(m->state, MACHINE_READY);
        }
        assert_int_equal(w->metrics->kernel_to_ready.count, n);
        char *text = render(w);
        assert_well_formed(text);
        assert_null(strstr(text, "vm-0"));
        size_t series = count_samples(text);
        free(text);
        world_close(w);
        return series;
}

static void test_series_bounded(void **state) {
        World *w = *state;
        size_t one = series_with_machines(w, 1), many = series_with_machines(w, 500);

        assert_true(one > 100);
        assert_int_equal(one, many);
}

static void test_observed_once_per_boot(void **state) {
        World *w = *state;
        Bytes in = {};

        world_open(w, false);
        Machine *m = register_machine(w, "vm-1");
        vm_boot_frames(&in, "boot-1");
        run_session(w, m, &in);
        assert_int_equal(m->state, MACHINE_READY);

        Metrics *mt = w->metrics;
        assert_int_equal(mt->phase[METRICS_PHASE_KERNEL].count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_KERNEL].sum_ns, 100 * MS);
        assert_int_equal(mt->phase[METRICS_PHASE_INIT].count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_INIT].sum_ns, 200 * MS);
        assert_int_equal(mt->phase[METRICS_PHASE_WORKLOAD_START].count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_WORKLOAD_START].sum_ns, 600 * MS);
        assert_int_equal(mt->phase[METRICS_PHASE_OTHER].count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_OTHER].sum_ns, 40 * MS);
        assert_int_equal(mt->kernel_to_ready.count, 1);
        assert_int_equal(mt->kernel_to_ready.sum_ns, 900 * MS);
        assert_int_equal(mt->init_to_ready.count, 0);
        assert_int_equal(mt->registered_to_ready.count, 1);
        assert_int_equal(mt->ready_delivery.count, 1);

        char *text = render(w);
        assert_line(text, "tether_boot_phase_duration_seconds_bucket{phase=\"kernel\",le=\"0.05\"} 0");
        assert_line(text, "tether_boot_phase_duration_seconds_bucket{phase=\"kernel\",le=\"0.1\"} 1");
        assert_line(text, "tether_boot_phase_duration_seconds_bucket{phase=\"kernel\",le=\"+Inf\"} 1");
        assert_line(text, "tether_boot_phase_duration_seconds_sum{phase=\"kernel\"} 0.1");
        assert_line(text, "tether_boot_phase_duration_seconds_count{phase=\"workload.start\"} 1");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_bucket{le=\"0.5\"} 0");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_bucket{le=\"1\"} 1");
        assert_line(text, "tether_boot_kernel_to_ready_seconds_sum 0.9");
        assert_line(text, "tether_machines{state=\"ready\"} 1");
        free(text);

        /* The agent reconnects and replays everything (its acks were lost), then says Ready again and exits: the
         * replay is duplicates, the second Ready and the exit close nothing. */
        vm_boot_frames(&in, "boot-1");
        ready_frame(&in, 7, "again", 950 * MS);
        milestone_frame(&in, 8, "workload.exec", 960 * MS);
        exit_frame(&in, 9, 0, 0, 1000 * MS);
        run_session(w, m, &in);
        assert_int_equal(w->stats.records_duplicate, 6);
        assert_int_equal(mt->kernel_to_ready.count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_INIT].count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_WORKLOAD_START].count, 1);
        assert_int_equal(mt->ready_delivery.count, 1);
        assert_int_equal(mt->registered_to_ready.count, 1);

        /* A container boot (no kernel.start, no workload.exec) of a second boot: init-to-ready, and the init stage
         * ends with the boot; registration is not the start of a reboot. */
        hello_frame(&in, "boot-2", "guest");
        milestone_frame(&in, 1, "init.start", 5000 * MS);
        ready_frame(&in, 2, "sd_notify", 5250 * MS);
        run_session(w, m, &in);
        assert_int_equal(m->current->index, 2);
        assert_int_equal(mt->kernel_to_ready.count, 1);
        assert_int_equal(mt->init_to_ready.count, 1);
        assert_int_equal(mt->init_to_ready.sum_ns, 250 * MS);
        assert_int_equal(mt->phase[METRICS_PHASE_INIT].count, 2);
        assert_int_equal(mt->phase[METRICS_PHASE_INIT].sum_ns, 450 * MS);
        assert_int_equal(mt->phase[METRICS_PHASE_KERNEL].count, 1);
        assert_int_equal(mt->registered_to_ready.count, 1);
        assert_int_equal(mt->ready_delivery.count, 2);

        /* Exit before ready ends the workload.start stage at the exit. */
        hello_frame(&in, "boot-3", "guest");
        milestone_frame(&in, 1, "init.start", 100 * MS);
        milestone_frame(&in, 2, "workload.exec", 200 * MS);
        exit_frame(&in, 3, 1, 0, 700 * MS);
        run_session(w, m, &in);
        assert_int_equal(m->state, MACHINE_EXITED);
        assert_int_equal(mt->phase[METRICS_PHASE_WORKLOAD_START].count, 2);
        assert_int_equal(mt->phase[METRICS_PHASE_WORKLOAD_START].sum_ns, 1100 * MS);
        assert_int_equal(mt->init_to_ready.count, 1);
        assert_int_equal(mt->ready_delivery.count, 2);
}

static void test_not_observed_after_reload(void **state) {
        World *w = *state;
        Bytes in = {};

        world_open(w, true);
        Machine *m = register_machine(w, "vm-1");
        vm_boot_frames(&in, "boot-1");
        run_session(w, m, &in);
        assert_int_equal(w->metrics->kernel_to_ready.count, 1);
        world_close(w);

        /* "Restart": the metrics observer is even subscribed before loading; loading observes nothing. */
        StoreLoadReport report;
        world_open(w, true);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.records, 6);
        m = registry_find(w->registry, "vm-1");
        assert_non_null(m);
        assert_int_equal(m->state, MACHINE_READY);
        Metrics *mt = w->metrics;
        assert_int_equal(mt->kernel_to_ready.count, 0);
        assert_int_equal(mt->phase[METRICS_PHASE_KERNEL].count, 0);

        /* The agent reconnects and replays the boot: all duplicates, still nothing observed. */
        vm_boot_frames(&in, "boot-1");
        run_session(w, m, &in);
        assert_int_equal(w->stats.records_duplicate, 6);
        for (size_t i = 0; i < _METRICS_PHASE_MAX; i++)
                assert_int_equal(mt->phase[i].count, 0);
        assert_int_equal(mt->kernel_to_ready.count, 0);
        assert_int_equal(mt->ready_delivery.count, 0);

        /* A new boot after the restart is observed. */
        vm_boot_frames(&in, "boot-2");
        run_session(w, m, &in);
        assert_int_equal(mt->kernel_to_ready.count, 1);
        assert_int_equal(mt->phase[METRICS_PHASE_KERNEL].count, 1);
        char *text = render(w);
        assert_well_formed(text);
        assert_line(text, "tether_boot_kernel_to_ready_seconds_count 1");
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_histogram_buckets),
                cmocka_unit_test_setup_teardown(test_exposition_of_stats, setup, teardown),
                cmocka_unit_test(test_label_escaping),
                cmocka_unit_test_setup_teardown(test_export_freshness, setup, teardown),
                cmocka_unit_test_setup_teardown(test_per_machine, setup, teardown),
                cmocka_unit_test_setup_teardown(test_series_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_observed_once_per_boot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_observed_after_reload, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
