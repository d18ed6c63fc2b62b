/* SPDX-License-Identifier: MIT */
#pragma once

/* Splits a byte stream into chunks of complete lines for Log records. A chunk holds as many complete lines
 * as fit in max_chunk bytes; a line longer than max_chunk is cut into max_chunk pieces; a partial last line
 * stays buffered until its newline arrives or the owner flushes it (idle timeout, EOF).
 * Pure: no I/O, never logs. The buffer grows on demand, up to max_chunk. */

#include <stdbool.h>
#include <stddef.h>

#define LINEBUF_DEFAULT_MAX_CHUNK 16384u

/* Receives one chunk (not NUL-terminated). A negative return aborts the operation and is passed on. */
typedef int (*linebuf_emit_t)(const char *data, size_t len, void *userdata);

typedef struct LineBuf {
        char *buf;
        size_t len;
        size_t cap;
        size_t max_chunk;
} LineBuf;

void linebuf_init(LineBuf *b, size_t max_chunk);
void linebuf_done(LineBuf *b);

/* Appends data; emits a chunk whenever the buffer reaches max_chunk (the complete lines in it, or a cut
 * piece of one long line). Complete lines that fit stay buffered: call linebuf_flush_lines() once the
 * current batch of input is consumed. Returns 0, -ENOMEM, or an emit error. */
int linebuf_feed(LineBuf *b, const void *data, size_t n, linebuf_emit_t emit, void *userdata);

/* Emits everything up to and including the last newline as one chunk. */
int linebuf_flush_lines(LineBuf *b, linebuf_emit_t emit, void *userdata);

/* Emits everything, including a partial last line (idle timeout, EOF). */
int linebuf_flush_all(LineBuf *b, linebuf_emit_t emit, void *userdata);

static inline bool linebuf_has_partial(const LineBuf *b) {
        return b->len > 0;
}
