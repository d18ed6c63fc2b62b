/* SPDX-License-Identifier: MIT */
#pragma once

/* A source of records built into one variant of the agent only: tether-agent-systemd links its systemd
 * integration (systemd-integration.c, libsystemd) here; the static agent links plugin-none.c, which has none. The
 * agent's poll loop polls the plugin's fds, calls its dispatch and offers it what a source needs (AgentHost). */

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-config.h"
#include "replay.h"

#define AGENT_PLUGIN_MAX_FDS 4u

typedef struct AgentHost AgentHost;
struct AgentHost {
        Replay *replay;
        /* The first Ready of a boot: source and detail as in the Ready record; boottime_ns when it became ready
         * (CLOCK_BOOTTIME ns). */
        void (*set_ready)(AgentHost *h, const char *source, const char *detail, uint64_t boottime_ns);
        /* A record could not be added (out of memory): counted in the shutdown milestone. */
        void (*record_error)(AgentHost *h, int r, const char *what);
        void *agent;
};

typedef struct AgentPluginOps {
        const char *name;
        /* Called once, after the transport was set up. A failure is logged by the caller and the agent runs on
         * without the plugin. */
        int (*start)(const AgentConfig *config, AgentHost *host, void **ret);
        void (*free)(void *p);
        /* Fills fds (at most max) and returns how many. */
        size_t (*fill_pollfds)(void *p, struct pollfd *fds, size_t max);
        /* One of its fds is ready, or its deadline passed, or the host took records: does what it can now. */
        void (*dispatch)(void *p, uint64_t now);
        /* CLOCK_BOOTTIME ns, or UINT64_MAX. */
        uint64_t (*next_deadline)(void *p);
        /* Every Welcome: the protocol version tetherd chose and the newest journal cursor it stored for the boot (""
         * none). May be NULL. */
        void (*welcome)(void *p, uint32_t version, const char *journal_cursor);
} AgentPluginOps;

/* NULL in the static agent. */
extern const AgentPluginOps *const agent_plugin;
