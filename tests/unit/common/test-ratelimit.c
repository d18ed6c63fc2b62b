/* SPDX-License-Identifier: MIT */
/* The one rate limiter: burst per interval in fixed windows, the refused ones counted and handed to the next
 * allowed event. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "macro.h"
#include "ratelimit.h"

static void test_burst_then_suppressed(void **state) {
        RateLimit rl = RATELIMIT_INIT(10 * NSEC_PER_SEC, 3);
        uint64_t t = 5 * NSEC_PER_SEC, suppressed = 99;

        for (int i = 0; i < 3; i++) {
                assert_true(ratelimit_below(&rl, t + (uint64_t) i, &suppressed));
                assert_int_equal(suppressed, 0);
        }
        for (int i = 0; i < 1000; i++)
                assert_false(ratelimit_below(&rl, t + 1000 + (uint64_t) i, NULL));
        /* Still inside the window. */
        assert_false(ratelimit_below(&rl, t + 10 * NSEC_PER_SEC - 1, NULL));
        /* A new window: allowed, and told what was refused. */
        assert_true(ratelimit_below(&rl, t + 10 * NSEC_PER_SEC, &suppressed));
        assert_int_equal(suppressed, 1001);
        assert_true(ratelimit_below(&rl, t + 10 * NSEC_PER_SEC + 1, &suppressed));
        assert_int_equal(suppressed, 0);
}

static void test_clock_going_back_starts_a_window(void **state) {
        RateLimit rl = RATELIMIT_INIT(NSEC_PER_SEC, 1);

        assert_true(ratelimit_below(&rl, 5 * NSEC_PER_SEC, NULL));
        assert_false(ratelimit_below(&rl, 5 * NSEC_PER_SEC + 1, NULL));
        assert_true(ratelimit_below(&rl, 4 * NSEC_PER_SEC, NULL));
        /* Time 0 is a time like any other. */
        RateLimit zero = RATELIMIT_INIT(NSEC_PER_SEC, 1);
        assert_true(ratelimit_below(&zero, 0, NULL));
        assert_false(ratelimit_below(&zero, 1, NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_suppressed),
                cmocka_unit_test(test_clock_going_back_starts_a_window),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
