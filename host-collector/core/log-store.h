/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* A boot's log entries in seq order, wherever they are kept: with a state directory the boot file is the log
 * store (store.c reads it, the boot's sparse index says where to start) and memory holds the newest entries
 * (the boot's LogTail); without one, memory holds them all (within its bounds). Readers (the HTTP API) ask
 * here for the entries after a seq: everything below the in-memory tail comes from the file, the rest from
 * memory, so a follower at the tail never touches the disk. */

#include <stdint.h>

#include "boot.h"
#include "store.h"

/* Where a reader is. offset is a hint: the file offset to resume scanning at, valid while offset_seq == seq. */
typedef struct LogCursor {
        uint64_t seq; /* the last seq passed (or skipped): reading goes on after it */
        uint64_t offset;
        uint64_t offset_seq;
} LogCursor;

/* Moves a cursor forward to seq (records up to it are not wanted). The hint stays valid: every log record in
 * the file after the cursor is still at or after its offset. */
static inline void log_cursor_skip_to(LogCursor *c, uint64_t seq) {
        if (seq <= c->seq)
                return;
        if (c->offset_seq == c->seq)
                c->offset_seq = seq;
        c->seq = seq;
}

/* Returns 0 to go on, > 0 to stop after this entry, or -errno. */
typedef int (*LogReadFn)(const LogEntry *e, void *userdata);

/* Calls fn for each log entry with seq > c->seq, in seq order, and moves c past it. store may be NULL (no
 * state directory). Records in the boot file that do not decode or validate are skipped, as store_load() skipped
 * them. Returns fn's positive value when it stopped, 0 when every entry stored so far was passed, -EBADMSG when
 * the boot file is corrupt (an entry cut short or failing its CRC), or -errno. */
int log_store_read(Store *store, Boot *b, LogCursor *c, LogReadFn fn, void *userdata);
