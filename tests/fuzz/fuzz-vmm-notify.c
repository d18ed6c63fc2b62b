/* SPDX-License-Identifier: MIT */
/* A message of systemd's notification protocol as a guest's PID 1 (or anything in the guest that reaches the
 * vmm.notify port) sends it: the parser must never crash or leak, refuse what is above its bound, and hand out
 * only bounded, valid UTF-8 values.
 *
 * Input: the bytes of one message. */

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "utf8.h"
#include "vmm-notify.h"

static void check_value(const char *s) {
        if (!s)
                return;
        size_t n = strlen(s);
        FUZZ_ASSERT(n <= VMM_NOTIFY_VALUE_MAX);
        FUZZ_ASSERT(utf8_is_valid(s, n));
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
        vmm_notify_done(&n);
        return 0;
}
