/* SPDX-License-Identifier: MIT */
#pragma once

/* NULL-terminated string vectors and shell-like word splitting. Library code: never logs. */

#include <stddef.h>

#include "macro.h"

char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);

/* Deep copy. Returns 0 or -ENOMEM. */
int strv_copy(char *const *l, char ***ret);

/* Appends a copy of s. Returns 0 or -ENOMEM (l unchanged). */
int strv_push(char ***l, const char *s);

/* Splits s into words like a POSIX shell does for a simple command, without expansions: blanks separate
 * words, '...' is literal, "..." is literal except for \" \\ \$ \` and an escaped newline, and a backslash
 * outside quotes escapes the next character. Returns 0 (ret may be an empty vector), -EINVAL for an
 * unterminated quote or a trailing backslash, or -ENOMEM. */
int shell_split(const char *s, char ***ret);
