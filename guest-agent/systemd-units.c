/* SPDX-License-Identifier: MIT */
#include "systemd-units.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "strv.h"

typedef struct UnitEntry {
        char *name;
        uint64_t reported_start_us; /* InactiveExit of the last activation reported */
        uint64_t reported_fail_us;  /* InactiveEnter of the last failure reported */
} UnitEntry;

struct UnitTracker {
        char **patterns;
        Hashmap *by_name;
        UnitEntry **entries;
        size_t n_entries, max_units;
        uint64_t over;
};

int unit_tracker_new(char *const *patterns, size_t max_units, UnitTracker **ret) {
        _cleanup_(unit_tracker_freep) UnitTracker *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->max_units = max_units;
        if (patterns && (r = strv_copy(patterns, &t->patterns)) < 0)
                return r;
        if (!(t->by_name = hashmap_new()))
                return -ENOMEM;
        if (max_units > 0 && !(t->entries = calloc(max_units, sizeof(UnitEntry *))))
                return -ENOMEM;
        *ret = TAKE_PTR(t);
        return 0;
}

UnitTracker *unit_tracker_free(UnitTracker *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_entries; i++) {
                free(t->entries[i]->name);
                free(t->entries[i]);
        }
        free(t->entries);
        hashmap_free(t->by_name);
        strv_free(t->patterns);
        free(t);
        return NULL;
}

bool unit_tracker_wants(const UnitTracker *t, const char *name) {
        if (!t->patterns || !t->patterns[0])
                return true;
        for (char **p = t->patterns; *p; p++)
                if (fnmatch(*p, name, 0) == 0)
                        return true;
        return false;
}

bool unit_state_is_active(const char *active_state) {
        return active_state && (strcmp(active_state, "active") == 0 || strcmp(active_state, "reloading") == 0);
}

/* What the snapshot says that may be new: an activation, a failure, or nothing. */
static bool snapshot_event(const UnitSnapshot *s, UnitEvent *ret) {
        if (unit_state_is_active(s->active_state)) {
                /* Never left inactive this boot (e.g. -.mount, init.scope), or the timestamps are from different
                 * activations: nothing to report. */
                if (s->inactive_exit_us == 0 || s->active_enter_us < s->inactive_exit_us)
                        return false;
                *ret = (UnitEvent) { .kind = UNIT_EVENT_ACTIVATED,
                                     .start_us = s->inactive_exit_us,
                                     .end_us = s->active_enter_us };
                return true;
        }
        if (s->active_state && strcmp(s->active_state, "failed") == 0 && s->inactive_enter_us > 0) {
                /* A unit that failed to start has InactiveExit from that attempt; one that failed while running
                 * may carry an older one: the span is then the failure alone. */
                uint64_t start = s->inactive_exit_us > 0 && s->inactive_exit_us <= s->inactive_enter_us ?
                        s->inactive_exit_us :
                        s->inactive_enter_us;
                *ret = (UnitEvent) { .kind = UNIT_EVENT_FAILED, .start_us = start, .end_us = s->inactive_enter_us };
                return true;
        }
        return false;
}

/* The entry of a wanted unit, made if there is room. Returns 0, -ENOSPC (counted), -ENOMEM. */
static int tracker_entry(UnitTracker *t, const char *name, UnitEntry **ret) {
        UnitEntry *e = hashmap_get(t->by_name, name);
        int r;

        if (!e) {
                if (t->n_entries >= t->max_units) {
                        t->over++;
                        return -ENOSPC;
                }
                _cleanup_free_ UnitEntry *n = calloc(1, sizeof(*n));
                if (!n || !(n->name = strdup(name)))
                        return -ENOMEM;
                if ((r = hashmap_put(t->by_name, n->name, n)) < 0) {
                        free(n->name);
                        return r;
                }
                e = t->entries[t->n_entries++] = TAKE_PTR(n);
        }
        *ret = e;
        return 0;
}

int unit_tracker_job_removed(UnitTracker *t, const char *name, const char *result, uint64_t at_us, UnitEvent *ret) {
        UnitEntry *e;
        int r;

        if (!name || !result || strcmp(result, "dependency") != 0 || !unit_tracker_wants(t, name))
                return 0;
        if ((r = tracker_entry(t, name, &e)) < 0)
                return r;
        *ret = (UnitEvent) { .kind = UNIT_EVENT_JOB_FAILED, .start_us = at_us, .end_us = at_us };
        return 1;
}

int unit_tracker_update(UnitTracker *t, const UnitSnapshot *s, UnitEvent *ret) {
        UnitEntry *e;
        UnitEvent ev;
        int r;

        if (!s->name || !unit_tracker_wants(t, s->name) || !snapshot_event(s, &ev))
                return 0;
        if ((r = tracker_entry(t, s->name, &e)) < 0)
                return r;

        if (ev.kind == UNIT_EVENT_ACTIVATED) {
                if (e->reported_start_us == ev.start_us)
                        return 0;
                e->reported_start_us = ev.start_us;
        } else {
                if (e->reported_fail_us == ev.end_us)
                        return 0;
                e->reported_fail_us = ev.end_us;
        }
        *ret = ev;
        return 1;
}

size_t unit_tracker_size(const UnitTracker *t) {
        return t->n_entries;
}

uint64_t unit_tracker_over(const UnitTracker *t) {
        return t->over;
}
