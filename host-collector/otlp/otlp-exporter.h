/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* The OTLP exporter: a registry observer turning stitched spans (each once, when closed), workload log lines,
 * lifecycle events and guest resource samples into OTLP, with tetherd's own metrics every metrics_interval_ns, batched
 * per signal in a bounded queue, and delivered either over OTLP/HTTP (protobuf, gzip, retries with backoff and
 * Retry-After, an optional on-disk spool) or, without a backend, as OTLP/JSON lines to a file. Never blocks ingestion;
 * every lost item is counted in Stats.export. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "otlp-metrics.h"
#include "registry.h"
#include "stats.h"
#include "store.h"

typedef struct OtlpConfig {
        const char *endpoint;        /* base URL: <endpoint>/v1/traces, /v1/logs; NULL: none */
        const char *traces_endpoint; /* full URL overriding the base for traces */
        const char *logs_endpoint;
        const char *metrics_endpoint;
        const char *const *headers; /* "Name=Value" */
        size_t n_headers;
        const char *file_path; /* OTLP/JSON lines when no endpoint is set; NULL: no file */
        uint64_t file_max_bytes;
        uint64_t queue_bytes;  /* per signal */
        const char *spool_dir; /* NULL: no spool */
        uint64_t spool_bytes;
        bool gzip;
        size_t batch_items;
        uint64_t batch_bytes;
        uint64_t batch_delay_ns;
        uint64_t backoff_initial_ns;
        uint64_t backoff_max_ns;
        uint64_t request_timeout_ns;
        uint64_t shutdown_timeout_ns; /* how long a final flush may take without a spool */
        uint64_t metrics_interval_ns; /* tetherd's own metrics every this long; 0: not exported */
} OtlpConfig;

#define OTLP_METRICS_INTERVAL_DEFAULT_NS (30 * NSEC_PER_SEC)

#define OTLP_QUEUE_BYTES_DEFAULT (UINT64_C(4) << 20)
#define OTLP_SPOOL_BYTES_DEFAULT (UINT64_C(256) << 20)
#define OTLP_FILE_MAX_BYTES_DEFAULT (UINT64_C(64) << 20)

void otlp_config_init(OtlpConfig *c);

typedef struct OtlpExporter OtlpExporter;

/* Subscribes to the registry. store (NULL without a state directory) is where log records that waited for their
 * boot's clock mapping are read back from. Returns 0 or -errno (logged). */
int otlp_exporter_new(
        sd_event *event, Registry *registry, Store *store, Stats *stats, const OtlpConfig *config, OtlpExporter **ret);
/* Final flush: with a spool, everything pending goes to disk; otherwise one last attempt bounded by
 * shutdown_timeout_ns, the rest counted as dropped (shutdown). Idempotent. */
void otlp_exporter_shutdown(OtlpExporter *x);
OtlpExporter *otlp_exporter_free(OtlpExporter *x);
DEFINE_TRIVIAL_CLEANUP_FUNC(OtlpExporter *, otlp_exporter_free);

/* The boot histograms the fleet metrics carry (borrowed: they must outlive x; NULL: none). */
void otlp_exporter_set_fleet_histograms(OtlpExporter *x, const OtlpFleetHistograms *h);

/* "Name=Value" (or "Name: Value") → "Name: Value". Returns 0 or -EINVAL (no name, or CR/LF inside)/-ENOMEM. */
int otlp_header_from_option(const char *s, char **ret);
