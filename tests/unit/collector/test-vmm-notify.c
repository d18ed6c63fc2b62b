/* SPDX-License-Identifier: MIT */
/* systemd's notification messages (vmm-notify.h): what each key becomes, what is ignored, counted, sanitized,
 * bounded and refused. Table-driven: each case is the bytes of one message and what the parser must say. */

#include <errno.h>
#include <stdint.h>

#include "collector-test.h"
#include "utf8.h"
#include "vmm-notify.h"

typedef struct Case {
        const char *name;
        const char *data;
        size_t size; /* 0: strlen(data) */
        int ret;
        bool ready;
        const char *status, *hostname, *machine_id, *shutdown, *reboot_parameter;
        bool exit_status_set;
        int32_t exit_status;
        const char *units; /* "+a.target -b.target": active (+) and inactive (-) units, in order */
        size_t n_unknown, n_invalid, n_units_dropped, n_sanitized;
} Case;

static const Case cases[] = {
        { "ready", "READY=1", .ret = 0, .ready = true },
        { "ready-status-trailing-newline", "READY=1\nSTATUS=Ready.\n", .ready = true, .status = "Ready." },
        { "systemd-256-ready",
          "READY=1\nSTATUS=Startup finished in 1.2s.\nX_SYSTEMD_HOSTNAME=guest\nX_SYSTEMD_MACHINE_ID="
          "0123456789abcdef0123456789abcdef\nX_SYSTEMD_SIGNALS_LEVEL=2",
          .ready = true,
          .status = "Startup finished in 1.2s.",
          .hostname = "guest",
          .machine_id = "0123456789abcdef0123456789abcdef",
          .n_unknown = 1 },
        { "unit-active", "X_SYSTEMD_UNIT_ACTIVE=basic.target", .units = "+basic.target" },
        { "unit-inactive", "X_SYSTEMD_UNIT_INACTIVE=multi-user.target\n", .units = "-multi-user.target" },
        { "units-in-order",
          "X_SYSTEMD_UNIT_INACTIVE=a.target\nX_SYSTEMD_UNIT_ACTIVE=b.target\nX_SYSTEMD_UNIT_ACTIVE=c.target",
          .units = "-a.target +b.target +c.target" },
        { "shutdown",
          "EXIT_STATUS=0\nX_SYSTEMD_SHUTDOWN=poweroff",
          .exit_status_set = true,
          .exit_status = 0,
          .shutdown = "poweroff" },
        { "reboot-parameter",
          "EXIT_STATUS=3\nX_SYSTEMD_SHUTDOWN=reboot\nX_SYSTEMD_REBOOT_PARAMETER=recovery",
          .exit_status_set = true,
          .exit_status = 3,
          .shutdown = "reboot",
          .reboot_parameter = "recovery" },
        { "negative-exit-status", "EXIT_STATUS=-1", .exit_status_set = true, .exit_status = -1 },
        { "exit-status-int32-min", "EXIT_STATUS=-2147483648", .exit_status_set = true, .exit_status = INT32_MIN },
        { "exit-status-overflow", "EXIT_STATUS=2147483648\nREADY=1", .ready = true, .n_invalid = 1 },
        { "exit-status-not-a-number", "EXIT_STATUS=0x1\nREADY=1", .ready = true, .n_invalid = 1 },
        { "exit-status-empty", "EXIT_STATUS=\nREADY=1", .ready = true, .n_invalid = 1 },
        { "ready-not-1", "READY=0\nSTATUS=x", .status = "x", .n_invalid = 1 },
        { "later-value-wins", "STATUS=one\nSTATUS=two", .status = "two" },
        { "empty-status", "STATUS=", .status = "" },
        { "empty-unit-refused", "X_SYSTEMD_UNIT_ACTIVE=\nREADY=1", .ready = true, .n_invalid = 1 },
        { "unknown-keys-only", "WATCHDOG=1\nMAINPID=1", .n_unknown = 2 },
        { "blank-lines", "\n\nREADY=1\n\n", .ready = true },
        { "crlf-kept-in-value", "STATUS=a\r\nREADY=1", .ready = true, .status = "a\r" },
        { "lowercase-key-invalid", "ready=1\nREADY=1", .ready = true, .n_invalid = 1 },
        { "line-without-equals", "hello\nREADY=1", .ready = true, .n_invalid = 1 },
        { "value-with-equals", "STATUS=a=b", .status = "a=b" },
        { "invalid-utf8-replaced",
          "STATUS=a\xff"
          "b",
          .status = "a\xEF\xBF\xBD"
                    "b",
          .n_sanitized = 1 },
        { "nul-replaced",
          "STATUS=a\0b",
          .size = 10,
          .status = "a\xEF\xBF\xBD"
                    "b",
          .n_sanitized = 1 },
        { "garbage", "\x01\x02\x03 garbage", .ret = -EBADMSG },
        { "empty", "", .ret = -EBADMSG },
        { "only-newlines", "\n\n\n", .ret = -EBADMSG },
        { "key-too-long", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=1", .ret = -EBADMSG },
        { "equals-first", "=1", .ret = -EBADMSG },
};

/* Compares units against "+a -b" notation. */
static void assert_units(const VmmNotify *n, const char *spec) {
        char buf[512];
        size_t used = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n->n_units; i++)
                used += (size_t) snprintf(
                        buf + used,
                        sizeof(buf) - used,
                        "%s%c%s",
                        i ? " " : "",
                        n->units[i].active ? '+' : '-',
                        n->units[i].name);
        assert_string_equal(buf, spec ?: "");
}

static void assert_str_or_null(const char *name, const char *got, const char *want) {
        if (!want) {
                if (got)
                        fail_msg("%s: got \"%s\", want none", name, got);
                return;
        }
        if (!got)
                fail_msg("%s: got none, want \"%s\"", name, want);
        assert_string_equal(got, want);
}

static void test_cases(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *c = &cases[i];
                VmmNotify n = { .n_unknown = 12345 }; /* untouched on failure */
                size_t size = c->size ?: strlen(c->data);

                print_message("case %s\n", c->name);
                int r = vmm_notify_parse(c->data, size, &n);
                assert_int_equal(r, c->ret);
                if (r < 0) {
                        assert_int_equal(n.n_unknown, 12345);
                        continue;
                }
                assert_int_equal(n.ready, c->ready);
                assert_str_or_null("status", n.status, c->status);
                assert_str_or_null("hostname", n.hostname, c->hostname);
                assert_str_or_null("machine_id", n.machine_id, c->machine_id);
                assert_str_or_null("shutdown", n.shutdown, c->shutdown);
                assert_str_or_null("reboot_parameter", n.reboot_parameter, c->reboot_parameter);
                assert_int_equal(n.exit_status_set, c->exit_status_set);
                assert_int_equal(n.exit_status, c->exit_status);
                assert_units(&n, c->units);
                assert_int_equal(n.n_unknown, c->n_unknown);
                assert_int_equal(n.n_invalid, c->n_invalid);
                assert_int_equal(n.n_units_dropped, c->n_units_dropped);
                assert_int_equal(n.n_sanitized, c->n_sanitized);
                assert_int_equal(
                        vmm_notify_is_empty(&n),
                        !c->ready && !c->status && !c->hostname && !c->machine_id && !c->shutdown &&
                                !c->exit_status_set && !c->units);
                vmm_notify_done(&n);
        }
}

/* The size bound: a message of exactly VMM_NOTIFY_MESSAGE_MAX bytes is taken, one byte more refused whole. */
static void test_size_bound(void **state) {
        char *buf = malloc(VMM_NOTIFY_MESSAGE_MAX + 1);
        VmmNotify n;

        assert_non_null(buf);
        memset(buf, 'x', VMM_NOTIFY_MESSAGE_MAX + 1);
        memcpy(buf, "READY=1\nSTATUS=", 15);
        assert_int_equal(vmm_notify_parse(buf, VMM_NOTIFY_MESSAGE_MAX, &n), 0);
        assert_true(n.ready);
        /* The value was cut to its bound. */
        assert_int_equal(strlen(n.status), VMM_NOTIFY_VALUE_MAX);
        assert_int_equal(n.n_sanitized, 1);
        vmm_notify_done(&n);
        assert_int_equal(vmm_notify_parse(buf, VMM_NOTIFY_MESSAGE_MAX + 1, &n), -EMSGSIZE);
        free(buf);
}

/* A value cut at its bound never splits a character: the cut lands before a 3-byte sequence. */
static void test_value_cut_at_character(void **state) {
        char buf[16 + VMM_NOTIFY_VALUE_MAX + 8];
        size_t p = 0;
        VmmNotify n;

        p += (size_t) sprintf(buf, "STATUS=");
        memset(buf + p, 'a', VMM_NOTIFY_VALUE_MAX - 1);
        p += VMM_NOTIFY_VALUE_MAX - 1;
        memcpy(buf + p, "\xE2\x82\xAC\xE2\x82\xAC", 6); /* two euro signs straddling the bound */
        p += 6;
        assert_int_equal(vmm_notify_parse(buf, p, &n), 0);
        assert_true(strlen(n.status) <= VMM_NOTIFY_VALUE_MAX);
        assert_true(utf8_is_valid(n.status, strlen(n.status)));
        assert_int_equal(n.n_sanitized, 1);
        vmm_notify_done(&n);
}

/* Unit lines beyond the bound are counted, not kept. */
static void test_units_bound(void **state) {
        char buf[2048];
        size_t p = 0;
        VmmNotify n;

        for (unsigned i = 0; i < VMM_NOTIFY_UNITS_MAX + 3; i++)
                p += (size_t) snprintf(buf + p, sizeof(buf) - p, "X_SYSTEMD_UNIT_ACTIVE=u%u.target\n", i);
        assert_int_equal(vmm_notify_parse(buf, p, &n), 0);
        assert_int_equal(n.n_units, VMM_NOTIFY_UNITS_MAX);
        assert_int_equal(n.n_units_dropped, 3);
        assert_string_equal(n.units[0].name, "u0.target");
        vmm_notify_done(&n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cases),
                cmocka_unit_test(test_size_bound),
                cmocka_unit_test(test_value_cut_at_character),
                cmocka_unit_test(test_units_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
