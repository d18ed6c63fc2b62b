/* SPDX-License-Identifier: MIT */
#include "replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum ReplayKind {
        REPLAY_LOG,
        REPLAY_DROPPED,
        REPLAY_OTHER,
} ReplayKind;

typedef struct ReplayEntry ReplayEntry;
struct ReplayEntry {
        ReplayEntry *prev, *next;
        uint64_t seq;
        ReplayKind kind;
        uint64_t log_bytes; /* REPLAY_LOG: Log.data length */
        /* REPLAY_DROPPED: what the LogDropped says, so that it can be re-packed when it absorbs more. */
        Tether__LogDropped dropped;
        uint8_t *frame;
        size_t frame_len;
};

struct Replay {
        ReplayEntry *head, *tail;
        ReplayEntry *cursor;       /* first entry not handed to the sender on this connection */
        ReplayEntry *pending_drop; /* the newest LogDropped, while it has not been handed to the sender */
        uint64_t next_seq;
        uint64_t acked_seq;
        uint64_t bytes, max_bytes;
        uint64_t n_entries;
        uint64_t dropped_records, dropped_bytes, drop_notices;
};

int replay_new(uint64_t max_bytes, Replay **ret) {
        Replay *r = calloc(1, sizeof(Replay));
        if (!r)
                return -ENOMEM;
        r->next_seq = 1;
        r->max_bytes = max_bytes;
        *ret = r;
        return 0;
}

static uint64_t entry_cost(const ReplayEntry *e) {
        return e->frame_len + REPLAY_ENTRY_OVERHEAD;
}

static void entry_unlink(Replay *r, ReplayEntry *e) {
        if (r->cursor == e)
                r->cursor = e->next;
        if (r->pending_drop == e)
                r->pending_drop = NULL;
        if (e->prev)
                e->prev->next = e->next;
        else
                r->head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                r->tail = e->prev;
        r->bytes -= entry_cost(e);
        r->n_entries--;
        free(e->frame);
        free(e);
}

Replay *replay_free(Replay *r) {
        if (!r)
                return NULL;
        while (r->head)
                entry_unlink(r, r->head);
        free(r);
        return NULL;
}

static void entry_link_tail(Replay *r, ReplayEntry *e) {
        e->prev = r->tail;
        e->next = NULL;
        if (r->tail)
                r->tail->next = e;
        else
                r->head = e;
        r->tail = e;
        if (!r->cursor)
                r->cursor = e;
        r->bytes += entry_cost(e);
        r->n_entries++;
}

static int pack_entry(ReplayEntry *e, const Tether__Envelope *env) {
        uint8_t *frame;
        size_t len;
        int k = envelope_pack_frame(env, &frame, &len);
        if (k < 0)
                return k;
        free(e->frame);
        e->frame = frame;
        e->frame_len = len;
        return 0;
}

static int pack_dropped(ReplayEntry *e) {
        Tether__Envelope env = TETHER__ENVELOPE__INIT;
        env.seq = e->seq;
        env.msg_case = TETHER__ENVELOPE__MSG_LOG_DROPPED;
        env.log_dropped = &e->dropped;
        return pack_entry(e, &env);
}

static ReplayEntry *oldest_log(const Replay *r) {
        for (ReplayEntry *e = r->head; e; e = e->next)
                if (e->kind == REPLAY_LOG)
                        return e;
        return NULL;
}

/* Records what went in a LogDropped: merged into the pending one when every dropped seq precedes it (a
 * LogDropped only ever explains records before itself), or as a new record at the tail. */
static int note_drop(Replay *r, uint64_t records, uint64_t bytes, uint64_t first, uint64_t last) {
        ReplayEntry *d = r->pending_drop;

        if (d && last < d->seq) {
                Tether__LogDropped saved = d->dropped;
                uint64_t old_cost = entry_cost(d);

                d->dropped.records += records;
                d->dropped.bytes += bytes;
                d->dropped.first_seq = MIN(d->dropped.first_seq, first);
                d->dropped.last_seq = MAX(d->dropped.last_seq, last);
                int k = pack_dropped(d);
                if (k < 0) {
                        d->dropped = saved;
                        return k;
                }
                r->bytes = r->bytes - old_cost + entry_cost(d);
                return 0;
        }

        d = calloc(1, sizeof(ReplayEntry));
        if (!d)
                return -ENOMEM;
        tether__log_dropped__init(&d->dropped);
        d->kind = REPLAY_DROPPED;
        d->seq = r->next_seq;
        d->dropped.records = records;
        d->dropped.bytes = bytes;
        d->dropped.first_seq = first;
        d->dropped.last_seq = last;
        int k = pack_dropped(d);
        if (k < 0) {
                free(d);
                return k;
        }
        r->next_seq++;
        entry_link_tail(r, d);
        r->pending_drop = d;
        r->drop_notices++;
        return 0;
}

static int enforce_bound(Replay *r) {
        uint64_t records = 0, bytes = 0, first = 0, last = 0;

        while (r->bytes > r->max_bytes) {
                ReplayEntry *e = oldest_log(r);
                if (!e)
                        break; /* only records that are never dropped are left: keep them */
                if (records == 0)
                        first = e->seq;
                last = e->seq;
                records++;
                bytes += e->log_bytes;
                entry_unlink(r, e);
        }
        if (records == 0)
                return 0;

        r->dropped_records += records;
        r->dropped_bytes += bytes;
        return note_drop(r, records, bytes, first, last);
}

int replay_append(Replay *r, Tether__Envelope *env, uint64_t *ret_seq) {
        if (!envelope_is_record(env))
                return -EINVAL;

        ReplayEntry *e = calloc(1, sizeof(ReplayEntry));
        if (!e)
                return -ENOMEM;

        e->seq = r->next_seq;
        switch (env->msg_case) {
        case TETHER__ENVELOPE__MSG_LOG:
                e->kind = REPLAY_LOG;
                e->log_bytes = env->log->data.len;
                break;
        case TETHER__ENVELOPE__MSG_LOG_DROPPED:
                /* Kept like any other notice: only the buffer's own drops are merged. */
                e->kind = REPLAY_OTHER;
                break;
        default:
                e->kind = REPLAY_OTHER;
        }

        uint64_t saved_seq = env->seq;
        env->seq = e->seq;
        int k = pack_entry(e, env);
        env->seq = saved_seq;
        if (k < 0) {
                free(e);
                return k;
        }

        r->next_seq++;
        entry_link_tail(r, e);
        if (ret_seq)
                *ret_seq = e->seq;

        /* Even if recording the drop fails for lack of memory, the record itself is in. */
        (void) enforce_bound(r);
        return 0;
}

size_t replay_ack(Replay *r, uint64_t seq, bool *ret_clamped) {
        size_t freed = 0;
        bool clamped = false;

        if (seq >= r->next_seq) {
                seq = r->next_seq - 1;
                clamped = true;
        }
        if (seq > r->acked_seq)
                r->acked_seq = seq;

        while (r->head && r->head->seq <= seq) {
                entry_unlink(r, r->head);
                freed++;
        }
        if (ret_clamped)
                *ret_clamped = clamped;
        return freed;
}

void replay_rewind(Replay *r) {
        r->cursor = r->head;
}

int replay_next(Replay *r, const uint8_t **ret_frame, size_t *ret_len, uint64_t *ret_seq) {
        ReplayEntry *e = r->cursor;
        if (!e)
                return 0;

        r->cursor = e->next;
        if (r->pending_drop == e)
                r->pending_drop = NULL; /* the host may hold it now: it must not change any more */

        *ret_frame = e->frame;
        *ret_len = e->frame_len;
        if (ret_seq)
                *ret_seq = e->seq;
        return 1;
}

bool replay_has_unsent(const Replay *r) {
        return r->cursor != NULL;
}

bool replay_is_empty(const Replay *r) {
        return r->head == NULL;
}

uint64_t replay_first_seq(const Replay *r) {
        return r->head ? r->head->seq : r->next_seq;
}

uint64_t replay_last_seq(const Replay *r) {
        return r->next_seq - 1;
}

uint64_t replay_acked_seq(const Replay *r) {
        return r->acked_seq;
}

void replay_get_stats(const Replay *r, ReplayStats *ret) {
        *ret = (ReplayStats) {
                .records = r->n_entries,
                .bytes = r->bytes,
                .dropped_records = r->dropped_records,
                .dropped_bytes = r->dropped_bytes,
                .drop_notices = r->drop_notices,
        };
}
