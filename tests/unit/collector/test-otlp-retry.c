/* SPDX-License-Identifier: MIT */
/* Retry policy: which answers are retried, Retry-After in seconds and HTTP dates, exponential backoff with
 * jitter bounded by its maximum and floored by Retry-After. */

#include "collector-test.h"
#include "macro.h"
#include "otlp-retry.h"

static void test_classify(void **state) {
        assert_int_equal(otlp_classify_status(200), OTLP_VERDICT_SUCCESS);
        assert_int_equal(otlp_classify_status(202), OTLP_VERDICT_SUCCESS);
        assert_int_equal(otlp_classify_status(0), OTLP_VERDICT_RETRY);
        assert_int_equal(otlp_classify_status(429), OTLP_VERDICT_RETRY);
        assert_int_equal(otlp_classify_status(502), OTLP_VERDICT_RETRY);
        assert_int_equal(otlp_classify_status(503), OTLP_VERDICT_RETRY);
        assert_int_equal(otlp_classify_status(504), OTLP_VERDICT_RETRY);
        assert_int_equal(otlp_classify_status(400), OTLP_VERDICT_REJECT);
        assert_int_equal(otlp_classify_status(401), OTLP_VERDICT_REJECT);
        assert_int_equal(otlp_classify_status(404), OTLP_VERDICT_REJECT);
        assert_int_equal(otlp_classify_status(413), OTLP_VERDICT_REJECT);
        assert_int_equal(otlp_classify_status(500), OTLP_VERDICT_REJECT);
        assert_int_equal(otlp_classify_status(301), OTLP_VERDICT_REJECT);
}

static void test_retry_after(void **state) {
        /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
        uint64_t now = UINT64_C(784111770) * NSEC_PER_SEC, d = 1;

        assert_int_equal(otlp_parse_retry_after("120", now, &d), 0);
        assert_int_equal(d, 120 * NSEC_PER_SEC);
        assert_int_equal(otlp_parse_retry_after(" 0 \r\n", now, &d), 0);
        assert_int_equal(d, 0);
        assert_int_equal(otlp_parse_retry_after("99999999999999999999999", now, &d), 0);
        assert_int_equal(d, 3600 * NSEC_PER_SEC);
        assert_int_equal(otlp_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now, &d), 0);
        assert_int_equal(d, 7 * NSEC_PER_SEC);
        assert_int_equal(otlp_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now, &d), 0);
        assert_int_equal(d, 7 * NSEC_PER_SEC);
        assert_int_equal(otlp_parse_retry_after("Sun Nov  6 08:49:37 1994", now, &d), 0);
        assert_int_equal(d, 7 * NSEC_PER_SEC);
        assert_int_equal(otlp_parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now, &d), 0);
        assert_int_equal(d, 0); /* in the past */
        assert_int_equal(otlp_parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", now, &d), 0);
        assert_int_equal(d, 0); /* timegm()'s -1, a date like any other */
        assert_int_equal(otlp_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now, &d), 0);
        assert_int_equal(d, 3600 * NSEC_PER_SEC); /* beyond 2554, where nanoseconds since 1970 overflow */
        d = 5;
        assert_int_equal(otlp_parse_retry_after("soon", now, &d), -EINVAL);
        assert_int_equal(otlp_parse_retry_after("12abc", now, &d), -EINVAL);
        assert_int_equal(otlp_parse_retry_after("", now, &d), -EINVAL);
        assert_int_equal(otlp_parse_retry_after(NULL, now, &d), -EINVAL);
        assert_int_equal(d, 5);
}

static void test_backoff(void **state) {
        uint64_t init = NSEC_PER_SEC, max = 5 * NSEC_PER_SEC;

        /* Jitter spans [d/2, d]. */
        assert_int_equal(otlp_backoff_ns(0, init, max, 0, 0), init / 2);
        assert_int_equal(otlp_backoff_ns(0, init, max, UINT32_MAX, 0), init);
        assert_int_equal(otlp_backoff_ns(1, init, max, UINT32_MAX, 0), 2 * init);
        assert_int_equal(otlp_backoff_ns(2, init, max, UINT32_MAX, 0), 4 * init);
        assert_int_equal(otlp_backoff_ns(3, init, max, UINT32_MAX, 0), max);
        assert_int_equal(otlp_backoff_ns(200, init, max, UINT32_MAX, 0), max);
        for (uint32_t r = 0; r < 1000; r++) {
                uint64_t d = otlp_backoff_ns(2, init, max, r * 4294967u, 0);
                assert_true(d >= 2 * init && d <= 4 * init);
        }
        /* Retry-After is a floor, also above the maximum. */
        assert_int_equal(otlp_backoff_ns(0, init, max, 0, 30 * NSEC_PER_SEC), 30 * NSEC_PER_SEC);
        assert_int_equal(otlp_backoff_ns(3, init, max, UINT32_MAX, NSEC_PER_SEC), max);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_retry_after),
                cmocka_unit_test(test_backoff),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
