/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"
#include "utf8.h"

static void parse(const char *s, NotifyMessage *m) {
        assert_int_equal(notify_message_parse(s, strlen(s), m), 0);
}

static void test_sd_notify_ready(void **state) {
        NotifyMessage m;

        parse("READY=1\nSTATUS=Serving on :8080", &m);
        assert_true(m.ready);
        assert_false(m.from_cli);
        assert_string_equal(m.status, "Serving on :8080");
        assert_null(m.milestone);
        notify_message_done(&m);

        parse("STATUS=starting\nREADY=0\nMAINPID=42\nnonsense\n\n", &m);
        assert_false(m.ready);
        assert_string_equal(m.status, "starting");
        notify_message_done(&m);

        parse("READY=1\nSTOPPING=1\nX_TETHER_NOTIFY=1", &m);
        assert_true(m.ready);
        assert_true(m.stopping);
        assert_true(m.from_cli);
        assert_null(m.status);
        notify_message_done(&m);

        /* A key is matched whole: READY_X=1 is not READY=1 */
        parse("READY_X=1\nXREADY=1", &m);
        assert_false(m.ready);
        notify_message_done(&m);
}

static void test_milestone(void **state) {
        NotifyMessage m;

        parse("X_TETHER_MILESTONE=db.migrated\nX_TETHER_ATTR=rows=42\nX_TETHER_ATTR=expr=a=b\n"
              "X_TETHER_ATTR=noequals\nX_TETHER_ATTR==empty-key\n",
              &m);
        assert_string_equal(m.milestone, "db.migrated");
        assert_int_equal(m.n_attrs, 2);
        assert_string_equal(m.attr_keys[0], "rows");
        assert_string_equal(m.attr_values[0], "42");
        assert_string_equal(m.attr_keys[1], "expr");
        assert_string_equal(m.attr_values[1], "a=b");
        assert_int_equal(m.n_dropped_attrs, 2);
        assert_false(m.ready);
        notify_message_done(&m);

        parse("X_TETHER_MILESTONE=\n", &m);
        assert_null(m.milestone);
        notify_message_done(&m);
}

static void test_bounds(void **state) {
        NotifyMessage m;
        size_t big = 4 * NOTIFY_MAX_STRING;
        char *s = malloc(big + 64);
        assert_non_null(s);

        /* Overlong status: cut at the bound, on a character boundary */
        strcpy(s, "STATUS=");
        for (size_t i = 0; i < big / 2; i++)
                memcpy(s + 7 + 2 * i, "\xc3\xa9", 2); /* é */
        s[7 + big] = '\0';
        parse(s, &m);
        assert_true(strlen(m.status) <= NOTIFY_MAX_STRING);
        assert_true(strlen(m.status) >= NOTIFY_MAX_STRING - 1);
        assert_true(utf8_is_valid(m.status, strlen(m.status)));
        notify_message_done(&m);

        /* Too many attributes: the first NOTIFY_MAX_ATTRS are kept */
        size_t off = (size_t) sprintf(s, "X_TETHER_MILESTONE=x\n");
        for (int i = 0; i < 40; i++)
                off += (size_t) sprintf(s + off, "X_TETHER_ATTR=k%d=v\n", i);
        parse(s, &m);
        assert_int_equal(m.n_attrs, NOTIFY_MAX_ATTRS);
        assert_int_equal(m.n_dropped_attrs, 40 - NOTIFY_MAX_ATTRS);
        assert_string_equal(m.attr_keys[NOTIFY_MAX_ATTRS - 1], "k31");
        notify_message_done(&m);
        free(s);

        /* Invalid UTF-8 and NUL bytes become U+FFFD; nothing is read beyond len */
        const char raw[] = "STATUS=a\xff\x00z\nREADY=1";
        assert_int_equal(notify_message_parse(raw, sizeof(raw) - 1, &m), 0);
        assert_true(m.ready);
        assert_string_equal(m.status, "a\xef\xbf\xbd\xef\xbf\xbdz");
        notify_message_done(&m);

        const char cut[] = "READY=1";
        assert_int_equal(notify_message_parse(cut, 6, &m), 0); /* "READY=" */
        assert_false(m.ready);
        notify_message_done(&m);
}

static void test_format_round_trip(void **state) {
        char *msg;
        NotifyMessage m;

        char *attrs[] = { "a=1", "b=c=d", NULL };
        assert_int_equal(notify_format_milestone("app.warm", attrs, &msg), 0);
        assert_string_equal(msg, "X_TETHER_MILESTONE=app.warm\nX_TETHER_ATTR=a=1\nX_TETHER_ATTR=b=c=d\n");
        parse(msg, &m);
        assert_string_equal(m.milestone, "app.warm");
        assert_int_equal(m.n_attrs, 2);
        assert_string_equal(m.attr_keys[1], "b");
        assert_string_equal(m.attr_values[1], "c=d");
        notify_message_done(&m);
        free(msg);

        char *assignments[] = { "READY=1", "STATUS=warm", NULL };
        assert_int_equal(notify_format_assignments(assignments, &msg), 0);
        parse(msg, &m);
        assert_true(m.ready);
        assert_true(m.from_cli);
        assert_string_equal(m.status, "warm");
        notify_message_done(&m);
        free(msg);

        char *bad_attr[] = { "novalue", NULL };
        char *nl_attr[] = { "a=1\nREADY=1", NULL };
        assert_int_equal(notify_format_milestone("", NULL, &msg), -EINVAL);
        assert_int_equal(notify_format_milestone("a\nb", NULL, &msg), -EINVAL);
        assert_int_equal(notify_format_milestone("x", bad_attr, &msg), -EINVAL);
        assert_int_equal(notify_format_milestone("x", nl_attr, &msg), -EINVAL);
        assert_int_equal(notify_format_assignments(bad_attr, &msg), -EINVAL);
        assert_int_equal(notify_format_assignments(nl_attr, &msg), -EINVAL);
}

static void test_socket_round_trip(void **state) {
        char dir[] = "/tmp/tether-notify-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[128];
        snprintf(path, sizeof(path), "%s/sub/notify", dir);

        int fd = notify_socket_open(path);
        assert_true(fd >= 0);
        /* Re-opening replaces the stale socket */
        int fd2 = notify_socket_open(path);
        assert_true(fd2 >= 0);
        close(fd);

        char buf[NOTIFY_DATAGRAM_MAX + 1];
        assert_int_equal(notify_socket_receive(fd2, buf, sizeof(buf)), -EAGAIN);

        assert_int_equal(notify_send(path, "READY=1", 7), 0);
        assert_int_equal(notify_socket_receive(fd2, buf, sizeof(buf)), 7);
        assert_string_equal(buf, "READY=1");

        /* A datagram larger than the buffer is refused, not misread */
        char *big = malloc(NOTIFY_DATAGRAM_MAX + 100);
        assert_non_null(big);
        memset(big, 'a', NOTIFY_DATAGRAM_MAX + 100);
        assert_int_equal(notify_send(path, big, NOTIFY_DATAGRAM_MAX + 100), 0);
        assert_int_equal(notify_socket_receive(fd2, buf, sizeof(buf)), -EMSGSIZE);
        free(big);

        assert_int_equal(notify_send("/nonexistent/socket", "READY=1", 7), -ENOENT);

        close(fd2);
        unlink(path);
        snprintf(path, sizeof(path), "%s/sub", dir);
        rmdir(path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sd_notify_ready),
                cmocka_unit_test(test_milestone),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_socket_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
