/* SPDX-License-Identifier: MIT */
/* The boot model: ready conditions, per-boot bounds on milestones and log bytes, gap bookkeeping with
 * LogDropped, and log ring lookup. */

#include <errno.h>
#include <string.h>

#include "boot.h"
#include "collector-test.h"

static BootApplyResult apply_one(Boot *b, const ReadyCondition *cond, Bytes *frame) {
        FrameReader r;
        const uint8_t *p;
        size_t len;
        Tether__Envelope *e;
        BootApplyResult res = {};

        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, frame->data, frame->len);
        assert_int_equal(frame_reader_next(&r, &p, &len), 1);
        assert_int_equal(envelope_unpack(p, len, &e), 0);
        assert_int_equal(boot_apply_record(b, cond, e, 1000, &res), 0);
        envelope_free(e);
        frame_reader_done(&r);
        bytes_free(frame);
        return res;
}

static void test_ready_conditions(void **state) {
        ReadyCondition c;

        assert_int_equal(ready_condition_parse(NULL, &c), 0);
        assert_int_equal(c.type, READY_CONDITION_ANY);
        assert_int_equal(ready_condition_parse("source:sd_notify", &c), 0);
        assert_int_equal(c.type, READY_CONDITION_SOURCE);
        assert_string_equal(c.arg, "sd_notify");
        char *s = ready_condition_to_string(&c);
        assert_string_equal(s, "source:sd_notify");
        free(s);
        ready_condition_done(&c);
        assert_int_equal(ready_condition_parse("source:", &c), -EINVAL);
        assert_int_equal(ready_condition_parse("sometime", &c), -EINVAL);

        Boot *b;
        Bytes f = {};
        assert_int_equal(ready_condition_parse("milestone:app.up", &c), 0);
        assert_int_equal(boot_new(1, "b", NULL, NULL, &b), 0);
        ready_frame(&f, 1, "sd_notify", 10);
        assert_false(apply_one(b, &c, &f).became_ready);
        milestone_frame(&f, 2, "app.up", 20);
        assert_true(apply_one(b, &c, &f).became_ready);
        assert_string_equal(b->ready.source, "milestone:app.up");
        assert_int_equal(b->ready.boottime_ns, 20);
        /* Only the first time. */
        milestone_frame(&f, 3, "app.up", 30);
        assert_false(apply_one(b, &c, &f).became_ready);
        assert_int_equal(b->ready.seq, 2);
        ready_condition_done(&c);
        boot_free(b);
}

static void test_milestone_bound_keeps_readiness(void **state) {
        BootLimits limits = BOOT_LIMITS_DEFAULT;
        ReadyCondition c;
        Boot *b;
        Bytes f = {};

        limits.max_milestones = 3;
        assert_int_equal(ready_condition_parse("milestone:late", &c), 0);
        assert_int_equal(boot_new(1, "b", NULL, &limits, &b), 0);
        for (uint64_t seq = 1; seq <= 5; seq++) {
                milestone_frame(&f, seq, "m", seq);
                BootApplyResult res = apply_one(b, &c, &f);
                assert_int_equal(res.limit_dropped, seq > 3);
        }
        assert_int_equal(b->n_milestones, 3);
        assert_int_equal(b->milestones_dropped, 2);
        /* Over the bound, but still the ready condition. */
        milestone_frame(&f, 6, "late", 6);
        BootApplyResult res = apply_one(b, &c, &f);
        assert_true(res.limit_dropped);
        assert_true(res.became_ready);
        assert_int_equal(b->last_seq, 6);
        ready_condition_done(&c);
        boot_free(b);
}

static void test_gap_partially_explained(void **state) {
        Boot *b;
        Bytes f = {};

        assert_int_equal(boot_new(1, "b", NULL, NULL, &b), 0);
        log_frame(&f, 1, 1, "a\n", 1);
        apply_one(b, NULL, &f);
        log_frame(&f, 11, 1, "k\n", 11);
        BootApplyResult res = apply_one(b, NULL, &f);
        assert_true(res.gap_opened);
        assert_int_equal(res.gap.first, 2);
        assert_int_equal(res.gap.last, 10);
        /* The LogDropped covers 4..6 only: 2..3 and 7..10 stay pending. */
        log_dropped_frame(&f, 12, 4, 6);
        res = apply_one(b, NULL, &f);
        assert_int_equal(res.gaps_explained, 1);
        assert_int_equal(b->n_gaps, 2);
        uint64_t records;
        assert_int_equal(boot_flush_gaps(b, &records), 2);
        assert_int_equal(records, 2 + 4);
        assert_int_equal(b->seq_gaps, 2);
        assert_int_equal(b->n_gaps, 0);
        boot_free(b);
}

static void test_duplicate_ignored(void **state) {
        Boot *b;
        Bytes f = {};

        assert_int_equal(boot_new(1, "b", NULL, NULL, &b), 0);
        log_frame(&f, 5, 1, "x\n", 1);
        assert_false(apply_one(b, NULL, &f).duplicate);
        log_frame(&f, 5, 1, "x again\n", 1);
        assert_true(apply_one(b, NULL, &f).duplicate);
        log_frame(&f, 3, 1, "older\n", 1);
        assert_true(apply_one(b, NULL, &f).duplicate);
        assert_int_equal(b->logs.n_entries, 1);
        assert_int_equal(b->duplicates, 2);
        boot_free(b);
}

static void test_log_find_after_wraps(void **state) {
        BootLimits limits = BOOT_LIMITS_DEFAULT;
        Boot *b;
        Bytes f = {};

        /* Small enough that the tail evicts many times: ten entries of "z\n" (an interned source costs nothing
         * per entry). */
        limits.max_log_bytes = 10 * (LOG_ENTRY_OVERHEAD + 2);
        assert_int_equal(boot_new(1, "b", NULL, &limits, &b), 0);
        for (uint64_t seq = 1; seq <= 500; seq += 2) {
                log_frame(&f, seq, 1, "z\n", seq);
                apply_one(b, NULL, &f);
        }
        assert_int_equal(b->logs.n_entries, 10);
        assert_int_equal(tail_entry_at(b, 0).seq, 481);
        assert_int_equal(tail_find_after(b, 0), 0);
        assert_int_equal(tail_find_after(b, 481), 1);
        assert_int_equal(tail_find_after(b, 482), 1);
        assert_int_equal(tail_find_after(b, 499), 10);
        assert_int_equal(b->logs.evicted_records, 240);
        assert_int_equal(b->logs.evicted_last_seq, 479);
        boot_free(b);
}

static void test_empty_boot_id_refused(void **state) {
        Boot *b = NULL;
        assert_int_equal(boot_new(1, "", NULL, NULL, &b), -EINVAL);
        assert_null(b);
}

static void test_instance_table_bounded(void **state) {
        uint8_t id[BOOT_INSTANCE_ID_MAX + 1];
        uint64_t offset = 99;
        Boot *b;

        assert_int_equal(boot_new(1, "boot-i", NULL, NULL, &b), 0);
        memset(id, 'x', sizeof(id));

        /* An agent without an instance id shares seq space 0; an empty id is never stored. */
        assert_int_equal(boot_find_instance(b, NULL, 0, &offset), 1);
        assert_int_equal(offset, 0);
        assert_int_equal(boot_add_instance(b, id, 0, 5), -EINVAL);
        assert_int_equal(boot_add_instance(b, id, BOOT_INSTANCE_ID_MAX + 1, 5), -EINVAL);
        assert_int_equal(b->n_instances, 0);

        /* One more than the table holds: the oldest is forgotten, the others keep their offsets. */
        for (unsigned i = 0; i <= BOOT_INSTANCES_MAX; i++) {
                id[0] = (uint8_t) i;
                assert_int_equal(boot_find_instance(b, id, 16, &offset), 0);
                assert_int_equal(boot_add_instance(b, id, 16, 1000 + i), 0);
        }
        assert_int_equal(b->n_instances, BOOT_INSTANCES_MAX);
        assert_int_equal(b->instances_forgotten, 1);
        id[0] = 0;
        assert_int_equal(boot_find_instance(b, id, 16, &offset), 0);
        for (unsigned i = 1; i <= BOOT_INSTANCES_MAX; i++) {
                id[0] = (uint8_t) i;
                assert_int_equal(boot_find_instance(b, id, 16, &offset), 1);
                assert_int_equal(offset, 1000 + i);
        }
        /* Same bytes, other length: another instance. */
        assert_int_equal(boot_find_instance(b, id, 15, &offset), 0);
        boot_free(b);
}

static void test_ready_durations(void **state) {
        Bytes f = {};
        uint64_t v;
        Boot *b;

        assert_int_equal(boot_new(1, "boot-r", NULL, NULL, &b), 0);
        milestone_frame(&f, 1, "init.start", 7000);
        apply_one(b, NULL, &f);
        assert_int_equal(boot_init_to_ready_ns(b, &v), -ENODATA); /* not ready yet */
        ready_frame(&f, 2, "sd_notify", 10000);
        apply_one(b, NULL, &f);

        /* No kernel.start (an agent in a container): no kernel-to-ready, only init-to-ready. */
        assert_int_equal(boot_kernel_to_ready_ns(b, &v), -ENODATA);
        assert_int_equal(boot_init_to_ready_ns(b, &v), 0);
        assert_int_equal(v, 3000);
        boot_free(b);

        assert_int_equal(boot_new(2, "boot-v", NULL, NULL, &b), 0);
        milestone_frame(&f, 1, "kernel.start", 0);
        apply_one(b, NULL, &f);
        milestone_frame(&f, 2, "init.start", 7000);
        apply_one(b, NULL, &f);
        ready_frame(&f, 3, "sd_notify", 10000);
        apply_one(b, NULL, &f);
        assert_int_equal(boot_kernel_to_ready_ns(b, &v), 0);
        assert_int_equal(v, 10000);
        assert_int_equal(boot_init_to_ready_ns(b, &v), 0);
        assert_int_equal(v, 3000);
        boot_free(b);
}

/* A restarted agent saying the same again (tether-agent-systemd's phases from systemd's timestamps, kernel.start):
 * kept once, counted; anything that differs in name or time is another one. */
static void test_repeated_annotations_kept_once(void **state) {
        Boot *b;
        Bytes f = {};

        assert_int_equal(boot_new(1, "b", NULL, NULL, &b), 0);
        phase_frame(&f, 1, "unit:a.service", 100, 200);
        apply_one(b, NULL, &f);
        milestone_frame(&f, 2, "kernel.start", 0);
        apply_one(b, NULL, &f);
        phase_frame(&f, 3, "unit:a.service", 100, 200); /* the second agent process */
        assert_true(apply_one(b, NULL, &f).repeated);   /* no event either */
        milestone_frame(&f, 4, "kernel.start", 0);
        apply_one(b, NULL, &f);
        assert_int_equal(b->n_phases, 1);
        assert_int_equal(b->n_milestones, 1);
        assert_int_equal(b->annotations_repeated, 2);

        phase_frame(&f, 5, "unit:a.service", 300, 400); /* activated again */
        assert_false(apply_one(b, NULL, &f).repeated);
        phase_frame(&f, 6, "unit:b.service", 100, 200);
        apply_one(b, NULL, &f);
        milestone_frame(&f, 7, "kernel.start", 1);
        apply_one(b, NULL, &f);
        assert_int_equal(b->n_phases, 3);
        assert_int_equal(b->n_milestones, 2);
        assert_int_equal(b->annotations_repeated, 2);
        assert_int_equal(b->last_seq, 7);
        boot_free(b);
}

/* Every agent process of a boot (a restarted service) sends its own init.start and, finding the boot ready, ready
 * again, each at its own time: the boot keeps the first of each, counted as repeated; other names stay. */
static void apply_milestones(Boot *b, const char *const *names, const uint64_t *times, size_t n) {
        Bytes f = {};

        for (size_t i = 0; i < n; i++) {
                milestone_frame(&f, b->last_seq + 1, names[i], times[i]);
                apply_one(b, NULL, &f);
        }
}

static void test_init_start_and_ready_once(void **state) {
        /* The first agent process, then the second. */
        static const char *const names[] = { "init.start", "ready", "shutdown", "init.start", "ready", "shutdown" };
        static const uint64_t times[] = { 100, 500, 600, 700, 800, 900 };
        Boot *b;

        assert_int_equal(boot_new(1, "b", NULL, NULL, &b), 0);
        apply_milestones(b, names, times, ELEMENTSOF(names));
        assert_int_equal(b->n_milestones, 4);
        assert_int_equal(b->annotations_repeated, 2);
        assert_int_equal(boot_find_milestone(b, "init.start")->boottime_ns, 100);
        assert_int_equal(boot_find_milestone(b, "ready")->boottime_ns, 500);
        assert_string_equal(b->milestones[3].name, "shutdown");
        assert_int_equal(b->milestones[3].boottime_ns, 900);
        assert_int_equal(b->last_seq, 6);
        Bytes f = {};
        milestone_frame(&f, 7, "ready", 1000);
        assert_true(apply_one(b, NULL, &f).repeated); /* no event either */
        milestone_frame(&f, 8, "app.up", 1000);
        assert_false(apply_one(b, NULL, &f).repeated);
        boot_free(b);

        /* A ready before any init.start, an init.start after it: each is the first of its name. */
        assert_int_equal(boot_new(2, "c", NULL, NULL, &b), 0);
        apply_milestones(b, (const char *const[]) { "ready", "init.start" }, (const uint64_t[]) { 50, 60 }, 2);
        assert_int_equal(b->n_milestones, 2);
        assert_int_equal(b->annotations_repeated, 0);
        boot_free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ready_conditions),
                cmocka_unit_test(test_milestone_bound_keeps_readiness),
                cmocka_unit_test(test_gap_partially_explained),
                cmocka_unit_test(test_duplicate_ignored),
                cmocka_unit_test(test_repeated_annotations_kept_once),
                cmocka_unit_test(test_init_start_and_ready_once),
                cmocka_unit_test(test_log_find_after_wraps),
                cmocka_unit_test(test_empty_boot_id_refused),
                cmocka_unit_test(test_instance_table_bounded),
                cmocka_unit_test(test_ready_durations),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
