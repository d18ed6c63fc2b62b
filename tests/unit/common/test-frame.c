/* SPDX-License-Identifier: MIT */
/* Frame codec: any split of the byte stream, bounds on the announced length, reading from fds. */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "macro.h"

/* A byte stream of several frames plus where each payload lies in it. */
typedef struct Stream {
        uint8_t *data;
        size_t len;
        size_t n_frames;
        size_t payload_off[8];
        size_t payload_len[8];
} Stream;

/* Payload bytes depend on the frame index and position, so a frame returned twice, out of order or shifted
 * by one byte does not compare equal. */
static void stream_add(Stream *s, size_t payload_len) {
        assert_true(s->n_frames < ELEMENTSOF(s->payload_off));
        s->data = realloc(s->data, s->len + TETHER_FRAME_HEADER_SIZE + payload_len);
        assert_non_null(s->data);
        frame_header_put(s->data + s->len, (uint32_t) payload_len);
        s->len += TETHER_FRAME_HEADER_SIZE;
        for (size_t i = 0; i < payload_len; i++)
                s->data[s->len + i] = (uint8_t) (i * 7 + s->n_frames * 31 + 1);
        s->payload_off[s->n_frames] = s->len;
        s->payload_len[s->n_frames] = payload_len;
        s->n_frames++;
        s->len += payload_len;
}

static void stream_done(Stream *s) {
        free(s->data);
        *s = (Stream) {};
}

/* Drains every complete frame, checking each against the next expected one. Returns the frames seen. */
static size_t drain(FrameReader *r, const Stream *s, size_t *next_frame) {
        const uint8_t *payload;
        size_t len, n = 0;
        int k;

        while ((k = frame_reader_next(r, &payload, &len)) == 1) {
                assert_true(*next_frame < s->n_frames);
                assert_int_equal(len, s->payload_len[*next_frame]);
                assert_memory_equal(payload, s->data + s->payload_off[*next_frame], len);
                (*next_frame)++;
                n++;
        }
        assert_int_equal(k, 0);
        return n;
}

static void test_header_put_get(void **state) {
        static const uint32_t values[] = { 0, 1, 0xFF, 0x100, 0x10000, 0x12345678, UINT32_MAX };
        uint8_t h[TETHER_FRAME_HEADER_SIZE];

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                frame_header_put(h, values[i]);
                assert_int_equal(frame_header_get(h), values[i]);
        }
        frame_header_put(h, 0x12345678);
        assert_int_equal(h[0], 0x78); /* little-endian on the wire */
        assert_int_equal(h[3], 0x12);
}

static void test_init_done(void **state) {
        FrameReader r;

        assert_int_equal(frame_reader_init(NULL, 0), -EINVAL);

        assert_int_equal(frame_reader_init(&r, 0), 0);
        assert_int_equal(r.max_payload, TETHER_FRAME_MAX);
        assert_int_equal(r.capacity, TETHER_FRAME_READER_INITIAL); /* grows only for a larger frame */
        assert_int_equal(frame_reader_pending(&r), 0);
        frame_reader_done(&r);
        frame_reader_done(&r); /* idempotent */
        frame_reader_done(NULL);

        assert_int_equal(frame_reader_init(&r, 100), 0);
        assert_int_equal(r.capacity, TETHER_FRAME_HEADER_SIZE + 100);
        frame_reader_done(&r);
}

static void test_two_frames_one_chunk(void **state) {
        Stream s = {};
        FrameReader r;
        size_t next = 0;

        stream_add(&s, 5);
        stream_add(&s, 300);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        assert_int_equal(frame_reader_feed(&r, s.data, s.len), s.len);
        assert_int_equal(drain(&r, &s, &next), 2);
        assert_int_equal(frame_reader_pending(&r), 0);
        assert_int_equal(r.bytes_in, s.len);
        frame_reader_done(&r);
        stream_done(&s);
}

/* One byte at a time: a frame must appear exactly when its last byte arrives, never earlier or later. */
static void test_one_byte_at_a_time(void **state) {
        Stream s = {};
        FrameReader r;
        size_t next = 0;

        stream_add(&s, 1);
        stream_add(&s, 258);
        stream_add(&s, 3);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        for (size_t i = 0; i < s.len; i++) {
                size_t frame_end = s.payload_off[next] + s.payload_len[next];

                assert_int_equal(frame_reader_feed(&r, s.data + i, 1), 1);
                assert_int_equal(drain(&r, &s, &next), i + 1 == frame_end ? 1 : 0);
        }
        assert_int_equal(next, 3);
        assert_int_equal(frame_reader_pending(&r), 0);
        frame_reader_done(&r);
        stream_done(&s);
}

/* Every split of a two-frame stream into two reads, header splits included, yields both frames. */
static void test_every_split_point(void **state) {
        Stream s = {};

        stream_add(&s, 9);
        stream_add(&s, 2);
        for (size_t split = 0; split <= s.len; split++) {
                FrameReader r;
                size_t next = 0, seen;

                assert_int_equal(frame_reader_init(&r, 0), 0);
                assert_int_equal(frame_reader_feed(&r, s.data, split), split);
                seen = drain(&r, &s, &next);
                /* Frames complete within the first read come out of it, the rest only after the second. */
                assert_int_equal(seen, (split >= s.payload_off[0] + 9) + (split == s.len));
                assert_int_equal(frame_reader_feed(&r, s.data + split, s.len - split), s.len - split);
                drain(&r, &s, &next);
                assert_int_equal(next, 2);
                assert_int_equal(frame_reader_pending(&r), 0);
                frame_reader_done(&r);
        }
        stream_done(&s);
}

static void test_header_split(void **state) {
        Stream s = {};

        stream_add(&s, 70);
        for (size_t cut = 1; cut < TETHER_FRAME_HEADER_SIZE; cut++) {
                FrameReader r;
                const uint8_t *payload;
                size_t len, next = 0;

                assert_int_equal(frame_reader_init(&r, 0), 0);
                frame_reader_feed(&r, s.data, cut);
                assert_int_equal(frame_reader_next(&r, &payload, &len), 0);
                assert_int_equal(frame_reader_pending(&r), cut);
                frame_reader_feed(&r, s.data + cut, s.len - cut);
                assert_int_equal(drain(&r, &s, &next), 1);
                frame_reader_done(&r);
        }
        stream_done(&s);
}

static void test_zero_length_rejected(void **state) {
        FrameReader r;
        const uint8_t *payload = NULL;
        size_t len = 1234;
        uint8_t h[TETHER_FRAME_HEADER_SIZE];

        frame_header_put(h, 0);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, h, sizeof(h));
        assert_int_equal(frame_reader_next(&r, &payload, &len), -EBADMSG);
        assert_null(payload); /* outputs untouched on failure */
        assert_int_equal(len, 1234);
        /* The stream stays broken: asking again does not skip past the bad header. */
        assert_int_equal(frame_reader_next(&r, &payload, &len), -EBADMSG);
        frame_reader_done(&r);
}

static void test_oversized_rejected(void **state) {
        FrameReader r;
        const uint8_t *payload = NULL;
        size_t len = 0;
        uint8_t h[TETHER_FRAME_HEADER_SIZE];

        /* Refused from the header alone, before any payload arrives. */
        frame_header_put(h, TETHER_FRAME_MAX + 1);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, h, sizeof(h));
        assert_int_equal(frame_reader_next(&r, &payload, &len), -EMSGSIZE);
        assert_null(payload);
        frame_reader_done(&r);

        frame_header_put(h, UINT32_MAX);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, h, sizeof(h));
        assert_int_equal(frame_reader_next(&r, &payload, &len), -EMSGSIZE);
        frame_reader_done(&r);

        /* A smaller per-reader maximum is enforced the same way. */
        frame_header_put(h, 101);
        assert_int_equal(frame_reader_init(&r, 100), 0);
        frame_reader_feed(&r, h, sizeof(h));
        assert_int_equal(frame_reader_next(&r, &payload, &len), -EMSGSIZE);
        frame_reader_done(&r);
}

static void test_exactly_max_accepted(void **state) {
        Stream s = {};
        FrameReader r;
        size_t next = 0;

        stream_add(&s, TETHER_FRAME_MAX);
        stream_add(&s, 1);
        assert_int_equal(frame_reader_init(&r, 0), 0);
        /* The maximum frame fills the initial buffer, grows it to the maximum and fills that to the last byte:
         * the second frame must wait for a drain. */
        assert_int_equal(frame_reader_feed(&r, s.data, s.len), TETHER_FRAME_READER_INITIAL);
        assert_int_equal(drain(&r, &s, &next), 0);
        assert_int_equal(
                frame_reader_feed(&r, s.data + TETHER_FRAME_READER_INITIAL, s.len - TETHER_FRAME_READER_INITIAL),
                TETHER_FRAME_HEADER_SIZE + TETHER_FRAME_MAX - TETHER_FRAME_READER_INITIAL);
        assert_int_equal(r.capacity, TETHER_FRAME_HEADER_SIZE + TETHER_FRAME_MAX);
        assert_int_equal(drain(&r, &s, &next), 1);
        assert_int_equal(frame_reader_feed(&r, s.data + s.payload_off[1] - TETHER_FRAME_HEADER_SIZE, 5), 5);
        assert_int_equal(drain(&r, &s, &next), 1);
        frame_reader_done(&r);
        stream_done(&s);

        /* Same at a small per-reader maximum. */
        stream_add(&s, 100);
        assert_int_equal(frame_reader_init(&r, 100), 0);
        next = 0;
        assert_int_equal(frame_reader_feed(&r, s.data, s.len), s.len);
        assert_int_equal(drain(&r, &s, &next), 1);
        frame_reader_done(&r);
        stream_done(&s);
}

static void test_feed_partial_when_full(void **state) {
        Stream s = {};
        FrameReader r;
        size_t next = 0, off = 0;

        for (size_t i = 0; i < 4; i++)
                stream_add(&s, 16);
        assert_int_equal(frame_reader_init(&r, 16), 0); /* room for exactly one frame */
        while (off < s.len) {
                size_t taken = frame_reader_feed(&r, s.data + off, s.len - off);
                assert_true(taken > 0);
                assert_true(taken <= r.capacity);
                off += taken;
                assert_int_equal(drain(&r, &s, &next), 1);
        }
        assert_int_equal(next, 4);
        assert_int_equal(frame_reader_feed(&r, s.data, 0), 0);
        frame_reader_done(&r);
        stream_done(&s);
}

static void write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                assert_true(k > 0);
                p += k;
                n -= (size_t) k;
        }
}

static void test_fill_pipe_eagain_and_eof(void **state) {
        Stream s = {};
        FrameReader r;
        int fds[2];
        size_t next = 0;

        stream_add(&s, 40);
        stream_add(&s, 7);
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        assert_int_equal(frame_reader_init(&r, 0), 0);

        assert_int_equal(frame_reader_fill(&r, fds[0]), -EAGAIN);

        write_all(fds[1], s.data, s.len);
        assert_int_equal(frame_reader_fill(&r, fds[0]), (int) s.len);
        assert_int_equal(r.bytes_in, s.len);
        assert_int_equal(drain(&r, &s, &next), 2);
        assert_int_equal(frame_reader_fill(&r, fds[0]), -EAGAIN);

        safe_close(fds[1]);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 0);

        safe_close(fds[0]);
        assert_int_equal(frame_reader_fill(&r, fds[0]), -EBADF);
        frame_reader_done(&r);
        stream_done(&s);
}

static void test_fill_socketpair_partial(void **state) {
        Stream s = {};
        FrameReader r;
        int fds[2];
        size_t next = 0;

        stream_add(&s, 1000);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
        assert_int_equal(frame_reader_init(&r, 0), 0);

        /* Half the header, then the rest of the header and some payload, then the remainder. */
        write_all(fds[1], s.data, 2);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 2);
        assert_int_equal(drain(&r, &s, &next), 0);
        write_all(fds[1], s.data + 2, 500);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 500);
        assert_int_equal(drain(&r, &s, &next), 0);
        write_all(fds[1], s.data + 502, s.len - 502);
        assert_int_equal(frame_reader_fill(&r, fds[0]), (int) (s.len - 502));
        assert_int_equal(drain(&r, &s, &next), 1);

        shutdown(fds[1], SHUT_WR);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 0);
        safe_close(fds[0]);
        safe_close(fds[1]);
        frame_reader_done(&r);
        stream_done(&s);
}

/* A full buffer refuses to read (-ENOBUFS) until frames are drained, and nothing is lost on the way. */
static void test_fill_buffer_full_then_drain(void **state) {
        Stream s = {};
        FrameReader r;
        int fds[2];
        size_t next = 0;
        int k;

        for (size_t i = 0; i < 3; i++)
                stream_add(&s, 16);
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        write_all(fds[1], s.data, s.len);
        safe_close(fds[1]);

        assert_int_equal(frame_reader_init(&r, 16), 0);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 20);
        assert_int_equal(frame_reader_fill(&r, fds[0]), -ENOBUFS);
        assert_int_equal(drain(&r, &s, &next), 1);
        while ((k = frame_reader_fill(&r, fds[0])) != 0) {
                if (k == -ENOBUFS)
                        assert_int_equal(drain(&r, &s, &next), 1);
                else
                        assert_true(k > 0);
        }
        drain(&r, &s, &next);
        assert_int_equal(next, 3);
        assert_int_equal(r.bytes_in, s.len);
        safe_close(fds[0]);
        frame_reader_done(&r);
        stream_done(&s);
}

/* A frame larger than the initial buffer grows it to exactly that frame, by fill and by feed; once drained the
 * buffer is small again, and frames of the maximum size pass whole. */
static void test_grows_for_large_frame_then_shrinks(void **state) {
        Stream s = {};
        FrameReader r;
        int fds[2];
        size_t next = 0, off = 0;

        stream_add(&s, 100);
        stream_add(&s, 3 * TETHER_FRAME_READER_INITIAL);
        stream_add(&s, TETHER_FRAME_MAX);
        stream_add(&s, 10);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
        assert_int_equal(frame_reader_init(&r, 0), 0);

        /* By fill: the buffer reads its initial size, holds a partial large frame, then grows to fit it. */
        write_all(fds[1], s.data, 104 + 4 + 3 * TETHER_FRAME_READER_INITIAL);
        size_t got = 0, max_capacity = 0;
        int k;
        while ((k = frame_reader_fill(&r, fds[0])) > 0) {
                got += (size_t) k;
                if (r.capacity > max_capacity)
                        max_capacity = r.capacity;
                drain(&r, &s, &next);
        }
        assert_int_equal(k, -EAGAIN);
        assert_int_equal(got, 104 + 4 + 3 * TETHER_FRAME_READER_INITIAL);
        assert_int_equal(next, 2);
        assert_int_equal(max_capacity, 4 + 3 * TETHER_FRAME_READER_INITIAL);

        /* Drained: the next read gives the grown buffer back. */
        write_all(fds[1], s.data + got, 2);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 2);
        assert_int_equal(r.capacity, TETHER_FRAME_READER_INITIAL);
        off = got + 2;

        /* By feed: a frame of the maximum size, fed in one go, is taken in two steps and then returned whole. */
        size_t taken = frame_reader_feed(&r, s.data + off, s.len - off);
        assert_int_equal(taken, TETHER_FRAME_READER_INITIAL - 2);
        off += taken;
        assert_int_equal(drain(&r, &s, &next), 0);
        taken = frame_reader_feed(&r, s.data + off, s.len - off);
        assert_int_equal(r.capacity, TETHER_FRAME_HEADER_SIZE + TETHER_FRAME_MAX);
        off += taken;
        assert_int_equal(drain(&r, &s, &next), 1);
        assert_int_equal(next, 3);
        while (off < s.len) {
                taken = frame_reader_feed(&r, s.data + off, s.len - off);
                assert_true(taken > 0);
                off += taken;
                drain(&r, &s, &next);
        }
        assert_int_equal(next, 4);
        assert_int_equal(r.capacity, TETHER_FRAME_READER_INITIAL);
        assert_int_equal(r.bytes_in, s.len);

        /* Released while something is buffered: kept. Once drained: given back, and allocated again on demand. */
        assert_int_equal(frame_reader_feed(&r, s.data, 2), 2);
        frame_reader_release(&r);
        assert_non_null(r.buf);
        assert_int_equal(frame_reader_feed(&r, s.data + 2, 102), 102);
        next = 0;
        assert_int_equal(drain(&r, &s, &next), 1);
        frame_reader_release(&r);
        assert_null(r.buf);
        assert_int_equal(r.capacity, 0);
        assert_int_equal(frame_reader_pending(&r), 0);
        assert_int_equal(frame_reader_next(&r, &(const uint8_t *) { NULL }, &(size_t) { 0 }), 0);
        assert_int_equal(write(fds[1], s.data, 104), 104);
        assert_int_equal(frame_reader_fill(&r, fds[0]), 104);
        assert_int_equal(r.capacity, TETHER_FRAME_READER_INITIAL);
        next = 0;
        assert_int_equal(drain(&r, &s, &next), 1);

        safe_close(fds[0]);
        safe_close(fds[1]);
        frame_reader_done(&r);
        stream_done(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_put_get),
                cmocka_unit_test(test_init_done),
                cmocka_unit_test(test_grows_for_large_frame_then_shrinks),
                cmocka_unit_test(test_two_frames_one_chunk),
                cmocka_unit_test(test_one_byte_at_a_time),
                cmocka_unit_test(test_every_split_point),
                cmocka_unit_test(test_header_split),
                cmocka_unit_test(test_zero_length_rejected),
                cmocka_unit_test(test_oversized_rejected),
                cmocka_unit_test(test_exactly_max_accepted),
                cmocka_unit_test(test_feed_partial_when_full),
                cmocka_unit_test(test_fill_pipe_eagain_and_eof),
                cmocka_unit_test(test_fill_socketpair_partial),
                cmocka_unit_test(test_fill_buffer_full_then_drain),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
