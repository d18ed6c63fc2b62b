/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by agent-config.c and the variant's settings: agent-config-systemd.c (tether-agent-systemd, and the glibc
 * library the tests link) or agent-config-nosystemd.c (the static agent). Library code: never logs. */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent-config.h"
#include "macro.h"
#include "strv.h"

/* Formats the message into err (may be NULL) and returns -EINVAL. */
int config_error(ConfigError *err, const char *format, ...) _printf_(2, 3);
/* 1, 0, or -EINVAL (1/0, yes/no, true/false, on/off). Inline, like config_list_take(): the static agent's size. */
static inline int config_parse_bool(const char *s) {
        static const char *const yes[] = { "1", "yes", "true", "on", "y" };
        static const char *const no[] = { "0", "no", "false", "off", "n" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}
int config_set_range(const char *value, uint64_t min, uint64_t max, uint32_t *ret, const char *name, ConfigError *err);
/* Appends the list item at *p (len bytes, up to a comma or the end) to *l and moves *p past it and its comma, to NULL
 * after the last item. Returns 0 or -ENOMEM. */
static inline int config_list_take(char ***l, const char **p, size_t len) {
        _cleanup_free_ char *item = strndup(*p, len);
        int r;

        if (!item)
                return -ENOMEM;
        if ((r = strv_push(l, item)) < 0)
                return r;
        *p = (*p)[len] == ',' ? *p + len + 1 : NULL;
        return 0;
}

/* The variant's readiness conditions and settings: 0 or a config error when it knows item / key, -ENOENT when not. */
int config_parse_ready_systemd(AgentConfig *n, const char *item, const char *name, ConfigError *err);
int config_set_systemd(AgentConfig *c, const char *key, const char *value, const char *name, ConfigError *err);
