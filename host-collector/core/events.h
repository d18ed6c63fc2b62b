/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* A bounded log of recent lifecycle events, each kept as its serialized JSON line, in id order. Readers follow
 * it by event id (ids only grow; an id no longer in the log was evicted). Never logs.
 *
 * Bounded by count and by bytes (the JSON, the machine id and the entry itself). When either is reached, the
 * machine (or the node, for events without one) that holds the most bytes gives up its oldest events: a guest
 * that floods milestones or reconnects evicts its own history, never a quiet machine's. */

#include <stddef.h>
#include <stdint.h>

#include "hashmap.h"
#include "list.h"

typedef struct EventOwner EventOwner;

typedef struct Event {
        uint64_t id; /* >= 1 */
        char *machine_id;
        char *json;  /* one JSON object, no trailing newline */
        size_t size; /* what it is charged: json, machine id, the entry */
        EventOwner *owner;
} Event;

struct EventOwner {
        char *key; /* the machine id, "" for the node */
        size_t count, bytes;
        LIST_FIELDS(EventOwner, owners);
};

typedef struct EventLog {
        Event *events; /* compact, oldest first */
        size_t n, max_events, max_bytes, bytes;
        uint64_t next_id;
        Hashmap *owners_by_key;
        LIST_HEAD(EventOwner, owners);
        uint64_t evicted; /* events evicted by the bounds */
} EventLog;

int event_log_new(size_t max_events, size_t max_bytes, EventLog **ret);
EventLog *event_log_free(EventLog *l);

/* Takes ownership of json (always, also on failure). Returns 0, -E2BIG when the event alone exceeds an
 * eighth of max_bytes (not kept), or -ENOMEM. */
int event_log_append(EventLog *l, const char *machine_id, char *json, const Event **ret);

static inline const Event *event_log_at(const EventLog *l, size_t i) {
        return &l->events[i];
}

/* Index of the first event with id > after_id (n if none). */
size_t event_log_find_after(const EventLog *l, uint64_t after_id);

/* Events and bytes the log holds for this machine (NULL: the node's). */
size_t event_log_count(const EventLog *l, const char *machine_id);
size_t event_log_bytes(const EventLog *l, const char *machine_id);
