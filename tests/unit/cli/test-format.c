/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "format.h"
#include "macro.h"

static json_t *parse(const char *s) {
        json_error_t error;
        json_t *j = json_loads(s, 0, &error);
        if (!j)
                fail_msg("bad test JSON: %s", error.text);
        return j;
}

static void test_timestamp(void **state) {
        char buf[TIMESTAMP_MAX];

        /* The suite runs with TZ=UTC. */
        assert_string_equal(format_timestamp(UINT64_C(1700000000123456789), buf), "2023-11-14 22:13:20.123");
        assert_string_equal(format_timestamp(0, buf), "1970-01-01 00:00:00.000");
}

static void test_log_records(void **state) {
        json_auto_t *out = parse(
                "{\"machine_id\":\"vm-1\",\"seq\":5,\"stream\":\"stdout\","
                "\"line\":\"hello\\tworld\"}");
        json_auto_t *err = parse("{\"machine_id\":\"vm-1\",\"seq\":6,\"stream\":\"stderr\",\"line\":\"oops\"}");
        json_auto_t *evil = parse("{\"stream\":\"stdout\",\"line\":\"\\u001b[2J\\u001b]0;title\\u0007done\"}");
        LogFormat both = { .prefix_streams = true };
        LogFormat single = { .prefix_streams = false };
        LogFormat tty = { .prefix_streams = true, .sanitize = true };
        char *s;

        assert_int_equal(format_log_record(out, &both, &s), 0);
        assert_string_equal(s, "hello\tworld");
        free(s);

        assert_int_equal(format_log_record(err, &both, &s), 0);
        assert_string_equal(s, "stderr: oops");
        free(s);

        assert_int_equal(format_log_record(err, &single, &s), 0);
        assert_string_equal(s, "oops");
        free(s);

        /* On a terminal, a guest's escape sequences are shown, not obeyed; tabs stay tabs. */
        assert_int_equal(format_log_record(evil, &tty, &s), 0);
        assert_string_equal(s, "\\x1b[2J\\x1b]0;title\\x07done");
        free(s);
        assert_int_equal(format_log_record(out, &tty, &s), 0);
        assert_string_equal(s, "hello\tworld");
        free(s);

        /* Into a pipe the text is passed through as is. */
        assert_int_equal(format_log_record(evil, &both, &s), 0);
        assert_string_equal(
                s,
                "\x1b[2J\x1b]0;title\x07"
                "done");
        free(s);
}

/* A journal line's syslog priority is a tag after the stream's prefix; a line without one (or with a number that is
 * not a priority) has none. */
static void test_log_priority_tag(void **state) {
        json_auto_t *warn = parse("{\"stream\":\"journal\",\"priority\":4,\"line\":\"disk slow\"}");
        json_auto_t *emerg = parse("{\"stream\":\"journal\",\"priority\":0,\"line\":\"down\"}");
        json_auto_t *plain = parse("{\"stream\":\"journal\",\"line\":\"no priority\"}");
        json_auto_t *odd = parse("{\"stream\":\"stdout\",\"priority\":8,\"line\":\"x\"}");
        LogFormat both = { .prefix_streams = true };
        LogFormat single = { .prefix_streams = false };
        char *s;

        assert_int_equal(format_log_record(warn, &both, &s), 0);
        assert_string_equal(s, "journal: [warning] disk slow");
        free(s);
        assert_int_equal(format_log_record(warn, &single, &s), 0);
        assert_string_equal(s, "[warning] disk slow");
        free(s);
        assert_int_equal(format_log_record(emerg, &single, &s), 0);
        assert_string_equal(s, "[emerg] down");
        free(s);
        assert_int_equal(format_log_record(plain, &both, &s), 0);
        assert_string_equal(s, "journal: no priority");
        free(s);
        assert_int_equal(format_log_record(odd, &both, &s), 0);
        assert_string_equal(s, "x");
        free(s);
}

static void test_dropped_marker(void **state) {
        json_auto_t *d = parse("{\"dropped\":{\"records\":3,\"bytes\":120,\"reason\":\"agent_buffer_full\"}}");
        json_auto_t *bad = parse("{\"seq\":1}");
        LogFormat lf = { .prefix_streams = true };
        char *s = NULL;

        assert_int_equal(format_log_record(d, &lf, &s), 0);
        assert_string_equal(s, "-- 3 records (120 bytes) dropped: agent_buffer_full --");
        free(s);

        s = NULL;
        assert_int_equal(format_log_record(bad, &lf, &s), -EINVAL);
        assert_null(s);
}

static void test_event_line(void **state) {
        json_auto_t *e = parse(
                "{\"machine_id\":\"vm-42\",\"node_id\":\"host-a\",\"request_id\":\"req-1\","
                "\"transition\":\"ready\",\"time_unix_ns\":1700000000123456789,"
                "\"source\":\"sd_notify\",\"kernel_to_ready_ns\":1214000000,"
                "\"ready_unix_ns\":1700000000000000000,\"detail\":\"\",\"reason\":\"a b\"}");
        json_auto_t *bare = parse("{\"machine_id\":\"vm-1\",\"transition\":\"deleted\",\"time_unix_ns\":0}");
        char *s;

        assert_int_equal(format_event_line(e, false, &s), 0);
        assert_string_equal(
                s,
                "2023-11-14 22:13:20.123  vm-42         ready         request_id=req-1  "
                "source=sd_notify  kernel_to_ready=1.214s  ready=2023-11-14 22:13:20.000  "
                "reason=\"a b\"");
        free(s);

        assert_int_equal(format_event_line(bare, false, &s), 0);
        assert_string_equal(s, "1970-01-01 00:00:00.000  vm-1          deleted");
        free(s);

        json_auto_t *not_object = json_integer(3);
        assert_int_equal(format_event_line(not_object, false, &s), -EINVAL);
}

static void test_ready_messages(void **state) {
        json_auto_t *ok = parse(
                "{\"machine_id\":\"vm-42\",\"state\":\"ready\",\"waited_ns\":5,"
                "\"ready\":{\"source\":\"sd_notify\",\"detail\":\"\",\"kernel_to_ready_ns\":1214000000,"
                "\"registered_to_ready_ns\":900000000}}");
        json_auto_t *probe = parse(
                "{\"ready\":{\"source\":\"probe:tcp\",\"detail\":\"127.0.0.1:8080\","
                "\"registered_to_ready_ns\":2500000}}");
        json_auto_t *container = parse(
                "{\"ready\":{\"source\":\"exec\",\"kernel_to_ready_ns\":null,"
                "\"init_to_ready_ns\":31000000,\"registered_to_ready_ns\":900000000}}");
        char *s;

        assert_int_equal(format_ready("vm-42", ok, false, &s), 0);
        assert_string_equal(s, "vm-42 ready after 1.214s (kernel\u2192ready), source sd_notify");
        free(s);
        assert_int_equal(format_ready("vm-42", ok, true, &s), 0);
        assert_string_equal(s, "vm-42 ready after 1.214s (kernel->ready), source sd_notify");
        free(s);
        assert_int_equal(format_ready("vm-7", probe, true, &s), 0);
        assert_string_equal(s, "vm-7 ready after 2.500ms (registered->ready), source probe:tcp (127.0.0.1:8080)");
        free(s);
        /* No kernel start of its own (a container): timed from init, not from registration. */
        assert_int_equal(format_ready("ct-1", container, true, &s), 0);
        assert_string_equal(s, "ct-1 ready after 31.00ms (init->ready), source exec");
        free(s);
}

static void test_not_ready_messages(void **state) {
        json_auto_t *timeout = parse(
                "{\"error\":\"timed out after 30 s waiting for readiness\","
                "\"state\":\"registered\",\"agent_seen\":false}");
        json_auto_t *timeout_seen = parse(
                "{\"error\":\"timed out after 2 s waiting for readiness\","
                "\"state\":\"booting\",\"agent_seen\":true}");
        json_auto_t *failed = parse(
                "{\"error\":\"machine exited before ready\",\"state\":\"exited\","
                "\"reason\":\"exit code 3\"}");
        json_auto_t *unknown = parse("{\"error\":\"no such machine\"}");
        char *s;

        assert_int_equal(format_not_ready("vm-1", 504, timeout, NULL, false, &s), 0);
        assert_string_equal(
                s,
                "vm-1 not ready: timed out after 30 s waiting for readiness (state registered); "
                "no agent has connected for this machine");
        free(s);

        assert_int_equal(format_not_ready("vm-1", 504, timeout_seen, NULL, false, &s), 0);
        assert_string_equal(s, "vm-1 not ready: timed out after 2 s waiting for readiness (state booting)");
        free(s);

        assert_int_equal(format_not_ready("vm-1", 409, failed, NULL, false, &s), 0);
        assert_string_equal(s, "vm-1 failed before ready: machine exited before ready (state exited: exit code 3)");
        free(s);

        assert_int_equal(format_not_ready("vm-1", 404, unknown, NULL, false, &s), 0);
        assert_string_equal(s, "vm-1: no such machine (HTTP 404)");
        free(s);

        /* Not JSON at all (a proxy, a crash page): the first line of the body. */
        assert_int_equal(format_not_ready("vm-1", 502, NULL, "Bad Gateway\nmore", false, &s), 0);
        assert_string_equal(s, "vm-1: Bad Gateway (HTTP 502)");
        free(s);
        assert_int_equal(format_not_ready("vm-1", 500, NULL, "", false, &s), 0);
        assert_string_equal(s, "vm-1: HTTP 500 (HTTP 500)");
        free(s);
}

static void test_machine_table(void **state) {
        json_auto_t *doc = parse(
                "{\"machines\":["
                "{\"machine_id\":\"vm-b\",\"state\":\"registered\",\"cid\":null,\"uds_path\":\"/run/fc/b.sock\","
                "\"request_id\":null,\"boot\":null},"
                "{\"machine_id\":\"vm-a\",\"state\":\"ready\",\"cid\":42,\"uds_path\":null,\"request_id\":\"req-1\","
                "\"boot\":{\"boot_id\":\"3f2c0a1b9d8e4c7f\",\"ready\":{\"kernel_to_ready_ns\":1214000000}}}"
                "]}");
        char *s;

        assert_int_equal(format_machine_table(doc, false, &s), 0);
        assert_string_equal(
                s,
                "MACHINE  STATE       TRANSPORT           BOOT       READY  REQUEST\n"
                "vm-a     ready       cid:42              3f2c0a1b  1.214s  req-1\n"
                "vm-b     registered  uds:/run/fc/b.sock  -              -  -\n");
        free(s);

        json_auto_t *empty = parse("{\"machines\":[]}");
        assert_int_equal(format_machine_table(empty, false, &s), 0);
        assert_string_equal(s, "MACHINE  STATE  TRANSPORT  BOOT  READY  REQUEST\n");
        free(s);

        json_auto_t *bad = parse("{\"items\":[]}");
        assert_int_equal(format_machine_table(bad, false, &s), -EINVAL);
}

static void test_machine_details(void **state) {
        json_auto_t *m = parse(
                "{\"machine_id\":\"vm-42\",\"node_id\":\"host-a\",\"cid\":42,\"uds_path\":null,\"request_id\":\"r\","
                "\"traceparent\":null,\"service_name\":\"svc\",\"attributes\":{\"zone\":\"eu\"},"
                "\"ready_condition\":\"any\",\"registered_unix_ns\":1700000000000000000,\"state\":\"exited\","
                "\"connected\":false,\"boot\":{\"boot_id\":\"b-1\",\"trace_id\":\"4bf9\",\"kernel_release\":\"6.1\","
                "\"hostname\":\"g\",\"agent_version\":\"0.1.0\",\"agent_mode\":\"init\",\"clock_error_ns\":120000,"
                "\"kernel_start_unix_ns\":1700000000500000000,"
                "\"ready\":null,\"exit\":{\"code\":0,\"signal\":9,\"oom_killed\":true,\"reason\":\"oom\","
                "\"exit_unix_ns\":0},\"records\":10,\"last_seq\":10,\"log_bytes\":99,\"logs_dropped\":2,"
                "\"protocol_errors\":1},\"boots\":1}");
        char *s;

        assert_int_equal(format_machine_details(m, false, &s), 0);
        assert_non_null(strstr(s, "machine       vm-42\n"));
        assert_non_null(strstr(s, "state         exited (no agent connected)\n"));
        assert_non_null(strstr(s, "transport     cid:42\n"));
        assert_non_null(strstr(s, "attributes    zone=eu\n"));
        assert_non_null(strstr(s, "registered    2023-11-14 22:13:20.000\n"));
        assert_non_null(strstr(s, "  clock error \u00b1120.0\u00b5s\n"));
        assert_non_null(strstr(s, "  ready       not yet\n"));
        assert_non_null(strstr(s, "  started     2023-11-14 22:13:20.500\n"));
        assert_non_null(strstr(s, "  kernel      6.1 on host g\n"));
        assert_non_null(strstr(s, "  agent       0.1.0 (init mode)\n"));
        assert_non_null(strstr(s, "  exit        killed by signal 9 (OOM killed): oom\n"));
        assert_non_null(strstr(s, "  dropped     2 log records\n"));

        /* Values line up after the key column, never glued to a long key. */
        for (const char *line = s; *line; line = strchr(line, '\n') + 1) {
                size_t len = strcspn(line, "\n");
                if (len > 13 && line[13] != ' ')
                        fail_msg("value not after the key column: '%.*s'", (int) len, line);
                if (len > 14 && line[14] == ' ')
                        fail_msg("value not at column 14: '%.*s'", (int) len, line);
        }
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_timestamp),          cmocka_unit_test(test_log_records),
                cmocka_unit_test(test_log_priority_tag),   cmocka_unit_test(test_dropped_marker),
                cmocka_unit_test(test_event_line),         cmocka_unit_test(test_ready_messages),
                cmocka_unit_test(test_not_ready_messages), cmocka_unit_test(test_machine_table),
                cmocka_unit_test(test_machine_details),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
