/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "samples.h"

#include <errno.h>
#include <string.h>

static const char *const cpu_mode_names[_SAMPLE_CPU_MODE_MAX] = {
        [SAMPLE_CPU_USER] = "user",       [SAMPLE_CPU_NICE] = "nice",     [SAMPLE_CPU_SYSTEM] = "system",
        [SAMPLE_CPU_IDLE] = "idle",       [SAMPLE_CPU_IOWAIT] = "iowait", [SAMPLE_CPU_IRQ] = "irq",
        [SAMPLE_CPU_SOFTIRQ] = "softirq", [SAMPLE_CPU_STEAL] = "steal",
};

static const char *const pressure_names[_SAMPLE_PRESSURE_MAX] = {
        [SAMPLE_PRESSURE_CPU] = "cpu",
        [SAMPLE_PRESSURE_MEMORY] = "memory",
        [SAMPLE_PRESSURE_IO] = "io",
};

const char *sample_cpu_mode_to_string(SampleCpuMode m) {
        return m < _SAMPLE_CPU_MODE_MAX ? cpu_mode_names[m] : NULL;
}

const char *sample_pressure_to_string(SamplePressure p) {
        return p < _SAMPLE_PRESSURE_MAX ? pressure_names[p] : NULL;
}

/* Entry i of a sample array, 0 where the guest sent fewer. */
static uint64_t entry(const uint64_t *a, size_t n, size_t i) {
        return i < n ? a[i] : 0;
}

static void pressure_from_pb(const uint64_t *a, size_t n, SamplePressureValues *ret) {
        *ret = (SamplePressureValues) {
                .present = n > 0,
                .some_avg10_centipct = (uint32_t) entry(a, n, 0),
                .full_avg10_centipct = (uint32_t) entry(a, n, 1),
                .some_total_ns = entry(a, n, 2),
                .full_total_ns = entry(a, n, 3),
        };
}

void guest_sample_from_pb(const Tether__ResourceSample *pb, uint64_t recv_unix_ns, GuestSample *ret) {
        *ret = (GuestSample) {
                .recv_unix_ns = recv_unix_ns,
                .boottime_ns = pb->boottime_ns,
                .cpus = pb->cpus,
                .mem_total_bytes = entry(pb->memory_bytes, pb->n_memory_bytes, 0),
                .mem_available_bytes = entry(pb->memory_bytes, pb->n_memory_bytes, 1),
                .mem_free_bytes = entry(pb->memory_bytes, pb->n_memory_bytes, 2),
                .swap_total_bytes = entry(pb->memory_bytes, pb->n_memory_bytes, 3),
                .swap_free_bytes = entry(pb->memory_bytes, pb->n_memory_bytes, 4),
                .cgroup_present = pb->n_cgroup_memory > 0,
                .cgroup_current_bytes = entry(pb->cgroup_memory, pb->n_cgroup_memory, 0),
                .cgroup_peak_bytes = entry(pb->cgroup_memory, pb->n_cgroup_memory, 1),
                .cgroup_oom = entry(pb->cgroup_memory, pb->n_cgroup_memory, 2),
                .cgroup_oom_kill = entry(pb->cgroup_memory, pb->n_cgroup_memory, 3),
        };
        /* SampleCpuMode is the wire's order. */
        for (SampleCpuMode m = 0; m < _SAMPLE_CPU_MODE_MAX; m++)
                ret->cpu_ns[m] = entry(pb->cpu_ns, pb->n_cpu_ns, m);
        for (size_t i = 0; i < 3 && i < pb->n_load_centi; i++)
                ret->load_centi[i] = pb->load_centi[i];
        pressure_from_pb(pb->psi_cpu, pb->n_psi_cpu, &ret->pressure[SAMPLE_PRESSURE_CPU]);
        pressure_from_pb(pb->psi_memory, pb->n_psi_memory, &ret->pressure[SAMPLE_PRESSURE_MEMORY]);
        pressure_from_pb(pb->psi_io, pb->n_psi_io, &ret->pressure[SAMPLE_PRESSURE_IO]);
}

const GuestSample *sample_ring_get(const SampleRing *r, size_t i) {
        if (i >= r->n)
                return NULL;
        return &r->entries[(r->first + i) % SAMPLES_HISTORY];
}

const GuestSample *sample_ring_latest(const SampleRing *r) {
        return r->n > 0 ? sample_ring_get(r, r->n - 1) : NULL;
}

int sample_ring_push(SampleRing *r, const GuestSample *s) {
        const GuestSample *last = sample_ring_latest(r);

        /* Guest time, not host time: the guest's own interval is what it controls, and a burst queued behind a
         * slow link arrives at once without being a fast sampler. */
        if (last && s->boottime_ns < last->boottime_ns) {
                r->refused++;
                return 0;
        }
        if (last && s->boottime_ns - last->boottime_ns < SAMPLES_MIN_INTERVAL_NS) {
                r->entries[(r->first + r->n - 1) % SAMPLES_HISTORY] = *s;
                r->replaced++;
                return 2;
        }
        if (r->n == SAMPLES_HISTORY) {
                r->first = (r->first + 1) % SAMPLES_HISTORY;
                r->n--;
        }
        r->entries[(r->first + r->n) % SAMPLES_HISTORY] = *s;
        r->n++;
        r->accepted++;
        return 1;
}

void sample_ring_reset(SampleRing *r) {
        r->first = r->n = 0;
        r->accepted = r->replaced = r->refused = 0;
}

int64_t guest_sample_cpu_busy_ppm(const GuestSample *older, const GuestSample *newer) {
        uint64_t total = 0, idle = 0;

        for (SampleCpuMode m = 0; m < _SAMPLE_CPU_MODE_MAX; m++) {
                if (newer->cpu_ns[m] < older->cpu_ns[m])
                        return -ERANGE;
                uint64_t d = newer->cpu_ns[m] - older->cpu_ns[m];
                if (d > UINT64_MAX - total)
                        return -ERANGE;
                total += d;
                if (m == SAMPLE_CPU_IDLE || m == SAMPLE_CPU_IOWAIT)
                        idle += d;
        }
        if (total == 0)
                return -ERANGE;
        /* (total - idle) / total in millionths, without overflowing: total can be any 64-bit value. */
        long double busy = (long double) (total - idle) / (long double) total;
        return (int64_t) (busy * 1000000.0L + 0.5L);
}
