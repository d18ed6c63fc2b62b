/* SPDX-License-Identifier: MIT */
#pragma once

/* The per-connection protocol state machine (docs/protocol.md), independent of sockets and timers: bytes go in
 * with session_feed()/session_process(), frames to send come out of session->out. The connection module
 * drives it from the event loop; tests and fuzzers drive it directly:
 *
 *     Session *s;  session_new(&ctx, machine, &s);
 *     session_feed(s, bytes, n);   // 0, or -EPROTO once a protocol error closed the session
 *
 * Identity is the machine the transport belongs to (passed in), never what the guest says. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "envelope.h"
#include "frame.h"
#include "outqueue.h"
#include "registry.h"
#include "stats.h"
#include "store.h"

#define SESSION_HEARTBEAT_INTERVAL_MS_DEFAULT 5000u
#define SESSION_OUTPUT_MAX_DEFAULT (256u * 1024u)

typedef struct SessionContext {
        Registry *registry;
        Store *store; /* NULL: no persistence */
        Stats *stats;
        EnvelopeLimits limits;
        uint32_t heartbeat_interval_ms;
        size_t max_output_bytes;
} SessionContext;

/* Fills defaults for everything but the pointers. */
void session_context_init(SessionContext *ctx, Registry *registry, Store *store, Stats *stats);

typedef enum SessionState {
        SESSION_AWAIT_HELLO,
        SESSION_ACTIVE,
        SESSION_FAILED, /* a protocol error: the connection must be closed */
} SessionState;

typedef struct Session {
        const SessionContext *ctx;
        Machine *machine;
        Boot *boot; /* set by Hello */
        SessionState state;
        FrameReader reader;
        OutQueue out;

        uint8_t session_id[16];
        uint64_t seq_offset;      /* of the agent instance: stored seq = wire seq + seq_offset */
        uint64_t last_record_seq; /* previous record on this connection (wire seq): seq must increase */
        uint64_t acked_seq;       /* last cumulative ack sent (Welcome.acked_seq or Ack.seq), wire seq */
        bool ack_pending;         /* records (or duplicates) arrived since the last ack */
        bool ack_urgent;          /* a Ready or Exit arrived: ack without waiting for the batch timer */
        bool new_boot;            /* the Hello started a new boot */
        ClockProber prober;

        ProtocolError error;
        char error_detail[160];

        uint64_t frames, records, duplicates;
        bool persist_warned;
} Session;

int session_new(const SessionContext *ctx, Machine *m, Session **ret);
Session *session_free(Session *s);

/* Feeds bytes and processes every complete frame. Returns 0; -EPROTO after a protocol error (s->error says
 * which; the error is counted and logged, the caller closes the connection); -ENOMEM. */
int session_feed(Session *s, const uint8_t *data, size_t n);

/* Processes at most max_frames buffered frames (the caller fills s->reader from the socket). Returns the number
 * processed, -EPROTO or -ENOMEM as above. */
int session_process(Session *s, unsigned max_frames);

/* True when a complete frame (or a frame error) is buffered: process again before waiting for input. */
bool session_frame_ready(const Session *s);

/* When records were stored since the last ack: syncs the boot's file and queues Ack{last stored seq}.
 * Returns 1 if an ack was queued, 0 if none was due, -ENOBUFS (output bound) or -ENOMEM. */
int session_flush_ack(Session *s);

/* Queues a ClockProbe and remembers its send times. Returns 0, -ENOBUFS, -ENOMEM, or -ENOTCONN before the
 * Hello. */
int session_send_clock_probe(Session *s, uint64_t monotonic_ns, uint64_t realtime_ns);

/* The connection is going away: settles pending sequence gaps, syncs, and (unless the reason is replaced,
 * deleted or shutdown) marks the machine disconnected. Safe to call more than once. */
void session_end(Session *s, CloseReason reason);
