/* SPDX-License-Identifier: MIT */
/* Syslog priorities by number and name, and the sets journalctl -p selects: "P" is P and everything more
 * important, "A..B" a range in either order; anything else is refused and leaves the result alone. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "macro.h"
#include "syslog-priority.h"

static void test_names(void **state) {
        static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
        char digit[2] = "0";

        for (unsigned p = 0; p < ELEMENTSOF(names); p++) {
                assert_string_equal(syslog_priority_to_string(p), names[p]);
                assert_int_equal(syslog_priority_from_string(names[p]), p);
                digit[0] = (char) ('0' + p);
                assert_int_equal(syslog_priority_from_string(digit), p);
        }
        assert_null(syslog_priority_to_string(8));
        static const char *const bad[] = { "", "8", "-1", "03", "error", "ERR", "warn", " err", "err ", "3x" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(syslog_priority_from_string(bad[i]), -EINVAL);
}

static void test_masks(void **state) {
        static const struct {
                const char *arg;
                uint8_t mask;
        } cases[] = {
                { "emerg", 0x01 },        { "0", 0x01 },
                { "err", 0x0F },          { "3", 0x0F },
                { "debug", 0xFF },        { "warning", 0x1F },
                { "0..3", 0x0F },         { "3..0", 0x0F },
                { "err..warning", 0x18 }, { "warning..err", 0x18 },
                { "info..info", 0x40 },   { "2..debug", 0xFC },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t mask = 0;
                assert_int_equal(syslog_priority_mask_from_string(cases[i].arg, &mask), 0);
                if (mask != cases[i].mask)
                        fail_msg("%s: 0x%02x, not 0x%02x", cases[i].arg, mask, cases[i].mask);
        }

        static const char *const bad[] = { "", "..", "3..", "..3", "0..8", "err...warning", "1..2..3", "e", "all" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t mask = 0x55;
                if (syslog_priority_mask_from_string(bad[i], &mask) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);
                assert_int_equal(mask, 0x55);
        }
}

/* A Log.priority (1 + syslog's) is in a mask of syslog priorities; a line without one (0), or one out of range, in
 * none. */
static void test_mask_has(void **state) {
        uint8_t err_or_worse = 0;
        assert_int_equal(syslog_priority_mask_from_string("err", &err_or_worse), 0);
        for (unsigned lp = 1; lp <= 4; lp++)
                assert_true(syslog_priority_mask_has(err_or_worse, lp));
        for (unsigned lp = 5; lp <= 8; lp++)
                assert_false(syslog_priority_mask_has(err_or_worse, lp));
        assert_false(syslog_priority_mask_has(0xFF, 0));
        assert_false(syslog_priority_mask_has(0xFF, 9));
        assert_false(syslog_priority_mask_has(0xFF, 16));
        assert_true(syslog_priority_mask_has(0xFF, 8));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_masks),
                cmocka_unit_test(test_mask_has),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
