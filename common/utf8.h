/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. NUL bytes are rejected
 * too: they cannot travel through C strings and have no business in names or attribute values. */
bool utf8_is_valid(const char *s, size_t n);

/* Returns a newly allocated NUL-terminated copy of s[0..n) with each invalid sequence (and NUL) replaced by
 * U+FFFD, or NULL on allocation failure. If ret_replaced is set it receives the number of replacements. */
char *utf8_sanitize(const char *s, size_t n, size_t *ret_replaced);

/* Cuts s, valid UTF-8, to at most max bytes without splitting a character. */
void utf8_truncate(char *s, size_t max);
