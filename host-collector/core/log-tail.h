/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* The log lines of a boot that are held in memory, and the one budget all boots share. Pure: no I/O, no
 * logging.
 *
 * A LogTail keeps the newest log entries of one boot packed in a few blocks (no allocation per line): each
 * entry is a fixed header plus its data, its source interned in a small per-tail table (or copied inline
 * beyond the table's bound: the guest chooses sources). Entries are evicted oldest first, one at a time, when
 * the tail exceeds its own bound (the per-boot share) or when the budget all tails share is exceeded; the
 * budget then takes from the tail that holds the most, so a flooding boot evicts its own lines before a quiet
 * one loses any. An entry keeps its Log.priority in a spare half byte of its header (nothing more per line). An
 * entry marked persisted is also in the boot's file (store.c reads it back from there): evicting it loses
 * nothing. Evicting one that is not counts it as lost (evicted_*). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"
#include "tether.pb-c.h"

/* What one in-memory entry is charged beyond its data (the packed header is 32 bytes; the rest covers block
 * slack), so that a flood of empty lines is bounded too. */
#define LOG_ENTRY_OVERHEAD 64u

/* Interned sources per tail, and the bytes of their names; longer or further sources are stored with each
 * entry instead. */
#define LOG_TAIL_SOURCES_MAX 16u
#define LOG_TAIL_SOURCE_BYTES_MAX 1024u
#define LOG_TAIL_SOURCE_INTERN_MAX 128u

/* Blocks grow from the first size to the last as a tail grows; an entry larger than a block gets its own. */
#define LOG_TAIL_BLOCK_MIN 512u
#define LOG_TAIL_BLOCK_MAX 4096u

/* The budget's defaults: see docs/architecture.md (Bounds). Without a state dir the tails are the log store;
 * with one they are a cache of each boot's newest lines, read from the boot file beyond. */
#define LOG_MEMORY_BYTES_DEFAULT (UINT64_C(32) << 20)
#define LOG_MEMORY_BYTES_DEFAULT_STATE_DIR (UINT64_C(16) << 20)

typedef enum LogEntryKind {
        LOG_ENTRY_LINES,   /* a Log record: one or more complete lines */
        LOG_ENTRY_DROPPED, /* a LogDropped record: the agent lost these */
} LogEntryKind;

/* One log entry, wherever it is kept: the pointers are valid until the tail (or the envelope it was read
 * from) changes. */
typedef struct LogEntry {
        uint64_t seq;
        uint64_t boottime_ns;
        uint64_t recv_unix_ns;
        LogEntryKind kind;
        int stream;         /* Tether__LogStream */
        const char *source; /* NULL if none */
        unsigned priority;  /* Log.priority (1 + syslog's, 1 … 8; 0: none) */
        uint64_t dropped_records, dropped_bytes, dropped_first_seq, dropped_last_seq;
        const uint8_t *data;
        size_t len;
} LogEntry;

/* The entry of a Log or LogDropped record (pointers into e). Returns 0, or -EINVAL for other records. */
int log_entry_from_envelope(const Tether__Envelope *e, uint64_t recv_unix_ns, LogEntry *ret);

typedef struct LogBudget LogBudget;
typedef struct LogBlock LogBlock;

typedef struct LogTail {
        LogBudget *budget; /* NULL: bounded by max_cost only */
        size_t heap_index; /* in the budget's heap */
        uint64_t max_cost; /* this tail's own bound (the per-boot share) */

        LogBlock **blocks; /* ring, oldest at blocks_head */
        size_t n_blocks, blocks_cap, blocks_head;
        size_t n_entries;
        uint64_t cost;       /* charged: LOG_ENTRY_OVERHEAD + data + inline source, per entry */
        uint64_t data_bytes; /* data bytes of the Log entries held */

        /* Entries evicted that were not persisted (lost): Log records and their bytes; highest seq of any. */
        uint64_t evicted_records, evicted_bytes;
        uint64_t evicted_last_seq;

        char *sources[LOG_TAIL_SOURCES_MAX];
        size_t n_sources, source_bytes;
} LogTail;

/* budget may be NULL. Returns 0 or -ENOMEM. */
int log_tail_init(LogTail *t, uint64_t max_cost, LogBudget *budget);
void log_tail_done(LogTail *t);

/* Evictions an append caused, in this tail or (budget) in others: only the lost ones (not persisted). */
typedef struct LogTailEvictions {
        uint64_t records, bytes; /* Log records and their data bytes */
} LogTailEvictions;

/* Appends an entry with a seq above every held one, then evicts while over a bound (possibly the new entry
 * itself, when it alone exceeds the tail's bound). Returns 0 (*ret gets the lost evictions, added to it), or
 * -ENOMEM (nothing changed). */
int log_tail_append(LogTail *t, const LogEntry *e, bool persisted, LogTailEvictions *ret);
/* The entries with first_seq <= seq <= last_seq are in the boot file after all (persisted: a resent record was
 * written), or not (a write of them failed: evicting them is a loss again, counted as such). */
void log_tail_set_persisted(LogTail *t, uint64_t first_seq, uint64_t last_seq, bool persisted);

/* The oldest held entry's seq. Returns 0, or -ENOENT when the tail is empty. */
int log_tail_first_seq(const LogTail *t, uint64_t *ret);

/* A position in a tail, valid until the tail changes. */
typedef struct LogTailPos {
        size_t block; /* 0 = the oldest block */
        size_t offset;
} LogTailPos;

/* Position of the first held entry with seq > after_seq (possibly the end). */
void log_tail_find_after(const LogTail *t, uint64_t after_seq, LogTailPos *ret);
/* The entry at *pos, and advances *pos. Returns true, or false at the end. */
bool log_tail_next(const LogTail *t, LogTailPos *pos, LogEntry *ret);

/* Memory of every tail together, bounded by limit. */
struct LogBudget {
        uint64_t limit;
        uint64_t cost;  /* charged by every tail */
        LogTail **heap; /* max-heap by cost */
        size_t n_heap, heap_cap;
        LogMemoryStats *stats; /* counters and gauges, may point to own */
        LogMemoryStats own_stats;
};

/* limit 0 means LOG_MEMORY_BYTES_DEFAULT; stats may be NULL. Returns 0 or -ENOMEM. */
int log_budget_new(uint64_t limit, LogMemoryStats *stats, LogBudget **ret);
/* Every tail must be done first. */
LogBudget *log_budget_free(LogBudget *b);
