/* SPDX-License-Identifier: MIT */
/* Resource samples: each parser fed real kernel output (and the shapes older or odder kernels write), and
 * sample_collect() over a made-up /proc and /sys tree, with and without PSI and a workload cgroup. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs-util.h"
#include "macro.h"
#include "sample.h"

#define MIB (UINT64_C(1) << 20)

static void test_stat(void **state) {
        uint64_t ns[8];

        /* Linux 6.1: ten columns (guest, guest_nice are counted in user, nice already). */
        assert_int_equal(
                sample_parse_stat(
                        "cpu  207362 0 51681 5107252 1719 0 587 501 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n",
                        100,
                        ns),
                0);
        assert_int_equal(ns[0], UINT64_C(207362) * 10000000);
        assert_int_equal(ns[3], UINT64_C(5107252) * 10000000);
        assert_int_equal(ns[7], UINT64_C(501) * 10000000);

        /* Four columns (a very old kernel): the rest 0. */
        assert_int_equal(sample_parse_stat("cpu 1 2 3 4\n", 100, ns), 0);
        assert_int_equal(ns[3], 40000000);
        assert_int_equal(ns[4], 0);

        /* Counters near 2^64 saturate instead of wrapping. */
        assert_int_equal(sample_parse_stat("cpu 18446744073709551615 0 0 0\n", 100, ns), 0);
        assert_int_equal(ns[0], UINT64_MAX);

        assert_int_equal(sample_parse_stat("cpu0 1 2 3 4\n", 100, ns), -EINVAL); /* no aggregate line */
        assert_int_equal(sample_parse_stat("cpu  1 2 3\n", 100, ns), -EINVAL);
        assert_int_equal(sample_parse_stat("", 100, ns), -EINVAL);
        assert_int_equal(sample_parse_stat("cpu 1 2 3 4\n", 0, ns), -EINVAL);
}

static void test_meminfo(void **state) {
        uint64_t b[5];

        assert_int_equal(
                sample_parse_meminfo(
                        "MemTotal:        2014588 kB\nMemFree:          110980 kB\nMemAvailable:    1503716 kB\n"
                        "Buffers:           81236 kB\nSwapCached:            0 kB\nSwapTotal:       1048572 kB\n"
                        "SwapFree:        1048000 kB\n",
                        b),
                0);
        assert_int_equal(b[0], UINT64_C(2014588) * 1024);
        assert_int_equal(b[1], UINT64_C(1503716) * 1024);
        assert_int_equal(b[2], UINT64_C(110980) * 1024);
        assert_int_equal(b[3], UINT64_C(1048572) * 1024);
        assert_int_equal(b[4], UINT64_C(1048000) * 1024);

        /* Before Linux 3.14 there is no MemAvailable: MemFree stands in. No swap: zeros. "SwapCached" is not
         * "SwapTotal". */
        assert_int_equal(sample_parse_meminfo("MemTotal: 1000 kB\nMemFree: 300 kB\nSwapCached: 5 kB\n", b), 0);
        assert_int_equal(b[1], 300 * 1024);
        assert_int_equal(b[3], 0);

        /* Nothing above the total goes out (the host would refuse the sample). */
        assert_int_equal(sample_parse_meminfo("MemTotal: 1000 kB\nMemAvailable: 2000 kB\nMemFree: 3000 kB\n", b), 0);
        assert_int_equal(b[1], 1000 * 1024);
        assert_int_equal(b[2], 1000 * 1024);

        assert_int_equal(sample_parse_meminfo("MemFree: 300 kB\n", b), -EINVAL);
}

static void test_loadavg(void **state) {
        uint32_t c[3];

        assert_int_equal(sample_parse_loadavg("4.94 4.51 2.77 5/146 18823\n", c), 0);
        assert_int_equal(c[0], 494);
        assert_int_equal(c[1], 451);
        assert_int_equal(c[2], 277);
        assert_int_equal(sample_parse_loadavg("0.00 12.5 100.999 1/1 1\n", c), 0);
        assert_int_equal(c[0], 0);
        assert_int_equal(c[1], 1250);
        assert_int_equal(c[2], 10099);
        assert_int_equal(sample_parse_loadavg("1.00 2.00\n", c), -EINVAL);
}

static void test_pressure(void **state) {
        uint64_t v[4];

        assert_int_equal(
                sample_parse_pressure(
                        "some avg10=1.53 avg60=0.40 avg300=0.09 total=12345\n"
                        "full avg10=0.25 avg60=0.10 avg300=0.02 total=678\n",
                        v),
                0);
        assert_int_equal(v[0], 153);
        assert_int_equal(v[1], 25);
        assert_int_equal(v[2], UINT64_C(12345000));
        assert_int_equal(v[3], UINT64_C(678000));

        /* cpu before Linux 5.13: no "full" line. */
        assert_int_equal(sample_parse_pressure("some avg10=100.00 avg60=0.00 avg300=0.00 total=1\n", v), 0);
        assert_int_equal(v[0], 10000);
        assert_int_equal(v[1], 0);
        assert_int_equal(v[3], 0);

        /* Fields must be in their own line: a "full" total does not stand in for a missing "some" one. */
        assert_int_equal(sample_parse_pressure("some avg10=1.00\nfull avg10=0.00 total=5\n", v), -EINVAL);
        assert_int_equal(sample_parse_pressure("", v), -EINVAL);
}

static void test_keyed_and_paths(void **state) {
        uint64_t v;
        char path[64];

        static const char events[] = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_int_equal(sample_parse_keyed(events, "oom", &v), 0);
        assert_int_equal(v, 3);
        assert_int_equal(sample_parse_keyed(events, "oom_kill", &v), 0);
        assert_int_equal(v, 2);
        assert_int_equal(sample_parse_keyed(events, "oom_killed", &v), -ENOENT);

        assert_int_equal(sample_parse_cgroup_path("0::/system.slice/app.service\n", path, sizeof(path)), 0);
        assert_string_equal(path, "/system.slice/app.service");
        /* Hybrid hierarchy: v1 lines first. */
        assert_int_equal(sample_parse_cgroup_path("12:memory:/x\n1:name=systemd:/y\n0::/z\n", path, sizeof(path)), 0);
        assert_string_equal(path, "/z");
        assert_int_equal(sample_parse_cgroup_path("12:memory:/x\n", path, sizeof(path)), -ENOENT);
        char longer[128] = "0::/";
        memset(longer + 4, 'a', 100);
        assert_int_equal(sample_parse_cgroup_path(longer, path, sizeof(path)), -ENAMETOOLONG);

        assert_int_equal(sample_parse_cpu_list("0-1\n"), 2);
        assert_int_equal(sample_parse_cpu_list("0-3,5,7-8\n"), 7);
        assert_int_equal(sample_parse_cpu_list("0\n"), 1);
        assert_int_equal(sample_parse_cpu_list(""), 0);
}

static void put(const char *root, const char *rel, const char *text) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        assert_int_equal(mkdir_parents(path, 0755), 0);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_collect(void **state) {
        char root[] = "/tmp/test-sample-XXXXXX", proc[64], sys[64];
        ResourceSampleData d;

        assert_non_null(mkdtemp(root));
        snprintf(proc, sizeof(proc), "%s/proc", root);
        snprintf(sys, sizeof(sys), "%s/sys", root);

        /* Without /proc/stat there is no sample at all. */
        assert_int_equal(sample_collect(proc, sys, NULL, 1, &d), -ENOENT);

        put(proc, "stat", "cpu  100 0 50 800 10 0 0 0 0 0\n");
        put(proc, "meminfo", "MemTotal: 1024 kB\nMemAvailable: 512 kB\nMemFree: 256 kB\n");
        put(proc, "loadavg", "0.50 0.25 0.10 1/10 99\n");
        put(sys, "devices/system/cpu/online", "0-3\n");

        /* No PSI, a cgroup without the memory controller (no memory.current): those arrays stay empty. */
        assert_int_equal(sample_collect(proc, sys, "/workload", 7, &d), 0);
        assert_int_equal(d.pb.boottime_ns, 7);
        assert_int_equal(d.pb.cpus, 4);
        assert_int_equal(d.pb.n_cpu_ns, 8);
        assert_int_equal(d.pb.cpu_ns[0], 1000000000);
        assert_int_equal(d.pb.n_memory_bytes, 5);
        assert_int_equal(d.pb.memory_bytes[1], 512 * 1024);
        assert_int_equal(d.pb.n_load_centi, 3);
        assert_int_equal(d.pb.load_centi[0], 50);
        assert_int_equal(d.pb.n_psi_cpu + d.pb.n_psi_memory + d.pb.n_psi_io, 0);
        assert_int_equal(d.pb.n_cgroup_memory, 0);

        /* PSI, and the workload's cgroup with the memory controller. */
        put(proc, "pressure/cpu", "some avg10=2.00 avg60=0.00 avg300=0.00 total=10\n");
        put(proc,
            "pressure/memory",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        put(proc,
            "pressure/io",
            "some avg10=0.10 avg60=0.00 avg300=0.00 total=3\n"
            "full avg10=0.05 avg60=0.00 avg300=0.00 total=2\n");
        put(sys, "fs/cgroup/workload/memory.current", "300000\n");
        put(sys, "fs/cgroup/workload/memory.events", "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n");
        assert_int_equal(sample_collect(proc, sys, "/workload", 8, &d), 0);
        assert_int_equal(d.pb.n_psi_cpu, 4);
        assert_int_equal(d.pb.psi_cpu[0], 200);
        assert_int_equal(d.pb.psi_cpu[2], 10000);
        assert_int_equal(d.pb.psi_io[1], 5);
        assert_int_equal(d.pb.n_cgroup_memory, 4);
        assert_int_equal(d.pb.cgroup_memory[0], 300000);
        assert_int_equal(d.pb.cgroup_memory[1], 0); /* no memory.peak (before Linux 5.19) */
        assert_int_equal(d.pb.cgroup_memory[3], 1);

        /* Another cgroup, or none: no cgroup memory. */
        assert_int_equal(sample_collect(proc, sys, "/other", 9, &d), 0);
        assert_int_equal(d.pb.n_cgroup_memory, 0);
        assert_int_equal(sample_collect(proc, sys, NULL, 9, &d), 0);
        assert_int_equal(d.pb.n_cgroup_memory, 0);

        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        assert_int_equal(system(cmd), 0);
}

/* The running kernel's own files parse: whatever this machine is, /proc/stat and /proc/meminfo are there. */
static void test_collect_this_machine(void **state) {
        ResourceSampleData d;

        assert_int_equal(sample_collect("/proc", "/sys", NULL, 1, &d), 0);
        assert_int_equal(d.pb.n_cpu_ns, 8);
        assert_true(d.pb.cpu_ns[0] + d.pb.cpu_ns[2] + d.pb.cpu_ns[3] > 0);
        assert_int_equal(d.pb.n_memory_bytes, 5);
        assert_true(d.pb.memory_bytes[0] > 16 * MIB);
        assert_true(d.pb.memory_bytes[1] <= d.pb.memory_bytes[0]);
        assert_true(d.pb.cpus >= 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stat),
                cmocka_unit_test(test_meminfo),
                cmocka_unit_test(test_loadavg),
                cmocka_unit_test(test_pressure),
                cmocka_unit_test(test_keyed_and_paths),
                cmocka_unit_test(test_collect),
                cmocka_unit_test(test_collect_this_machine),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
