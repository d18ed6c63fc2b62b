/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#pragma once

/* What the terminal can show: width, UTF-8 or not, and strings made safe to print on it. Pure helpers: the
 * caller passes in the environment so tests do not depend on the machine they run on. */

#include <stdbool.h>
#include <stddef.h>

#define TERMINAL_WIDTH_DEFAULT 100U
#define TERMINAL_WIDTH_MAX 4096U

/* True if the effective LC_CTYPE (LC_ALL, else LC_CTYPE, else LANG; unset or empty skipped) names UTF-8. */
bool locale_is_utf8(const char *lc_all, const char *lc_ctype, const char *lang);

/* $COLUMNS if it is a sane positive number, else the width of the terminal on fd (TIOCGWINSZ), else
 * TERMINAL_WIDTH_DEFAULT. */
unsigned terminal_width(const char *columns_env, int fd);

/* $LINES if it is a sane positive number, else the height of the terminal on fd, else 0 (unknown). */
unsigned terminal_height(const char *lines_env, int fd);

/* Columns taken by a UTF-8 string, counted as one per code point (wide CJK glyphs are not special-cased). */
size_t display_width(const char *s);

/* A newly allocated copy of s that cannot drive the terminal: invalid UTF-8 becomes U+FFFD (or '?' in ASCII
 * mode), C0/C1 control characters and DEL become "\xNN" escapes (tab is kept when keep_tab), invisible
 * characters that reorder or hide text (bidi controls such as U+202E, zero-width characters, U+2028/U+2029, the
 * BOM, tags) become "\uXXXX" ("\UXXXXXXXX") escapes, and in ASCII mode every other non-ASCII character becomes
 * '?'. NULL on allocation failure. */
char *terminal_sanitize(const char *s, bool keep_tab, bool ascii);

/* A newly allocated copy of s cut to at most width columns; a cut string ends in "…" ("~" in ASCII mode).
 * NULL on allocation failure. */
char *truncate_to_width(const char *s, size_t width, bool ascii);
