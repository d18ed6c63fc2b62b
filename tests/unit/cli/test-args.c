/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "args.h"
#include "commands.h"
#include "macro.h"

/* getopt reorders argv: parse a private copy of the words. */
#define PARSE(args, env, ...)                                                      \
        ({                                                                         \
                char *_argv[] = { (char *) "tether", __VA_ARGS__, NULL };          \
                cli_args_parse((int) ELEMENTSOF(_argv) - 1, _argv, (env), (args)); \
        })

static void test_wait_ready_timeout(void **state) {
        CliArgs a;

        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42"), 0);
        assert_int_equal(a.command, CLI_COMMAND_WAIT_READY);
        assert_string_equal(a.machine_id, "vm-42");
        assert_int_equal(a.timeout_ms, 30000); /* the server's default, sent explicitly */
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "wait-ready", "--timeout", "2.5", "vm-42"), 0);
        assert_int_equal(a.timeout_ms, 2500);
        cli_args_done(&a);

        /* Options may follow the machine id. */
        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--timeout=0.125"), 0);
        assert_int_equal(a.timeout_ms, 125);
        assert_string_equal(a.machine_id, "vm-42");
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--timeout", "3601"), -EINVAL);
        assert_non_null(strstr(a.error, "too long"));
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--timeout", "-1"), -EINVAL);
        assert_non_null(strstr(a.error, "invalid --timeout"));
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--timeout", "soon"), -EINVAL);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--timeout"), -EINVAL);
        assert_non_null(strstr(a.error, "needs a value"));
        cli_args_done(&a);

        /* --since: epoch seconds to the ns, or now. */
        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--since", "1795944362.9045202"), 0);
        assert_int_equal(a.since_unix_ns, UINT64_C(1795944362904520200));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--since", "now"), 0);
        assert_true(a.since_unix_ns > UINT64_C(1700000000) * 1000000000u);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--since", "1.0000000001"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--since", "-3"), -EINVAL);
        assert_non_null(strstr(a.error, "invalid --since"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "wait-ready", "vm-42", "--since", "99999999999999999999"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "logs", "vm-42", "--since", "now"), -EINVAL);
        cli_args_done(&a);

        /* --timeout belongs to wait-ready only. */
        assert_int_equal(PARSE(&a, NULL, "logs", "vm-42", "--timeout", "3"), -EINVAL);
        assert_non_null(strstr(a.error, "logs does not take --timeout"));
        cli_args_done(&a);
}

static void test_parse_attribute(void **state) {
        char *k = NULL, *v = NULL;

        assert_int_equal(parse_attribute("zone=eu-1", &k, &v), 0);
        assert_string_equal(k, "zone");
        assert_string_equal(v, "eu-1");
        free(k);
        free(v);

        assert_int_equal(parse_attribute("expr=a=b", &k, &v), 0);
        assert_string_equal(k, "expr");
        assert_string_equal(v, "a=b");
        free(k);
        free(v);

        assert_int_equal(parse_attribute("empty=", &k, &v), 0);
        assert_string_equal(k, "empty");
        assert_string_equal(v, "");
        free(k);
        free(v);

        k = v = NULL;
        assert_int_equal(parse_attribute("=v", &k, &v), -EINVAL);
        assert_int_equal(parse_attribute("novalue", &k, &v), -EINVAL);
        assert_int_equal(parse_attribute("", &k, &v), -EINVAL);
        assert_null(k);
        assert_null(v);
}

static void test_register(void **state) {
        CliArgs a;

        assert_int_equal(
                PARSE(&a,
                      NULL,
                      "register",
                      "vm-42",
                      "--cid",
                      "42",
                      "--attr",
                      "zone=eu",
                      "--attr",
                      "tier=gold=1",
                      "--request-id",
                      "req-1",
                      "--service",
                      "svc",
                      "--ready",
                      "source:sd_notify",
                      "--traceparent",
                      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                0);
        assert_int_equal(a.command, CLI_COMMAND_REGISTER);
        assert_string_equal(a.machine_id, "vm-42");
        assert_int_equal(a.cid, 42);
        assert_null(a.uds_path);
        assert_int_equal(a.n_attributes, 2);
        assert_string_equal(a.attributes[0].key, "zone");
        assert_string_equal(a.attributes[0].value, "eu");
        assert_string_equal(a.attributes[1].key, "tier");
        assert_string_equal(a.attributes[1].value, "gold=1");
        assert_string_equal(a.request_id, "req-1");
        assert_string_equal(a.service_name, "svc");
        assert_string_equal(a.ready_condition, "source:sd_notify");
        assert_string_equal(a.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "register", "--uds", "/run/fc/v.sock", "vm-1"), 0);
        assert_int_equal(a.cid, -1);
        assert_string_equal(a.uds_path, "/run/fc/v.sock");
        cli_args_done(&a);

        /* Exactly one transport. */
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1"), -EINVAL);
        assert_non_null(strstr(a.error, "exactly one of --cid"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "3", "--uds", "/x"), -EINVAL);
        cli_args_done(&a);

        /* CIDs 0-2 are the hypervisor, local and host; -1 is VMADDR_CID_ANY. */
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "2"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "4294967295"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "12x"), -EINVAL);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "3", "--attr", "novalue"), -EINVAL);
        assert_non_null(strstr(a.error, "KEY=VALUE"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "3", "--attr", "a=1", "--attr", "a=2"), -EINVAL);
        assert_non_null(strstr(a.error, "twice"));
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "3", "--ready", "whenever"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "register", "vm-1", "--cid", "3", "--traceparent", "00-abc"), -EINVAL);
        cli_args_done(&a);
}

static void test_attribute_limit(void **state) {
        char *argv[4 + 2 * (REGISTER_ATTRIBUTES_MAX + 1) + 1];
        char words[REGISTER_ATTRIBUTES_MAX + 1][16];
        int argc = 0;
        CliArgs a;

        argv[argc++] = (char *) "tether";
        argv[argc++] = (char *) "register";
        argv[argc++] = (char *) "vm-1";
        argv[argc++] = (char *) "--cid=9";
        for (int i = 0; i <= REGISTER_ATTRIBUTES_MAX; i++) {
                snprintf(words[i], sizeof(words[i]), "k%d=v", i);
                argv[argc++] = (char *) "--attr";
                argv[argc++] = words[i];
        }
        argv[argc] = NULL;

        assert_int_equal(cli_args_parse(argc, argv, NULL, &a), -EINVAL);
        assert_non_null(strstr(a.error, "too many --attr"));
        cli_args_done(&a);

        /* One fewer is fine. */
        argc -= 2;
        argv[argc] = NULL;
        assert_int_equal(cli_args_parse(argc, argv, NULL, &a), 0);
        assert_int_equal(a.n_attributes, REGISTER_ATTRIBUTES_MAX);
        cli_args_done(&a);
}

static void test_global_options_and_socket(void **state) {
        CliArgs a;

        assert_int_equal(PARSE(&a, NULL, "ls"), 0);
        assert_int_equal(a.command, CLI_COMMAND_LS);
        assert_string_equal(a.socket_path, "/run/tether/api.sock");
        assert_null(a.url);
        assert_false(a.json);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, "/tmp/t/api.sock", "ls"), 0);
        assert_string_equal(a.socket_path, "/tmp/t/api.sock");
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, "/tmp/t/api.sock", "--socket", "/x.sock", "--json", "ls"), 0);
        assert_string_equal(a.socket_path, "/x.sock");
        assert_true(a.json);
        cli_args_done(&a);

        /* Global options are accepted after the command too. */
        assert_int_equal(PARSE(&a, NULL, "get", "vm-1", "--json", "--url", "http://127.0.0.1:8080"), 0);
        assert_true(a.json);
        assert_null(a.socket_path);
        assert_string_equal(a.url, "http://127.0.0.1:8080");
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "--url", "ftp://x", "ls"), -EINVAL);
        cli_args_done(&a);

        /* Command options do not go before the command. */
        assert_int_equal(PARSE(&a, NULL, "--cid", "3", "register", "vm-1"), -EINVAL);
        cli_args_done(&a);
}

static void test_commands_and_operands(void **state) {
        CliArgs a;

        assert_int_equal(PARSE(&a, NULL, "logs", "vm-1", "-f", "--stream", "stdout,stderr"), 0);
        assert_int_equal(a.command, CLI_COMMAND_LOGS);
        assert_true(a.follow);
        assert_string_equal(a.streams, "stdout,stderr");
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "logs", "vm-1", "--stream", "stdout,,stderr"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "logs", "vm-1", "--stream", "video"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "logs", "vm-1", "-p", "err"), 0);
        assert_string_equal(a.priority, "err");
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "logs", "-f", "--priority", "0..warning", "vm-1"), 0);
        assert_string_equal(a.priority, "0..warning");
        assert_true(a.follow);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "logs", "vm-1", "-p", "loud"), -EINVAL);
        assert_non_null(strstr(a.error, "invalid --priority 'loud'"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "logs", "vm-1", "-p", "8"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "events", "-p", "err"), -EINVAL);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "events", "--follow", "--machine", "vm-1"), 0);
        assert_int_equal(a.command, CLI_COMMAND_EVENTS);
        assert_true(a.follow);
        assert_string_equal(a.machine_filter, "vm-1");
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "trace", "vm-1", "--ascii"), 0);
        assert_int_equal(a.command, CLI_COMMAND_TRACE);
        assert_true(a.ascii);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "rm", "vm-1"), 0);
        assert_int_equal(a.command, CLI_COMMAND_RM);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "get"), -EINVAL);
        assert_non_null(strstr(a.error, "needs a machine id"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "get", "a", "b"), -EINVAL);
        assert_non_null(strstr(a.error, "extra 'b'"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "ls", "extra"), -EINVAL);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "get", "../etc"), -EINVAL);
        assert_non_null(strstr(a.error, "invalid machine id"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "explode"), -EINVAL);
        assert_non_null(strstr(a.error, "unknown command"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "ls", "--frobnicate"), -EINVAL);
        assert_non_null(strstr(a.error, "--frobnicate"));
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "ls", "-f"), -EINVAL);
        cli_args_done(&a);

        assert_int_equal(PARSE(&a, NULL, "logs", "--help"), 0);
        assert_int_equal(a.command, CLI_COMMAND_HELP);
        cli_args_done(&a);
        assert_int_equal(PARSE(&a, NULL, "--version"), 0);
        assert_int_equal(a.command, CLI_COMMAND_VERSION);
        cli_args_done(&a);

        char *argv[] = { (char *) "tether", NULL };
        assert_int_equal(cli_args_parse(1, argv, NULL, &a), -EINVAL);
        assert_non_null(strstr(a.error, "missing command"));
        cli_args_done(&a);
}

static void test_validators(void **state) {
        assert_true(machine_id_is_valid("vm-42"));
        assert_true(machine_id_is_valid("A.b_c:d-9"));
        assert_false(machine_id_is_valid(""));
        assert_false(machine_id_is_valid("vm/42"));
        assert_false(machine_id_is_valid("vm 42"));
        assert_false(machine_id_is_valid("vm?x=1"));

        char id[MACHINE_ID_MAX + 2];
        memset(id, 'a', sizeof(id) - 1);
        id[sizeof(id) - 1] = '\0';
        assert_false(machine_id_is_valid(id));
        id[MACHINE_ID_MAX] = '\0';
        assert_true(machine_id_is_valid(id));

        assert_true(ready_condition_is_valid("any"));
        assert_true(ready_condition_is_valid("source:probe:tcp"));
        assert_true(ready_condition_is_valid("milestone:db.ready"));
        assert_false(ready_condition_is_valid("source:"));
        assert_false(ready_condition_is_valid("milestone:"));
        assert_false(ready_condition_is_valid("all"));

        assert_true(log_streams_are_valid("stdout"));
        assert_true(log_streams_are_valid("stderr,kmsg,console"));
        assert_false(log_streams_are_valid(""));
        assert_false(log_streams_are_valid("stdout,"));
        assert_false(log_streams_are_valid("std"));
}

static void test_wait_ready_exit_codes(void **state) {
        assert_int_equal(wait_ready_exit_code(200), 0);
        assert_int_equal(wait_ready_exit_code(504), 1);
        assert_int_equal(wait_ready_exit_code(409), 2);
        assert_int_equal(wait_ready_exit_code(404), 3);
        assert_int_equal(wait_ready_exit_code(400), 3);
        assert_int_equal(wait_ready_exit_code(500), 3);
        assert_int_equal(wait_ready_exit_code(503), 3);
        assert_int_equal(wait_ready_exit_code(201), 3);
        assert_int_equal(wait_ready_exit_code(0), 3);

        /* The client outwaits the server, by at least the minimum margin. */
        const uint64_t timeouts[] = { 0, 1, 500, 30000, 3600000 };
        for (size_t i = 0; i < ELEMENTSOF(timeouts); i++)
                assert_true(wait_ready_client_timeout_ms(timeouts[i]) >= timeouts[i] + WAIT_READY_CLIENT_MARGIN_MIN_MS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_wait_ready_timeout),
                cmocka_unit_test(test_parse_attribute),
                cmocka_unit_test(test_register),
                cmocka_unit_test(test_attribute_limit),
                cmocka_unit_test(test_global_options_and_socket),
                cmocka_unit_test(test_commands_and_operands),
                cmocka_unit_test(test_validators),
                cmocka_unit_test(test_wait_ready_exit_codes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
