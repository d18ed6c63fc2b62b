/* SPDX-License-Identifier: MIT */
/* The exporter's log records and the boot's clock mapping (one mapping per boot): records stored before the
 * mapping is fixed wait for it and are exported with it — the time the logs API shows, to the nanosecond — in
 * seq order, read back from the log store (the boot file or memory), also when the mapping is fixed by the end of
 * the connection, by shutdown, or when the boot is evicted right after, journal lines with their priority's
 * severity; records that can no longer be read are
 * counted (`unreadable`), never lost silently. And the file's rotation: the items of each boot it deletes count in
 * the boot's export_dropped. Driven through real sessions, exporting to the OTLP/JSON file. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "collector-test.h"
#include "jsonlog.h"
#include <jansson.h>

#include "otlp-exporter.h"
#include "otlp-metrics.h"
#include "session.h"
#include "store.h"
#include "time-math.h"
#include "time-util.h"

#define MS UINT64_C(1000000)
#define S UINT64_C(1000000000)

typedef struct World {
        char dir[64];
        char file[128];
        sd_event *event;
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext ctx;
        OtlpExporter *exporter;
        uint64_t file_max_bytes;      /* 0: the default */
        uint64_t metrics_interval_ns; /* 0: the default (tetherd's own metrics are not due within a test) */
        size_t batch_items;           /* 0: the default */
} World;

static void world_open(World *w, bool with_store, uint64_t max_log_bytes, size_t max_boots) {
        RegistryConfig c = {
                .node_id = "node-a",
                .default_service_name = "tether",
                .max_machines = 16,
                .max_boots = max_boots,
                .max_events = 256,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        StoreConfig sc = { .dir = w->dir, .sync = false };
        OtlpConfig oc;

        if (max_log_bytes > 0)
                c.boot_limits.max_log_bytes = max_log_bytes;
        assert_int_equal(sd_event_new(&w->event), 0);
        assert_int_equal(registry_new(&c, &w->stats, &w->registry), 0);
        if (with_store)
                assert_int_equal(store_open(&sc, &w->stats, &w->store), 0);
        session_context_init(&w->ctx, w->registry, w->store, &w->stats);
        otlp_config_init(&oc);
        snprintf(w->file, sizeof(w->file), "%s/otlp.jsonl", w->dir);
        oc.file_path = w->file;
        if (w->file_max_bytes > 0)
                oc.file_max_bytes = w->file_max_bytes;
        if (w->batch_items > 0)
                oc.batch_items = w->batch_items;
        if (w->metrics_interval_ns > 0)
                oc.metrics_interval_ns = w->metrics_interval_ns;
        assert_int_equal(otlp_exporter_new(w->event, w->registry, w->store, &w->stats, &oc, &w->exporter), 0);
}

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        log_setup(LOG_TARGET_JSON, LOG_CRIT, "test");
        test_dir_make(w->dir, sizeof(w->dir), "otlp-exporter");
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        w->exporter = otlp_exporter_free(w->exporter);
        w->store = store_free(w->store);
        w->registry = registry_free(w->registry);
        w->event = sd_event_unref(w->event);
        test_dir_remove(w->dir);
        free(w);
        return 0;
}

static void feed(Session *s, Bytes *in) {
        assert_int_equal(session_feed(s, in->data, in->len), 0);
        bytes_free(in);
        session_flush_writes(s);
}

static void feed_logs(Session *s, uint64_t first_seq, uint64_t n, const char *what) {
        Bytes in = {};
        char text[64];

        for (uint64_t k = 0; k < n; k++) {
                snprintf(text, sizeof(text), "%s %" PRIu64 "\n", what, first_seq + k);
                log_frame(&in, first_seq + k, 1, text, 5 * S + (first_seq + k) * MS);
        }
        feed(s, &in);
}

/* Answers a probe the session sends now with guest time `boottime`: a mapping that differs from the Hello's. */
static void answer_probe(Session *s, uint64_t boottime) {
        Tether__Envelope *out[16];
        Bytes in = {};
        uint64_t id = 0;

        assert_int_equal(session_send_clock_probe(s, now_ns(CLOCK_MONOTONIC), now_ns(CLOCK_REALTIME)), 0);
        size_t n = drain_out_queue(&s->out, out, 16);
        for (size_t i = 0; i < n; i++)
                if (out[i]->msg_case == TETHER__ENVELOPE__MSG_CLOCK_PROBE)
                        id = out[i]->clock_probe->probe_id;
        free_envelopes(out, n);
        assert_true(id != 0);
        clock_sample_frame(&in, id, boottime);
        feed(s, &in);
}

static void end_session(Session *s) {
        session_end(s, CLOSE_EOF);
        session_free(s);
}

/* Dispatches what is pending on the loop (the logs and spans sources, the worker), without waiting. */
static void run_loop(World *w) {
        for (int i = 0; i < 10000; i++)
                if (sd_event_run(w->event, 0) <= 0)
                        return;
        fail_msg("the event loop does not settle");
}

typedef struct Exported {
        uint64_t seq;
        uint64_t time_unix_ns;
        char boot_id[64];
        char severity[16]; /* severityText */
} Exported;

static const char *attr_string(json_t *attrs, const char *key) {
        json_t *a;
        size_t i;

        json_array_foreach(attrs, i, a) if (
                strcmp(json_string_value(json_object_get(a, "key")), key) ==
                0) return json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
        return NULL;
}

static uint64_t json_u64(json_t *v) {
        return v && json_is_string(v) ? strtoull(json_string_value(v), NULL, 10) : 0;
}

/* The OTLP/JSON file's lines (requests), parsed: a JSON array (empty without a file). */
static json_t *read_lines(World *w) {
        json_t *lines = json_array();
        FILE *f = fopen(w->file, "re");
        char *line = NULL;
        size_t cap = 0;

        assert_non_null(lines);
        if (!f)
                return lines;
        while (getline(&line, &cap, f) > 0) {
                json_t *o = json_loads(line, 0, NULL);
                assert_non_null(o);
                assert_int_equal(json_array_append_new(lines, o), 0);
        }
        free(line);
        fclose(f);
        return lines;
}

/* The workload log records in the OTLP/JSON file (not lifecycle events), in file order. */
static size_t read_exported(World *w, Exported *out, size_t max) {
        json_t *lines = read_lines(w), *o;
        size_t l, n = 0;

        json_array_foreach(lines, l, o) {
                json_t *rl, *sl, *rec;
                size_t i, j, k;
                json_array_foreach(json_object_get(o, "resourceLogs"), i, rl) {
                        const char *boot_id = attr_string(
                                json_object_get(json_object_get(rl, "resource"), "attributes"), "tether.boot.id");
                        json_array_foreach(json_object_get(rl, "scopeLogs"), j, sl) {
                                json_array_foreach(json_object_get(sl, "logRecords"), k, rec) {
                                        json_t *a;
                                        size_t q;
                                        if (json_object_get(rec, "eventName"))
                                                continue;
                                        assert_true(n < max);
                                        Exported *e = &out[n++];
                                        *e = (Exported) { .time_unix_ns = json_u64(
                                                                  json_object_get(rec, "timeUnixNano")) };
                                        snprintf(e->boot_id, sizeof(e->boot_id), "%s", boot_id ?: "");
                                        snprintf(
                                                e->severity,
                                                sizeof(e->severity),
                                                "%s",
                                                json_string_value(json_object_get(rec, "severityText")) ?: "");
                                        json_array_foreach(json_object_get(rec, "attributes"), q, a) if (
                                                strcmp(json_string_value(json_object_get(a, "key")),
                                                       "tether.log.seq") == 0) e->seq =
                                                json_u64(json_object_get(json_object_get(a, "value"), "intValue"));
                                }
                        }
                }
        }
        json_decref(lines);
        return n;
}

/* Every exported log record of the boot has the time the logs API shows (boot_to_unix_ns() of the entry read back
 * from the log store, with its stored receive time as fallback), in seq order; returns how many were exported. */
static size_t check_exported_times(World *w, Boot *b) {
        Exported all[512], ex[512];
        size_t n_all = read_exported(w, all, 512), n = 0;
        TestLogs logs = test_logs_read(w->store, b, 0);
        size_t k = 0;

        for (size_t i = 0; i < n_all; i++)
                if (strcmp(all[i].boot_id, b->boot_id) == 0)
                        ex[n++] = all[i];
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        assert_true(ex[i].seq > ex[i - 1].seq);
                while (k < logs.n && logs.v[k].e.seq < ex[i].seq)
                        k++;
                assert_true(k < logs.n);
                const LogEntry *e = &logs.v[k].e;
                assert_int_equal(e->seq, ex[i].seq);
                assert_int_equal(ex[i].time_unix_ns, boot_to_unix_ns(b, e->boottime_ns, e->recv_unix_ns));
        }
        test_logs_free(&logs);
        return n;
}

static uint64_t hello_time(const Boot *b, uint64_t boottime) {
        return time_add_offset(boottime, b->hello_offset_ns);
}

/* Stored while the mapping is provisional (the Hello's): nothing is exported with it. A shutdown before anything
 * fixed it (not what tetherd does: it closes the connections first) counts them. */
static void test_nothing_exported_with_the_provisional_mapping(void **state) {
        World *w = *state;
        Exported ex[8];

        world_open(w, false, 0, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        feed_logs(s, 1, 5, "early");
        assert_false(m->current->clock_fixed);
        run_loop(w);
        otlp_exporter_shutdown(w->exporter); /* writes everything queued */
        assert_int_equal(read_exported(w, ex, 8), 0);
        assert_int_equal(w->stats.export.dropped[EXPORT_SIGNAL_LOGS][EXPORT_DROP_SHUTDOWN], 5);
        w->exporter = otlp_exporter_free(w->exporter);
        end_session(s);
}

/* The probe answer that fixes the mapping moves it 7 ms from the Hello's: records that waited are exported with
 * it, then those that arrived while they were read back, then live ones, each once, in seq order. */
static void check_fixed_by_probe(World *w, bool with_store) {
        world_open(w, with_store, 0, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        Boot *b = m->current;

        feed_logs(s, 1, 50, "early");
        run_loop(w);
        uint64_t provisional = boot_to_unix_ns(b, 5 * S + 1 * MS, 0);
        answer_probe(s, 5 * S + 7 * MS);
        assert_true(b->clock_fixed);
        assert_true(b->clock.valid);
        assert_true(boot_to_unix_ns(b, 5 * S + 1 * MS, 0) != provisional);
        assert_int_equal(provisional, hello_time(b, 5 * S + 1 * MS));
        feed_logs(s, 51, 10, "during"); /* before the logs source ran: behind the ones that waited */
        run_loop(w);
        feed_logs(s, 61, 10, "live");
        end_session(s);
        run_loop(w);
        otlp_exporter_shutdown(w->exporter);

        assert_int_equal(check_exported_times(w, b), 70);
        for (size_t i = 0; i < _EXPORT_DROP_REASON_MAX; i++)
                assert_int_equal(w->stats.export.dropped[EXPORT_SIGNAL_LOGS][i], 0);
}

static void test_fixed_by_probe_mem(void **state) {
        check_fixed_by_probe(*state, false);
}

static void test_fixed_by_probe_store(void **state) {
        check_fixed_by_probe(*state, true);
}

/* Journal lines that waited for the fixed mapping are read back (from memory, or from the boot file) with their
 * syslog priority: their severity is the priority's, as for a line exported live. */
static void check_waiting_journal_severity(World *w, bool with_store) {
        static const char *const severities[] = { "err", "warning", "INFO", "debug" };
        Tether__Envelope *out[16];
        Exported ex[8];
        Bytes in = {};
        Session *s;

        world_open(w, with_store, 0, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        hello_journal_frame(&in, "boot-1", "guest", NULL);
        journal_frame(&in, 1, "a.service", 4, "s=1", "failed\n");
        journal_frame(&in, 2, "a.service", 5, "s=2", "slow\n");
        log_frame(&in, 3, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "plain\n", 5 * S);
        journal_frame(&in, 4, "a.service", 8, "s=3", "detail\n");
        feed(s, &in);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));
        run_loop(w);
        assert_false(m->current->clock_fixed);
        answer_probe(s, 5 * S + 7 * MS);
        assert_true(m->current->clock_fixed);
        run_loop(w);
        end_session(s);
        run_loop(w);
        otlp_exporter_shutdown(w->exporter);

        assert_int_equal(read_exported(w, ex, 8), 4);
        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(ex[i].seq, i + 1);
                assert_string_equal(ex[i].severity, severities[i]);
        }
}

static void test_waiting_journal_severity_mem(void **state) {
        check_waiting_journal_severity(*state, false);
}

static void test_waiting_journal_severity_store(void **state) {
        check_waiting_journal_severity(*state, true);
}

/* More waiting than memory holds (a 4 KiB tail): with the boot file everything is read back from it; without
 * one the evicted records are counted unreadable, the rest exported with the fixed mapping. */
static void check_evicted_before_fix(World *w, bool with_store) {
        world_open(w, with_store, 4096, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        Boot *b = m->current;

        feed_logs(s, 1, 200, "early");
        assert_true(b->logs.n_entries < 200);
        answer_probe(s, 5 * S + 7 * MS);
        run_loop(w);
        end_session(s);
        otlp_exporter_shutdown(w->exporter);

        size_t n = check_exported_times(w, b);
        uint64_t unreadable = w->stats.export.dropped[EXPORT_SIGNAL_LOGS][EXPORT_DROP_UNREADABLE];
        if (with_store) {
                assert_int_equal(n, 200);
                assert_int_equal(unreadable, 0);
        } else {
                assert_int_equal(n, b->logs.n_entries);
                assert_int_equal(unreadable, 200 - n);
                assert_int_equal(unreadable, b->logs.evicted_records);
        }
}

static void test_evicted_before_fix_mem(void **state) {
        check_evicted_before_fix(*state, false);
}

static void test_evicted_before_fix_store(void **state) {
        check_evicted_before_fix(*state, true);
}

/* A connection that ends before any probe answer fixes the mapping (the Hello's); the records that waited are
 * exported even when tetherd shuts down before the logs source ran, or the boot is evicted right after (a
 * second boot with --max-boots 1). */
static void check_fixed_by_end(World *w, bool with_store) {
        world_open(w, with_store, 0, 1);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        Boot *b = m->current;

        feed_logs(s, 1, 20, "early");
        end_session(s);
        assert_true(b->clock_fixed);
        assert_false(b->clock.valid);
        assert_true(b->hello_offset_valid);
        int64_t hello_offset = b->hello_offset_ns;
        TestLogs logs = test_logs_read(w->store, b, 0);
        assert_int_equal(logs.n, 20);

        /* Evicted by the next boot before the logs source ran: exported from the evicted boot first. */
        s = test_connect(&w->ctx, m, "boot-2");
        assert_int_equal(m->n_boots, 1);
        feed_logs(s, 1, 3, "second");
        /* Shut down before that boot's mapping was fixed by anything but the end of its connection. */
        end_session(s);
        otlp_exporter_shutdown(w->exporter);

        Exported ex[64];
        size_t n = read_exported(w, ex, 64);
        assert_int_equal(n, 23);
        for (size_t i = 0; i < 20; i++) {
                const LogEntry *e = &logs.v[i].e;
                assert_int_equal(ex[i].seq, e->seq);
                assert_string_equal(ex[i].boot_id, "boot-1");
                assert_int_equal(ex[i].time_unix_ns, time_add_offset(e->boottime_ns, hello_offset));
        }
        test_logs_free(&logs);
        assert_int_equal(check_exported_times(w, m->current), 3);
        assert_int_equal(w->stats.export.dropped[EXPORT_SIGNAL_LOGS][EXPORT_DROP_UNREADABLE], 0);
        assert_int_equal(w->stats.export.dropped[EXPORT_SIGNAL_LOGS][EXPORT_DROP_SHUTDOWN], 0);
}

static void test_fixed_by_end_mem(void **state) {
        check_fixed_by_end(*state, false);
}

static void test_fixed_by_end_store(void **state) {
        check_fixed_by_end(*state, true);
}

/* A machine deleted before the logs source ran: what waited is exported before its track goes. */
static void test_machine_deleted_while_waiting(void **state) {
        World *w = *state;
        Exported ex[32];

        world_open(w, false, 0, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        feed_logs(s, 1, 20, "early");
        end_session(s);
        registry_remove_machine(w->registry, m);
        otlp_exporter_shutdown(w->exporter);
        assert_int_equal(read_exported(w, ex, 32), 20);
        assert_int_equal(w->stats.export.dropped[EXPORT_SIGNAL_LOGS][EXPORT_DROP_UNREADABLE], 0);
}

/* A Hello without a boottime and no probe answer: the end of the connection fixes the mapping as none (receive
 * times, as the API shows them), nothing waits for ever. */
static void test_no_mapping_at_all(void **state) {
        World *w = *state;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        Tether__Envelope *out[16];
        Bytes in = {};
        Session *s;

        world_open(w, false, 0, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-a", 10);
        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.boot_id = (char *) "boot-1";
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        frame_append(&in, &e);
        feed(s, &in);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));
        Boot *b = m->current;
        assert_false(b->hello_offset_valid);

        feed_logs(s, 1, 4, "early");
        session_clock_deadline(s);
        assert_true(b->clock_fixed);
        assert_false(b->clock.valid);
        run_loop(w);
        end_session(s);
        otlp_exporter_shutdown(w->exporter);

        assert_int_equal(check_exported_times(w, b), 4);
        TestLogs logs = test_logs_read(NULL, b, 0);
        assert_int_equal(
                boot_to_unix_ns(b, logs.v[0].e.boottime_ns, logs.v[0].e.recv_unix_ns), logs.v[0].e.recv_unix_ns);
        test_logs_free(&logs);
}

/* The metrics in the OTLP/JSON file: (service.name, tether.boot.id, metric name) of each, in file order. */
typedef struct MetricSeen {
        char service[32], boot_id[64], name[64];
} MetricSeen;

static size_t read_metrics(World *w, MetricSeen *out, size_t max) {
        json_t *lines = read_lines(w), *o;
        size_t l, n = 0;

        json_array_foreach(lines, l, o) {
                json_t *rm, *sm, *m;
                size_t i, j, k;
                json_array_foreach(json_object_get(o, "resourceMetrics"), i, rm) {
                        json_t *attrs = json_object_get(json_object_get(rm, "resource"), "attributes");
                        json_array_foreach(json_object_get(rm, "scopeMetrics"), j, sm) {
                                json_array_foreach(json_object_get(sm, "metrics"), k, m) {
                                        assert_true(n < max);
                                        MetricSeen *e = &out[n++];
                                        snprintf(
                                                e->service,
                                                sizeof(e->service),
                                                "%s",
                                                attr_string(attrs, "service.name") ?: "");
                                        snprintf(
                                                e->boot_id,
                                                sizeof(e->boot_id),
                                                "%s",
                                                attr_string(attrs, "tether.boot.id") ?: "");
                                        snprintf(
                                                e->name,
                                                sizeof(e->name),
                                                "%s",
                                                json_string_value(json_object_get(m, "name")));
                                }
                        }
                }
        }
        json_decref(lines);
        return n;
}

static size_t count_metric(const MetricSeen *v, size_t n, const char *service, const char *name) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                k += strcmp(v[i].service, service) == 0 && strcmp(v[i].name, name) == 0;
        return k;
}

/* A guest's resource samples become metrics under its boot's resource, one set per sample the ring kept, at most
 * two samples a second (the rest counted rate_limited); tetherd's own metrics go every interval under its own
 * resource. */
static void test_sample_metrics(void **state) {
        World *w = *state;
        MetricSeen seen[256];
        Tether__Envelope *out[16];
        Bytes in = {};
        Session *s;

        w->metrics_interval_ns = 100 * MS;
        world_open(w, false, 0, 4);
        Machine *m = test_register_machine(w->registry, w->store, "vm-m", 10);
        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        hello_v2_frame(&in, "boot-m");
        feed(s, &in);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));

        resource_sample_frame(&in, 10, 1 * S, 9 * S);
        resource_sample_frame(&in, 10, 2 * S, 9 * S); /* the same guest second: replaces the one before */
        feed(s, &in);
        resource_sample_frame(&in, 12, 3 * S, 10 * S); /* the third within a second of host time */
        feed(s, &in);
        assert_int_equal(w->stats.guest_samples, 3);
        int per_sample = otlp_guest_sample_metrics(sample_ring_latest(m->samples), NULL, NULL);
        assert_true(per_sample > 0);
        run_loop(w);
        /* The fleet timer, every 100 ms: twice at least. */
        for (int i = 0; i < 500 &&
             count_metric(seen, read_metrics(w, seen, ELEMENTSOF(seen)), "tetherd", "tether.machine.transitions") < 2;
             i++)
                (void) sd_event_run(w->event, 20 * 1000);
        end_session(s);
        otlp_exporter_shutdown(w->exporter);

        size_t n = read_metrics(w, seen, ELEMENTSOF(seen));
        assert_int_equal(count_metric(seen, n, "tether", "system.cpu.time"), 2);
        assert_int_equal(count_metric(seen, n, "tether", "system.memory.usage"), 2);
        for (size_t i = 0; i < n; i++)
                if (strcmp(seen[i].service, "tether") == 0)
                        assert_string_equal(seen[i].boot_id, "boot-m");
        assert_true(count_metric(seen, n, "tetherd", "tether.machine.transitions") >= 2);
        assert_int_equal(count_metric(seen, n, "tetherd", "system.cpu.time"), 0);
        assert_int_equal(w->stats.export.items[EXPORT_SIGNAL_METRICS], n);
        for (int r = 0; r < _EXPORT_DROP_REASON_MAX; r++)
                assert_int_equal(
                        w->stats.export.dropped[EXPORT_SIGNAL_METRICS][r],
                        r == EXPORT_DROP_RATE_LIMITED ? (uint64_t) per_sample : 0);
        assert_int_equal(m->current->export_dropped, per_sample);
}

/* Items of the file's generations by boot id ("" for items without a boot). */
#define TALLY_KEYS 8
typedef struct Tally {
        char key[TALLY_KEYS][32];
        uint64_t n[TALLY_KEYS];
        size_t n_keys;
} Tally;

static void tally_add(Tally *t, const char *key) {
        size_t i = 0;
        while (i < t->n_keys && strcmp(t->key[i], key) != 0)
                i++;
        if (i == t->n_keys) {
                assert_true(i < TALLY_KEYS);
                snprintf(t->key[i], sizeof(t->key[i]), "%s", key);
                t->n_keys++;
        }
        t->n[i]++;
}

static uint64_t tally_get(const Tally *t, const char *key) {
        for (size_t i = 0; i < t->n_keys; i++)
                if (strcmp(t->key[i], key) == 0)
                        return t->n[i];
        return 0;
}

static uint64_t tally_sum(const Tally *t) {
        uint64_t n = 0;
        for (size_t i = 0; i < t->n_keys; i++)
                n += t->n[i];
        return n;
}

/* Every item seen in the file's generations so far, by a hash of it and its resource. */
typedef struct Seen {
        uint64_t *v;
        size_t n, cap;
} Seen;

static bool seen_add(Seen *s, uint64_t h) {
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i] == h)
                        return false;
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 256;
                s->v = realloc(s->v, s->cap * sizeof(uint64_t));
                assert_non_null(s->v);
        }
        s->v[s->n++] = h;
        return true;
}

static uint64_t fnv(const char *p, uint64_t h) {
        for (; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(1099511628211);
        return h;
}

/* The items of one file (spans, log records, events) into now by boot, and those never seen before into ever. */
static void scan_items(const char *path, Seen *seen, Tally *ever, Tally *now) {
        static const char *const keys[2][3] = {
                { "resourceSpans", "scopeSpans", "spans" },
                { "resourceLogs", "scopeLogs", "logRecords" },
        };
        FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t cap = 0;

        if (!f)
                return;
        while (getline(&line, &cap, f) > 0) {
                json_t *o = json_loads(line, 0, NULL), *r, *sc, *item;
                size_t i, j, k;
                assert_non_null(o);
                for (size_t x = 0; x < 2; x++)
                        json_array_foreach(json_object_get(o, keys[x][0]), i, r) {
                                json_t *res = json_object_get(r, "resource");
                                const char *boot = attr_string(json_object_get(res, "attributes"), "tether.boot.id");
                                char *rd = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
                                uint64_t rh = fnv(rd, UINT64_C(14695981039346656037));
                                free(rd);
                                json_array_foreach(json_object_get(r, keys[x][1]), j, sc)
                                        json_array_foreach(json_object_get(sc, keys[x][2]), k, item) {
                                        char *d = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS);
                                        tally_add(now, boot ?: "");
                                        if (seen_add(seen, fnv(d, rh)))
                                                tally_add(ever, boot ?: "");
                                        free(d);
                                }
                        }
                json_decref(o);
        }
        free(line);
        fclose(f);
}

typedef struct Generations {
        World *world;
        Seen seen;
        Tally ever;
        uint64_t bytes_seen; /* the file bytes written when last looked at */
} Generations;

/* Writes what is queued and looks at both files. Less than a generation was written since the last look, so
 * that nothing was written and rotated away unseen. */
static void look(Generations *g) {
        World *w = g->world;
        char prev[160];
        Tally now = {};

        run_loop(w);
        uint64_t bytes = w->stats.export.bytes[EXPORT_SIGNAL_TRACES] + w->stats.export.bytes[EXPORT_SIGNAL_LOGS];
        assert_true(bytes - g->bytes_seen < w->file_max_bytes);
        g->bytes_seen = bytes;
        snprintf(prev, sizeof(prev), "%s.1", w->file);
        scan_items(prev, &g->seen, &g->ever, &now);
        scan_items(w->file, &g->seen, &g->ever, &now);
}

/* What the two files hold now, by boot. */
static Tally kept(World *w) {
        char prev[160];
        Seen scratch = {};
        Tally ever = {}, now = {};

        snprintf(prev, sizeof(prev), "%s.1", w->file);
        scan_items(prev, &scratch, &ever, &now);
        scan_items(w->file, &scratch, &ever, &now);
        free(scratch.v);
        return now;
}

/* A rotation that deletes <path>.1 counts each boot's items in it (log lines, spans, events) in the boot's
 * export_dropped, exactly: what it wrote minus what the two files still hold of it. A boot forgotten before
 * (evicted by the next one of its machine, some of its items still queued then) counts node-wide only. */
static void test_rotation_counted_per_boot(void **state) {
        World *w = *state;
        Generations g = { .world = w };

        /* One item per line: every look sees the lines of everything written. 16 KiB: about 20 lines. */
        w->file_max_bytes = 16 * 1024;
        w->batch_items = 1;
        world_open(w, false, 0, 1);
        Machine *a = test_register_machine(w->registry, w->store, "vm-a", 10);
        Machine *f = test_register_machine(w->registry, w->store, "vm-f", 11);

        Session *s = test_connect(&w->ctx, a, "boot-1");
        answer_probe(s, 5 * S + 7 * MS);
        for (uint64_t k = 0; k < 4; k++) {
                feed_logs(s, 1 + 3 * k, 3, "one");
                look(&g);
        }
        feed_logs(s, 13, 1, "one");
        end_session(s);
        /* boot-1 is evicted (one boot per machine) with its last items still queued. */
        s = test_connect(&w->ctx, a, "boot-2");
        answer_probe(s, 5 * S + 7 * MS);
        Boot *two = a->current;
        feed_logs(s, 1, 3, "two");
        look(&g);

        Session *fs = test_connect(&w->ctx, f, "boot-f");
        answer_probe(fs, 5 * S + 7 * MS);
        Boot *flood = f->current;
        for (uint64_t k = 0; k < 80; k++) {
                feed_logs(fs, 1 + 4 * k, 4, "flood");
                look(&g);
        }
        end_session(fs);
        look(&g);
        feed_logs(s, 4, 3, "two");
        end_session(s);
        look(&g);
        otlp_exporter_shutdown(w->exporter);
        look(&g);

        Tally now = kept(w);
        assert_true(tally_get(&g.ever, "boot-1") > 0);
        assert_int_equal(tally_get(&now, "boot-1"), 0); /* every item rotated away: counted node-wide only */
        assert_true(tally_get(&g.ever, "boot-2") > tally_get(&now, "boot-2"));
        assert_int_equal(two->export_dropped, tally_get(&g.ever, "boot-2") - tally_get(&now, "boot-2"));
        assert_true(tally_get(&g.ever, "boot-f") > tally_get(&now, "boot-f"));
        assert_int_equal(flood->export_dropped, tally_get(&g.ever, "boot-f") - tally_get(&now, "boot-f"));
        uint64_t rotated = 0;
        for (size_t sig = 0; sig < _EXPORT_SIGNAL_MAX; sig++)
                for (size_t i = 0; i < _EXPORT_DROP_REASON_MAX; i++)
                        if (i == EXPORT_DROP_ROTATED)
                                rotated += w->stats.export.dropped[sig][i];
                        else
                                assert_int_equal(w->stats.export.dropped[sig][i], 0);
        assert_int_equal(rotated, tally_sum(&g.ever) - tally_sum(&now));
        free(g.seen.v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_nothing_exported_with_the_provisional_mapping, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fixed_by_probe_mem, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fixed_by_probe_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_waiting_journal_severity_mem, setup, teardown),
                cmocka_unit_test_setup_teardown(test_waiting_journal_severity_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_evicted_before_fix_mem, setup, teardown),
                cmocka_unit_test_setup_teardown(test_evicted_before_fix_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fixed_by_end_mem, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fixed_by_end_store, setup, teardown),
                cmocka_unit_test_setup_teardown(test_machine_deleted_while_waiting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_mapping_at_all, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotation_counted_per_boot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sample_metrics, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
