/* SPDX-License-Identifier: MIT */
/* tether-vsock against a fuzzed guest: the guest's memory - descriptor table, avail ring, buffers, packet headers
 * - is the input. Every available chain is walked (vring.c), its header parsed and checked (vsock-packet.c), and
 * accepted packets go through the connection state machine (vsock-mux.c; host port 1024 has a real listener, so
 * connections to it are established and their data, shutdowns and resets are exercised; every other port is
 * refused); then whatever the mux wants to send is written into an rx
 * buffer. Invariants: every buffer of a chain lies inside the guest memory, a chain has at most num descriptors,
 * a broken ring stays broken, packets written for the guest fit their buffer, and header parse/build round-trips.
 *
 * Input: byte 0: log2 of the queue size (low 3 bits, 1..128); byte 1: the avail index to start from; the rest is
 * the guest memory image (GUEST_SIZE bytes, zero-padded) mapped at guest physical address GPA. The ring sits at
 * the start of that memory: descriptors at 0, avail ring at 0x800, used ring at 0xa00. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "fuzz.h"
#include "iov-util.h"
#include "macro.h"
#include "socket-util.h"
#include "vring.h"
#include "vsock-log.h"
#include "vsock-mux.h"
#include "vsock-packet.h"

#define GPA UINT64_C(0x10000)
#define UVA UINT64_C(0x7f0000010000)
#define GUEST_SIZE 16384u
#define GUEST_CID 3u

static VsockMux *mux;
static VsockStats stats;
static char dir[64], uds[128], port_path[160];
static int listen_fd = -1;

static void cleanup(void) {
        mux = vsock_mux_free(mux);
        listen_fd = safe_close(listen_fd);
        (void) unlink(port_path);
        (void) rmdir(dir);
}

static void setup(void) {
        sd_event *e = NULL;

        snprintf(dir, sizeof(dir), "/tmp/tether-fuzz-vsock-XXXXXX");
        FUZZ_ASSERT(mkdtemp(dir));
        snprintf(uds, sizeof(uds), "%s/v.sock", dir);
        snprintf(port_path, sizeof(port_path), "%s_1024", uds);
        listen_fd = unix_stream_listen(port_path, 0);
        FUZZ_ASSERT(listen_fd >= 0);
        atexit(cleanup);

        vsock_log_set_max_level(LOG_EMERG - 1);
        FUZZ_ASSERT(sd_event_new(&e) >= 0);
        VsockMuxConfig c = {
                .guest_cid = GUEST_CID,
                .uds_path = uds,
                .ident = "fuzz",
                .max_connections = 16,
                .max_clients = 4,
                .buf_alloc = 4096,
        };
        FUZZ_ASSERT(vsock_mux_new(e, &c, &stats, NULL, NULL, &mux) >= 0);
        sd_event_unref(e); /* the mux holds its reference */
}

static void check_roundtrip(const uint8_t *data, size_t size) {
        uint8_t out[VSOCK_HDR_SIZE];
        VsockHdr h;

        if (size < VSOCK_HDR_SIZE)
                return;
        vsock_hdr_parse(data, &h);
        vsock_hdr_build(&h, out);
        FUZZ_ASSERT(memcmp(out, data, VSOCK_HDR_SIZE) == 0);
        (void) vsock_packet_check(&h, GUEST_CID, size - VSOCK_HDR_SIZE);
}

static void drain_rx(void) {
        uint8_t buf[VSOCK_HDR_SIZE + 256];
        /* An oddly split rx buffer, like any guest may post. */
        struct iovec iov[2] = { { buf, 7 }, { buf + 7, sizeof(buf) - 7 } };

        for (int i = 0; i < 4096 && vsock_mux_has_rx(mux); i++) {
                uint32_t len = 0;
                if (vsock_mux_fill_rx(mux, iov, 2, &len) == 0)
                        break;
                FUZZ_ASSERT(len >= VSOCK_HDR_SIZE && len <= sizeof(buf));
                VsockHdr h;
                vsock_hdr_parse(buf, &h);
                FUZZ_ASSERT(h.src_cid == VSOCK_HOST_CID && h.dst_cid == GUEST_CID);
                FUZZ_ASSERT(VSOCK_HDR_SIZE + h.len == len);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t *mem;
        struct iovec payload[128];
        GuestMemory m = {};
        Vring vr = {};

        if (!mux)
                setup();
        if (!mem) {
                mem = aligned_alloc(4096, GUEST_SIZE);
                FUZZ_ASSERT(mem);
        }
        if (size < 2)
                return 0;
        check_roundtrip(data + 2, size - 2);

        memset(mem, 0, GUEST_SIZE);
        memcpy(mem, data + 2, MIN(size - 2, (size_t) GUEST_SIZE));
        FUZZ_ASSERT(guest_memory_add_mapped(&m, GPA, GUEST_SIZE, UVA, mem) >= 0);

        FUZZ_ASSERT(vring_set_num(&vr, 1u << (data[0] & 7)) >= 0);
        vring_set_addr(&vr, UVA, UVA + 0x800, UVA + 0xa00);
        FUZZ_ASSERT(vring_map(&vr, &m) >= 0);
        vring_set_base(&vr, data[1]);
        vr.started = vr.enabled = true;

        for (unsigned i = 0; i < 2 * vr.num + 2; i++) {
                VringChain c;
                VsockHdr h;
                int r = vring_pop(&vr, &m, &c);

                if (r < 0) {
                        FUZZ_ASSERT(vr.broken);
                        FUZZ_ASSERT(vring_pop(&vr, &m, &c) == -EBADMSG);
                        break;
                }
                if (r == 0)
                        break;
                FUZZ_ASSERT(c.n_readable + c.n_writable <= vr.num);
                for (size_t k = 0; k < c.n_readable + c.n_writable; k++) {
                        const uint8_t *b = c.iov[k].iov_base;
                        FUZZ_ASSERT(b >= mem && b <= mem + GUEST_SIZE);
                        FUZZ_ASSERT(c.iov[k].iov_len <= (size_t) (mem + GUEST_SIZE - b));
                }

                VsockVerdict v = vsock_packet_parse_iov(c.iov, c.n_readable, GUEST_CID, &h);
                if (v == VSOCK_VERDICT_OK) {
                        FUZZ_ASSERT(h.len <= VSOCK_MAX_PAYLOAD && h.len <= c.readable_len - VSOCK_HDR_SIZE);
                        size_t n = iov_slice(c.iov, c.n_readable, VSOCK_HDR_SIZE, h.len, payload, ELEMENTSOF(payload));
                        /* More descriptors than the slice holds would lose bytes: only feed complete payloads. */
                        if (iov_length(payload, n) == h.len)
                                vsock_mux_guest_packet(mux, &h, payload, n);
                } else if (v != VSOCK_VERDICT_SHORT && vsock_verdict_wants_rst(v))
                        vsock_mux_guest_reject(mux, &h);
                vring_push(&vr, c.head, 0);
                drain_rx();
        }

        vsock_mux_reset(mux);
        /* Host sides of this input's connections: accept and drop, so the backlog never fills. */
        for (;;) {
                int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                        break;
                close(fd);
        }
        vring_done(&vr);
        guest_memory_clear(&m);
        return 0;
}
