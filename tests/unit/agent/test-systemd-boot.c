/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "systemd-boot.h"

/* A boot as systemd-analyze reports it: "1.200s (firmware) + 300ms (loader) + 1.5s (kernel) + 2s (initrd) +
 * 5s (userspace)". */
static const SystemdBootTimes full = {
        .firmware_us = 1500000,
        .loader_us = 300000,
        .kernel_us = 0,
        .initrd_us = 1500000,
        .userspace_us = 3500000,
        .finish_us = 8500000,
        .generators_start_us = 3600000,
        .generators_finish_us = 3700000,
        .units_load_start_us = 3700000,
        .units_load_finish_us = 3900000,
};

static void test_finished_boot(void **state) {
        SystemdBootPhase p[_SYSTEMD_PHASE_MAX];
        size_t n = systemd_boot_phases(&full, 0, 0, p);

        assert_int_equal(n, 5); /* no security phase */
        assert_string_equal(p[0].name, "systemd.kernel");
        assert_int_equal(p[0].start_ns, 0);
        assert_int_equal(p[0].end_ns, 1500000000ull);
        assert_string_equal(p[1].name, "systemd.initrd");
        assert_int_equal(p[1].start_ns, 1500000000ull);
        assert_int_equal(p[1].end_ns, 3500000000ull);
        assert_string_equal(p[2].name, "systemd.userspace");
        assert_int_equal(p[2].start_ns, 3500000000ull);
        assert_int_equal(p[2].end_ns, 8500000000ull);
        assert_string_equal(p[3].name, "systemd.generators");
        assert_int_equal(p[3].end_ns - p[3].start_ns, 100000000ull);
        assert_string_equal(p[4].name, "systemd.units-load");
        assert_int_equal(p[4].id, SYSTEMD_PHASE_UNITS_LOAD);

        assert_int_equal(systemd_boot_firmware_ns(&full), 1200000000ull);
        assert_int_equal(systemd_boot_loader_ns(&full), 300000000ull);
}

static void test_unfinished_then_finished(void **state) {
        SystemdBootTimes t = full;
        SystemdBootPhase p[_SYSTEMD_PHASE_MAX];
        unsigned done = 0;

        t.finish_us = 0;
        size_t n = systemd_boot_phases(&t, 0, done, p);
        assert_int_equal(n, 4); /* everything but userspace */
        for (size_t i = 0; i < n; i++) {
                assert_int_not_equal(p[i].id, SYSTEMD_PHASE_USERSPACE);
                done |= 1u << p[i].id;
        }

        /* StartupFinished: only what is new */
        t.finish_us = full.finish_us;
        n = systemd_boot_phases(&t, 0, done, p);
        assert_int_equal(n, 1);
        assert_int_equal(p[0].id, SYSTEMD_PHASE_USERSPACE);
        done |= 1u << p[0].id;
        assert_int_equal(systemd_boot_phases(&t, 0, done, p), 0);
}

static void test_no_initrd_and_offset(void **state) {
        SystemdBootTimes t = { .userspace_us = 900000, .finish_us = 4000000 };
        SystemdBootPhase p[_SYSTEMD_PHASE_MAX];

        /* No initrd: the kernel ends where userspace starts; boottime is monotonic plus the suspended time. */
        size_t n = systemd_boot_phases(&t, 5000, 0, p);
        assert_int_equal(n, 2);
        assert_int_equal(p[0].id, SYSTEMD_PHASE_KERNEL);
        assert_int_equal(p[0].start_ns, 5000);
        assert_int_equal(p[0].end_ns, 900000000ull + 5000);
        assert_int_equal(p[1].id, SYSTEMD_PHASE_USERSPACE);
        assert_int_equal(p[1].end_ns, 4000000000ull + 5000);
        assert_int_equal(systemd_boot_firmware_ns(&t), 0);
        assert_int_equal(systemd_boot_loader_ns(&t), 0);

        /* Nothing known yet, or an inconsistent pair: nothing. */
        SystemdBootTimes none = { .generators_start_us = 10, .generators_finish_us = 5 };
        assert_int_equal(systemd_boot_phases(&none, 0, 0, p), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_finished_boot),
                cmocka_unit_test(test_unfinished_then_finished),
                cmocka_unit_test(test_no_initrd_and_offset),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
