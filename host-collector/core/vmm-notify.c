/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "vmm-notify.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "utf8.h"

void vmm_notify_done(VmmNotify *n) {
        if (!n)
                return;
        free(n->status);
        free(n->hostname);
        free(n->machine_id);
        free(n->shutdown);
        free(n->reboot_parameter);
        for (size_t i = 0; i < n->n_units; i++)
                free(n->units[i].name);
        *n = (VmmNotify) {};
}

static bool key_is_valid(const char *k, size_t n) {
        if (n == 0 || n > VMM_NOTIFY_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
                        return false;
        return true;
}

static bool key_is(const char *k, size_t n, const char *name) {
        return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* A sanitized, bounded copy of a value: valid UTF-8 without NUL, at most VMM_NOTIFY_VALUE_MAX bytes. */
static int value_copy(VmmNotify *n, const char *v, size_t len, char **ret) {
        size_t replaced = 0;
        char *s = utf8_sanitize(v, MIN(len, (size_t) VMM_NOTIFY_VALUE_MAX), &replaced);
        if (!s)
                return -ENOMEM;
        /* Cutting the input may have split its last character (now U+FFFD); the output is cut to the bound too. */
        utf8_truncate(s, VMM_NOTIFY_VALUE_MAX);
        if (replaced > 0 || len > VMM_NOTIFY_VALUE_MAX)
                n->n_sanitized++;
        *ret = s;
        return 0;
}

/* A later line with the same key wins, as in sd_notify(). */
static int value_set(VmmNotify *n, const char *v, size_t len, char **field) {
        char *s = NULL;
        int r = value_copy(n, v, len, &s);
        if (r < 0)
                return r;
        free(*field);
        *field = s;
        return 0;
}

/* A decimal int32 ("%i" as systemd writes it). */
static int parse_int32(const char *v, size_t len, int32_t *ret) {
        bool neg = false;
        int64_t x = 0;
        size_t i = 0;

        if (len > 0 && v[0] == '-') {
                neg = true;
                i = 1;
        }
        if (i == len || len - i > 10)
                return -EINVAL;
        for (; i < len; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return -EINVAL;
                x = x * 10 + (v[i] - '0');
        }
        if (neg)
                x = -x;
        if (x < INT32_MIN || x > INT32_MAX)
                return -ERANGE;
        *ret = (int32_t) x;
        return 0;
}

static int apply_line(VmmNotify *n, const char *k, size_t klen, const char *v, size_t vlen) {
        if (key_is(k, klen, "READY")) {
                if (vlen == 1 && v[0] == '1')
                        n->ready = true;
                else
                        n->n_invalid++;
                return 0;
        }
        if (key_is(k, klen, "STATUS"))
                return value_set(n, v, vlen, &n->status);
        if (key_is(k, klen, "X_SYSTEMD_HOSTNAME"))
                return value_set(n, v, vlen, &n->hostname);
        if (key_is(k, klen, "X_SYSTEMD_MACHINE_ID"))
                return value_set(n, v, vlen, &n->machine_id);
        if (key_is(k, klen, "X_SYSTEMD_SHUTDOWN"))
                return value_set(n, v, vlen, &n->shutdown);
        if (key_is(k, klen, "X_SYSTEMD_REBOOT_PARAMETER"))
                return value_set(n, v, vlen, &n->reboot_parameter);
        if (key_is(k, klen, "EXIT_STATUS")) {
                int32_t x;
                if (parse_int32(v, vlen, &x) < 0)
                        n->n_invalid++;
                else {
                        n->exit_status = x;
                        n->exit_status_set = true;
                }
                return 0;
        }
        bool active = key_is(k, klen, "X_SYSTEMD_UNIT_ACTIVE");
        if (active || key_is(k, klen, "X_SYSTEMD_UNIT_INACTIVE")) {
                if (vlen == 0) {
                        n->n_invalid++;
                        return 0;
                }
                if (n->n_units >= VMM_NOTIFY_UNITS_MAX) {
                        n->n_units_dropped++;
                        return 0;
                }
                int r = value_copy(n, v, vlen, &n->units[n->n_units].name);
                if (r < 0)
                        return r;
                n->units[n->n_units++].active = active;
                return 0;
        }
        n->n_unknown++;
        return 0;
}

int vmm_notify_parse(const void *data, size_t size, VmmNotify *ret) {
        _cleanup_(vmm_notify_done) VmmNotify n = {};
        const char *p = data, *end = p + size;
        size_t good = 0;
        int r;

        if (size > VMM_NOTIFY_MESSAGE_MAX)
                return -EMSGSIZE;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *line_end = nl ?: end;
                size_t len = (size_t) (line_end - p);

                if (len > 0) {
                        const char *eq = memchr(p, '=', len);
                        if (!eq || !key_is_valid(p, (size_t) (eq - p)))
                                n.n_invalid++;
                        else {
                                good++;
                                r = apply_line(&n, p, (size_t) (eq - p), eq + 1, (size_t) (line_end - eq - 1));
                                if (r < 0)
                                        return r;
                        }
                }
                p = nl ? nl + 1 : end;
        }
        if (good == 0)
                return -EBADMSG;
        *ret = n;
        n = (VmmNotify) {};
        return 0;
}

bool vmm_notify_is_empty(const VmmNotify *n) {
        return !n->ready && !n->status && !n->hostname && !n->machine_id && n->n_units == 0 && !n->exit_status_set &&
                !n->shutdown && !n->reboot_parameter;
}
