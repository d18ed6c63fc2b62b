/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* tetherd's backend of the logging API (common/log.h): one JSON object per line on stderr ({"time","level",
 * "msg",...}), or structured journal entries when running under systemd. Machine-related lines carry machine_id,
 * request_id and transition (TETHER_MACHINE_ID=, TETHER_REQUEST_ID=, TETHER_TRANSITION= in the journal); every
 * line carries node_id. */

#include "log.h"
#include "macro.h"
#include "ratelimit.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO, /* journal if $JOURNAL_STREAM is set, JSON lines otherwise */
        LOG_TARGET_JSON,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
} LogTarget;

struct LogFields {
        const char *machine_id;
        const char *request_id;
        const char *transition;
        /* Lines a guest can cause go through its machine's limiter: beyond it they are counted, and the next
         * line it allows is preceded by "Suppressed N lines about machine ID." */
        RateLimit *ratelimit;
};

void log_setup(LogTarget target, int max_level, const char *node_id);
int log_get_max_level(void);

/* Returns the LOG_* level or -EINVAL. Accepts debug, info, notice, warning, error. */
int log_level_from_string(const char *s);
int log_target_from_string(const char *s);
