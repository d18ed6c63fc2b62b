/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linebuf.h"
#include "macro.h"

typedef struct Sink {
        char data[1 << 16];
        size_t len;
        size_t chunk_len[8192];
        size_t n_chunks;
} Sink;

static int collect(const char *data, size_t len, void *userdata) {
        Sink *s = userdata;
        assert_true(len > 0);
        assert_true(s->len + len <= sizeof(s->data));
        assert_true(s->n_chunks < 8192);
        memcpy(s->data + s->len, data, len);
        s->len += len;
        s->chunk_len[s->n_chunks++] = len;
        return 0;
}

static void assert_chunk(const Sink *s, size_t i, const char *expected) {
        size_t off = 0;
        for (size_t k = 0; k < i; k++)
                off += s->chunk_len[k];
        assert_int_equal(s->chunk_len[i], strlen(expected));
        assert_memory_equal(s->data + off, expected, strlen(expected));
}

static void test_complete_lines_wait_for_flush(void **state) {
        LineBuf b;
        Sink s = {};
        linebuf_init(&b, 64);

        assert_int_equal(linebuf_feed(&b, "one\ntwo\nthr", 11, collect, &s), 0);
        assert_int_equal(s.n_chunks, 0);
        assert_int_equal(linebuf_flush_lines(&b, collect, &s), 0);
        assert_int_equal(s.n_chunks, 1);
        assert_chunk(&s, 0, "one\ntwo\n"); /* several lines, one record */
        assert_true(linebuf_has_partial(&b));

        /* The partial line stays until its newline arrives. */
        assert_int_equal(linebuf_flush_lines(&b, collect, &s), 0);
        assert_int_equal(s.n_chunks, 1);
        assert_int_equal(linebuf_feed(&b, "ee\n", 3, collect, &s), 0);
        assert_int_equal(linebuf_flush_lines(&b, collect, &s), 0);
        assert_chunk(&s, 1, "three\n");
        assert_false(linebuf_has_partial(&b));
        linebuf_done(&b);
}

static void test_partial_line_flush_all(void **state) {
        LineBuf b;
        Sink s = {};
        linebuf_init(&b, 64);

        assert_int_equal(linebuf_feed(&b, "a\nprompt> ", 10, collect, &s), 0);
        assert_int_equal(linebuf_flush_lines(&b, collect, &s), 0);
        assert_chunk(&s, 0, "a\n");
        /* idle timeout or EOF */
        assert_int_equal(linebuf_flush_all(&b, collect, &s), 0);
        assert_chunk(&s, 1, "prompt> ");
        assert_false(linebuf_has_partial(&b));
        assert_int_equal(linebuf_flush_all(&b, collect, &s), 0);
        assert_int_equal(s.n_chunks, 2); /* nothing left: nothing emitted */
        linebuf_done(&b);
}

static void test_long_line_is_cut(void **state) {
        LineBuf b;
        Sink s = {};
        char line[41];
        linebuf_init(&b, 16);

        memset(line, 'x', 40);
        line[40] = '\n';
        assert_int_equal(linebuf_feed(&b, line, 41, collect, &s), 0);
        assert_int_equal(s.n_chunks, 2);
        assert_int_equal(s.chunk_len[0], 16);
        assert_int_equal(s.chunk_len[1], 16);
        assert_int_equal(linebuf_flush_lines(&b, collect, &s), 0);
        assert_int_equal(s.n_chunks, 3);
        assert_int_equal(s.chunk_len[2], 9); /* the tail, with its newline */
        assert_memory_equal(s.data, line, 41);
        linebuf_done(&b);
}

static void test_full_buffer_emits_lines_keeps_partial(void **state) {
        LineBuf b;
        Sink s = {};
        linebuf_init(&b, 16);

        assert_int_equal(linebuf_feed(&b, "0123456789\nabcdefghij\n", 22, collect, &s), 0);
        /* Full at 16 bytes: the complete line goes, "abcde" waits for more. */
        assert_chunk(&s, 0, "0123456789\n");
        assert_int_equal(s.n_chunks, 1);
        assert_int_equal(linebuf_flush_lines(&b, collect, &s), 0);
        assert_chunk(&s, 1, "abcdefghij\n");
        linebuf_done(&b);
}

/* Any input, fed in any pieces: the output is the input, in order, in chunks of at most max bytes, and a
 * chunk ends in a newline unless a line had to be cut or the final flush emitted a partial line. */
static void test_random_chunking_preserves_stream(void **state) {
        static char input[40000];
        uint32_t seed = 12345;
        for (size_t i = 0; i < sizeof(input); i++) {
                seed = seed * 1103515245 + 12345;
                uint32_t v = (seed >> 16) % 100;
                input[i] = v < 8 ? '\n' : (char) ('a' + v % 26);
        }
        /* One very long line in the middle */
        memset(input + 20000, 'L', 5000);

        for (size_t max = 16; max <= 4096; max *= 4) {
                LineBuf b;
                Sink *s = calloc(1, sizeof(Sink));
                assert_non_null(s);
                linebuf_init(&b, max);

                size_t off = 0;
                while (off < sizeof(input)) {
                        seed = seed * 1103515245 + 12345;
                        size_t n = MIN((size_t) ((seed >> 16) % 700 + 1), sizeof(input) - off);
                        assert_int_equal(linebuf_feed(&b, input + off, n, collect, s), 0);
                        off += n;
                        if ((seed >> 8) % 3 == 0)
                                assert_int_equal(linebuf_flush_lines(&b, collect, s), 0);
                }
                assert_int_equal(linebuf_flush_all(&b, collect, s), 0);

                assert_int_equal(s->len, sizeof(input));
                assert_memory_equal(s->data, input, sizeof(input));
                size_t pos = 0, cut = 0;
                for (size_t i = 0; i < s->n_chunks; i++) {
                        assert_true(s->chunk_len[i] <= max);
                        pos += s->chunk_len[i];
                        if (s->data[pos - 1] != '\n') {
                                assert_int_equal(s->chunk_len[i] == max || i == s->n_chunks - 1, 1);
                                cut++;
                        }
                }
                assert_true(cut > 0); /* the long line was cut */
                linebuf_done(&b);
                free(s);
        }
}

static int fail_emit(const char *data, size_t len, void *userdata) {
        return -ENOSPC;
}

static void test_emit_error_propagates(void **state) {
        LineBuf b;
        linebuf_init(&b, 8);
        assert_int_equal(linebuf_feed(&b, "abc\n", 4, fail_emit, NULL), 0);
        assert_int_equal(linebuf_flush_lines(&b, fail_emit, NULL), -ENOSPC);
        /* Nothing consumed on failure */
        assert_int_equal(b.len, 4);
        linebuf_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_complete_lines_wait_for_flush),
                cmocka_unit_test(test_partial_line_flush_all),
                cmocka_unit_test(test_long_line_is_cut),
                cmocka_unit_test(test_full_buffer_emits_lines_keeps_partial),
                cmocka_unit_test(test_random_chunking_preserves_stream),
                cmocka_unit_test(test_emit_error_propagates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
