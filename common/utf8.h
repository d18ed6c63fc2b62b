/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. NUL bytes are rejected
 * too: they cannot travel through C strings and have no business in names or attribute values. */
bool utf8_is_valid(const char *s, size_t n);

/* The length (1 to 4) of the valid sequence at s, n >= 1 bytes available; 0 when it is invalid or a NUL. */
size_t utf8_sequence_length(const unsigned char *s, size_t n);

/* One step of every sanitizing copy: the character at s (n >= 1 bytes available) goes to out as it is, or, when
 * invalid or a NUL, its first byte becomes U+FFFD. Returns the bytes of s consumed; *ret_written receives the
 * bytes written to out (at most 4). */
static inline size_t utf8_copy_char(const unsigned char *s, size_t n, unsigned char *out, size_t *ret_written) {
        size_t k = utf8_sequence_length(s, n);
        if (k == 0) {
                memcpy(out, "\xEF\xBF\xBD", 3);
                *ret_written = 3;
                return 1;
        }
        memcpy(out, s, k);
        *ret_written = k;
        return k;
}

/* Returns a newly allocated NUL-terminated copy of s[0..n) with each invalid sequence (and NUL) replaced by
 * U+FFFD, or NULL on allocation failure. If ret_replaced is set it receives the number of replacements. */
char *utf8_sanitize(const char *s, size_t n, size_t *ret_replaced);

/* Cuts s, valid UTF-8, to at most max bytes without splitting a character. */
void utf8_truncate(char *s, size_t max);
