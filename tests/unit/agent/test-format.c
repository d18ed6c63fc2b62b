/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format.h"

/* The agent's formatter must agree with the C library for everything it supports. */
#define CHECK(...)                                            \
        do {                                                  \
                char a[128], b[128];                          \
                int na = format(a, sizeof(a), __VA_ARGS__);   \
                int nb = snprintf(b, sizeof(b), __VA_ARGS__); \
                assert_string_equal(a, b);                    \
                assert_int_equal(na, nb);                     \
        } while (0)

static void test_matches_snprintf(void **state) {
        CHECK("plain");
        CHECK("%d %d %d %i", 0, -1, INT32_MIN, INT32_MAX);
        CHECK("%u %x %x", 4294967295u, 255u, 0u);
        CHECK("%lu %ld %llu %lld", 18446744073709551615ul, -5l, 123ull, -9223372036854775807ll - 1);
        CHECK("%zu %" PRIu64 " %" PRIi64, (size_t) 42, UINT64_MAX, INT64_MIN);
        CHECK("[%5" PRIu64 ".%06" PRIu64 "]", (uint64_t) 3, (uint64_t) 4567);
        CHECK("[%5u] [%-5u] [%05d] [%05d]", 42u, 42u, 42, -42);
        CHECK("%s|%10s|%-10s|%.3s|%.*s|%.8s", "abc", "right", "left", "truncate", 2, "xyz", "short");
        CHECK("%c%c %%", 'o', 'k');
        CHECK("%s", "");
        CHECK("%hhu %hu", 300, 70000);
}

static void test_errno_and_truncation(void **state) {
        char buf[64], ref[64];

        errno = ENOENT;
        format(buf, sizeof(buf), "open: %m");
        snprintf(ref, sizeof(ref), "open: %s", strerror(ENOENT));
        assert_string_equal(buf, ref);
        assert_int_equal(errno, ENOENT); /* preserved */

        char small[8];
        memset(small, '#', sizeof(small));
        assert_int_equal(format(small, 5, "%s", "abcdefgh"), 8);
        assert_string_equal(small, "abcd");
        assert_int_equal(small[5], '#');

        assert_int_equal(format(NULL, 0, "%d-%s", 12345, "xy"), 8);

        char *s = format_alloc("%s=%u", "KEY", 7u);
        assert_non_null(s);
        assert_string_equal(s, "KEY=7");
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_matches_snprintf),
                cmocka_unit_test(test_errno_and_truncation),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
