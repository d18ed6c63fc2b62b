/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "file-repair.h"

#include <errno.h>

#include "envelope-cleanup.h"
#include "macro.h"
#include "time-util.h"

void file_repair_schedule(Boot *b, uint64_t now_monotonic_ns) {
        b->persist_backoff_ns = FILE_REPAIR_RETRY_MIN_NS;
        b->persist_retry_ns = now_monotonic_ns + b->persist_backoff_ns;
}

bool file_repair_due(Boot *b, uint64_t now_monotonic_ns) {
        if (now_monotonic_ns < b->persist_retry_ns)
                return false;
        b->persist_backoff_ns = MIN(MAX(b->persist_backoff_ns * 2, FILE_REPAIR_RETRY_MIN_NS), FILE_REPAIR_RETRY_MAX_NS);
        b->persist_retry_ns = now_monotonic_ns + b->persist_backoff_ns;
        return true;
}

void file_count_refused(Stats *stats, int r, size_t bytes) {
        DropReason reason = r == -EFBIG ? DROP_DISK_LIMIT : DROP_PERSIST_FAILED;

        stats->dropped_records[reason]++;
        stats->dropped_bytes[reason] += bytes;
        if (reason == DROP_PERSIST_FAILED)
                stats->persist_errors++;
}

/* The last failed write's entries are not wanted: the kept copies are still in the list. */
static int ignore_lost(StoreEntryType type, uint64_t recv_unix_ns, const void *payload, size_t len, void *userdata) {
        return 0;
}

static int flush(Store *store, Boot *b) {
        int r = store_boot_flush(store, b);
        if (r < 0)
                (void) store_take_lost(store, b, ignore_lost, NULL);
        return r;
}

/* A record now in the file: a log record can be read back from there. */
static void record_written(Stats *stats, Boot *b, const UnwrittenEntry *e, uint64_t *records) {
        _cleanup_envelope_ Tether__Envelope *env = NULL;

        if (e->type != STORE_ENTRY_RECORD || e->offset == UINT64_MAX)
                return;
        /* Checked when it came; a copy of what was decoded then. */
        if (envelope_unpack(e->payload, e->len, &env) >= 0)
                (void) boot_record_persisted(b, env, e->offset);
        (*records)++;
        stats->records_repersisted++;
}

/* Appends entries from the list's start, at most a write buffer's worth (so that no append writes on its own:
 * the list keeps everything until the one write succeeded), writes them, and drops them from the list. */
static int write_batch(Store *store, Stats *stats, Boot *b, uint64_t *records) {
        Unwritten *u = &b->unwritten;
        size_t n = 0, bytes = 0;
        int r = 0;

        for (UnwrittenEntry *e = u->first; e; e = e->next) {
                size_t total = STORE_ENTRY_HEADER_SIZE + STORE_ENTRY_BODY_HEADER_SIZE + e->len;
                if (n > 0 && bytes + total > STORE_WRITE_BUFFER_MAX)
                        break;
                r = store_append(store, b, e->type, e->recv_unix_ns, e->payload, e->len, &e->offset);
                if (r < 0 && !file_refused_for_good(r))
                        break;
                if (r < 0) {
                        /* Refused for good by a bound (the boot file's size): dropped, as it would have been. */
                        e->offset = UINT64_MAX;
                        if (e->type == STORE_ENTRY_RECORD)
                                file_count_refused(stats, r, e->len);
                        r = 0;
                }
                n++;
                bytes += total;
        }
        int q = flush(store, b);
        if (q < 0)
                return q;
        size_t i = 0;
        for (const UnwrittenEntry *e = u->first; e && i < n; e = e->next, i++)
                record_written(stats, b, e, records);
        unwritten_drop_first(u, n);
        return r;
}

int file_repair(Store *store, Stats *stats, Machine *m, Boot *b, uint64_t *ret_records) {
        uint64_t records = 0;
        int r;

        r = store_repair_boot(store, m, b);
        if (r < 0)
                return r;
        if (r > 0) {
                /* A new file: what a restarted tetherd needs ahead of the records. */
                r = store_append_boot_state(store, b, now_ns(CLOCK_REALTIME));
                if (r < 0 && !file_refused_for_good(r))
                        return r;
        }
        r = flush(store, b);
        while (r >= 0 && !unwritten_is_empty(&b->unwritten))
                r = write_batch(store, stats, b, &records);
        if (ret_records)
                *ret_records = records;
        if (r < 0)
                return r;
        if (b->unwritten.incomplete)
                return 1;
        /* Everything from the hole on was kept, and is in the file now. */
        b->unpersisted_seq = 0;
        return 0;
}
