/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "log-store.h"

#include <errno.h>

#include "envelope-cleanup.h"

typedef struct FileRead {
        LogCursor *cursor;
        uint64_t tail_first_seq; /* the file part ends below it */
        LogReadFn fn;
        void *userdata;
        int stopped; /* fn's positive return */
} FileRead;

static int on_file_entry(const StoreEntryView *v, void *userdata) {
        _cleanup_envelope_ Tether__Envelope *e = NULL;
        EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        FileRead *fr = userdata;
        LogCursor *c = fr->cursor;
        LogEntry entry;
        int r;

        /* A record the replay skipped as invalid (store_load(): one tetherd did not write) is not the boot's: skipped
         * here too, or a reader would get what the boot never stored, unchecked. */
        if (v->type == STORE_ENTRY_RECORD && envelope_unpack(v->payload, v->len, &e) >= 0 && envelope_is_record(e) &&
            envelope_validate(e, &limits) == PROTOCOL_ERROR_NONE) {
                if (log_entry_from_envelope(e, v->recv_unix_ns, &entry) >= 0 && e->seq > c->seq) {
                        if (e->seq >= fr->tail_first_seq)
                                return 1; /* memory has it from here on */
                        r = fr->fn(&entry, fr->userdata);
                        if (r < 0)
                                return r;
                        c->seq = e->seq;
                        fr->stopped = r;
                }
        }
        /* Nothing after c->seq is before the next entry. */
        c->offset = v->next_offset;
        c->offset_seq = c->seq;
        return fr->stopped;
}

int log_store_read(Store *store, Boot *b, LogCursor *c, LogReadFn fn, void *userdata) {
        uint64_t tail_first = UINT64_MAX, offset;
        LogTailPos pos;
        LogEntry entry;
        int r;

        (void) log_tail_first_seq(&b->logs, &tail_first);

        /* Below the in-memory tail: the file, from where this reader stopped or from the index point. */
        if (c->offset_seq == c->seq && c->offset > 0)
                offset = c->offset;
        else if (log_index_lookup(&b->log_index, c->seq, &offset) < 0)
                offset = 0; /* no log record in the file */
        if (store && b->store_file && offset > 0 && c->seq < tail_first - 1) {
                FileRead fr = { .cursor = c, .tail_first_seq = tail_first, .fn = fn, .userdata = userdata };
                r = store_scan_boot(store, b, offset, on_file_entry, &fr);
                if (r < 0)
                        return r;
                if (fr.stopped > 0)
                        return fr.stopped;
        }

        log_tail_find_after(&b->logs, c->seq, &pos);
        while (log_tail_next(&b->logs, &pos, &entry)) {
                r = fn(&entry, userdata);
                if (r < 0)
                        return r;
                log_cursor_skip_to(c, entry.seq);
                if (r > 0)
                        return r;
        }
        return 0;
}
