/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Where a boot's log records are in its file: a sparse index of (seq, file offset) points, one per block of
 * the file, so that finding the records after a seq is a binary search here and a forward scan of at most one
 * block there (store.c). Bounded: when LOG_INDEX_POINTS_MAX points are reached, every other one is dropped and
 * the block doubles, so the index of any file stays within 16 KiB and a scan within 1/512 of the file. Pure. */

#include <stddef.h>
#include <stdint.h>

#define LOG_INDEX_BLOCK_INITIAL (UINT64_C(64) << 10)
#define LOG_INDEX_POINTS_MAX 1024u

typedef struct LogIndexPoint {
        uint64_t seq;
        uint64_t offset; /* of the record's entry header */
} LogIndexPoint;

typedef struct LogIndex {
        LogIndexPoint *points; /* by seq and offset, both increasing */
        size_t n, cap;
        uint64_t block; /* at least this many file bytes between points; 0 means LOG_INDEX_BLOCK_INITIAL */
} LogIndex;

/* Notes a log record stored at offset (records come in seq and file order). Returns 0 or -ENOMEM (the index
 * is unchanged). */
int log_index_add(LogIndex *x, uint64_t seq, uint64_t offset);

/* Where to start scanning for the records with seq > after_seq: the offset of the last point at or below
 * after_seq, else the first point. Returns 0, or -ENOENT when no log record is in the file. */
int log_index_lookup(const LogIndex *x, uint64_t after_seq, uint64_t *ret_offset);

/* Forgets the points at or beyond offset (a failed write rolled the file back to it). */
void log_index_truncate(LogIndex *x, uint64_t offset);

void log_index_done(LogIndex *x);
