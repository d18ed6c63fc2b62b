/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "flow.h"
#include "time-util.h"

#define KIB 1024u
#define MAX_BYTES (1024u * KIB)
#define RESERVE (33u * KIB)
#define STALL (5 * NSEC_PER_SEC)
#define T0 (100 * NSEC_PER_SEC) /* the agent's start */

static void init_block(Flow *f) {
        flow_init(f, true, MAX_BYTES, RESERVE, STALL, T0);
}

static void test_thresholds(void **state) {
        Flow f;

        /* Room for one read and an eighth of the bound for what is never held back; a pause ends after a quarter
         * of the threshold is free, or 256 KiB for large buffers. */
        init_block(&f);
        assert_int_equal(f.pause_bytes, MAX_BYTES - RESERVE - MAX_BYTES / 8);
        assert_int_equal(f.resume_bytes, f.pause_bytes - f.pause_bytes / 4);
        assert_int_equal(f.state, FLOW_READING);

        flow_init(&f, true, 64u * 1024u * KIB, RESERVE, STALL, T0);
        assert_int_equal(f.resume_bytes, f.pause_bytes - FLOW_RESUME_BYTES_MAX);

        /* The smallest buffer still leaves room to read. */
        flow_init(&f, true, 64 * KIB, RESERVE, STALL, T0);
        assert_true(f.pause_bytes > 0);
        assert_true(f.resume_bytes < f.pause_bytes);

        /* A reserve larger than the buffer: pause whenever anything is held, never underflow. */
        flow_init(&f, true, 16 * KIB, RESERVE, STALL, T0);
        assert_int_equal(f.pause_bytes, 0);
        assert_int_equal(f.resume_bytes, 0);
        assert_false(flow_paused(&f, 0, T0));
        assert_true(flow_paused(&f, 1, T0));
        assert_false(flow_paused(&f, 0, T0));
}

static void test_fill(void **state) {
        /* Connected: what was handed to the sender can be evicted without loss. */
        assert_int_equal(flow_fill(1000, 600, true), 400);
        assert_int_equal(flow_fill(1000, 0, true), 1000);
        assert_int_equal(flow_fill(1000, 1000, true), 0);
        /* Not connected: it may never have arrived, and is resent after the Welcome. */
        assert_int_equal(flow_fill(1000, 600, false), 1000);
        /* Never below zero. */
        assert_int_equal(flow_fill(100, 600, true), 0);
}

static void test_drop_policy_never_pauses(void **state) {
        Flow f;
        flow_init(&f, false, MAX_BYTES, RESERVE, STALL, T0);

        for (uint64_t t = T0; t < T0 + 3 * STALL; t += NSEC_PER_SEC)
                assert_false(flow_paused(&f, MAX_BYTES * 2, t));
        assert_int_equal(f.state, FLOW_READING);
        assert_int_equal(f.pauses, 0);
        assert_int_equal(f.stalls, 0);
        assert_int_equal(flow_next_deadline(&f), UINT64_MAX);
}

static void test_pause_hysteresis(void **state) {
        Flow f;
        init_block(&f);
        uint64_t t = T0 + NSEC_PER_SEC;

        /* Up to the threshold: read. */
        assert_false(flow_paused(&f, 0, t));
        assert_false(flow_paused(&f, f.pause_bytes, t));
        assert_int_equal(flow_next_deadline(&f), UINT64_MAX);

        /* Above it: pause, with the stall bound as the next deadline. */
        assert_true(flow_paused(&f, f.pause_bytes + 1, t));
        assert_int_equal(f.state, FLOW_PAUSED);
        assert_int_equal(f.pauses, 1);
        assert_int_equal(flow_next_deadline(&f), t + STALL);

        /* Acks free a little at a time: no flapping, the pause holds until the fill is down to resume_bytes. */
        flow_progress(&f, t + 100 * NSEC_PER_MSEC);
        assert_true(flow_paused(&f, f.pause_bytes, t + 100 * NSEC_PER_MSEC));
        assert_true(flow_paused(&f, f.pause_bytes - 1, t + 100 * NSEC_PER_MSEC));
        assert_true(flow_paused(&f, f.resume_bytes + 1, t + 200 * NSEC_PER_MSEC));
        assert_int_equal(f.pauses, 1);
        assert_false(flow_paused(&f, f.resume_bytes, t + 300 * NSEC_PER_MSEC));
        assert_int_equal(f.state, FLOW_READING);
        assert_int_equal(flow_next_deadline(&f), UINT64_MAX);

        /* Reading refills up to the threshold without pausing... */
        assert_false(flow_paused(&f, f.resume_bytes + 1, t + 300 * NSEC_PER_MSEC));
        assert_false(flow_paused(&f, f.pause_bytes, t + 300 * NSEC_PER_MSEC));
        /* ...and past it pauses again. */
        assert_true(flow_paused(&f, f.pause_bytes + 1, t + 400 * NSEC_PER_MSEC));
        assert_int_equal(f.pauses, 2);
        assert_int_equal(f.stalls, 0);
}

static void test_stall_fallback(void **state) {
        Flow f;
        init_block(&f);
        uint64_t full = MAX_BYTES, t = T0 + 10 * NSEC_PER_SEC;

        assert_true(flow_paused(&f, full, t));

        /* Progress moves the bound: stall_ns after the last progress, not after the pause began. */
        flow_progress(&f, t + 2 * NSEC_PER_SEC);
        assert_int_equal(flow_next_deadline(&f), t + 2 * NSEC_PER_SEC + STALL);
        assert_true(flow_paused(&f, full, t + STALL));
        assert_true(flow_paused(&f, full, t + 2 * NSEC_PER_SEC + STALL - 1));

        /* No progress for stall_ns: stop waiting and read, the buffer drops. */
        assert_false(flow_paused(&f, full, t + 2 * NSEC_PER_SEC + STALL));
        assert_int_equal(f.state, FLOW_STALLED);
        assert_int_equal(f.stalls, 1);
        assert_int_equal(flow_next_deadline(&f), UINT64_MAX);

        /* It stays that way, however full the buffer, until the host makes progress... */
        for (uint64_t u = t + 8 * NSEC_PER_SEC; u < t + 60 * NSEC_PER_SEC; u += NSEC_PER_SEC)
                assert_false(flow_paused(&f, full * 2, u));
        assert_int_equal(f.stalls, 1);

        /* ...even when the buffer empties meanwhile (sent records evicted): only progress ends a stall. */
        assert_false(flow_paused(&f, 0, t + 61 * NSEC_PER_SEC));
        assert_false(flow_paused(&f, full, t + 61 * NSEC_PER_SEC));
        assert_int_equal(f.state, FLOW_STALLED);

        /* An ack frees records: block again, with a full stall bound from now. */
        uint64_t back = t + 70 * NSEC_PER_SEC;
        flow_progress(&f, back);
        assert_int_equal(f.state, FLOW_READING);
        assert_true(flow_paused(&f, full, back + NSEC_PER_MSEC));
        assert_int_equal(flow_next_deadline(&f), back + NSEC_PER_MSEC + STALL);
        assert_true(flow_paused(&f, full, back + STALL));
        assert_false(flow_paused(&f, full, back + NSEC_PER_MSEC + STALL));
        assert_int_equal(f.stalls, 2);
        assert_int_equal(f.pauses, 2);
}

static void test_old_progress_does_not_shorten_a_pause(void **state) {
        Flow f;
        init_block(&f);

        /* The last ack was long ago (nothing to ack since): a new pause still gets the whole bound. */
        flow_progress(&f, T0 + NSEC_PER_SEC);
        uint64_t t = T0 + 600 * NSEC_PER_SEC;
        assert_true(flow_paused(&f, MAX_BYTES, t));
        assert_int_equal(flow_next_deadline(&f), t + STALL);
        assert_true(flow_paused(&f, MAX_BYTES, t + STALL - 1));
        assert_false(flow_paused(&f, MAX_BYTES, t + STALL));

        /* A stale progress time (older than the last one) does not move the last progress back. */
        flow_progress(&f, T0);
        assert_int_equal(f.progress_ns, T0 + NSEC_PER_SEC);
}

static void test_host_absent_at_start(void **state) {
        Flow f;
        init_block(&f);

        /* Before the first connection the host is absent, not stalled: output written right at the start waits
         * for it, for the stall bound at most. */
        assert_true(flow_paused(&f, MAX_BYTES, T0));
        assert_int_equal(flow_next_deadline(&f), T0 + STALL);
        assert_true(flow_paused(&f, MAX_BYTES, T0 + STALL - 1));
        assert_false(flow_paused(&f, MAX_BYTES, T0 + STALL));
        assert_int_equal(f.state, FLOW_STALLED);

        /* The host comes up: its Welcome re-arms blocking. */
        flow_welcome(&f, T0 + 6 * NSEC_PER_SEC);
        assert_int_equal(f.state, FLOW_READING);
        assert_true(flow_paused(&f, MAX_BYTES, T0 + 6 * NSEC_PER_SEC));
        assert_int_equal(flow_next_deadline(&f), T0 + 6 * NSEC_PER_SEC + STALL);
}

static void test_welcome_without_progress(void **state) {
        Flow f;
        init_block(&f);
        uint64_t t = T0 + NSEC_PER_SEC;

        /* A host that keeps reconnecting without ever freeing anything does not extend a pause. */
        assert_true(flow_paused(&f, MAX_BYTES, t));
        for (uint64_t k = 1; k < 5; k++) {
                flow_welcome(&f, t + k * NSEC_PER_SEC);
                assert_int_equal(flow_next_deadline(&f), t + STALL);
        }
        assert_false(flow_paused(&f, MAX_BYTES, t + STALL));
        assert_int_equal(f.state, FLOW_STALLED);
}

static void test_zero_stall_timeout(void **state) {
        Flow f;
        flow_init(&f, true, MAX_BYTES, RESERVE, 0, T0);

        /* 0 never waits: a full buffer drops at once, as with log_policy=drop. */
        assert_false(flow_paused(&f, MAX_BYTES, T0 + NSEC_PER_SEC));
        assert_int_equal(f.state, FLOW_STALLED);
        assert_int_equal(f.stalls, 1);
        assert_false(flow_paused(&f, 0, T0 + NSEC_PER_SEC));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_thresholds),
                cmocka_unit_test(test_fill),
                cmocka_unit_test(test_drop_policy_never_pauses),
                cmocka_unit_test(test_pause_hysteresis),
                cmocka_unit_test(test_stall_fallback),
                cmocka_unit_test(test_old_progress_does_not_shorten_a_pause),
                cmocka_unit_test(test_host_absent_at_start),
                cmocka_unit_test(test_welcome_without_progress),
                cmocka_unit_test(test_zero_stall_timeout),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
