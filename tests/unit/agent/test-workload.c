/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "strv.h"
#include "workload.h"

extern char **environ;

/* Reads both pipes to EOF. */
static void drain(Workload *w, char *out, size_t out_size, char *err, size_t err_size) {
        size_t no = 0, ne = 0;
        while (w->stdout_fd >= 0 || w->stderr_fd >= 0) {
                struct pollfd p[2] = {
                        { .fd = w->stdout_fd, .events = POLLIN },
                        { .fd = w->stderr_fd, .events = POLLIN },
                };
                assert_true(poll(p, 2, 10000) > 0);
                for (int i = 0; i < 2; i++) {
                        if (!p[i].revents)
                                continue;
                        char *buf = i == 0 ? out : err;
                        size_t *n = i == 0 ? &no : &ne;
                        size_t size = i == 0 ? out_size : err_size;
                        ssize_t k = read(p[i].fd, buf + *n, size - 1 - *n);
                        if (k < 0 && errno == EAGAIN)
                                continue;
                        assert_true(k >= 0);
                        if (k == 0) {
                                close(p[i].fd);
                                if (i == 0)
                                        w->stdout_fd = -1;
                                else
                                        w->stderr_fd = -1;
                        }
                        *n += (size_t) k;
                }
        }
        out[no] = '\0';
        err[ne] = '\0';
}

static int wait_code(pid_t pid, int *ret_signal) {
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return wait_status_to_exit_code(status, ret_signal);
}

/* The cgroup.procs fd: the child writes "0" (itself) to it before exec, and it is not inherited past exec. */
static void test_spawn_into_cgroup(void **state) {
        char *argv[] = { "/bin/sh", "-c", "ls /proc/self/fd | wc -l >/dev/null; exit 0", NULL };
        int p[2];
        char buf[8] = {};

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        Workload w;
        assert_int_equal(workload_spawn(argv, environ, p[1], &w), 0);
        assert_int_equal(w.exec_errno, 0);
        close(p[1]);
        /* EOF after "0": no copy of the write end outlived the exec in the workload. */
        assert_int_equal(read(p[0], buf, sizeof(buf)), 1);
        assert_string_equal(buf, "0");
        assert_int_equal(read(p[0], buf, sizeof(buf)), 0);
        close(p[0]);
        char out[64], err[64];
        drain(&w, out, sizeof(out), err, sizeof(err));
        int sig;
        assert_int_equal(wait_code(w.pid, &sig), 0);
}

static void test_spawn_pipes_and_env(void **state) {
        char *argv[] = { "/bin/sh", "-c", "echo out $TETHER_TEST; echo err >&2; exit 7", NULL };
        char *overrides[] = { "TETHER_TEST=from-agent", NULL };
        char **envp;
        assert_int_equal(env_override(environ, overrides, &envp), 0);

        Workload w;
        assert_int_equal(workload_spawn(argv, envp, -1, &w), 0);
        assert_int_equal(w.exec_errno, 0);
        assert_true(fcntl(w.stdout_fd, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(w.stdout_fd, F_GETFD) & FD_CLOEXEC);

        char out[256], err[256];
        drain(&w, out, sizeof(out), err, sizeof(err));
        assert_string_equal(out, "out from-agent\n");
        assert_string_equal(err, "err\n");
        int sig = -1;
        assert_int_equal(wait_code(w.pid, &sig), 7);
        assert_int_equal(sig, 0);
        strv_free(envp);
}

static void test_exec_failures(void **state) {
        Workload w;
        char out[64], err[64];

        char *missing[] = { "/nonexistent/tether-test-binary", NULL };
        assert_int_equal(workload_spawn(missing, environ, -1, &w), 0);
        assert_int_equal(w.exec_errno, ENOENT);
        assert_int_equal(exec_errno_to_exit_code(w.exec_errno), 127);
        drain(&w, out, sizeof(out), err, sizeof(err));
        assert_int_equal(wait_code(w.pid, NULL), 127);

        char *not_in_path[] = { "tether-test-no-such-command", NULL };
        assert_int_equal(workload_spawn(not_in_path, environ, -1, &w), 0);
        assert_int_equal(exec_errno_to_exit_code(w.exec_errno), 127);
        drain(&w, out, sizeof(out), err, sizeof(err));
        wait_code(w.pid, NULL);

        char path[] = "/tmp/tether-noexec-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
        close(fd);
        chmod(path, 0644);
        char *noexec[] = { path, NULL };
        assert_int_equal(workload_spawn(noexec, environ, -1, &w), 0);
        assert_int_equal(w.exec_errno, EACCES);
        assert_int_equal(exec_errno_to_exit_code(w.exec_errno), 126);
        drain(&w, out, sizeof(out), err, sizeof(err));
        wait_code(w.pid, NULL);
        unlink(path);

        assert_int_equal(workload_spawn((char *[]) { NULL }, environ, -1, &w), -EINVAL);
}

static void test_signal_exit_code(void **state) {
        char *argv[] = { "/bin/sh", "-c", "kill -KILL $$", NULL };
        Workload w;
        char out[64], err[64];
        assert_int_equal(workload_spawn(argv, environ, -1, &w), 0);
        drain(&w, out, sizeof(out), err, sizeof(err));
        int sig;
        assert_int_equal(wait_code(w.pid, &sig), 137);
        assert_int_equal(sig, 9);
}

static void test_env_override(void **state) {
        char *base[] = { "A=1", "NOTIFY_SOCKET=/run/systemd/notify", "B=2", "NOTIFY_SOCKETX=keep", NULL };
        char *overrides[] = { "NOTIFY_SOCKET=/run/tether/notify", "TRACEPARENT=00-x", NULL };
        char **env;
        assert_int_equal(env_override(base, overrides, &env), 0);
        assert_int_equal(strv_length(env), 5);
        assert_string_equal(env[0], "A=1");
        assert_string_equal(env[1], "B=2");
        assert_string_equal(env[2], "NOTIFY_SOCKETX=keep");
        assert_string_equal(env[3], "NOTIFY_SOCKET=/run/tether/notify");
        assert_string_equal(env[4], "TRACEPARENT=00-x");
        strv_free(env);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spawn_pipes_and_env), cmocka_unit_test(test_spawn_into_cgroup),
                cmocka_unit_test(test_exec_failures),       cmocka_unit_test(test_signal_exit_code),
                cmocka_unit_test(test_env_override),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
