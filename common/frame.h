/* SPDX-License-Identifier: MIT */
#pragma once

/* Length-prefixed framing: 4-byte little-endian payload length, then the payload.
 * The reader copes with any split of the byte stream (partial reads). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TETHER_FRAME_HEADER_SIZE 4u
#define TETHER_FRAME_MAX 65536u
/* What a reader holds while frames are small: a thousand connections under a firehose each keep their buffer
 * full, so its size is paid per connection. It grows to fit one larger frame and shrinks once drained. */
#define TETHER_FRAME_READER_INITIAL 8192u

typedef struct FrameReader {
        uint8_t *buf;
        size_t capacity; /* allocated: TETHER_FRAME_READER_INITIAL, up to TETHER_FRAME_HEADER_SIZE + max_payload */
        size_t start;    /* first unconsumed byte */
        size_t end;      /* one past the last buffered byte */
        uint32_t max_payload;
        uint64_t bytes_in; /* total bytes accepted, for accounting */
} FrameReader;

/* max_payload 0 means TETHER_FRAME_MAX. Returns 0 or -ENOMEM/-EINVAL. */
int frame_reader_init(FrameReader *r, uint32_t max_payload);
void frame_reader_done(FrameReader *r);

/* Gives the buffer back while nothing is buffered (an idle connection holds none); the next feed or fill
 * allocates it again. */
void frame_reader_release(FrameReader *r);

/* Copies up to n bytes of data into the reader. Returns the number of bytes taken (may be less than n
 * when the buffer is full: call frame_reader_next() to drain, then feed the rest; 0 also when the buffer
 * could not grow for a frame larger than it, out of memory). */
size_t frame_reader_feed(FrameReader *r, const void *data, size_t n);

/* Reads once from fd into the free space. Returns bytes read (> 0), 0 on EOF, -EAGAIN when nothing is
 * available, -ENOBUFS when the buffer is full of complete frames (drain with frame_reader_next() first),
 * -ENOMEM when it could not grow for a larger frame, or -errno. */
int frame_reader_fill(FrameReader *r, int fd);

/* Extracts the next complete frame. Returns 1 and sets ret_payload and ret_len (valid until the next call
 * on this reader), 0 when more bytes are needed, -EMSGSIZE when the announced length exceeds the maximum,
 * -EBADMSG when the announced length is 0. After an error the stream cannot be trusted: close it. */
int frame_reader_next(FrameReader *r, const uint8_t **ret_payload, size_t *ret_len);

/* The last fill filled the buffer: more may be waiting in the fd. */
static inline bool frame_reader_full(const FrameReader *r) {
        return r->capacity > 0 && r->end == r->capacity;
}

/* Bytes buffered but not yet returned as frames. */
static inline size_t frame_reader_pending(const FrameReader *r) {
        return r->end - r->start;
}

static inline void frame_header_put(uint8_t out[TETHER_FRAME_HEADER_SIZE], uint32_t len) {
        out[0] = (uint8_t) len;
        out[1] = (uint8_t) (len >> 8);
        out[2] = (uint8_t) (len >> 16);
        out[3] = (uint8_t) (len >> 24);
}

static inline uint32_t frame_header_get(const uint8_t in[TETHER_FRAME_HEADER_SIZE]) {
        return (uint32_t) in[0] | ((uint32_t) in[1] << 8) | ((uint32_t) in[2] << 16) | ((uint32_t) in[3] << 24);
}
