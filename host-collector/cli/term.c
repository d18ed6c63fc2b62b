/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "term.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>

#include "macro.h"
#include "utf8.h"

static bool is_set(const char *s) {
        return s && *s;
}

bool locale_is_utf8(const char *lc_all, const char *lc_ctype, const char *lang) {
        const char *effective = is_set(lc_all) ? lc_all : is_set(lc_ctype) ? lc_ctype : lang;

        if (!is_set(effective))
                return false;

        /* Locale names spell the codeset "UTF-8", "utf8", "UTF8"...: compare case-insensitively, dash optional. */
        const char *dot = strchr(effective, '.');
        if (!dot)
                return false;
        const char *codeset = dot + 1;
        size_t len = strcspn(codeset, "@");
        return (len == 5 && strncasecmp(codeset, "utf-8", 5) == 0) ||
                (len == 4 && strncasecmp(codeset, "utf8", 4) == 0);
}

/* $COLUMNS or $LINES if sane, else the terminal's columns or rows, else fallback. */
static unsigned terminal_size(const char *env, int fd, bool rows, unsigned fallback) {
        if (is_set(env)) {
                char *end;
                errno = 0;
                unsigned long v = strtoul(env, &end, 10);
                if (errno == 0 && *end == '\0' && env[0] != '-' && v > 0 && v <= TERMINAL_WIDTH_MAX)
                        return (unsigned) v;
        }

        struct winsize ws = {};
        if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && (rows ? ws.ws_row : ws.ws_col) > 0)
                return MIN((unsigned) (rows ? ws.ws_row : ws.ws_col), TERMINAL_WIDTH_MAX);
        return fallback;
}

unsigned terminal_width(const char *columns_env, int fd) {
        return terminal_size(columns_env, fd, false, TERMINAL_WIDTH_DEFAULT);
}

unsigned terminal_height(const char *lines_env, int fd) {
        return terminal_size(lines_env, fd, true, 0);
}

size_t display_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        n++;
        return n;
}

/* Invisible characters that reorder or hide text: bidi embeddings, overrides and isolates (a name with U+202E
 * prints backwards: "exe.txt" shows as "txt.exe"), zero-width characters, the BOM, line and paragraph
 * separators, interlinear annotations and tags. A guest chooses these strings: shown, they could make one
 * machine's output pass for another's, or hide what it says. */
static bool is_invisible_format(uint32_t cp) {
        return cp == 0x061C || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
                (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
                (cp >= 0xE0000 && cp <= 0xE007F);
}

/* The code point of a valid UTF-8 sequence of n bytes. */
static uint32_t utf8_code_point(const unsigned char *p, size_t n) {
        switch (n) {
        case 2:
                return (uint32_t) (p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        case 3:
                return (uint32_t) (p[0] & 0x0F) << 12 | (uint32_t) (p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        case 4:
                return (uint32_t) (p[0] & 0x07) << 18 | (uint32_t) (p[1] & 0x3F) << 12 | (uint32_t) (p[2] & 0x3F) << 6 |
                        (p[3] & 0x3F);
        default:
                return p[0];
        }
}

char *terminal_sanitize(const char *s, bool keep_tab, bool ascii) {
        _cleanup_free_ char *valid = utf8_sanitize(s, strlen(s), NULL);
        if (!valid)
                return NULL;

        /* Worst case every byte becomes a 4-byte escape. */
        size_t len = strlen(valid);
        char *out = malloc(len * 4 + 1);
        if (!out)
                return NULL;

        char *o = out;
        const unsigned char *end = (const unsigned char *) valid + len;
        for (const unsigned char *p = (const unsigned char *) valid; *p;) {
                /* valid holds only whole characters, so n is 1 to 4. */
                size_t n = utf8_sequence_length(p, end - p);

                if (*p < 0x20 || *p == 0x7F) {
                        if (*p == '\t' && keep_tab)
                                *o++ = '\t';
                        else
                                o += sprintf(o, "\\x%02x", *p);
                        p++;
                } else if (n == 2 && p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
                        /* C1 controls (U+0080..U+009F): some terminals act on them like ESC sequences. */
                        o += sprintf(o, "\\x%02x", p[1]);
                        p += 2;
                } else if (n > 1 && is_invisible_format(utf8_code_point(p, n))) {
                        uint32_t cp = utf8_code_point(p, n);
                        o += cp > 0xFFFF ? sprintf(o, "\\U%08x", cp) : sprintf(o, "\\u%04x", cp);
                        p += n;
                } else if (n > 1 && ascii) {
                        *o++ = '?';
                        p += n;
                } else {
                        memcpy(o, p, n);
                        o += n;
                        p += n;
                }
        }
        *o = '\0';
        return out;
}

char *truncate_to_width(const char *s, size_t width, bool ascii) {
        if (display_width(s) <= width)
                return strdup(s);

        const char *ellipsis = ascii ? "~" : "…";
        size_t keep = width > 0 ? width - 1 : 0;
        const char *p = s;
        for (size_t cols = 0; *p && cols < keep; cols++) {
                p++;
                while (((unsigned char) *p & 0xC0) == 0x80)
                        p++;
        }
        size_t bytes = (size_t) (p - s);

        char *out = malloc(bytes + strlen(ellipsis) + 1);
        if (!out)
                return NULL;
        memcpy(out, s, bytes);
        strcpy(out + bytes, width > 0 ? ellipsis : "");
        return out;
}
