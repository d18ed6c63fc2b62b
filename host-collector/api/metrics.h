/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#pragma once

/* Prometheus metrics of tetherd (GET /metrics, text format 0.0.4; docs/metrics.md): the counters and gauges of
 * Stats and the registry, and boot-time histograms fed by a registry observer. Every label takes values from a
 * fixed set (never a machine id), so the series count does not grow with the number of machines.
 *
 * Histograms are observed when a boot becomes ready (or a phase closes), from the record_stored callback of the
 * record that caused it. That callback runs once per stored seq: replays after a lost ack are duplicates (not
 * stored), and store_load() rebuilds boots without notifying observers, so a boot is never observed twice, not
 * even across a restart (a boot that became ready before the restart is not observed by the new process). */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "histogram.h"
#include "registry.h"
#include "stats.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum MetricsPhase {
        METRICS_PHASE_KERNEL,         /* kernel.start → init.start */
        METRICS_PHASE_INIT,           /* init.start → workload.exec (or the boot's end without workload.exec) */
        METRICS_PHASE_WORKLOAD_START, /* workload.exec → ready (or exit before ready) */
        METRICS_PHASE_OTHER,          /* every Phase record the guest reported */
        _METRICS_PHASE_MAX,
} MetricsPhase;

typedef struct Metrics {
        Registry *registry;
        const Stats *stats;
        uint64_t start_unix_ns;
        bool per_machine; /* the tether_guest_* families (--metrics-per-machine) */
        Histogram phase[_METRICS_PHASE_MAX];
        Histogram kernel_to_ready;
        Histogram init_to_ready;
        Histogram registered_to_ready;
        Histogram ready_delivery;
} Metrics;

/* Subscribes to the registry's observers (add it after store_load(): loading is not observed anyway). stats is
 * borrowed and read at render time. Returns 0 or -ENOMEM. */
int metrics_new(Registry *registry, const Stats *stats, bool per_machine, Metrics **ret);
/* Unsubscribes and frees. */
Metrics *metrics_free(Metrics *m);

/* The whole exposition. *ret_text is NUL-terminated (allocated), *ret_len its length. Returns 0 or -ENOMEM. */
int metrics_render(const Metrics *m, char **ret_text, size_t *ret_len);

/* Writes a label value escaped per the text format: backslash, double quote and newline become \\, \" and \n.
 * What metrics_render() uses for every label. */
void metrics_put_label_value(FILE *f, const char *value);

/* Upper bounds of the boot duration histograms and of tether_ready_delivery_seconds, in ns (docs/metrics.md). */
extern const uint64_t metrics_boot_buckets_ns[];
extern const size_t metrics_boot_buckets_n;
extern const uint64_t metrics_delivery_buckets_ns[];
extern const size_t metrics_delivery_buckets_n;
