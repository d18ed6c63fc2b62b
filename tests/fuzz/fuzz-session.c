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
#include "fuzz-feed.h"
#include "fuzz.h"
#include "jsonlog.h"
#include "macro.h"
#include "registry.h"
#include "session.h"

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

        int r = fuzz_feed_chunked(&s, &ctx, guest, data + 2, size - 2, data[0], data[1], false);
        if (r < 0) {
                FUZZ_ASSERT(r == -EPROTO || r == -ENOMEM);
                if (r == -EPROTO)
                        FUZZ_ASSERT(s->state == SESSION_FAILED && s->error != PROTOCOL_ERROR_NONE);
        }

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
