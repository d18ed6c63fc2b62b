/* SPDX-License-Identifier: MIT */
#pragma once

/* A guest's byte stream fed to a session the way a connection's wakeups would, shared by the targets that drive a
 * session (session, render). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "macro.h"
#include "session.h"

static inline uint64_t fuzz_last_seq_of(const Machine *m) {
        return m->current ? m->current->last_seq : 0;
}

/* Feeds data to *s in chunks of 1..64 bytes, their sizes from a tiny LCG seeded by seed, so splits land
 * everywhere. flags: bit 0 flushes acks between chunks, bit 1 sends clock probes between chunks, bit 2 reconnects
 * (ends the session and opens a new one in *s) halfway through. With write_files the boot file is written after
 * every chunk, as the connection does after each wakeup. Checked after every chunk: within a boot the stored
 * sequence only grows, whatever the guest sends; what tetherd would write to the socket stays within its bound.
 * Returns 0 when everything was fed, or session_feed()'s error (the connection would be closed there). */
static inline int fuzz_feed_chunked(
        Session **s,
        const SessionContext *ctx,
        Machine *m,
        const uint8_t *data,
        size_t size,
        uint8_t seed,
        uint8_t flags,
        bool write_files) {
        size_t half = size / 2;
        bool reconnected = false;
        uint64_t probe_clock = 1000;

        for (size_t off = 0; off < size;) {
                seed = (uint8_t) (seed * 37 + 11);
                size_t n = MIN((size_t) (seed % 64) + 1, size - off);

                const Boot *boot_before = m->current;
                uint64_t seq_before = fuzz_last_seq_of(m);
                int r = session_feed(*s, data + off, n);
                off += n;
                if (write_files)
                        session_flush_writes(*s);
                if (m->current == boot_before)
                        FUZZ_ASSERT(fuzz_last_seq_of(m) >= seq_before);
                if (r < 0)
                        return r;

                if (flags & 1)
                        (void) session_flush_ack(*s);
                if (flags & 2) {
                        probe_clock += 1000 + seed;
                        (void) session_send_clock_probe(*s, probe_clock, probe_clock * 3);
                }
                FUZZ_ASSERT((*s)->out.end - (*s)->out.start <= ctx->max_output_bytes);

                if ((flags & 4) && !reconnected && off >= half) {
                        reconnected = true;
                        session_end(*s, CLOSE_EOF);
                        *s = session_free(*s);
                        FUZZ_ASSERT(session_new(ctx, m, s) >= 0);
                }
        }
        return 0;
}
