/* SPDX-License-Identifier: MIT */
#include "systemd-boot.h"

#include <stdbool.h>

#include "macro.h"

static const char *const phase_names[_SYSTEMD_PHASE_MAX] = {
        [SYSTEMD_PHASE_KERNEL] = "systemd.kernel",         [SYSTEMD_PHASE_INITRD] = "systemd.initrd",
        [SYSTEMD_PHASE_USERSPACE] = "systemd.userspace",   [SYSTEMD_PHASE_SECURITY] = "systemd.security",
        [SYSTEMD_PHASE_GENERATORS] = "systemd.generators", [SYSTEMD_PHASE_UNITS_LOAD] = "systemd.units-load",
};

size_t systemd_boot_phases(
        const SystemdBootTimes *t,
        uint64_t boot_offset_ns,
        unsigned done,
        SystemdBootPhase ret[static _SYSTEMD_PHASE_MAX]) {
        uint64_t start[_SYSTEMD_PHASE_MAX] = {}, end[_SYSTEMD_PHASE_MAX] = {};
        bool known[_SYSTEMD_PHASE_MAX] = {};
        size_t n = 0;

        /* As systemd-analyze: the kernel is done when the initrd's systemd (or, without one, the real root's)
         * starts. Userspace is known (non-zero) as soon as systemd runs; the kernel started at kernel_us. */
        uint64_t kernel_done = t->initrd_us ?: t->userspace_us;
        start[SYSTEMD_PHASE_KERNEL] = t->kernel_us;
        end[SYSTEMD_PHASE_KERNEL] = kernel_done;
        known[SYSTEMD_PHASE_KERNEL] = kernel_done > 0;

        start[SYSTEMD_PHASE_INITRD] = t->initrd_us;
        end[SYSTEMD_PHASE_INITRD] = t->userspace_us;
        known[SYSTEMD_PHASE_INITRD] = t->initrd_us > 0 && t->userspace_us > 0;

        start[SYSTEMD_PHASE_USERSPACE] = t->userspace_us;
        end[SYSTEMD_PHASE_USERSPACE] = t->finish_us;
        known[SYSTEMD_PHASE_USERSPACE] = t->userspace_us > 0 && t->finish_us > 0;

        start[SYSTEMD_PHASE_SECURITY] = t->security_start_us;
        end[SYSTEMD_PHASE_SECURITY] = t->security_finish_us;
        start[SYSTEMD_PHASE_GENERATORS] = t->generators_start_us;
        end[SYSTEMD_PHASE_GENERATORS] = t->generators_finish_us;
        start[SYSTEMD_PHASE_UNITS_LOAD] = t->units_load_start_us;
        end[SYSTEMD_PHASE_UNITS_LOAD] = t->units_load_finish_us;
        for (unsigned i = SYSTEMD_PHASE_SECURITY; i <= SYSTEMD_PHASE_UNITS_LOAD; i++)
                known[i] = start[i] > 0 && end[i] > 0;

        for (unsigned i = 0; i < _SYSTEMD_PHASE_MAX; i++) {
                if (!known[i] || (done & (1u << i)) || end[i] < start[i])
                        continue;
                ret[n++] = (SystemdBootPhase) {
                        .id = (SystemdBootPhaseId) i,
                        .name = phase_names[i],
                        .start_ns = start[i] * NSEC_PER_USEC + boot_offset_ns,
                        .end_ns = end[i] * NSEC_PER_USEC + boot_offset_ns,
                };
        }
        return n;
}

uint64_t systemd_boot_firmware_ns(const SystemdBootTimes *t) {
        return t->firmware_us > t->loader_us ? (t->firmware_us - t->loader_us) * NSEC_PER_USEC : 0;
}

uint64_t systemd_boot_loader_ns(const SystemdBootTimes *t) {
        return t->loader_us * NSEC_PER_USEC;
}
