/* SPDX-License-Identifier: MIT */
/* W3C traceparent parsing and formatting. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "traceparent.h"

#define EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_parse_example(void **state) {
        static const uint8_t trace_id[16] = { 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                              0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36 };
        static const uint8_t span_id[8] = { 0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7 };
        TraceParent tp;

        assert_int_equal(traceparent_parse(EXAMPLE, &tp), 0);
        assert_memory_equal(tp.trace_id, trace_id, 16);
        assert_memory_equal(tp.span_id, span_id, 8);
        assert_int_equal(tp.flags, 0x01);

        assert_int_equal(traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &tp), 0);
        assert_int_equal(tp.flags, 0x00);
        assert_int_equal(traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", &tp), 0);
        assert_int_equal(tp.flags, 0xff);
}

static void test_format_round_trip(void **state) {
        TraceParent tp, again;
        char s[TRACEPARENT_STRLEN + 1];

        assert_int_equal(traceparent_parse(EXAMPLE, &tp), 0);
        memset(s, 'x', sizeof(s));
        traceparent_format(&tp, s);
        assert_string_equal(s, EXAMPLE);

        for (int i = 0; i < 64; i++) {
                assert_int_equal(random_id(tp.trace_id, sizeof(tp.trace_id)), 0);
                assert_int_equal(random_id(tp.span_id, sizeof(tp.span_id)), 0);
                tp.flags = (uint8_t) i;
                traceparent_format(&tp, s);
                assert_int_equal(strlen(s), TRACEPARENT_STRLEN);
                assert_int_equal(traceparent_parse(s, &again), 0);
                assert_memory_equal(&again, &tp, sizeof(tp));
        }
}

static void test_parse_rejects(void **state) {
        static const char *const bad[] = {
                "",
                "00",
                /* upper-case hex, in each field */
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e473A-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                /* other versions (ff is forbidden, others unknown to us) */
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "0--4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                /* all-zero ids */
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                /* wrong length */
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                /* wrong separators */
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",
                /* not hex */
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0 ",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0:",
        };
        TraceParent tp, untouched;

        memset(&tp, 0x77, sizeof(tp));
        untouched = tp;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (traceparent_parse(bad[i], &tp) != -EINVAL)
                        fail_msg("accepted \"%s\"", bad[i]);
                assert_memory_equal(&tp, &untouched, sizeof(tp));
        }
        assert_int_equal(traceparent_parse(NULL, &tp), -EINVAL);
}

static void test_hex_encode(void **state) {
        static const uint8_t data[] = { 0x00, 0x01, 0xab, 0xff, 0x10 };
        char out[2 * sizeof(data) + 1];

        hex_encode(data, sizeof(data), out);
        assert_string_equal(out, "0001abff10");
        hex_encode(data, 0, out);
        assert_string_equal(out, "");
}

static void test_random_id(void **state) {
        uint8_t a[16] = {}, b[16] = {}, zero[16] = {};

        assert_int_equal(random_id(a, sizeof(a)), 0);
        assert_int_equal(random_id(b, sizeof(b)), 0);
        assert_memory_not_equal(a, zero, sizeof(a));
        assert_memory_not_equal(a, b, sizeof(a)); /* 2^-128 chance of a false failure */

        /* A single byte is retried until it is not zero. */
        for (int i = 0; i < 512; i++) {
                uint8_t one = 0;
                assert_int_equal(random_id(&one, 1), 0);
                assert_int_not_equal(one, 0);
        }

        assert_int_equal(random_id(a, 0), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_example), cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_parse_rejects), cmocka_unit_test(test_hex_encode),
                cmocka_unit_test(test_random_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
