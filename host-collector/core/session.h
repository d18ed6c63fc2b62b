/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
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
/* Ask for an ack (a sync) once this much record data arrived since the last request, without waiting for the
 * batch timer: an agent that blocks its workload while its buffer is full must get acks as fast as the disk
 * allows, not every 100 ms. */
#define SESSION_ACK_BYTES (64u * 1024u)
/* A boot's clock mapping is fixed by the first probe answer within this error bound, or after this many
 * answers (the probe burst), or by session_clock_deadline() (the burst is over), or by a Ready/Exit. */
#define SESSION_CLOCK_FIX_ERROR_NS (250u * 1000u)
#define SESSION_CLOCK_FIX_SAMPLES 8u

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

typedef struct Session Session;

/* An Ack was queued outside of session_feed()/session_process() (a sync completed): r is the queueing result
 * (1, or -ENOBUFS/-ENOMEM). The connection writes it out or closes. */
typedef void (*SessionAckHandler)(Session *s, int r, void *userdata);

struct Session {
        const SessionContext *ctx;
        Machine *machine;
        Boot *boot; /* set by Hello */
        SessionState state;
        FrameReader reader;
        OutQueue out;

        uint8_t session_id[16];
        uint32_t protocol_version; /* chosen at Hello */
        uint64_t seq_offset;       /* of the agent instance: stored seq = wire seq + seq_offset */
        uint64_t last_record_seq;  /* previous record on this connection (wire seq): seq must increase */
        uint64_t acked_seq;        /* last cumulative ack sent (Welcome.acked_seq or Ack.seq), wire seq */
        bool ack_pending;          /* records (or duplicates) arrived since the last ack */
        bool ack_urgent;           /* a Ready or Exit arrived: ack without waiting for the batch timer */
        uint64_t unacked_bytes;    /* record bytes since the last ack request */
        uint64_t batch_first_seq;  /* first record appended since the last write of the buffer, 0 if none */
        bool new_boot;             /* the Hello started a new boot */
        ClockProber prober;
        uint64_t clock_samples;      /* answers used on this connection */
        bool events_deferred;        /* guest-timed events wait for the boot's clock mapping to be fixed */
        bool booting_deferred;       /* the booting event too */
        uint64_t deferred_after_seq; /* milestones and phases above this stored seq wait */

        /* A Ready or an Exit answered (its state set, the waiters woken) and its remaining work (events, log
         * lines, observers) waits for the session's next session_process(): the loop sends the answers first. */
        Tether__Envelope *tail_record;
        BootApplyResult tail_res;
        uint64_t tail_recv;

        ProtocolError error;
        char error_detail[160];

        uint64_t frames, records, duplicates;
        bool persist_warned;
        bool sync_warned;

        /* Records tetherd makes itself for a machine without an agent (agentless.c, systemd's notifications): no
         * connection, no Welcome or acks, the machine is never "connected", and the boot's clock mapping is fixed
         * by its Hello (the receive times). */
        bool local;
        SessionAckHandler on_ack;
        void *on_ack_userdata;
};

int session_new(const SessionContext *ctx, Machine *m, Session **ret);

/* The boot's file misses records (a write failed, or it could not be created): tries to repair it (file-repair.h)
 * at growing intervals (1 s to 30 s) while the hole lasts; cheap otherwise. Returns true when the file can be
 * written again but misses records tetherd could not keep in memory: the connection should close (CLOSE_RESYNC)
 * so that the agent reconnects and resends them from the file's hole (Welcome.acked_seq). When the copies kept in
 * memory were written, the hole is closed and an ack is due (ack_pending). */
bool session_wants_resync(Session *s);
Session *session_free(Session *s);

/* Feeds bytes and processes every complete frame. Returns 0; -EPROTO after a protocol error (s->error says
 * which; the error is counted and logged, the caller closes the connection); -ENOMEM. */
int session_feed(Session *s, const uint8_t *data, size_t n);

/* Processes at most max_frames buffered frames (the caller fills s->reader from the socket). Returns the number
 * processed, -EPROTO or -ENOMEM as above. */
int session_process(Session *s, unsigned max_frames);

/* True when a complete frame (or a frame error) is buffered: process again before waiting for input. */
bool session_frame_ready(const Session *s);

/* True when the last record processed answered (a Ready or an Exit) and session_process() stopped after it:
 * the caller ends its wakeup so that the answers go out, and calls session_process() again in its next turn,
 * which does the rest of that record's work first. */
bool session_answered(const Session *s);

/* Writes the records stored in this wakeup to the boot's file (one write; failures are counted and logged). */
void session_flush_writes(Session *s);

/* When records arrived since the last ack: asks the store to make them durable and queues Ack{durable seq}
 * now if they are already (or there is no store), else from the sync's completion (on_ack is called then).
 * Returns 1 if an ack was queued now, 0 if none was due or it will come later, -ENOBUFS (output bound) or
 * -ENOMEM. */
int session_request_ack(Session *s);

/* The same, waiting for the sync on this thread (shutdown, tests). Returns 1 if an ack was queued, 0 if none
 * was due, -ENOBUFS or -ENOMEM. */
int session_flush_ack(Session *s);

/* The probe burst is over: fixes the boot's clock mapping with what it has, if it is not fixed yet. */
void session_clock_deadline(Session *s);

/* Queues a ClockProbe and remembers its send times. Returns 0, -ENOBUFS, -ENOMEM, or -ENOTCONN before the
 * Hello. */
int session_send_clock_probe(Session *s, uint64_t monotonic_ns, uint64_t realtime_ns);

/* The connection is going away: settles pending sequence gaps, syncs, and (unless the reason is replaced,
 * deleted or shutdown) marks the machine disconnected. Safe to call more than once. */
void session_end(Session *s, CloseReason reason);
