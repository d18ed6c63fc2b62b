/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* virtio-vsock packet headers (struct virtio_vsock_hdr, 44 bytes, packed little-endian): parsing, building and
 * the checks every guest→host header goes through. Pure: no I/O, no allocation, fuzzable. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HDR_SIZE 44u
/* VMADDR_CID_HOST: the only destination a guest may address through this device. */
#define VSOCK_HOST_CID 2u
/* Linux never sends more in one packet (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE); we never accept more. */
#define VSOCK_MAX_PAYLOAD (64u * 1024u)

/* Host-endian copy of a header. */
typedef struct VsockHdr {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port;
        uint32_t len;
        uint16_t type, op;
        uint32_t flags;
        uint32_t buf_alloc, fwd_cnt;
} VsockHdr;

/* What to do with a packet from the guest. */
typedef enum VsockVerdict {
        VSOCK_VERDICT_OK,
        VSOCK_VERDICT_SHORT,            /* fewer readable bytes than a header: drop */
        VSOCK_VERDICT_BAD_SRC_CID,      /* not the guest's own CID: drop (never answer a forged address) */
        VSOCK_VERDICT_BAD_DST_CID,      /* not the host: drop */
        VSOCK_VERDICT_LEN_TOO_LARGE,    /* len > 64 KiB: drop, reset the connection */
        VSOCK_VERDICT_LEN_BEYOND_CHAIN, /* len > the bytes the chain holds: drop, reset */
        VSOCK_VERDICT_BAD_TYPE,         /* not STREAM: reset */
        VSOCK_VERDICT_UNKNOWN_OP,       /* reset */
        _VSOCK_VERDICT_MAX,
} VsockVerdict;

void vsock_hdr_parse(const uint8_t buf[VSOCK_HDR_SIZE], VsockHdr *ret);
void vsock_hdr_build(const VsockHdr *h, uint8_t buf[VSOCK_HDR_SIZE]);

/* Reads the header at the start of the readable buffers iov and checks it against guest_cid and the bytes
 * available after it. *ret is filled whenever the verdict is not SHORT. */
VsockVerdict vsock_packet_parse_iov(const struct iovec *iov, size_t n, uint64_t guest_cid, VsockHdr *ret);

/* The checks alone; payload_avail is what the chain holds after the header. */
VsockVerdict vsock_packet_check(const VsockHdr *h, uint64_t guest_cid, uint64_t payload_avail);

/* Whether the guest gets a RST for a packet with this verdict (dropping alone leaves it waiting). */
bool vsock_verdict_wants_rst(VsockVerdict v);

const char *vsock_verdict_to_string(VsockVerdict v);
const char *vsock_op_to_string(uint16_t op);

/* A header from the host (CID 2) to the guest, answering a packet that went the other way: ports swapped. */
VsockHdr vsock_hdr_reply(const VsockHdr *to, uint16_t op);
