/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* Human forms of tetherd's API objects (docs/api.md). Pure: JSON in, text out; everything the guest controls
 * is sanitized for the terminal. Returned strings have no trailing newline unless said otherwise. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* A member of an API object: the string (NULL if absent or not a string); a non-negative integer (false if
 * not one); s unless it is NULL or empty. */
const char *json_str(const json_t *obj, const char *key);
bool json_u64(const json_t *obj, const char *key, uint64_t *ret);
const char *nonempty(const char *s);

/* The elements of a machines array sorted by machine id (borrowed), or NULL when out of memory. Free the array. */
json_t **machines_sorted(const json_t *machines);

#define TIMESTAMP_MAX 40

/* Local time with milliseconds, "2024-05-01 12:00:00.123". */
char *format_timestamp(uint64_t unix_ns, char buf[static TIMESTAMP_MAX]);

/* The text of an API error response: its "error" member, else the body itself, else "HTTP <status>". */
char *api_error_message(long status, const json_t *body, const char *raw_body);

/* `tether ls`: MACHINE STATE TRANSPORT BOOT READY REQUEST table of {"machines": [...]}, sorted by id, with a
 * trailing newline. Returns 0, -EINVAL (no machines array), -ENOMEM. */
int format_machine_table(const json_t *doc, bool ascii, char **ret);

/* `tether get`: "key   value" lines of one machine object, trailing newline. Returns 0, -EINVAL, -ENOMEM. */
int format_machine_details(const json_t *machine, bool ascii, char **ret);

/* One event of /v1/events: "time  machine  transition  key=value ...". Returns 0, -EINVAL (not an object),
 * -ENOMEM. */
int format_event_line(const json_t *event, bool ascii, char **ret);

typedef struct LogFormat {
        bool prefix_streams; /* "stderr: " etc. before lines of streams other than stdout */
        bool sanitize;       /* escape control characters (output is a terminal) */
        bool ascii;
} LogFormat;

/* One record of /v1/machines/{id}/logs: the line's text (after "stream: " and "[priority] " when those apply), or
 * "-- N records (M bytes) dropped: reason --" for a drop marker. Returns 0, -EINVAL (neither a line nor a drop marker),
 * -ENOMEM. */
int format_log_record(const json_t *record, const LogFormat *f, char **ret);

/* wait-ready, 200: "vm-42 ready after 1.214s (kernel→ready), source sd_notify". Returns 0, -ENOMEM. */
int format_ready(const char *machine_id, const json_t *body, bool ascii, char **ret);

/* wait-ready, anything but 200: the reason it is not ready (timeout, failure, or the API error). Returns 0,
 * -ENOMEM. */
int format_not_ready(
        const char *machine_id, long status, const json_t *body, const char *raw_body, bool ascii, char **ret);
