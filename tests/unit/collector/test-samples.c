/* SPDX-License-Identifier: MIT */
/* The resource sample ring: bounded to SAMPLES_HISTORY (the oldest go), a sample less than a guest second after the
 * newest takes its place, a guest clock going backwards is refused, a reset forgets; the CPU busy share between two
 * samples, and where it cannot be known. */

#include "collector-test.h"
#include "samples.h"

static GuestSample at(uint64_t t_ms, uint64_t user_ms, uint64_t idle_ms) {
        return (GuestSample) {
                .boottime_ns = t_ms * NSEC_PER_MSEC,
                .cpu_ns = { [SAMPLE_CPU_USER] = user_ms * NSEC_PER_MSEC, [SAMPLE_CPU_IDLE] = idle_ms * NSEC_PER_MSEC },
        };
}

static void test_ring(void **state) {
        SampleRing r = {};
        GuestSample g;

        assert_null(sample_ring_latest(&r));
        assert_null(sample_ring_get(&r, 0));
        for (uint64_t i = 0; i < SAMPLES_HISTORY + 10; i++) {
                g = at(1000 * i, i, 0);
                assert_int_equal(sample_ring_push(&r, &g), 1);
        }
        /* Full: the ten oldest went, oldest first. */
        assert_int_equal(r.n, SAMPLES_HISTORY);
        assert_int_equal(sample_ring_get(&r, 0)->boottime_ns, 10 * NSEC_PER_SEC);
        assert_int_equal(sample_ring_latest(&r)->boottime_ns, (SAMPLES_HISTORY + 9) * NSEC_PER_SEC);
        assert_null(sample_ring_get(&r, SAMPLES_HISTORY));

        /* 999 ms after the newest: in its place. Then a guest time before it: refused. */
        g = at(1000 * (SAMPLES_HISTORY + 9) + 999, 7, 7);
        assert_int_equal(sample_ring_push(&r, &g), 2);
        assert_int_equal(r.n, SAMPLES_HISTORY);
        assert_int_equal(sample_ring_latest(&r)->cpu_ns[SAMPLE_CPU_USER], 7 * NSEC_PER_MSEC);
        assert_int_equal(sample_ring_get(&r, 0)->boottime_ns, 10 * NSEC_PER_SEC);
        g = at(1000, 0, 0);
        assert_int_equal(sample_ring_push(&r, &g), 0);
        assert_int_equal(r.accepted, SAMPLES_HISTORY + 10);
        assert_int_equal(r.replaced, 1);
        assert_int_equal(r.refused, 1);

        /* A new boot: anything goes again. */
        sample_ring_reset(&r);
        assert_int_equal(r.n, 0);
        assert_int_equal(sample_ring_push(&r, &g), 1);
        assert_int_equal(r.accepted, 1);
        assert_int_equal(r.refused, 0);
}

static void test_busy(void **state) {
        GuestSample a = at(0, 1000, 3000), b = at(10000, 2500, 3500), c = at(20000, 2500, 3500);

        assert_int_equal(guest_sample_cpu_busy_ppm(&a, &b), 750000);  /* 1.5 s busy of 2 s */
        assert_int_equal(guest_sample_cpu_busy_ppm(&b, &c), -ERANGE); /* no CPU time passed */
        assert_int_equal(guest_sample_cpu_busy_ppm(&b, &a), -ERANGE); /* counters went backwards */
        a.cpu_ns[SAMPLE_CPU_IOWAIT] = 0;
        b.cpu_ns[SAMPLE_CPU_IOWAIT] = 500 * NSEC_PER_MSEC; /* iowait is not busy */
        assert_int_equal(guest_sample_cpu_busy_ppm(&a, &b), 600000);
        GuestSample huge = at(0, 0, 0);
        huge.cpu_ns[SAMPLE_CPU_USER] = huge.cpu_ns[SAMPLE_CPU_SYSTEM] = UINT64_MAX / 2 + 1; /* the sum overflows */
        GuestSample zero = at(0, 0, 0);
        assert_int_equal(guest_sample_cpu_busy_ppm(&zero, &huge), -ERANGE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ring),
                cmocka_unit_test(test_busy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
