/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#pragma once

/* The HTTP/1.1 API of docs/api.md, served by libmicrohttpd on tetherd's sd-event loop: each listening socket
 * is an MHD daemon in external-epoll mode whose epoll fd is an sd-event io source. Long-polls (ready) and
 * NDJSON follow streams (logs, events) are suspended MHD connections, resumed by registry observers the
 * moment something they wait for happens. */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "manager.h"
#include "metrics.h"

typedef struct Api Api;

typedef struct ApiConfig {
        unsigned max_connections;    /* per listening socket; beyond it new clients get 503 (api-gate.h) */
        uint64_t request_timeout_ns; /* a request's headers and body, from the accept or the previous request */
        bool metrics_per_machine;    /* /metrics: the tether_guest_* families, one series set per machine */
} ApiConfig;

#define API_MAX_CONNECTIONS_DEFAULT 4096u
#define API_REQUEST_TIMEOUT_NS_DEFAULT (UINT64_C(10) * 1000000000)

/* Machines are registered and deleted through manager, which the API does not own. */
int api_new(Manager *manager, sd_event *e, const ApiConfig *config, Api **ret);
/* Listens on a Unix socket (creating its directory, replacing a stale socket). Returns 0 or -errno. */
int api_listen_unix(Api *a, const char *path);
/* Listens on 127.0.0.1:port. Returns 0 or -errno. */
int api_listen_tcp(Api *a, uint16_t port);
/* Answers every waiting long-poll (503) and ends every stream. */
void api_shutdown(Api *a);
Api *api_free(Api *a);
/* The /metrics state (its boot histograms), for the OTLP metrics signal. Lives as long as a. */
const Metrics *api_metrics(const Api *a);
