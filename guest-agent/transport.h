/* SPDX-License-Identifier: MIT */
#pragma once

/* The connection to tetherd: non-blocking connect over AF_VSOCK or a Unix stream socket, reconnects with
 * bounded exponential backoff and jitter, the protocol of docs/protocol.md (Hello, Welcome, ClockProbe →
 * ClockSample, Ack, Heartbeat) and sending records from the replay buffer. What the host sends is bounded
 * input too: frames are size-checked and validated; a violation closes the connection (and reconnects).
 *
 * Driven by the agent's poll loop: transport_fd() says what to poll for, transport_handle_io() and
 * transport_handle_timers() react, transport_flush() writes what can be written. Times are CLOCK_BOOTTIME
 * ns. Logs connection changes (it decides about them). */

#include <stdbool.h>
#include <stdint.h>

#include "agent-config.h"
#include "macro.h"
#include "replay.h"

#define TRANSPORT_BACKOFF_MIN_NS (10 * NSEC_PER_MSEC)
#define TRANSPORT_BACKOFF_MAX_NS (1 * NSEC_PER_SEC)
#define TRANSPORT_CONNECT_TIMEOUT_NS (5 * NSEC_PER_SEC)
#define TRANSPORT_HANDSHAKE_TIMEOUT_NS (10 * NSEC_PER_SEC)
#define TRANSPORT_HEARTBEAT_DEFAULT_MS 5000u
#define TRANSPORT_INSTANCE_ID_BYTES 16u
/* A resource sample is skipped while more than this is waiting to be written. */
#define TRANSPORT_SAMPLE_MAX_BACKLOG \
        (64u * 1024u) /* Hello.agent_instance: random, drawn once per transport (agent process) */

typedef struct Transport Transport;

typedef struct TransportConfig {
        TransportKind kind;
        const char *unix_path;
        uint32_t cid;
        uint32_t port;
        Tether__AgentMode mode;
        const char *boot_id;
        const char *kernel_release;
        const char *hostname;
} TransportConfig;

typedef struct TransportStats {
        uint64_t connects; /* connections that reached Welcome */
        uint64_t disconnects;
        uint64_t protocol_errors; /* host sent something invalid */
        uint64_t clamped_acks;    /* acks beyond what was ever sent */
        uint64_t clock_samples;
        uint64_t heartbeats;
        uint64_t samples; /* ResourceSamples queued */
        uint64_t bytes_sent;
        uint64_t progress_ns; /* the last Ack or Welcome that freed records (flow control's progress); 0: none */
} TransportStats;

/* Called when a Welcome carries a valid traceparent. */
typedef void (*transport_welcome_t)(const char *traceparent, void *userdata);

int transport_new(
        const TransportConfig *config, Replay *replay, transport_welcome_t on_welcome, void *userdata, Transport **ret);
Transport *transport_free(Transport *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Transport *, transport_free);

/* First connection attempt, at once. */
void transport_start(Transport *t, uint64_t now);

/* The fd to poll and the events wanted, or -1 while waiting to reconnect. */
int transport_fd(const Transport *t, short *ret_events);
void transport_handle_io(Transport *t, short revents, uint64_t now);

/* Next time transport_handle_timers() has something to do; UINT64_MAX if nothing. */
uint64_t transport_next_deadline(const Transport *t);
void transport_handle_timers(Transport *t, uint64_t now);

/* Writes queued control frames and unsent records until the socket would block. */
void transport_flush(Transport *t, uint64_t now);

bool transport_is_established(const Transport *t);

/* Whether the connection is up and its protocol version carries resource samples. */
bool transport_wants_samples(const Transport *t);

/* Queues a resource sample (not a record: not replayed). Returns 1 when queued, 0 when skipped (not connected,
 * a version 1 host, a write backlog), or -ENOMEM. */
int transport_send_sample(Transport *t, const Tether__ResourceSample *s);
void transport_get_stats(const Transport *t, TransportStats *ret);
