/* SPDX-License-Identifier: MIT */
#pragma once

/* The replay buffer: every record not yet acked by tetherd, in sequence order. It is also the send
 * queue: the sender takes records after the last one it sent; after a reconnect it starts again after
 * the last acked one.
 *
 * Bounded: when the records cost more than max_bytes, the oldest Log records go (never milestones,
 * readiness, exit or phases: those are small and few). What that loses is reported exactly:
 *
 *  - a Log dropped before it was ever handed to the sender is certainly lost: one LogDropped record says
 *    so (count, Log data bytes, first and last seq). A LogDropped not yet handed to the sender absorbs
 *    later drops of older records, so a long outage produces a few LogDropped records, not one per drop;
 *  - a Log dropped after it was handed to the sender (still unacked) is probably with the host already. It
 *    is remembered in a small table of seq ranges (REPLAY_SENT_DROP_RANGES, with record and byte counts):
 *    an Ack covering a range forgets it (delivered); the Welcome of the next connection forgets what its
 *    acked_seq covers and reports the rest in a LogDropped (replay_welcome()).
 *
 * While the newest record is an unsent Log, a Log of the same stream and source (neither with a priority or a
 * cursor: journal entries stay records of their own) is appended to it instead
 * of becoming a record of its own (complete lines, at most 16 KiB of data, within
 * REPLAY_LOG_MERGE_WINDOW_NS of its first line): records only merge while they wait for the connection, and
 * a record handed to the sender never changes.
 *
 * Pure: no I/O, never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "macro.h"

/* What a record costs beyond its frame: its entry (40 bytes) plus the allocator's header and rounding for
 * the entry and the frame. The bound is on memory, not just on payload. */
#define REPLAY_ENTRY_OVERHEAD 72u

/* Ranges of sent-then-dropped records remembered until an Ack or a Welcome settles them. When more are
 * needed, the two closest are merged (the counts stay exact; the range then also spans kept records). */
#define REPLAY_SENT_DROP_RANGES 64u

/* A Log merged into the unsent record before it keeps that record's time: bound how far it may be off. */
#define REPLAY_LOG_MERGE_WINDOW_NS (100 * NSEC_PER_MSEC)

typedef struct Replay Replay;

typedef struct ReplayStats {
        uint64_t records;           /* records held */
        uint64_t bytes;             /* accounted bytes held */
        uint64_t dropped_records;   /* Log records lost: reported in LogDropped records */
        uint64_t dropped_bytes;     /* their Log.data bytes */
        uint64_t drop_notices;      /* LogDropped records created */
        uint64_t sent_drops;        /* Log records freed after they were sent, before their ack */
        uint64_t sent_drop_bytes;   /* their Log.data bytes */
        uint64_t unsettled_records; /* of those, the ones no Ack or Welcome has settled yet */
        uint64_t estimated_drops;   /* LogDropped contributions whose bytes (or, rarely, count) are estimated */
        uint64_t merged_logs;       /* Log records appended to the unsent record before them */
} ReplayStats;

int replay_new(uint64_t max_bytes, Replay **ret);
Replay *replay_free(Replay *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Replay *, replay_free);

/* Assigns the next seq to e (a record message), packs it and appends it, then enforces the bound. A Log may
 * instead be merged into the newest record (see above): then that record's seq is returned.
 * Returns 0 and the seq of the record holding e, -EINVAL if e is not a record, -EMSGSIZE if it does not fit a
 * frame, -ENOMEM. */
int replay_append(Replay *r, Tether__Envelope *e, uint64_t *ret_seq);

/* Frees every record with seq <= seq (cumulative ack) and returns how many were freed. An ack beyond the
 * last assigned seq is clamped to it and *ret_clamped (may be NULL) set: the peer is not trusted. */
size_t replay_ack(Replay *r, uint64_t seq, bool *ret_clamped);

/* A new connection's Welcome: acks acked_seq (as replay_ack()), reports in a LogDropped the sent-then-dropped
 * records above it (the host never stored them), and rewinds. Returns how many records were freed. */
size_t replay_welcome(Replay *r, uint64_t acked_seq, bool *ret_clamped);

/* Forgets what was sent on the previous connection: the next replay_next() starts at the oldest record. */
void replay_rewind(Replay *r);

/* The next record to send: returns 1 with a pointer to its frame (header + payload, valid until the next
 * call that modifies r) and marks it sent; 0 when everything held has been sent. */
int replay_next(Replay *r, const uint8_t **ret_frame, size_t *ret_len, uint64_t *ret_seq);

bool replay_has_unsent(const Replay *r);
bool replay_is_empty(const Replay *r);

/* Hello.first_seq / last_seq: the lowest seq held (last + 1 when empty) and the highest assigned. */
uint64_t replay_first_seq(const Replay *r);
uint64_t replay_last_seq(const Replay *r);
uint64_t replay_acked_seq(const Replay *r);

/* Accounted bytes held: what the bound applies to. */
uint64_t replay_bytes(const Replay *r);
/* Of those, what the Log records handed to the sender since the last Welcome cost. They are the oldest Log records,
 * so the bound evicts them first; while that connection lasts the host has them or is reading them, and its ack
 * settles them (an eviction is reported only if a Welcome says the host never stored them). */
uint64_t replay_sent_log_bytes(const Replay *r);

void replay_get_stats(const Replay *r, ReplayStats *ret);
