/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "duration.h"
#include "macro.h"

static void check(uint64_t ns, const char *utf8, const char *ascii) {
        char buf[DURATION_MAX];

        assert_string_equal(format_duration(ns, false, buf), utf8);
        assert_string_equal(format_duration(ns, true, buf), ascii);
}

static void test_units(void **state) {
        check(0, "0s", "0s");
        check(1, "1ns", "1ns");
        check(999, "999ns", "999ns");
        check(1000, "1.000\u00b5s", "1.000us");
        check(12345, "12.35\u00b5s", "12.35us");
        check(123456, "123.5\u00b5s", "123.5us");
        check(4123000, "4.123ms", "4.123ms");
        check(31 * NSEC_PER_MSEC, "31.00ms", "31.00ms");
        check(412 * NSEC_PER_MSEC, "412.0ms", "412.0ms");
        check(1214 * NSEC_PER_MSEC, "1.214s", "1.214s");
        check(12345 * NSEC_PER_MSEC, "12.35s", "12.35s");
}

static void test_rounding_carries_into_next_unit(void **state) {
        /* 999.96 µs rounds to 1000.0 µs, which is shown as 1.000 ms instead. */
        check(999960, "1.000ms", "1.000ms");
        check(999999999, "1.000s", "1.000s");
        /* 9.9996 ms would be "10.000ms" with three decimals: one decimal fewer keeps four digits. */
        check(9999600, "10.00ms", "10.00ms");
}

static void test_minutes_and_hours(void **state) {
        check(60 * NSEC_PER_SEC, "1m00.0s", "1m00.0s");
        check(125300 * NSEC_PER_MSEC, "2m05.3s", "2m05.3s");
        check(3599 * NSEC_PER_SEC + 990 * NSEC_PER_MSEC, "1h00m00s", "1h00m00s");
        check((3600 + 2 * 60 + 3) * NSEC_PER_SEC, "1h02m03s", "1h02m03s");
        check(UINT64_MAX, "5124095h34m34s", "5124095h34m34s");
}

static void test_offsets(void **state) {
        char buf[DURATION_MAX];

        assert_string_equal(format_offset(412 * NSEC_PER_MSEC, true, false, buf), "+412.0ms");
        assert_string_equal(format_offset(412 * NSEC_PER_MSEC, false, false, buf), "412.0ms");
        assert_string_equal(format_offset(-1500, true, true, buf), "-1.500us");
        assert_string_equal(format_offset(INT64_MIN, false, true, buf), "-2562047h47m17s");
}

static void test_parse_seconds(void **state) {
        uint64_t ms = 42;

        assert_int_equal(parse_seconds("30", 3600000, &ms), 0);
        assert_int_equal(ms, 30000);
        assert_int_equal(parse_seconds("0.5", 3600000, &ms), 0);
        assert_int_equal(ms, 500);
        assert_int_equal(parse_seconds("2.125", 3600000, &ms), 0);
        assert_int_equal(ms, 2125);
        assert_int_equal(parse_seconds("0", 3600000, &ms), 0);
        assert_int_equal(ms, 0);
        assert_int_equal(parse_seconds("3600", 3600000, &ms), 0);
        assert_int_equal(ms, 3600000);
        assert_int_equal(parse_seconds("007.10", 3600000, &ms), 0);
        assert_int_equal(ms, 7100);

        /* Failures leave the output alone. */
        ms = 42;
        assert_int_equal(parse_seconds("3600.001", 3600000, &ms), -ERANGE);
        assert_int_equal(parse_seconds("99999999999999999999999", 3600000, &ms), -ERANGE);
        assert_int_equal(parse_seconds("-1", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds("", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds("1.", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds(".5", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds("1e3", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds(" 1", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds("1s", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds("1.2345", 3600000, &ms), -EINVAL);
        assert_int_equal(parse_seconds("nan", 3600000, &ms), -EINVAL);
        assert_int_equal(ms, 42);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_rounding_carries_into_next_unit),
                cmocka_unit_test(test_minutes_and_hours),
                cmocka_unit_test(test_offsets),
                cmocka_unit_test(test_parse_seconds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
