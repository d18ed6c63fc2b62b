/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* OTLP/JSON (the protobuf JSON mapping with OTLP's exceptions): lowerCamelCase keys, trace/span ids as hex
 * (other bytes base64), enums as integers, 64-bit integers as strings, default values left out, strings that
 * are not UTF-8 sanitized (U+FFFD). Pure. */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "otlp-encode.h"
#include "stats.h"

/* Any OTLP message as one compact JSON object (no newline) in *ret. Returns 0 or -ENOMEM (also: nested deeper
 * than 64 levels). */
int otlp_message_to_json(const ProtobufCMessage *m, char **ret);

/* Decodes an encoded Export{Trace,Logs,Metrics}ServiceRequest and returns it as one compact JSON line (no newline) in
 * *ret. Returns 0, -EBADMSG (does not decode), -EINVAL (signal) or -ENOMEM. */
int otlp_request_to_json(ExportSignal signal, const uint8_t *body, size_t len, char **ret);

/* s[0..n) as the inside of a JSON string (no quotes): invalid UTF-8 and NUL sanitized to U+FFFD, quote,
 * backslash and control characters escaped. out needs room for OTLP_JSON_ESCAPED_MAX(n), all of which it may
 * use as scratch: the bytes after those written are undefined. Returns the bytes written. */
#define OTLP_JSON_ESCAPED_MAX(n) ((n) *6)
size_t otlp_json_escape_into(const char *s, size_t n, char *out);

/* The OTLP/JSON log record template (see OtlpLogTemplate): the same fields as otlp_log_template_protobuf().
 * Returns 0 or -E2BIG. */
int otlp_log_template_json(const OtlpLogLine *l, OtlpLogTemplate *ret);
/* The most one line of n bytes of text takes as JSON. */
size_t otlp_log_line_json_max(const OtlpLogTemplate *t, size_t n);
/* Writes one line's LogRecord as a JSON object to out; returns the bytes written. */
size_t otlp_log_line_json(const OtlpLogTemplate *t, const char *text, size_t n, bool partial, char *out);
/* The lines of text[0..len) (split at newlines; a last line without one is partial), each as otlp_log_line_json()
 * writes it, separated by ',': as many as max_items, and as long as the next one's most
 * (otlp_log_line_json_max()) still fits in room. Returns the bytes written (0 when the first line's most does not
 * fit); *ret_consumed: the text they took (newlines included), *ret_items: how many lines. */
size_t otlp_log_lines_json(
        const OtlpLogTemplate *t,
        const char *text,
        size_t len,
        size_t room,
        size_t max_items,
        char *out,
        size_t *ret_consumed,
        size_t *ret_items);

/* One encoded Span (EXPORT_SIGNAL_TRACES), LogRecord (LOGS) or Metric (METRICS) as a JSON object. Returns 0, -EBADMSG
 * or -ENOMEM. */
int otlp_item_to_json(ExportSignal signal, const uint8_t *data, size_t len, char **ret, size_t *ret_len);
/* The encoded Resource of b as JSON, made once and kept with b. Returns 0, -EBADMSG or -ENOMEM. */
int otlp_blob_resource_json(OtlpBlob *b, const char **ret, size_t *ret_len);
/* {"name":"tether","version":...}: the scope as JSON (static). */
const char *otlp_scope_json(size_t *ret_len);
