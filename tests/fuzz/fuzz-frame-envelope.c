/* SPDX-License-Identifier: MIT */
/* Guest-controlled bytes through everything tetherd does to them before its session logic: the frame reader
 * (fed in chunk sizes derived from the input, with an input-chosen payload bound), envelope_unpack(),
 * envelope_validate(), and the conversions applied to what passes (log data sanitising, traceparent parsing).
 * Must never crash or leak, and what decodes must re-encode stably.
 *
 * Input: byte 0 picks the reader's payload bound, byte 1 seeds the chunk sizes, the rest is the byte stream. */

#include <string.h>

#include "envelope.h"
#include "frame.h"
#include "fuzz.h"
#include "macro.h"
#include "traceparent.h"
#include "utf8.h"

/* TETHER_FRAME_MAX plus small bounds, so that inputs of a few hundred bytes reach the buffer-full paths. */
static const uint32_t payload_bounds[4] = { 0, 16, 300, 4096 };

static void exercise_valid(const Tether__Envelope *e) {
        if (envelope_is_record(e))
                FUZZ_ASSERT(e->seq >= 1);

        if (e->msg_case == TETHER__ENVELOPE__MSG_LOG) {
                size_t replaced;
                _cleanup_free_ char *line = utf8_sanitize(
                        (const char *) e->log->data.data, e->log->data.len, &replaced);
                FUZZ_ASSERT(line);
                FUZZ_ASSERT(utf8_is_valid(line, strlen(line)));
                FUZZ_ASSERT(replaced <= e->log->data.len);
        }
        if (e->msg_case == TETHER__ENVELOPE__MSG_WELCOME) {
                TraceParent tp;
                if (traceparent_parse(e->welcome->traceparent, &tp) >= 0) {
                        char s[TRACEPARENT_STRLEN + 1];
                        traceparent_format(&tp, s);
                        FUZZ_ASSERT(strcmp(s, e->welcome->traceparent) == 0);
                }
        }
}

/* pack(unpack(pack(e))) == pack(e): decoding keeps everything the encoder emits. The first re-encoding may
 * differ from the input (non-minimal varints, explicit defaults), and may even grow past the frame limit. */
static void check_reencoding(const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL, *again = NULL;
        size_t frame_len, again_len;
        Tether__Envelope *d = NULL;

        if (envelope_pack_frame(e, &frame, &frame_len) < 0)
                return;
        FUZZ_ASSERT(frame_header_get(frame) == frame_len - TETHER_FRAME_HEADER_SIZE);
        FUZZ_ASSERT(envelope_unpack(frame + TETHER_FRAME_HEADER_SIZE, frame_len - TETHER_FRAME_HEADER_SIZE, &d) >= 0);
        FUZZ_ASSERT(d->msg_case == e->msg_case);
        FUZZ_ASSERT(d->seq == e->seq);
        FUZZ_ASSERT(envelope_pack_frame(d, &again, &again_len) >= 0);
        FUZZ_ASSERT(again_len == frame_len);
        FUZZ_ASSERT(memcmp(again, frame, frame_len) == 0);
        envelope_free(d);
}

/* Returns false when the stream must be closed, as tetherd would. */
static bool handle_frame(const uint8_t *payload, size_t len) {
        static const EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        Tether__Envelope *e = NULL;
        ProtocolError pe;

        if (envelope_unpack(payload, len, &e) < 0)
                return false;
        pe = envelope_validate(e, &limits);
        FUZZ_ASSERT(strcmp(protocol_error_to_string(pe), "unknown") != 0);
        if (pe == PROTOCOL_ERROR_NONE)
                exercise_valid(e);
        check_reencoding(e);
        envelope_free(e);
        return pe == PROTOCOL_ERROR_NONE;
}

/* Chunk lengths from a small LCG: mostly short reads, sometimes everything that is left. */
static size_t next_chunk(uint32_t *state, size_t left) {
        *state = *state * 1103515245u + 12345u;
        if (((*state >> 16) & 7) == 0)
                return left;
        return MIN(left, (size_t) 1 + ((*state >> 8) % 97));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FrameReader r;
        uint32_t state;
        size_t off = 2;
        bool open = true;

        if (size < 2)
                return 0;
        if (frame_reader_init(&r, payload_bounds[data[0] & 3]) < 0)
                return 0;
        state = data[1];

        while (open && off < size) {
                size_t chunk = next_chunk(&state, size - off);
                const uint8_t *payload;
                size_t len;
                int k;

                /* A full buffer takes less than offered: the rest is fed again after draining. */
                size_t taken = frame_reader_feed(&r, data + off, chunk);
                FUZZ_ASSERT(taken <= chunk);
                FUZZ_ASSERT(frame_reader_pending(&r) <= r.capacity);
                off += taken;

                while ((k = frame_reader_next(&r, &payload, &len)) == 1) {
                        FUZZ_ASSERT(len >= 1 && len <= r.max_payload);
                        if (!handle_frame(payload, len)) {
                                open = false;
                                break;
                        }
                }
                if (k < 0)
                        open = false;
                /* Never stuck: after draining, a full buffer must have held a frame or a bad header. */
                if (open && taken == 0)
                        FUZZ_ASSERT(frame_reader_pending(&r) < r.capacity);
                /* As a connection does when it caught up: a drained reader gives its buffer back. */
                if (((state >> 20) & 7) == 0) {
                        frame_reader_release(&r);
                        FUZZ_ASSERT(frame_reader_pending(&r) == 0 || r.buf);
                }
        }

        frame_reader_done(&r);
        return 0;
}
