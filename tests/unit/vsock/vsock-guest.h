/* SPDX-License-Identifier: MIT */
#pragma once

/* A fake vhost-user frontend (what QEMU does) and a fake Linux guest driver, for the tether-vsock tests: guest
 * memory is a memfd shared with the backend; the split rings of the three queues are laid out in it; rx buffers
 * are posted as two descriptors each (the header split across them, to prove any split works) and tx packets go
 * out as header + payload descriptors like Linux's driver. The backend runs either in-process on an sd-event loop
 * (pump = sd_event_run) or as the real binary (pump = a short sleep). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "vhost-user.h"
#include "vsock-packet.h"

#define GUEST_CID 42u
#define GUEST_QSZ 64u
#define GUEST_GPA_BASE UINT64_C(0x100000)
#define GUEST_UVA_BASE UINT64_C(0x7f1200000000)
#define GUEST_MEM_SIZE (4u * 1024u * 1024u)
#define GUEST_RX_BUF 4096u
#define GUEST_RX_SPLIT 30u /* bytes of the first descriptor of an rx buffer: the header spans both */
#define GUEST_TX_SLOTS 16u
#define GUEST_TX_SLOT_SIZE (68u * 1024u)

/* Offsets in guest memory. */
#define GUEST_RING_OFF(q) ((size_t) (q) *0x2000u)
#define GUEST_DESC_OFF(q) GUEST_RING_OFF(q)
#define GUEST_AVAIL_OFF(q) (GUEST_RING_OFF(q) + 0x400u)
#define GUEST_USED_OFF(q) (GUEST_RING_OFF(q) + 0x800u)
#define GUEST_RX_DATA_OFF 0x8000u
#define GUEST_TX_DATA_OFF (GUEST_RX_DATA_OFF + (GUEST_QSZ / 2) * GUEST_RX_BUF)

typedef struct Guest {
        int vu_fd;
        int memfd;
        uint8_t *mem;
        int kick[3], call[3];
        uint16_t avail_idx[3];
        uint16_t used_seen[3];
        unsigned tx_slot;
        unsigned rx_fresh; /* rx buffers posted for the first time */
        bool no_repost;    /* guest_recv() does not give the buffer back */
        uint64_t cid;

        /* In-process backend: run its loop while waiting. NULL: wait by sleeping (real binary). */
        sd_event *event;
} Guest;

typedef struct GuestPacket {
        VsockHdr h;
        uint8_t data[GUEST_RX_BUF];
} GuestPacket;

/* Connects the frontend fd (one end of a connected socket) and creates the guest memory. */
int guest_init(Guest *g, int vu_fd, sd_event *event);
void guest_done(Guest *g);

/* Lets the backend run for a moment. */
void guest_pump(Guest *g);

/* One vhost-user request; with reply != NULL waits for the answer. */
int guest_vu(
        Guest *g,
        uint32_t request,
        uint32_t flags,
        const void *payload,
        uint32_t size,
        const int *fds,
        size_t n_fds,
        VhostUserMsg *reply);

/* QEMU's sequence: features, protocol features, queue number, owner, config (returns the CID read), memory table,
 * the three rings (num, base, addr, kick, call, enable). */
int guest_negotiate(Guest *g, uint64_t *ret_cid);

/* Posts n rx buffers (each GUEST_RX_BUF bytes in two descriptors) and kicks rx. */
void guest_post_rx(Guest *g, unsigned n);

/* Sends a packet on tx (header and payload in two descriptors) and kicks. */
void guest_send(Guest *g, const VsockHdr *h, const void *payload, uint32_t len);

/* Same, with h->len sent as it is (hostile tests: a len that does not match the payload). */
void guest_send_raw(Guest *g, const VsockHdr *h, const void *payload, uint32_t payload_len);

/* A header from the guest to the host. */
VsockHdr guest_hdr(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t buf_alloc, uint32_t fwd_cnt);

/* The next packet the backend put into an rx buffer (the buffer is posted again). Pumps up to timeout_ms;
 * 1 when one came, 0 otherwise. */
int guest_recv(Guest *g, GuestPacket *ret, int timeout_ms);

/* Whether every tx packet sent so far was returned used. */
bool guest_tx_done(Guest *g);

/* Raw ring access for hostile tests. */
struct vring_desc *guest_desc(Guest *g, unsigned q);
void guest_avail_push(Guest *g, unsigned q, uint16_t head);
void guest_avail_set_idx(Guest *g, unsigned q, uint16_t idx);
void guest_kick(Guest *g, unsigned q);
uint64_t guest_gpa(size_t offset);
uint16_t guest_used_idx(Guest *g, unsigned q);

/* Unix helpers. */
int unix_connect_path(const char *path);
/* Accepts on a listening socket, pumping the backend up to timeout_ms. */
int unix_accept_wait(Guest *g, int listen_fd, int timeout_ms);
/* Reads exactly n bytes (pumping), -errno / -ETIMEDOUT; 0 bytes read at EOF returns the count so far. */
ssize_t unix_read_wait(Guest *g, int fd, void *buf, size_t n, int timeout_ms);
