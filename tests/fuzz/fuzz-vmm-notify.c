/* SPDX-License-Identifier: MIT */
/* A message of systemd's notification protocol as a guest's PID 1 (or anything in the guest that reaches the
 * vmm.notify port) sends it: the parser must never crash or leak, refuse what is above its bound, and hand out
 * only bounded, valid UTF-8 values; applied twice to a machine (agentless.h), every record built from it is one
 * the session takes, and a READY=1 or a shutdown shows in the machine's state.
 *
 * Input: the bytes of one message. */

#include <errno.h>
#include <string.h>

#include "agentless.h"
#include "fuzz.h"
#include "jsonlog.h"
#include "utf8.h"
#include "vmm-notify.h"

static void check_value(const char *s) {
        if (!s)
                return;
        size_t n = strlen(s);
        FUZZ_ASSERT(n <= VMM_NOTIFY_VALUE_MAX);
        FUZZ_ASSERT(utf8_is_valid(s, n));
}

static void check_apply(const VmmNotify *n) {
        static bool logging_set_up = false;
        RegistryConfig rc = { .node_id = "fuzz",
                              .max_machines = 2,
                              .max_boots = 2,
                              .max_events = 16,
                              .vsock_port = 4817,
                              .boot_limits = BOOT_LIMITS_DEFAULT };
        MachineSpec spec = { .machine_id = "vm", .cid = 3 };
        SessionContext ctx;
        Stats stats = {};
        Registry *reg = NULL;
        Machine *m = NULL;
        const char *err = NULL;

        if (!logging_set_up) {
                log_setup(LOG_TARGET_JSON, LOG_CRIT, "fuzz");
                logging_set_up = true;
        }
        FUZZ_ASSERT(registry_new(&rc, &stats, &reg) >= 0);
        FUZZ_ASSERT(registry_add_machine(reg, &spec, &m, &err) >= 0);
        session_context_init(&ctx, reg, NULL, &stats);
        for (int i = 0; i < 2; i++) {
                FUZZ_ASSERT(agentless_apply(&ctx, m, n) == 0);
                FUZZ_ASSERT(boot_is_agentless(m->current));
                if (n->exit_status_set || n->shutdown)
                        FUZZ_ASSERT(m->current->exit.set && m->state == MACHINE_EXITED);
                else if (n->ready)
                        FUZZ_ASSERT(m->state == MACHINE_READY);
                FUZZ_ASSERT(!m->connected);
        }
        registry_free(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VmmNotify n;
        int r = vmm_notify_parse(data, size, &n);

        if (size > VMM_NOTIFY_MESSAGE_MAX) {
                FUZZ_ASSERT(r == -EMSGSIZE);
                return 0;
        }
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG);
                return 0;
        }
        check_value(n.status);
        check_value(n.hostname);
        check_value(n.machine_id);
        check_value(n.shutdown);
        check_value(n.reboot_parameter);
        FUZZ_ASSERT(n.n_units <= VMM_NOTIFY_UNITS_MAX);
        for (size_t i = 0; i < n.n_units; i++) {
                FUZZ_ASSERT(n.units[i].name && *n.units[i].name);
                check_value(n.units[i].name);
        }
        if (n.ready)
                FUZZ_ASSERT(memmem(data, size, "READY=1", 7));
        check_apply(&n);
        vmm_notify_done(&n);
        return 0;
}
