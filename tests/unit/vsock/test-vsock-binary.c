/* SPDX-License-Identifier: MIT */
/* The real tether-vsock binary ($TETHER_VSOCK): the test is QEMU and the guest over its vhost-user socket, real
 * Unix sockets are the host side. Proves the command line, the listeners, negotiation, both connection
 * directions, the log naming the VM, SIGTERM and --exit-on-disconnect. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_vsock.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "socket-util.h"
#include "vsock-guest.h"

typedef struct Run {
        char dir[64], sock[128], uds[128], log[128];
        pid_t pid;
        Guest g;
} Run;

static void run_start(Run *r, bool exit_on_disconnect) {
        const char *bin = getenv("TETHER_VSOCK");
        char cid[16];
        int fd = -1;

        if (!bin) {
                fprintf(stderr, "TETHER_VSOCK not set\n");
                exit(77);
        }
        *r = (Run) {};
        snprintf(r->dir, sizeof(r->dir), "/tmp/tether-vsock-bin-XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        snprintf(r->sock, sizeof(r->sock), "%s/vhost.sock", r->dir);
        snprintf(r->uds, sizeof(r->uds), "%s/v.sock", r->dir);
        snprintf(r->log, sizeof(r->log), "%s/log", r->dir);
        snprintf(cid, sizeof(cid), "%u", GUEST_CID);

        r->pid = fork();
        assert_true(r->pid >= 0);
        if (r->pid == 0) {
                int logfd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                dup2(logfd, STDERR_FILENO);
                execl(bin,
                      bin,
                      "--socket",
                      r->sock,
                      "--uds-path",
                      r->uds,
                      "--cid",
                      cid,
                      "--log-level",
                      "debug",
                      exit_on_disconnect ? "--exit-on-disconnect" : NULL,
                      (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 500 && fd < 0; i++) {
                fd = unix_connect_path(r->sock);
                if (fd < 0)
                        usleep(10000);
        }
        assert_true(fd >= 0);
        assert_int_equal(guest_init(&r->g, fd, NULL), 0);
}

static int run_wait(Run *r, int timeout_ms) {
        int status;

        for (int i = 0; i < timeout_ms / 10; i++) {
                pid_t p = waitpid(r->pid, &status, WNOHANG);
                if (p == r->pid) {
                        r->pid = 0;
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
                usleep(10000);
        }
        return -ETIMEDOUT;
}

static char *read_log(Run *r) {
        static char buf[256 * 1024];
        int fd = open(r->log, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0)
                close(fd);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void run_cleanup(Run *r) {
        char path[160];

        if (r->pid > 0) {
                kill(r->pid, SIGKILL);
                waitpid(r->pid, NULL, 0);
        }
        guest_done(&r->g);
        unlink(r->log);
        for (unsigned p = 5000; p < 5002; p++) {
                snprintf(path, sizeof(path), "%s_%u", r->uds, p);
                unlink(path);
        }
        unlink(r->sock);
        unlink(r->uds);
        rmdir(r->dir);
}

static void test_binary_end_to_end(void **state) {
        char path[160], buf[64], want[64];
        GuestPacket p;
        uint64_t cid = 0;
        Run r;

        run_start(&r, false);
        assert_int_equal(guest_negotiate(&r.g, &cid), 0);
        assert_int_equal(cid, GUEST_CID);
        guest_post_rx(&r.g, GUEST_QSZ / 2);

        /* guest -> host */
        snprintf(path, sizeof(path), "%s_5000", r.uds);
        int lfd = unix_stream_listen(path, 0);
        assert_true(lfd >= 0);
        VsockHdr h = guest_hdr(1234, 5000, VIRTIO_VSOCK_OP_REQUEST, 65536, 0);
        guest_send(&r.g, &h, NULL, 0);
        int ufd = unix_accept_wait(&r.g, lfd, 3000);
        assert_true(ufd >= 0);
        assert_int_equal(guest_recv(&r.g, &p, 3000), 1);
        assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RESPONSE);
        h = guest_hdr(1234, 5000, VIRTIO_VSOCK_OP_RW, 65536, 0);
        guest_send(&r.g, &h, "ping", 4);
        assert_int_equal(unix_read_wait(&r.g, ufd, buf, 4, 3000), 4);
        assert_memory_equal(buf, "ping", 4);
        assert_int_equal(write(ufd, "pong!", 5), 5);
        assert_int_equal(guest_recv(&r.g, &p, 3000), 1);
        assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
        assert_int_equal(p.h.len, 5);
        assert_memory_equal(p.data, "pong!", 5);

        /* host -> guest */
        int cfd = unix_connect_path(r.uds);
        assert_true(cfd >= 0);
        assert_int_equal(write(cfd, "CONNECT 4817\n", 13), 13);
        assert_int_equal(guest_recv(&r.g, &p, 3000), 1);
        assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_REQUEST);
        assert_int_equal(p.h.dst_port, 4817);
        uint32_t local = p.h.src_port;
        h = guest_hdr(4817, local, VIRTIO_VSOCK_OP_RESPONSE, 65536, 0);
        guest_send(&r.g, &h, NULL, 0);
        snprintf(want, sizeof(want), "OK %u\n", local);
        assert_int_equal(unix_read_wait(&r.g, cfd, buf, strlen(want), 3000), (ssize_t) strlen(want));
        assert_memory_equal(buf, want, strlen(want));

        /* No listener: RST. */
        h = guest_hdr(1235, 5001, VIRTIO_VSOCK_OP_REQUEST, 65536, 0);
        guest_send(&r.g, &h, NULL, 0);
        assert_int_equal(guest_recv(&r.g, &p, 3000), 1);
        assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RST);

        /* SIGTERM: clean exit, the host socket removed. */
        assert_int_equal(kill(r.pid, SIGTERM), 0);
        assert_int_equal(run_wait(&r, 5000), 0);
        struct stat st;
        assert_int_equal(stat(r.uds, &st), -1);

        const char *log = read_log(&r);
        assert_non_null(strstr(log, "tether-vsock[cid=42 uds="));
        assert_non_null(strstr(log, "GET_CONFIG"));
        assert_non_null(strstr(log, "device running"));
        /* Every line names the VM. */
        for (const char *l = log; *l; l = strchr(l, '\n') + 1) {
                assert_true(strncmp(l, "tether-vsock[cid=42 uds=", 24) == 0);
                if (!strchr(l, '\n'))
                        break;
        }
        close(ufd);
        close(cfd);
        close(lfd);
        run_cleanup(&r);
}

static void test_binary_exit_on_disconnect(void **state) {
        Run r;

        run_start(&r, true);
        assert_int_equal(guest_negotiate(&r.g, NULL), 0);
        r.g.vu_fd = safe_close(r.g.vu_fd);
        assert_int_equal(run_wait(&r, 5000), 0);
        assert_non_null(strstr(read_log(&r), "frontend disconnected"));
        run_cleanup(&r);
}

static void test_binary_bad_arguments(void **state) {
        const char *bin = getenv("TETHER_VSOCK");
        char cmd[512];

        if (!bin)
                skip();
        snprintf(cmd, sizeof(cmd), "%s --socket /tmp/x --uds-path /tmp/y --cid 2 2>/dev/null", bin);
        assert_int_not_equal(system(cmd), 0);
        snprintf(cmd, sizeof(cmd), "%s --socket /tmp/x --cid 5 2>/dev/null", bin);
        assert_int_not_equal(system(cmd), 0);
        snprintf(cmd, sizeof(cmd), "%s --help >/dev/null", bin);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_binary_end_to_end),
                cmocka_unit_test(test_binary_exit_on_disconnect),
                cmocka_unit_test(test_binary_bad_arguments),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
