/* SPDX-License-Identifier: MIT */
#include "linebuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

void linebuf_init(LineBuf *b, size_t max_chunk) {
        *b = (LineBuf) { .max_chunk = max_chunk ?: LINEBUF_DEFAULT_MAX_CHUNK };
}

void linebuf_done(LineBuf *b) {
        free(b->buf);
        linebuf_init(b, b->max_chunk);
}

static void consume(LineBuf *b, size_t n) {
        memmove(b->buf, b->buf + n, b->len - n);
        b->len -= n;
}

static size_t complete_lines_len(const LineBuf *b) {
        for (size_t i = b->len; i > 0; i--)
                if (b->buf[i - 1] == '\n')
                        return i;
        return 0;
}

int linebuf_flush_lines(LineBuf *b, linebuf_emit_t emit, void *userdata) {
        size_t n = complete_lines_len(b);
        if (n == 0)
                return 0;
        int r = emit(b->buf, n, userdata);
        if (r < 0)
                return r;
        consume(b, n);
        return 0;
}

int linebuf_flush_all(LineBuf *b, linebuf_emit_t emit, void *userdata) {
        if (b->len == 0)
                return 0;
        int r = emit(b->buf, b->len, userdata);
        if (r < 0)
                return r;
        b->len = 0;
        return 0;
}

/* A full buffer: emit its complete lines, or cut the one long line it holds. */
static int flush_full(LineBuf *b, linebuf_emit_t emit, void *userdata) {
        if (complete_lines_len(b) > 0)
                return linebuf_flush_lines(b, emit, userdata);
        return linebuf_flush_all(b, emit, userdata);
}

static int reserve(LineBuf *b, size_t want) {
        if (b->cap >= want)
                return 0;
        size_t cap = MAX(b->cap * 2, (size_t) 256);
        cap = MIN(MAX(cap, want), b->max_chunk);
        char *nb = realloc(b->buf, cap);
        if (!nb)
                return -ENOMEM;
        b->buf = nb;
        b->cap = cap;
        return 0;
}

int linebuf_feed(LineBuf *b, const void *data, size_t n, linebuf_emit_t emit, void *userdata) {
        const char *p = data;
        int r;

        while (n > 0) {
                if (b->len == b->max_chunk && (r = flush_full(b, emit, userdata)) < 0)
                        return r;

                size_t k = MIN(n, b->max_chunk - b->len);
                if ((r = reserve(b, b->len + k)) < 0)
                        return r;
                memcpy(b->buf + b->len, p, k);
                b->len += k;
                p += k;
                n -= k;
        }

        if (b->len == b->max_chunk)
                return flush_full(b, emit, userdata);
        return 0;
}
