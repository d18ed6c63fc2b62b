/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "record.h"
#include "replay.h"

static uint64_t append_milestone(Replay *r, const char *name) {
        uint64_t before = replay_last_seq(r);
        assert_int_equal(record_milestone(r, name, 1, NULL), 0);
        assert_int_equal(replay_last_seq(r), before + 1);
        return replay_last_seq(r);
}

static uint64_t append_log(Replay *r, size_t len) {
        char data[2048];
        assert_true(len <= sizeof(data));
        memset(data, 'x', len);
        uint64_t seq = replay_last_seq(r) + 1; /* the log's own seq; a LogDropped may follow it */
        assert_int_equal(record_log(r, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "workload", 1, data, len), 0);
        return seq;
}

/* Decodes the next frame the sender would get; NULL when there is none. */
static Tether__Envelope *next_envelope(Replay *r) {
        const uint8_t *frame;
        size_t len;
        uint64_t seq;
        if (replay_next(r, &frame, &len, &seq) == 0)
                return NULL;
        assert_true(len > TETHER_FRAME_HEADER_SIZE);
        assert_int_equal(frame_header_get(frame), len - TETHER_FRAME_HEADER_SIZE);
        Tether__Envelope *e;
        assert_int_equal(envelope_unpack(frame + TETHER_FRAME_HEADER_SIZE, len - TETHER_FRAME_HEADER_SIZE, &e), 0);
        assert_int_equal(e->seq, seq);
        EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        assert_int_equal(envelope_validate(e, &limits), PROTOCOL_ERROR_NONE);
        return e;
}

static void test_append_sends_in_order(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);
        assert_true(replay_is_empty(r));
        assert_int_equal(replay_first_seq(r), 1);
        assert_int_equal(replay_last_seq(r), 0);

        const char *names[] = { "kernel.start", "init.start", "mounts.done", "workload.exec" };
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(append_milestone(r, names[i]), i + 1);

        for (size_t i = 0; i < 4; i++) {
                Tether__Envelope *e = next_envelope(r);
                assert_non_null(e);
                assert_int_equal(e->seq, i + 1);
                assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_MILESTONE);
                assert_string_equal(e->milestone->name, names[i]);
                envelope_free(e);
        }
        assert_null(next_envelope(r));
        assert_false(replay_has_unsent(r));

        /* Sent is not acked: everything is still held. */
        assert_false(replay_is_empty(r));
        assert_int_equal(replay_first_seq(r), 1);
        replay_free(r);
}

static void test_ack_frees_and_rewind_resends_unacked(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);
        for (int i = 0; i < 5; i++)
                append_milestone(r, "m");

        for (int i = 0; i < 5; i++)
                envelope_free(next_envelope(r));

        bool clamped = true;
        assert_int_equal(replay_ack(r, 3, &clamped), 3);
        assert_false(clamped);
        assert_int_equal(replay_first_seq(r), 4);
        assert_int_equal(replay_acked_seq(r), 3);

        /* A reconnect: the rest goes again, in order, starting after the acked one. */
        replay_rewind(r);
        Tether__Envelope *e = next_envelope(r);
        assert_int_equal(e->seq, 4);
        envelope_free(e);
        e = next_envelope(r);
        assert_int_equal(e->seq, 5);
        envelope_free(e);
        assert_null(next_envelope(r));

        /* Old acks change nothing; new records continue the sequence. */
        assert_int_equal(replay_ack(r, 2, NULL), 0);
        assert_int_equal(append_milestone(r, "later"), 6);
        e = next_envelope(r);
        assert_int_equal(e->seq, 6);
        envelope_free(e);

        assert_int_equal(replay_ack(r, 6, NULL), 3);
        assert_true(replay_is_empty(r));
        assert_int_equal(replay_first_seq(r), 7);
        replay_free(r);
}

static void test_ack_beyond_last_is_clamped(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);
        append_milestone(r, "a");
        append_milestone(r, "b");

        bool clamped = false;
        assert_int_equal(replay_ack(r, 1000, &clamped), 2);
        assert_true(clamped);
        assert_int_equal(replay_acked_seq(r), 2);

        /* The bogus ack must not swallow records appended later. */
        append_milestone(r, "c");
        assert_false(replay_is_empty(r));
        assert_int_equal(replay_first_seq(r), 3);
        replay_free(r);
}

static void test_non_record_refused(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);
        Tether__Heartbeat hb = TETHER__HEARTBEAT__INIT;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_HEARTBEAT;
        e.heartbeat = &hb;
        assert_int_equal(replay_append(r, &e, NULL), -EINVAL);
        assert_int_equal(replay_last_seq(r), 0);
        replay_free(r);
}

/* Walks everything held; checks the sequence has no gap a LogDropped does not explain, and that the
 * LogDropped records add up to exactly the logs that are gone. */
static void check_continuity(Replay *r, uint64_t n_appended, uint64_t log_len, const bool *is_log) {
        bool held[512] = {};
        uint64_t dropped_records = 0, dropped_bytes = 0;
        bool explained[512] = {};

        assert_true(n_appended < ELEMENTSOF(held));
        replay_rewind(r);
        Tether__Envelope *e;
        uint64_t prev = 0;
        while ((e = next_envelope(r))) {
                assert_true(e->seq > prev); /* strictly increasing, as tetherd requires per connection */
                prev = e->seq;
                held[e->seq] = true;
                if (e->msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED) {
                        Tether__LogDropped *d = e->log_dropped;
                        assert_true(d->first_seq <= d->last_seq);
                        assert_true(d->last_seq < e->seq); /* explains only what came before it */
                        dropped_records += d->records;
                        dropped_bytes += d->bytes;
                        for (uint64_t s = d->first_seq; s <= d->last_seq; s++)
                                explained[s] = true;
                }
                envelope_free(e);
        }

        uint64_t missing = 0;
        for (uint64_t s = 1; s <= replay_last_seq(r); s++) {
                if (held[s])
                        continue;
                missing++;
                assert_true(explained[s]);
                assert_true(s <= n_appended && is_log[s]); /* only logs ever go */
        }
        assert_int_equal(missing, dropped_records);
        assert_int_equal(dropped_bytes, dropped_records * log_len);
}

static void test_overflow_drops_oldest_logs_exactly(void **state) {
        Replay *r;
        bool is_log[512] = {};
        const size_t log_len = 100;
        assert_int_equal(replay_new(4096, &r), 0);

        append_milestone(r, "init.start");
        for (int i = 0; i < 30; i++)
                is_log[append_log(r, log_len)] = true;
        append_milestone(r, "ready");

        ReplayStats st;
        replay_get_stats(r, &st);
        assert_true(st.dropped_records > 0);
        assert_int_equal(st.dropped_bytes, st.dropped_records * log_len);
        assert_int_equal(st.drop_notices, 1); /* nothing was sent: one LogDropped absorbed every drop */

        /* The milestones survive, and the oldest logs are the ones gone. */
        replay_rewind(r);
        Tether__Envelope *e = next_envelope(r);
        assert_int_equal(e->seq, 1);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_MILESTONE);
        envelope_free(e);
        e = next_envelope(r);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_LOG);
        assert_int_equal(e->seq, 2 + st.dropped_records);
        envelope_free(e);

        bool found_ready = false;
        while ((e = next_envelope(r))) {
                if (e->msg_case == TETHER__ENVELOPE__MSG_MILESTONE && strcmp(e->milestone->name, "ready") == 0)
                        found_ready = true;
                if (e->msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED) {
                        assert_int_equal(e->log_dropped->records, st.dropped_records);
                        assert_int_equal(e->log_dropped->first_seq, 2);
                        assert_int_equal(e->log_dropped->last_seq, 1 + st.dropped_records);
                }
                envelope_free(e);
        }
        assert_true(found_ready);

        check_continuity(r, 32, log_len, is_log);
        replay_free(r);
}

static void test_sent_log_dropped_is_not_modified(void **state) {
        Replay *r;
        bool is_log[512] = {};
        const size_t log_len = 200;
        assert_int_equal(replay_new(2048, &r), 0);

        for (int i = 0; i < 20; i++)
                is_log[append_log(r, log_len)] = true;
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_true(st.drop_notices >= 1);
        /* Far fewer notices than drops: pending ones absorb later drops of older records. */
        assert_true(st.drop_notices < st.dropped_records);

        /* The sender takes everything, including the LogDropped records: they are frozen now. */
        uint64_t notice_seq[64], notice_records[64];
        size_t n_notices = 0;
        Tether__Envelope *e;
        while ((e = next_envelope(r))) {
                if (e->msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED) {
                        notice_seq[n_notices] = e->seq;
                        notice_records[n_notices++] = e->log_dropped->records;
                }
                envelope_free(e);
        }
        assert_int_equal(n_notices, st.drop_notices);

        for (int i = 0; i < 20; i++)
                is_log[append_log(r, log_len)] = true;
        ReplayStats st2;
        replay_get_stats(r, &st2);
        assert_true(st2.drop_notices > st.drop_notices);
        assert_true(st2.dropped_records > st.dropped_records);

        /* The sent notices still say what they said when they were sent. */
        replay_rewind(r);
        size_t seen = 0;
        while ((e = next_envelope(r))) {
                for (size_t i = 0; i < n_notices; i++)
                        if (e->seq == notice_seq[i]) {
                                assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_LOG_DROPPED);
                                assert_int_equal(e->log_dropped->records, notice_records[i]);
                                seen++;
                        }
                envelope_free(e);
        }
        assert_int_equal(seen, n_notices);
        check_continuity(r, replay_last_seq(r), log_len, is_log);
        replay_free(r);
}

static void test_only_logs_are_ever_dropped(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1024, &r), 0);

        for (int i = 0; i < 100; i++)
                append_milestone(r, "a-milestone-that-is-never-dropped");

        ReplayStats st;
        replay_get_stats(r, &st);
        assert_int_equal(st.records, 100);
        assert_int_equal(st.dropped_records, 0);
        assert_true(st.bytes > 1024); /* over the bound, by design: these are never lost */

        /* A log that cannot fit goes itself, and says so. */
        uint64_t seq = append_log(r, 100);
        replay_get_stats(r, &st);
        assert_int_equal(st.dropped_records, 1);
        replay_rewind(r);
        Tether__Envelope *e, *last = NULL;
        while ((e = next_envelope(r))) {
                envelope_free(last);
                last = e;
        }
        assert_int_equal(last->msg_case, TETHER__ENVELOPE__MSG_LOG_DROPPED);
        assert_int_equal(last->log_dropped->first_seq, seq);
        assert_int_equal(last->log_dropped->last_seq, seq);
        assert_int_equal(last->log_dropped->bytes, 100);
        assert_int_equal(last->seq, seq + 1);
        envelope_free(last);
        replay_free(r);
}

static void test_bound_holds_for_logs(void **state) {
        Replay *r;
        assert_int_equal(replay_new(64 * 1024, &r), 0);
        for (int i = 0; i < 2000; i++)
                append_log(r, 1000);
        ReplayStats st;
        replay_get_stats(r, &st);
        /* Logs keep the total within the bound plus at most one small LogDropped. */
        assert_true(st.bytes <= 64 * 1024 + 128);
        assert_true(st.dropped_records > 1900);
        replay_free(r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_sends_in_order),
                cmocka_unit_test(test_ack_frees_and_rewind_resends_unacked),
                cmocka_unit_test(test_ack_beyond_last_is_clamped),
                cmocka_unit_test(test_non_record_refused),
                cmocka_unit_test(test_overflow_drops_oldest_logs_exactly),
                cmocka_unit_test(test_sent_log_dropped_is_not_modified),
                cmocka_unit_test(test_only_logs_are_ever_dropped),
                cmocka_unit_test(test_bound_holds_for_logs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
