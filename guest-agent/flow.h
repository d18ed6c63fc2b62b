/* SPDX-License-Identifier: MIT */
#pragma once

/* Flow control of the workload's output (log_policy=block): whether the agent reads the workload's pipes now.
 *
 * The replay buffer is bounded; what goes in beyond the bound evicts the oldest Log records. Evicting a record
 * already handed to the connected host costs nothing while that connection lasts (the host has it, or is
 * reading it; its ack settles it), evicting one the host never got loses it. So before each read the agent asks
 * whether the read could evict output the host does not have (the "fill", flow_fill()); if so it stops reading:
 * the pipe fills, the workload blocks in write(), as with a container runtime's blocking log mode, and it goes
 * on as the host takes the output. A pause ends (hysteresis, so that it does not flap per ack) once the fill
 * dropped by a quarter of the pause threshold or FLOW_RESUME_BYTES_MAX, whichever is less.
 *
 * A host that does not keep up must not hang the workload: "progress" is an Ack or a Welcome that freed at least
 * one record (flow_progress()). When a pause has lasted stall_ns without progress, counted from the later of its
 * start and the last progress, the agent falls back to dropping (FLOW_STALLED: it reads again, and the oldest
 * unsent Log records go, counted and reported as with log_policy=drop) until the host makes progress again, or a
 * new connection is welcomed (flow_welcome()): then it blocks again, with a full stall_ns to show it keeps up.
 * A host that is not connected makes no progress; the same bound applies, so output written before the first
 * connection (early boot, vsock not up yet) or during a short reconnect waits for the host instead of being lost,
 * for at most stall_ns.
 *
 * Pure: no I/O, never logs. Times are CLOCK_BOOTTIME ns. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* The most a pause waits for once the fill sank below the pause threshold (large buffers resume long before a
 * quarter of them is free). */
#define FLOW_RESUME_BYTES_MAX (256u * 1024u)

typedef enum FlowState {
        FLOW_READING, /* read the pipes */
        FLOW_PAUSED,  /* do not read: the host takes the output, the workload waits */
        FLOW_STALLED, /* the host made no progress for stall_ns: read, and let the buffer drop */
} FlowState;

typedef struct Flow {
        bool block;            /* log_policy=block; with drop, always FLOW_READING */
        uint64_t pause_bytes;  /* pause when the fill is above this */
        uint64_t resume_bytes; /* a pause ends when the fill is at or below this */
        uint64_t stall_ns;
        FlowState state;
        uint64_t progress_ns;  /* the last progress; the agent's start before any */
        uint64_t paused_since; /* FLOW_PAUSED: when the pause began */
        uint64_t pauses;       /* pauses begun */
        uint64_t stalls;       /* falls back to dropping */
} Flow;

/* max_bytes: the replay buffer's bound. reserve: the most one read (and the partial line waiting with it) can add
 * to the buffer: a read is only started while the fill is at most the bound minus reserve minus an eighth of the
 * bound, the room kept for kernel messages and the records that are never held back (milestones, Ready, Exit). */
void flow_init(Flow *f, bool block, uint64_t max_bytes, uint64_t reserve, uint64_t stall_ns, uint64_t now);

/* What eviction could not take from the buffer without losing output the host does not have: everything held
 * but, while connected (Welcome received), the Log records already handed to the sender. */
uint64_t flow_fill(uint64_t bytes, uint64_t sent_log_bytes, bool connected);

/* Updates the state for the fill at now and returns whether to hold off reading the workload's output. */
bool flow_paused(Flow *f, uint64_t fill, uint64_t now);

/* The host freed records at t (an Ack, or a Welcome's acked_seq). */
void flow_progress(Flow *f, uint64_t t);

/* A new connection was welcomed at t: after a stall, the host gets stall_ns again to show it keeps up. */
void flow_welcome(Flow *f, uint64_t t);

/* When flow_paused() would change its answer without any other event (the stall bound of a pause); UINT64_MAX
 * when nothing is due. */
uint64_t flow_next_deadline(const Flow *f);
