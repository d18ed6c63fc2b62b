/* SPDX-License-Identifier: MIT */
/* The static agent: none of tether-agent-systemd's settings (agent-config-systemd.c); they are unknown here. */
#include <errno.h>

#include "agent-config-internal.h"

int config_parse_ready_systemd(AgentConfig *n, const char *item, const char *name, ConfigError *err) {
        return -ENOENT;
}

int config_set_systemd(AgentConfig *c, const char *key, const char *value, const char *name, ConfigError *err) {
        return -ENOENT;
}
