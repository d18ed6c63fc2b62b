/* SPDX-License-Identifier: MIT */
/* The settings only tether-agent-systemd has (agent-config-internal.h); the static agent links
 * agent-config-nosystemd.c instead, which knows none of them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent-config-internal.h"
#include "format.h"
#include "macro.h"
#include "strv.h"

/* A unit name as systemd accepts it: non-empty, at most CONFIG_MAX_UNIT_NAME bytes, printable ASCII without blanks,
 * slashes or commas, with a suffix (".service"). */
static bool unit_name_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CONFIG_MAX_UNIT_NAME || s[0] == '.' || !strrchr(s, '.') || strrchr(s, '.')[1] == '\0')
                return false;
        for (const char *p = s; *p; p++)
                if (*p <= ' ' || *p >= 127 || *p == '/' || *p == ',')
                        return false;
        return true;
}

/* ready=unit:NAME and ready=target:NAME (NAME.target unless NAME already ends in .target). */
static int parse_ready_unit(AgentConfig *n, const char *item, const char *name, ConfigError *err) {
        bool target = strncmp(item, "target:", 7) == 0;
        const char *unit = item + (target ? 7 : 5);
        _cleanup_free_ char *full = NULL;

        if (target && (strlen(unit) < 7 || strcmp(unit + strlen(unit) - 7, ".target") != 0)) {
                if (!(full = format_alloc("%s.target", unit)))
                        return -ENOMEM;
                unit = full;
        }
        if (!unit_name_is_valid(unit))
                return config_error(
                        err,
                        "invalid value for %s: '%s' (expected a unit name with its suffix, e.g. unit:nginx.service)",
                        name,
                        item);
        if (strv_length(n->ready_units) >= CONFIG_MAX_READY_UNITS)
                return config_error(
                        err, "invalid value for %s: more than %u unit conditions", name, CONFIG_MAX_READY_UNITS);
        return strv_push(&n->ready_units, unit);
}

/* systemd_units=PATTERN[,PATTERN...]: fnmatch() patterns of unit names; empty: all units. */
static int config_parse_unit_patterns(AgentConfig *c, const char *value, const char *name, ConfigError *err) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        for (const char *p = value; p && *p;) {
                size_t len = strcspn(p, ",");

                if (len == 0 || len > CONFIG_MAX_UNIT_NAME)
                        return config_error(
                                err,
                                "invalid value for %s: '%s' (expected unit name patterns of 1 to %u bytes, separated "
                                "by commas)",
                                name,
                                value,
                                CONFIG_MAX_UNIT_NAME);
                if (++n > CONFIG_MAX_UNIT_PATTERNS)
                        return config_error(
                                err, "invalid value for %s: more than %u patterns", name, CONFIG_MAX_UNIT_PATTERNS);
                if ((r = config_list_take(&l, &p, len)) < 0)
                        return r;
        }

        strv_free(c->systemd_units);
        c->systemd_units = TAKE_PTR(l);
        return 0;
}

int config_parse_ready_systemd(AgentConfig *n, const char *item, const char *name, ConfigError *err) {
        if (strcmp(item, "boot-finished") == 0) {
                n->ready_boot_finished = true;
                return 0;
        }
        if (strncmp(item, "unit:", 5) == 0 || strncmp(item, "target:", 7) == 0)
                return parse_ready_unit(n, item, name, err);
        return -ENOENT;
}

int config_set_systemd(AgentConfig *c, const char *key, const char *value, const char *name, ConfigError *err) {
        int b;

        if (strcmp(key, "systemd_units") == 0)
                return config_parse_unit_patterns(c, value, name, err);
        if (strcmp(key, "systemd_units_max") == 0)
                return config_set_range(value, 0, CONFIG_MAX_SYSTEMD_UNITS_MAX, &c->systemd_units_max, name, err);
        if (strcmp(key, "journal") == 0) {
                if ((b = config_parse_bool(value)) < 0)
                        return config_error(err, "invalid value for %s: '%s' (expected 1 or 0)", name, value);
                c->journal = b;
                return 0;
        }
        return -ENOENT;
}
