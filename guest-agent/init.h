/* SPDX-License-Identifier: MIT */
#pragma once

/* What PID 1 of a microVM has to do besides running the workload: mount the API filesystems, make sure
 * fds 0-2 exist, and power the machine off at the end. Logs each mount failure (and carries on: a missing
 * /sys must not keep the workload from running). */

#include <stdbool.h>

#include "macro.h"

/* Mounts proc, sysfs, devtmpfs, devpts, /dev/shm and a tmpfs on /run. A target that already has something
 * mounted on it is left alone (except /proc: a fresh one shows this PID namespace); EBUSY counts as
 * mounted. Returns the number of mounts that failed. */
unsigned init_mount_api_filesystems(void);

/* The workload's own cgroup, so that the agent can report its memory and OOM kills (memory.events): mounts cgroup2
 * on /sys/fs/cgroup unless something is there, enables the memory controller for the root's children and creates
 * INIT_WORKLOAD_CGROUP. Returns its cgroup.procs opened for writing (O_CLOEXEC), or -errno (a kernel without
 * cgroup2 or the memory controller: the workload then runs in the root cgroup, unmeasured). Never logs. */
#define INIT_WORKLOAD_CGROUP "/workload"
int init_workload_cgroup(void);

/* Opens /dev/console (or /dev/null) on any of fds 0-2 that is closed: the kernel starts init without them
 * when it has no console, and the first socket must not become "stderr". */
void init_ensure_std_fds(void);

/* Brings the loopback interface up if it is down (a fresh VM: the kernel leaves it down, and a workload's
 * 127.0.0.1 listener, or a tcp: readiness probe, needs it). Leaves an interface that is up alone. Returns 1 if
 * it brought lo up, 0 if it was up, -errno. */
int init_loopback_up(void);

/* sync(), then reboot(RB_POWER_OFF), or reboot(RB_AUTOBOOT) with reboot (the way out of a Firecracker VM). If
 * that is refused, halts or waits forever: PID 1 must not exit. */
_noreturn_ void init_poweroff(bool restart);
