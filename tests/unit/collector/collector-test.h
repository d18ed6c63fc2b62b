/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers for the collector unit tests: building frames the way an agent would, and reading what a session
 * queued for the guest. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>

#include "envelope.h"
#include "frame.h"
#include "jsonlog.h"
#include "log-store.h"
#include "manager.h"
#include "outqueue.h"
#include "registry.h"
#include "session.h"
#include "store.h"

/* A private directory under /tmp for one test ("/tmp/tetherd-test-NAME-XXXXXX"); buf holds at least 64 bytes. */
static inline void test_dir_make(char *buf, size_t size, const char *name) {
        snprintf(buf, size, "/tmp/tetherd-test-%s-XXXXXX", name);
        assert_non_null(mkdtemp(buf));
}

static inline void test_dir_remove(const char *dir) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

/* A growable byte buffer of frames. */
typedef struct Bytes {
        uint8_t *data;
        size_t len;
} Bytes;

static inline void bytes_append(Bytes *b, const void *p, size_t n) {
        b->data = realloc(b->data, b->len + n);
        assert_non_null(b->data);
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static inline void bytes_free(Bytes *b) {
        free(b->data);
        *b = (Bytes) {};
}

static inline void frame_append(Bytes *b, const Tether__Envelope *e) {
        uint8_t *f;
        size_t n;
        assert_int_equal(envelope_pack_frame(e, &f, &n), 0);
        bytes_append(b, f, n);
        free(f);
}

/* instance: Hello.agent_instance (its bytes without the NUL), NULL for an agent older than that field; max_version:
 * Hello.max_protocol_version (0: version 1 only). */
static inline void hello_frame_version(
        Bytes *b, const char *boot_id, const char *hostname, const char *instance, uint32_t max_version) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.max_protocol_version = max_version;
        h.agent_version = (char *) "test-1";
        h.boot_id = (char *) boot_id;
        h.kernel_release = (char *) "6.1.0-test";
        h.hostname = (char *) hostname;
        h.mode = TETHER__AGENT_MODE__AGENT_MODE_INIT;
        h.boottime_ns = 5 * UINT64_C(1000000000);
        if (instance) {
                h.agent_instance.data = (uint8_t *) instance;
                h.agent_instance.len = strlen(instance);
        }
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        frame_append(b, &e);
}

static inline void hello_frame_instance(Bytes *b, const char *boot_id, const char *hostname, const char *instance) {
        hello_frame_version(b, boot_id, hostname, instance, 0);
}

/* An agent that speaks the journal (tether-agent-systemd). */
static inline void hello_journal_frame(Bytes *b, const char *boot_id, const char *hostname, const char *instance) {
        hello_frame_version(b, boot_id, hostname, instance, TETHER_PROTOCOL_VERSION_JOURNAL);
}

static inline void hello_frame(Bytes *b, const char *boot_id, const char *hostname) {
        hello_frame_instance(b, boot_id, hostname, NULL);
}

static inline void milestone_frame_attrs(
        Bytes *b, uint64_t seq, const char *name, uint64_t boottime_ns, size_t n_attrs) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Milestone m = TETHER__MILESTONE__INIT;
        Tether__Attribute attrs[64], *pattrs[64];
        assert_true(n_attrs <= 64);
        for (size_t i = 0; i < n_attrs; i++) {
                tether__attribute__init(&attrs[i]);
                attrs[i].key = (char *) "k";
                attrs[i].value = (char *) "v";
                pattrs[i] = &attrs[i];
        }
        m.name = (char *) name;
        m.boottime_ns = boottime_ns;
        m.n_attributes = n_attrs;
        m.attributes = n_attrs ? pattrs : NULL;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_MILESTONE;
        e.milestone = &m;
        frame_append(b, &e);
}

static inline void milestone_frame(Bytes *b, uint64_t seq, const char *name, uint64_t boottime_ns) {
        milestone_frame_attrs(b, seq, name, boottime_ns, 0);
}

static inline void phase_frame(Bytes *b, uint64_t seq, const char *name, uint64_t start_ns, uint64_t end_ns) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Phase p = TETHER__PHASE__INIT;
        p.name = (char *) name;
        p.start_boottime_ns = start_ns;
        p.end_boottime_ns = end_ns;
        p.status = TETHER__PHASE_STATUS__PHASE_STATUS_OK;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_PHASE;
        e.phase = &p;
        frame_append(b, &e);
}

static inline void log_frame(Bytes *b, uint64_t seq, int stream, const char *text, uint64_t boottime_ns) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Log l = TETHER__LOG__INIT;
        l.stream = stream;
        l.source = (char *) "workload";
        l.boottime_ns = boottime_ns;
        l.data.data = (uint8_t *) text;
        l.data.len = strlen(text);
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        frame_append(b, &e);
}

/* A journal line of tether-agent-systemd: priority (1 + syslog's) and cursor. */
static inline void journal_frame(
        Bytes *b, uint64_t seq, const char *unit, unsigned priority, const char *cursor, const char *text) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Log l = TETHER__LOG__INIT;
        l.stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL;
        l.source = (char *) unit;
        l.boottime_ns = seq * 1000;
        l.priority = priority;
        l.cursor = (char *) cursor;
        l.data.data = (uint8_t *) text;
        l.data.len = strlen(text);
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        frame_append(b, &e);
}

static inline void log_dropped_frame(Bytes *b, uint64_t seq, uint64_t first, uint64_t last) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__LogDropped d = TETHER__LOG_DROPPED__INIT;
        d.first_seq = first;
        d.last_seq = last;
        d.records = last - first + 1;
        d.bytes = 100 * d.records;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG_DROPPED;
        e.log_dropped = &d;
        frame_append(b, &e);
}

static inline void ready_frame(Bytes *b, uint64_t seq, const char *source, uint64_t boottime_ns) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Ready r = TETHER__READY__INIT;
        r.source = (char *) source;
        r.boottime_ns = boottime_ns;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_READY;
        e.ready = &r;
        frame_append(b, &e);
}

static inline void exit_frame_oom(Bytes *b, uint64_t seq, int code, int signal, uint64_t boottime_ns, bool oom) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Exit x = TETHER__EXIT__INIT;
        x.oom_killed = oom;
        x.code = code;
        x.signal = signal;
        x.boottime_ns = boottime_ns;
        x.reason = (char *) "";
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_EXIT;
        e.exit = &x;
        frame_append(b, &e);
}

static inline void exit_frame(Bytes *b, uint64_t seq, int code, int signal, uint64_t boottime_ns) {
        exit_frame_oom(b, seq, code, signal, boottime_ns, false);
}

static inline void clock_sample_frame(Bytes *b, uint64_t probe_id, uint64_t boottime_ns) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__ClockSample cs = TETHER__CLOCK_SAMPLE__INIT;
        cs.probe_id = probe_id;
        cs.boottime_ns = boottime_ns;
        e.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
        e.clock_sample = &cs;
        frame_append(b, &e);
}

/* A Hello saying versions 1 to max (an agent that samples resources). */
static inline void hello_v2_frame(Bytes *in, const char *boot_id) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;

        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.max_protocol_version = TETHER_PROTOCOL_VERSION_SAMPLES;
        h.boot_id = (char *) boot_id;
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        frame_append(in, &e);
}

/* A sample taken at guest time t_s seconds: every CPU counter is busy_ns (user) and idle_ns (idle). */
static inline void resource_sample_frame(Bytes *in, uint64_t t_s, uint64_t user_ns, uint64_t idle_ns) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__ResourceSample r = TETHER__RESOURCE_SAMPLE__INIT;
        uint64_t cpu[8] = { user_ns, 0, 0, idle_ns, 0, 0, 0, 0 };
        uint64_t mem[5] = { 1000 * UINT64_C(1000000), 600 * UINT64_C(1000000), 500 * UINT64_C(1000000), 0, 0 };
        uint64_t psi[4] = { 250, 0, 7 * UINT64_C(1000000), 0 };
        uint32_t load[3] = { 150, 75, 5 };

        r.boottime_ns = t_s * 1000 * UINT64_C(1000000);
        r.cpus = 2;
        r.cpu_ns = cpu;
        r.n_cpu_ns = 8;
        r.memory_bytes = mem;
        r.n_memory_bytes = 5;
        r.load_centi = load;
        r.n_load_centi = 3;
        r.psi_memory = psi;
        r.n_psi_memory = 4;
        e.msg_case = TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE;
        e.resource_sample = &r;
        frame_append(in, &e);
}

/* Decodes every frame queued in q (and consumes them). Returns the count; envelopes go to out[]. */
static inline size_t drain_out_queue(OutQueue *q, Tether__Envelope **out, size_t max) {
        FrameReader r;
        const uint8_t *p;
        size_t len, n = 0;

        assert_int_equal(frame_reader_init(&r, 0), 0);
        assert_int_equal(frame_reader_feed(&r, out_queue_data(q), out_queue_size(q)), out_queue_size(q));
        out_queue_consume(q, out_queue_size(q));
        while (frame_reader_next(&r, &p, &len) == 1) {
                assert_true(n < max);
                assert_int_equal(envelope_unpack(p, len, &out[n]), 0);
                n++;
        }
        assert_int_equal(frame_reader_pending(&r), 0);
        frame_reader_done(&r);
        return n;
}

static inline void free_envelopes(Tether__Envelope **e, size_t n) {
        for (size_t i = 0; i < n; i++)
                envelope_free(e[i]);
}

/* The registry most tests use: node "node-a", 16 machines with 4 boots each, 64 events, vsock port 4817. */
static inline RegistryConfig test_registry_config(void) {
        return (RegistryConfig) {
                .node_id = "node-a",
                .max_machines = 16,
                .max_boots = 4,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
}

/* How many events of this transition the registry's event log holds (every machine's). */
static inline size_t test_count_events(const Registry *r, const char *transition) {
        char needle[64];
        size_t n = 0;

        snprintf(needle, sizeof(needle), "\"transition\":\"%s\"", transition);
        for (size_t i = 0; i < r->events->n; i++)
                n += strstr(event_log_at(r->events, i)->json, needle) != NULL;
        return n;
}

/* ---- log entries of a boot ---- */

/* The i-th log entry held in memory (0 = the oldest). */
static inline LogEntry tail_entry_at(const Boot *b, size_t i) {
        LogTailPos pos;
        LogEntry e = {};

        log_tail_find_after(&b->logs, 0, &pos);
        for (size_t k = 0; k <= i; k++)
                assert_true(log_tail_next(&b->logs, &pos, &e));
        return e;
}

/* Index in memory of the first entry with seq > after_seq (n_entries if none). */
static inline size_t tail_find_after(const Boot *b, uint64_t after_seq) {
        LogTailPos pos;
        LogEntry e;
        size_t i = 0;

        log_tail_find_after(&b->logs, after_seq, &pos);
        LogTailPos start = pos;
        log_tail_find_after(&b->logs, 0, &pos);
        while (pos.block != start.block || pos.offset != start.offset) {
                assert_true(log_tail_next(&b->logs, &pos, &e));
                i++;
        }
        return i;
}

/* A copy of a log entry read through log_store_read(). */
typedef struct TestLog {
        LogEntry e; /* data and source point to the copies */
        char *source;
        uint8_t *data;
} TestLog;

typedef struct TestLogs {
        TestLog *v;
        size_t n;
} TestLogs;

static inline int test_logs_add(const LogEntry *e, void *userdata) {
        TestLogs *l = userdata;
        TestLog *a = realloc(l->v, (l->n + 1) * sizeof(TestLog));
        assert_non_null(a);
        l->v = a;
        TestLog *t = &l->v[l->n++];
        *t = (TestLog) { .e = *e };
        t->data = malloc(e->len + 1);
        assert_non_null(t->data);
        if (e->len > 0)
                memcpy(t->data, e->data, e->len);
        t->e.data = t->data;
        if (e->source) {
                t->source = strdup(e->source);
                t->e.source = t->source;
        }
        return 0;
}

static inline void test_logs_free(TestLogs *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].source);
                free(l->v[i].data);
        }
        free(l->v);
        *l = (TestLogs) {};
}

/* Every log entry with seq > after_seq, from the boot file (store may be NULL) and memory. */
static inline TestLogs test_logs_read(Store *store, Boot *b, uint64_t after_seq) {
        TestLogs l = {};
        LogCursor c = { .seq = after_seq };
        assert_int_equal(log_store_read(store, b, &c, test_logs_add, &l), 0);
        return l;
}

/* Waits (up to 10 s) for syncs to complete and dispatches their handlers. */
static inline void test_dispatch_syncs(Store *store) {
        struct pollfd p = { .fd = store_sync_fd(store), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
        store_dispatch_syncs(store);
}

static inline void test_on_saved(Store *store, Machine *m, int error, void *userdata) {
        *(int *) userdata = error;
}

/* store_save_machine(), and waiting for the syncer when it syncs: the registration is durable on return. */
static inline void test_save_machine(Store *store, Machine *m) {
        int result = 1;
        int r = store_save_machine(store, m, test_on_saved, &result);
        assert_true(r == 0 || r == 1);
        while (r == 1 && result == 1)
                test_dispatch_syncs(store);
        if (r == 1)
                assert_int_equal(result, 0);
        assert_true(m->persisted);
}

/* A machine registered as the API registers one: saved too when there is a store. */
static inline Machine *test_register_machine(Registry *r, Store *store, const char *id, uint32_t cid) {
        MachineSpec spec = { .machine_id = id, .cid = cid };
        const char *err;
        Machine *m;
        assert_int_equal(registry_add_machine(r, &spec, &m, &err), 0);
        if (store)
                test_save_machine(store, m);
        return m;
}

/* A session of m past its Hello for boot_id (hostname "guest"), its Welcome read off the output queue. */
static inline Session *test_connect(const SessionContext *ctx, Machine *m, const char *boot_id) {
        Session *s;
        Bytes in = {};
        Tether__Envelope *out[16];

        assert_int_equal(session_new(ctx, m, &s), 0);
        hello_frame(&in, boot_id, "guest");
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));
        return s;
}

/* ---- the machine manager, with a fake transport ---- */

/* What the manager asked of the daemon's side; listen fails with listen_result when that is < 0. */
typedef struct FakeTransport {
        unsigned listens, unlistens, disconnects;
        char listened[128]; /* uds_path of the last listen */
        char released[64];  /* machine id of the last unlisten */
        CloseReason reason; /* of the last disconnect */
        int listen_result;
        bool listening; /* listen succeeded and no unlisten followed */
} FakeTransport;

static inline int fake_listen(Machine *m, void *userdata) {
        FakeTransport *t = userdata;
        t->listens++;
        snprintf(t->listened, sizeof(t->listened), "%s", m->uds_path);
        if (t->listen_result < 0)
                return t->listen_result;
        t->listening = true;
        return 0;
}

static inline void fake_unlisten(Machine *m, void *userdata) {
        FakeTransport *t = userdata;
        t->unlistens++;
        snprintf(t->released, sizeof(t->released), "%s", m->id);
        t->listening = false;
}

static inline void fake_disconnect(Machine *m, CloseReason reason, void *userdata) {
        FakeTransport *t = userdata;
        t->disconnects++;
        t->reason = reason;
}

/* The state directory: none, one that syncs (on the syncer's threads), or one that does not (--no-sync). */
typedef enum TestStore { TEST_NO_STORE, TEST_STORE_SYNC, TEST_STORE_NO_SYNC } TestStore;

/* A manager as the daemon sets one up, with the fake transport. Points into itself: it stays where it is. */
typedef struct TestManager {
        char dir[64]; /* the state directory, "" without one */
        Stats stats;
        Registry *registry;
        Store *store;
        FakeTransport transport;
        Manager manager;
} TestManager;

static inline void test_manager_init(TestManager *t, TestStore store) {
        RegistryConfig c = test_registry_config();

        *t = (TestManager) {};
        log_setup(LOG_TARGET_JSON, LOG_CRIT, "test");
        assert_int_equal(registry_new(&c, &t->stats, &t->registry), 0);
        if (store != TEST_NO_STORE) {
                StoreConfig sc = { .dir = t->dir, .sync = store == TEST_STORE_SYNC, .sync_threads = 1 };
                test_dir_make(t->dir, sizeof(t->dir), "manager");
                assert_int_equal(store_open(&sc, &t->stats, &t->store), 0);
        }
        t->manager = (Manager) {
                .registry = t->registry,
                .store = t->store,
                .stats = &t->stats,
                .vsock_port = 4817,
                .transport = { .listen = fake_listen,
                               .unlisten = fake_unlisten,
                               .disconnect = fake_disconnect,
                               .userdata = &t->transport },
        };
}

static inline void test_manager_done(TestManager *t) {
        t->store = store_free(t->store);
        t->registry = registry_free(t->registry);
        if (t->dir[0])
                test_dir_remove(t->dir);
}
