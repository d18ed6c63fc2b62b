/* SPDX-License-Identifier: MIT */
/* tether top from made-up API answers: rows sorted and fitted to the width (80 columns over ssh), unknown values
 * shown as "-" / null, rates only between two answers of the same boot, the summary of states, the row limit. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "macro.h"
#include "term.h"
#include "top.h"

#define S UINT64_C(1000000000)
#define T0 (UINT64_C(1700000000) * S) /* 22:13:20 UTC */

static json_t *parse(const char *s) {
        json_error_t error;
        json_t *j = json_loads(s, 0, &error);
        if (!j)
                fail_msg("bad test JSON: %s", error.text);
        return j;
}

/* b: a booting machine with no samples yet; a: ready, sampled, logging; a-very-long-id-...: cut to fit. */
static const char *const now_doc =
        "{\"machines\": ["
        "{\"machine_id\": \"vm-b\", \"state\": \"booting\", \"connected\": true, \"resources\": null,"
        " \"boot\": {\"boot_id\": \"b1\", \"log_bytes\": 0, \"ready\": null}},"
        "{\"machine_id\": \"vm-a\", \"state\": \"ready\", \"connected\": true, \"request_id\": \"req-1\","
        " \"resources\": {\"time_unix_ns\": 1699999998000000000, \"uptime_ns\": 60000000000,"
        " \"cpu_busy_ratio\": 0.25, \"memory_used_bytes\": 536870912, \"memory_total_bytes\": 2147483648,"
        " \"memory_pressure_some_avg10_pct\": 1.5},"
        " \"boot\": {\"boot_id\": \"a1\", \"log_bytes\": 5000, \"ready\": {\"kernel_to_ready_ns\": 912000000}}},"
        "{\"machine_id\": \"a-very-long-machine-identifier-of-a-fleet-0123456789\", \"state\": \"exited\","
        " \"connected\": false, \"resources\": {\"time_unix_ns\": 1699999990000000000, \"uptime_ns\": 5000000000,"
        " \"cpu_busy_ratio\": null, \"memory_used_bytes\": 1024, \"memory_total_bytes\": 1048576,"
        " \"memory_pressure_some_avg10_pct\": null},"
        " \"boot\": {\"boot_id\": \"z1\", \"log_bytes\": 10, \"ready\": null}}"
        "]}";

/* Two seconds earlier: vm-a had logged 3000 bytes fewer; the long one was on another boot. */
static const char *const prev_doc =
        "{\"machines\": ["
        "{\"machine_id\": \"vm-a\", \"boot\": {\"boot_id\": \"a1\", \"log_bytes\": 3000}},"
        "{\"machine_id\": \"a-very-long-machine-identifier-of-a-fleet-0123456789\","
        " \"boot\": {\"boot_id\": \"z0\", \"log_bytes\": 0}}"
        "]}";

static size_t count_lines(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

static void test_screen(void **state) {
        json_auto_t *now = parse(now_doc), *prev = parse(prev_doc);
        char *text;

        assert_int_equal(top_format(now, prev, 2 * S, T0, 80, 0, false, &text), 0);
        /* summary, header, three machines */
        assert_int_equal(count_lines(text), 5);
        assert_non_null(strstr(text, "tether top  22:13:20  3 machines: 1 ready, 1 booting, 1 exited\n"));
        /* Every line fits 80 columns. */
        for (char *line = text, *end; *line; line = end + 1) {
                end = strchr(line, '\n');
                assert_non_null(end);
                *end = '\0';
                assert_true(display_width(line) <= 80);
                *end = '\n';
        }
        /* Sorted by id: the long one (cut with "…") first, then vm-a, then vm-b. */
        char *longer = strstr(text, "a-very-long"), *a = strstr(text, "vm-a"), *b = strstr(text, "vm-b");
        assert_non_null(longer);
        assert_non_null(a);
        assert_non_null(b);
        assert_true(longer < a && a < b);
        assert_null(strstr(text, "0123456789"));
        assert_non_null(strstr(longer, "…"));
        /* vm-a: uptime 60 s + 2 s since its sample (connected), 25 % CPU, 512M of 2.0G, 1.5, 1000 B/s of logs over
         * the 2 s, ready in 912.0ms. */
        char *row_a = strndup(a, (size_t) (strchr(a, '\n') - a));
        assert_non_null(strstr(row_a, "ready"));
        assert_non_null(strstr(row_a, "1m02s"));
        assert_non_null(strstr(row_a, "25%"));
        assert_non_null(strstr(row_a, "512M/2.0G"));
        assert_non_null(strstr(row_a, "1.5"));
        assert_non_null(strstr(row_a, "1000B"));
        assert_non_null(strstr(row_a, "912.0ms"));
        free(row_a);
        /* vm-b knows nothing yet; the long one has no rate (another boot before) and no CPU share, and its
         * uptime stays at its last sample (not connected). */
        char *row_b = strndup(b, (size_t) (strchr(b, '\n') - b));
        assert_null(strstr(row_b, "%"));
        assert_null(strstr(row_b, "/"));
        free(row_b);
        char *row_l = strndup(longer, (size_t) (strchr(longer, '\n') - longer));
        assert_non_null(strstr(row_l, " 5s "));
        assert_non_null(strstr(row_l, "1.0K/1.0M"));
        assert_null(strstr(row_l, "B "));
        free(row_l);
        free(text);

        /* Without a previous answer there are no rates. */
        assert_int_equal(top_format(now, NULL, 0, T0, 80, 0, false, &text), 0);
        a = strstr(text, "vm-a");
        row_a = strndup(a, (size_t) (strchr(a, '\n') - a));
        assert_null(strstr(row_a, "1000B"));
        free(row_a);
        free(text);
}

static void test_rows_limit_and_ascii(void **state) {
        json_auto_t *now = parse(now_doc);
        char *text;

        /* Two lines of rows: one machine and "(2 more)". */
        assert_int_equal(top_format(now, NULL, 0, T0, 80, 2, true, &text), 0);
        assert_int_equal(count_lines(text), 4);
        assert_non_null(strstr(text, "(2 more)\n"));
        assert_null(strstr(text, "…"));
        for (const unsigned char *p = (const unsigned char *) text; *p; p++)
                assert_true(*p < 0x80);
        free(text);

        /* Narrower than the minimum: laid out at the minimum. A wide terminal gives the id its room. */
        assert_int_equal(top_format(now, NULL, 0, T0, 20, 0, false, &text), 0);
        assert_non_null(strstr(text, "MACHINE"));
        free(text);
        assert_int_equal(top_format(now, NULL, 0, T0, 200, 0, false, &text), 0);
        assert_non_null(strstr(text, "a-very-long-machine-identifier-of-a-fleet-0123456789"));
        free(text);

        json_auto_t *bad = parse("{\"nothing\": 1}");
        assert_int_equal(top_format(bad, NULL, 0, T0, 80, 0, false, &text), -EINVAL);
}

static void test_json(void **state) {
        json_auto_t *now = parse(now_doc), *prev = parse(prev_doc), *o = NULL;

        assert_int_equal(top_json(now, prev, 2 * S, T0, &o), 0);
        assert_int_equal(json_integer_value(json_object_get(o, "interval_ns")), 2 * S);
        json_t *rows = json_object_get(o, "machines");
        assert_int_equal(json_array_size(rows), 3);
        json_t *a = json_array_get(rows, 1), *b = json_array_get(rows, 2);
        assert_string_equal(json_string_value(json_object_get(a, "machine_id")), "vm-a");
        assert_string_equal(json_string_value(json_object_get(a, "request_id")), "req-1");
        assert_true(json_real_value(json_object_get(a, "log_bytes_per_second")) == 1000.0);
        assert_true(json_real_value(json_object_get(a, "cpu_busy_ratio")) == 0.25);
        assert_int_equal(json_integer_value(json_object_get(a, "uptime_ns")), 62 * S);
        assert_int_equal(json_integer_value(json_object_get(a, "memory_total_bytes")), 2147483648);
        assert_int_equal(json_integer_value(json_object_get(a, "ready_ns")), 912000000);
        /* Unknown is null, not 0. */
        assert_true(json_is_null(json_object_get(b, "cpu_busy_ratio")));
        assert_true(json_is_null(json_object_get(b, "uptime_ns")));
        assert_true(json_is_null(json_object_get(b, "log_bytes_per_second")));
        assert_true(json_is_null(json_object_get(b, "request_id")));
        assert_true(json_is_null(json_object_get(json_array_get(rows, 0), "log_bytes_per_second")));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_screen),
                cmocka_unit_test(test_rows_limit_and_ascii),
                cmocka_unit_test(test_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
