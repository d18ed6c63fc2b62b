/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "systemd-units.h"

static UnitSnapshot snap(
        const char *name, const char *state, uint64_t exit_us, uint64_t enter_us, uint64_t inactive_us) {
        return (UnitSnapshot) { .name = name,
                                .active_state = state,
                                .inactive_exit_us = exit_us,
                                .active_enter_us = enter_us,
                                .inactive_enter_us = inactive_us };
}

static void test_activation_once(void **state) {
        UnitTracker *t;
        UnitEvent ev;
        assert_int_equal(unit_tracker_new(NULL, 8, &t), 0);

        UnitSnapshot s = snap("nginx.service", "activating", 100, 0, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 0);

        s = snap("nginx.service", "active", 100, 250, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        assert_int_equal(ev.kind, UNIT_EVENT_ACTIVATED);
        assert_int_equal(ev.start_us, 100);
        assert_int_equal(ev.end_us, 250);
        /* the same state again (a signal and the startup listing both saw it): nothing new */
        assert_int_equal(unit_tracker_update(t, &s, &ev), 0);
        s.active_state = "reloading";
        assert_int_equal(unit_tracker_update(t, &s, &ev), 0);

        /* restarted later: a new activation */
        s = snap("nginx.service", "active", 9000, 9100, 8990);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        assert_int_equal(ev.start_us, 9000);
        assert_int_equal(unit_tracker_size(t), 1);

        /* never inactive this boot (init.scope): nothing to report */
        s = snap("init.scope", "active", 0, 5, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 0);
        assert_int_equal(unit_tracker_size(t), 1);
        unit_tracker_free(t);
}

static void test_failure(void **state) {
        UnitTracker *t;
        UnitEvent ev;
        assert_int_equal(unit_tracker_new(NULL, 8, &t), 0);

        /* failed to start: InactiveExit → InactiveEnter, once */
        UnitSnapshot s = snap("broken.service", "failed", 500, 0, 700);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        assert_int_equal(ev.kind, UNIT_EVENT_FAILED);
        assert_int_equal(ev.start_us, 500);
        assert_int_equal(ev.end_us, 700);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 0);

        /* an active unit that crashes later: its activation, then its failure as a point */
        s = snap("app.service", "active", 100, 200, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        s = snap("app.service", "failed", 100, 200, 5000);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        assert_int_equal(ev.kind, UNIT_EVENT_FAILED);
        assert_int_equal(ev.start_us, 100);
        assert_int_equal(ev.end_us, 5000);
        /* failed with an InactiveExit after the failure time (inconsistent): a point at the failure */
        s = snap("odd.service", "failed", 900, 0, 800);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        assert_int_equal(ev.start_us, 800);
        assert_int_equal(ev.end_us, 800);
        unit_tracker_free(t);
}

static void test_bound_and_patterns(void **state) {
        UnitTracker *t;
        UnitEvent ev;
        char *patterns[] = { (char *) "*.service", (char *) "sshd.socket", NULL };
        assert_int_equal(unit_tracker_new(patterns, 2, &t), 0);

        assert_true(unit_tracker_wants(t, "a.service"));
        assert_true(unit_tracker_wants(t, "sshd.socket"));
        assert_false(unit_tracker_wants(t, "dbus.socket"));

        UnitSnapshot s = snap("dbus.socket", "active", 1, 2, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 0); /* not wanted: not counted either */
        s = snap("a.service", "active", 1, 2, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        s = snap("b.service", "active", 1, 2, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        s = snap("c.service", "active", 1, 2, 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), -ENOSPC);
        assert_int_equal(unit_tracker_over(t), 1);
        /* units already tracked still report */
        s = snap("a.service", "active", 10, 20, 5);
        assert_int_equal(unit_tracker_update(t, &s, &ev), 1);
        assert_int_equal(unit_tracker_size(t), 2);
        unit_tracker_free(t);

        /* a bound of 0 reports nothing */
        assert_int_equal(unit_tracker_new(NULL, 0, &t), 0);
        assert_int_equal(unit_tracker_update(t, &s, &ev), -ENOSPC);
        unit_tracker_free(t);
}

/* JobRemoved: only "dependency" is a failure of its own (a point); the rest show in the unit's state. */
static void test_job_removed(void **state) {
        UnitTracker *t;
        UnitEvent ev;
        char *patterns[] = { (char *) "*.service", NULL };
        assert_int_equal(unit_tracker_new(patterns, 1, &t), 0);

        assert_int_equal(unit_tracker_job_removed(t, "a.service", "done", 10, &ev), 0);
        assert_int_equal(unit_tracker_job_removed(t, "a.service", "failed", 10, &ev), 0);
        assert_int_equal(unit_tracker_job_removed(t, "a.socket", "dependency", 10, &ev), 0); /* not wanted */
        assert_int_equal(unit_tracker_job_removed(t, "a.service", "dependency", 42, &ev), 1);
        assert_int_equal(ev.kind, UNIT_EVENT_JOB_FAILED);
        assert_int_equal(ev.start_us, 42);
        assert_int_equal(ev.end_us, 42);
        assert_int_equal(unit_tracker_job_removed(t, "b.service", "dependency", 43, &ev), -ENOSPC); /* bound */
        assert_int_equal(unit_tracker_over(t), 1);
        unit_tracker_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_activation_once),
                cmocka_unit_test(test_failure),
                cmocka_unit_test(test_bound_and_patterns),
                cmocka_unit_test(test_job_removed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
