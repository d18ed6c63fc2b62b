/* SPDX-License-Identifier: MIT */
#pragma once

/* Whether the agent runs in the initial pid namespace (a VM's kernel is its own) or in a container. In a
 * container CLOCK_BOOTTIME 0 is the host kernel's start, possibly hours ago, so the agent must not report it as
 * this boot's kernel.start. Never logs. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* The inode of the initial pid namespace (include/linux/proc_ns.h); the kernel never reuses it. */
#define PROC_PID_INIT_INO UINT64_C(0xEFFFFFFC)
#define PIDNS_SELF_PATH "/proc/self/ns/pid"

/* The decision, from what stat(PIDNS_SELF_PATH) gave: stat_result is 0 or -errno. Without /proc (or a kernel
 * without pid namespaces) there is nothing to tell a container apart with: initial. */
bool pidns_is_initial_from_stat(int stat_result, const struct stat *st);

/* stat()s PIDNS_SELF_PATH and decides. */
bool pidns_is_initial(void);
