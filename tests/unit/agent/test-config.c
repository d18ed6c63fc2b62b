/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent-config.h"
#include "strv.h"

static void assert_strv(char **l, const char *const *expected, size_t n) {
        assert_int_equal(strv_length(l), n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l[i], expected[i]);
}

static void test_shell_split(void **state) {
        char **l = NULL;

        assert_int_equal(shell_split("  a 'b c'  \"d \\\"e\\\" $x\" f\\ g '' h'i'\"j\"  ", &l), 0);
        assert_strv(l, (const char *const[]) { "a", "b c", "d \"e\" $x", "f g", "", "hij" }, 6);
        l = strv_free(l);

        assert_int_equal(shell_split("sh -c 'echo hi; exit 3'", &l), 0);
        assert_strv(l, (const char *const[]) { "sh", "-c", "echo hi; exit 3" }, 3);
        l = strv_free(l);

        /* Single quotes keep backslashes; double quotes keep the ones that escape nothing. */
        assert_int_equal(shell_split("'a\\b' \"c\\d\"", &l), 0);
        assert_strv(l, (const char *const[]) { "a\\b", "c\\d" }, 2);
        l = strv_free(l);

        assert_int_equal(shell_split("   ", &l), 0);
        assert_int_equal(strv_length(l), 0);
        l = strv_free(l);

        assert_int_equal(shell_split("echo 'unterminated", &l), -EINVAL);
        assert_int_equal(shell_split("echo \"unterminated", &l), -EINVAL);
        assert_int_equal(shell_split("trailing\\", &l), -EINVAL);
        assert_null(l);
}

static void test_kernel_cmdline(void **state) {
        AgentConfig c;
        ConfigError err = {};
        config_init(&c);

        const char *cmdline =
                "BOOT_IMAGE=/vmlinuz console=ttyS0 tether.exec=\"sh -c 'echo hi; exit 3'\" "
                "tether.cid=5 quiet tether.ready=tcp:8080 tether.console=1 tether.kmsg=0 "
                "tether.replay_bytes=2M tether.transport=unix:/run/v.sock_4817 -- tether.port=9\n";
        assert_int_equal(config_parse_kernel_cmdline(&c, cmdline, &err), 0);
        assert_strv(c.command, (const char *const[]) { "sh", "-c", "echo hi; exit 3" }, 3);
        assert_int_equal(c.cid, 5);
        assert_int_equal(c.port, CONFIG_DEFAULT_PORT); /* after "--": the init's argv, not ours */
        assert_int_equal(c.n_probes, 1);
        assert_int_equal(c.probes[0].kind, PROBE_TCP);
        assert_true(c.console);
        assert_int_equal(c.kmsg, 0);
        assert_int_equal(c.replay_bytes, 2u << 20);
        assert_int_equal(c.transport, TRANSPORT_UNIX);
        assert_string_equal(c.unix_path, "/run/v.sock_4817");
        config_done(&c);

        config_init(&c);
        assert_int_equal(config_parse_kernel_cmdline(&c, "quiet tether.shutdown=reboot", &err), 0);
        assert_int_equal(c.shutdown, SHUTDOWN_REBOOT);
        assert_int_equal(config_parse_kernel_cmdline(&c, "quiet tether.shutdown=maybe", &err), -EINVAL);
        assert_non_null(strstr(err.text, "tether.shutdown"));
        assert_non_null(strstr(err.text, "maybe"));
        config_done(&c);

        config_init(&c);
        assert_int_equal(config_parse_kernel_cmdline(&c, "tether.exec=\"sh -c 'oops\"", &err), -EINVAL);
        assert_non_null(strstr(err.text, "tether.exec"));
        assert_int_equal(config_parse_kernel_cmdline(&c, "tether.nonsense=1", &err), -EINVAL);
        assert_non_null(strstr(err.text, "tether.nonsense"));
        config_done(&c);
}

static void test_config_file(void **state) {
        AgentConfig c;
        ConfigError err = {};
        config_init(&c);

        const char *text =
                "# tether agent\n"
                "\n"
                "  port = 1000  \n"
                "exec=\"/usr/bin/app --flag 'two words'\"\n"
                "shutdown=exit\n"
                "notify_socket=/tmp/n.sock\n"
                "traceparent_file=\n";
        assert_int_equal(config_parse_file(&c, text, "agent.conf", &err), 0);
        assert_int_equal(c.port, 1000);
        assert_strv(c.command, (const char *const[]) { "/usr/bin/app", "--flag", "two words" }, 3);
        assert_int_equal(c.shutdown, SHUTDOWN_EXIT);
        assert_string_equal(c.notify_socket, "/tmp/n.sock");
        assert_null(c.traceparent_file);
        assert_true(c.traceparent_file_disabled);
        config_done(&c);

        config_init(&c);
        assert_int_equal(config_parse_file(&c, "cid=2\nprobe_interval_ms=5\n", "agent.conf", &err), -EINVAL);
        assert_non_null(strstr(err.text, "agent.conf:2"));
        assert_non_null(strstr(err.text, "probe_interval_ms"));
        assert_int_equal(config_parse_file(&c, "just words\n", "agent.conf", &err), -EINVAL);
        assert_non_null(strstr(err.text, "agent.conf:1"));
        config_done(&c);
}

static void test_args(void **state) {
        ConfigArgs a;
        ConfigError err = {};

        char *argv1[] = {
                "tether-agent", "--mode=service",  "--no-kmsg", "--port", "99", "--console", "--config=/x.conf", "--",
                "cmd",          "--not-an-option", NULL
        };
        assert_int_equal(config_args_parse(9 + 1, argv1, &a, &err), 0);
        assert_strv(a.keys, (const char *const[]) { "mode", "kmsg", "port", "console" }, 4);
        assert_strv(a.values, (const char *const[]) { "service", "0", "99", "1" }, 4);
        assert_strv(a.command, (const char *const[]) { "cmd", "--not-an-option" }, 2);
        assert_string_equal(a.config_file, "/x.conf");
        config_args_done(&a);

        /* What the kernel hands init: the words after its own "--", no "--" of ours. */
        char *argv2[] = { "/sbin/init", "--replay-bytes=128K", "/bin/app", "-v", NULL };
        assert_int_equal(config_args_parse(4, argv2, &a, &err), 0);
        assert_strv(a.keys, (const char *const[]) { "replay_bytes" }, 1);
        assert_strv(a.command, (const char *const[]) { "/bin/app", "-v" }, 2);
        config_args_done(&a);

        char *argv3[] = { "tether-agent", "--frobnicate=1", NULL };
        assert_int_equal(config_args_parse(2, argv3, &a, &err), -EINVAL);
        assert_non_null(strstr(err.text, "--frobnicate"));

        char *argv4[] = { "tether-agent", "--cid", NULL };
        assert_int_equal(config_args_parse(2, argv4, &a, &err), -EINVAL);
        assert_non_null(strstr(err.text, "--cid"));

        char *argv5[] = { "tether-agent", "--help", NULL };
        assert_int_equal(config_args_parse(2, argv5, &a, &err), 0);
        assert_true(a.help);
        assert_null(a.command);
        config_args_done(&a);
}

static void test_precedence(void **state) {
        ConfigArgs a;
        AgentConfig c;
        ConfigError err = {};
        const char *file = "port=1000\ncid=7\nreplay_bytes=128K\nexec=/bin/from-file\n";
        const char *cmdline = "tether.port=2000 tether.replay_bytes=256K tether.exec=/bin/from-cmdline";

        char *argv[] = { "tether-agent", "--port=3000", NULL };
        assert_int_equal(config_args_parse(2, argv, &a, &err), 0);

        assert_int_equal(config_load(&c, &a, file, "f", cmdline, true, &err), 0);
        assert_int_equal(c.port, 3000);               /* options beat everything */
        assert_int_equal(c.replay_bytes, 256u << 10); /* kernel command line beats the file */
        assert_int_equal(c.cid, 7);                   /* the file beats the defaults */
        assert_strv(c.command, (const char *const[]) { "/bin/from-cmdline" }, 1);
        assert_int_equal(c.probe_interval_ms, 100); /* default */
        config_done(&c);

        assert_int_equal(config_load(&c, &a, file, "f", NULL, true, &err), 0);
        assert_int_equal(c.replay_bytes, 128u << 10);
        assert_strv(c.command, (const char *const[]) { "/bin/from-file" }, 1);
        config_done(&c);
        config_args_done(&a);

        /* A command on the command line beats tether.exec. */
        char *argv2[] = { "tether-agent", "/bin/from-argv", NULL };
        assert_int_equal(config_args_parse(2, argv2, &a, &err), 0);
        assert_int_equal(config_load(&c, &a, file, "f", cmdline, true, &err), 0);
        assert_strv(c.command, (const char *const[]) { "/bin/from-argv" }, 1);
        config_done(&c);
        config_args_done(&a);
}

static void test_mode_defaults(void **state) {
        AgentConfig c;
        ConfigError err = {};

        assert_int_equal(config_load(&c, NULL, NULL, NULL, NULL, true, &err), 0);
        assert_int_equal(c.mode, AGENT_MODE_INIT);
        assert_int_equal(c.kmsg, 1);
        assert_int_equal(c.transport, TRANSPORT_VSOCK);
        assert_int_equal(c.cid, 2);
        assert_int_equal(c.port, 4817);
        assert_int_equal(c.replay_bytes, 1u << 20);
        assert_string_equal(c.notify_socket, "/run/tether/notify");
        assert_string_equal(c.traceparent_file, "/run/tether/traceparent");
        assert_null(c.command);
        config_done(&c);

        assert_int_equal(config_load(&c, NULL, NULL, NULL, NULL, false, &err), 0);
        assert_int_equal(c.mode, AGENT_MODE_SERVICE);
        assert_int_equal(c.kmsg, 0);
        config_done(&c);

        assert_int_equal(config_load(&c, NULL, "mode=service\nkmsg=yes\n", "f", NULL, true, &err), 0);
        assert_int_equal(c.mode, AGENT_MODE_SERVICE);
        assert_int_equal(c.kmsg, 1);
        config_done(&c);
}

static void test_invalid_values_keep_going(void **state) {
        ConfigArgs a;
        AgentConfig c;
        ConfigError err = {};

        char *argv[] = { "tether-agent", "--cid=abc", "--shutdown=exit", "--port=0", NULL };
        assert_int_equal(config_args_parse(4, argv, &a, &err), 0);
        assert_int_equal(config_load(&c, &a, NULL, NULL, NULL, true, &err), -EINVAL);
        /* The first error is reported... */
        assert_non_null(strstr(err.text, "--cid"));
        assert_non_null(strstr(err.text, "abc"));
        /* ...and the valid settings still count: an init that failed must know how to end. */
        assert_int_equal(c.shutdown, SHUTDOWN_EXIT);
        config_done(&c);
        config_args_done(&a);

        static const char *const bad[] = {
                "transport=tcp:1",
                "transport=unix:",
                "cid=4294967295",
                "port=-1",
                "replay_bytes=1k",
                "replay_bytes=2T",
                "replay_bytes=12abc",
                "flush_timeout_ms=99999999",
                "mode=vm",
                "console=maybe",
                "exec=",
                "ready=tcp:99999",
                "ready=bogus",
                "ready=file:",
                "ready=tcp:example.com:80",
                "ready=exec:",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char key[64];
                const char *eq = strchr(bad[i], '=');
                memcpy(key, bad[i], (size_t) (eq - bad[i]));
                key[eq - bad[i]] = '\0';
                config_init(&c);
                err.text[0] = '\0';
                assert_int_equal(config_parse_file(&c, bad[i], "conf", &err), -EINVAL);
                assert_non_null(strstr(err.text, key));
                config_done(&c);
        }
}

static void test_ready_specs(void **state) {
        AgentConfig c;
        ConfigError err = {};
        config_init(&c);

        assert_int_equal(
                config_parse_ready(
                        &c,
                        "sd_notify,tcp:8080,tcp:10.0.0.1:443,tcp:[::1]:80,unix:/run/a.sock,"
                        "file:/tmp/ready,exec-started,exec:curl -fs http://x/a,b",
                        "--ready",
                        &err),
                0);
        assert_true(c.ready_exec_started);
        assert_int_equal(c.n_probes, 6);

        const struct sockaddr_in *in = (const struct sockaddr_in *) &c.probes[0].addr;
        assert_int_equal(c.probes[0].kind, PROBE_TCP);
        assert_int_equal(in->sin_family, AF_INET);
        assert_int_equal(ntohs(in->sin_port), 8080);
        assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
        assert_string_equal(c.probes[0].spec, "tcp:8080");

        in = (const struct sockaddr_in *) &c.probes[1].addr;
        assert_int_equal(ntohs(in->sin_port), 443);
        assert_int_equal(ntohl(in->sin_addr.s_addr), 0x0A000001);

        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &c.probes[2].addr;
        assert_int_equal(in6->sin6_family, AF_INET6);
        assert_int_equal(ntohs(in6->sin6_port), 80);

        assert_int_equal(c.probes[3].kind, PROBE_UNIX);
        assert_string_equal(c.probes[3].path, "/run/a.sock");
        assert_int_equal(c.probes[4].kind, PROBE_FILE);
        assert_string_equal(c.probes[4].path, "/tmp/ready");
        /* exec: takes the rest, commas included */
        assert_int_equal(c.probes[5].kind, PROBE_EXEC);
        assert_strv(c.probes[5].argv, (const char *const[]) { "curl", "-fs", "http://x/a,b" }, 3);

        /* A failed parse leaves the previous list alone. */
        assert_int_equal(config_parse_ready(&c, "file:/a,tcp:0", "--ready", &err), -EINVAL);
        assert_int_equal(c.n_probes, 6);

        /* A new list replaces the old one. */
        assert_int_equal(config_parse_ready(&c, "file:/b", "--ready", &err), 0);
        assert_int_equal(c.n_probes, 1);
        assert_false(c.ready_exec_started);

        assert_int_equal(
                config_parse_ready(
                        &c,
                        "file:/1,file:/2,file:/3,file:/4,file:/5,file:/6,file:/7,file:/8,"
                        "file:/9",
                        "--ready",
                        &err),
                -EINVAL);
        config_done(&c);
}

static void test_log_policy(void **state) {
        AgentConfig c;
        ConfigArgs a;
        ConfigError err = {};

        /* Block by default, with a stall bound of a few seconds. */
        assert_int_equal(config_load(&c, NULL, NULL, NULL, NULL, true, &err), 0);
        assert_int_equal(c.log_policy, LOG_POLICY_BLOCK);
        assert_int_equal(c.log_stall_timeout_ms, 5000);
        assert_string_equal(log_policy_to_string(c.log_policy), "block");
        config_done(&c);

        /* The file, the kernel command line and the options, with the usual precedence. */
        const char *file = "log_policy=drop\nlog_stall_timeout_ms=250\n";
        assert_int_equal(config_load(&c, NULL, file, "f", NULL, true, &err), 0);
        assert_int_equal(c.log_policy, LOG_POLICY_DROP);
        assert_int_equal(c.log_stall_timeout_ms, 250);
        assert_string_equal(log_policy_to_string(c.log_policy), "drop");
        config_done(&c);

        const char *cmdline = "quiet tether.log_policy=block tether.log_stall_timeout_ms=0";
        assert_int_equal(config_load(&c, NULL, file, "f", cmdline, true, &err), 0);
        assert_int_equal(c.log_policy, LOG_POLICY_BLOCK);
        assert_int_equal(c.log_stall_timeout_ms, 0);
        config_done(&c);

        char *argv[] = { "tether-agent", "--log-policy", "drop", "--log-stall-timeout-ms=600000", NULL };
        assert_int_equal(config_args_parse(4, argv, &a, &err), 0);
        assert_strv(a.keys, (const char *const[]) { "log_policy", "log_stall_timeout_ms" }, 2);
        assert_int_equal(config_load(&c, &a, file, "f", cmdline, true, &err), 0);
        assert_int_equal(c.log_policy, LOG_POLICY_DROP);
        assert_int_equal(c.log_stall_timeout_ms, 600000);
        config_done(&c);
        config_args_done(&a);

        /* Errors name the key as written and the value. */
        config_init(&c);
        assert_int_equal(config_parse_kernel_cmdline(&c, "tether.log_policy=blocking", &err), -EINVAL);
        assert_non_null(strstr(err.text, "tether.log_policy"));
        assert_non_null(strstr(err.text, "blocking"));
        assert_int_equal(config_parse_file(&c, "log_stall_timeout_ms=600001\n", "agent.conf", &err), -EINVAL);
        assert_non_null(strstr(err.text, "agent.conf:1: log_stall_timeout_ms"));
        assert_int_equal(config_parse_file(&c, "log_stall_timeout_ms=5s\n", "agent.conf", &err), -EINVAL);
        assert_non_null(strstr(err.text, "5s"));
        assert_int_equal(config_parse_file(&c, "log_policy=\n", "agent.conf", &err), -EINVAL);
        assert_int_equal(c.log_policy, LOG_POLICY_BLOCK); /* untouched by the refused values */
        assert_int_equal(c.log_stall_timeout_ms, 5000);
        config_done(&c);
}

static void test_modules(void **state) {
        AgentConfig c;
        ConfigError err = {};
        config_init(&c);
        assert_null(c.modules);

        /* Kernel command line, in order. */
        assert_int_equal(
                config_parse_kernel_cmdline(
                        &c,
                        "console=ttyS0 tether.modules=/lib/modules/virtio.ko,/lib/modules/virtio_pci.ko quiet",
                        &err),
                0);
        assert_strv(c.modules, (const char *const[]) { "/lib/modules/virtio.ko", "/lib/modules/virtio_pci.ko" }, 2);

        /* A new list replaces the old one; one path is a list; an empty value means none. */
        assert_int_equal(config_set(&c, "modules", "/a.ko", "--modules", &err), 0);
        assert_strv(c.modules, (const char *const[]) { "/a.ko" }, 1);
        assert_int_equal(config_set(&c, "modules", "", "--modules", &err), 0);
        assert_null(c.modules);

        /* Config file and option spellings. */
        assert_int_equal(config_parse_file(&c, "modules = \"/x.ko,/y.ko\"\n", "agent.conf", &err), 0);
        assert_strv(c.modules, (const char *const[]) { "/x.ko", "/y.ko" }, 2);
        ConfigArgs a;
        char *argv[] = { "tether-agent", "--modules", "/z.ko", NULL };
        assert_int_equal(config_args_parse(3, argv, &a, &err), 0);
        assert_strv(a.keys, (const char *const[]) { "modules" }, 1);
        config_args_done(&a);

        /* Relative paths, empty items. The list is left alone on error. */
        static const char *const bad[] = { "virtio.ko", "/a.ko,b.ko", "/a.ko,,/b.ko", ",/a.ko", "/a.ko," };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err = (ConfigError) {};
                assert_int_equal(config_set(&c, "modules", bad[i], "tether.modules", &err), -EINVAL);
                assert_non_null(strstr(err.text, "tether.modules"));
                assert_strv(c.modules, (const char *const[]) { "/x.ko", "/y.ko" }, 2);
        }

        /* Path length: CONFIG_MAX_MODULE_PATH bytes is fine, one more is not. */
        char path[CONFIG_MAX_MODULE_PATH + 2];
        memset(path, 'm', sizeof(path) - 1);
        path[0] = '/';
        path[CONFIG_MAX_MODULE_PATH] = '\0';
        assert_int_equal(config_set(&c, "modules", path, "--modules", &err), 0);
        assert_int_equal(strlen(c.modules[0]), CONFIG_MAX_MODULE_PATH);
        path[CONFIG_MAX_MODULE_PATH] = 'm';
        path[CONFIG_MAX_MODULE_PATH + 1] = '\0';
        assert_int_equal(config_set(&c, "modules", path, "--modules", &err), -EINVAL);
        assert_non_null(strstr(err.text, "longer than"));

        /* Count: CONFIG_MAX_MODULES is fine, one more is not. */
        char list[(CONFIG_MAX_MODULES + 1) * 8] = "";
        for (unsigned i = 0; i < CONFIG_MAX_MODULES; i++)
                strcat(list, i == 0 ? "/m.ko" : ",/m.ko");
        assert_int_equal(config_set(&c, "modules", list, "--modules", &err), 0);
        assert_int_equal(strv_length(c.modules), CONFIG_MAX_MODULES);
        strcat(list, ",/m.ko");
        assert_int_equal(config_set(&c, "modules", list, "--modules", &err), -EINVAL);
        assert_non_null(strstr(err.text, "more than"));
        assert_int_equal(strv_length(c.modules), CONFIG_MAX_MODULES);

        config_done(&c);
        assert_null(c.modules);
}

static void test_systemd_settings(void **state) {
        AgentConfig c;
        ConfigError err = {};
        config_init(&c);

        assert_true(c.journal);
        assert_int_equal(c.systemd_units_max, CONFIG_DEFAULT_SYSTEMD_UNITS_MAX);

        assert_int_equal(
                config_parse_ready(&c, "boot-finished,unit:nginx.service,target:multi-user,tcp:80", "--ready", &err),
                0);
        assert_true(c.ready_boot_finished);
        assert_strv(c.ready_units, (const char *const[]) { "nginx.service", "multi-user.target" }, 2);
        assert_int_equal(c.n_probes, 1);

        /* target: with the suffix already there is not doubled */
        assert_int_equal(config_parse_ready(&c, "target:graphical.target", "--ready", &err), 0);
        assert_false(c.ready_boot_finished);
        assert_strv(c.ready_units, (const char *const[]) { "graphical.target" }, 1);

        /* a unit name needs its suffix; bad names leave the previous conditions */
        assert_int_equal(config_parse_ready(&c, "unit:nginx", "--ready", &err), -EINVAL);
        assert_non_null(strstr(err.text, "unit:nginx"));
        assert_int_equal(config_parse_ready(&c, "unit:a b.service", "--ready", &err), -EINVAL);
        assert_int_equal(config_parse_ready(&c, "unit:", "--ready", &err), -EINVAL);
        assert_strv(c.ready_units, (const char *const[]) { "graphical.target" }, 1);

        char many[512] = "";
        for (unsigned i = 0; i <= CONFIG_MAX_READY_UNITS; i++) {
                char one[32];
                snprintf(one, sizeof(one), "%sunit:u%u.service", i ? "," : "", i);
                strcat(many, one);
        }
        assert_int_equal(config_parse_ready(&c, many, "--ready", &err), -EINVAL);
        assert_non_null(strstr(err.text, "more than"));

        assert_int_equal(
                config_parse_file(
                        &c, "systemd_units=*.service,sshd.socket\nsystemd_units_max=7\njournal=0\n", "f", &err),
                0);
        assert_strv(c.systemd_units, (const char *const[]) { "*.service", "sshd.socket" }, 2);
        assert_int_equal(c.systemd_units_max, 7);
        assert_false(c.journal);
        assert_int_equal(config_set(&c, "systemd_units_max", "1025", "x", &err), -EINVAL);
        assert_int_equal(config_set(&c, "systemd_units", "a,,b", "x", &err), -EINVAL);
        assert_int_equal(config_set(&c, "systemd_units", "", "x", &err), 0);
        assert_null(c.systemd_units);

        config_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shell_split),
                cmocka_unit_test(test_kernel_cmdline),
                cmocka_unit_test(test_config_file),
                cmocka_unit_test(test_args),
                cmocka_unit_test(test_precedence),
                cmocka_unit_test(test_mode_defaults),
                cmocka_unit_test(test_invalid_values_keep_going),
                cmocka_unit_test(test_ready_specs),
                cmocka_unit_test(test_modules),
                cmocka_unit_test(test_log_policy),
                cmocka_unit_test(test_systemd_settings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
