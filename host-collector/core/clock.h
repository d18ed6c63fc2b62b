/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Guest clock alignment (docs/protocol.md, "Clock alignment"). Pure: callers pass every time in.
 *
 * tetherd sends ClockProbe{id} noting host CLOCK_MONOTONIC and CLOCK_REALTIME; the agent answers with its
 * CLOCK_BOOTTIME. With round trip rtt, host_realtime(send) + rtt/2 ≈ guest_boottime + offset, error bound
 * rtt/2. The estimate with the smallest bound wins; a fresh sample replaces it only when its bound is smaller,
 * or when the kept one is older than CLOCK_ESTIMATE_MAX_AGE_NS and the new bound is within 2x. */

#include <stdbool.h>
#include <stdint.h>

#define CLOCK_PROBES_PENDING_MAX 16u
#define CLOCK_ESTIMATE_MAX_AGE_NS (UINT64_C(300) * UINT64_C(1000000000))

typedef struct ClockProbeSlot {
        uint64_t id; /* 0 = free */
        uint64_t sent_monotonic_ns;
        uint64_t sent_realtime_ns;
} ClockProbeSlot;

/* Probes sent on one connection and not answered yet. */
typedef struct ClockProber {
        ClockProbeSlot slots[CLOCK_PROBES_PENDING_MAX];
        uint64_t next_id;
} ClockProber;

/* The kept sample of one boot: host_realtime = guest_boottime + offset_ns, within ± error_ns. */
typedef struct ClockEstimate {
        bool valid;
        int64_t offset_ns;
        uint64_t error_ns;
        uint64_t taken_monotonic_ns; /* host CLOCK_MONOTONIC when the kept sample arrived */
} ClockEstimate;

/* Allocates the next probe id (never 0) and remembers when it was sent. When every slot is taken the oldest
 * unanswered probe is forgotten (its late answer will be ignored). Returns the id. */
uint64_t clock_prober_send(ClockProber *p, uint64_t sent_monotonic_ns, uint64_t sent_realtime_ns);

/* Looks up and forgets a pending probe. Returns 0, or -ENOENT for an id that was not sent or was already
 * answered (such samples must be ignored and counted). */
int clock_prober_take(ClockProber *p, uint64_t id, ClockProbeSlot *ret);

/* Computes the estimate one answered probe gives. Returns 0, or -EINVAL if the answer came "before" the
 * probe was sent (recv < sent: a broken host clock, never trust it) or the guest time is beyond INT64_MAX. */
int clock_sample_estimate(
        const ClockProbeSlot *probe, uint64_t recv_monotonic_ns, uint64_t guest_boottime_ns, ClockEstimate *ret);

/* Offers a candidate to the kept estimate, applying the replacement rules. Returns 1 if it was kept, 0 if
 * the old one stays. */
int clock_estimate_offer(ClockEstimate *kept, const ClockEstimate *candidate);

/* Maps a guest boottime to host realtime ns with the kept estimate. Returns 0, or -ENODATA without one. */
int clock_estimate_to_host(const ClockEstimate *e, uint64_t boottime_ns, uint64_t *ret_realtime_ns);
