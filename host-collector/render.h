/* SPDX-License-Identifier: MIT */
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
/* The "boot" member (also used for older boots). */
json_t *render_boot(const Machine *m, const Boot *b);
/* The "ready" member of a boot, or JSON null when it is not ready. */
json_t *render_ready(const Machine *m, const Boot *b);
/* {"trace_id", "spans": [...]} */
json_t *render_spans(const SpanSet *s);
json_t *render_stats(const Stats *s);

/* Lower-case hex of an id into out (2n+1 bytes). */
void render_hex(const uint8_t *id, size_t n, char *out);
