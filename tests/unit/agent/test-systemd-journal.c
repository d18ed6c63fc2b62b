/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "systemd-journal.h"

/* First start: no cursor stored, from the boot's first entry; later Welcomes change nothing. */
static void test_resume_from_head(void **state) {
        JournalResume j = {};

        assert_int_equal(j.start, JOURNAL_WAIT);
        assert_int_equal(journal_resume_welcome(&j, ""), 0);
        assert_int_equal(j.start, JOURNAL_FROM_HEAD);
        assert_false(journal_resume_first_entry(&j, false)); /* the first entry is sent */
        assert_int_equal(j.start, JOURNAL_READING);

        /* a reconnect's Welcome names what the host has by then: the replay buffer resends the rest, by seq */
        assert_int_equal(journal_resume_welcome(&j, "s=1;i=5"), 0);
        assert_int_equal(j.start, JOURNAL_READING);
        assert_null(j.cursor);
        journal_resume_done(&j);
}

/* A restarted agent: the host's cursor names the last entry stored; that one is skipped, the next is sent. */
static void test_resume_after_cursor(void **state) {
        JournalResume j = {};

        assert_int_equal(journal_resume_welcome(&j, "s=1;i=5"), 0);
        assert_int_equal(j.start, JOURNAL_AFTER_CURSOR);
        assert_string_equal(j.cursor, "s=1;i=5");
        assert_int_equal(journal_resume_welcome(&j, "s=1;i=9"), 0); /* only the first Welcome counts */
        assert_string_equal(j.cursor, "s=1;i=5");
        assert_true(journal_resume_first_entry(&j, true));
        assert_int_equal(j.start, JOURNAL_READING);
        assert_null(j.cursor);
        journal_resume_done(&j);

        /* the stored entry is gone (rotated away): the seek landed on a newer one, which is new */
        assert_int_equal(journal_resume_welcome(&j, "s=1;i=5"), 0);
        assert_false(journal_resume_first_entry(&j, false));
        journal_resume_done(&j);
}

static void test_priority(void **state) {
        assert_int_equal(journal_priority("0", 1), 1);
        assert_int_equal(journal_priority("3", 1), 4);
        assert_int_equal(journal_priority("7", 1), 8);
        assert_int_equal(journal_priority("8", 1), 0);
        assert_int_equal(journal_priority("", 0), 0);
        assert_int_equal(journal_priority("12", 2), 0);
        assert_int_equal(journal_priority("x", 1), 0);
        assert_int_equal(journal_priority(NULL, 0), 0);
}

static void test_source(void **state) {
        JournalOrigin o = { .unit = "nginx.service", .identifier = "nginx", .comm = "nginx" };
        assert_string_equal(journal_source(&o), "nginx.service");
        o = (JournalOrigin) { .user_unit = "app.service", .identifier = "app" };
        assert_string_equal(journal_source(&o), "app.service");
        o = (JournalOrigin) { .transport = "kernel", .identifier = "kernel" };
        assert_string_equal(journal_source(&o), "kernel");
        o = (JournalOrigin) { .unit = "", .identifier = "sudo", .comm = "sudo" };
        assert_string_equal(journal_source(&o), "sudo");
        o = (JournalOrigin) { .comm = "cron" };
        assert_string_equal(journal_source(&o), "cron");
        o = (JournalOrigin) {};
        assert_string_equal(journal_source(&o), "journal");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_resume_from_head),
                cmocka_unit_test(test_resume_after_cursor),
                cmocka_unit_test(test_priority),
                cmocka_unit_test(test_source),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
