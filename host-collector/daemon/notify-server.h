/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#pragma once

/* The vmm.notify port: systemd's own notifications from guests without an agent (docs/agentless.md). One
 * message per connection: read until EOF, or until the bytes have been quiet for NOTIFY_IDLE_NS (stream
 * transports that do not carry a half-close never deliver EOF), then closed at once (systemd waits for the host
 * to close: a host that waits stalls PID 1), nothing ever written back, and the message applied to the machine
 * the transport belongs to (agentless.h). Bounded: message bytes, open connections per machine and in total, a
 * connection's lifetime; refusals counted (Stats.notify_refused) and logged rate-limited. */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "session.h"

#define TETHER_NOTIFY_PORT_DEFAULT 4818u
/* A message is complete once no byte came for this long (systemd writes it with one call). */
#define NOTIFY_IDLE_NS (5 * NSEC_PER_MSEC)
/* A connection is closed this long after it was accepted, whatever it sent (applied if it sent anything). */
#define NOTIFY_TIMEOUT_NS (1 * NSEC_PER_SEC)
#define NOTIFY_MAX_CONNECTIONS_PER_MACHINE 4u
#define NOTIFY_MAX_CONNECTIONS 256u

typedef struct NotifyServer NotifyServer;

/* port 0: off (every call below does nothing). */
int notify_server_new(sd_event *e, const SessionContext *ctx, uint32_t port, NotifyServer **ret);
NotifyServer *notify_server_free(NotifyServer *ns);

/* The AF_VSOCK listener on the port. Returns 0, -EAFNOSUPPORT (no vsock on this host) or -errno. */
int notify_server_listen_vsock(NotifyServer *ns);
/* A connection accepted on the AF_VSOCK listener from guest CID cid: read as the machine with that CID's, or
 * refused (counted, closed). Takes ownership of fd (non-blocking, close-on-exec). Tests inject connections here. */
void notify_server_accept_vsock_peer(NotifyServer *ns, int fd, uint32_t cid);
/* Machine m's hybrid vsock socket "<uds_path>_<port>" (nothing without a uds_path). Returns 0 or -errno. */
int notify_server_listen_machine(NotifyServer *ns, Machine *m);
/* Closes m's socket and its open connections (it is deleted, or its uds_path changes). */
void notify_server_unlisten_machine(NotifyServer *ns, Machine *m);

uint32_t notify_server_port(const NotifyServer *ns);
