/* SPDX-License-Identifier: MIT */
/* Guest-controlled bytes through a real session with a real store (a state directory in a scratch directory),
 * the metrics and the OTLP exporter (file mode) subscribed as in tetherd; then every renderer of what the guest
 * sent:
 *   - the API's JSON: the machine and every boot (render.c), spans, log lines read back through the log store
 *     (boot file and memory), the event log's lines;
 *   - OTLP: the resource, every span, events and log lines as protobuf (decoded again with protobuf-c), the
 *     assembled export requests and their OTLP/JSON, the direct log line writers against the protobuf-c
 *     reference (byte for byte) and the generic JSON writer, and the exporter's OTLP/JSON file;
 *   - the Prometheus exposition, and its label escaping on every guest string.
 * Everything rendered must parse again (JSON with jansson, protobuf with protobuf-c), hold valid UTF-8 only,
 * and name the guest's machine only: a second machine, "bystander", must render exactly as before. Finally the
 * state directory is loaded into a second registry (a restart) and must give back the boots the session stored.
 *
 * Input: as fuzz-session (corpus/session seeds it): byte 0 seeds the chunk sizes; byte 1 holds flags (bit 0:
 * flush acks between chunks, bit 1: clock probes between chunks, bit 2: reconnect halfway, bit 3: a small
 * in-memory log bound (lines evicted, read back from the boot file), bit 4: a small boot file bound); the rest
 * is the byte stream the guest sends. */

#include <jansson.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "fuzz-checks.h"
#include "fuzz-feed.h"
#include "fuzz-util.h"
#include "fuzz.h"
#include "jsonlog.h"
#include "macro.h"
#include "metrics.h"
#include "otlp-exporter.h"
#include "registry.h"
#include "render.h"
#include "session.h"
#include "store.h"

#define NODE_ID "fuzz-node"
#define GUEST "guest"
#define BYSTANDER "bystander"
#define TRACEPARENT "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static sd_event *event;

static void check_events(const Registry *reg, const Machine *guest) {
        const EventLog *l = reg->events;
        uint8_t root[8];

        if (guest->current)
                stitch_root_span_id(guest->current, root);
        for (size_t i = 0; i < l->n; i++) {
                const Event *ev = event_log_at(l, i);
                _cleanup_free_ uint8_t *data = NULL;
                size_t len;

                /* Every event of this run is about the guest, and says so. */
                FUZZ_ASSERT(ev->machine_id && strcmp(ev->machine_id, GUEST) == 0);
                json_t *o = fuzz_check_json_text(ev->json, strlen(ev->json));
                FUZZ_ASSERT(strcmp(json_str(o, "machine_id"), GUEST) == 0);
                FUZZ_ASSERT(strcmp(json_str(o, "node_id"), NODE_ID) == 0);
                FUZZ_ASSERT(json_str(o, "transition"));
                FUZZ_ASSERT(
                        otlp_encode_event(
                                o,
                                now_ns(CLOCK_REALTIME),
                                guest->current ? guest->current->trace_id : NULL,
                                guest->current ? root : NULL,
                                &data,
                                &len) >= 0);
                Opentelemetry__Proto__Logs__V1__LogRecord *rec = opentelemetry__proto__logs__v1__log_record__unpack(
                        NULL, len, data);
                FUZZ_ASSERT(rec);
                opentelemetry__proto__logs__v1__log_record__free_unpacked(rec, NULL);
                check_item_json(EXPORT_SIGNAL_LOGS, data, len, GUEST);
                json_decref(o);
        }
}

/* The exporter's OTLP/JSON file: one request per line, about the guest only (tetherd's own metrics, written at
 * shutdown, name no machine). */
static void check_export_file(const char *path) {
        size_t len;
        _cleanup_free_ char *text = fuzz_read_file(path, &len);

        if (!text)
                return;
        for (const char *p = text, *end = text + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                FUZZ_ASSERT(nl);
                json_t *o = fuzz_check_json_text(p, (size_t) (nl - p));
                FUZZ_ASSERT(
                        json_object_get(o, "resourceSpans") || json_object_get(o, "resourceLogs") ||
                        json_object_get(o, "resourceMetrics"));
                check_otlp_json_identity(o, GUEST);
                json_decref(o);
                p = nl + 1;
        }
}

/* ---- a restart ---- */

static bool strings_equal(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* The boots a restarted tetherd loads are the ones the session stored (when every record reached the file). */
static void check_reload(const char *state, const Machine *live, const Stats *live_stats) {
        RegistryConfig rc = {
                .node_id = NODE_ID,
                .default_service_name = "fuzz",
                .max_machines = 2,
                .max_boots = live->registry->config.max_boots,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = live->registry->config.boot_limits,
        };
        rc.boot_limits.log_budget = NULL;
        StoreConfig sc = { .dir = state, .max_boot_bytes = 0, .sync = false };
        StoreLoadReport report;
        Stats stats = {};
        Registry *reg;
        Store *store;

        FUZZ_ASSERT(store_open(&sc, &stats, &store) >= 0);
        FUZZ_ASSERT(registry_new(&rc, &stats, &reg) >= 0);
        FUZZ_ASSERT(store_load(store, reg, &report) >= 0);
        FUZZ_ASSERT(report.machines == 2 && report.machines_skipped == 0 && report.torn_tails == 0);

        Machine *m = registry_find(reg, GUEST), *by = registry_find(reg, BYSTANDER);
        FUZZ_ASSERT(m && by && by->n_boots == 0);
        bool complete = live_stats->dropped_records[DROP_DISK_LIMIT] == 0 &&
                live_stats->dropped_records[DROP_PERSIST_FAILED] == 0 && live_stats->persist_errors == 0;
        FUZZ_ASSERT(m->n_boots == live->n_boots || !complete);
        for (size_t i = 0; i < live->n_boots; i++) {
                const Boot *a = live->boots[i], *b = machine_find_boot_by_index(m, a->index);
                if (!b) {
                        FUZZ_ASSERT(!complete);
                        continue;
                }
                FUZZ_ASSERT(strcmp(a->boot_id, b->boot_id) == 0 && memcmp(a->trace_id, b->trace_id, 16) == 0);
                FUZZ_ASSERT(b->last_seq <= a->last_seq && b->records <= a->records);
                if (!complete)
                        continue;
                FUZZ_ASSERT(b->last_seq == a->last_seq && b->records == a->records);
                FUZZ_ASSERT(b->n_milestones == a->n_milestones && b->n_phases == a->n_phases);
                FUZZ_ASSERT(b->ready.set == a->ready.set && b->ready.seq == a->ready.seq);
                FUZZ_ASSERT(b->exit.set == a->exit.set && b->exit.code == a->exit.code);
                FUZZ_ASSERT(strings_equal(a->hostname, b->hostname));
                FUZZ_ASSERT(b->logs_dropped == a->logs_dropped && b->log_bytes_total == a->log_bytes_total);
                FUZZ_ASSERT(b->n_instances == a->n_instances);
        }
        json_decref(fuzz_check_rendered(render_machine(m, NODE_ID)));
        store_free(store);
        registry_free(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool set_up = false;
        _cleanup_free_ char *state = NULL, *otlp_file = NULL, *otlp_rotated = NULL;
        Stats stats = {};
        Registry *reg = NULL;
        Store *store = NULL;
        Metrics *metrics = NULL;
        OtlpExporter *exporter = NULL;
        Machine *guest = NULL, *bystander = NULL;
        Session *s = NULL;
        SessionContext ctx;
        const char *error = NULL;

        if (size < 2)
                return 0;
        if (!set_up) {
                log_setup(LOG_TARGET_JSON, LOG_CRIT, "fuzz");
                FUZZ_ASSERT(sd_event_new(&event) >= 0);
                set_up = true;
        }
        uint8_t flags = data[1];
        const char *scratch = fuzz_scratch_dir();
        FUZZ_ASSERT(asprintf(&state, "%s/state", scratch) >= 0);
        FUZZ_ASSERT(asprintf(&otlp_file, "%s/otlp.jsonl", scratch) >= 0);

        RegistryConfig config = {
                .node_id = NODE_ID,
                .default_service_name = "fuzz",
                .max_machines = 2,
                .max_boots = 2,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        if (flags & 8)
                config.boot_limits.max_log_bytes = 2048;
        StoreConfig sc = { .dir = state, .max_boot_bytes = (flags & 16) ? 2048 : 0, .sync = false };
        FUZZ_ASSERT(store_open(&sc, &stats, &store) >= 0);
        FUZZ_ASSERT(registry_new(&config, &stats, &reg) >= 0);
        FUZZ_ASSERT(metrics_new(reg, &stats, true, &metrics) >= 0);
        OtlpConfig oc;
        otlp_config_init(&oc);
        oc.file_path = otlp_file;
        /* Small enough to rotate now and then, and to keep the file's preallocation cheap. */
        oc.file_max_bytes = 64u * 1024u;
        FUZZ_ASSERT(otlp_exporter_new(event, reg, store, &stats, &oc, &exporter) >= 0);

        static const char *const keys[] = { "team" }, *const values[] = { "fuzz" };
        MachineSpec gs = {
                .machine_id = GUEST,
                .cid = 3,
                .traceparent = TRACEPARENT,
                .request_id = "req-1",
                .attr_keys = keys,
                .attr_values = values,
                .n_attrs = 1,
        };
        FUZZ_ASSERT(registry_add_machine(reg, &gs, &guest, &error) >= 0);
        FUZZ_ASSERT(
                registry_add_machine(reg, &(MachineSpec) { .machine_id = BYSTANDER, .cid = 4 }, &bystander, &error) >=
                0);
        FUZZ_ASSERT(store_save_machine(store, guest, NULL, NULL) == 0);
        FUZZ_ASSERT(store_save_machine(store, bystander, NULL, NULL) == 0);
        json_t *bystander_before = fuzz_check_rendered(render_machine(bystander, NODE_ID));

        session_context_init(&ctx, reg, store, &stats);
        FUZZ_ASSERT(session_new(&ctx, guest, &s) >= 0);
        int r = fuzz_feed_chunked(&s, &ctx, guest, data + 2, size - 2, data[0], flags, true);
        FUZZ_ASSERT(r >= 0 || r == -EPROTO);
        session_end(s, CLOSE_EOF);
        session_free(s);
        /* The exporter's batch work and read-backs, as the loop would run them. */
        for (unsigned i = 0; i < 64 && sd_event_run(event, 0) > 0; i++)
                ;

        /* Never another machine's data. */
        json_t *bystander_after = fuzz_check_rendered(render_machine(bystander, NODE_ID));
        FUZZ_ASSERT(json_equal(bystander_before, bystander_after));
        json_decref(bystander_before);
        json_decref(bystander_after);
        FUZZ_ASSERT(guest->n_boots <= config.max_boots);

        json_t *machine = fuzz_check_rendered(render_machine(guest, NODE_ID));
        FUZZ_ASSERT(strcmp(json_str(machine, "machine_id"), GUEST) == 0);
        json_decref(machine);
        for (size_t i = 0; i < guest->n_boots; i++)
                FUZZ_ASSERT(check_boot(store, guest, guest->boots[i]) >= 0);
        check_events(reg, guest);
        json_decref(fuzz_check_rendered(render_stats(&stats)));
        check_exposition(metrics);

        otlp_exporter_shutdown(exporter);
        otlp_exporter_free(exporter);
        check_export_file(otlp_file);
        FUZZ_ASSERT(asprintf(&otlp_rotated, "%s.1", otlp_file) >= 0);
        check_export_file(otlp_rotated);
        metrics_free(metrics);

        store_free(store);
        check_reload(state, guest, &stats);
        registry_free(reg);
        return 0;
}
