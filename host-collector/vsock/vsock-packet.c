/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "vsock-packet.h"

#include <assert.h>
#include <endian.h>
#include <linux/virtio_vsock.h>
#include <string.h>

#include "iov-util.h"
#include "macro.h"

static_assert(sizeof(struct virtio_vsock_hdr) == VSOCK_HDR_SIZE, "virtio_vsock_hdr is 44 bytes");

void vsock_hdr_parse(const uint8_t buf[VSOCK_HDR_SIZE], VsockHdr *ret) {
        struct virtio_vsock_hdr w;

        memcpy(&w, buf, sizeof(w));
        *ret = (VsockHdr) {
                .src_cid = le64toh(w.src_cid),
                .dst_cid = le64toh(w.dst_cid),
                .src_port = le32toh(w.src_port),
                .dst_port = le32toh(w.dst_port),
                .len = le32toh(w.len),
                .type = le16toh(w.type),
                .op = le16toh(w.op),
                .flags = le32toh(w.flags),
                .buf_alloc = le32toh(w.buf_alloc),
                .fwd_cnt = le32toh(w.fwd_cnt),
        };
}

void vsock_hdr_build(const VsockHdr *h, uint8_t buf[VSOCK_HDR_SIZE]) {
        struct virtio_vsock_hdr w = {
                .src_cid = htole64(h->src_cid),
                .dst_cid = htole64(h->dst_cid),
                .src_port = htole32(h->src_port),
                .dst_port = htole32(h->dst_port),
                .len = htole32(h->len),
                .type = htole16(h->type),
                .op = htole16(h->op),
                .flags = htole32(h->flags),
                .buf_alloc = htole32(h->buf_alloc),
                .fwd_cnt = htole32(h->fwd_cnt),
        };
        memcpy(buf, &w, sizeof(w));
}

VsockVerdict vsock_packet_check(const VsockHdr *h, uint64_t guest_cid, uint64_t payload_avail) {
        /* Addresses first: a packet with a forged source must not even earn a RST. */
        if (h->src_cid != guest_cid)
                return VSOCK_VERDICT_BAD_SRC_CID;
        if (h->dst_cid != VSOCK_HOST_CID)
                return VSOCK_VERDICT_BAD_DST_CID;
        if (h->len > VSOCK_MAX_PAYLOAD)
                return VSOCK_VERDICT_LEN_TOO_LARGE;
        if (h->len > payload_avail)
                return VSOCK_VERDICT_LEN_BEYOND_CHAIN;
        if (h->type != VIRTIO_VSOCK_TYPE_STREAM)
                return VSOCK_VERDICT_BAD_TYPE;
        if (h->op < VIRTIO_VSOCK_OP_REQUEST || h->op > VIRTIO_VSOCK_OP_CREDIT_REQUEST)
                return VSOCK_VERDICT_UNKNOWN_OP;
        return VSOCK_VERDICT_OK;
}

VsockVerdict vsock_packet_parse_iov(const struct iovec *iov, size_t n, uint64_t guest_cid, VsockHdr *ret) {
        uint8_t buf[VSOCK_HDR_SIZE];
        size_t total;

        if (iov_to_buf(iov, n, 0, buf, sizeof(buf)) < sizeof(buf))
                return VSOCK_VERDICT_SHORT;
        total = iov_length(iov, n);
        vsock_hdr_parse(buf, ret);
        return vsock_packet_check(ret, guest_cid, total - VSOCK_HDR_SIZE);
}

bool vsock_verdict_wants_rst(VsockVerdict v) {
        switch (v) {
        case VSOCK_VERDICT_LEN_TOO_LARGE:
        case VSOCK_VERDICT_LEN_BEYOND_CHAIN:
        case VSOCK_VERDICT_BAD_TYPE:
        case VSOCK_VERDICT_UNKNOWN_OP:
                return true;
        default:
                return false;
        }
}

const char *vsock_verdict_to_string(VsockVerdict v) {
        static const char *const table[_VSOCK_VERDICT_MAX] = {
                [VSOCK_VERDICT_OK] = "ok",
                [VSOCK_VERDICT_SHORT] = "short_header",
                [VSOCK_VERDICT_BAD_SRC_CID] = "bad_src_cid",
                [VSOCK_VERDICT_BAD_DST_CID] = "bad_dst_cid",
                [VSOCK_VERDICT_LEN_TOO_LARGE] = "len_too_large",
                [VSOCK_VERDICT_LEN_BEYOND_CHAIN] = "len_beyond_chain",
                [VSOCK_VERDICT_BAD_TYPE] = "bad_type",
                [VSOCK_VERDICT_UNKNOWN_OP] = "unknown_op",
        };
        return (unsigned) v < _VSOCK_VERDICT_MAX ? table[v] : "invalid";
}

const char *vsock_op_to_string(uint16_t op) {
        static const char *const table[] = {
                [VIRTIO_VSOCK_OP_INVALID] = "INVALID",
                [VIRTIO_VSOCK_OP_REQUEST] = "REQUEST",
                [VIRTIO_VSOCK_OP_RESPONSE] = "RESPONSE",
                [VIRTIO_VSOCK_OP_RST] = "RST",
                [VIRTIO_VSOCK_OP_SHUTDOWN] = "SHUTDOWN",
                [VIRTIO_VSOCK_OP_RW] = "RW",
                [VIRTIO_VSOCK_OP_CREDIT_UPDATE] = "CREDIT_UPDATE",
                [VIRTIO_VSOCK_OP_CREDIT_REQUEST] = "CREDIT_REQUEST",
        };
        return op < ELEMENTSOF(table) ? table[op] : "UNKNOWN";
}

VsockHdr vsock_hdr_reply(const VsockHdr *to, uint16_t op) {
        return (VsockHdr) {
                .src_cid = VSOCK_HOST_CID,
                .dst_cid = to->src_cid,
                .src_port = to->dst_port,
                .dst_port = to->src_port,
                .type = VIRTIO_VSOCK_TYPE_STREAM,
                .op = op,
        };
}
