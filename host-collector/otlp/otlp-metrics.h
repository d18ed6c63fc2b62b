/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* What the metrics signal carries (docs/otlp.md, "Metrics"): the OpenTelemetry metrics of one guest resource
 * sample, and tetherd's own fleet metrics. Each metric is handed to emit as an OtlpMetric whose strings and points
 * live until emit returns. Pure: no I/O, no logging. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"
#include "machine.h"
#include "otlp-encode.h"
#include "samples.h"
#include "stats.h"

/* Returns 0 to go on, or -errno to stop (returned by the caller). */
typedef int (*OtlpMetricEmit)(const OtlpMetric *m, void *userdata);

/* The metrics of one sample: system.cpu.time, system.memory.usage, ... Cumulative ones start at the guest's boot
 * (the sample's receive time minus its uptime). Returns how many (emit NULL: only counts them), or emit's
 * error. */
int otlp_guest_sample_metrics(const GuestSample *g, OtlpMetricEmit emit, void *userdata);

/* Boot-time histograms shared by /metrics and the metrics signal (NULL: none). */
typedef struct OtlpFleetHistograms {
        const Histogram *kernel, *init, *workload_start, *phase; /* per boot stage, and every guest Phase */
        const Histogram *kernel_to_ready, *init_to_ready, *registered_to_ready, *ready_delivery;
} OtlpFleetHistograms;

/* What the node looks like now, besides Stats. */
typedef struct OtlpFleetState {
        uint64_t machines; /* registered */
        uint64_t machines_by_state[_MACHINE_STATE_MAX];
        uint64_t agents_connected; /* machines whose agent is connected */
        uint64_t start_unix_ns;    /* when tetherd started: the start of every cumulative metric */
        uint64_t now_unix_ns;
        const OtlpFleetHistograms *histograms; /* may be NULL */
} OtlpFleetState;

/* tetherd's own metrics: lifecycle counters, export health and drops, samples, connections, and the boot
 * histograms when given. Returns how many, or emit's error. */
int otlp_fleet_metrics(const Stats *stats, const OtlpFleetState *state, OtlpMetricEmit emit, void *userdata);
