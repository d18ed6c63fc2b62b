/* SPDX-License-Identifier: MIT */
/* The protocol state machine driven with crafted frames, no sockets: handshake, dedup of replayed records,
 * sequence regressions, every kind of bad frame counted per reason, gaps, acks, clock samples, disconnects,
 * and that nothing a guest sends ever touches another machine. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collector-test.h"
#include "jsonlog.h"
#include "macro.h"
#include <jansson.h>

#include "session.h"
#include "stitch.h"
#include "store.h"
#include "time-util.h"
#include "traceparent.h"

#define MS UINT64_C(1000000)

typedef struct Fixture {
        Stats stats;
        Registry *registry;
        SessionContext ctx;
        Machine *a, *b;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        RegistryConfig c = {
                .node_id = "node-a",
                .max_machines = 16,
                .max_boots = 4,
                .max_events = 256,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        MachineSpec sa = { .machine_id = "vm-a", .cid = 10 }, sb = { .machine_id = "vm-b", .cid = 11 };
        const char *err;

        log_setup(LOG_TARGET_JSON, LOG_CRIT, "test");
        assert_int_equal(registry_new(&c, &f->stats, &f->registry), 0);
        assert_int_equal(registry_add_machine(f->registry, &sa, &f->a, &err), 0);
        assert_int_equal(registry_add_machine(f->registry, &sb, &f->b, &err), 0);
        session_context_init(&f->ctx, f->registry, NULL, &f->stats);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        registry_free(f->registry);
        free(f);
        return 0;
}

static Session *new_session(Fixture *f, Machine *m) {
        Session *s;
        assert_int_equal(session_new(&f->ctx, m, &s), 0);
        return s;
}

/* A session of m whose input starts with its Hello: the test appends what follows and feeds it all at once. */
static Session *session_hello(Fixture *f, Machine *m, Bytes *in, const char *boot_id, const char *hostname) {
        hello_frame(in, boot_id, hostname);
        return new_session(f, m);
}

static void end_session(Session *s, CloseReason reason) {
        session_end(s, reason);
        session_free(s);
}

static int feed(Session *s, Bytes *b) {
        int r = session_feed(s, b->data, b->len);
        bytes_free(b);
        return r;
}

static uint64_t total_protocol_errors(const Stats *st) {
        uint64_t n = 0;
        for (int i = 0; i < _PROTOCOL_ERROR_MAX; i++)
                n += st->protocol_errors[i];
        return n;
}

static void test_hello_welcome(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[8];

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(s->state, SESSION_ACTIVE);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_WELCOME);
        Tether__Welcome *w = out[0]->welcome;
        assert_int_equal(w->protocol_version, TETHER_PROTOCOL_VERSION);
        assert_int_equal(w->acked_seq, 0);
        assert_int_equal(w->session_id.len, 16);
        assert_string_equal(w->machine_id, "vm-a");
        assert_int_equal(w->limits->max_frame_bytes, TETHER_FRAME_MAX);
        assert_true(w->limits->heartbeat_interval_ms > 0);

        /* The traceparent continues this boot's trace. */
        TraceParent tp;
        assert_int_equal(traceparent_parse(w->traceparent, &tp), 0);
        assert_memory_equal(tp.trace_id, f->a->current->trace_id, 16);
        free_envelopes(out, 1);

        assert_int_equal(f->a->state, MACHINE_BOOTING);
        assert_true(f->a->connected);
        assert_string_equal(f->a->current->hostname, "guest-a");
        assert_null(f->b->current);
        end_session(s, CLOSE_EOF);
        assert_false(f->a->connected);
        assert_int_equal(f->a->state, MACHINE_DISCONNECTED);
}

static void test_first_frame_must_be_hello(void **state) {
        Fixture *f = *state;
        Session *s = new_session(f, f->a);
        Bytes in = {};

        milestone_frame(&in, 1, "init.start", 1);
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(s->error, PROTOCOL_ERROR_UNEXPECTED_MESSAGE);
        assert_int_equal(f->stats.protocol_errors[PROTOCOL_ERROR_UNEXPECTED_MESSAGE], 1);
        assert_int_equal(out_queue_size(&s->out), 0);
        assert_null(f->a->current);
        end_session(s, CLOSE_PROTOCOL_ERROR);
        /* Never said Hello: the machine's state is untouched. */
        assert_int_equal(f->a->state, MACHINE_REGISTERED);
}

static void test_version_mismatch(void **state) {
        Fixture *f = *state;
        Session *s = new_session(f, f->a);
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        Bytes in = {};

        h.protocol_version = TETHER_PROTOCOL_VERSION_MAX + 1;
        h.boot_id = (char *) "boot-1";
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        frame_append(&in, &e);
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(f->stats.protocol_errors[PROTOCOL_ERROR_VERSION_MISMATCH], 1);
        end_session(s, CLOSE_PROTOCOL_ERROR);
}

static void test_resource_samples(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[8];

        /* Versions 1..2 offered: version 2 chosen, samples kept in the machine's ring. */
        hello_v2_frame(&in, "boot-1");
        resource_sample_frame(&in, 10, 1000 * MS, 3000 * MS);
        resource_sample_frame(&in, 10, 1500 * MS, 3500 * MS); /* the same guest second: replaces the one before */
        resource_sample_frame(&in, 9, 1500 * MS, 3500 * MS);  /* a guest clock going backwards: refused */
        resource_sample_frame(&in, 12, 2000 * MS, 4000 * MS); /* 1 s busy of 2 s */
        Session *s = new_session(f, f->a);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_int_equal(out[0]->welcome->protocol_version, 2);
        free_envelopes(out, 1);
        assert_non_null(f->a->samples);
        assert_int_equal(f->a->samples->n, 2);
        assert_int_equal(f->stats.guest_samples, 3);
        assert_int_equal(f->stats.guest_samples_refused, 1);
        assert_int_equal(f->a->samples->replaced, 1);
        assert_int_equal(f->a->samples->refused, 1);
        const GuestSample *g = sample_ring_latest(f->a->samples);
        assert_int_equal(g->boottime_ns, 12000 * MS);
        assert_int_equal(g->cpus, 2);
        assert_int_equal(g->cpu_ns[SAMPLE_CPU_USER], 2000 * MS);
        assert_int_equal(g->mem_available_bytes, 600 * MS);
        assert_int_equal(g->load_centi[0], 150);
        assert_true(g->pressure[SAMPLE_PRESSURE_MEMORY].present);
        assert_int_equal(g->pressure[SAMPLE_PRESSURE_MEMORY].some_avg10_centipct, 250);
        assert_false(g->pressure[SAMPLE_PRESSURE_CPU].present);
        assert_false(g->cgroup_present);
        assert_int_equal(guest_sample_cpu_busy_ppm(sample_ring_get(f->a->samples, 0), g), 500000);
        assert_null(f->b->samples);
        end_session(s, CLOSE_EOF);

        /* A new boot starts its ring again. */
        in = (Bytes) {};
        hello_v2_frame(&in, "boot-2");
        s = new_session(f, f->a);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->a->samples->n, 0);
        end_session(s, CLOSE_EOF);

        /* On a version 1 connection (an older agent's Hello) a sample is a protocol error. */
        in = (Bytes) {};
        s = session_hello(f, f->b, &in, "boot-b", "guest-b");
        resource_sample_frame(&in, 10, 0, 0);
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(f->stats.protocol_errors[PROTOCOL_ERROR_UNEXPECTED_MESSAGE], 1);
        assert_null(f->b->samples);
        end_session(s, CLOSE_PROTOCOL_ERROR);
}

static void test_replay_is_deduplicated(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[8];

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        for (uint64_t seq = 1; seq <= 5; seq++)
                log_frame(&in, seq, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "line\n", seq * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->a->current->last_seq, 5);
        end_session(s, CLOSE_EOF);

        /* Reconnect: the Welcome tells the agent what is stored; it replays 3..7 anyway (a lost ack). */
        s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_int_equal(out[0]->welcome->acked_seq, 5);
        free_envelopes(out, 1);
        for (uint64_t seq = 3; seq <= 7; seq++)
                log_frame(&in, seq, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "line\n", seq * MS);
        assert_int_equal(feed(s, &in), 0);

        Boot *b = f->a->current;
        assert_int_equal(f->a->n_boots, 1);
        assert_int_equal(b->last_seq, 7);
        assert_int_equal(b->logs.n_entries, 7);
        assert_int_equal(b->records, 7);
        assert_int_equal(b->duplicates, 3);
        assert_int_equal(f->stats.records_duplicate, 3);
        for (size_t i = 0; i < b->logs.n_entries; i++)
                assert_int_equal(tail_entry_at(b, i).seq, i + 1);
        /* The replayed duplicates still get acked. */
        assert_int_equal(session_flush_ack(s), 1);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_int_equal(out[0]->ack->seq, 7);
        free_envelopes(out, 1);
        assert_int_equal(total_protocol_errors(&f->stats), 0);
        end_session(s, CLOSE_EOF);
}

static void test_seq_regression(void **state) {
        Fixture *f = *state;
        Bytes in = {};

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        log_frame(&in, 1, 1, "a\n", 1);
        log_frame(&in, 2, 1, "b\n", 2);
        log_frame(&in, 2, 1, "b again\n", 3);
        log_frame(&in, 3, 1, "never processed\n", 4);
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(s->error, PROTOCOL_ERROR_SEQ_REGRESSION);
        assert_int_equal(f->stats.protocol_errors[PROTOCOL_ERROR_SEQ_REGRESSION], 1);
        assert_int_equal(f->a->current->last_seq, 2);
        assert_int_equal(f->a->current->protocol_errors, 1);
        assert_int_equal(f->a->protocol_errors, 1);
        end_session(s, CLOSE_PROTOCOL_ERROR);
        assert_int_equal(f->a->state, MACHINE_DISCONNECTED);
        assert_non_null(strstr(f->a->state_reason, "seq_regression"));
}

/* Feeds a valid prefix then bad bytes; checks the reason, that the stored data survived and machine B is
 * untouched. */
static void expect_bad(Fixture *f, const Bytes *bad, ProtocolError expected) {
        Session *s = new_session(f, f->a);
        Bytes in = {};
        uint64_t before = f->stats.protocol_errors[expected];

        hello_frame(&in, "boot-1", "guest-a");
        milestone_frame(&in, 1, "init.start", 5 * MS);
        bytes_append(&in, bad->data, bad->len);
        milestone_frame(&in, 2, "after.error", 6 * MS);
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(s->state, SESSION_FAILED);
        assert_int_equal(s->error, expected);
        assert_int_equal(f->stats.protocol_errors[expected], before + 1);
        assert_int_equal(f->a->current->last_seq, 1);
        assert_null(boot_find_milestone(f->a->current, "after.error"));
        /* Further input is refused, not processed. */
        milestone_frame(&in, 3, "later", 7 * MS);
        assert_int_equal(feed(s, &in), -EPROTO);
        end_session(s, CLOSE_PROTOCOL_ERROR);

        assert_null(f->b->current);
        assert_int_equal(f->b->n_boots, 0);
        assert_int_equal(f->b->protocol_errors, 0);
}

static void test_bad_frames_counted_per_reason(void **state) {
        static const ProtocolError expected[] = {
                PROTOCOL_ERROR_FRAME_EMPTY,        PROTOCOL_ERROR_FRAME_TOO_LARGE,     PROTOCOL_ERROR_DECODE_FAILED,
                PROTOCOL_ERROR_INVALID_UTF8,       PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES, PROTOCOL_ERROR_SEQ_MISSING,
                PROTOCOL_ERROR_UNEXPECTED_MESSAGE,
        };
        static const uint8_t empty[] = { 0, 0, 0, 0 }, huge[] = { 0x01, 0x00, 0x01, 0x00 },
                             garbage[] = { 3, 0, 0, 0, 0xff, 0xff, 0xff };
        Fixture *f = *state;
        Bytes bad[ELEMENTSOF(expected)] = {};
        Tether__Envelope host_only = TETHER__ENVELOPE__INIT;
        Tether__Ack ack = TETHER__ACK__INIT;

        /* bad[i] is refused for expected[i]. */
        bytes_append(&bad[0], empty, sizeof(empty));       /* a zero-length frame */
        bytes_append(&bad[1], huge, sizeof(huge));         /* a frame announcing more than 64 KiB */
        bytes_append(&bad[2], garbage, sizeof(garbage));   /* bytes that are not an Envelope */
        milestone_frame(&bad[3], 2, "bad\xc3\x28name", 1); /* invalid UTF-8 in a name */
        milestone_frame_attrs(&bad[4], 2, "many", 1, 33);  /* too many attributes */
        log_frame(&bad[5], 0, 1, "x\n", 1);                /* a record without a sequence number */
        ack.seq = 1;                                       /* a host-only message from the guest */
        host_only.msg_case = TETHER__ENVELOPE__MSG_ACK;
        host_only.ack = &ack;
        frame_append(&bad[6], &host_only);

        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                expect_bad(f, &bad[i], expected[i]);
                bytes_free(&bad[i]);
        }
        /* Each counted once under its own reason. */
        assert_int_equal(total_protocol_errors(&f->stats), 7);
}

static void test_guest_claims_do_not_change_identity(void **state) {
        Fixture *f = *state;
        Session *s = new_session(f, f->a);
        Bytes in = {};

        /* The guest behind A's transport calls itself vm-b and reuses a boot id B will use: still A's data. */
        hello_frame(&in, "boot-of-b", "vm-b");
        milestone_frame(&in, 1, "init.start", 1);
        ready_frame(&in, 2, "sd_notify", 2);
        assert_int_equal(feed(s, &in), 0);
        end_session(s, CLOSE_EOF);

        assert_non_null(f->a->current);
        assert_string_equal(f->a->current->boot_id, "boot-of-b");
        assert_string_equal(f->a->current->hostname, "vm-b");
        assert_true(f->a->current->ready.set);
        assert_null(f->b->current);
        assert_int_equal(f->b->state, MACHINE_REGISTERED);

        /* B's own boot with the same boot id is a separate boot. */
        s = session_hello(f, f->b, &in, "boot-of-b", "vm-b");
        log_frame(&in, 1, 1, "b\n", 1);
        assert_int_equal(feed(s, &in), 0);
        assert_ptr_not_equal(f->a->current, f->b->current);
        assert_int_equal(f->b->current->last_seq, 1);
        assert_int_equal(f->a->current->last_seq, 2);
        end_session(s, CLOSE_EOF);
}

static void test_ready_acks_at_once(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[8];

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        milestone_frame(&in, 1, "init.start", 1);
        assert_int_equal(feed(s, &in), 0);
        (void) drain_out_queue(&s->out, out, 8);
        free_envelopes(out, 1);
        assert_true(s->ack_pending);
        assert_false(s->ack_urgent);

        ready_frame(&in, 2, "sd_notify", 2 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_true(s->ack_urgent);
        assert_int_equal(f->a->state, MACHINE_READY);
        assert_string_equal(f->a->current->ready.source, "sd_notify");
        assert_int_equal(session_flush_ack(s), 1);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_ACK);
        assert_int_equal(out[0]->ack->seq, 2);
        free_envelopes(out, 1);
        /* Nothing new: no second ack. */
        assert_int_equal(session_flush_ack(s), 0);

        exit_frame(&in, 3, 137, 9, 3 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_true(s->ack_urgent);
        assert_int_equal(f->a->state, MACHINE_CRASHED);
        end_session(s, CLOSE_EOF);
        /* A disconnect after the exit does not turn "crashed" into "disconnected". */
        assert_int_equal(f->a->state, MACHINE_CRASHED);
}

static void test_ready_condition_source(void **state) {
        Fixture *f = *state;
        MachineSpec spec = { .machine_id = "vm-c", .cid = 12, .ready_condition = "source:probe:tcp" };
        const char *err;
        Machine *c;
        Bytes in = {};

        assert_int_equal(registry_add_machine(f->registry, &spec, &c, &err), 0);
        Session *s = session_hello(f, c, &in, "boot-1", "guest-c");
        ready_frame(&in, 1, "sd_notify", 1 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(c->state, MACHINE_BOOTING);
        ready_frame(&in, 2, "probe:tcp", 2 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(c->state, MACHINE_READY);
        assert_int_equal(c->current->ready.seq, 2);
        assert_int_equal(c->current->ready_signals, 2);
        end_session(s, CLOSE_EOF);
}

static void test_gaps(void **state) {
        Fixture *f = *state;
        Session *s = new_session(f, f->a);
        Bytes in = {};

        /* 3..5 missing, then a LogDropped names them: no seq_gap. */
        hello_frame(&in, "boot-1", "guest-a");
        log_frame(&in, 1, 1, "a\n", 1);
        log_frame(&in, 2, 1, "b\n", 2);
        log_frame(&in, 6, 1, "f\n", 6);
        log_dropped_frame(&in, 7, 3, 5);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->a->current->n_gaps, 0);
        assert_int_equal(f->a->current->logs_dropped, 3);
        assert_int_equal(f->stats.dropped_records[DROP_AGENT_BUFFER], 3);

        /* 9 missing and never explained: counted when the connection ends. */
        log_frame(&in, 8, 1, "h\n", 8);
        log_frame(&in, 10, 1, "j\n", 10);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->stats.seq_gaps, 0);
        end_session(s, CLOSE_EOF);
        assert_int_equal(f->stats.seq_gaps, 1);
        assert_int_equal(f->stats.seq_gap_records, 1);
        assert_int_equal(f->a->current->seq_gaps, 1);
        assert_int_equal(total_protocol_errors(&f->stats), 0);
}

static void test_clock_samples(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[16];

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        assert_int_equal(feed(s, &in), 0);
        (void) drain_out_queue(&s->out, out, 16);
        free_envelopes(out, 1);

        /* An answer to a probe never sent is ignored and counted. */
        clock_sample_frame(&in, 999, 1 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->stats.clock_samples_ignored, 1);
        assert_false(f->a->current->clock.valid);

        uint64_t mono = now_ns(CLOCK_MONOTONIC), real = now_ns(CLOCK_REALTIME);
        assert_int_equal(session_send_clock_probe(s, mono, real), 0);
        assert_int_equal(drain_out_queue(&s->out, out, 16), 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_CLOCK_PROBE);
        uint64_t id = out[0]->clock_probe->probe_id;
        free_envelopes(out, 1);

        clock_sample_frame(&in, id, 7 * UINT64_C(1000000000));
        assert_int_equal(feed(s, &in), 0);
        Boot *b = f->a->current;
        assert_true(b->clock.valid);
        assert_int_equal(f->stats.clock_samples, 1);
        /* host_realtime(send) + rtt/2 = 7 s + offset: mapping 7 s lands within the bound of the send time. */
        uint64_t mapped;
        assert_int_equal(clock_estimate_to_host(&b->clock, 7 * UINT64_C(1000000000), &mapped), 0);
        assert_true(mapped >= real && mapped <= real + 2 * b->clock.error_ns + 1);

        /* The same id again: ignored. */
        clock_sample_frame(&in, id, 8 * UINT64_C(1000000000));
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->stats.clock_samples_ignored, 2);
        end_session(s, CLOSE_EOF);
}

static void test_split_input(void **state) {
        Fixture *f = *state;
        Bytes in = {};

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        for (uint64_t seq = 1; seq <= 20; seq++)
                log_frame(&in, seq, 2, "some stderr output\n", seq);
        /* One byte at a time: the same result as one write. */
        for (size_t i = 0; i < in.len; i++)
                assert_int_equal(session_feed(s, in.data + i, 1), 0);
        bytes_free(&in);
        assert_int_equal(f->a->current->last_seq, 20);
        assert_int_equal(f->stats.log_records[2], 20);
        end_session(s, CLOSE_EOF);
}

static void test_new_boot_and_replacement(void **state) {
        Fixture *f = *state;
        Bytes in = {};

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        ready_frame(&in, 1, "exec", 1);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->a->state, MACHINE_READY);
        end_session(s, CLOSE_REPLACED);
        /* Replaced: not a disconnect. */
        assert_int_equal(f->a->state, MACHINE_READY);

        s = session_hello(f, f->a, &in, "boot-2", "guest-a");
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(f->a->n_boots, 2);
        assert_string_equal(f->a->current->boot_id, "boot-2");
        assert_int_equal(f->a->state, MACHINE_BOOTING);
        assert_int_equal(f->a->current->last_seq, 0);
        end_session(s, CLOSE_EOF);
}

static void test_log_eviction_still_acked(void **state) {
        Fixture *f = *state;
        f->registry->config.boot_limits.max_log_bytes = 1024;
        Session *s = new_session(f, f->a);
        Bytes in = {};
        char line[201];

        memset(line, 'x', 199);
        line[199] = '\n';
        line[200] = '\0';
        hello_frame(&in, "boot-1", "guest-a");
        for (uint64_t seq = 1; seq <= 20; seq++)
                log_frame(&in, seq, 1, line, seq);
        assert_int_equal(feed(s, &in), 0);

        Boot *b = f->a->current;
        assert_true(b->logs.cost <= 1024);
        assert_true(b->logs.evicted_records > 0);
        assert_int_equal(b->logs.evicted_records + b->logs.n_entries, 20);
        assert_int_equal(f->stats.dropped_records[DROP_EVICTED], b->logs.evicted_records);
        assert_int_equal(f->stats.dropped_bytes[DROP_EVICTED], b->logs.evicted_records * 200);
        /* The oldest went: what is left is the newest, in order. */
        assert_int_equal(tail_entry_at(b, b->logs.n_entries - 1).seq, 20);
        assert_int_equal(tail_entry_at(b, 0).seq, 20 - b->logs.n_entries + 1);
        assert_int_equal(session_flush_ack(s), 1);
        assert_int_equal(s->acked_seq, 20);
        end_session(s, CLOSE_EOF);
}

/* ---- agent instances: a restarted agent (seq 1 again, same boot id) must not lose its records ---- */

#define INSTANCE_A "instance-A-16byt"
#define INSTANCE_B "instance-B-16byt"

/* Sends Log records first..last, each line naming the instance and its wire seq. */
static void send_logs(Session *s, const char *who, uint64_t first, uint64_t last) {
        Bytes in = {};
        char line[64];

        for (uint64_t seq = first; seq <= last; seq++) {
                snprintf(line, sizeof(line), "%s %llu\n", who, (unsigned long long) seq);
                log_frame(&in, seq, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, line, seq * MS);
        }
        assert_int_equal(feed(s, &in), 0);
}

/* Connects as an agent instance; returns the session and the Welcome's acked_seq. */
static Session *connect_instance(const SessionContext *ctx, Machine *m, const char *instance, uint64_t *ret_acked) {
        Tether__Envelope *out[4];
        Bytes in = {};
        Session *s;

        assert_int_equal(session_new(ctx, m, &s), 0);
        hello_frame_instance(&in, "boot-1", "guest-a", instance);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(drain_out_queue(&s->out, out, 4), 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_WELCOME);
        *ret_acked = out[0]->welcome->acked_seq;
        free_envelopes(out, 1);
        return s;
}

/* Instance A stored 1..n and went away; instance `next` connects now (NULL: an agent without an instance id). */
static Session *after_instance_a(Fixture *f, uint64_t n, const char *next, uint64_t *ret_acked) {
        uint64_t acked;

        Session *s = connect_instance(&f->ctx, f->a, INSTANCE_A, &acked);
        send_logs(s, "A", 1, n);
        end_session(s, CLOSE_EOF);
        return connect_instance(&f->ctx, f->a, next, ret_acked);
}

/* The cumulative Ack the session sends now. */
static uint64_t ack_now(Session *s) {
        Tether__Envelope *out[4];

        assert_int_equal(session_flush_ack(s), 1);
        assert_int_equal(drain_out_queue(&s->out, out, 4), 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_ACK);
        uint64_t seq = out[0]->ack->seq;
        free_envelopes(out, 1);
        return seq;
}

/* From memory, or from the boot file when store is not NULL. */
static void assert_log_line(Store *store, Boot *b, uint64_t stored_seq, const char *line) {
        TestLogs l = test_logs_read(store, b, stored_seq - 1);
        assert_true(l.n > 0);
        const LogEntry *e = &l.v[0].e;
        assert_int_equal(e->seq, stored_seq);
        assert_int_equal(e->len, strlen(line));
        assert_memory_equal(e->data, line, e->len);
        test_logs_free(&l);
}

typedef struct StoredWorld {
        char dir[64];
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext ctx;
        Machine *m;
} StoredWorld;

/* A tetherd with a state directory: a new one (registering the machine), or one that loads what the previous
 * one left ("restart"). */
static void stored_world_open(StoredWorld *w, bool reload) {
        RegistryConfig c = {
                .node_id = "node-a",
                .max_machines = 4,
                .max_boots = 4,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        StoreConfig sc = { .dir = w->dir, .sync = false };
        MachineSpec spec = { .machine_id = "vm-s", .cid = 12 };
        const char *err;

        memset(&w->stats, 0, sizeof(w->stats));
        assert_int_equal(registry_new(&c, &w->stats, &w->registry), 0);
        assert_int_equal(store_open(&sc, &w->stats, &w->store), 0);
        if (reload) {
                StoreLoadReport report;
                assert_int_equal(store_load(w->store, w->registry, &report), 0);
                assert_int_equal(report.boots, 1);
                assert_non_null(w->m = registry_find(w->registry, "vm-s"));
        } else {
                assert_int_equal(registry_add_machine(w->registry, &spec, &w->m, &err), 0);
                test_save_machine(w->store, w->m);
        }
        session_context_init(&w->ctx, w->registry, w->store, &w->stats);
}

static void stored_world_close(StoredWorld *w) {
        w->store = store_free(w->store);
        w->registry = registry_free(w->registry);
}

static void test_restarted_agent_keeps_its_records(void **state) {
        StoredWorld w = {};
        uint64_t acked;
        Session *s;
        Boot *b;

        test_dir_make(w.dir, sizeof(w.dir), "instances");
        stored_world_open(&w, false);

        /* Instance A stores 1..100, then crashes. */
        s = connect_instance(&w.ctx, w.m, INSTANCE_A, &acked);
        assert_int_equal(acked, 0);
        send_logs(s, "A", 1, 100);
        assert_int_equal(ack_now(s), 100);
        end_session(s, CLOSE_EOF);

        /* Instance B, restarted on the same boot, starts again at seq 1: nothing it sends is a duplicate. */
        s = connect_instance(&w.ctx, w.m, INSTANCE_B, &acked);
        assert_int_equal(acked, 0);
        assert_int_equal(s->seq_offset, 100);
        send_logs(s, "B", 1, 50);
        assert_int_equal(ack_now(s), 50); /* acks speak B's own seq space */
        b = w.m->current;
        assert_int_equal(w.m->n_boots, 1);
        assert_int_equal(b->records, 150);
        assert_int_equal(b->last_seq, 150);
        assert_int_equal(b->logs.n_entries, 150);
        assert_int_equal(b->duplicates, 0);
        assert_int_equal(w.stats.records_duplicate, 0);
        assert_log_line(w.store, b, 100, "A 100\n");
        assert_log_line(w.store, b, 101, "B 1\n");
        assert_log_line(w.store, b, 150, "B 50\n");
        end_session(s, CLOSE_EOF);

        /* tetherd restarts: the instance table comes back from the boot file, so B keeps its offset. */
        stored_world_close(&w);
        stored_world_open(&w, true);
        b = w.m->current;
        assert_int_equal(b->records, 150);
        assert_int_equal(b->last_seq, 150);
        assert_int_equal(b->n_instances, 2);
        assert_log_line(w.store, b, 101, "B 1\n");

        s = connect_instance(&w.ctx, w.m, INSTANCE_B, &acked);
        assert_int_equal(acked, 50);
        send_logs(s, "B", 45, 52); /* 45..50 replayed (a lost ack), 51..52 new */
        assert_int_equal(b->duplicates, 6);
        assert_int_equal(b->records, 152);
        assert_log_line(w.store, b, 152, "B 52\n");
        assert_int_equal(ack_now(s), 52);
        end_session(s, CLOSE_EOF);

        /* A (say, its last gasp was queued in the socket) reconnects with its own id: offset 0, so its replay of
         * 90..100 is recognised as stored. */
        s = connect_instance(&w.ctx, w.m, INSTANCE_A, &acked);
        assert_int_equal(s->seq_offset, 0);
        assert_int_equal(acked, 152);
        send_logs(s, "A", 90, 100);
        assert_int_equal(b->duplicates, 6 + 11);
        assert_int_equal(b->records, 152);
        assert_log_line(w.store, b, 95, "A 95\n");
        end_session(s, CLOSE_EOF);

        /* And once more from disk: every record exactly once, at its stored seq. */
        stored_world_close(&w);
        stored_world_open(&w, true);
        b = w.m->current;
        assert_int_equal(b->records, 152);
        assert_int_equal(b->last_seq, 152);
        /* The file is the log store: nothing was loaded into memory, all of it reads back from the file. */
        assert_int_equal(b->logs.n_entries, 0);
        TestLogs all = test_logs_read(w.store, b, 0);
        assert_int_equal(all.n, 152);
        for (uint64_t seq = 1; seq <= 152; seq++)
                assert_int_equal(all.v[seq - 1].e.seq, seq);
        test_logs_free(&all);
        assert_log_line(w.store, b, 151, "B 51\n");
        assert_int_equal(total_protocol_errors(&w.stats), 0);
        stored_world_close(&w);

        test_dir_remove(w.dir);
}

static void test_restarted_agent_log_dropped_translated(void **state) {
        Fixture *f = *state;
        uint64_t acked;
        Bytes in = {};

        /* B lost 4..7 from its replay buffer before it got through: its LogDropped names them in its own seq
         * space, which is 14..17 in the boot's. */
        Session *s = after_instance_a(f, 10, INSTANCE_B, &acked);
        send_logs(s, "B", 1, 3);
        log_frame(&in, 8, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "B 8\n", 8 * MS);
        log_dropped_frame(&in, 9, 4, 7);
        assert_int_equal(feed(s, &in), 0);
        end_session(s, CLOSE_EOF);

        Boot *b = f->a->current;
        assert_int_equal(b->last_seq, 19);
        assert_int_equal(b->n_gaps, 0);
        assert_int_equal(b->seq_gaps, 0);
        assert_int_equal(f->stats.seq_gaps, 0);
        assert_int_equal(b->logs_dropped, 4);
        LogEntry d = tail_entry_at(b, b->logs.n_entries - 1);
        assert_int_equal(d.kind, LOG_ENTRY_DROPPED);
        assert_int_equal(d.seq, 19);
        assert_int_equal(d.dropped_first_seq, 14);
        assert_int_equal(d.dropped_last_seq, 17);
        assert_log_line(NULL, b, 18, "B 8\n");
}

static void test_agent_without_instance_behaves_as_before(void **state) {
        Fixture *f = *state;
        uint64_t acked;

        /* An agent older than agent_instance: offset 0, so 1..5 are taken as duplicates, as they always were. */
        Session *s = after_instance_a(f, 5, NULL, &acked);
        assert_int_equal(acked, 5);
        assert_int_equal(s->seq_offset, 0);
        send_logs(s, "old", 1, 6);
        assert_int_equal(f->a->current->duplicates, 5);
        assert_int_equal(f->a->current->last_seq, 6);
        assert_int_equal(f->a->current->n_instances, 1);
        end_session(s, CLOSE_EOF);
}

static void test_instance_seq_overflow(void **state) {
        Fixture *f = *state;
        uint64_t acked;
        Bytes in = {};

        /* B's seq space starts at 10: a seq that does not fit above that cannot be stored. */
        Session *s = after_instance_a(f, 10, INSTANCE_B, &acked);
        log_frame(&in, UINT64_MAX - 5, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "far\n", MS);
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(s->error, PROTOCOL_ERROR_INVALID_FIELD);
        assert_int_equal(f->a->current->last_seq, 10);
        end_session(s, CLOSE_PROTOCOL_ERROR);
}

/* An OOM kill is one oom_killed event, whether the agent saw the kernel's line (oom.kill milestone) before the
 * exit or only the exit says so. */
static void test_oom_killed_event_once(void **state) {
        Fixture *f = *state;
        Bytes in = {};

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        milestone_frame(&in, 1, "oom.kill", 1 * MS);
        exit_frame_oom(&in, 2, 137, 9, 2 * MS, true);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(test_count_events(f->registry, "oom_killed"), 1);
        assert_int_equal(f->a->state, MACHINE_CRASHED);
        end_session(s, CLOSE_EOF);

        s = session_hello(f, f->b, &in, "boot-2", "guest-b");
        exit_frame_oom(&in, 1, 137, 9, 2 * MS, true);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(test_count_events(f->registry, "oom_killed"), 2);
        end_session(s, CLOSE_EOF);
}

typedef struct StateSeen {
        MachineState state;
        size_t ready_events, exit_events; /* in the event log when the state changed */
} StateSeen;

static void on_state_seen(Registry *r, Machine *m, MachineState old, void *userdata) {
        StateSeen *seen = userdata;
        seen->state = m->state;
        seen->ready_events = test_count_events(r, "ready");
        seen->exit_events = test_count_events(r, "crashed") + test_count_events(r, "exited");
}

/* A Ready or an Exit answers first: its state is set (the API's observers answer the parked long-polls) before
 * its event is built and the records after it are processed; session_process() stops there, and the next call
 * does the rest in order. */
static void test_answer_before_record_work(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        StateSeen seen = {};
        RegistryObserver o = { .state_changed = on_state_seen, .userdata = &seen };

        assert_int_equal(registry_add_observer(f->registry, &o), 0);
        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        milestone_frame(&in, 1, "init.start", 1 * MS);
        assert_int_equal(feed(s, &in), 0);
        uint64_t stored = f->stats.records_stored;

        ready_frame(&in, 2, "notify", 2 * MS);
        log_frame(&in, 3, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "after ready\n", 3 * MS);
        assert_int_equal(frame_reader_feed(&s->reader, in.data, in.len), in.len);
        bytes_free(&in);

        assert_int_equal(session_process(s, UINT32_MAX), 1);
        assert_true(session_answered(s));
        assert_int_equal(f->a->state, MACHINE_READY);
        assert_int_equal(seen.state, MACHINE_READY);
        assert_int_equal(seen.ready_events, 0);
        assert_int_equal(test_count_events(f->registry, "ready"), 0);
        assert_int_equal(f->stats.records_stored, stored + 1); /* the Ready is stored; the log line waits */
        assert_true(s->ack_urgent);

        assert_int_equal(session_process(s, UINT32_MAX), 1);
        assert_false(session_answered(s));
        assert_int_equal(test_count_events(f->registry, "ready"), 1);
        assert_int_equal(f->stats.records_stored, stored + 2);
        assert_int_equal(f->a->current->last_seq, 3);

        /* An Exit the same way; the connection ending does the rest of its work. */
        exit_frame(&in, 4, 3, 0, 4 * MS);
        assert_int_equal(frame_reader_feed(&s->reader, in.data, in.len), in.len);
        bytes_free(&in);
        assert_int_equal(session_process(s, UINT32_MAX), 1);
        assert_true(session_answered(s));
        assert_int_equal(f->a->state, MACHINE_EXITED);
        assert_string_equal(f->a->state_reason, "exited with code 3");
        assert_int_equal(seen.exit_events, 0);
        end_session(s, CLOSE_EOF);
        assert_int_equal(test_count_events(f->registry, "exited"), 1);
        assert_int_equal(f->a->state, MACHINE_EXITED);

        /* A machine deleted while its Ready's work waits: that work goes with it, nothing else is touched. */
        s = session_hello(f, f->b, &in, "boot-2", "guest-b");
        ready_frame(&in, 1, "notify", 1 * MS);
        assert_int_equal(frame_reader_feed(&s->reader, in.data, in.len), in.len);
        bytes_free(&in);
        assert_int_equal(session_process(s, UINT32_MAX), 2);
        assert_true(session_answered(s));
        assert_int_equal(f->b->state, MACHINE_READY);
        end_session(s, CLOSE_DELETED);
        assert_int_equal(test_count_events(f->registry, "ready"), 1);
        registry_remove_observers(f->registry, &seen);
}

/* The time_unix_ns of the first event of this transition for machine id (0 if none). */
static uint64_t event_time(const Registry *r, const char *machine, const char *transition, const char *name) {
        for (size_t i = 0; i < r->events->n; i++) {
                json_t *o = json_loads(event_log_at(r->events, i)->json, 0, NULL);
                uint64_t t = 0;
                if (o && strcmp(json_string_value(json_object_get(o, "machine_id")) ?: "", machine) == 0 &&
                    strcmp(json_string_value(json_object_get(o, "transition")) ?: "", transition) == 0 &&
                    (!name || strcmp(json_string_value(json_object_get(o, "name")) ?: "", name) == 0))
                        t = (uint64_t) json_integer_value(json_object_get(o, "time_unix_ns"));
                json_decref(o);
                if (t)
                        return t;
        }
        return 0;
}

static uint64_t probe_id(Session *s) {
        Tether__Envelope *out[16];
        size_t n;
        uint64_t id = 0;

        assert_int_equal(session_send_clock_probe(s, now_ns(CLOCK_MONOTONIC), now_ns(CLOCK_REALTIME)), 0);
        n = drain_out_queue(&s->out, out, 16);
        for (size_t i = 0; i < n; i++)
                if (out[i]->msg_case == TETHER__ENVELOPE__MSG_CLOCK_PROBE)
                        id = out[i]->clock_probe->probe_id;
        free_envelopes(out, n);
        assert_true(id != 0);
        return id;
}

/* One clock mapping per boot: guest-timed events wait until it is fixed, then every view agrees with them, and
 * later probes never move it. */
static void test_clock_mapping_fixed_once(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[16];
        const uint64_t S = UINT64_C(1000000000);

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        milestone_frame(&in, 1, "init.start", 1 * S);
        phase_frame(&in, 2, "mount", 1 * S + 10 * MS, 1 * S + 20 * MS);
        milestone_frame(&in, 3, "workload.exec", 2 * S);
        assert_int_equal(feed(s, &in), 0);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));
        Boot *b = f->a->current;
        assert_false(b->clock_fixed);
        assert_int_equal(test_count_events(f->registry, "booting"), 0);
        assert_int_equal(test_count_events(f->registry, "milestone"), 0);
        assert_int_equal(test_count_events(f->registry, "phase"), 0);
        assert_int_equal(test_count_events(f->registry, "connected"), 1);

        /* A good probe answer fixes the mapping; what waited is emitted with it, in seq order. */
        clock_sample_frame(&in, probe_id(s), 3 * S);
        assert_int_equal(feed(s, &in), 0);
        assert_true(b->clock_fixed);
        assert_true(b->clock.valid);
        assert_int_equal(test_count_events(f->registry, "booting"), 1);
        assert_int_equal(test_count_events(f->registry, "milestone"), 2);
        assert_int_equal(test_count_events(f->registry, "phase"), 1);
        uint64_t init = event_time(f->registry, "vm-a", "milestone", "init.start");
        assert_int_equal(init, boot_to_unix_ns(b, 1 * S, 0));

        /* A later probe that would move the offset by 5 ms only measures drift. */
        ClockEstimate fixed = b->clock;
        clock_sample_frame(&in, probe_id(s), 3 * S + 500 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(b->clock.offset_ns, fixed.offset_ns);
        assert_int_equal(b->clock.error_ns, fixed.error_ns);
        int64_t drift;
        assert_true(boot_clock_drift_ns(b, &drift));
        assert_int_equal(boot_to_unix_ns(b, 1 * S, 0), init);

        /* The spans say what the events said, to the nanosecond. */
        StitchContext ctx = { .machine_id = "vm-a", .node_id = "node-a", .now_unix_ns = now_ns(CLOCK_REALTIME) };
        SpanSet *set;
        assert_int_equal(stitch_boot(&ctx, b, &set), 0);
        bool found = false;
        for (size_t i = 0; i < set->n_spans; i++)
                if (strcmp(set->spans[i].name, "init") == 0) {
                        assert_int_equal(set->spans[i].start_unix_ns, init);
                        assert_int_equal(
                                set->spans[i].end_unix_ns,
                                event_time(f->registry, "vm-a", "milestone", "workload.exec"));
                        found = true;
                }
        assert_true(found);
        span_set_free(set);
        end_session(s, CLOSE_EOF);

        /* A reconnect of the same boot: nothing waits any more, the mapping stays. */
        s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        milestone_frame(&in, 4, "app.up", 4 * S);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(test_count_events(f->registry, "milestone"), 3);
        assert_int_equal(b->clock.offset_ns, fixed.offset_ns);
        end_session(s, CLOSE_EOF);
}

/* A Ready before any probe answer is answered at once: it fixes the mapping with the Hello's. */
static void test_clock_fixed_by_ready_or_deadline(void **state) {
        Fixture *f = *state;
        Bytes in = {};

        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        milestone_frame(&in, 1, "init.start", 1 * MS);
        ready_frame(&in, 2, "notify", 2 * MS);
        assert_int_equal(feed(s, &in), 0);
        Boot *b = f->a->current;
        assert_true(b->clock_fixed);
        assert_false(b->clock.valid);
        assert_true(b->hello_offset_valid);
        assert_int_equal(test_count_events(f->registry, "booting"), 1);
        assert_int_equal(test_count_events(f->registry, "milestone"), 1);
        assert_int_equal(test_count_events(f->registry, "ready"), 1);
        assert_int_equal(event_time(f->registry, "vm-a", "ready", NULL), boot_to_unix_ns(b, 2 * MS, 0));
        end_session(s, CLOSE_EOF);

        /* No probe answered by the end of the burst: the deadline fixes it. */
        s = session_hello(f, f->b, &in, "boot-2", "guest-b");
        milestone_frame(&in, 1, "init.start", 1 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_false(f->b->current->clock_fixed);
        assert_int_equal(test_count_events(f->registry, "milestone"), 1);
        session_clock_deadline(s);
        assert_true(f->b->current->clock_fixed);
        assert_int_equal(test_count_events(f->registry, "milestone"), 2);
        end_session(s, CLOSE_EOF);

        /* A connection that ends before any of that: what waited is emitted at its end, not lost. */
        s = session_hello(f, f->a, &in, "boot-3", "guest-a");
        milestone_frame(&in, 1, "init.start", 1 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(test_count_events(f->registry, "milestone"), 2);
        end_session(s, CLOSE_EOF);
        assert_int_equal(test_count_events(f->registry, "milestone"), 3);
        assert_int_equal(test_count_events(f->registry, "booting"), 3);
}

/* tether-agent-systemd resumes the journal after the newest cursor tetherd stored: the Welcome says it, also to a
 * new agent instance of the boot (a restarted agent); a Log without a cursor leaves it. A bad priority is refused. */
static void test_journal_cursor_in_welcome(void **state) {
        Fixture *f = *state;
        Bytes in = {};
        Tether__Envelope *out[8];

        /* Version 1 only: a journal Log is refused. */
        Session *s = session_hello(f, f->a, &in, "boot-1", "guest-a");
        journal_frame(&in, 1, "a.service", 7, "s=1;i=1", "one\n");
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(f->stats.protocol_errors[PROTOCOL_ERROR_INVALID_FIELD], 1);
        assert_null(f->a->current->journal_cursor);
        end_session(s, CLOSE_PROTOCOL_ERROR);

        hello_journal_frame(&in, "boot-1", "guest-a", NULL);
        s = new_session(f, f->a);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_int_equal(out[0]->welcome->protocol_version, TETHER_PROTOCOL_VERSION_JOURNAL);
        assert_string_equal(out[0]->welcome->journal_cursor, "");
        free_envelopes(out, 1);
        journal_frame(&in, 1, "a.service", 7, "s=1;i=1", "one\n");
        journal_frame(&in, 2, "b.service", 4, "s=1;i=2", "two\n");
        log_frame(&in, 3, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "workload\n", 3 * MS);
        assert_int_equal(feed(s, &in), 0);
        assert_string_equal(f->a->current->journal_cursor, "s=1;i=2");
        end_session(s, CLOSE_EOF);

        hello_journal_frame(&in, "boot-1", "guest-a", "second-instance");
        s = new_session(f, f->a);
        assert_int_equal(feed(s, &in), 0);
        assert_int_equal(drain_out_queue(&s->out, out, 8), 1);
        assert_string_equal(out[0]->welcome->journal_cursor, "s=1;i=2");
        free_envelopes(out, 1);

        journal_frame(&in, 1, "c.service", 9, "s=1;i=3", "bad priority\n");
        assert_int_equal(feed(s, &in), -EPROTO);
        assert_int_equal(f->stats.protocol_errors[PROTOCOL_ERROR_INVALID_FIELD], 2);
        assert_string_equal(f->a->current->journal_cursor, "s=1;i=2");
        end_session(s, CLOSE_PROTOCOL_ERROR);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_hello_welcome, setup, teardown),
                cmocka_unit_test_setup_teardown(test_first_frame_must_be_hello, setup, teardown),
                cmocka_unit_test_setup_teardown(test_version_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resource_samples, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replay_is_deduplicated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seq_regression, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_frames_counted_per_reason, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guest_claims_do_not_change_identity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ready_acks_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_answer_before_record_work, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oom_killed_event_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ready_condition_source, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gaps, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clock_samples, setup, teardown),
                cmocka_unit_test_setup_teardown(test_split_input, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_boot_and_replacement, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_eviction_still_acked, setup, teardown),
                cmocka_unit_test(test_restarted_agent_keeps_its_records),
                cmocka_unit_test_setup_teardown(test_restarted_agent_log_dropped_translated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_agent_without_instance_behaves_as_before, setup, teardown),
                cmocka_unit_test_setup_teardown(test_instance_seq_overflow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clock_mapping_fixed_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clock_fixed_by_ready_or_deadline, setup, teardown),
                cmocka_unit_test_setup_teardown(test_journal_cursor_in_welcome, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
