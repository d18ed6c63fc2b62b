/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Entries of a boot file that could not be written (a full disk, a failed write, a file that could not be
 * created): copies of what the file would hold, in order, kept so that they reach it once it can be written
 * again, also after the agent that sent them went away. Pure: no I/O, no logging.
 *
 * Bounded per boot and node-wide by bytes. The file is written in order, so an entry that cannot be kept makes
 * every later one useless: the list is then emptied and marked incomplete, and the records have to come from the
 * agent again (it still has them: nothing from the first unwritten record on is acked). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an entry costs beyond its payload. */
#define UNWRITTEN_ENTRY_OVERHEAD 48u
#define UNWRITTEN_BOOT_MAX_BYTES (UINT64_C(1) << 20)
#define UNWRITTEN_NODE_MAX_BYTES (UINT64_C(32) << 20)

/* Shared by every boot's list. */
typedef struct UnwrittenBudget {
        uint64_t bytes;
        uint64_t max_bytes;
} UnwrittenBudget;

typedef struct UnwrittenEntry UnwrittenEntry;
struct UnwrittenEntry {
        UnwrittenEntry *next;
        int type; /* StoreEntryType */
        uint64_t recv_unix_ns;
        uint64_t offset; /* where a repair appended it (file-repair.c) */
        size_t len;
        uint8_t payload[];
};

typedef struct Unwritten {
        UnwrittenBudget *budget; /* NULL: bounded per boot only */
        UnwrittenEntry *first, *last;
        size_t n;
        uint64_t bytes;
        bool incomplete; /* an entry was not kept: what is in the list cannot be written on its own */
} Unwritten;

void unwritten_init(Unwritten *u, UnwrittenBudget *budget);
/* Frees every entry; u stays usable (empty, complete). */
void unwritten_clear(Unwritten *u);

static inline bool unwritten_is_empty(const Unwritten *u) {
        return u->n == 0;
}

/* Appends a copy of an entry (type: StoreEntryType). Returns 0; -ENOBUFS when it is over a bound, or -ENOMEM: the
 * list is then emptied and incomplete. An incomplete list takes nothing (-ENOBUFS) until unwritten_clear(). */
int unwritten_add(Unwritten *u, int type, uint64_t recv_unix_ns, const void *payload, size_t len);

/* Marks the list incomplete (an entry of the hole is gone), emptying it. */
void unwritten_give_up(Unwritten *u);

/* Frees the n oldest entries (written). */
void unwritten_drop_first(Unwritten *u, size_t n);
