/* SPDX-License-Identifier: MIT */
#pragma once

/* The replay buffer: every record not yet acked by tetherd, in sequence order. It is also the send
 * queue: the sender takes records after the last one it sent; after a reconnect it starts again after
 * the last acked one.
 *
 * Bounded: when the records take more than max_bytes, the oldest Log records go (never milestones,
 * readiness, exit or phases: those are small and few) and one LogDropped record says exactly which
 * (count, Log data bytes, first and last seq). A LogDropped not yet handed to the sender absorbs later
 * drops of older records, so a long outage produces a few LogDropped records, not one per drop.
 *
 * Pure: no I/O, never logs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "macro.h"

/* Accounting cost of one record beyond its frame: the bound is on memory, not just on payload. */
#define REPLAY_ENTRY_OVERHEAD 64u

typedef struct Replay Replay;

typedef struct ReplayStats {
        uint64_t records;         /* records held */
        uint64_t bytes;           /* accounted bytes held */
        uint64_t dropped_records; /* Log records dropped since creation */
        uint64_t dropped_bytes;   /* their Log.data bytes */
        uint64_t drop_notices;    /* LogDropped records created */
} ReplayStats;

int replay_new(uint64_t max_bytes, Replay **ret);
Replay *replay_free(Replay *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Replay *, replay_free);

/* Assigns the next seq to e (a record message), packs it and appends it, then enforces the bound.
 * Returns 0 and the assigned seq, -EINVAL if e is not a record, -EMSGSIZE if it does not fit a frame,
 * -ENOMEM. */
int replay_append(Replay *r, Tether__Envelope *e, uint64_t *ret_seq);

/* Frees every record with seq <= seq (cumulative ack) and returns how many were freed. An ack beyond the
 * last assigned seq is clamped to it and *ret_clamped (may be NULL) set: the peer is not trusted. */
size_t replay_ack(Replay *r, uint64_t seq, bool *ret_clamped);

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

void replay_get_stats(const Replay *r, ReplayStats *ret);
