/* SPDX-License-Identifier: MIT */
#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int event_log_new(size_t capacity, EventLog **ret) {
        if (capacity == 0)
                return -EINVAL;
        EventLog *l = calloc(1, sizeof(EventLog));
        if (!l)
                return -ENOMEM;
        l->ring = calloc(capacity, sizeof(Event));
        if (!l->ring) {
                free(l);
                return -ENOMEM;
        }
        l->capacity = capacity;
        l->next_id = 1;
        *ret = l;
        return 0;
}

static void event_done(Event *e) {
        free(e->machine_id);
        free(e->json);
        *e = (Event) {};
}

EventLog *event_log_free(EventLog *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n; i++)
                event_done(&l->ring[(l->head + i) % l->capacity]);
        free(l->ring);
        free(l);
        return NULL;
}

int event_log_append(EventLog *l, const char *machine_id, char *json, const Event **ret) {
        char *mid = NULL;

        if (machine_id && !(mid = strdup(machine_id))) {
                free(json);
                return -ENOMEM;
        }
        if (l->n == l->capacity) {
                event_done(&l->ring[l->head]);
                l->head = (l->head + 1) % l->capacity;
                l->n--;
        }
        Event *e = &l->ring[(l->head + l->n) % l->capacity];
        *e = (Event) { .id = l->next_id++, .machine_id = mid, .json = json };
        l->n++;
        if (ret)
                *ret = e;
        return 0;
}

size_t event_log_find_after(const EventLog *l, uint64_t after_id) {
        size_t lo = 0, hi = l->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (event_log_at(l, mid)->id <= after_id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}
