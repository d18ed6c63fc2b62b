/* SPDX-License-Identifier: MIT */
#include "syslog-priority.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

static const char *const names[SYSLOG_PRIORITY_MAX + 1] = {
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

const char *syslog_priority_to_string(unsigned p) {
        return p <= SYSLOG_PRIORITY_MAX ? names[p] : NULL;
}

/* The priority named by the n bytes at s. */
static int priority_from_bytes(const char *s, size_t n) {
        if (n == 1 && s[0] >= '0' && s[0] <= '0' + (int) SYSLOG_PRIORITY_MAX)
                return s[0] - '0';
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (n == strlen(names[i]) && strncmp(s, names[i], n) == 0)
                        return (int) i;
        return -EINVAL;
}

int syslog_priority_from_string(const char *s) {
        return priority_from_bytes(s, strlen(s));
}

int syslog_priority_mask_from_string(const char *s, uint8_t *ret) {
        const char *dots = strstr(s, "..");
        int from, to;

        if (dots) {
                from = priority_from_bytes(s, (size_t) (dots - s));
                to = syslog_priority_from_string(dots + 2);
        } else {
                from = 0;
                to = syslog_priority_from_string(s);
        }
        if (from < 0 || to < 0)
                return -EINVAL;
        uint8_t mask = 0;
        for (int p = MIN(from, to); p <= MAX(from, to); p++)
                mask |= (uint8_t) (1u << p);
        *ret = mask;
        return 0;
}
