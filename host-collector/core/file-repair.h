/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Bringing a boot file up to date after writes to it failed (a full disk, an I/O error, a file that could not be
 * created). The boot keeps what its file misses from the hole on (Boot.unwritten); a repair makes the file
 * writable (store_repair_boot()) and appends that, in order, and works the same whether the boot's agent is still
 * connected (session.c) or gone (server.c's repair timer). No logging: the callers say what it did. */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "machine.h"
#include "stats.h"
#include "store.h"

/* A repair is tried 1 s after the first failure, then at doubling intervals up to 30 s. */
#define FILE_REPAIR_RETRY_MIN_NS (UINT64_C(1) * 1000000000)
#define FILE_REPAIR_RETRY_MAX_NS (UINT64_C(30) * 1000000000)

/* Whether the store refused an entry for good (the boot file's bound: -EFBIG; an entry too large: -EMSGSIZE),
 * rather than failing to write it now (a full disk, an I/O error), which a later try may mend. */
static inline bool file_refused_for_good(int r) {
        return r == -EFBIG || r == -EMSGSIZE;
}

/* Counts an entry refused for good as dropped: disk_limit for the boot file's bound, else persist_failed (also a
 * persist error). */
void file_count_refused(Stats *stats, int r, size_t bytes);

/* The file misses records the boot applied. */
static inline bool file_repair_needed(const Boot *b) {
        return b->unpersisted_seq != 0;
}

/* Starts the retry schedule (the first failure of a hole). */
void file_repair_schedule(Boot *b, uint64_t now_monotonic_ns);

/* Whether the retry schedule allows a try now; if so, the next try is moved one (doubled) interval on. */
bool file_repair_due(Boot *b, uint64_t now_monotonic_ns);

/* Tries to make the boot's file hold every record the boot applied. Returns 0 when it does again (the hole is
 * closed); 1 when the file is writable again but the records from the hole on have to come from the agent (not
 * all were kept in memory); -errno when it cannot be written yet (-ENOSPC: under 1 MiB free), what was kept then
 * staying for the next try. *ret_records (may be NULL) gets how many records it wrote from memory. */
int file_repair(Store *store, Stats *stats, Machine *m, Boot *b, uint64_t *ret_records);
