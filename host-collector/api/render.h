/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#pragma once

/* JSON views of the model for the HTTP API (docs/api.md). Pure: every function returns a new object, or NULL
 * on allocation failure. */

#include <jansson.h>
#include <stdint.h>

#include "machine.h"
#include "stats.h"
#include "stitch.h"

/* The machine object of GET /v1/machines/{id}. */
json_t *render_machine(const Machine *m, const char *node_id);
/* GET /v1/machines/{id}/metrics: the current boot's resource samples, latest and history (oldest first). */
json_t *render_machine_metrics(const Machine *m, const char *node_id);
/* One resource sample. */
json_t *render_sample(const GuestSample *g);
/* The machine object's "resources" member: a summary of the latest sample, or JSON null. */
json_t *render_resources(const Machine *m);
/* The "boot" member (also used for older boots). */
json_t *render_boot(const Machine *m, const Boot *b);
/* The "ready" member of a boot, or JSON null when it is not ready. */
json_t *render_ready(const Machine *m, const Boot *b);
/* The lines of a log entry as GET /v1/machines/{id}/logs shows them: one object per line of output (a trailing
 * newline ends the last line rather than starting one; a last line without one is "partial"; "priority" the syslog
 * priority 0 … 7 of a line that has one), attributed to the span of spans (may be NULL) its time falls in. Each
 * object (NULL when out of memory) is passed to fn, which consumes it and returns 0 to go on or > 0 to stop after
 * that line: a record of 16 KiB of empty lines is 16,384 objects (3.5 MiB), so a reader renders it a chunk at a
 * time. Rendering starts at byte *offset of the entry's
 * data (NULL: at 0). Returns 0 when its last line was rendered, 1 when fn stopped with lines left (*offset is then
 * where the next one starts), -ENOMEM, or fn's negative return. */
typedef int (*RenderLogLineFn)(json_t *o, void *userdata);
int render_log_lines(
        const Machine *m,
        const Boot *b,
        const LogEntry *e,
        const SpanSet *spans,
        size_t *offset,
        RenderLogLineFn fn,
        void *userdata);
/* The object of the logs API for records lost before seq: {"machine_id", "boot_id", "seq", "dropped": {...}}. */
json_t *render_log_dropped(
        const Machine *m, const Boot *b, uint64_t seq, uint64_t records, uint64_t bytes, const char *reason);
/* {"trace_id", "spans": [...]} */
json_t *render_spans(const SpanSet *s);
json_t *render_stats(const Stats *s);

/* Lower-case hex of an id into out (2n+1 bytes). */
void render_hex(const uint8_t *id, size_t n, char *out);
