/* SPDX-License-Identifier: MIT */
/* What a resource sample costs the guest (bench/sample-cost): CPU time and wall time of sample_collect() over this
 * machine's real /proc and /sys, against the floor of any sampler reading the same files (open, read, close, no
 * parsing), measured in the same run; and the bytes a sample takes on the wire. Prints one JSON object.
 *
 * usage: tether-sample-cost [ITERATIONS] [CGROUP] */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "frame.h"
#include "sample.h"

static uint64_t clock_ns(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* The files sample_collect() reads, read raw. */
static void read_floor(const char *cgroup) {
        static const char *const fixed[] = {
                "/sys/devices/system/cpu/online",
                "/proc/stat",
                "/proc/meminfo",
                "/proc/loadavg",
                "/proc/pressure/cpu",
                "/proc/pressure/memory",
                "/proc/pressure/io",
        };
        char buf[2048], path[512];

        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + (cgroup ? 3 : 0); i++) {
                const char *p = fixed[i % 7];
                if (i >= 7) {
                        static const char *const cg[] = { "memory.current", "memory.peak", "memory.events" };
                        snprintf(path, sizeof(path), "/sys/fs/cgroup%s/%s", cgroup, cg[i - 7]);
                        p = path;
                }
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                while (read(fd, buf, sizeof(buf) - 1) > 0)
                        if (i == 1)
                                break; /* /proc/stat: the first block, as the sampler */
                close(fd);
        }
}

int main(int argc, char *argv[]) {
        unsigned n = argc > 1 ? (unsigned) atoi(argv[1]) : 20000;
        const char *cgroup = argc > 2 ? argv[2] : NULL;
        ResourceSampleData d;

        if (sample_collect("/proc", "/sys", cgroup, 1, &d) < 0) {
                fprintf(stderr, "sample_collect failed\n");
                return 1;
        }

        uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), wall0 = clock_ns(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < n; i++)
                (void) sample_collect("/proc", "/sys", cgroup, i, &d);
        uint64_t cpu1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), wall1 = clock_ns(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < n; i++)
                read_floor(cgroup);
        uint64_t cpu2 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), wall2 = clock_ns(CLOCK_MONOTONIC);

        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE;
        e.resource_sample = &d.pb;
        uint8_t *frame;
        size_t len;
        if (envelope_pack_frame(&e, &frame, &len) < 0)
                return 1;
        free(frame);

        printf("{\"iterations\": %u, \"cgroup\": %s%s%s, \"sample_cpu_ns\": %" PRIu64 ", \"sample_wall_ns\": %" PRIu64
               ", \"floor_cpu_ns\": %" PRIu64 ", \"floor_wall_ns\": %" PRIu64
               ", \"frame_bytes\": %zu, "
               "\"psi\": %s, \"has_cgroup\": %s}\n",
               n,
               cgroup ? "\"" : "",
               cgroup ?: "null",
               cgroup ? "\"" : "",
               (cpu1 - cpu0) / n,
               (wall1 - wall0) / n,
               (cpu2 - cpu1) / n,
               (wall2 - wall1) / n,
               len,
               d.pb.n_psi_cpu ? "true" : "false",
               d.pb.n_cgroup_memory ? "true" : "false");
        return 0;
}
