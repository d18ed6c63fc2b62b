/* SPDX-License-Identifier: MIT */
/* Ack batching of an agent connection, on a real sd-event loop with the guest at the other end of a socketpair:
 * records arriving over several wakeups get one Ack, sent ACK_DELAY_NS after the first of them (not
 * pushed back by those that follow); a Ready or an Exit, or SESSION_ACK_BYTES of records, are acked at once; and
 * connection_flush() sends a due Ack without the loop. No state directory: an Ack needs no sync here, so when it
 * goes out is the connection's decision alone. */

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector-test.h"
#include "connection.h"
#include "macro.h"
#include "time-util.h"

#define MS UINT64_C(1000000)
#define ACK_DELAY_NS (2 * NSEC_PER_SEC)

typedef struct World {
        TestManager t; /* the registry, no state directory */
        sd_event *event;
        SessionContext ctx;
        Machine *machine;
        Connection *conn;
        int guest;            /* the agent's end of the socketpair */
        FrameReader received; /* what tetherd wrote to the agent */
        bool welcomed;
        bool closed;         /* by itself: none of these tests expects it */
        uint64_t acks[64];   /* Ack.seq, in order */
        uint64_t ack_ns[64]; /* CLOCK_MONOTONIC when the test read each Ack */
        size_t n_acks;
} World;

static void on_close(Connection *c, CloseReason reason, void *userdata) {
        World *w = userdata;
        w->closed = true;
        w->conn = connection_free(c, reason);
}

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        MachineSpec spec = { .machine_id = "vm-1", .cid = 42 };
        const char *err;
        int fds[2];

        assert_non_null(w);
        test_manager_init(&w->t, TEST_NO_STORE);
        assert_int_equal(sd_event_new(&w->event), 0);
        assert_int_equal(manager_register_machine(&w->t.manager, &spec, &w->machine, &err), 0);
        session_context_init(&w->ctx, w->t.registry, NULL, &w->t.stats);
        assert_int_equal(frame_reader_init(&w->received, 0), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        w->guest = fds[1];
        assert_int_equal(connection_new(w->event, fds[0], "test", &w->ctx, w->machine, on_close, w, &w->conn), 0);
        /* Long enough that "at once" and "after the delay" stay apart on a loaded machine (an ASan build on two
         * busy cores can stall for 100 ms, the real delay). */
        w->conn->ack_delay_ns = ACK_DELAY_NS;
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        connection_free(w->conn, CLOSE_SHUTDOWN);
        close(w->guest);
        frame_reader_done(&w->received);
        sd_event_unref(w->event);
        test_manager_done(&w->t);
        free(w);
        return 0;
}

static void guest_write(World *w, Bytes *b) {
        assert_int_equal(write(w->guest, b->data, b->len), (ssize_t) b->len);
        bytes_free(b);
}

/* Reads what tetherd wrote so far (without running the loop): Acks are noted with the time they were read. */
static void guest_read(World *w) {
        const uint8_t *p;
        size_t len;
        int r;

        while ((r = frame_reader_fill(&w->received, w->guest)) > 0)
                ;
        assert_int_equal(r, -EAGAIN);
        while (frame_reader_next(&w->received, &p, &len) == 1) {
                Tether__Envelope *e;
                assert_int_equal(envelope_unpack(p, len, &e), 0);
                if (e->msg_case == TETHER__ENVELOPE__MSG_WELCOME)
                        w->welcomed = true;
                else if (e->msg_case == TETHER__ENVELOPE__MSG_ACK) {
                        assert_true(w->n_acks < ELEMENTSOF(w->acks));
                        w->ack_ns[w->n_acks] = now_ns(CLOCK_MONOTONIC);
                        w->acks[w->n_acks++] = e->ack->seq;
                }
                envelope_free(e);
        }
}

/* Runs the loop (and reads the guest's end) until `until` holds or timeout_ns passed. Returns whether it holds. */
static bool run_until(World *w, bool (*until)(World *w, uint64_t arg), uint64_t arg, uint64_t timeout_ns) {
        uint64_t deadline = now_ns(CLOCK_MONOTONIC) + timeout_ns;

        for (;;) {
                guest_read(w);
                assert_false(w->closed);
                if (until && until(w, arg))
                        return true;
                if (now_ns(CLOCK_MONOTONIC) >= deadline)
                        return false;
                assert_true(sd_event_run(w->event, 1000 /* usec */) >= 0);
        }
}

static bool welcomed(World *w, uint64_t arg) {
        return w->welcomed;
}

static bool acks_at_least(World *w, uint64_t n) {
        return w->n_acks >= n;
}

static bool stored_up_to(World *w, uint64_t seq) {
        return w->machine->current && w->machine->current->last_seq >= seq;
}

static void hello(World *w) {
        Bytes in = {};
        hello_frame(&in, "boot-1", "guest");
        guest_write(w, &in);
        assert_true(run_until(w, welcomed, 0, 2 * NSEC_PER_SEC));
}

static void send_logs(World *w, uint64_t first, uint64_t last, size_t len) {
        char line[4096];
        Bytes in = {};

        assert_true(len < sizeof(line));
        memset(line, 'x', len);
        line[len] = '\0';
        for (uint64_t seq = first; seq <= last; seq++)
                log_frame(&in, seq, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, line, seq * MS);
        guest_write(w, &in);
}

/* Records in four writes, each stored in its own wakeup before the next is written: one Ack for all of them, after
 * the delay; none after it while nothing new arrives. */
static void test_acks_coalesced_after_delay(void **state) {
        World *w = *state;

        hello(w);
        uint64_t start = now_ns(CLOCK_MONOTONIC);
        for (uint64_t batch = 0; batch < 4; batch++) {
                send_logs(w, batch * 5 + 1, batch * 5 + 5, 10);
                assert_true(run_until(w, stored_up_to, batch * 5 + 5, 2 * NSEC_PER_SEC));
        }
        /* Else the loop stalled for the whole delay and an Ack between the batches would be right. */
        assert_true(now_ns(CLOCK_MONOTONIC) - start < ACK_DELAY_NS);
        assert_int_equal(w->n_acks, 0);

        assert_true(run_until(w, acks_at_least, 1, 2 * ACK_DELAY_NS));
        assert_int_equal(w->acks[0], 20);
        assert_true(w->ack_ns[0] - start >= ACK_DELAY_NS);

        assert_false(run_until(w, acks_at_least, 2, 2 * ACK_DELAY_NS));
        assert_int_equal(w->n_acks, 1);
}

/* A steady trickle of records does not push the Ack back: it goes out the delay after the first unacked one, while
 * the trickle goes on (at 20 ms a record, 200 records take 4 s). */
static void test_ack_delay_not_extended(void **state) {
        World *w = *state;
        uint64_t seq = 0;

        hello(w);
        uint64_t start = now_ns(CLOCK_MONOTONIC);
        while (w->n_acks == 0 && seq < 200) {
                seq++;
                send_logs(w, seq, seq, 10);
                (void) run_until(w, acks_at_least, 1, 20 * NSEC_PER_MSEC);
        }
        assert_int_equal(w->n_acks, 1);
        assert_true(seq < 200);
        assert_true(w->acks[0] >= 1 && w->acks[0] <= seq);
        assert_true(w->ack_ns[0] - start >= ACK_DELAY_NS);
}

/* A Ready, and an Exit, are acked at once, together with the records before them. */
static void test_ready_and_exit_acked_at_once(void **state) {
        World *w = *state;
        Bytes in = {};

        hello(w);
        uint64_t start = now_ns(CLOCK_MONOTONIC);
        log_frame(&in, 1, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "booting\n", 1 * MS);
        ready_frame(&in, 2, "notify", 2 * MS);
        guest_write(w, &in);
        assert_true(run_until(w, acks_at_least, 1, 2 * ACK_DELAY_NS));
        assert_int_equal(w->acks[0], 2);
        assert_true(w->ack_ns[0] - start < ACK_DELAY_NS);
        assert_int_equal(w->machine->state, MACHINE_READY);

        start = now_ns(CLOCK_MONOTONIC);
        exit_frame(&in, 3, 0, 0, 3 * MS);
        guest_write(w, &in);
        assert_true(run_until(w, acks_at_least, 2, 2 * NSEC_PER_SEC));
        assert_int_equal(w->acks[1], 3);
        assert_true(w->ack_ns[1] - start < ACK_DELAY_NS);
        assert_int_equal(w->machine->state, MACHINE_EXITED);
}

/* SESSION_ACK_BYTES of records are acked without waiting for the delay: an agent that blocks its workload on a
 * full buffer waits for nothing but the disk. */
static void test_ack_bytes_at_once(void **state) {
        World *w = *state;
        const uint64_t n = 40, len = 2000;

        assert_true(n * len > SESSION_ACK_BYTES);
        hello(w);
        uint64_t start = now_ns(CLOCK_MONOTONIC);
        send_logs(w, 1, n, len);
        assert_true(run_until(w, acks_at_least, 1, 2 * ACK_DELAY_NS));
        assert_true(w->ack_ns[0] - start < ACK_DELAY_NS);
        assert_true(w->acks[0] * len >= SESSION_ACK_BYTES - len);

        while (w->acks[w->n_acks - 1] < n)
                assert_true(run_until(w, acks_at_least, w->n_acks + 1, 2 * NSEC_PER_SEC));
        assert_int_equal(w->acks[w->n_acks - 1], n);
}

/* Shutdown: connection_flush() writes the due Ack at once, without the loop. */
static void test_flush_sends_due_ack(void **state) {
        World *w = *state;

        hello(w);
        send_logs(w, 1, 3, 10);
        assert_true(run_until(w, stored_up_to, 3, 2 * NSEC_PER_SEC));
        assert_int_equal(w->n_acks, 0);
        connection_flush(w->conn);
        guest_read(w);
        assert_int_equal(w->n_acks, 1);
        assert_int_equal(w->acks[0], 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_acks_coalesced_after_delay, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ack_delay_not_extended, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ready_and_exit_acked_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ack_bytes_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_flush_sends_due_ack, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
