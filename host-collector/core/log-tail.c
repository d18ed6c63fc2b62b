/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "log-tail.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bsearch-util.h"
#include "macro.h"

/* A block of packed entries. An entry is a PackedEntry, its data, then (source LOG_SOURCE_INLINE) its source
 * NUL-terminated, padded to 8 bytes. Entries are added at used and evicted from head; an empty block is
 * freed. */
struct LogBlock {
        uint32_t size; /* bytes of data[] */
        uint32_t used;
        uint32_t head; /* the oldest live entry */
        uint32_t n;    /* live entries */
        uint8_t data[];
};

#define LOG_SOURCE_NONE 0
#define LOG_SOURCE_INLINE 0xFF
#define ENTRY_PERSISTED 0x01u
/* Log.priority (0 … 8) in the flags' upper half: no byte more per entry. */
#define ENTRY_PRIORITY_SHIFT 4u
#define ENTRY_PRIORITY_MAX 0x0Fu

typedef struct PackedEntry {
        uint64_t seq;
        uint64_t boottime_ns;
        uint64_t recv_unix_ns;
        uint32_t len; /* data bytes; a LogDropped's data is its four counters */
        uint8_t kind;
        uint8_t stream;
        uint8_t source; /* LOG_SOURCE_NONE, 1 + index in sources[], or LOG_SOURCE_INLINE */
        uint8_t flags;  /* ENTRY_PERSISTED, the priority << ENTRY_PRIORITY_SHIFT */
} PackedEntry;

_Static_assert(sizeof(PackedEntry) == 32, "PackedEntry keeps entries 8-aligned");

#define DROPPED_DATA_SIZE (4 * sizeof(uint64_t))

static size_t align8(size_t n) {
        return (n + 7) & ~(size_t) 7;
}

int log_entry_from_envelope(const Tether__Envelope *e, uint64_t recv_unix_ns, LogEntry *ret) {
        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_LOG: {
                const Tether__Log *l = e->log;
                *ret = (LogEntry) {
                        .seq = e->seq,
                        .boottime_ns = l->boottime_ns,
                        .recv_unix_ns = recv_unix_ns,
                        .kind = LOG_ENTRY_LINES,
                        .stream = l->stream,
                        .source = l->source && *l->source ? l->source : NULL,
                        .priority = l->priority,
                        .data = l->data.data,
                        .len = l->data.len,
                };
                return 0;
        }
        case TETHER__ENVELOPE__MSG_LOG_DROPPED: {
                const Tether__LogDropped *d = e->log_dropped;
                *ret = (LogEntry) {
                        .seq = e->seq,
                        .recv_unix_ns = recv_unix_ns,
                        .kind = LOG_ENTRY_DROPPED,
                        .dropped_records = d->records,
                        .dropped_bytes = d->bytes,
                        .dropped_first_seq = d->first_seq,
                        .dropped_last_seq = d->last_seq,
                };
                return 0;
        }
        default:
                return -EINVAL;
        }
}

/* ---- the budget's max-heap of tails, by cost ---- */

static void heap_set(LogBudget *b, size_t i, LogTail *t) {
        b->heap[i] = t;
        t->heap_index = i;
}

static void heap_up(LogBudget *b, size_t i) {
        LogTail *t = b->heap[i];
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (b->heap[parent]->cost >= t->cost)
                        break;
                heap_set(b, i, b->heap[parent]);
                i = parent;
        }
        heap_set(b, i, t);
}

static void heap_down(LogBudget *b, size_t i) {
        LogTail *t = b->heap[i];
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= b->n_heap)
                        break;
                if (c + 1 < b->n_heap && b->heap[c + 1]->cost > b->heap[c]->cost)
                        c++;
                if (b->heap[c]->cost <= t->cost)
                        break;
                heap_set(b, i, b->heap[c]);
                i = c;
        }
        heap_set(b, i, t);
}

static int heap_insert(LogBudget *b, LogTail *t) {
        if (b->n_heap == b->heap_cap) {
                size_t cap = b->heap_cap ? b->heap_cap * 2 : 64;
                LogTail **a = realloc(b->heap, cap * sizeof(LogTail *));
                if (!a)
                        return -ENOMEM;
                b->heap = a;
                b->heap_cap = cap;
        }
        heap_set(b, b->n_heap++, t);
        heap_up(b, t->heap_index);
        return 0;
}

static void heap_remove(LogBudget *b, LogTail *t) {
        size_t i = t->heap_index;
        LogTail *last = b->heap[--b->n_heap];

        if (last == t)
                return;
        heap_set(b, i, last);
        heap_up(b, i);
        heap_down(b, last->heap_index);
}

int log_budget_new(uint64_t limit, LogMemoryStats *stats, LogBudget **ret) {
        LogBudget *b = calloc(1, sizeof(LogBudget));
        if (!b)
                return -ENOMEM;
        b->limit = limit ?: LOG_MEMORY_BYTES_DEFAULT;
        b->stats = stats ?: &b->own_stats;
        b->stats->limit = b->limit;
        b->stats->bytes = 0;
        *ret = b;
        return 0;
}

LogBudget *log_budget_free(LogBudget *b) {
        if (!b)
                return NULL;
        free(b->heap);
        free(b);
        return NULL;
}

/* ---- tails ---- */

int log_tail_init(LogTail *t, uint64_t max_cost, LogBudget *budget) {
        *t = (LogTail) { .max_cost = max_cost, .budget = budget };
        if (budget && heap_insert(budget, t) < 0) {
                t->budget = NULL;
                return -ENOMEM;
        }
        return 0;
}

static LogBlock *tail_block(const LogTail *t, size_t i) {
        return t->blocks[(t->blocks_head + i) % t->blocks_cap];
}

static const char *entry_source(const LogTail *t, const PackedEntry *p, const uint8_t *data) {
        if (p->source == LOG_SOURCE_NONE)
                return NULL;
        if (p->source == LOG_SOURCE_INLINE)
                return (const char *) data + p->len;
        return t->sources[p->source - 1];
}

static size_t entry_size(const LogTail *t, const PackedEntry *p, const uint8_t *data) {
        size_t n = sizeof(PackedEntry) + p->len;
        if (p->source == LOG_SOURCE_INLINE)
                n += strlen((const char *) data + p->len) + 1;
        return align8(n);
}

static uint64_t entry_cost(const PackedEntry *p, const char *source) {
        return LOG_ENTRY_OVERHEAD + (p->kind == LOG_ENTRY_LINES ? p->len : 0) +
                (p->source == LOG_SOURCE_INLINE ? strlen(source) : 0);
}

static void charge(LogTail *t, uint64_t cost, bool add) {
        if (add)
                t->cost += cost;
        else
                t->cost -= cost;
        if (!t->budget)
                return;
        if (add) {
                t->budget->cost += cost;
                heap_up(t->budget, t->heap_index);
        } else {
                t->budget->cost -= cost;
                heap_down(t->budget, t->heap_index);
        }
        t->budget->stats->bytes = t->budget->cost;
}

static void evict_oldest(LogTail *t, bool by_budget, LogTailEvictions *ret) {
        LogBlock *blk = tail_block(t, 0);
        const uint8_t *at = blk->data + blk->head;
        PackedEntry p;

        memcpy(&p, at, sizeof(p));
        const uint8_t *data = at + sizeof(p);
        uint64_t cost = entry_cost(&p, entry_source(t, &p, data));
        bool lines = p.kind == LOG_ENTRY_LINES;

        if (!(p.flags & ENTRY_PERSISTED)) {
                /* Only in memory: gone for good. */
                if (lines) {
                        t->evicted_records++;
                        t->evicted_bytes += p.len;
                        ret->records++;
                        ret->bytes += p.len;
                }
                t->evicted_last_seq = MAX(t->evicted_last_seq, p.seq);
        }
        if (by_budget && lines) {
                t->budget->stats->evicted_records++;
                t->budget->stats->evicted_bytes += p.len;
        }
        if (lines)
                t->data_bytes -= p.len;

        blk->head += (uint32_t) entry_size(t, &p, data);
        blk->n--;
        t->n_entries--;
        if (blk->n == 0) {
                free(blk);
                t->blocks_head = (t->blocks_head + 1) % t->blocks_cap;
                t->n_blocks--;
        }
        charge(t, cost, false);
}

void log_tail_done(LogTail *t) {
        if (t->budget) {
                t->budget->cost -= t->cost;
                t->budget->stats->bytes = t->budget->cost;
                heap_remove(t->budget, t);
        }
        for (size_t i = 0; i < t->n_blocks; i++)
                free(tail_block(t, i));
        free(t->blocks);
        for (size_t i = 0; i < t->n_sources; i++)
                free(t->sources[i]);
        *t = (LogTail) {};
}

/* The source's code: an interned one, a newly interned one while the table has room, else inline. Returns the
 * code, or -ENOMEM. */
static int source_code(LogTail *t, const char *source) {
        if (!source)
                return LOG_SOURCE_NONE;
        for (size_t i = 0; i < t->n_sources; i++)
                if (strcmp(t->sources[i], source) == 0)
                        return (int) i + 1;
        size_t n = strlen(source);
        if (t->n_sources >= LOG_TAIL_SOURCES_MAX || n > LOG_TAIL_SOURCE_INTERN_MAX ||
            t->source_bytes + n > LOG_TAIL_SOURCE_BYTES_MAX)
                return LOG_SOURCE_INLINE;
        char *s = strdup(source);
        if (!s)
                return -ENOMEM;
        t->sources[t->n_sources++] = s;
        t->source_bytes += n;
        return (int) t->n_sources;
}

/* Room for size bytes at the end of the newest block, adding a block if needed. Returns the block or NULL. */
static LogBlock *reserve(LogTail *t, size_t size) {
        LogBlock *last = t->n_blocks > 0 ? tail_block(t, t->n_blocks - 1) : NULL;

        if (last && last->size - last->used >= size)
                return last;

        if (t->n_blocks == t->blocks_cap) {
                size_t cap = t->blocks_cap ? t->blocks_cap * 2 : 4;
                LogBlock **a = malloc(cap * sizeof(LogBlock *));
                if (!a)
                        return NULL;
                for (size_t i = 0; i < t->n_blocks; i++)
                        a[i] = tail_block(t, i);
                free(t->blocks);
                t->blocks = a;
                t->blocks_cap = cap;
                t->blocks_head = 0;
        }

        /* Small tails stay small; growing ones get blocks of LOG_TAIL_BLOCK_MAX. */
        size_t total = last ? MIN((size_t) LOG_TAIL_BLOCK_MAX, 2 * (sizeof(LogBlock) + last->size)) :
                              LOG_TAIL_BLOCK_MIN;
        total = MAX(total, sizeof(LogBlock) + size);
        LogBlock *blk = malloc(total);
        if (!blk)
                return NULL;
        *blk = (LogBlock) { .size = (uint32_t) (total - sizeof(LogBlock)) };
        t->blocks[(t->blocks_head + t->n_blocks) % t->blocks_cap] = blk;
        t->n_blocks++;
        return blk;
}

int log_tail_append(LogTail *t, const LogEntry *e, bool persisted, LogTailEvictions *ret) {
        bool lines = e->kind == LOG_ENTRY_LINES;
        PackedEntry p = {
                .seq = e->seq,
                .boottime_ns = e->boottime_ns,
                .recv_unix_ns = e->recv_unix_ns,
                .len = lines ? (uint32_t) e->len : (uint32_t) DROPPED_DATA_SIZE,
                .kind = (uint8_t) e->kind,
                .stream = (uint8_t) e->stream,
                .flags =
                        (uint8_t) ((persisted ? ENTRY_PERSISTED : 0) | (lines ? e->priority << ENTRY_PRIORITY_SHIFT : 0)),
        };
        int code;

        if (lines && (e->len > UINT32_MAX / 2 || e->priority > ENTRY_PRIORITY_MAX))
                return -EINVAL;
        code = lines ? source_code(t, e->source) : (int) LOG_SOURCE_NONE;
        if (code < 0)
                return code;
        p.source = (uint8_t) code;

        size_t source_len = code == LOG_SOURCE_INLINE ? strlen(e->source) + 1 : 0;
        size_t size = align8(sizeof(p) + p.len + source_len);
        LogBlock *blk = reserve(t, size);
        if (!blk)
                return -ENOMEM;

        uint8_t *at = blk->data + blk->used;
        memcpy(at, &p, sizeof(p));
        if (lines) {
                if (e->len > 0)
                        memcpy(at + sizeof(p), e->data, e->len);
        } else {
                uint64_t d[4] = { e->dropped_records, e->dropped_bytes, e->dropped_first_seq, e->dropped_last_seq };
                memcpy(at + sizeof(p), d, sizeof(d));
        }
        if (source_len > 0)
                memcpy(at + sizeof(p) + p.len, e->source, source_len);
        blk->used += (uint32_t) size;
        blk->n++;
        t->n_entries++;
        if (lines)
                t->data_bytes += e->len;
        charge(t, entry_cost(&p, e->source), true);

        while (t->n_entries > 0 && t->cost > t->max_cost)
                evict_oldest(t, false, ret);
        if (t->budget)
                while (t->budget->cost > t->budget->limit && t->budget->n_heap > 0) {
                        LogTail *top = t->budget->heap[0];
                        if (top->n_entries == 0)
                                break;
                        evict_oldest(top, true, ret);
                }
        return 0;
}

int log_tail_first_seq(const LogTail *t, uint64_t *ret) {
        PackedEntry p;

        if (t->n_entries == 0)
                return -ENOENT;
        LogBlock *blk = tail_block(t, 0);
        memcpy(&p, blk->data + blk->head, sizeof(p));
        *ret = p.seq;
        return 0;
}

static uint64_t block_first_seq(const LogBlock *blk) {
        PackedEntry p;
        memcpy(&p, blk->data + blk->head, sizeof(p));
        return p.seq;
}

static uint64_t block_first_seq_at(const void *base, size_t i) {
        return block_first_seq(tail_block(base, i));
}

void log_tail_find_after(const LogTail *t, uint64_t after_seq, LogTailPos *ret) {
        /* The last block starting at or before after_seq holds the answer, or the answer starts the next. */
        size_t above = upper_bound_u64(t, t->n_blocks, after_seq, block_first_seq_at);
        size_t lo = above > 0 ? above - 1 : 0;
        LogTailPos pos = { .block = lo, .offset = t->n_blocks > 0 ? tail_block(t, lo)->head : 0 };
        LogTailPos prev = pos;
        LogEntry e;
        while (log_tail_next(t, &pos, &e)) {
                if (e.seq > after_seq)
                        break;
                prev = pos;
        }
        *ret = prev;
}

bool log_tail_next(const LogTail *t, LogTailPos *pos, LogEntry *ret) {
        PackedEntry p;

        if (pos->block >= t->n_blocks)
                return false;
        LogBlock *blk = tail_block(t, pos->block);
        if (pos->offset >= blk->used) {
                if (pos->block + 1 >= t->n_blocks)
                        return false;
                pos->block++;
                blk = tail_block(t, pos->block);
                pos->offset = blk->head;
        }
        const uint8_t *at = blk->data + pos->offset;
        memcpy(&p, at, sizeof(p));
        const uint8_t *data = at + sizeof(p);
        *ret = (LogEntry) {
                .seq = p.seq,
                .boottime_ns = p.boottime_ns,
                .recv_unix_ns = p.recv_unix_ns,
                .kind = p.kind,
                .stream = p.stream,
                .source = entry_source(t, &p, data),
        };
        if (p.kind == LOG_ENTRY_LINES) {
                ret->priority = p.flags >> ENTRY_PRIORITY_SHIFT;
                ret->data = data;
                ret->len = p.len;
        } else {
                uint64_t d[4];
                memcpy(d, data, sizeof(d));
                ret->dropped_records = d[0];
                ret->dropped_bytes = d[1];
                ret->dropped_first_seq = d[2];
                ret->dropped_last_seq = d[3];
        }
        pos->offset += entry_size(t, &p, data);
        return true;
}

void log_tail_set_persisted(LogTail *t, uint64_t first_seq, uint64_t last_seq, bool persisted) {
        LogTailPos pos;
        LogEntry e;

        log_tail_find_after(t, first_seq > 0 ? first_seq - 1 : 0, &pos);
        for (;;) {
                LogTailPos at = pos;
                if (!log_tail_next(t, &pos, &e) || e.seq > last_seq)
                        break;
                /* log_tail_next() may have stepped into the next block before reading this entry. */
                LogBlock *blk = tail_block(t, at.block);
                if (at.offset >= blk->used) {
                        at.block++;
                        blk = tail_block(t, at.block);
                        at.offset = blk->head;
                }
                if (e.seq < first_seq)
                        continue;
                uint8_t *flags = &blk->data[at.offset + offsetof(PackedEntry, flags)];
                *flags = persisted ? (*flags | ENTRY_PERSISTED) : (*flags & (uint8_t) ~ENTRY_PERSISTED);
        }
}
