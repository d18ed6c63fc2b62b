/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* Renders a boot trace (the JSON of GET /v1/machines/{id}/spans) as a terminal waterfall: a header, one row
 * per span (indented by depth, offset from the start of the trace, duration, a bar on a shared time axis),
 * then the root span's events. Pure: JSON and options in, text out. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Bars never get fewer cells than this, even when the terminal is narrower than the rows. */
#define WATERFALL_MIN_BAR 10U

typedef struct WaterfallOptions {
        unsigned width;         /* terminal columns */
        bool ascii;             /* '#' bars and ASCII-only text */
        const char *machine_id; /* NULL: not shown */
        const char *boot_id;    /* NULL: not shown */
        int64_t clock_error_ns; /* < 0: from the root span's tether.clock.error_ns attribute, if present */
} WaterfallOptions;

/* Returns 0 and the text (lines end in '\n'), -EINVAL if doc is not a spans document (no "spans" array, a
 * span without a name or start time), -ENOMEM. */
int waterfall_render(const json_t *doc, const WaterfallOptions *o, char **ret);

/* The bar of a span covering [start, end) ns of a timeline of total ns drawn in width cells: exactly width
 * cells (spaces, full blocks, and a left-aligned eighth block for the fractional end; '#' in ASCII mode, whole
 * cells). The start goes to the nearest cell boundary, the length is exact to an eighth of a cell; a span with
 * end > start never renders empty (at least an eighth). Returns 0 or -ENOMEM. */
int waterfall_bar(uint64_t start, uint64_t end, uint64_t total, unsigned width, bool ascii, char **ret);
