/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* tether-vsock's backend of the logging API (common/log.h): plain lines on stderr,
 * "tether-vsock[cid=N uds=PATH]: LEVEL: message", so every line names the VM (LogFields.ident). Only the
 * event-loop code (device, mux) and main log; the pure modules return what happened. */

#include "log.h"
#include "macro.h"

struct LogFields {
        const char *ident; /* "cid=N uds=PATH": which VM the line is about */
};

void vsock_log_set_max_level(int level);
/* debug, info, notice, warning, error; -EINVAL otherwise. */
int vsock_log_level_from_string(const char *s);

/* log_emit() naming the VM by its ident. */
#define vsock_log(level, error, vm, ...) log_emit((level), (error), &(const LogFields) { .ident = (vm) }, __VA_ARGS__)
