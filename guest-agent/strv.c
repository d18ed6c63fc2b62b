/* SPDX-License-Identifier: MIT */
#include "strv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

int strv_push(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char *copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        char **nl = realloc(*l, (n + 2) * sizeof(char *));
        if (!nl) {
                free(copy);
                return -ENOMEM;
        }
        nl[n] = copy;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

int strv_copy(char *const *l, char ***ret) {
        size_t n = strv_length(l);
        char **c = calloc(n + 1, sizeof(char *));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(l[i]))) {
                        strv_free(c);
                        return -ENOMEM;
                }
        *ret = c;
        return 0;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int shell_split(const char *s, char ***ret) {
        _cleanup_strv_free_ char **words = calloc(1, sizeof(char *));
        if (!words)
                return -ENOMEM;

        /* A word is never longer than the input. */
        _cleanup_free_ char *word = malloc(strlen(s) + 1);
        if (!word)
                return -ENOMEM;

        const char *p = s;
        for (;;) {
                while (is_blank(*p))
                        p++;
                if (!*p)
                        break;

                size_t n = 0;
                while (*p && !is_blank(*p)) {
                        if (*p == '\'') {
                                const char *end = strchr(p + 1, '\'');
                                if (!end)
                                        return -EINVAL;
                                memcpy(word + n, p + 1, (size_t) (end - p - 1));
                                n += (size_t) (end - p - 1);
                                p = end + 1;
                        } else if (*p == '"') {
                                p++;
                                for (;;) {
                                        if (!*p)
                                                return -EINVAL;
                                        if (*p == '"') {
                                                p++;
                                                break;
                                        }
                                        if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1])) {
                                                if (p[1] != '\n')
                                                        word[n++] = p[1];
                                                p += 2;
                                                continue;
                                        }
                                        word[n++] = *p++;
                                }
                        } else if (*p == '\\') {
                                if (!p[1])
                                        return -EINVAL;
                                if (p[1] != '\n')
                                        word[n++] = p[1];
                                p += 2;
                        } else
                                word[n++] = *p++;
                }
                word[n] = '\0';

                int r = strv_push(&words, word);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(words);
        return 0;
}
