/* SPDX-License-Identifier: MIT */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int frame_reader_init(FrameReader *r, uint32_t max_payload) {
        if (!r)
                return -EINVAL;
        if (max_payload == 0)
                max_payload = TETHER_FRAME_MAX;

        *r = (FrameReader) {
                .capacity = TETHER_FRAME_HEADER_SIZE + (size_t) max_payload,
                .max_payload = max_payload,
        };
        r->buf = malloc(r->capacity);
        if (!r->buf)
                return -ENOMEM;
        return 0;
}

void frame_reader_done(FrameReader *r) {
        if (!r)
                return;
        free(r->buf);
        r->buf = NULL;
        r->start = r->end = r->capacity = 0;
}

/* Moves unconsumed bytes to the front so the free space is contiguous. */
static void frame_reader_compact(FrameReader *r) {
        if (r->start == 0)
                return;
        if (r->end > r->start)
                memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
}

size_t frame_reader_feed(FrameReader *r, const void *data, size_t n) {
        frame_reader_compact(r);
        size_t space = r->capacity - r->end;
        if (n > space)
                n = space;
        if (n > 0) {
                memcpy(r->buf + r->end, data, n);
                r->end += n;
                r->bytes_in += n;
        }
        return n;
}

int frame_reader_fill(FrameReader *r, int fd) {
        frame_reader_compact(r);
        size_t space = r->capacity - r->end;
        if (space == 0)
                return -ENOBUFS;

        ssize_t k = read(fd, r->buf + r->end, space);
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
