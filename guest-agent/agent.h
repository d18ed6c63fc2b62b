/* SPDX-License-Identifier: MIT */
#pragma once

/* The agent proper: one poll() loop over the signalfd, the transport socket, the workload's pipes, the
 * notify socket, /dev/kmsg and the probes, with the nearest timer as the poll timeout (no busy loops, no
 * CPU when idle). Logs where it decides. */

#include <stdint.h>

#include "agent-config.h"
#include "agent-plugin.h"

typedef struct AgentTimes {
        uint64_t init_start_ns;  /* CLOCK_BOOTTIME when main() started */
        uint64_t mounts_done_ns; /* 0 when nothing was mounted (service mode) */
        unsigned mount_failures;
        uint64_t modules_done_ns; /* 0 when no modules were loaded (none configured, or service mode) */
        unsigned modules_count;   /* modules listed in the configuration */
        unsigned modules_failed;  /* of those, how many failed to load (already loaded ones do not count) */
} AgentTimes;

/* plugin: NULL, or the variant's source of records (agent-plugin.h). Runs until the workload has exited (or, without a
 * workload, until SIGTERM/SIGINT) and the records are acked or the flush timeout passed. Returns 0 and the exit code to
 * report (the workload's, or 0), or -errno when the agent could not start at all. */
int agent_run(const AgentConfig *config, const AgentTimes *times, const AgentPluginOps *plugin, int *ret_exit_code);
