/* SPDX-License-Identifier: MIT */
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_sequence_length(const unsigned char *s, size_t n) {
        unsigned char c = s[0];

        if (c == 0)
                return 0;
        if (c < 0x80)
                return 1;
        if (c < 0xC2) /* continuation byte or overlong 2-byte lead */
                return 0;
        if (c < 0xE0) {
                if (n < 2 || (s[1] & 0xC0) != 0x80)
                        return 0;
                return 2;
        }
        if (c < 0xF0) {
                if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
                        return 0;
                if (c == 0xE0 && s[1] < 0xA0) /* overlong */
                        return 0;
                if (c == 0xED && s[1] >= 0xA0) /* surrogates */
                        return 0;
                return 3;
        }
        if (c < 0xF5) {
                if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                        return 0;
                if (c == 0xF0 && s[1] < 0x90) /* overlong */
                        return 0;
                if (c == 0xF4 && s[1] >= 0x90) /* above U+10FFFF */
                        return 0;
                return 4;
        }
        return 0;
}

bool utf8_is_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s;
        size_t i = 0;

        while (i < n) {
                size_t k = utf8_sequence_length(p + i, n - i);
                if (k == 0)
                        return false;
                i += k;
        }
        return true;
}

char *utf8_sanitize(const char *s, size_t n, size_t *ret_replaced) {
        const unsigned char *p = (const unsigned char *) s;
        size_t replaced = 0;

        /* Worst case every byte becomes the 3-byte U+FFFD. */
        if (n > (SIZE_MAX - 1) / 3)
                return NULL;
        char *out = malloc(n * 3 + 1);
        if (!out)
                return NULL;

        size_t o = 0;
        for (size_t i = 0; i < n;) {
                size_t w, k = utf8_copy_char(p + i, n - i, (unsigned char *) out + o, &w);
                replaced += w != k; /* a replacement writes 3 bytes for 1 */
                i += k;
                o += w;
        }
        out[o] = '\0';
        if (ret_replaced)
                *ret_replaced = replaced;
        return out;
}

void utf8_truncate(char *s, size_t max) {
        size_t len = strlen(s);

        if (len <= max)
                return;
        len = max;
        while (len > 0 && ((unsigned char) s[len] & 0xC0) == 0x80)
                len--;
        s[len] = '\0';
}
