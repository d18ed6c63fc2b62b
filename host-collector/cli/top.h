/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* tether top: the node's machines with their state, uptime, CPU, memory, memory pressure, log rate and ready
 * time, from two answers of GET /v1/machines taken elapsed_ns apart (rates need both; prev may be NULL, then
 * rates are unknown). Pure: JSON in, text or JSON out, so that tests feed it made-up answers. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The screen: a summary line, then one row per machine (sorted by machine id), fitted to width columns (at least
 * TOP_WIDTH_MIN: the machine id column gives way first). At most max_rows machine rows (0: all), with a last line
 * saying how many more there are. Returns 0, -EINVAL when now has no machines array, -ENOMEM. */
#define TOP_WIDTH_MIN 60u
int top_format(
        const json_t *now,
        const json_t *prev,
        uint64_t elapsed_ns,
        uint64_t now_unix_ns,
        unsigned width,
        unsigned max_rows,
        bool ascii,
        char **ret);

/* The same as one JSON object: {"time_unix_ns", "interval_ns", "machines": [{"machine_id", "state",
 * "request_id", "uptime_ns", "cpu_busy_ratio", "memory_used_bytes", "memory_total_bytes",
 * "memory_pressure_some_avg10_pct", "log_bytes_per_second", "ready_ns"}]}; unknown values are null. Returns 0,
 * -EINVAL, -ENOMEM. */
int top_json(const json_t *now, const json_t *prev, uint64_t elapsed_ns, uint64_t now_unix_ns, json_t **ret);
