/* SPDX-License-Identifier: MIT */
/* Guest-controlled bytes through tetherd's whole per-connection protocol state machine (session.c): handshake,
 * dedup, sequence rules, boot bookkeeping, clock samples, acks. Two machines are registered; the fuzzed stream
 * belongs to "guest" only, so whatever it does, "bystander" must stay exactly as registered: identity is the
 * transport, never what the guest says.
 *
 * Input: byte 0 seeds the chunk sizes; byte 1 holds flags (bit 0: flush acks between chunks, bit 1: send clock
 * probes between chunks, bit 2: reconnect - end the session and open a new one - halfway through the stream).
 * The rest is the byte stream the guest sends. */

#include <string.h>

#include "boot.h"
#include "fuzz.h"
#include "jsonlog.h"
#include "macro.h"
#include "registry.h"
#include "session.h"

static uint64_t last_seq_of(const Machine *m) {
        return m->current ? m->current->last_seq : 0;
}

static void feed_chunked(
        Session **s,
        const SessionContext *ctx,
        Machine *m,
        const uint8_t *data,
        size_t size,
        uint8_t seed,
        uint8_t flags) {
        size_t half = size / 2;
        bool reconnected = false;
        uint64_t probe_clock = 1000;

        for (size_t off = 0; off < size;) {
                /* Chunk sizes 1..64, from a tiny LCG seeded by the input, so splits land everywhere. */
                seed = (uint8_t) (seed * 37 + 11);
                size_t n = MIN((size_t) (seed % 64) + 1, size - off);

                const Boot *boot_before = m->current;
                uint64_t seq_before = last_seq_of(m);
                int r = session_feed(*s, data + off, n);
                off += n;
                /* Within a boot, the stored sequence only ever grows, whatever the guest sends. */
                if (m->current == boot_before)
                        FUZZ_ASSERT(last_seq_of(m) >= seq_before);
                if (r < 0) {
                        FUZZ_ASSERT(r == -EPROTO || r == -ENOMEM);
                        if (r == -EPROTO)
                                FUZZ_ASSERT((*s)->state == SESSION_FAILED && (*s)->error != PROTOCOL_ERROR_NONE);
                        return; /* the connection would be closed here */
                }

                if (flags & 1)
                        (void) session_flush_ack(*s);
                if (flags & 2) {
                        probe_clock += 1000 + seed;
                        (void) session_send_clock_probe(*s, probe_clock, probe_clock * 3);
                }
                /* What tetherd would write to the socket is bounded. */
                FUZZ_ASSERT((*s)->out.end - (*s)->out.start <= ctx->max_output_bytes);

                if ((flags & 4) && !reconnected && off >= half) {
                        reconnected = true;
                        session_end(*s, CLOSE_EOF);
                        *s = session_free(*s);
                        FUZZ_ASSERT(session_new(ctx, m, s) >= 0);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool logging_set_up = false;
        Stats stats = {};
        Registry *reg = NULL;
        Machine *guest = NULL, *bystander = NULL;
        Session *s = NULL;
        SessionContext ctx;
        const char *error = NULL;

        if (size < 2)
                return 0;
        if (!logging_set_up) {
                log_setup(LOG_TARGET_JSON, LOG_CRIT, "fuzz");
                logging_set_up = true;
        }

        RegistryConfig config = {
                .node_id = "fuzz-node",
                .default_service_name = "fuzz",
                .max_machines = 2,
                .max_boots = 2,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        FUZZ_ASSERT(registry_new(&config, &stats, &reg) >= 0);
        FUZZ_ASSERT(registry_add_machine(reg, &(MachineSpec) { .machine_id = "guest", .cid = 3 }, &guest, &error) >= 0);
        FUZZ_ASSERT(
                registry_add_machine(reg, &(MachineSpec) { .machine_id = "bystander", .cid = 4 }, &bystander, &error) >=
                0);

        session_context_init(&ctx, reg, NULL, &stats);
        FUZZ_ASSERT(session_new(&ctx, guest, &s) >= 0);

        feed_chunked(&s, &ctx, guest, data + 2, size - 2, data[0], data[1]);

        session_end(s, CLOSE_EOF);
        session_free(s);

        /* Never another machine's data. */
        FUZZ_ASSERT(bystander->n_boots == 0 && bystander->current == NULL);
        FUZZ_ASSERT(bystander->state == MACHINE_REGISTERED && !bystander->agent_seen);
        FUZZ_ASSERT(bystander->protocol_errors == 0 && bystander->connections == 0);
        FUZZ_ASSERT(guest->n_boots <= config.max_boots);

        registry_free(reg);
        return 0;
}
