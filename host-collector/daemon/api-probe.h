/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#pragma once

/* tetherd asks its own HTTP API "GET /healthz" now and then, through the listening socket as any client would,
 * and remembers when it last got an answer (any status line: a 503 at the connection limit is an answer too).
 * The systemd watchdog is only fed while that is recent (server.c): an API that stopped answering while the
 * loop kept running gets tetherd restarted, instead of leaving every orchestrator on the node waiting. */

#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

typedef struct ApiProbe ApiProbe;

/* Probes the API at addr every interval_ns; a probe not answered within interval_ns failed. Returns 0 or
 * -errno. */
int api_probe_new(sd_event *e, const struct sockaddr *addr, socklen_t addrlen, uint64_t interval_ns, ApiProbe **ret);
ApiProbe *api_probe_free(ApiProbe *p);

/* CLOCK_MONOTONIC ns of the last answer, or of the probe's creation before the first one. */
uint64_t api_probe_last_answer_ns(const ApiProbe *p);
