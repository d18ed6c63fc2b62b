/* SPDX-License-Identifier: MIT */
#pragma once

/* systemd's boot timestamps (the Manager's …TimestampMonotonic properties, µs of CLOCK_MONOTONIC) as the phases
 * `systemd-analyze` shows, on the agent's CLOCK_BOOTTIME in ns. Pure: tether-agent-systemd reads the properties
 * (systemd-integration.c) and records what this returns. Never logs. */

#include <stddef.h>
#include <stdint.h>

typedef struct SystemdBootTimes {
        uint64_t firmware_us; /* before the kernel: how long before kernel start the firmware started */
        uint64_t loader_us;   /* before the kernel: how long before kernel start the boot loader started */
        uint64_t kernel_us;   /* 0 on a machine (kernel start); later in a container */
        uint64_t initrd_us;
        uint64_t userspace_us;
        uint64_t finish_us; /* 0: the boot has not finished */
        uint64_t security_start_us, security_finish_us;
        uint64_t generators_start_us, generators_finish_us;
        uint64_t units_load_start_us, units_load_finish_us;
} SystemdBootTimes;

typedef enum SystemdBootPhaseId {
        SYSTEMD_PHASE_KERNEL,     /* kernel start → initrd (or userspace without one) */
        SYSTEMD_PHASE_INITRD,     /* initrd's systemd → the real root's systemd */
        SYSTEMD_PHASE_USERSPACE,  /* the real root's systemd → startup finished */
        SYSTEMD_PHASE_SECURITY,   /* SELinux, IMA, SMACK, AppArmor policy loading */
        SYSTEMD_PHASE_GENERATORS, /* unit generators */
        SYSTEMD_PHASE_UNITS_LOAD, /* loading the unit files */
        _SYSTEMD_PHASE_MAX,
} SystemdBootPhaseId;

typedef struct SystemdBootPhase {
        SystemdBootPhaseId id;
        const char *name; /* "systemd.kernel", ... */
        uint64_t start_ns, end_ns;
} SystemdBootPhase;

/* The phases whose ends are both known, and not in done (a bit per SystemdBootPhaseId), into ret, in the order of
 * SystemdBootPhaseId. boot_offset_ns is CLOCK_BOOTTIME − CLOCK_MONOTONIC (the time spent suspended). Returns how
 * many. */
size_t systemd_boot_phases(
        const SystemdBootTimes *t,
        uint64_t boot_offset_ns,
        unsigned done,
        SystemdBootPhase ret[static _SYSTEMD_PHASE_MAX]);

/* What systemd-analyze reports as "(firmware)" and "(loader)", in ns; 0 when unknown. They come before kernel start,
 * which the boottime clock cannot express: the kernel phase carries them as attributes. */
uint64_t systemd_boot_firmware_ns(const SystemdBootTimes *t);
uint64_t systemd_boot_loader_ns(const SystemdBootTimes *t);
