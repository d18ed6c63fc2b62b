/* SPDX-License-Identifier: MIT */
/* Writes the seed corpus of fuzz-frame-envelope into the directory given: one valid frame of every message type,
 * a whole boot's stream, the largest legal frame, and the classic refusals. Seeds are named seed-*, so rerunning
 * replaces them and leaves inputs the fuzzer found alone. Run with: ninja -C BUILD fuzz-corpus */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "frame.h"
#include "macro.h"
#include "sample-envelopes.h"

/* Input prefix of fuzz-frame-envelope: byte 0 picks the reader's payload bound, byte 1 seeds the chunk sizes. */
typedef struct Seed {
        uint8_t *data;
        size_t len;
} Seed;

static int seed_append(Seed *s, const void *p, size_t n) {
        uint8_t *d = realloc(s->data, s->len + n);
        if (!d)
                return -ENOMEM;
        memcpy(d + s->len, p, n);
        s->data = d;
        s->len += n;
        return 0;
}

static int seed_start(Seed *s, uint8_t bound, uint8_t chunking) {
        const uint8_t prefix[2] = { bound, chunking };
        free(s->data);
        *s = (Seed) {};
        return seed_append(s, prefix, sizeof(prefix));
}

static int seed_append_envelope(Seed *s, const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;
        int r;

        r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        return seed_append(s, frame, len);
}

static int seed_append_sample(Seed *s, Tether__Envelope__MsgCase msg_case, uint64_t seq) {
        SampleEnvelope sample;
        int r;

        r = sample_envelope_init(&sample, msg_case, seq);
        if (r < 0)
                return r;
        return seed_append_envelope(s, &sample.envelope);
}

/* A frame whose payload is given raw (header computed). */
static int seed_append_raw_frame(Seed *s, const void *payload, uint32_t len) {
        uint8_t header[TETHER_FRAME_HEADER_SIZE];
        int r;

        frame_header_put(header, len);
        r = seed_append(s, header, sizeof(header));
        if (r < 0)
                return r;
        return seed_append(s, payload, len);
}

static int seed_write(const char *dir, const char *name, const Seed *s) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        size_t done = 0;

        if (asprintf(&path, "%s/seed-%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        while (done < s->len) {
                ssize_t k = write(fd, s->data + done, s->len - done);
                if (k < 0)
                        return -errno;
                done += (size_t) k;
        }
        return 0;
}

static int generate(const char *dir) {
        static const uint8_t unknown_message[] = { 0xf2, 0x01, 0x02, 0x08, 0x01 }; /* field 30 {1: 1} */
        static const uint8_t bad_utf8_milestone[] = { 0x08, 0x01, 0x7a, 0x04, 0x0a, 0x02, 0xc0, 0x80 };
        static const uint8_t truncated[] = { 0x08, 0xff };
        static const Tether__Envelope__MsgCase boot[] = {
                TETHER__ENVELOPE__MSG_HELLO, TETHER__ENVELOPE__MSG_CLOCK_SAMPLE, TETHER__ENVELOPE__MSG_MILESTONE,
                TETHER__ENVELOPE__MSG_PHASE, TETHER__ENVELOPE__MSG_LOG,          TETHER__ENVELOPE__MSG_LOG_DROPPED,
                TETHER__ENVELOPE__MSG_READY, TETHER__ENVELOPE__MSG_HEARTBEAT,    TETHER__ENVELOPE__MSG_EXIT,
        };
        _cleanup_free_ uint8_t *big = NULL;
        Seed s = {};
        int r;

#define TRY(expr)                    \
        do {                         \
                r = (expr);          \
                if (r < 0)           \
                        goto finish; \
        } while (0)

        for (size_t i = 0; i < SAMPLE_MSG_CASES_COUNT; i++) {
                TRY(seed_start(&s, 0, 0));
                TRY(seed_append_sample(&s, sample_msg_cases[i], 1));
                TRY(seed_write(dir, sample_msg_case_name(sample_msg_cases[i]), &s));
        }

        /* A boot as the agent sends it, read in short chunks: through the default bound and a 300-byte one. */
        for (uint8_t bound = 0; bound <= 2; bound += 2) {
                uint64_t seq = 1;
                TRY(seed_start(&s, bound, 1));
                for (size_t i = 0; i < ELEMENTSOF(boot); i++)
                        TRY(seed_append_sample(&s, boot[i], seq++));
                TRY(seed_write(dir, bound == 0 ? "boot-stream" : "boot-stream-small-buffer", &s));
        }

        /* Frames of exactly 16 bytes fill the smallest buffer to the last byte. */
        TRY(seed_start(&s, 1, 3));
        for (uint64_t id = 1; id <= 3; id++) {
                Tether__Envelope e = TETHER__ENVELOPE__INIT;
                Tether__ClockSample sample = TETHER__CLOCK_SAMPLE__INIT;
                sample.probe_id = id;
                sample.boottime_ns = UINT64_C(1) << 30; /* 5-byte varints: 16 bytes in all */
                sample.monotonic_ns = UINT64_C(1) << 30;
                e.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
                e.clock_sample = &sample;
                if (tether__envelope__get_packed_size(&e) != 16) {
                        r = -EBADMSG;
                        goto finish;
                }
                TRY(seed_append_envelope(&s, &e));
        }
        TRY(seed_write(dir, "full-small-buffer", &s));

        /* The largest legal frame: a Log padded to exactly TETHER_FRAME_MAX (refused later: data > 16 KiB). */
        {
                SampleEnvelope sample;
                big = calloc(1, TETHER_FRAME_MAX);
                if (!big) {
                        r = -ENOMEM;
                        goto finish;
                }
                TRY(sample_envelope_init(&sample, TETHER__ENVELOPE__MSG_LOG, 1));
                sample.log.data = (ProtobufCBinaryData) { .len = TETHER_FRAME_MAX - 64, .data = big };
                while (tether__envelope__get_packed_size(&sample.envelope) < TETHER_FRAME_MAX)
                        sample.log.data.len++;
                TRY(seed_start(&s, 0, 5));
                TRY(seed_append_envelope(&s, &sample.envelope));
                TRY(seed_write(dir, "max-frame", &s));
        }

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_sample(&s, TETHER__ENVELOPE__MSG_HELLO, 0));
        TRY(seed_append(&s, "\0\0\0\0", 4));
        TRY(seed_write(dir, "frame-empty", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append(&s, "\x01\x00\x01\x00", 4)); /* 65537 */
        TRY(seed_write(dir, "frame-too-large", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_raw_frame(&s, unknown_message, sizeof(unknown_message)));
        TRY(seed_write(dir, "unknown-message", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_raw_frame(&s, bad_utf8_milestone, sizeof(bad_utf8_milestone)));
        TRY(seed_write(dir, "invalid-utf8", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_raw_frame(&s, truncated, sizeof(truncated)));
        TRY(seed_write(dir, "decode-failed", &s));

        /* A record without seq after a valid one. */
        TRY(seed_start(&s, 0, 2));
        TRY(seed_append_sample(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1));
        TRY(seed_append_sample(&s, TETHER__ENVELOPE__MSG_MILESTONE, 0));
        TRY(seed_write(dir, "seq-missing", &s));
        r = 0;
#undef TRY
finish:
        free(s.data);
        return r;
}

int main(int argc, char **argv) {
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
                return EXIT_FAILURE;
        }
        r = generate(argv[1]);
        if (r < 0) {
                fprintf(stderr, "gen-corpus: failed to write seeds to %s: %s\n", argv[1], strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
