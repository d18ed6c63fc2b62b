/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "record.h"
#include "replay.h"
#include "utf8.h"

/* Every record the agent builds must pass tetherd's validation with the default limits. */
static Tether__Envelope *next_valid(Replay *r) {
        const uint8_t *frame;
        size_t len;
        if (replay_next(r, &frame, &len, NULL) == 0)
                return NULL;
        Tether__Envelope *e;
        assert_int_equal(envelope_unpack(frame + TETHER_FRAME_HEADER_SIZE, len - TETHER_FRAME_HEADER_SIZE, &e), 0);
        EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        assert_int_equal(envelope_validate(e, &limits), PROTOCOL_ERROR_NONE);
        return e;
}

static void test_milestone_sanitized(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);

        char *long_value = malloc(3000);
        assert_non_null(long_value);
        memset(long_value, 'v', 2999);
        long_value[2999] = '\0';

        const char *attrs[2 * 40 + 1];
        char keys[40][8];
        for (int i = 0; i < 40; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%d", i);
                attrs[2 * i] = keys[i];
                attrs[2 * i + 1] = i == 0 ? long_value : "bad\xff";
        }
        attrs[80] = NULL;
        assert_int_equal(record_milestone(r, "name\xc3", 42, attrs), 0);

        Tether__Envelope *e = next_valid(r);
        assert_non_null(e);
        assert_string_equal(e->milestone->name, "name\xef\xbf\xbd");
        assert_int_equal(e->milestone->boottime_ns, 42);
        assert_int_equal(e->milestone->n_attributes, RECORD_MAX_ATTRS);
        assert_int_equal(strlen(e->milestone->attributes[0]->value), RECORD_MAX_STRING);
        assert_string_equal(e->milestone->attributes[1]->value, "bad\xef\xbf\xbd");
        envelope_free(e);
        free(long_value);

        assert_true(record_milestone(r, "", 1, NULL) < 0); /* names must not be empty */
        replay_free(r);
}

static void test_log_split(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);

        size_t len = 2 * RECORD_MAX_LOG_DATA + 100;
        char *data = malloc(len);
        assert_non_null(data);
        for (size_t i = 0; i < len; i++)
                data[i] = (char) (i % 251); /* bytes, not text: passed through untouched */
        assert_int_equal(record_log(r, TETHER__LOG_STREAM__LOG_STREAM_STDERR, "workload", 7, data, len), 0);

        size_t off = 0;
        Tether__Envelope *e;
        int n = 0;
        while ((e = next_valid(r))) {
                assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_LOG);
                assert_int_equal(e->log->stream, TETHER__LOG_STREAM__LOG_STREAM_STDERR);
                assert_true(e->log->data.len <= RECORD_MAX_LOG_DATA);
                assert_memory_equal(e->log->data.data, data + off, e->log->data.len);
                off += e->log->data.len;
                n++;
                envelope_free(e);
        }
        assert_int_equal(off, len);
        assert_int_equal(n, 3);
        free(data);
        replay_free(r);
}

static void test_ready_and_exit(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);

        assert_int_equal(record_ready(r, "sd_notify", NULL, 5), 0);
        assert_int_equal(record_exit(r, 137, 9, true, 6, "killed by the OOM killer"), 0);

        Tether__Envelope *e = next_valid(r);
        assert_string_equal(e->ready->source, "sd_notify");
        assert_string_equal(e->ready->detail, "");
        envelope_free(e);
        e = next_valid(r);
        assert_int_equal(e->exit->code, 137);
        assert_int_equal(e->exit->signal, 9);
        assert_true(e->exit->oom_killed);
        assert_string_equal(e->exit->reason, "killed by the OOM killer");
        envelope_free(e);
        replay_free(r);
}

/* Journal entries keep their priority and cursor, one record each (never merged, also with the same source), and
 * a plain Log after them still merges as before. Phases: status, bounds. */
static void test_journal_and_phase(void **state) {
        Replay *r;
        assert_int_equal(replay_new(1 << 20, &r), 0);

        assert_int_equal(record_journal(r, "nginx.service", 10, 4, "s=1;i=a", "one\n", 4), 0);
        assert_int_equal(record_journal(r, "nginx.service", 11, 7, "s=1;i=b", "two\n", 4), 0);
        assert_int_equal(record_journal(r, "nginx.service", 12, 99, "s=1;i=c", "three\n", 6), 0);
        assert_int_equal(record_log(r, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "workload", 20, "a\n", 2), 0);
        assert_int_equal(record_log(r, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "workload", 21, "b\n", 2), 0);
        assert_int_equal(
                record_phase(
                        r,
                        "unit:x.service",
                        100,
                        200,
                        true,
                        "x.service failed (failed)",
                        (const char *const[]) { "unit", "x.service", NULL }),
                0);
        assert_int_equal(record_phase(r, "p", 200, 100, false, NULL, NULL), -EINVAL);
        assert_int_equal(record_phase(r, "", 1, 2, false, NULL, NULL), -EINVAL);

        const char *cursors[] = { "s=1;i=a", "s=1;i=b", "s=1;i=c" };
        unsigned priorities[] = { 4, 7, 0 };
        for (int i = 0; i < 3; i++) {
                Tether__Envelope *e = next_valid(r);
                assert_non_null(e);
                assert_int_equal(e->log->stream, TETHER__LOG_STREAM__LOG_STREAM_JOURNAL);
                assert_string_equal(e->log->source, "nginx.service");
                assert_string_equal(e->log->cursor, cursors[i]);
                assert_int_equal(e->log->priority, priorities[i]);
                envelope_free(e);
        }
        Tether__Envelope *e = next_valid(r);
        assert_int_equal(e->log->data.len, 4); /* the two plain lines merged */
        assert_memory_equal(e->log->data.data, "a\nb\n", 4);
        envelope_free(e);
        e = next_valid(r);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_PHASE);
        assert_int_equal(e->phase->status, TETHER__PHASE_STATUS__PHASE_STATUS_ERROR);
        assert_int_equal(e->phase->end_boottime_ns - e->phase->start_boottime_ns, 100);
        assert_string_equal(e->phase->message, "x.service failed (failed)");
        assert_string_equal(e->phase->attributes[0]->value, "x.service");
        envelope_free(e);
        assert_null(next_valid(r));
        replay_free(r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_milestone_sanitized),
                cmocka_unit_test(test_log_split),
                cmocka_unit_test(test_ready_and_exit),
                cmocka_unit_test(test_journal_and_phase),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
