/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent-config.h"
#include "probe.h"

#define MS 1000000ull

static void load(AgentConfig *c, const char *ready) {
        ConfigError err;
        config_init(c);
        assert_int_equal(config_parse_ready(c, ready, "--ready", &err), 0);
}

/* Runs rounds (advancing a fake clock) and polls probe sockets until a probe succeeds or rounds run out.
 * Returns the index of the probe that succeeded, or -1. */
static int run(Prober *p, uint64_t *now, int rounds) {
        size_t k;
        for (int i = 0; i < rounds; i++) {
                if (prober_handle_timers(p, *now, &k) > 0)
                        return (int) k;
                struct pollfd fds[8];
                size_t n = prober_fill_pollfds(p, fds, 8);
                if (n > 0 && poll(fds, n, 1000) > 0)
                        for (size_t j = 0; j < n; j++)
                                if (fds[j].revents && prober_handle_pollfd(p, &fds[j], *now, &k) > 0)
                                        return (int) k;
                *now = prober_next_deadline(p);
        }
        return -1;
}

/* One round without polling: 1 and the index, or 0. */
static int tick(Prober *p, uint64_t now, size_t *k) {
        return prober_handle_timers(p, now, k);
}

static void test_file(void **state) {
        char dir[] = "/tmp/tether-probe-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char spec[160], path[128];
        snprintf(path, sizeof(path), "%s/ready", dir);
        snprintf(spec, sizeof(spec), "file:%s", path);

        AgentConfig c;
        load(&c, spec);
        Prober *p;
        assert_int_equal(prober_new(c.probes, c.n_probes, 100 * MS, 1000 * MS, &p), 0);
        assert_int_equal(prober_next_deadline(p), UINT64_MAX); /* not started */
        uint64_t now = 1000 * MS;
        size_t k = 99;
        prober_start(p, now);
        assert_int_equal(tick(p, now, &k), 0);
        assert_int_equal(prober_next_deadline(p), now + 100 * MS);
        assert_int_equal(tick(p, now + 50 * MS, &k), 0); /* not due: nothing happens */

        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(tick(p, now + 100 * MS, &k), 1);
        assert_int_equal(k, 0);

        /* Stopped probes stay quiet */
        prober_stop(p);
        assert_int_equal(prober_next_deadline(p), UINT64_MAX);
        assert_int_equal(tick(p, now + 10000 * MS, &k), 0);

        prober_free(p);
        config_done(&c);
        unlink(path);
        rmdir(dir);
}

static void test_tcp_and_unix(void **state) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sin);
        assert_int_equal(bind(l, (struct sockaddr *) &sin, sizeof(sin)), 0);
        assert_int_equal(getsockname(l, (struct sockaddr *) &sin, &len), 0);
        int port = ntohs(sin.sin_port);

        /* Bound but not listening: refused */
        char spec[160];
        snprintf(spec, sizeof(spec), "tcp:%d", port);
        AgentConfig c;
        load(&c, spec);
        Prober *p;
        uint64_t now = 0;
        assert_int_equal(prober_new(c.probes, c.n_probes, 10 * MS, 1000 * MS, &p), 0);
        prober_start(p, now);
        assert_int_equal(run(p, &now, 3), -1);

        assert_int_equal(listen(l, 4), 0);
        assert_int_equal(run(p, &now, 3), 0);
        prober_free(p);
        config_done(&c);
        close(l);

        char path[] = "/tmp/tether-probe-unix-XXXXXX";
        assert_non_null(mkdtemp(path));
        char sock[128];
        snprintf(sock, sizeof(sock), "%s/s", path);
        snprintf(spec, sizeof(spec), "file:/nonexistent/x,unix:%s", sock);
        load(&c, spec);
        now = 0;
        assert_int_equal(prober_new(c.probes, c.n_probes, 10 * MS, 1000 * MS, &p), 0);
        prober_start(p, now);
        assert_int_equal(run(p, &now, 2), -1); /* no socket yet */

        int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        strcpy(sun.sun_path, sock);
        assert_int_equal(bind(u, (struct sockaddr *) &sun, sizeof(sun)), 0);
        assert_int_equal(run(p, &now, 2), -1); /* bound, not accepting */
        assert_int_equal(listen(u, 4), 0);
        assert_int_equal(run(p, &now, 2), 1); /* index of the unix probe */
        prober_free(p);
        config_done(&c);
        close(u);
        unlink(sock);
        rmdir(path);
}

/* Reaps the probe's child the way the agent does: 1 when the prober calls it a success, 0 otherwise. */
static int reap(Prober *p) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        assert_true(pid > 0);
        size_t k = 99;
        int r = prober_child_exited(p, pid, status, &k);
        assert_true(r >= 0); /* ours */
        if (r > 0)
                assert_int_equal(k, 0);
        return r;
}

static void test_exec(void **state) {
        AgentConfig c;
        Prober *p;
        size_t k;

        load(&c, "exec:sh -c 'exit 0'");
        assert_int_equal(prober_new(c.probes, c.n_probes, 10 * MS, 1000 * MS, &p), 0);
        prober_start(p, 0);
        assert_int_equal(tick(p, 0, &k), 0); /* started, not finished */
        assert_int_equal(reap(p), 1);
        assert_int_equal(prober_child_exited(p, 99999, 0, &k), -ESRCH);
        prober_free(p);
        config_done(&c);

        load(&c, "exec:false");
        assert_int_equal(prober_new(c.probes, c.n_probes, 10 * MS, 1000 * MS, &p), 0);
        prober_start(p, 0);
        assert_int_equal(tick(p, 0, &k), 0);
        assert_int_equal(reap(p), 0);
        prober_free(p);
        config_done(&c);

        /* A command that overruns its timeout is killed and counts as not ready. */
        load(&c, "exec:sleep 30");
        assert_int_equal(prober_new(c.probes, c.n_probes, 10 * MS, 50 * MS, &p), 0);
        prober_start(p, 0);
        assert_int_equal(tick(p, 0, &k), 0);
        assert_int_equal(prober_next_deadline(p), 10 * MS);
        assert_int_equal(tick(p, 10 * MS, &k), 0); /* still running: no second copy */
        assert_int_equal(tick(p, 50 * MS, &k), 0); /* timeout: SIGKILL */
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        assert_int_equal(prober_child_exited(p, pid, status, &k), 0);
        prober_free(p);
        config_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_file),
                cmocka_unit_test(test_tcp_and_unix),
                cmocka_unit_test(test_exec),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
