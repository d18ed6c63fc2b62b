/* SPDX-License-Identifier: MIT */
#pragma once

/* Which unit activations and failures to report, from what systemd says of a unit (its ActiveState and
 * timestamps, read when a JobRemoved or PropertiesChanged signal names it). Each activation (InactiveExit →
 * ActiveEnter) and each failure is reported once, also when systemd says the same thing twice; a unit activated
 * again later is reported again. Bounded: at most max_units distinct units are tracked, the configured patterns
 * (fnmatch) select which; activations of units beyond the bound are counted, not reported. Pure, never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct UnitSnapshot {
        const char *name;
        const char *active_state;  /* "active", "reloading", "failed", "activating", "inactive", "deactivating" */
        uint64_t inactive_exit_us; /* CLOCK_MONOTONIC µs; 0: never */
        uint64_t active_enter_us;
        uint64_t inactive_enter_us;
} UnitSnapshot;

typedef enum UnitEventKind {
        UNIT_EVENT_ACTIVATED,  /* start_us = InactiveExit, end_us = ActiveEnter */
        UNIT_EVENT_FAILED,     /* start_us = InactiveExit (or the failure itself), end_us = InactiveEnter */
        UNIT_EVENT_JOB_FAILED, /* its start job failed because a unit it requires failed: a point */
} UnitEventKind;

typedef struct UnitEvent {
        UnitEventKind kind;
        uint64_t start_us, end_us;
} UnitEvent;

typedef struct UnitTracker UnitTracker;

/* patterns: NULL or empty for every unit; copied. */
int unit_tracker_new(char *const *patterns, size_t max_units, UnitTracker **ret);
UnitTracker *unit_tracker_free(UnitTracker *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(UnitTracker *, unit_tracker_free);

/* Whether name matches the configured patterns. */
bool unit_tracker_wants(const UnitTracker *t, const char *name);

/* Returns 1 and the event to report, 0 when there is nothing new to report (or the unit is not wanted), -ENOSPC
 * when it would be but the unit is beyond the bound (counted), -ENOMEM. */
int unit_tracker_update(UnitTracker *t, const UnitSnapshot *s, UnitEvent *ret);

/* A job of the unit ended with result (JobRemoved) at at_us. "dependency" (a unit it requires failed: the unit
 * itself never changes state, so no snapshot would tell) is a failure at at_us; every other result is told by the
 * unit's own state ("failed", "timeout": it failed) or is none. Returns as unit_tracker_update(). */
int unit_tracker_job_removed(UnitTracker *t, const char *name, const char *result, uint64_t at_us, UnitEvent *ret);

size_t unit_tracker_size(const UnitTracker *t);
/* Activations and failures not reported because of the bound. */
uint64_t unit_tracker_over(const UnitTracker *t);

/* "active" and "reloading" are active. */
bool unit_state_is_active(const char *active_state);
