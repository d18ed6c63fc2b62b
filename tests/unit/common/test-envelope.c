/* SPDX-License-Identifier: MIT */
/* Envelope encoding, the frame path end to end, and every refusal of envelope_validate(). */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "frame.h"
#include "macro.h"
#include "sample-envelopes.h"

static const EnvelopeLimits default_limits = ENVELOPE_LIMITS_DEFAULT;

static ProtocolError validate(const Tether__Envelope *e) {
        return envelope_validate(e, &default_limits);
}

#define assert_protocol_error(e, expected) \
        assert_string_equal(protocol_error_to_string(validate(e)), protocol_error_to_string(expected))

/* A tiny protobuf writer, so tests can send what protobuf-c itself would never produce. */
typedef struct Raw {
        uint8_t buf[256];
        size_t len;
} Raw;

static void raw_varint(Raw *r, uint64_t v) {
        do {
                assert_true(r->len < sizeof(r->buf));
                r->buf[r->len++] = (uint8_t) ((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
                v >>= 7;
        } while (v > 0);
}

static void raw_bytes(Raw *r, uint32_t field, const void *data, size_t n) {
        raw_varint(r, (uint64_t) field << 3 | 2);
        raw_varint(r, n);
        assert_true(r->len + n <= sizeof(r->buf));
        memcpy(r->buf + r->len, data, n);
        r->len += n;
}

static void raw_uint(Raw *r, uint32_t field, uint64_t v) {
        raw_varint(r, (uint64_t) field << 3);
        raw_varint(r, v);
}

/* Packs, frames, reads back through a FrameReader fed in uneven chunks, and decodes. */
static Tether__Envelope *through_the_wire(const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t frame_len, payload_len;
        const uint8_t *payload;
        Tether__Envelope *decoded = NULL;
        FrameReader r;

        assert_int_equal(envelope_pack_frame(e, &frame, &frame_len), 0);
        assert_int_equal(frame_header_get(frame), frame_len - TETHER_FRAME_HEADER_SIZE);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        for (size_t off = 0, chunk = 1; off < frame_len; off += chunk, chunk = chunk * 3 + 1) {
                chunk = MIN(chunk, frame_len - off);
                /* A frame larger than the reader's initial buffer is taken in two steps: it grows when full. */
                size_t taken = frame_reader_feed(&r, frame + off, chunk);
                if (taken < chunk)
                        taken += frame_reader_feed(&r, frame + off + taken, chunk - taken);
                assert_int_equal(taken, chunk);
                if (off + chunk < frame_len)
                        assert_int_equal(frame_reader_next(&r, &payload, &payload_len), 0);
        }
        assert_int_equal(frame_reader_next(&r, &payload, &payload_len), 1);
        assert_int_equal(payload_len, frame_len - TETHER_FRAME_HEADER_SIZE);
        assert_int_equal(envelope_unpack(payload, payload_len, &decoded), 0);
        assert_non_null(decoded);

        /* Decoding lost nothing: the decoded message packs to the very same bytes. */
        size_t repacked_len = tether__envelope__get_packed_size(decoded);
        assert_int_equal(repacked_len, payload_len);
        _cleanup_free_ uint8_t *repacked = malloc(repacked_len);
        assert_non_null(repacked);
        tether__envelope__pack(decoded, repacked);
        assert_memory_equal(repacked, payload, payload_len);

        frame_reader_done(&r);
        return decoded;
}

static void test_round_trip_every_type(void **state) {
        for (size_t i = 0; i < SAMPLE_MSG_CASES_COUNT; i++) {
                SampleEnvelope s;
                Tether__Envelope *d;

                assert_int_equal(sample_envelope_init(&s, sample_msg_cases[i], 41), 0);
                assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
                d = through_the_wire(&s.envelope);
                assert_int_equal(d->msg_case, sample_msg_cases[i]);
                assert_int_equal(d->seq, envelope_is_record(d) ? 41 : 0);
                assert_protocol_error(d, PROTOCOL_ERROR_NONE);

                switch (d->msg_case) {
                case TETHER__ENVELOPE__MSG_HELLO:
                        assert_string_equal(d->hello->boot_id, s.hello.boot_id);
                        assert_int_equal(d->hello->mode, TETHER__AGENT_MODE__AGENT_MODE_INIT);
                        assert_int_equal(d->hello->resume_token.len, sizeof(s.token));
                        assert_memory_equal(d->hello->resume_token.data, s.token, sizeof(s.token));
                        assert_int_equal(d->hello->last_seq, 17);
                        break;
                case TETHER__ENVELOPE__MSG_WELCOME:
                        assert_non_null(d->welcome->limits);
                        assert_int_equal(d->welcome->limits->max_frame_bytes, 65536);
                        assert_string_equal(d->welcome->traceparent, s.welcome.traceparent);
                        break;
                case TETHER__ENVELOPE__MSG_CLOCK_PROBE:
                        assert_int_equal(d->clock_probe->probe_id, 3);
                        break;
                case TETHER__ENVELOPE__MSG_CLOCK_SAMPLE:
                        assert_int_equal(d->clock_sample->boottime_ns, s.clock_sample.boottime_ns);
                        break;
                case TETHER__ENVELOPE__MSG_ACK:
                        assert_int_equal(d->ack->seq, 12);
                        break;
                case TETHER__ENVELOPE__MSG_MILESTONE:
                        assert_string_equal(d->milestone->name, "oom.kill");
                        assert_int_equal(d->milestone->n_attributes, 2);
                        assert_string_equal(d->milestone->attributes[1]->value, s.attributes[1].value);
                        break;
                case TETHER__ENVELOPE__MSG_PHASE:
                        assert_int_equal(d->phase->end_boottime_ns, s.phase.end_boottime_ns);
                        assert_int_equal(d->phase->status, TETHER__PHASE_STATUS__PHASE_STATUS_OK);
                        break;
                case TETHER__ENVELOPE__MSG_LOG:
                        assert_int_equal(d->log->stream, TETHER__LOG_STREAM__LOG_STREAM_STDOUT);
                        assert_int_equal(d->log->data.len, s.log.data.len);
                        assert_memory_equal(d->log->data.data, s.log.data.data, s.log.data.len);
                        break;
                case TETHER__ENVELOPE__MSG_LOG_DROPPED:
                        assert_int_equal(d->log_dropped->last_seq, 22);
                        break;
                case TETHER__ENVELOPE__MSG_READY:
                        assert_string_equal(d->ready->source, "probe:tcp");
                        break;
                case TETHER__ENVELOPE__MSG_EXIT:
                        assert_int_equal(d->exit->code, 137);
                        assert_true(d->exit->oom_killed);
                        break;
                case TETHER__ENVELOPE__MSG_HEARTBEAT:
                        assert_int_equal(d->heartbeat->boottime_ns, s.heartbeat.boottime_ns);
                        break;
                case TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE:
                        assert_int_equal(d->resource_sample->n_cpu_ns, 8);
                        assert_memory_equal(d->resource_sample->cpu_ns, s.cpu_ns, sizeof(s.cpu_ns));
                        assert_int_equal(d->resource_sample->n_psi_io, 4);
                        assert_memory_equal(d->resource_sample->psi_io, s.psi[2], sizeof(s.psi[2]));
                        assert_int_equal(d->resource_sample->cgroup_memory[3], 1);
                        break;
                default:
                        fail_msg("unexpected message %d", d->msg_case);
                }
                envelope_free(d);
        }
        envelope_free(NULL);
}

static void test_pack_into(void **state) {
        SampleEnvelope s;
        _cleanup_free_ uint8_t *frame = NULL;
        uint8_t out[512];
        size_t frame_len;
        int n;

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_MILESTONE, 5), 0);
        assert_int_equal(envelope_pack_frame(&s.envelope, &frame, &frame_len), 0);
        n = envelope_pack_into(&s.envelope, out, sizeof(out));
        assert_int_equal(n, frame_len - TETHER_FRAME_HEADER_SIZE);
        assert_memory_equal(out, frame + TETHER_FRAME_HEADER_SIZE, (size_t) n);
        assert_int_equal(envelope_pack_into(&s.envelope, out, (size_t) n), n);
        assert_int_equal(envelope_pack_into(&s.envelope, out, (size_t) n - 1), -EMSGSIZE);
}

static void test_is_record(void **state) {
        for (size_t i = 0; i < SAMPLE_MSG_CASES_COUNT; i++) {
                SampleEnvelope s;
                Tether__Envelope__MsgCase c = sample_msg_cases[i];
                int expected = c == TETHER__ENVELOPE__MSG_MILESTONE || c == TETHER__ENVELOPE__MSG_PHASE ||
                        c == TETHER__ENVELOPE__MSG_LOG || c == TETHER__ENVELOPE__MSG_LOG_DROPPED ||
                        c == TETHER__ENVELOPE__MSG_READY || c == TETHER__ENVELOPE__MSG_EXIT;

                assert_int_equal(sample_envelope_init(&s, c, 1), 0);
                assert_int_equal(envelope_is_record(&s.envelope), expected);
        }
}

/* Records need seq >= 1; everything else must carry seq 0. */
static void test_seq_rules(void **state) {
        for (size_t i = 0; i < SAMPLE_MSG_CASES_COUNT; i++) {
                SampleEnvelope s;

                assert_int_equal(sample_envelope_init(&s, sample_msg_cases[i], 1), 0);
                if (envelope_is_record(&s.envelope)) {
                        s.envelope.seq = 0;
                        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_SEQ_MISSING);
                        s.envelope.seq = UINT64_MAX;
                        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
                } else {
                        s.envelope.seq = 1;
                        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
                }
        }
}

static void test_no_message(void **state) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;

        assert_protocol_error(&e, PROTOCOL_ERROR_UNKNOWN_MESSAGE);
        e.seq = 3;
        assert_protocol_error(&e, PROTOCOL_ERROR_UNKNOWN_MESSAGE);

        /* Nothing set packs to nothing, and a frame of 0 bytes is invalid: refused at the sender. */
        uint8_t *frame = NULL;
        size_t len = 0;
        e.seq = 0;
        assert_int_equal(envelope_pack_frame(&e, &frame, &len), -EINVAL);
        assert_null(frame);
}

/* A message from a newer protocol (a oneof field this build does not know) decodes, but is refused. */
static void test_unknown_message_from_raw_bytes(void **state) {
        static const uint8_t inner[] = { 0x08, 0x01 };
        Tether__Envelope *e = NULL;
        Raw raw = {};

        raw_bytes(&raw, 30, inner, sizeof(inner));
        assert_int_equal(envelope_unpack(raw.buf, raw.len, &e), 0);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG__NOT_SET);
        assert_protocol_error(e, PROTOCOL_ERROR_UNKNOWN_MESSAGE);
        envelope_free(e);

        /* Same with a seq, as a record of that future type would have. */
        raw = (Raw) {};
        raw_uint(&raw, 1, 7);
        raw_bytes(&raw, 99, inner, sizeof(inner));
        assert_int_equal(envelope_unpack(raw.buf, raw.len, &e), 0);
        assert_protocol_error(e, PROTOCOL_ERROR_UNKNOWN_MESSAGE);
        envelope_free(e);
}

static void test_decode_failed(void **state) {
        static const uint8_t truncated_varint[] = { 0x08, 0xff };
        static const uint8_t length_past_end[] = { 0x7a, 0x10, 0x0a };
        static const uint8_t bad_wire_type[] = { 0x0f };
        static const uint8_t field_zero[] = { 0x00, 0x01 };
        /* Field 0 with its tag in two bytes, which protobuf-c 1.4 alone would accept: at the top, inside the
         * message, inside a repeated attribute. */
        static const uint8_t field_zero_long[] = { 0x82, 0x00, 0x00 };
        static const uint8_t field_zero_nested[] = { 0x08, 0x01, 0x7a, 0x03, 0x82, 0x00, 0x00 };
        static const uint8_t field_zero_attribute[] = { 0x08, 0x01, 0x7a, 0x08, 0x0a, 0x01,
                                                        'm',  0x1a, 0x03, 0x82, 0x00, 0x00 };
        static const uint8_t field_one_long[] = { 0x08, 0x01, 0x7a, 0x06, 0x0a, 0x01, 'm', 0x8a, 0x00, 0x00 };
        Tether__Envelope sentinel, *e = &sentinel; /* must stay untouched */

        assert_int_equal(envelope_unpack(truncated_varint, sizeof(truncated_varint), &e), -EBADMSG);
        assert_int_equal(envelope_unpack(length_past_end, sizeof(length_past_end), &e), -EBADMSG);
        assert_int_equal(envelope_unpack(bad_wire_type, sizeof(bad_wire_type), &e), -EBADMSG);
        assert_int_equal(envelope_unpack(field_zero, sizeof(field_zero), &e), -EBADMSG);
        assert_int_equal(envelope_unpack(field_zero_long, sizeof(field_zero_long), &e), -EBADMSG);
        assert_int_equal(envelope_unpack(field_zero_nested, sizeof(field_zero_nested), &e), -EBADMSG);
        assert_int_equal(envelope_unpack(field_zero_attribute, sizeof(field_zero_attribute), &e), -EBADMSG);
        assert_ptr_equal(e, &sentinel);

        /* A two-byte tag of a real field is legal protobuf and still decodes. */
        assert_int_equal(envelope_unpack(field_one_long, sizeof(field_one_long), &e), 0);
        assert_string_equal(e->milestone->name, "");
        assert_protocol_error(e, PROTOCOL_ERROR_INVALID_FIELD);
        envelope_free(e);
}

static void test_invalid_utf8(void **state) {
        SampleEnvelope s;

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1), 0);
        s.milestone.name = "bad\xc0\x80";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_UTF8);
        s.milestone.name = "ok";
        s.attributes[1].value = "surrogate \xed\xa0\x80";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_UTF8);
        s.attributes[1].value = "ok";
        s.attributes[0].key = "\xff";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_UTF8);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0), 0);
        s.hello.hostname = "host\xf4\x90\x80\x80";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_UTF8);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_EXIT, 1), 0);
        s.exit.reason = "cut \xe2\x82";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_UTF8);

        /* protobuf-c does not check UTF-8 when decoding: validation must catch it in what arrives. */
        static const uint8_t bad_name[] = { 0x0a, 0x02, 0xc0, 0x80 };
        Raw raw = {};
        Tether__Envelope *e = NULL;
        raw_uint(&raw, 1, 9);
        raw_bytes(&raw, 15, bad_name, sizeof(bad_name));
        assert_int_equal(envelope_unpack(raw.buf, raw.len, &e), 0);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_MILESTONE);
        assert_protocol_error(e, PROTOCOL_ERROR_INVALID_UTF8);
        envelope_free(e);

        /* Log data is bytes, not a string: invalid UTF-8 there is shown replaced, never refused. */
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG, 1), 0);
        s.log.data = (ProtobufCBinaryData) { .len = 3, .data = (uint8_t *) "\xff\x00\xc0" };
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
}

static void test_too_many_attributes(void **state) {
        Tether__Attribute attrs[33], *ptrs[33];
        EnvelopeLimits one = ENVELOPE_LIMITS_DEFAULT;
        SampleEnvelope s;

        for (size_t i = 0; i < ELEMENTSOF(attrs); i++) {
                tether__attribute__init(&attrs[i]);
                attrs[i].key = "k";
                attrs[i].value = "v";
                ptrs[i] = &attrs[i];
        }

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1), 0);
        s.milestone.attributes = ptrs;
        s.milestone.n_attributes = 32;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.milestone.n_attributes = 33;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_PHASE, 1), 0);
        s.phase.attributes = ptrs;
        s.phase.n_attributes = 33;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES);

        /* The bound comes from the limits passed in, not a constant. */
        one.max_attributes = 1;
        s.phase.n_attributes = 1;
        assert_int_equal(envelope_validate(&s.envelope, &one), PROTOCOL_ERROR_NONE);
        s.phase.n_attributes = 2;
        assert_int_equal(envelope_validate(&s.envelope, &one), PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES);
}

static void test_empty_names(void **state) {
        SampleEnvelope s;

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1), 0);
        s.milestone.name = "";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        s.milestone.name = "ok";
        s.attributes[0].key = "";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        s.attributes[0].key = "k";
        s.attributes[0].value = ""; /* values may be empty */
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_PHASE, 1), 0);
        s.phase.name = "";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_READY, 1), 0);
        s.ready.source = "";
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
}

static void test_string_too_long(void **state) {
        _cleanup_free_ char *s1024 = malloc(1026);
        uint8_t token[65] = {};
        SampleEnvelope s;

        assert_non_null(s1024);
        memset(s1024, 'a', 1025);
        s1024[1024] = '\0';

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1), 0);
        s.milestone.name = s1024;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s1024[1024] = 'a';
        s1024[1025] = '\0';
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);
        s.milestone.name = "ok";
        s.attributes[1].value = s1024;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_READY, 1), 0);
        s.ready.detail = s1024;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0), 0);
        s.hello.agent_version = s1024;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0), 0);
        s.hello.resume_token = (ProtobufCBinaryData) { .len = 64, .data = token };
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.hello.resume_token.len = 65;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0), 0);
        s.hello.agent_instance = (ProtobufCBinaryData) { .len = 64, .data = token };
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.hello.agent_instance.len = 65;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_WELCOME, 0), 0);
        s.welcome.session_id = (ProtobufCBinaryData) { .len = 65, .data = token };
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_STRING_TOO_LONG);
}

static void test_log_bounds(void **state) {
        _cleanup_free_ uint8_t *data = calloc(1, 16385);
        SampleEnvelope s;

        assert_non_null(data);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG, 1), 0);
        s.log.data = (ProtobufCBinaryData) { .len = 16384, .data = data };
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.log.data.len = 16385;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_LOG_TOO_LARGE);

        s.log.data.len = 1;
        for (int stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT; stream <= TETHER__LOG_STREAM__LOG_STREAM_KMSG;
             stream++) {
                s.log.stream = (Tether__LogStream) stream;
                assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        }
        s.log.stream = TETHER__LOG_STREAM__LOG_STREAM_UNSPECIFIED;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        s.log.stream = (Tether__LogStream) (TETHER__LOG_STREAM__LOG_STREAM_KMSG + 1);
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        s.log.stream = (Tether__LogStream) -1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);

        /* Negative enum values arrive as 10-byte varints; they must decode to something refused. */
        Raw raw = {}, inner = {};
        Tether__Envelope *e = NULL;
        raw_uint(&inner, 1, UINT64_MAX);
        raw_uint(&raw, 1, 2);
        raw_bytes(&raw, 17, inner.buf, inner.len);
        assert_int_equal(envelope_unpack(raw.buf, raw.len, &e), 0);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_LOG);
        assert_protocol_error(e, PROTOCOL_ERROR_INVALID_FIELD);
        envelope_free(e);
}

static void test_field_rules(void **state) {
        SampleEnvelope s;

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_PHASE, 1), 0);
        s.phase.end_boottime_ns = s.phase.start_boottime_ns;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.phase.end_boottime_ns = s.phase.start_boottime_ns - 1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);

        /* LogDropped: seqs 20..22, 3 records of 4096 bytes, reported as seq 23. */
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG_DROPPED, 23), 0);
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.log_dropped.first_seq = s.log_dropped.last_seq + 1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        /* It must be checkable against what the host sees: no more records than the seqs it names (or than came
         * before it), seqs before its own, no more bytes than that many Logs carry. */
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG_DROPPED, 23), 0);
        s.log_dropped.records = 4;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG_DROPPED, 22), 0);
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG_DROPPED, 23), 0);
        s.log_dropped.bytes = 3 * 16384;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.log_dropped.bytes = 3 * 16384 + 1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        s.log_dropped.bytes = UINT64_MAX;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG_DROPPED, 23), 0);
        s.log_dropped.first_seq = s.log_dropped.last_seq = 0; /* range not said: fewer records than seqs before */
        s.log_dropped.records = 22;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.log_dropped.records = (UINT64_C(1) << 63) + 5;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);

        /* ResourceSample: arrays within ENVELOPE_SAMPLE_ARRAY_MAX, PSI averages within 100.00 %, available and
         * free memory within the total, free swap within the swap. */
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE, 0), 0);
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        uint64_t many[ENVELOPE_SAMPLE_ARRAY_MAX + 1] = {};
        s.resource_sample.cgroup_memory = many;
        s.resource_sample.n_cgroup_memory = ENVELOPE_SAMPLE_ARRAY_MAX;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.resource_sample.n_cgroup_memory = ENVELOPE_SAMPLE_ARRAY_MAX + 1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE, 0), 0);
        s.psi[2][1] = 10000;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.psi[2][1] = 10001;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        for (size_t i = 1; i < 5; i++) {
                assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE, 0), 0);
                s.memory_bytes[i] = s.memory_bytes[i == 4 ? 3 : 0] + 1;
                assert_protocol_error(&s.envelope, i == 3 ? PROTOCOL_ERROR_NONE : PROTOCOL_ERROR_INVALID_FIELD);
        }
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE, 0), 0);
        s.resource_sample.n_memory_bytes = 1; /* only the total: nothing to compare */
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);

        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_EXIT, 1), 0);
        s.exit.signal = 64;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.exit.signal = 65;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
        s.exit.signal = -1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);

        /* Hello's replay range: first_seq may be last_seq + 1 (buffer empty), never beyond. */
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0), 0);
        s.hello.first_seq = s.hello.last_seq + 1;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_NONE);
        s.hello.first_seq = s.hello.last_seq + 2;
        assert_protocol_error(&s.envelope, PROTOCOL_ERROR_INVALID_FIELD);
}

static void test_frame_too_large(void **state) {
        _cleanup_free_ uint8_t *data = calloc(1, TETHER_FRAME_MAX);
        uint8_t *frame = NULL;
        size_t len = 0;
        SampleEnvelope s;

        assert_non_null(data);
        assert_int_equal(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_LOG, 1), 0);
        s.log.data = (ProtobufCBinaryData) { .len = TETHER_FRAME_MAX, .data = data };
        assert_true(tether__envelope__get_packed_size(&s.envelope) > TETHER_FRAME_MAX);
        assert_int_equal(envelope_pack_frame(&s.envelope, &frame, &len), -EMSGSIZE);
        assert_null(frame);
        assert_int_equal(len, 0);

        /* The largest payload that fits is still sent, and read back. */
        s.log.data.len = TETHER_FRAME_MAX - 64;
        while (tether__envelope__get_packed_size(&s.envelope) < TETHER_FRAME_MAX)
                s.log.data.len++;
        assert_int_equal(tether__envelope__get_packed_size(&s.envelope), TETHER_FRAME_MAX);
        s.log.data.len++;
        assert_int_equal(envelope_pack_frame(&s.envelope, &frame, &len), -EMSGSIZE);
        s.log.data.len--;
        Tether__Envelope *d = through_the_wire(&s.envelope);
        assert_int_equal(d->log->data.len, s.log.data.len);
        /* ...and it is a frame the receiver then refuses as a log, since data exceeds 16 KiB. */
        assert_protocol_error(d, PROTOCOL_ERROR_LOG_TOO_LARGE);
        envelope_free(d);
}

/* The reasons are stable metric labels: they must match docs/protocol.md. */
static void test_error_names(void **state) {
        static const char *const documented[] = {
                "none",         "frame_too_large",     "frame_empty",        "decode_failed",    "unknown_message",
                "invalid_utf8", "too_many_attributes", "string_too_long",    "log_too_large",    "invalid_field",
                "seq_missing",  "seq_regression",      "unexpected_message", "version_mismatch",
        };

        assert_int_equal(ELEMENTSOF(documented), _PROTOCOL_ERROR_MAX);
        for (int i = 0; i < _PROTOCOL_ERROR_MAX; i++)
                assert_string_equal(protocol_error_to_string((ProtocolError) i), documented[i]);
        assert_string_equal(protocol_error_to_string(_PROTOCOL_ERROR_MAX), "unknown");
        assert_string_equal(protocol_error_to_string((ProtocolError) -1), "unknown");
}

static void test_sample_names(void **state) {
        assert_string_equal(sample_msg_case_name(TETHER__ENVELOPE__MSG_HELLO), "hello");
        assert_string_equal(sample_msg_case_name(TETHER__ENVELOPE__MSG_LOG_DROPPED), "log_dropped");
        assert_null(sample_msg_case_name(TETHER__ENVELOPE__MSG__NOT_SET));
        assert_null(sample_msg_case_name((Tether__Envelope__MsgCase) 1));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip_every_type),
                cmocka_unit_test(test_pack_into),
                cmocka_unit_test(test_is_record),
                cmocka_unit_test(test_seq_rules),
                cmocka_unit_test(test_no_message),
                cmocka_unit_test(test_unknown_message_from_raw_bytes),
                cmocka_unit_test(test_decode_failed),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_too_many_attributes),
                cmocka_unit_test(test_empty_names),
                cmocka_unit_test(test_string_too_long),
                cmocka_unit_test(test_log_bounds),
                cmocka_unit_test(test_field_rules),
                cmocka_unit_test(test_frame_too_large),
                cmocka_unit_test(test_error_names),
                cmocka_unit_test(test_sample_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
