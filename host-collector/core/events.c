/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "events.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bsearch-util.h"
#include "macro.h"

int event_log_new(size_t max_events, size_t max_bytes, EventLog **ret) {
        if (max_events == 0 || max_bytes == 0)
                return -EINVAL;
        EventLog *l = calloc(1, sizeof(EventLog));
        if (!l)
                return -ENOMEM;
        l->events = calloc(max_events, sizeof(Event));
        l->owners_by_key = hashmap_new();
        if (!l->events || !l->owners_by_key) {
                event_log_free(l);
                return -ENOMEM;
        }
        l->max_events = max_events;
        l->max_bytes = max_bytes;
        l->next_id = 1;
        *ret = l;
        return 0;
}

static void owner_release(EventLog *l, EventOwner *o, size_t size) {
        o->count--;
        o->bytes -= size;
        if (o->count > 0)
                return;
        hashmap_remove(l->owners_by_key, o->key);
        LIST_REMOVE(owners, l->owners, o);
        free(o->key);
        free(o);
}

static void event_done(EventLog *l, Event *e) {
        l->bytes -= e->size;
        owner_release(l, e->owner, e->size);
        free(e->machine_id);
        free(e->json);
        *e = (Event) {};
}

EventLog *event_log_free(EventLog *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; l->events && i < l->n; i++)
                event_done(l, &l->events[i]);
        free(l->events);
        hashmap_free(l->owners_by_key);
        free(l);
        return NULL;
}

static EventOwner *owner_get(EventLog *l, const char *machine_id) {
        const char *key = machine_id ?: "";
        EventOwner *o = hashmap_get(l->owners_by_key, key);

        if (o)
                return o;
        o = calloc(1, sizeof(EventOwner));
        if (!o || !(o->key = strdup(key))) {
                free(o);
                return NULL;
        }
        if (hashmap_put(l->owners_by_key, o->key, o) < 0) {
                free(o->key);
                free(o);
                return NULL;
        }
        LIST_PREPEND(owners, l->owners, o);
        return o;
}

/* The owner that holds the most bytes. */
static EventOwner *largest_owner(const EventLog *l) {
        EventOwner *best = NULL;

        for (EventOwner *o = l->owners; o; o = o->owners_next)
                if (!best || o->bytes > best->bytes)
                        best = o;
        return best;
}

/* Evicts the oldest eighth (at least one) of the owner's events in one pass, so that a flood costs one
 * compaction per many events rather than one per event. */
static void evict_oldest_of(EventLog *l, EventOwner *o) {
        size_t want = MAX(o->count / 8, (size_t) 1), j = 0;

        for (size_t i = 0; i < l->n; i++) {
                Event *e = &l->events[i];
                if (want > 0 && e->owner == o) {
                        want--;
                        l->evicted++;
                        event_done(l, e); /* may free o: want is 0 by then */
                        continue;
                }
                if (j != i)
                        l->events[j] = *e;
                j++;
        }
        l->n = j;
}

int event_log_append(EventLog *l, const char *machine_id, char *json, const Event **ret) {
        _cleanup_free_ char *mid = NULL;
        size_t size = strlen(json) + sizeof(Event);

        if (machine_id) {
                size += strlen(machine_id) + 1;
                mid = strdup(machine_id);
                if (!mid) {
                        free(json);
                        return -ENOMEM;
                }
        }
        if (size > l->max_bytes / 8) {
                free(json);
                return -E2BIG;
        }
        while (l->n > 0 && (l->n >= l->max_events || l->bytes + size > l->max_bytes))
                evict_oldest_of(l, largest_owner(l));

        EventOwner *o = owner_get(l, machine_id);
        if (!o) {
                free(json);
                return -ENOMEM;
        }
        o->count++;
        o->bytes += size;
        l->bytes += size;
        Event *e = &l->events[l->n++];
        *e = (Event) { .id = l->next_id++, .machine_id = TAKE_PTR(mid), .json = json, .size = size, .owner = o };
        if (ret)
                *ret = e;
        return 0;
}

static uint64_t event_id_at(const void *base, size_t i) {
        return ((const EventLog *) base)->events[i].id;
}

size_t event_log_find_after(const EventLog *l, uint64_t after_id) {
        return upper_bound_u64(l, l->n, after_id, event_id_at);
}

size_t event_log_count(const EventLog *l, const char *machine_id) {
        const EventOwner *o = hashmap_get(l->owners_by_key, machine_id ?: "");
        return o ? o->count : 0;
}

size_t event_log_bytes(const EventLog *l, const char *machine_id) {
        const EventOwner *o = hashmap_get(l->owners_by_key, machine_id ?: "");
        return o ? o->bytes : 0;
}
