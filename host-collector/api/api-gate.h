/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#pragma once

/* The HTTP API's door: tetherd accepts the API's connections itself and hands them to libmicrohttpd
 * (MHD_USE_NO_LISTEN_SOCKET + MHD_add_connection()), so that no limit can take the listening socket out of the
 * loop and none of them is left to chance:
 *
 *   - at max_connections, a new client makes room by cutting off the oldest connection that has waited at
 *     least 250 ms for its request and has nothing unread in its socket (a slowloris client, or an idle one): a
 *     client that sends its request whole is answered even while others trickle theirs and reconnect as fast as
 *     they are cut off. While every waiting connection is younger than that, newcomers wait in the backlog, in
 *     order (at most 250 ms): a connection is not taken from a client before it had a chance to write, and the
 *     reconnecting clients cannot win every freed place by racing for it. When every connection is being
 *     answered (parked long-polls, streams), the newcomer gets "503 Service Unavailable" at once and is
 *     closed. (MHD itself would stop accepting: clients would hang in the backlog, and MHD took its listening
 *     socket out of its epoll set at the limit and never put it back when the connections it held were closed
 *     while nothing else woke it: the API stopped answering for good);
 *   - a request must arrive whole (headers and body) within request_timeout of the connection's accept or of
 *     its previous request's end: a client that sends a byte now and then (slowloris), or keeps an idle
 *     connection, is shut down and counted. Once a request is being answered the deadline is off: long-polls
 *     and follow streams end by their own timeouts or when their client goes, a response nobody reads by MHD's
 *     idle timeout.
 *
 * Connections are counted per gate (one per listening socket); MHD may hold up to twice as many for a moment,
 * those cut off that it has not closed yet. */

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "stats.h"

typedef struct ApiGate ApiGate;

typedef struct ApiGateConfig {
        unsigned max_connections;
        uint64_t request_timeout_ns;
} ApiGateConfig;

/* Takes listen_fd (non-blocking). Nothing is accepted before api_gate_attach(). Returns 0 or -errno. */
int api_gate_new(sd_event *e, int listen_fd, const ApiGateConfig *config, Stats *stats, ApiGate **ret);
ApiGate *api_gate_free(ApiGate *g);

/* The daemon the gate hands its connections to, started with MHD_USE_NO_LISTEN_SOCKET and
 * MHD_OPTION_NOTIFY_CONNECTION, api_gate_notify_connection, the gate. Starts accepting. Returns 0 or -errno. */
int api_gate_attach(ApiGate *g, struct MHD_Daemon *mhd);

/* MHD_OPTION_NOTIFY_CONNECTION's callback; cls is the gate. */
void api_gate_notify_connection(
        void *cls, struct MHD_Connection *conn, void **socket_context, enum MHD_ConnectionNotificationCode toe);

/* The request on conn arrived whole and is being answered: no deadline until it completes. */
void api_gate_request_answering(struct MHD_Connection *conn);

/* The request on conn completed (MHD_OPTION_NOTIFY_COMPLETED): the next one has request_timeout to arrive. */
void api_gate_request_completed(struct MHD_Connection *conn);
