/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* The OpenTelemetry SDK environment variables an operator already sets for every other exporter on the node
 * (OTEL_EXPORTER_OTLP_*), applied to an OtlpConfig before the command line overrides them. Pure: reads only
 * the getenv-style function it is given, never logs. */

#include <stddef.h>

#include "otlp-exporter.h"

typedef struct OtlpEnv {
        char **headers; /* "Name=Value", owned */
        size_t n_headers;
} OtlpEnv;

void otlp_env_done(OtlpEnv *e);

/* OTEL_EXPORTER_OTLP_HEADERS: "k1=v1,k2=v2", whitespace around keys and values ignored, values
 * percent-decoded (W3C baggage style). Returns 0, -EINVAL (an entry without a name or '=', a bad escape, CR or
 * LF) or -ENOMEM. */
int otlp_parse_headers_env(const char *s, char ***ret, size_t *ret_n);

/* Applies OTEL_EXPORTER_OTLP_ENDPOINT, _TRACES_ENDPOINT, _LOGS_ENDPOINT, _METRICS_ENDPOINT (pointers into the
 * environment),
 * _HEADERS (into e), _COMPRESSION (gzip|none), _TIMEOUT (ms) and checks _PROTOCOL (only http/protobuf).
 * Returns 0, or -EINVAL with *ret_bad (may be NULL) set to the variable's name, or -EPROTONOSUPPORT for another
 * protocol, or -ENOMEM. */
int otlp_config_from_env(OtlpConfig *c, OtlpEnv *e, const char *(*get)(const char *name), const char **ret_bad);
