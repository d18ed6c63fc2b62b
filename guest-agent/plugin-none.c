/* SPDX-License-Identifier: MIT */
#include "agent-plugin.h"

/* The static agent: no plugin (tether-agent-systemd links systemd-integration.c instead). */
const AgentPluginOps *const agent_plugin = NULL;
