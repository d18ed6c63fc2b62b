/* SPDX-License-Identifier: MIT */
/* tether-vsock end to end, in process: the test is QEMU (vhost-user frontend over a socketpair, guest memory in a
 * memfd) and the guest's driver (rings, buffers, packets), the backend runs on a real sd-event loop, and real Unix
 * sockets stand for the host side. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <linux/sockios.h>
#include <linux/vhost_types.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket-util.h"
#include "vsock-device.h"
#include "vsock-guest.h"
#include "vsock-log.h"

#define BUF_ALLOC (64u * 1024u) /* the backend's default */
#define GUEST_BUF_ALLOC (32u * 1024u)

typedef struct Fixture {
        char dir[64];
        char uds[128];
        sd_event *e;
        VsockDevice *d;
        Guest g;
        int listeners[8];
        uint32_t listener_ports[8];
        size_t n_listeners;
} Fixture;

static Fixture *fixture_new(uint32_t max_connections, unsigned rx_buffers) {
        Fixture *f = calloc(1, sizeof(*f));
        int sv[2];
        uint64_t cid = 0;

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/tether-vsock-test-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->uds, sizeof(f->uds), "%s/v.sock", f->dir);

        assert_int_equal(sd_event_new(&f->e), 0);
        VsockDeviceConfig c = { .guest_cid = GUEST_CID, .uds_path = f->uds, .max_connections = max_connections };
        assert_int_equal(vsock_device_new(f->e, &c, &f->d), 0);
        assert_int_equal(vsock_device_listen_uds(f->d), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(vsock_device_attach(f->d, sv[0]), 0);
        assert_int_equal(guest_init(&f->g, sv[1], f->e), 0);
        assert_int_equal(guest_negotiate(&f->g, &cid), 0);
        assert_int_equal(cid, GUEST_CID);
        if (rx_buffers > 0)
                guest_post_rx(&f->g, rx_buffers);
        return f;
}

static void fixture_free(Fixture *f) {
        char path[160];

        guest_done(&f->g);
        vsock_device_free(f->d);
        sd_event_unref(f->e);
        for (size_t i = 0; i < f->n_listeners; i++) {
                close(f->listeners[i]);
                snprintf(path, sizeof(path), "%s_%u", f->uds, f->listener_ports[i]);
                unlink(path);
        }
        rmdir(f->dir);
        free(f);
}

static int setup(void **state) {
        *state = fixture_new(0, GUEST_QSZ / 2);
        return 0;
}

static int teardown(void **state) {
        fixture_free(*state);
        return 0;
}

static int listen_port(Fixture *f, uint32_t port) {
        char path[160];
        int fd;

        snprintf(path, sizeof(path), "%s_%u", f->uds, port);
        fd = unix_stream_listen(path, 0);
        assert_true(fd >= 0);
        f->listeners[f->n_listeners] = fd;
        f->listener_ports[f->n_listeners++] = port;
        return fd;
}

static void send_op(Fixture *f, uint32_t src, uint32_t dst, uint16_t op, uint32_t fwd_cnt) {
        VsockHdr h = guest_hdr(src, dst, op, GUEST_BUF_ALLOC, fwd_cnt);
        guest_send(&f->g, &h, NULL, 0);
}

static void send_rw(Fixture *f, uint32_t src, uint32_t dst, const void *data, uint32_t len, uint32_t fwd_cnt) {
        VsockHdr h = guest_hdr(src, dst, VIRTIO_VSOCK_OP_RW, GUEST_BUF_ALLOC, fwd_cnt);
        guest_send(&f->g, &h, data, len);
}

static void expect_packet(Fixture *f, GuestPacket *p, uint16_t op, uint32_t src_port, uint32_t dst_port) {
        assert_int_equal(guest_recv(&f->g, p, 3000), 1);
        assert_int_equal(p->h.src_cid, VSOCK_HOST_CID);
        assert_int_equal(p->h.dst_cid, GUEST_CID);
        assert_int_equal(p->h.type, VIRTIO_VSOCK_TYPE_STREAM);
        assert_string_equal(vsock_op_to_string(p->h.op), vsock_op_to_string(op));
        assert_int_equal(p->h.src_port, src_port);
        assert_int_equal(p->h.dst_port, dst_port);
}

static void expect_nothing(Fixture *f) {
        GuestPacket p;
        assert_int_equal(guest_recv(&f->g, &p, 100), 0);
}

/* Guest port src connects to host port dst where the test listens; returns the host side's socket. */
static int connect_guest(Fixture *f, uint32_t src, uint32_t dst) {
        GuestPacket p;
        int lfd = listen_port(f, dst), ufd;

        send_op(f, src, dst, VIRTIO_VSOCK_OP_REQUEST, 0);
        ufd = unix_accept_wait(&f->g, lfd, 3000);
        assert_true(ufd >= 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RESPONSE, dst, src);
        assert_int_equal(p.h.buf_alloc, BUF_ALLOC);
        assert_int_equal(p.h.fwd_cnt, 0);
        return ufd;
}

static void pattern(uint8_t *buf, size_t n, size_t start) {
        for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t) ((start + i) * 7 + ((start + i) >> 8));
}

static void test_config_and_rings(void **state) {
        Fixture *f = *state;
        VhostUserMsg reply;
        struct vhost_vring_state st = { .index = 1 };
        uint8_t cfg[12 + 16] = {};
        uint32_t v;

        assert_int_equal(f->g.cid, GUEST_CID);
        assert_true(vsock_device_attached(f->d));

        /* Reading beyond the 8-byte config gives zeros; offset 4 gives the CID's high half. */
        v = 4;
        memcpy(cfg, &v, 4);
        v = 16;
        memcpy(cfg + 4, &v, 4);
        assert_int_equal(guest_vu(&f->g, VHOST_USER_GET_CONFIG, 0, cfg, sizeof(cfg), NULL, 0, &reply), 0);
        assert_int_equal(reply.size, sizeof(cfg));
        for (unsigned i = 12; i < sizeof(cfg); i++)
                assert_int_equal(reply.payload[i], 0);

        /* Two packets through tx, then GET_VRING_BASE says where tx stands. */
        send_op(f, 1, 2, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
        send_op(f, 1, 2, VIRTIO_VSOCK_OP_RST, 0);
        assert_true(guest_tx_done(&f->g));
        assert_int_equal(guest_vu(&f->g, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply), 0);
        memcpy(&st, reply.payload, sizeof(st));
        assert_int_equal(st.index, 1);
        assert_int_equal(st.num, 2);

        /* Requests the backend refuses are acked as failures, and the connection survives them. */
        uint8_t mt[8] = { 9 };
        uint64_t ack;
        assert_int_equal(
                guest_vu(&f->g, VHOST_USER_SET_MEM_TABLE, VHOST_USER_FLAG_NEED_REPLY, mt, sizeof(mt), NULL, 0, &reply),
                0);
        memcpy(&ack, reply.payload, 8);
        assert_int_not_equal(ack, 0);
        st = (struct vhost_vring_state) { .index = 0, .num = 3 };
        assert_int_equal(
                guest_vu(&f->g, VHOST_USER_SET_VRING_NUM, VHOST_USER_FLAG_NEED_REPLY, &st, sizeof(st), NULL, 0, &reply),
                0);
        memcpy(&ack, reply.payload, 8);
        assert_int_not_equal(ack, 0);
        st = (struct vhost_vring_state) { .index = 7, .num = 64 };
        assert_int_equal(
                guest_vu(&f->g, VHOST_USER_SET_VRING_NUM, VHOST_USER_FLAG_NEED_REPLY, &st, sizeof(st), NULL, 0, &reply),
                0);
        memcpy(&ack, reply.payload, 8);
        assert_int_not_equal(ack, 0);
        assert_true(vsock_device_get_stats(f->d)->vhost_user_errors >= 3);
        assert_true(vsock_device_attached(f->d));
}

static void test_guest_connect_rw(void **state) {
        Fixture *f = *state;
        static uint8_t big[100000], got[100000];
        const char *msg = "hello from the guest";
        GuestPacket p;
        char buf[64];
        int ufd;

        ufd = connect_guest(f, 1234, 5000);
        assert_int_equal(vsock_device_n_connections(f->d), 1);

        send_rw(f, 1234, 5000, msg, (uint32_t) strlen(msg), 0);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, strlen(msg), 3000), (ssize_t) strlen(msg));
        assert_memory_equal(buf, msg, strlen(msg));

        assert_int_equal(write(ufd, "hello from the host", 19), 19);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RW, 5000, 1234);
        assert_int_equal(p.h.len, 19);
        assert_memory_equal(p.data, "hello from the host", 19);
        assert_int_equal(p.h.fwd_cnt, strlen(msg));

        /* 100000 bytes host -> guest with a 32 KiB guest window: the backend never exceeds the credit; the guest
         * grants more as it consumes, like Linux. */
        pattern(big, sizeof(big), 0);
        uint32_t received = 0, granted_fwd = 0, in_stream = 19;
        size_t written = 0;
        while (received < sizeof(big)) {
                if (written < sizeof(big)) {
                        ssize_t k = send(ufd, big + written, sizeof(big) - written, MSG_DONTWAIT);
                        if (k > 0)
                                written += (size_t) k;
                }
                int r = guest_recv(&f->g, &p, 2000);
                assert_int_equal(r, 1);
                assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_RW);
                memcpy(got + received, p.data, p.h.len);
                received += p.h.len;
                in_stream += p.h.len;
                /* Outstanding bytes (sent but not acknowledged by our fwd_cnt) within our window. */
                assert_true(in_stream - granted_fwd <= GUEST_BUF_ALLOC);
                if (in_stream - granted_fwd >= GUEST_BUF_ALLOC / 2) {
                        granted_fwd = in_stream;
                        send_op(f, 1234, 5000, VIRTIO_VSOCK_OP_CREDIT_UPDATE, granted_fwd);
                }
        }
        assert_memory_equal(got, big, sizeof(big));
        assert_int_equal(vsock_device_get_stats(f->d)->credit_violations, 0);
        close(ufd);
}

static void test_credit_request(void **state) {
        Fixture *f = *state;
        GuestPacket p;
        int ufd = connect_guest(f, 1234, 5001);

        send_op(f, 1234, 5001, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 5001, 1234);
        assert_int_equal(p.h.buf_alloc, BUF_ALLOC);
        close(ufd);
}

/* Sends pattern bytes within the backend's credit until it has none left and gives none back. */
static uint32_t fill_until_stalled(Fixture *f, uint32_t src, uint32_t dst) {
        static uint8_t chunk[4096];
        uint32_t sent = 0, peer_fwd = 0, peer_alloc = BUF_ALLOC;
        GuestPacket p;

        for (;;) {
                uint32_t credit = peer_alloc - (sent - peer_fwd);
                if (credit > 0) {
                        uint32_t n = credit < sizeof(chunk) ? credit : (uint32_t) sizeof(chunk);
                        pattern(chunk, n, sent);
                        send_rw(f, src, dst, chunk, n, 0);
                        sent += n;
                }
                while (guest_recv(&f->g, &p, credit > 0 ? 0 : 200) == 1) {
                        assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
                        assert_true(p.h.fwd_cnt - peer_fwd <= sent - peer_fwd);
                        peer_fwd = p.h.fwd_cnt;
                        peer_alloc = p.h.buf_alloc;
                }
                if (credit == 0 && peer_alloc - (sent - peer_fwd) == 0)
                        return sent;
                assert_true(sent < 64u * 1024u * 1024u);
        }
}

static void test_credit_slow_peer(void **state) {
        Fixture *f = *state;
        static uint8_t got[8u * 1024u * 1024u], want[8u * 1024u * 1024u];
        int ufd = connect_guest(f, 1234, 5002);
        uint32_t sent;
        GuestPacket p;

        /* The host side reads nothing: the socket fills, then the backend buffers at most buf_alloc, then the guest
         * has no credit. Everything sent so far must arrive, in order, once the host reads. */
        sent = fill_until_stalled(f, 1234, 5002);
        assert_true(sent >= BUF_ALLOC);
        assert_true(sent <= sizeof(got));
        assert_int_equal(vsock_device_get_stats(f->d)->credit_violations, 0);

        ssize_t n = unix_read_wait(&f->g, ufd, got, sent, 5000);
        assert_int_equal(n, (ssize_t) sent);
        pattern(want, sent, 0);
        assert_memory_equal(got, want, sent);

        /* Consumption is announced (the last update carries everything). */
        uint32_t last_fwd = 0;
        while (guest_recv(&f->g, &p, 200) == 1) {
                assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
                last_fwd = p.h.fwd_cnt;
        }
        assert_true(sent - last_fwd < BUF_ALLOC / 4);
        close(ufd);
}

static void test_credit_violation(void **state) {
        Fixture *f = *state;
        GuestPacket p;
        int ufd = connect_guest(f, 1234, 5003);
        char one = 'x';

        (void) fill_until_stalled(f, 1234, 5003);
        /* One byte beyond the credit: the connection is reset, the host side closed. */
        send_rw(f, 1234, 5003, &one, 1, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5003, 1234);
        assert_int_equal(vsock_device_get_stats(f->d)->credit_violations, 1);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
        close(ufd);
}

static void test_no_listener(void **state) {
        Fixture *f = *state;
        GuestPacket p;

        send_op(f, 1234, 6000, VIRTIO_VSOCK_OP_REQUEST, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 6000, 1234);
        assert_int_equal(vsock_device_get_stats(f->d)->connect_refused, 1);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
}

static int host_connect(Fixture *f, const char *line, uint32_t guest_port, uint32_t *ret_local) {
        GuestPacket p;
        int cfd = unix_connect_path(f->uds);

        assert_true(cfd >= 0);
        assert_int_equal(write(cfd, line, strlen(line)), (ssize_t) strlen(line));
        assert_int_equal(guest_recv(&f->g, &p, 3000), 1);
        assert_int_equal(p.h.op, VIRTIO_VSOCK_OP_REQUEST);
        assert_int_equal(p.h.src_cid, VSOCK_HOST_CID);
        assert_int_equal(p.h.dst_port, guest_port);
        assert_true(p.h.src_port >= (UINT32_C(1) << 30));
        *ret_local = p.h.src_port;
        return cfd;
}

static void test_host_connect(void **state) {
        Fixture *f = *state;
        char buf[64], want[64];
        uint32_t local;
        GuestPacket p;
        int cfd;

        /* Lower case keyword, and data right behind the line: it must reach the guest after OK. */
        cfd = host_connect(f, "connect 7000\nEARLY", 7000, &local);
        send_op(f, 7000, local, VIRTIO_VSOCK_OP_RESPONSE, 0);
        snprintf(want, sizeof(want), "OK %u\n", local);
        assert_int_equal(unix_read_wait(&f->g, cfd, buf, strlen(want), 3000), (ssize_t) strlen(want));
        assert_memory_equal(buf, want, strlen(want));

        expect_packet(f, &p, VIRTIO_VSOCK_OP_RW, local, 7000);
        assert_int_equal(p.h.len, 5);
        assert_memory_equal(p.data, "EARLY", 5);

        send_rw(f, 7000, local, "pong", 4, 5);
        assert_int_equal(unix_read_wait(&f->g, cfd, buf, 4, 3000), 4);
        assert_memory_equal(buf, "pong", 4);

        /* A second client gets another local port. */
        uint32_t local2;
        int cfd2 = host_connect(f, "CONNECT 7000\n", 7000, &local2);
        assert_int_not_equal(local, local2);
        /* The guest refuses: the client is closed. */
        send_op(f, 7000, local2, VIRTIO_VSOCK_OP_RST, 0);
        assert_int_equal(unix_read_wait(&f->g, cfd2, buf, 1, 3000), 0);
        close(cfd2);
        assert_int_equal(vsock_device_n_connections(f->d), 1);
        close(cfd);
}

static void test_connect_bad_lines(void **state) {
        Fixture *f = *state;
        static const char *const lines[] = {
                "HELLO 7000\n",
                "CONNECT\n",
                "CONNECT 99999999999\n",
                "CONNECT 12x\n",
                "CONNECT 7000 7001\n",
                "CONNECT 000000000000000000000000000000000000000000000000000000000000000000000000000001\n",
        };
        char buf[8];

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                int cfd = unix_connect_path(f->uds);
                assert_true(cfd >= 0);
                assert_int_equal(write(cfd, lines[i], strlen(lines[i])), (ssize_t) strlen(lines[i]));
                /* Closed: EOF, or a reset when the backend stopped reading a line that was too long. */
                ssize_t n = unix_read_wait(&f->g, cfd, buf, 1, 3000);
                assert_true(n == 0 || n == -ECONNRESET);
                close(cfd);
        }
        assert_int_equal(vsock_device_get_stats(f->d)->clients_rejected, sizeof(lines) / sizeof(lines[0]));
        expect_nothing(f);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
}

static void test_shutdown_guest_send(void **state) {
        Fixture *f = *state;
        GuestPacket p;
        char buf[8];
        int ufd = connect_guest(f, 1234, 5010);

        /* Guest half-closes: the host reads EOF, and can still write. */
        send_rw(f, 1234, 5010, "bye", 3, 0);
        VsockHdr h = guest_hdr(1234, 5010, VIRTIO_VSOCK_OP_SHUTDOWN, GUEST_BUF_ALLOC, 0);
        h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
        guest_send(&f->g, &h, NULL, 0);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, sizeof(buf), 3000), 3);
        assert_memory_equal(buf, "bye", 3);

        assert_int_equal(write(ufd, "late", 4), 4);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RW, 5010, 1234);
        assert_memory_equal(p.data, "late", 4);

        /* The host closes: the guest is told neither side sends nor receives, and answers RST like Linux. */
        close(ufd);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_SHUTDOWN, 5010, 1234);
        assert_int_equal(p.h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV);
        send_op(f, 1234, 5010, VIRTIO_VSOCK_OP_RST, 0);
        guest_pump(&f->g);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
}

static void test_shutdown_guest_both(void **state) {
        Fixture *f = *state;
        GuestPacket p;
        char buf[8];
        int ufd = connect_guest(f, 1234, 5011);

        /* A Linux guest's close(): SHUTDOWN RCV|SEND, then it waits for our RST. Pending data goes first. */
        send_rw(f, 1234, 5011, "last", 4, 0);
        VsockHdr h = guest_hdr(1234, 5011, VIRTIO_VSOCK_OP_SHUTDOWN, GUEST_BUF_ALLOC, 0);
        h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
        guest_send(&f->g, &h, NULL, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5011, 1234);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, sizeof(buf), 3000), 4);
        assert_memory_equal(buf, "last", 4);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
        close(ufd);
}

static void test_shutdown_host_half(void **state) {
        Fixture *f = *state;
        GuestPacket p;
        char buf[8];
        int ufd = connect_guest(f, 1234, 5012);

        /* The host half-closes: SHUTDOWN SEND only, the guest can still send. */
        assert_int_equal(shutdown(ufd, SHUT_WR), 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_SHUTDOWN, 5012, 1234);
        assert_int_equal(p.h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
        send_rw(f, 1234, 5012, "still", 5, 0);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, 5, 3000), 5);
        assert_memory_equal(buf, "still", 5);
        /* Then the guest closes too: RST, the host reads EOF. */
        VsockHdr h = guest_hdr(1234, 5012, VIRTIO_VSOCK_OP_SHUTDOWN, GUEST_BUF_ALLOC, 0);
        h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
        guest_send(&f->g, &h, NULL, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5012, 1234);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, 1, 3000), 0);
        close(ufd);
}

static void test_guest_rst(void **state) {
        Fixture *f = *state;
        char buf[4];
        int ufd = connect_guest(f, 1234, 5013);

        send_op(f, 1234, 5013, VIRTIO_VSOCK_OP_RST, 0);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, 1, 3000), 0);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
        assert_int_equal(vsock_device_get_stats(f->d)->rst_received, 1);
        /* The connection is gone: data for it is answered with RST. */
        send_rw(f, 1234, 5013, "x", 1, 0);
        GuestPacket p;
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5013, 1234);
        close(ufd);
}

static void test_unknown_connection(void **state) {
        Fixture *f = *state;
        GuestPacket p;

        send_rw(f, 99, 98, "abc", 3, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 98, 99);
        send_op(f, 99, 98, VIRTIO_VSOCK_OP_SHUTDOWN, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 98, 99);
        /* Never a RST for a RST. */
        send_op(f, 99, 98, VIRTIO_VSOCK_OP_RST, 0);
        expect_nothing(f);
        assert_int_equal(vsock_device_get_stats(f->d)->unknown_connection, 2);
}

static void test_protocol_errors(void **state) {
        Fixture *f = *state;
        GuestPacket p;
        int ufd = connect_guest(f, 1234, 5014);

        /* REQUEST on an established connection: reset. */
        send_op(f, 1234, 5014, VIRTIO_VSOCK_OP_REQUEST, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5014, 1234);
        assert_int_equal(vsock_device_n_connections(f->d), 0);
        assert_int_equal(vsock_device_get_stats(f->d)->protocol_errors, 1);
        close(ufd);
}

static void test_rx_starvation(void **state) {
        Fixture *f = fixture_new(0, 1);
        GuestPacket p;
        int ufd, outq = 0;
        char data[1000];

        f->g.no_repost = true;
        ufd = connect_guest(f, 1234, 5020); /* the RESPONSE takes the only buffer */

        /* No rx buffers: the backend must not read the host side at all. */
        memset(data, 'z', sizeof(data));
        assert_int_equal(write(ufd, data, sizeof(data)), (ssize_t) sizeof(data));
        expect_nothing(f);
        assert_int_equal(ioctl(ufd, SIOCOUTQ, &outq), 0);
        assert_true(outq > 0);

        /* Buffers come: the data flows, all of it. */
        guest_post_rx(&f->g, 4);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RW, 5020, 1234);
        assert_int_equal(p.h.len, sizeof(data));
        assert_memory_equal(p.data, data, sizeof(data));
        assert_int_equal(ioctl(ufd, SIOCOUTQ, &outq), 0);
        assert_int_equal(outq, 0);
        close(ufd);
        fixture_free(f);
}

static void test_connection_limit(void **state) {
        Fixture *f = fixture_new(4, GUEST_QSZ / 2);
        GuestPacket p;
        int fds[4];

        for (unsigned i = 0; i < 4; i++)
                fds[i] = connect_guest(f, 100 + i, 5030 + i);
        assert_int_equal(vsock_device_n_connections(f->d), 4);
        listen_port(f, 5040);
        send_op(f, 200, 5040, VIRTIO_VSOCK_OP_REQUEST, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5040, 200);
        assert_int_equal(vsock_device_get_stats(f->d)->connections_limit, 1);
        /* Host clients hit the same limit. */
        int cfd = unix_connect_path(f->uds);
        char buf[4];
        assert_int_equal(write(cfd, "CONNECT 1\n", 10), 10);
        assert_int_equal(unix_read_wait(&f->g, cfd, buf, 1, 3000), 0);
        close(cfd);
        for (unsigned i = 0; i < 4; i++)
                close(fds[i]);
        fixture_free(f);
}

static void test_hostile_headers(void **state) {
        Fixture *f = *state;
        const VsockStats *s = vsock_device_get_stats(f->d);
        static uint8_t payload[100];
        GuestPacket p;
        VsockHdr h;

        /* Forged source CID and foreign destination: dropped, counted, no answer. */
        h = guest_hdr(1, 5000, VIRTIO_VSOCK_OP_REQUEST, 0, 0);
        h.src_cid = 3;
        guest_send(&f->g, &h, NULL, 0);
        h = guest_hdr(1, 5000, VIRTIO_VSOCK_OP_REQUEST, 0, 0);
        h.dst_cid = 7;
        guest_send(&f->g, &h, NULL, 0);
        expect_nothing(f);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_BAD_SRC_CID], 1);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_BAD_DST_CID], 1);

        /* len beyond 64 KiB, len beyond the chain, unknown op, SEQPACKET: dropped and answered with RST. */
        h = guest_hdr(2, 5000, VIRTIO_VSOCK_OP_RW, 0, 0);
        h.len = 100000;
        guest_send_raw(&f->g, &h, payload, 10);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5000, 2);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_LEN_TOO_LARGE], 1);
        h = guest_hdr(3, 5000, VIRTIO_VSOCK_OP_RW, 0, 0);
        h.len = 11;
        guest_send_raw(&f->g, &h, payload, 10);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5000, 3);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_LEN_BEYOND_CHAIN], 1);
        h = guest_hdr(4, 5000, 99, 0, 0);
        guest_send(&f->g, &h, NULL, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5000, 4);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_UNKNOWN_OP], 1);
        h = guest_hdr(5, 5000, VIRTIO_VSOCK_OP_REQUEST, 0, 0);
        h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
        guest_send(&f->g, &h, NULL, 0);
        expect_packet(f, &p, VIRTIO_VSOCK_OP_RST, 5000, 5);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_BAD_TYPE], 1);

        /* A chain shorter than a header. */
        struct vring_desc *d = guest_desc(&f->g, 1);
        d[40] = (struct vring_desc) { .addr = htole64(guest_gpa(GUEST_TX_DATA_OFF)), .len = htole32(43) };
        guest_avail_push(&f->g, 1, 40);
        guest_kick(&f->g, 1);
        assert_int_equal(s->tx_dropped[VSOCK_VERDICT_SHORT], 1);
        assert_true(guest_tx_done(&f->g));

        /* None of it broke anything: a real connection still works. */
        assert_null(vsock_device_broken(f->d, VSOCK_QUEUE_TX));
        int ufd = connect_guest(f, 1234, 5050);
        close(ufd);
}

/* Ring-level attacks on the live device: each breaks the queue, logged once, nothing else happens. */
typedef void (*RingAttack)(Guest *g);

static void attack_outside(Guest *g) {
        struct vring_desc *d = guest_desc(g, 1);
        d[0] = (struct vring_desc) { .addr = htole64(guest_gpa(GUEST_MEM_SIZE - 10)), .len = htole32(44) };
        guest_avail_push(g, 1, 0);
}
static void attack_wrap(Guest *g) {
        struct vring_desc *d = guest_desc(g, 1);
        d[0] = (struct vring_desc) { .addr = htole64(UINT64_MAX - 20), .len = htole32(44) };
        guest_avail_push(g, 1, 0);
}
static void attack_loop(Guest *g) {
        struct vring_desc *d = guest_desc(g, 1);
        d[0] = (struct vring_desc) { .addr = htole64(guest_gpa(GUEST_TX_DATA_OFF)),
                                     .len = htole32(44),
                                     .flags = htole16(VRING_DESC_F_NEXT),
                                     .next = htole16(1) };
        d[1] = (struct vring_desc) { .addr = htole64(guest_gpa(GUEST_TX_DATA_OFF)),
                                     .len = htole32(44),
                                     .flags = htole16(VRING_DESC_F_NEXT),
                                     .next = htole16(0) };
        guest_avail_push(g, 1, 0);
}
static void attack_indirect(Guest *g) {
        struct vring_desc *d = guest_desc(g, 1);
        d[0] = (struct vring_desc) { .addr = htole64(guest_gpa(GUEST_TX_DATA_OFF)),
                                     .len = htole32(32),
                                     .flags = htole16(VRING_DESC_F_INDIRECT) };
        guest_avail_push(g, 1, 0);
}
static void attack_avail_jump(Guest *g) {
        guest_avail_set_idx(g, 1, GUEST_QSZ + 1);
}

static void test_hostile_rings(void **state) {
        static const RingAttack attacks[] = {
                attack_outside, attack_wrap, attack_loop, attack_indirect, attack_avail_jump
        };

        for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
                Fixture *f = fixture_new(0, GUEST_QSZ / 2);
                uint16_t used = guest_used_idx(&f->g, 1);

                attacks[i](&f->g);
                guest_kick(&f->g, 1);
                assert_non_null(vsock_device_broken(f->d, VSOCK_QUEUE_TX));
                assert_int_equal(vsock_device_get_stats(f->d)->broken_rings, 1);
                assert_int_equal(guest_used_idx(&f->g, 1), used);
                /* Further kicks: nothing is processed, nothing crashes, still one broken ring. */
                send_op(f, 1, 5000, VIRTIO_VSOCK_OP_REQUEST, 0);
                guest_kick(&f->g, 1);
                assert_int_equal(vsock_device_get_stats(f->d)->broken_rings, 1);
                assert_int_equal(vsock_device_get_stats(f->d)->tx_packets, 0);
                /* The rx queue is unaffected, and the frontend connection too. */
                assert_null(vsock_device_broken(f->d, VSOCK_QUEUE_RX));
                assert_true(vsock_device_attached(f->d));
                fixture_free(f);
        }
}

static void test_hostile_rx_buffer(void **state) {
        /* A 16-byte rx buffer cannot hold a header, a 44-byte one no payload (with data waiting the backend would
         * spin on it): broken rx ring once something is to be sent. */
        static const uint32_t sizes[] = { 16, VSOCK_HDR_SIZE };

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                Fixture *f = fixture_new(0, 0);
                struct vring_desc *d = guest_desc(&f->g, 0);
                GuestPacket p;

                d[0] = (struct vring_desc) { .addr = htole64(guest_gpa(GUEST_RX_DATA_OFF)),
                                             .len = htole32(sizes[i]),
                                             .flags = htole16(VRING_DESC_F_WRITE) };
                guest_avail_push(&f->g, 0, 0);
                guest_kick(&f->g, 0);
                send_rw(f, 99, 98, "x", 1, 0); /* earns a RST */
                assert_int_equal(guest_recv(&f->g, &p, 100), 0);
                assert_non_null(vsock_device_broken(f->d, VSOCK_QUEUE_RX));
                assert_int_equal(guest_used_idx(&f->g, 0), 0);
                fixture_free(f);
        }
}

static void test_frontend_disconnect(void **state) {
        Fixture *f = fixture_new(0, GUEST_QSZ / 2);
        char buf[4];
        int ufd = connect_guest(f, 1234, 5060);

        /* QEMU goes away: connections are dropped, the device waits for the next frontend. */
        f->g.vu_fd = safe_close(f->g.vu_fd);
        for (int i = 0; i < 10 && vsock_device_attached(f->d); i++)
                guest_pump(&f->g);
        assert_false(vsock_device_attached(f->d));
        assert_int_equal(vsock_device_n_connections(f->d), 0);
        assert_int_equal(unix_read_wait(&f->g, ufd, buf, 1, 1000), 0);
        close(ufd);
        fixture_free(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_config_and_rings, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guest_connect_rw, setup, teardown),
                cmocka_unit_test_setup_teardown(test_credit_request, setup, teardown),
                cmocka_unit_test_setup_teardown(test_credit_slow_peer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_credit_violation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_listener, setup, teardown),
                cmocka_unit_test_setup_teardown(test_host_connect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connect_bad_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_shutdown_guest_send, setup, teardown),
                cmocka_unit_test_setup_teardown(test_shutdown_guest_both, setup, teardown),
                cmocka_unit_test_setup_teardown(test_shutdown_host_half, setup, teardown),
                cmocka_unit_test_setup_teardown(test_guest_rst, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_connection, setup, teardown),
                cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_headers, setup, teardown),
                cmocka_unit_test(test_rx_starvation),
                cmocka_unit_test(test_connection_limit),
                cmocka_unit_test(test_hostile_rings),
                cmocka_unit_test(test_hostile_rx_buffer),
                cmocka_unit_test(test_frontend_disconnect),
        };

        /* Quiet unless asked: the hostile tests make the backend log on purpose. */
        vsock_log_set_max_level(getenv("TETHER_VSOCK_TEST_DEBUG") ? LOG_DEBUG : LOG_CRIT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
