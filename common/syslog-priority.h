/* SPDX-License-Identifier: MIT */
#pragma once

/* Syslog priorities (0 emerg … 7 debug) by number and by syslog's name, and the sets journalctl -p selects:
 * shared by tetherd (the logs API's filter, the OTLP severity text) and the CLI. Pure. */

#include <stdbool.h>
#include <stdint.h>

#define SYSLOG_PRIORITY_MAX 7u

/* Syslog's name of p ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"), NULL above 7. */
const char *syslog_priority_to_string(unsigned p);
/* A priority by number ("0" … "7") or name. Returns it, or -EINVAL. */
int syslog_priority_from_string(const char *s);
/* A journalctl -p argument: "P" is P and every more important priority (0 … P), "A..B" the priorities from A to B
 * (either order), each by number or name. *ret gets bit p set for each priority p selected (never 0). Returns 0,
 * or -EINVAL (*ret untouched). */
int syslog_priority_mask_from_string(const char *s, uint8_t *ret);

/* Whether a Log.priority (1 + the syslog priority; 0: none) is in mask (a line without one is in none). */
static inline bool syslog_priority_mask_has(uint8_t mask, unsigned log_priority) {
        return log_priority >= 1 && log_priority <= SYSLOG_PRIORITY_MAX + 1 && (mask & (1u << (log_priority - 1)));
}
