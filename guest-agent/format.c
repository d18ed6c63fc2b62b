/* SPDX-License-Identifier: MIT */
#include "format.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct Out {
        char *buf;
        size_t size;
        size_t len; /* would-be length */
} Out;

static void put(Out *o, char c) {
        if (o->len + 1 < o->size)
                o->buf[o->len] = c;
        o->len++;
}

static void put_padded(Out *o, const char *s, size_t n, unsigned width, bool left, char pad) {
        if (!left)
                for (size_t i = n; i < width; i++)
                        put(o, pad);
        for (size_t i = 0; i < n; i++)
                put(o, s[i]);
        if (left)
                for (size_t i = n; i < width; i++)
                        put(o, ' ');
}

int vformat(char *buf, size_t size, const char *fmt, va_list ap) {
        Out o = { .buf = buf, .size = size };
        int saved_errno = errno;

        for (const char *p = fmt; *p; p++) {
                if (*p != '%') {
                        put(&o, *p);
                        continue;
                }
                p++;

                bool left = false;
                char pad = ' ';
                for (;; p++) {
                        if (*p == '-')
                                left = true;
                        else if (*p == '0')
                                pad = '0';
                        else
                                break;
                }
                unsigned width = 0;
                while (*p >= '0' && *p <= '9')
                        width = width * 10 + (unsigned) (*p++ - '0');
                int precision = -1;
                if (*p == '.') {
                        p++;
                        if (*p == '*') {
                                precision = va_arg(ap, int);
                                p++;
                        } else {
                                precision = 0;
                                while (*p >= '0' && *p <= '9')
                                        precision = precision * 10 + (*p++ - '0');
                        }
                }
                int longness = 0; /* 1: long, size_t, ptrdiff_t, 2: long long, intmax_t, -1: short, -2: char */
                while (*p && strchr("hlzjt", *p)) {
                        if (*p == 'j' || (*p == 'l' && longness == 1))
                                longness = 2;
                        else if (*p == 'h')
                                longness = longness < 0 ? -2 : -1;
                        else
                                longness = 1;
                        p++;
                }

                char num[24];
                const char *s = num;
                size_t n;
                switch (*p) {
                case 'd':
                case 'i':
                case 'u':
                case 'x': {
                        uint64_t v;
                        bool negative = false;
                        if (*p == 'd' || *p == 'i') {
                                int64_t sv = longness == 2 ? (int64_t) va_arg(ap, long long) :
                                        longness == 1      ? (int64_t) va_arg(ap, long) :
                                                             va_arg(ap, int);
                                if (longness == -1)
                                        sv = (short) sv;
                                else if (longness == -2)
                                        sv = (signed char) sv;
                                negative = sv < 0;
                                v = negative ? (uint64_t) 0 - (uint64_t) sv : (uint64_t) sv;
                        } else {
                                v = longness == 2     ? (uint64_t) va_arg(ap, unsigned long long) :
                                        longness == 1 ? (uint64_t) va_arg(ap, unsigned long) :
                                                        va_arg(ap, unsigned);
                                if (longness == -1)
                                        v = (unsigned short) v;
                                else if (longness == -2)
                                        v = (unsigned char) v;
                        }
                        unsigned base = *p == 'x' ? 16 : 10;
                        char *e = num + sizeof(num);
                        do {
                                *--e = "0123456789abcdef"[v % base];
                                v /= base;
                        } while (v > 0);
                        if (negative) {
                                if (pad == '0' && width > 0) {
                                        put(&o, '-');
                                        width--;
                                } else
                                        *--e = '-';
                        }
                        s = e;
                        n = (size_t) (num + sizeof(num) - e);
                        break;
                }
                case 's':
                        s = va_arg(ap, const char *);
                        if (!s)
                                s = "(null)";
                        n = precision >= 0 ? strnlen(s, (size_t) precision) : strlen(s);
                        pad = ' ';
                        break;
                case 'm':
                        s = strerror(saved_errno);
                        n = strlen(s);
                        break;
                case 'c':
                        num[0] = (char) va_arg(ap, int);
                        n = 1;
                        break;
                case '%':
                        num[0] = '%';
                        n = 1;
                        break;
                default:
                        /* Unsupported conversion: print it as is rather than misread the arguments further. */
                        if (!*p)
                                p--;
                        num[0] = '%';
                        num[1] = *p;
                        n = *p ? 2 : 1;
                        break;
                }
                put_padded(&o, s, n, width, left, pad);
        }

        if (o.size > 0)
                o.buf[MIN(o.len, o.size - 1)] = '\0';
        errno = saved_errno;
        return o.len > INT32_MAX ? INT32_MAX : (int) o.len;
}

int format(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vformat(buf, size, fmt, ap);
        va_end(ap);
        return n;
}

char *format_alloc(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vformat(NULL, 0, fmt, ap);
        va_end(ap);

        char *s = malloc((size_t) n + 1);
        if (!s)
                return NULL;
        va_start(ap, fmt);
        vformat(s, (size_t) n + 1, fmt, ap);
        va_end(ap);
        return s;
}
