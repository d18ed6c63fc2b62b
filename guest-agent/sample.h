/* SPDX-License-Identifier: MIT */
#pragma once

/* Resource samples of the guest (protocol version 2, ResourceSample): CPU time per mode (/proc/stat), memory
 * (/proc/meminfo), load (/proc/loadavg), pressure stall information (/proc/pressure/{cpu,memory,io}, where the
 * kernel has it) and the workload's cgroup v2 memory (memory.current, memory.peak, memory.events).
 *
 * The parsers are pure (text in, numbers out) so that unit tests feed them kernel output; sample_collect()
 * reads the files. Without stdio or strtod: the static agent stays within 128 KiB. Never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tether.pb-c.h"

/* What a sample carries (tether.proto, ResourceSample): each array in the wire's order. */
typedef struct ResourceSampleData {
        Tether__ResourceSample pb; /* points into the arrays below */
        uint64_t cpu_ns[8];        /* user, nice, system, idle, iowait, irq, softirq, steal */
        uint64_t memory_bytes[5];  /* MemTotal, MemAvailable, MemFree, SwapTotal, SwapFree */
        uint32_t load_centi[3];
        uint64_t psi[3][4];        /* cpu, memory, io: some avg10, full avg10 (centi-%), some total, full total (ns) */
        uint64_t cgroup_memory[4]; /* memory.current, memory.peak, oom, oom_kill */
} ResourceSampleData;

/* The aggregate "cpu" line of /proc/stat: the eight times, converted from clock ticks (ticks_per_s) to ns.
 * Returns 0 or -EINVAL. */
int sample_parse_stat(const char *text, uint64_t ticks_per_s, uint64_t ret_ns[8]);

/* MemTotal, MemAvailable, MemFree, SwapTotal, SwapFree of /proc/meminfo, in bytes (a missing field stays 0;
 * MemAvailable, new in Linux 3.14, is then estimated as MemFree). Returns 0, or -EINVAL without MemTotal. */
int sample_parse_meminfo(const char *text, uint64_t ret_bytes[5]);

/* /proc/loadavg's three averages in hundredths. Returns 0 or -EINVAL. */
int sample_parse_loadavg(const char *text, uint32_t ret_centi[3]);

/* A /proc/pressure file: some avg10, full avg10 (hundredths of a percent), some total, full total (µs in the
 * file, ns out). A file without a "full" line (cpu before Linux 5.13) leaves those 0. Returns 0 or -EINVAL. */
int sample_parse_pressure(const char *text, uint64_t ret[4]);

/* The value of "key N" in a flat-keyed cgroup file (memory.events, memory.stat). Returns 0, or -ENOENT. */
int sample_parse_keyed(const char *text, const char *key, uint64_t *ret);

/* The CPUs of a kernel CPU list ("0-3,5", /sys/devices/system/cpu/online); 0 when it cannot be read. */
uint32_t sample_parse_cpu_list(const char *text);

/* The cgroup v2 path ("0::/path" line) of /proc/PID/cgroup (what sample_collect() takes); "/" for the root. Returns 0,
 * -ENOENT without a v2 line, -ENAMETOOLONG. */
int sample_parse_cgroup_path(const char *text, char *ret, size_t size);

/* /proc/stat counts in USER_HZ, which is 100 on every architecture Linux exports it for (sysconf(_SC_CLK_TCK)
 * would only say so at the cost of 500 bytes). */
#define SAMPLE_USER_HZ 100u

/* Takes a sample at boottime_ns: reads below proc_root ("/proc") and sys_root ("/sys": the CPU list and, for a
 * workload cgroup (a cgroup v2 path such as "/workload", NULL: none) with the memory controller, its memory files
 * below fs/cgroup). Sources that are missing stay empty in the message. Returns 0, or -errno when even /proc/stat
 * cannot be read. */
int sample_collect(
        const char *proc_root, const char *sys_root, const char *cgroup, uint64_t boottime_ns, ResourceSampleData *ret);
