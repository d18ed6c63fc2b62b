/* SPDX-License-Identifier: MIT */
#pragma once

/* Builds the record messages and appends them to the replay buffer. Strings are made valid, bounded
 * UTF-8 here, so that every record the agent sends passes envelope_validate() with the default limits.
 * Pure (no I/O), never logs. Each returns 0 or -errno from replay_append(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay.h"

#define RECORD_MAX_ATTRS 32u
#define RECORD_MAX_STRING 1024u
#define RECORD_MAX_LOG_DATA 16384u

/* attrs: key, value, key, value, ..., NULL (at most RECORD_MAX_ATTRS pairs are kept). */
int record_milestone(Replay *r, const char *name, uint64_t boottime_ns, const char *const *attrs);

/* A Phase from start_ns to end_ns (CLOCK_BOOTTIME, end >= start, else -EINVAL), status OK or ERROR; message may be
 * NULL; attrs as for record_milestone(). */
int record_phase(
        Replay *r,
        const char *name,
        uint64_t start_ns,
        uint64_t end_ns,
        bool failed,
        const char *message,
        const char *const *attrs);

/* data longer than RECORD_MAX_LOG_DATA is split into several records. */
int record_log(
        Replay *r, Tether__LogStream stream, const char *source, uint64_t boottime_ns, const void *data, size_t len);

/* One journal entry: a Log of stream journal with its priority (1 + syslog's, 0 none) and cursor. data longer than
 * RECORD_MAX_LOG_DATA is cut there. Journal records never merge (replay.h). */
int record_journal(
        Replay *r,
        const char *source,
        uint64_t boottime_ns,
        unsigned priority,
        const char *cursor,
        const void *data,
        size_t len);

int record_ready(Replay *r, const char *source, const char *detail, uint64_t boottime_ns);

int record_exit(Replay *r, int code, int signal, bool oom_killed, uint64_t boottime_ns, const char *reason);

/* A valid UTF-8 copy of s cut to at most max bytes on a character boundary; NULL on ENOMEM. */
char *record_string(const char *s, size_t max);
