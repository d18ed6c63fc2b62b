/* SPDX-License-Identifier: MIT */
#pragma once

/* tether-vsock's log: plain lines on stderr, "tether-vsock[cid=N uds=PATH]: LEVEL: message", so every line names
 * the VM. Only the event-loop code (device, mux) and main log; the pure modules return what happened. */

#include <syslog.h>

#include "macro.h"

void vsock_log_set_max_level(int level);
int vsock_log_get_max_level(void);
/* debug, info, notice, warning, error; -EINVAL otherwise. */
int vsock_log_level_from_string(const char *s);

/* Logs when level is enabled; error (either sign, 0 for none) is appended as ": <strerror>". Returns -abs(error). */
int vsock_log(int level, int error, const char *ident, const char *fmt, ...) _printf_(4, 5);
