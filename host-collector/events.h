/* SPDX-License-Identifier: MIT */
#pragma once

/* A bounded ring of recent lifecycle events, each kept as its serialized JSON line. Readers follow it by
 * event id (ids only grow; an id older than the ring's oldest entry was overwritten). Never logs. */

#include <stddef.h>
#include <stdint.h>

typedef struct Event {
        uint64_t id; /* >= 1 */
        char *machine_id;
        char *json; /* one JSON object, no trailing newline */
} Event;

typedef struct EventLog {
        Event *ring;
        size_t capacity, head, n;
        uint64_t next_id;
} EventLog;

int event_log_new(size_t capacity, EventLog **ret);
EventLog *event_log_free(EventLog *l);

/* Takes ownership of json (always, also on failure). Returns 0 or -ENOMEM. */
int event_log_append(EventLog *l, const char *machine_id, char *json, const Event **ret);

static inline const Event *event_log_at(const EventLog *l, size_t i) {
        return &l->ring[(l->head + i) % l->capacity];
}

/* Index of the first event with id > after_id (n if none). */
size_t event_log_find_after(const EventLog *l, uint64_t after_id);
