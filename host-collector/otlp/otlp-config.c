/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
/* The exporter's settings: defaults, and --otlp-header parsing. */
#include "otlp-exporter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

void otlp_config_init(OtlpConfig *c) {
        *c = (OtlpConfig) {
                .file_max_bytes = OTLP_FILE_MAX_BYTES_DEFAULT,
                .queue_bytes = OTLP_QUEUE_BYTES_DEFAULT,
                .spool_bytes = OTLP_SPOOL_BYTES_DEFAULT,
                .gzip = true,
                .batch_items = 8192,
                .batch_bytes = UINT64_C(1) << 20,
                .batch_delay_ns = NSEC_PER_SEC,
                .backoff_initial_ns = NSEC_PER_SEC,
                .backoff_max_ns = 5 * NSEC_PER_SEC,
                .request_timeout_ns = 10 * NSEC_PER_SEC,
                .shutdown_timeout_ns = 3 * NSEC_PER_SEC,
                .metrics_interval_ns = OTLP_METRICS_INTERVAL_DEFAULT_NS,
        };
}

int otlp_header_from_option(const char *s, char **ret) {
        const char *sep = strpbrk(s, "=:");
        char *h;

        if (!sep || sep == s || strpbrk(s, "\r\n"))
                return -EINVAL;
        const char *v = sep + 1;
        while (*v == ' ')
                v++;
        if (asprintf(&h, "%.*s: %s", (int) (sep - s), s, v) < 0)
                return -ENOMEM;
        *ret = h;
        return 0;
}
