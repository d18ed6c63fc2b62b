/* SPDX-License-Identifier: MIT */
#include "replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"

typedef enum ReplayKind {
        REPLAY_LOG,
        REPLAY_DROPPED,
        REPLAY_OTHER,
} ReplayKind;

typedef struct ReplayEntry ReplayEntry;
struct ReplayEntry {
        LIST_FIELDS(ReplayEntry, entries); /* oldest first */
        uint64_t seq;
        uint8_t *frame;
        uint32_t frame_len;
        uint16_t log_bytes; /* REPLAY_LOG: Log.data length (at most 16 KiB) */
        uint8_t kind;
};

/* Two allocations per record (entry and frame), each with a header and rounding of up to 16 bytes. */
_Static_assert(sizeof(ReplayEntry) + 2 * 16 <= REPLAY_ENTRY_OVERHEAD, "REPLAY_ENTRY_OVERHEAD is too small");

typedef struct DropTally {
        uint64_t records, bytes;
        uint64_t first_seq, last_seq;
} DropTally;

/* Sent Log records dropped before their ack. Ranges are disjoint and in seq order. Between the records of a
 * merged range lie only records still held (they cannot be dropped: every Log older than a dropped one is
 * gone) and records dropped before they were sent (counted in foreign, already reported). */
typedef struct SentDrop {
        uint64_t first_seq, last_seq;
        uint64_t records, bytes;
        uint64_t foreign;        /* seqs inside the range dropped before they were sent */
        uint64_t foreign_before; /* such seqs between the previous range and this one */
} SentDrop;

struct Replay {
        LIST_HEAD(ReplayEntry, head);
        ReplayEntry *tail;
        ReplayEntry *cursor;                /* first entry not handed to the sender on this connection */
        ReplayEntry *pending_drop;          /* the newest LogDropped, while it has not been handed to the sender */
        Tether__LogDropped pending_dropped; /* what it says, to re-pack it when it absorbs more */
        uint64_t next_seq;
        uint64_t acked_seq;
        /* Every record up to here was handed to a sender since the last Welcome, so the host may hold it. The
         * sender takes records in order and a Welcome settles them all: these records are a prefix of the
         * buffer. */
        uint64_t sent_seq;
        uint64_t bytes, max_bytes;
        /* What the Log records up to sent_seq cost: evicting them loses nothing the host cannot still get while
         * the connection lasts (flow control counts the rest, replay_sent_log_bytes()). */
        uint64_t sent_log_bytes;
        uint64_t n_entries;

        /* The newest Log while it is the tail: what merging into it needs. */
        ReplayEntry *merge_tail;
        Tether__LogStream merge_stream;
        char *merge_source;
        uint64_t merge_boottime_ns;

        SentDrop sent_drops[REPLAY_SENT_DROP_RANGES];
        size_t n_sent_drops;
        uint64_t foreign_pending; /* Logs dropped unsent since the newest range was added */
        DropTally unreported;     /* lost but not in a LogDropped yet: only after running out of memory */

        uint64_t dropped_records, dropped_bytes, drop_notices;
        uint64_t sent_drops_total, sent_drop_bytes, unsettled_records;
        uint64_t estimated_drops, merged_logs;
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
                r->cursor = e->entries_next;
        if (r->pending_drop == e)
                r->pending_drop = NULL;
        if (r->merge_tail == e)
                r->merge_tail = NULL;
        if (e->kind == REPLAY_LOG && e->seq <= r->sent_seq)
                r->sent_log_bytes -= entry_cost(e);
        LIST_REMOVE_WITH_TAIL(entries, r->head, r->tail, e);
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
        free(r->merge_source);
        free(r);
        return NULL;
}

static void entry_link_tail(Replay *r, ReplayEntry *e) {
        LIST_APPEND_WITH_TAIL(entries, r->head, r->tail, e);
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
        e->frame_len = (uint32_t) len; /* at most TETHER_FRAME_MAX plus the header */
        return 0;
}

static int pack_dropped(ReplayEntry *e, const Tether__LogDropped *d) {
        Tether__Envelope env = TETHER__ENVELOPE__INIT;
        env.seq = e->seq;
        env.msg_case = TETHER__ENVELOPE__MSG_LOG_DROPPED;
        env.log_dropped = (Tether__LogDropped *) d;
        return pack_entry(e, &env);
}

static ReplayEntry *oldest_log(const Replay *r) {
        for (ReplayEntry *e = r->head; e; e = e->entries_next)
                if (e->kind == REPLAY_LOG)
                        return e;
        return NULL;
}

static void tally_add(DropTally *t, uint64_t records, uint64_t bytes, uint64_t first, uint64_t last) {
        if (records == 0)
                return;
        t->first_seq = t->records > 0 ? MIN(t->first_seq, first) : first;
        t->last_seq = MAX(t->last_seq, last);
        t->records += records;
        t->bytes += bytes;
}

/* Records what went in a LogDropped: merged into the pending one when every dropped seq precedes it (a
 * LogDropped only ever explains records before itself), or as a new record at the tail. */
static int note_drop(Replay *r, const DropTally *t) {
        ReplayEntry *d = r->pending_drop;

        if (d && t->last_seq < d->seq) {
                Tether__LogDropped merged = r->pending_dropped;
                uint64_t old_cost = entry_cost(d);

                merged.records += t->records;
                merged.bytes += t->bytes;
                merged.first_seq = MIN(merged.first_seq, t->first_seq);
                merged.last_seq = MAX(merged.last_seq, t->last_seq);
                int k = pack_dropped(d, &merged);
                if (k < 0)
                        return k;
                r->pending_dropped = merged;
                r->bytes = r->bytes - old_cost + entry_cost(d);
                return 0;
        }

        d = calloc(1, sizeof(ReplayEntry));
        if (!d)
                return -ENOMEM;
        d->kind = REPLAY_DROPPED;
        d->seq = r->next_seq;
        Tether__LogDropped ld = TETHER__LOG_DROPPED__INIT;
        ld.records = t->records;
        ld.bytes = t->bytes;
        ld.first_seq = t->first_seq;
        ld.last_seq = t->last_seq;
        int k = pack_dropped(d, &ld);
        if (k < 0) {
                free(d);
                return k;
        }
        r->next_seq++;
        entry_link_tail(r, d);
        r->pending_drop = d;
        r->pending_dropped = ld;
        r->drop_notices++;
        return 0;
}

/* Counts what is certainly lost and reports it; what a lack of memory kept from a LogDropped is retried with
 * the next report. */
static int report_lost(Replay *r, const DropTally *lost) {
        tally_add(&r->unreported, lost->records, lost->bytes, lost->first_seq, lost->last_seq);
        r->dropped_records += lost->records;
        r->dropped_bytes += lost->bytes;
        if (r->unreported.records == 0)
                return 0;
        int k = note_drop(r, &r->unreported);
        if (k < 0)
                return k;
        r->unreported = (DropTally) {};
        return 0;
}

/* Merges the two closest neighbouring ranges, preferring a pair with no unsent drop between them: such a
 * range still tells exactly how many of its records lie above any cut. */
static void sent_drops_merge_closest(Replay *r) {
        size_t best = 0;
        uint64_t best_gap = UINT64_MAX;
        bool best_pure = false;

        for (size_t i = 0; i + 1 < r->n_sent_drops; i++) {
                const SentDrop *a = &r->sent_drops[i], *b = a + 1;
                bool pure = b->foreign_before == 0;
                uint64_t gap = b->first_seq - a->last_seq;
                if ((pure && !best_pure) || (pure == best_pure && gap < best_gap)) {
                        best = i;
                        best_gap = gap;
                        best_pure = pure;
                }
        }

        SentDrop *a = &r->sent_drops[best], *b = a + 1;
        a->last_seq = b->last_seq;
        a->records += b->records;
        a->bytes += b->bytes;
        a->foreign += b->foreign_before + b->foreign;
        memmove(b, b + 1, (r->n_sent_drops - best - 2) * sizeof(SentDrop));
        r->n_sent_drops--;
}

static void sent_drop_add(Replay *r, const ReplayEntry *e) {
        if (r->n_sent_drops == REPLAY_SENT_DROP_RANGES)
                sent_drops_merge_closest(r);
        r->sent_drops[r->n_sent_drops] = (SentDrop) {
                .first_seq = e->seq,
                .last_seq = e->seq,
                .records = 1,
                .bytes = e->log_bytes,
                .foreign_before = r->n_sent_drops > 0 ? r->foreign_pending : 0,
        };
        r->n_sent_drops++;
        r->foreign_pending = 0;
        r->sent_drops_total++;
        r->sent_drop_bytes += e->log_bytes;
        r->unsettled_records++;
}

/* The ranges entirely at or below seq were delivered. */
static void sent_drops_settle(Replay *r, uint64_t seq) {
        size_t n = 0;
        while (n < r->n_sent_drops && r->sent_drops[n].last_seq <= seq)
                r->unsettled_records -= r->sent_drops[n++].records;
        memmove(r->sent_drops, r->sent_drops + n, (r->n_sent_drops - n) * sizeof(SentDrop));
        r->n_sent_drops -= n;
}

static int enforce_bound(Replay *r) {
        DropTally lost = {};

        while (r->bytes > r->max_bytes) {
                ReplayEntry *e = oldest_log(r);
                if (!e)
                        break; /* only records that are never dropped are left: keep them */
                if (e->seq <= r->sent_seq)
                        sent_drop_add(r, e); /* the host may have it: settled by an Ack or the next Welcome */
                else {
                        tally_add(&lost, 1, e->log_bytes, e->seq, e->seq);
                        r->foreign_pending++;
                }
                entry_unlink(r, e);
        }
        return report_lost(r, &lost);
}

/* A Log with a priority or a cursor (a journal entry) stays a record of its own: its lines share neither, and its
 * data is not the last field of its frame. */
static bool log_plain(const Tether__Log *l) {
        return l->priority == 0 && (!l->cursor || !*l->cursor);
}

static bool log_mergeable(const Replay *r, const Tether__Log *l) {
        const ReplayEntry *t = r->tail;

        /* Log.data is the last field of a plain Log, the Envelope's last field: its frame ends with its data. */
        return t && t == r->merge_tail && log_plain(l) && t->seq > r->sent_seq && t->log_bytes > 0 &&
                t->frame[t->frame_len - 1] == '\n' &&
                t->log_bytes + l->data.len <= ENVELOPE_LIMITS_DEFAULT.max_log_bytes && l->stream == r->merge_stream &&
                strcmp(l->source ?: "", r->merge_source) == 0 && l->boottime_ns >= r->merge_boottime_ns &&
                l->boottime_ns - r->merge_boottime_ns <= REPLAY_LOG_MERGE_WINDOW_NS;
}

static int merge_log(Replay *r, const Tether__Log *l) {
        ReplayEntry *t = r->tail;
        size_t old = t->log_bytes, n = l->data.len;

        _cleanup_free_ uint8_t *data = malloc(old + n);
        if (!data)
                return -ENOMEM;
        memcpy(data, t->frame + t->frame_len - old, old);
        memcpy(data + old, l->data.data, n);

        Tether__Log m = *l;
        m.boottime_ns = r->merge_boottime_ns;
        m.data.data = data;
        m.data.len = old + n;
        Tether__Envelope env = TETHER__ENVELOPE__INIT;
        env.seq = t->seq;
        env.msg_case = TETHER__ENVELOPE__MSG_LOG;
        env.log = &m;

        uint64_t old_cost = entry_cost(t);
        int k = pack_entry(t, &env);
        if (k < 0)
                return k;
        t->log_bytes = (uint16_t) (old + n);
        r->bytes = r->bytes - old_cost + entry_cost(t);
        r->merged_logs++;
        return 0;
}

static void remember_merge_tail(Replay *r, ReplayEntry *e, const Tether__Log *l) {
        const char *source = l->source ?: "";

        if (!r->merge_source || strcmp(r->merge_source, source) != 0) {
                free(r->merge_source);
                r->merge_source = strdup(source);
        }
        /* without a copy of the source, nothing merges into e */
        r->merge_tail = r->merge_source && log_plain(l) ? e : NULL;
        r->merge_stream = l->stream;
        r->merge_boottime_ns = l->boottime_ns;
}

int replay_append(Replay *r, Tether__Envelope *env, uint64_t *ret_seq) {
        if (!envelope_is_record(env))
                return -EINVAL;

        bool is_log = env->msg_case == TETHER__ENVELOPE__MSG_LOG;
        if (is_log && env->log->data.len > ENVELOPE_LIMITS_DEFAULT.max_log_bytes)
                return -EMSGSIZE;

        /* Falls back to a record of its own if merging runs out of memory. */
        if (is_log && log_mergeable(r, env->log) && merge_log(r, env->log) >= 0) {
                if (ret_seq)
                        *ret_seq = r->tail->seq;
                (void) enforce_bound(r);
                return 0;
        }

        ReplayEntry *e = calloc(1, sizeof(ReplayEntry));
        if (!e)
                return -ENOMEM;

        e->seq = r->next_seq;
        /* An appended LogDropped is kept like any other notice: only the buffer's own drops are merged. */
        e->kind = is_log ? REPLAY_LOG : REPLAY_OTHER;
        if (is_log)
                e->log_bytes = (uint16_t) env->log->data.len;

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
        if (is_log)
                remember_merge_tail(r, e, env->log);
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
        sent_drops_settle(r, r->acked_seq);
        if (ret_clamped)
                *ret_clamped = clamped;
        return freed;
}

/* How many seqs in (after, upto] are held, and the first one that is not (0 if none). */
static uint64_t count_held(const Replay *r, uint64_t after, uint64_t upto, uint64_t *ret_first_missing) {
        uint64_t held = 0, next = after + 1, first_missing = 0;

        for (const ReplayEntry *e = r->head; e && e->seq <= upto; e = e->entries_next) {
                if (e->seq <= after)
                        continue;
                if (first_missing == 0 && e->seq > next)
                        first_missing = next;
                next = e->seq + 1;
                held++;
        }
        if (first_missing == 0 && next <= upto)
                first_missing = next;
        *ret_first_missing = first_missing;
        return held;
}

/* part/whole of total, without overflowing for any realistic count. */
static uint64_t share(uint64_t total, uint64_t part, uint64_t whole) {
        return total / whole * part + total % whole * part / whole;
}

size_t replay_welcome(Replay *r, uint64_t acked_seq, bool *ret_clamped) {
        size_t freed = replay_ack(r, acked_seq, ret_clamped);
        uint64_t cut = r->acked_seq;
        DropTally lost = {};

        /* The host holds everything up to cut and nothing above it: the ranges left are lost above the cut. */
        for (size_t i = 0; i < r->n_sent_drops; i++) {
                const SentDrop *d = &r->sent_drops[i];
                if (d->first_seq > cut) {
                        tally_add(&lost, d->records, d->bytes, d->first_seq, d->last_seq);
                        continue;
                }

                /* The cut falls inside a merged range. Above the cut, what is not held is its records, plus any
                 * dropped unsent in between (foreign, reported already: then the count is an upper bound). Its
                 * byte count is only known in total: share it out by records. */
                uint64_t first_missing;
                uint64_t missing = d->last_seq - cut - count_held(r, cut, d->last_seq, &first_missing);
                uint64_t records = MIN(missing, d->records);
                if (records == 0)
                        continue;
                if (records < d->records || d->foreign > 0)
                        r->estimated_drops++;
                tally_add(&lost, records, share(d->bytes, records, d->records), first_missing, d->last_seq);
        }
        r->n_sent_drops = 0;
        r->unsettled_records = 0;
        r->foreign_pending = 0;
        r->sent_seq = cut; /* everything held is above the cut: the host has none of it */
        r->sent_log_bytes = 0;

        (void) report_lost(r, &lost);
        replay_rewind(r);
        return freed;
}

void replay_rewind(Replay *r) {
        r->cursor = r->head;
}

int replay_next(Replay *r, const uint8_t **ret_frame, size_t *ret_len, uint64_t *ret_seq) {
        ReplayEntry *e = r->cursor;
        if (!e)
                return 0;

        r->cursor = e->entries_next;
        /* The host may hold it now: it must not change any more. */
        if (r->pending_drop == e)
                r->pending_drop = NULL;
        if (e->seq > r->sent_seq && e->kind == REPLAY_LOG)
                r->sent_log_bytes += entry_cost(e); /* a rewind without a Welcome sends it again: counted once */
        r->sent_seq = MAX(r->sent_seq, e->seq);

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

uint64_t replay_bytes(const Replay *r) {
        return r->bytes;
}

uint64_t replay_sent_log_bytes(const Replay *r) {
        return r->sent_log_bytes;
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
                .sent_drops = r->sent_drops_total,
                .sent_drop_bytes = r->sent_drop_bytes,
                .unsettled_records = r->unsettled_records,
                .estimated_drops = r->estimated_drops,
                .merged_logs = r->merged_logs,
        };
}
