/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "flow.h"
#include "frame.h"
#include "record.h"
#include "replay.h"

static Replay *new_replay(uint64_t bound) {
        Replay *r;
        assert_int_equal(replay_new(bound, &r), 0);
        return r;
}

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

/* The last record the sender would send now. */
static Tether__Envelope *last_envelope(Replay *r) {
        Tether__Envelope *e, *last = NULL;
        while ((e = next_envelope(r))) {
                envelope_free(last);
                last = e;
        }
        assert_non_null(last);
        return last;
}

static void test_append_sends_in_order(void **state) {
        Replay *r = new_replay(1 << 20);
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
        Replay *r = new_replay(1 << 20);
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
        Replay *r = new_replay(1 << 20);
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
        Replay *r = new_replay(1 << 20);
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
        bool is_log[512] = {};
        const size_t log_len = 100;
        Replay *r = new_replay(4096);

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
        bool is_log[512] = {};
        const size_t log_len = 200;
        Replay *r = new_replay(2048);

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

        /* The first logs were dropped after they were sent: not reported yet, the host may have them. A
         * reconnect whose Welcome says the host has nothing settles it: they are lost, and reported. */
        assert_true(st2.unsettled_records > 0);
        assert_int_equal(st2.unsettled_records, st2.sent_drops);
        replay_welcome(r, 0, NULL);
        replay_get_stats(r, &st2);
        assert_int_equal(st2.unsettled_records, 0);
        check_continuity(r, replay_last_seq(r), log_len, is_log);
        replay_free(r);
}

static void test_only_logs_are_ever_dropped(void **state) {
        Replay *r = new_replay(1024);

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
        Tether__Envelope *last = last_envelope(r);
        assert_int_equal(last->msg_case, TETHER__ENVELOPE__MSG_LOG_DROPPED);
        assert_int_equal(last->log_dropped->first_seq, seq);
        assert_int_equal(last->log_dropped->last_seq, seq);
        assert_int_equal(last->log_dropped->bytes, 100);
        assert_int_equal(last->seq, seq + 1);
        envelope_free(last);
        replay_free(r);
}

static void test_bound_holds_for_logs(void **state) {
        Replay *r = new_replay(64 * 1024);
        for (int i = 0; i < 2000; i++)
                append_log(r, 1000);
        ReplayStats st;
        replay_get_stats(r, &st);
        /* Logs keep the total within the bound plus at most one small LogDropped. */
        assert_true(st.bytes <= 64 * 1024 + 128);
        assert_true(st.dropped_records > 1900);
        replay_free(r);
}

/* A tetherd that stores records in order (a duplicate or a seq below its last is ignored) and remembers
 * what the LogDropped records it got say. */
#define MAX_SEQ 65536u

typedef struct FakeHost {
        uint64_t last; /* highest seq stored: what its Acks and Welcomes say */
        bool stored[MAX_SEQ];
        bool explained[MAX_SEQ];
        uint64_t dropped_records, dropped_bytes, notices;
} FakeHost;

/* What the agent appended: Log data bytes per seq (merged Logs add up in their record's seq). */
typedef struct Appended {
        bool is_log[MAX_SEQ];
        uint64_t bytes[MAX_SEQ];
} Appended;

static void host_store(FakeHost *h, const Tether__Envelope *e) {
        assert_true(e->seq < MAX_SEQ);
        if (e->seq <= h->last)
                return;
        h->last = e->seq;
        h->stored[e->seq] = true;
        if (e->msg_case != TETHER__ENVELOPE__MSG_LOG_DROPPED)
                return;
        const Tether__LogDropped *d = e->log_dropped;
        assert_true(d->records > 0);
        assert_true(d->first_seq <= d->last_seq);
        assert_true(d->last_seq < e->seq); /* explains only what came before it */
        h->dropped_records += d->records;
        h->dropped_bytes += d->bytes;
        h->notices++;
        for (uint64_t s = d->first_seq; s <= d->last_seq; s++)
                h->explained[s] = true;
}

/* The sender takes up to n records; the host stores the first `delivered` of them, the others are lost
 * with the connection. Returns how many were taken. */
static size_t transfer(Replay *r, FakeHost *h, size_t n, size_t delivered) {
        size_t i;
        for (i = 0; i < n; i++) {
                Tether__Envelope *e = next_envelope(r);
                if (!e)
                        break;
                if (i < delivered)
                        host_store(h, e);
                envelope_free(e);
        }
        return i;
}

static uint64_t put_log(Replay *r, Appended *a, const char *data, size_t len, uint64_t boottime) {
        Tether__Log l = TETHER__LOG__INIT;
        l.stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT;
        l.source = (char *) "workload";
        l.boottime_ns = boottime;
        l.data.data = (uint8_t *) data;
        l.data.len = len;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        uint64_t seq = 0;
        assert_int_equal(replay_append(r, &e, &seq), 0);
        assert_true(seq > 0 && seq < MAX_SEQ);
        a->is_log[seq] = true;
        a->bytes[seq] += len;
        return seq;
}

/* A record of len bytes that never merges (no newline at its end). */
static uint64_t put_blob(Replay *r, Appended *a, size_t len) {
        char data[1024];
        assert_true(len <= sizeof(data));
        memset(data, 'x', len);
        return put_log(r, a, data, len, 1);
}

/* A replay buffer of this bound and a fresh host: one per test (static, the host's tables are large). */
typedef struct HostWorld {
        Replay *r;
        FakeHost h;
        Appended a;
} HostWorld;

static HostWorld *host_world(uint64_t bound) {
        static HostWorld w;
        memset(&w, 0, sizeof(w));
        w.r = new_replay(bound);
        return &w;
}

/* Reconnects and delivers everything, then checks what the host has against what was appended: every seq it
 * lacks is a Log that a LogDropped names, and the LogDropped records add up to exactly what it lacks. */
static void host_finish_and_check(Replay *r, FakeHost *h, const Appended *a, bool exact) {
        replay_welcome(r, h->last, NULL);
        while (transfer(r, h, 64, 64) > 0)
                ;
        replay_ack(r, h->last, NULL);
        assert_true(replay_is_empty(r));

        uint64_t missing = 0, missing_bytes = 0;
        for (uint64_t s = 1; s <= replay_last_seq(r); s++) {
                if (h->stored[s])
                        continue;
                assert_true(a->is_log[s]); /* only logs ever go */
                assert_true(h->explained[s]);
                missing++;
                missing_bytes += a->bytes[s];
        }

        ReplayStats st;
        replay_get_stats(r, &st);
        assert_int_equal(st.unsettled_records, 0);
        assert_int_equal(st.dropped_records, h->dropped_records);
        assert_int_equal(st.dropped_bytes, h->dropped_bytes);
        assert_int_equal(st.drop_notices, h->notices);
        if (exact) {
                assert_int_equal(h->dropped_records, missing);
                assert_int_equal(h->dropped_bytes, missing_bytes);
        } else
                assert_true(h->dropped_records >= missing); /* never fewer than lost */
}

static void test_drop_before_send_is_reported_at_once(void **state) {
        HostWorld *w = host_world(2048);
        Replay *r = w->r;

        /* Nothing was ever sent: what goes is certainly lost, and the LogDropped says so right away. */
        for (int i = 0; i < 30; i++)
                put_blob(r, &w->a, 40 + (size_t) i * 7);
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_true(st.dropped_records > 0);
        assert_true(st.drop_notices >= 1);
        assert_int_equal(st.sent_drops, 0);
        assert_int_equal(st.unsettled_records, 0);

        /* Already in the buffer, before anything is sent or settled. */
        uint64_t notices = 0, records = 0;
        Tether__Envelope *e;
        while ((e = next_envelope(r))) {
                if (e->msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED) {
                        notices++;
                        records += e->log_dropped->records;
                }
                envelope_free(e);
        }
        assert_int_equal(notices, st.drop_notices);
        assert_int_equal(records, st.dropped_records);

        host_finish_and_check(r, &w->h, &w->a, true);
        replay_free(r);
}

/* Logs sent at once on a live connection, of which the host stores the first `delivered`, are dropped from the full
 * buffer before they are acked: "sent drops", which the host may or may not have. They are reported (LogDropped)
 * exactly when the host says it lacks them. */
typedef struct SentDropCase {
        uint64_t bound;
        int live; /* blobs appended and sent one by one, of base + (i * step) % mod bytes */
        size_t base, step, mod;
        int delivered;           /* the host stores the first `delivered` of them */
        int outage;              /* then the connection breaks unnoticed and this many more are appended */
        bool by_ack;             /* settled by an Ack of what the host has, else by a reconnect's Welcome */
        uint64_t min_sent_drops; /* more than this many are dropped after they were sent */
        int notices;             /* LogDropped records the host gets in the end; -1: not checked */
} SentDropCase;

static void check_sent_drops(const SentDropCase *k) {
        HostWorld *w = host_world(k->bound);
        Replay *r = w->r;
        ReplayStats st;

        for (int i = 0; i < k->live; i++) {
                put_blob(r, &w->a, k->base + (size_t) (i * k->step) % k->mod);
                transfer(r, &w->h, 64, i < k->delivered ? 64 : 0);
        }
        if (k->outage > 0) {
                /* The outage: the sent records go first (maybe delivered), then unsent ones (certainly lost). */
                replay_rewind(r);
                for (int i = 0; i < k->outage; i++)
                        put_blob(r, &w->a, 60 + (size_t) (i * 29) % 150);
        }
        replay_get_stats(r, &st);
        const uint64_t sent_drops = st.sent_drops, reported = st.dropped_records, reported_bytes = st.dropped_bytes;
        assert_true(sent_drops > k->min_sent_drops);
        assert_int_equal(st.unsettled_records, sent_drops);
        assert_int_equal(w->h.last, k->delivered);
        if (k->outage > 0)
                assert_true(reported > 0); /* unsent drops are certainly lost: reported at once */
        else {
                assert_int_equal(reported, 0);
                assert_int_equal(st.drop_notices, 0);
        }

        if (k->by_ack) {
                /* The Ack says the host has them all: nothing was lost, and no LogDropped says otherwise (nor does
                 * a later reconnect). */
                replay_ack(r, w->h.last, NULL);
                replay_get_stats(r, &st);
                assert_int_equal(st.unsettled_records, 0);
                assert_true(replay_is_empty(r));
        } else {
                /* The Welcome says what the host has: the sent drops above it never arrived, exactly those are
                 * reported. */
                if (k->outage == 0)
                        replay_rewind(r);
                replay_welcome(r, w->h.last, NULL);
                replay_get_stats(r, &st);
                assert_int_equal(st.unsettled_records, 0);
                assert_int_equal(st.dropped_records, reported + sent_drops - (uint64_t) k->delivered);
                uint64_t expected_bytes = reported_bytes;
                for (uint64_t s = (uint64_t) k->delivered + 1; s <= sent_drops; s++)
                        expected_bytes += w->a.bytes[s];
                assert_int_equal(st.dropped_bytes, expected_bytes);
                assert_int_equal(st.estimated_drops, 0);

                if (k->outage == 0) {
                        /* Nothing was appended after them: their LogDropped is the last record. */
                        Tether__Envelope *last = last_envelope(r);
                        assert_int_equal(last->msg_case, TETHER__ENVELOPE__MSG_LOG_DROPPED);
                        assert_int_equal(last->log_dropped->first_seq, k->delivered + 1);
                        assert_int_equal(last->log_dropped->last_seq, sent_drops);
                        envelope_free(last);
                }
        }

        host_finish_and_check(r, &w->h, &w->a, true);
        if (k->by_ack)
                assert_int_equal(w->h.last, k->delivered); /* nothing more, no LogDropped either */
        if (k->notices >= 0)
                assert_int_equal(w->h.notices, k->notices);
        replay_free(r);
}

static void test_sent_drops_settled(void **state) {
        /* The fields in SentDropCase's order: bound; live, base, step, mod; delivered, outage, by_ack; min_sent_drops,
         * notices. */
        static const SentDropCase cases[] = {
                /* Everything reaches the host, whose acks lag behind: the records it has not acked yet are dropped
                 * to make room. */
                { 2048, 40, 40, 37, 200, 40, 0, true, 20, 0 },
                /* The host stores the first 25, the connection breaks before the rest arrive; the cut falls among
                 * the dropped records. */
                { 2048, 40, 40, 37, 200, 25, 0, false, 25, 1 },
                /* The host stores the first 20, the connection breaks unnoticed, and an outage follows that drops
                 * sent and unsent records alike. */
                { 4096, 30, 60, 53, 150, 20, 60, false, 0, -1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                check_sent_drops(&cases[i]);
}

/* More sent-then-dropped records than ranges: the oldest are merged, and a cut inside the merged range still
 * gives the exact count of records above it (bytes are shared out by records: exact for equal sizes). */
static void test_many_sent_drops_merge(void **state) {
        HostWorld *w = host_world(8192);
        Replay *r = w->r;

        uint64_t cut = 0;
        for (int i = 0; i < 400; i++) {
                uint64_t seq;
                if (i % 25 == 0)
                        seq = append_milestone(r, "m"); /* kept records inside the dropped ranges */
                else
                        seq = put_blob(r, &w->a, 100);
                bool delivered = i < 240;
                if (delivered)
                        cut = seq;
                transfer(r, &w->h, 64, delivered ? 64 : 0);
        }
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_true(st.sent_drops > 2 * REPLAY_SENT_DROP_RANGES);
        assert_int_equal(st.dropped_records, 0);
        assert_int_equal(w->h.last, cut);

        replay_rewind(r);
        replay_welcome(r, cut, NULL);
        replay_get_stats(r, &st);
        assert_int_equal(st.estimated_drops, 1); /* the cut fell inside a merged range */
        assert_true(st.dropped_records > 0);
        host_finish_and_check(r, &w->h, &w->a, true);
        replay_free(r);
}

/* Batches of sent records dropped, each followed by unsent drops (reported at once): once every range is a batch
 * of its own, merging has to span unsent drops. A cut inside such a range can only bound the count from above:
 * the report may name a few records twice, never miss one. */
static void test_merged_ranges_over_unsent_drops(void **state) {
        HostWorld *w = host_world(32 * 1024);
        Replay *r = w->r;

        for (int batch = 0; batch < 100; batch++) {
                for (int i = 0; i < 60; i++)
                        put_blob(r, &w->a, 500);
                transfer(r, &w->h, 1000, batch < 20 ? 1000 : 0);
        }
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_true(st.sent_drops > 0);
        assert_true(st.dropped_records > 0);

        replay_rewind(r);
        replay_welcome(r, w->h.last, NULL);
        replay_get_stats(r, &st);
        assert_true(st.estimated_drops > 0);
        host_finish_and_check(r, &w->h, &w->a, false);
        replay_free(r);
}

static uint64_t xorshift(uint64_t *x) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

/* A random session against the fake host: appends (merging and not), sends, acks, connections that break
 * with records in flight, outages. */
static void random_session(uint64_t seed, unsigned ack_percent, bool expect_exact) {
        HostWorld *w = host_world(8192);
        Replay *r = w->r;

        uint64_t x = seed;
        bool connected = true;
        char data[600];
        for (unsigned step = 0; step < 20000 && replay_last_seq(r) < MAX_SEQ - 200; step++) {
                unsigned dice = (unsigned) (xorshift(&x) % 100);
                if (dice < 55) {
                        size_t len = 1 + xorshift(&x) % 500;
                        memset(data, 'a' + (int) (step % 26), len);
                        if (xorshift(&x) % 4 != 0)
                                data[len - 1] = '\n';
                        put_log(r, &w->a, data, len, (uint64_t) step * NSEC_PER_MSEC);
                } else if (dice < 58)
                        assert_int_equal(record_milestone(r, "m", 1, NULL), 0);
                else if (dice < 85) {
                        if (connected)
                                transfer(r, &w->h, xorshift(&x) % 6, 64);
                } else if (dice < 85 + ack_percent) {
                        if (connected)
                                replay_ack(r, w->h.last, NULL);
                } else if (dice < 99) {
                        continue;
                } else if (connected) {
                        /* The connection breaks: some records in flight never arrive. */
                        size_t n = xorshift(&x) % 8;
                        transfer(r, &w->h, n, xorshift(&x) % (n + 1));
                        replay_rewind(r);
                        connected = false;
                } else {
                        replay_welcome(r, w->h.last, NULL);
                        connected = true;
                }
        }

        ReplayStats st;
        replay_get_stats(r, &st);
        assert_true(st.sent_drops > 0);
        assert_true(st.dropped_records > 0);
        assert_true(st.merged_logs > 0);
        if (expect_exact)
                assert_int_equal(st.estimated_drops, 0);
        host_finish_and_check(r, &w->h, &w->a, st.estimated_drops == 0);
        replay_free(r);
}

static void test_random_sessions_report_exactly(void **state) {
        for (uint64_t seed = 1; seed <= 8; seed++)
                random_session(seed * 0x9E3779B97F4A7C15u, 10, true);
}

/* Rare acks: more sent-then-dropped records wait than there are ranges. Nothing lost goes unreported. */
static void test_random_sessions_with_rare_acks(void **state) {
        for (uint64_t seed = 1; seed <= 8; seed++)
                random_session(seed * 0xD1B54A32D192ED03u, 0, false);
}

static void test_cost_is_frame_plus_overhead(void **state) {
        Replay *r = new_replay(1 << 20);
        append_milestone(r, "init.start");
        append_log(r, 100);
        append_log(r, 1000);

        uint64_t frames = 0;
        const uint8_t *frame;
        size_t len;
        while (replay_next(r, &frame, &len, NULL) > 0)
                frames += len;
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_int_equal(st.records, 3);
        assert_int_equal(st.bytes, frames + 3 * REPLAY_ENTRY_OVERHEAD);
        replay_free(r);
}

static uint64_t put_line(Replay *r, Tether__LogStream stream, const char *source, const char *line, uint64_t t) {
        uint64_t seq = 0;
        Tether__Log l = TETHER__LOG__INIT;
        l.stream = stream;
        l.source = (char *) source;
        l.boottime_ns = t;
        l.data.data = (uint8_t *) line;
        l.data.len = strlen(line);
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        assert_int_equal(replay_append(r, &e, &seq), 0);
        return seq;
}

static void test_unsent_short_lines_merge(void **state) {
        Replay *r = new_replay(1 << 20);

        /* A disconnected agent and a shell printing short lines, one read() each. */
        static char expected[10000 * 16];
        size_t expected_len = 0;
        for (int i = 0; i < 10000; i++) {
                char line[32];
                int n = snprintf(line, sizeof(line), "line %d\n", i);
                put_line(r, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "workload", line, 1000 + (uint64_t) i);
                memcpy(expected + expected_len, line, (size_t) n);
                expected_len += (size_t) n;
        }
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_int_equal(st.dropped_records, 0);
        /* 10000 lines in a handful of full records instead of 10000. */
        assert_true(st.records <= expected_len / 16000 + 1);
        assert_int_equal(st.merged_logs + st.records, 10000);

        static char got[10000 * 16];
        size_t got_len = 0;
        Tether__Envelope *e;
        uint64_t prev = 0, lines = 0;
        while ((e = next_envelope(r))) {
                assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_LOG);
                assert_true(e->seq == prev + 1);
                prev = e->seq;
                assert_true(e->log->data.len <= 16384);
                assert_int_equal(e->log->data.data[e->log->data.len - 1], '\n'); /* complete lines only */
                assert_int_equal(e->log->boottime_ns, 1000 + lines);             /* its first line's time */
                for (size_t i = 0; i < e->log->data.len; i++)
                        lines += e->log->data.data[i] == '\n';
                memcpy(got + got_len, e->log->data.data, e->log->data.len);
                got_len += e->log->data.len;
                envelope_free(e);
        }
        assert_int_equal(got_len, expected_len);
        assert_memory_equal(got, expected, expected_len);
        replay_free(r);
}

static void test_sent_log_bytes(void **state) {
        Replay *r = new_replay(1 << 20);
        append_milestone(r, "init.start");
        append_log(r, 100);
        append_log(r, 200);
        append_log(r, 300);
        assert_int_equal(replay_sent_log_bytes(r), 0);
        ReplayStats st;
        replay_get_stats(r, &st);
        assert_int_equal(replay_bytes(r), st.bytes);

        /* What the sender took, Logs only. */
        const uint8_t *frame;
        size_t len[4];
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(replay_next(r, &frame, &len[i], NULL), 1);
        uint64_t cost1 = len[1] + REPLAY_ENTRY_OVERHEAD, cost2 = len[2] + REPLAY_ENTRY_OVERHEAD;
        assert_int_equal(replay_sent_log_bytes(r), cost1 + cost2);

        /* Sent again after a rewind (no Welcome): counted once. */
        replay_rewind(r);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(replay_next(r, &frame, &len[i], NULL), 1);
        uint64_t cost3 = len[3] + REPLAY_ENTRY_OVERHEAD;
        assert_int_equal(replay_sent_log_bytes(r), cost1 + cost2 + cost3);

        /* Acked records are gone. */
        assert_int_equal(replay_ack(r, 2, NULL), 2);
        assert_int_equal(replay_sent_log_bytes(r), cost2 + cost3);

        /* A Welcome: the host has nothing above its acked_seq, so nothing held counts as sent. */
        replay_welcome(r, 3, NULL);
        assert_int_equal(replay_sent_log_bytes(r), 0);
        assert_int_equal(replay_next(r, &frame, &len[0], NULL), 1);
        assert_int_equal(replay_sent_log_bytes(r), cost3);
        replay_free(r);
}

/* The flow control's promise: a Log appended only while flow_fill() leaves room for it never evicts one the host
 * does not have. Connected, the bound evicts Logs already sent (delivered: no LogDropped); disconnected, nothing. */
static void test_flow_fill_never_evicts_unsent(void **state) {
        const uint64_t bound = 16384, reserve = 1000 + REPLAY_ENTRY_OVERHEAD + 64;
        HostWorld *w = host_world(bound);
        Replay *r = w->r;

        uint64_t x = 42;
        bool connected = true;
        ReplayStats st;
        char data[1000];
        for (unsigned step = 0; step < 20000 && replay_last_seq(r) < MAX_SEQ - 200; step++) {
                uint64_t fill = flow_fill(replay_bytes(r), replay_sent_log_bytes(r), connected);
                if (fill + reserve <= bound) {
                        size_t len = 1 + xorshift(&x) % sizeof(data);
                        memset(data, 'a' + (int) (step % 26), len);
                        data[len - 1] = '\n';
                        put_log(r, &w->a, data, len, (uint64_t) step * NSEC_PER_MSEC);
                } else if (connected) {
                        /* A slow host: takes a few records, acks now and then. */
                        transfer(r, &w->h, 1 + xorshift(&x) % 3, 64);
                        if (xorshift(&x) % 10 == 0)
                                replay_ack(r, w->h.last, NULL);
                }
                if (step % 2000 == 1000) {
                        /* A clean disconnect (everything sent arrived), an outage that fills the buffer, a
                         * reconnect. */
                        replay_rewind(r);
                        connected = false;
                        replay_get_stats(r, &st);
                        uint64_t sent_drops = st.sent_drops;
                        for (int i = 0; i < 100; i++)
                                if (replay_bytes(r) + reserve <= bound)
                                        put_blob(r, &w->a, 1 + xorshift(&x) % 900);
                        replay_get_stats(r, &st);
                        assert_int_equal(st.sent_drops, sent_drops);
                        replay_welcome(r, w->h.last, NULL);
                        connected = true;
                }
        }

        replay_get_stats(r, &st);
        assert_int_equal(st.dropped_records, 0);
        assert_true(st.sent_drops > 100); /* the bound was reached, and took sent records only */
        host_finish_and_check(r, &w->h, &w->a, true);
        assert_int_equal(w->h.dropped_records, 0);
        for (uint64_t s = 1; s <= replay_last_seq(r); s++)
                assert_true(w->h.stored[s]);
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
                cmocka_unit_test(test_drop_before_send_is_reported_at_once),
                cmocka_unit_test(test_sent_drops_settled),
                cmocka_unit_test(test_many_sent_drops_merge),
                cmocka_unit_test(test_merged_ranges_over_unsent_drops),
                cmocka_unit_test(test_random_sessions_report_exactly),
                cmocka_unit_test(test_random_sessions_with_rare_acks),
                cmocka_unit_test(test_cost_is_frame_plus_overhead),
                cmocka_unit_test(test_unsent_short_lines_merge),
                cmocka_unit_test(test_sent_log_bytes),
                cmocka_unit_test(test_flow_fill_never_evicts_unsent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
