/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#pragma once

/* One agent connection on the event loop: reads with a per-wakeup budget (fairness between guests; a guest that
 * spends it with more waiting continues at bulk priority behind quiet guests, see event-util.h), drives the
 * session, writes what a wakeup stored with one write(), asks for acks (at most 100 ms after a record; at once
 * after Ready/Exit or SESSION_ACK_BYTES of records) which go out when the sync covering them completes on the
 * store's threads, writes through its bounded output queue, sends clock probes (8 at 10 ms intervals after the Hello,
 * then one every 10 s) and closes a connection whose heartbeats stopped. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "session.h"

/* A busy guest's budget per turn at bulk priority (frames, bytes and time: the clock is read every
 * CONNECTION_FRAMES_PER_CLOCK_READ frames); a quiet guest's at normal priority is smaller, so that a
 * thousand idle guests that all start writing at once hold a Ready behind them for little more than a read
 * each. A quiet guest that spends its budget with more waiting becomes busy; a busy one becomes quiet again
 * when a wakeup catches up with less than the quiet budget a second after it last spent its budget (a guest
 * that logs in bursts, as one waiting for acks does, stays busy between them). */
#define CONNECTION_FRAMES_PER_WAKEUP 256u
#define CONNECTION_BYTES_PER_WAKEUP (1024u * 1024u)
#define CONNECTION_NS_PER_WAKEUP NSEC_PER_MSEC
#define CONNECTION_FRAMES_PER_CLOCK_READ 16u
#define CONNECTION_QUIET_FRAMES_PER_WAKEUP 8u
#define CONNECTION_QUIET_BYTES_PER_WAKEUP (16u * 1024u)
#define CONNECTION_QUIET_AFTER_NS NSEC_PER_SEC
#define CONNECTION_ACK_DELAY_NS (100 * NSEC_PER_MSEC)
#define CONNECTION_PROBE_BURST 8u
#define CONNECTION_PROBE_BURST_INTERVAL_NS (10 * NSEC_PER_MSEC)
#define CONNECTION_PROBE_INTERVAL_NS (10 * NSEC_PER_SEC)
#define CONNECTION_PROBE_FIRST_SAMPLE_NS NSEC_PER_SEC
#define CONNECTION_HEARTBEAT_SLACK_NS (5 * NSEC_PER_SEC)

typedef struct Connection Connection;

/* Called once, from the event loop, after the connection closed by itself (EOF, error, timeout, protocol
 * error). The owner frees it with connection_free(c, reason). */
typedef void (*ConnectionCloseHandler)(Connection *c, CloseReason reason, void *userdata);

struct Connection {
        LIST_FIELDS(Connection, connections);
        sd_event *event;
        int fd;
        char *peer;
        Session *session;
        sd_event_source *io, *turn, *ack_timer, *probe_timer, *heartbeat_timer;
        uint64_t last_input_ns; /* CLOCK_MONOTONIC of the last whole message (or of the accept) */
        uint64_t last_spent_ns; /* CLOCK_MONOTONIC, the last wakeup that spent its budget */
        uint64_t heartbeat_timeout_ns;
        uint64_t ack_delay_ns; /* CONNECTION_ACK_DELAY_NS; tests stretch it to tell "at once" from "after it" */
        unsigned probes_sent;
        bool eof;
        bool bulk; /* spent its last wakeup's budget with more waiting: io and turns at EVENT_PRIORITY_BULK */
        bool closed;
        CloseReason close_reason;
        ConnectionCloseHandler on_close;
        void *userdata;
};

/* Takes ownership of fd (closed on failure too). Returns 0 or -errno. */
int connection_new(
        sd_event *e,
        int fd,
        const char *peer,
        const SessionContext *ctx,
        Machine *m,
        ConnectionCloseHandler on_close,
        void *userdata,
        Connection **ret);

/* Ends the session with the reason (without calling on_close) and frees everything. */
Connection *connection_free(Connection *c, CloseReason reason);

/* Sends any due ack now and tries to write it (graceful shutdown). */
void connection_flush(Connection *c);
