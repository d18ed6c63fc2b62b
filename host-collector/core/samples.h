/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* A machine's guest resource samples (protocol version 2, ResourceSample): the latest and a short history of
 * the current boot, in a fixed ring. Bounded per machine in count and bytes (SAMPLES_HISTORY entries of
 * sizeof(GuestSample)) and in time: a sample less than SAMPLES_MIN_INTERVAL_NS of guest time after the newest
 * replaces it instead of taking a slot, so that the history spans at least SAMPLES_HISTORY guest seconds however
 * often a guest samples, and the latest is always the freshest (the agent's sample at the workload's exit comes
 * right after a periodic one). Pure. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "tether.pb-c.h"

#define SAMPLES_HISTORY 30u
#define SAMPLES_MIN_INTERVAL_NS (1 * NSEC_PER_SEC)

typedef enum SampleCpuMode {
        SAMPLE_CPU_USER,
        SAMPLE_CPU_NICE,
        SAMPLE_CPU_SYSTEM,
        SAMPLE_CPU_IDLE,
        SAMPLE_CPU_IOWAIT,
        SAMPLE_CPU_IRQ,
        SAMPLE_CPU_SOFTIRQ,
        SAMPLE_CPU_STEAL,
        _SAMPLE_CPU_MODE_MAX,
} SampleCpuMode;

const char *sample_cpu_mode_to_string(SampleCpuMode m);

typedef enum SamplePressure {
        SAMPLE_PRESSURE_CPU,
        SAMPLE_PRESSURE_MEMORY,
        SAMPLE_PRESSURE_IO,
        _SAMPLE_PRESSURE_MAX,
} SamplePressure;

const char *sample_pressure_to_string(SamplePressure p);

typedef struct SamplePressureValues {
        bool present;
        uint32_t some_avg10_centipct, full_avg10_centipct;
        uint64_t some_total_ns, full_total_ns;
} SamplePressureValues;

typedef struct GuestSample {
        uint64_t recv_unix_ns; /* host realtime when tetherd received it */
        uint64_t boottime_ns;  /* guest CLOCK_BOOTTIME when taken: its uptime */
        uint32_t cpus;
        uint64_t cpu_ns[_SAMPLE_CPU_MODE_MAX];
        uint64_t mem_total_bytes, mem_available_bytes, mem_free_bytes;
        uint64_t swap_total_bytes, swap_free_bytes;
        uint32_t load_centi[3]; /* 1, 5, 15 minutes */
        SamplePressureValues pressure[_SAMPLE_PRESSURE_MAX];
        bool cgroup_present;
        uint64_t cgroup_current_bytes, cgroup_peak_bytes, cgroup_oom, cgroup_oom_kill;
} GuestSample;

typedef struct SampleRing {
        GuestSample entries[SAMPLES_HISTORY];
        size_t first, n;   /* oldest at entries[first] */
        uint64_t accepted; /* appended (this boot) */
        uint64_t replaced; /* replaced the newest: less than SAMPLES_MIN_INTERVAL_NS after it */
        uint64_t refused;  /* a guest time before the newest's: not this boot's clock */
} SampleRing;

/* A decoded, validated ResourceSample as a GuestSample received at recv_unix_ns. */
void guest_sample_from_pb(const Tether__ResourceSample *pb, uint64_t recv_unix_ns, GuestSample *ret);

/* Keeps s as the newest sample: appended (the oldest goes when full; returns 1), or in place of the newest when
 * less than SAMPLES_MIN_INTERVAL_NS after it (returns 2). Returns 0 (refused, counted) when its guest time is
 * before the newest's. */
int sample_ring_push(SampleRing *r, const GuestSample *s);

/* The i-th sample, oldest first (i < r->n), or NULL. */
const GuestSample *sample_ring_get(const SampleRing *r, size_t i);
const GuestSample *sample_ring_latest(const SampleRing *r);

/* Forgets the samples (a new boot: its counters start again). */
void sample_ring_reset(SampleRing *r);

/* The share of CPU time that was busy (not idle, not iowait) between two samples of one boot, in millionths
 * (0..1000000); -ERANGE when no CPU time passed or the counters went backwards. */
int64_t guest_sample_cpu_busy_ppm(const GuestSample *older, const GuestSample *newer);
