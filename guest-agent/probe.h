/* SPDX-License-Identifier: MIT */
#pragma once

/* Built-in readiness probes: TCP port accepting, Unix socket accepting, file exists, command exits 0.
 * Each runs every interval until one succeeds; then the owner stops them all. TCP connects and probe
 * commands are asynchronous and bounded by the probe timeout (a command that overruns is SIGKILLed).
 * The owner reaps children and hands their statuses to prober_child_exited(). Never logs. */

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent-config.h"
#include "macro.h"

typedef struct Prober Prober;

/* specs must outlive the prober. */
int prober_new(const ProbeSpec *specs, size_t n, uint64_t interval_ns, uint64_t timeout_ns, Prober **ret);
Prober *prober_free(Prober *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Prober *, prober_free);

/* The first round runs at the next prober_handle_timers() call at or after now. */
void prober_start(Prober *p, uint64_t now);

/* Closes sockets and kills a running probe command (its exit is still reaped by the owner). */
void prober_stop(Prober *p);

/* Fills fds (at most max) with the sockets to poll. Returns how many. */
size_t prober_fill_pollfds(const Prober *p, struct pollfd *fds, size_t max);

/* Each returns 1 and the index of the spec that succeeded in *ret_index, or 0 when none did (yet). */
int prober_handle_pollfd(Prober *p, const struct pollfd *fd, uint64_t now, size_t *ret_index);
int prober_handle_timers(Prober *p, uint64_t now, size_t *ret_index);
/* The same for a reaped child; -ESRCH when pid is not a probe command's. */
int prober_child_exited(Prober *p, pid_t pid, int status, size_t *ret_index);

uint64_t prober_next_deadline(const Prober *p);

/* The Ready source for a spec: "probe:tcp", "probe:unix", "probe:file", "probe:exec". */
const char *probe_kind_to_source(ProbeKind k);
