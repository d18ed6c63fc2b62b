/* SPDX-License-Identifier: MIT */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

static int frame_reader_make_room(FrameReader *r);

int frame_reader_init(FrameReader *r, uint32_t max_payload) {
        if (!r)
                return -EINVAL;
        if (max_payload == 0)
                max_payload = TETHER_FRAME_MAX;

        *r = (FrameReader) { .max_payload = max_payload };
        return frame_reader_make_room(r); /* the initial buffer */
}

void frame_reader_done(FrameReader *r) {
        if (!r)
                return;
        free(r->buf);
        r->buf = NULL;
        r->start = r->end = r->capacity = 0;
}

void frame_reader_release(FrameReader *r) {
        if (!r || !r->buf || r->start != r->end)
                return;
        r->buf = mfree(r->buf);
        r->start = r->end = r->capacity = 0;
}

/* The whole size of the frame at the front, or 0 while its header is incomplete or announces a length
 * frame_reader_next() rejects. */
static size_t frame_reader_front_size(const FrameReader *r) {
        if (r->end - r->start < TETHER_FRAME_HEADER_SIZE)
                return 0;
        uint32_t len = frame_header_get(r->buf + r->start);
        if (len == 0 || len > r->max_payload)
                return 0;
        return TETHER_FRAME_HEADER_SIZE + (size_t) len;
}

/* Makes free space at the end: moves unconsumed bytes to the front, gives back a grown buffer once it is
 * drained, and grows it when the frame at the front does not fit. Returns 0 when there is space, -ENOBUFS
 * when the buffer is full of frames to drain first, -ENOMEM. */
static int frame_reader_make_room(FrameReader *r) {
        if (r->capacity > TETHER_FRAME_READER_INITIAL)
                frame_reader_release(r); /* grown for a larger frame: given back once that is drained */
        if (!r->buf) {
                size_t capacity = MIN(
                        TETHER_FRAME_HEADER_SIZE + (size_t) r->max_payload, (size_t) TETHER_FRAME_READER_INITIAL);
                if (!(r->buf = malloc(capacity)))
                        return -ENOMEM;
                r->capacity = capacity;
        }
        if (r->start > 0) {
                if (r->end > r->start)
                        memmove(r->buf, r->buf + r->start, r->end - r->start);
                r->end -= r->start;
                r->start = 0;
        }
        if (r->end < r->capacity)
                return 0;

        size_t need = frame_reader_front_size(r);
        if (need <= r->capacity)
                return -ENOBUFS;
        uint8_t *grown = realloc(r->buf, need);
        if (!grown)
                return -ENOMEM;
        r->buf = grown;
        r->capacity = need;
        return 0;
}

size_t frame_reader_feed(FrameReader *r, const void *data, size_t n) {
        if (n == 0 || frame_reader_make_room(r) < 0)
                return 0;
        size_t space = r->capacity - r->end;
        if (n > space)
                n = space;
        memcpy(r->buf + r->end, data, n);
        r->end += n;
        r->bytes_in += n;
        return n;
}

int frame_reader_fill(FrameReader *r, int fd) {
        int q = frame_reader_make_room(r);
        if (q < 0)
                return q;

        ssize_t k = read(fd, r->buf + r->end, r->capacity - r->end);
        if (k < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        r->end += (size_t) k;
        r->bytes_in += (size_t) k;
        return (int) k;
}

int frame_reader_next(FrameReader *r, const uint8_t **ret_payload, size_t *ret_len) {
        size_t avail = r->end - r->start;
        if (avail < TETHER_FRAME_HEADER_SIZE)
                return 0;

        uint32_t len = frame_header_get(r->buf + r->start);
        if (len == 0)
                return -EBADMSG;
        if (len > r->max_payload)
                return -EMSGSIZE;
        if (avail - TETHER_FRAME_HEADER_SIZE < len)
                return 0;

        *ret_payload = r->buf + r->start + TETHER_FRAME_HEADER_SIZE;
        *ret_len = len;
        r->start += TETHER_FRAME_HEADER_SIZE + len;
        return 1;
}
