/* SPDX-License-Identifier: MIT */
#include "envelope.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "utf8.h"

static const char *const protocol_error_names[_PROTOCOL_ERROR_MAX] = {
        [PROTOCOL_ERROR_NONE] = "none",
        [PROTOCOL_ERROR_FRAME_TOO_LARGE] = "frame_too_large",
        [PROTOCOL_ERROR_FRAME_EMPTY] = "frame_empty",
        [PROTOCOL_ERROR_DECODE_FAILED] = "decode_failed",
        [PROTOCOL_ERROR_UNKNOWN_MESSAGE] = "unknown_message",
        [PROTOCOL_ERROR_INVALID_UTF8] = "invalid_utf8",
        [PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES] = "too_many_attributes",
        [PROTOCOL_ERROR_STRING_TOO_LONG] = "string_too_long",
        [PROTOCOL_ERROR_LOG_TOO_LARGE] = "log_too_large",
        [PROTOCOL_ERROR_INVALID_FIELD] = "invalid_field",
        [PROTOCOL_ERROR_SEQ_MISSING] = "seq_missing",
        [PROTOCOL_ERROR_SEQ_REGRESSION] = "seq_regression",
        [PROTOCOL_ERROR_UNEXPECTED_MESSAGE] = "unexpected_message",
        [PROTOCOL_ERROR_VERSION_MISMATCH] = "version_mismatch",
};

const char *protocol_error_to_string(ProtocolError e) {
        if ((unsigned) e >= _PROTOCOL_ERROR_MAX)
                return "unknown";
        return protocol_error_names[e];
}

int envelope_is_record(const Tether__Envelope *e) {
        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_MILESTONE:
        case TETHER__ENVELOPE__MSG_PHASE:
        case TETHER__ENVELOPE__MSG_LOG:
        case TETHER__ENVELOPE__MSG_LOG_DROPPED:
        case TETHER__ENVELOPE__MSG_READY:
        case TETHER__ENVELOPE__MSG_EXIT:
                return 1;
        default:
                return 0;
        }
}

int envelope_pack_into(const Tether__Envelope *e, uint8_t *out, size_t out_size) {
        size_t len = tether__envelope__get_packed_size(e);
        if (len > TETHER_FRAME_MAX || len > out_size)
                return -EMSGSIZE;
        return (int) tether__envelope__pack(e, out);
}

int envelope_pack_frame(const Tether__Envelope *e, uint8_t **ret_frame, size_t *ret_len) {
        size_t len = tether__envelope__get_packed_size(e);
        if (len > TETHER_FRAME_MAX)
                return -EMSGSIZE;

        /* An envelope with every field at its default packs to 0 bytes; a frame of 0 is invalid, so such
         * an envelope is never sent (it would carry no message anyway). */
        if (len == 0)
                return -EINVAL;

        uint8_t *buf = malloc(TETHER_FRAME_HEADER_SIZE + len);
        if (!buf)
                return -ENOMEM;
        frame_header_put(buf, (uint32_t) len);
        tether__envelope__pack(e, buf + TETHER_FRAME_HEADER_SIZE);

        *ret_frame = buf;
        *ret_len = TETHER_FRAME_HEADER_SIZE + len;
        return 0;
}

/* protobuf-c 1.4 refuses field number 0 only when the tag fits in one byte: a longer encoding of it (0x82 0x00)
 * decodes, is kept as an unknown field, and re-encodes as a tag protobuf-c itself then refuses. Field 0 is invalid
 * protobuf, so the whole message is refused. Walks the present submessages (the oneof member in use only). */
static bool message_has_field_zero(const ProtobufCMessage *m) {
        const ProtobufCMessageDescriptor *d = m->descriptor;

        for (unsigned i = 0; i < m->n_unknown_fields; i++)
                if (m->unknown_fields[i].tag == 0)
                        return true;

        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                const uint8_t *base = (const uint8_t *) m;

                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    *(const uint32_t *) (base + f->quantifier_offset) != f->id)
                        continue;

                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *) (base + f->quantifier_offset);
                        ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *) (base + f->offset);
                        for (size_t k = 0; k < n; k++)
                                if (message_has_field_zero(items[k]))
                                        return true;
                } else {
                        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *) (base + f->offset);
                        if (sub && message_has_field_zero(sub))
                                return true;
                }
        }
        return false;
}

int envelope_unpack(const uint8_t *payload, size_t len, Tether__Envelope **ret) {
        Tether__Envelope *e = tether__envelope__unpack(NULL, len, payload);
        if (!e)
                return -EBADMSG;
        if (message_has_field_zero(&e->base)) {
                envelope_free(e);
                return -EBADMSG;
        }
        *ret = e;
        return 0;
}

void envelope_free(Tether__Envelope *e) {
        if (e)
                tether__envelope__free_unpacked(e, NULL);
}

static ProtocolError check_string(const char *s, const EnvelopeLimits *l) {
        if (!s)
                return PROTOCOL_ERROR_NONE;
        size_t n = strnlen(s, (size_t) l->max_string_bytes + 1);
        if (n > l->max_string_bytes)
                return PROTOCOL_ERROR_STRING_TOO_LONG;
        if (!utf8_is_valid(s, n))
                return PROTOCOL_ERROR_INVALID_UTF8;
        return PROTOCOL_ERROR_NONE;
}

/* Names must be non-empty as well as valid. */
static ProtocolError check_name(const char *s, const EnvelopeLimits *l) {
        if (!s || !*s)
                return PROTOCOL_ERROR_INVALID_FIELD;
        return check_string(s, l);
}

static ProtocolError check_attributes(Tether__Attribute **a, size_t n, const EnvelopeLimits *l) {
        ProtocolError r;

        if (n > l->max_attributes)
                return PROTOCOL_ERROR_TOO_MANY_ATTRIBUTES;
        for (size_t i = 0; i < n; i++) {
                if ((r = check_name(a[i]->key, l)) != PROTOCOL_ERROR_NONE)
                        return r;
                if ((r = check_string(a[i]->value, l)) != PROTOCOL_ERROR_NONE)
                        return r;
        }
        return PROTOCOL_ERROR_NONE;
}

#define CHECK(expr)                              \
        do {                                     \
                ProtocolError _pe_ = (expr);     \
                if (_pe_ != PROTOCOL_ERROR_NONE) \
                        return _pe_;             \
        } while (0)

uint32_t envelope_negotiate_version(uint32_t lowest, uint32_t highest) {
        highest = highest > lowest ? highest : lowest;
        if (lowest < TETHER_PROTOCOL_VERSION || lowest > TETHER_PROTOCOL_VERSION_MAX)
                return 0;
        return highest < TETHER_PROTOCOL_VERSION_MAX ? highest : TETHER_PROTOCOL_VERSION_MAX;
}

ProtocolError envelope_validate(const Tether__Envelope *e, const EnvelopeLimits *l) {
        if (e->msg_case == TETHER__ENVELOPE__MSG__NOT_SET)
                return PROTOCOL_ERROR_UNKNOWN_MESSAGE;

        if (envelope_is_record(e)) {
                if (e->seq == 0)
                        return PROTOCOL_ERROR_SEQ_MISSING;
        } else if (e->seq != 0)
                return PROTOCOL_ERROR_INVALID_FIELD;

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_HELLO: {
                const Tether__Hello *h = e->hello;
                CHECK(check_string(h->agent_version, l));
                CHECK(check_string(h->boot_id, l));
                CHECK(check_string(h->kernel_release, l));
                CHECK(check_string(h->hostname, l));
                if (h->resume_token.len > 64 || h->agent_instance.len > 64)
                        return PROTOCOL_ERROR_STRING_TOO_LONG;
                if (h->last_seq != 0 && h->first_seq > h->last_seq + 1)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                return PROTOCOL_ERROR_NONE;
        }
        case TETHER__ENVELOPE__MSG_WELCOME: {
                const Tether__Welcome *w = e->welcome;
                CHECK(check_string(w->traceparent, l));
                CHECK(check_string(w->machine_id, l));
                if (w->session_id.len > 64)
                        return PROTOCOL_ERROR_STRING_TOO_LONG;
                return PROTOCOL_ERROR_NONE;
        }
        case TETHER__ENVELOPE__MSG_MILESTONE:
                CHECK(check_name(e->milestone->name, l));
                return check_attributes(e->milestone->attributes, e->milestone->n_attributes, l);
        case TETHER__ENVELOPE__MSG_PHASE:
                CHECK(check_name(e->phase->name, l));
                CHECK(check_string(e->phase->message, l));
                if (e->phase->end_boottime_ns < e->phase->start_boottime_ns)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                return check_attributes(e->phase->attributes, e->phase->n_attributes, l);
        case TETHER__ENVELOPE__MSG_LOG:
                CHECK(check_string(e->log->source, l));
                if (e->log->data.len > l->max_log_bytes)
                        return PROTOCOL_ERROR_LOG_TOO_LARGE;
                if (e->log->stream == TETHER__LOG_STREAM__LOG_STREAM_UNSPECIFIED ||
                    e->log->stream > TETHER__LOG_STREAM__LOG_STREAM_KMSG)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                return PROTOCOL_ERROR_NONE;
        case TETHER__ENVELOPE__MSG_LOG_DROPPED: {
                /* Checked against what the host can see, so that a guest cannot inflate node-wide counters:
                 * the dropped records had seqs before this record's, one each (at most the range they name,
                 * or every seq before this one), and none carried more than a Log may. */
                const Tether__LogDropped *d = e->log_dropped;
                if (d->last_seq < d->first_seq)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                if (d->first_seq > 0 ? d->last_seq >= e->seq || d->records > d->last_seq - d->first_seq + 1 :
                                       d->records >= e->seq)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                uint64_t max_bytes = l->max_log_bytes ?: 1;
                if (d->records < UINT64_MAX / max_bytes && d->bytes > d->records * max_bytes)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                return PROTOCOL_ERROR_NONE;
        }
        case TETHER__ENVELOPE__MSG_READY:
                CHECK(check_name(e->ready->source, l));
                return check_string(e->ready->detail, l);
        case TETHER__ENVELOPE__MSG_EXIT:
                if (e->exit->signal < 0 || e->exit->signal > 64)
                        return PROTOCOL_ERROR_INVALID_FIELD;
                return check_string(e->exit->reason, l);
        case TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE: {
                /* The numbers are the guest's to report; refused are arrays longer than any version defines
                 * and what cannot be true. */
                const Tether__ResourceSample *r = e->resource_sample;
                const size_t n[] = { r->n_cpu_ns,     r->n_memory_bytes, r->n_load_centi,   r->n_psi_cpu,
                                     r->n_psi_memory, r->n_psi_io,       r->n_cgroup_memory };
                for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++)
                        if (n[i] > ENVELOPE_SAMPLE_ARRAY_MAX)
                                return PROTOCOL_ERROR_INVALID_FIELD;
                const uint64_t *psi[] = { r->psi_cpu, r->psi_memory, r->psi_io };
                const size_t n_psi[] = { r->n_psi_cpu, r->n_psi_memory, r->n_psi_io };
                for (size_t i = 0; i < 3; i++)
                        for (size_t j = 0; j < n_psi[i] && j < 2; j++)
                                if (psi[i][j] > 10000)
                                        return PROTOCOL_ERROR_INVALID_FIELD;
                /* MemAvailable and MemFree within MemTotal, SwapFree within SwapTotal */
                const uint64_t *mem = r->memory_bytes;
                if ((r->n_memory_bytes >= 2 && mem[1] > mem[0]) || (r->n_memory_bytes >= 3 && mem[2] > mem[0]) ||
                    (r->n_memory_bytes >= 5 && mem[4] > mem[3]))
                        return PROTOCOL_ERROR_INVALID_FIELD;
                return PROTOCOL_ERROR_NONE;
        }
        case TETHER__ENVELOPE__MSG_CLOCK_PROBE:
        case TETHER__ENVELOPE__MSG_CLOCK_SAMPLE:
        case TETHER__ENVELOPE__MSG_ACK:
        case TETHER__ENVELOPE__MSG_HEARTBEAT:
                return PROTOCOL_ERROR_NONE;
        default:
                return PROTOCOL_ERROR_UNKNOWN_MESSAGE;
        }
}
