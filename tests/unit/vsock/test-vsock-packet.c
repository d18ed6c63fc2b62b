/* SPDX-License-Identifier: MIT */
/* virtio-vsock header parsing, building and the checks of guest->host packets (vsock-packet.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <linux/virtio_vsock.h>

#include "vsock-packet.h"

static const VsockHdr sample = {
        .src_cid = 42,
        .dst_cid = 2,
        .src_port = 0x01020304,
        .dst_port = 4817,
        .len = 5,
        .type = VIRTIO_VSOCK_TYPE_STREAM,
        .op = VIRTIO_VSOCK_OP_RW,
        .flags = 0,
        .buf_alloc = 262144,
        .fwd_cnt = 77,
};

static void assert_hdr_equal(const VsockHdr *a, const VsockHdr *b) {
        /* Field by field: the struct has padding. */
        assert_int_equal(a->src_cid, b->src_cid);
        assert_int_equal(a->dst_cid, b->dst_cid);
        assert_int_equal(a->src_port, b->src_port);
        assert_int_equal(a->dst_port, b->dst_port);
        assert_int_equal(a->len, b->len);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->op, b->op);
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->buf_alloc, b->buf_alloc);
        assert_int_equal(a->fwd_cnt, b->fwd_cnt);
}

static void test_layout(void **state) {
        uint8_t buf[VSOCK_HDR_SIZE];
        VsockHdr h;

        vsock_hdr_build(&sample, buf);
        /* Packed little-endian, at the offsets of struct virtio_vsock_hdr. */
        assert_int_equal(buf[0], 42);
        assert_int_equal(buf[8], 2);
        assert_int_equal(buf[16], 0x04);
        assert_int_equal(buf[19], 0x01);
        assert_int_equal(buf[20], 4817 & 0xff);
        assert_int_equal(buf[24], 5);
        assert_int_equal(buf[28], VIRTIO_VSOCK_TYPE_STREAM);
        assert_int_equal(buf[30], VIRTIO_VSOCK_OP_RW);
        assert_int_equal(buf[36] | buf[37] << 8 | buf[38] << 16, 262144);
        assert_int_equal(buf[40], 77);

        vsock_hdr_parse(buf, &h);
        assert_hdr_equal(&h, &sample);
}

static void test_check(void **state) {
        VsockHdr h = sample;

        assert_int_equal(vsock_packet_check(&h, 42, 5), VSOCK_VERDICT_OK);
        assert_int_equal(vsock_packet_check(&h, 43, 5), VSOCK_VERDICT_BAD_SRC_CID);
        h.dst_cid = 3;
        assert_int_equal(vsock_packet_check(&h, 42, 5), VSOCK_VERDICT_BAD_DST_CID);
        h.dst_cid = 2;
        /* A forged source is dropped before anything else is looked at. */
        h.src_cid = 2;
        h.len = UINT32_MAX;
        assert_int_equal(vsock_packet_check(&h, 42, 5), VSOCK_VERDICT_BAD_SRC_CID);
        h.src_cid = 42;
        assert_int_equal(vsock_packet_check(&h, 42, UINT64_MAX), VSOCK_VERDICT_LEN_TOO_LARGE);
        h.len = VSOCK_MAX_PAYLOAD + 1;
        assert_int_equal(vsock_packet_check(&h, 42, UINT64_MAX), VSOCK_VERDICT_LEN_TOO_LARGE);
        h.len = VSOCK_MAX_PAYLOAD;
        assert_int_equal(vsock_packet_check(&h, 42, VSOCK_MAX_PAYLOAD), VSOCK_VERDICT_OK);
        assert_int_equal(vsock_packet_check(&h, 42, VSOCK_MAX_PAYLOAD - 1), VSOCK_VERDICT_LEN_BEYOND_CHAIN);
        h.len = 0;
        h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
        assert_int_equal(vsock_packet_check(&h, 42, 0), VSOCK_VERDICT_BAD_TYPE);
        h.type = VIRTIO_VSOCK_TYPE_STREAM;
        h.op = 0;
        assert_int_equal(vsock_packet_check(&h, 42, 0), VSOCK_VERDICT_UNKNOWN_OP);
        h.op = 8;
        assert_int_equal(vsock_packet_check(&h, 42, 0), VSOCK_VERDICT_UNKNOWN_OP);
        for (uint16_t op = VIRTIO_VSOCK_OP_REQUEST; op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST; op++) {
                h.op = op;
                assert_int_equal(vsock_packet_check(&h, 42, 0), VSOCK_VERDICT_OK);
        }
}

static void test_parse_iov_split(void **state) {
        uint8_t buf[VSOCK_HDR_SIZE + 5];
        struct iovec iov[4];
        VsockHdr h;

        vsock_hdr_build(&sample, buf);
        memcpy(buf + VSOCK_HDR_SIZE, "hello", 5);
        /* Header across three buffers (one empty), payload in the last. */
        iov[0] = (struct iovec) { buf, 3 };
        iov[1] = (struct iovec) { buf + 3, 0 };
        iov[2] = (struct iovec) { buf + 3, 30 };
        iov[3] = (struct iovec) { buf + 33, sizeof(buf) - 33 };
        assert_int_equal(vsock_packet_parse_iov(iov, 4, 42, &h), VSOCK_VERDICT_OK);
        assert_hdr_equal(&h, &sample);

        /* One payload byte short of len. */
        iov[3].iov_len--;
        assert_int_equal(vsock_packet_parse_iov(iov, 4, 42, &h), VSOCK_VERDICT_LEN_BEYOND_CHAIN);
        /* Not even a header. */
        iov[0] = (struct iovec) { buf, VSOCK_HDR_SIZE - 1 };
        assert_int_equal(vsock_packet_parse_iov(iov, 1, 42, &h), VSOCK_VERDICT_SHORT);
        assert_int_equal(vsock_packet_parse_iov(NULL, 0, 42, &h), VSOCK_VERDICT_SHORT);
}

static void test_verdicts_and_names(void **state) {
        assert_false(vsock_verdict_wants_rst(VSOCK_VERDICT_OK));
        assert_false(vsock_verdict_wants_rst(VSOCK_VERDICT_BAD_SRC_CID));
        assert_false(vsock_verdict_wants_rst(VSOCK_VERDICT_BAD_DST_CID));
        assert_false(vsock_verdict_wants_rst(VSOCK_VERDICT_SHORT));
        assert_true(vsock_verdict_wants_rst(VSOCK_VERDICT_LEN_TOO_LARGE));
        assert_true(vsock_verdict_wants_rst(VSOCK_VERDICT_UNKNOWN_OP));
        assert_true(vsock_verdict_wants_rst(VSOCK_VERDICT_BAD_TYPE));
        for (int v = 0; v < _VSOCK_VERDICT_MAX; v++)
                assert_non_null(vsock_verdict_to_string(v));
        assert_string_equal(vsock_verdict_to_string(_VSOCK_VERDICT_MAX), "invalid");
        assert_string_equal(vsock_op_to_string(VIRTIO_VSOCK_OP_CREDIT_REQUEST), "CREDIT_REQUEST");
        assert_string_equal(vsock_op_to_string(999), "UNKNOWN");

        VsockHdr r = vsock_hdr_reply(&sample, VIRTIO_VSOCK_OP_RST);
        assert_int_equal(r.src_cid, 2);
        assert_int_equal(r.dst_cid, 42);
        assert_int_equal(r.src_port, sample.dst_port);
        assert_int_equal(r.dst_port, sample.src_port);
        assert_int_equal(r.op, VIRTIO_VSOCK_OP_RST);
        assert_int_equal(r.len, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_parse_iov_split),
                cmocka_unit_test(test_verdicts_and_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
