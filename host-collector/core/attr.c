/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "attr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void attrs_free(Attr *a, size_t n) {
        if (!a)
                return;
        for (size_t i = 0; i < n; i++) {
                free(a[i].key);
                free(a[i].value);
        }
        free(a);
}

int attrs_from_pb(Tether__Attribute *const *a, size_t n, Attr **ret, size_t *ret_n, size_t *ret_bytes) {
        size_t bytes = 0;

        if (n == 0) {
                *ret = NULL;
                *ret_n = 0;
                if (ret_bytes)
                        *ret_bytes = 0;
                return 0;
        }

        Attr *out = calloc(n, sizeof(Attr));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                out[i].key = strdup(a[i]->key ?: "");
                out[i].value = strdup(a[i]->value ?: "");
                if (!out[i].key || !out[i].value) {
                        attrs_free(out, n);
                        return -ENOMEM;
                }
                bytes += strlen(out[i].key) + strlen(out[i].value);
        }
        *ret = out;
        *ret_n = n;
        if (ret_bytes)
                *ret_bytes = bytes;
        return 0;
}

int attrs_from_arrays(const char *const *keys, const char *const *values, size_t n, Attr **ret) {
        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        Attr *out = calloc(n, sizeof(Attr));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                out[i].key = strdup(keys[i]);
                out[i].value = strdup(values[i]);
                if (!out[i].key || !out[i].value) {
                        attrs_free(out, n);
                        return -ENOMEM;
                }
        }
        *ret = out;
        return 0;
}

int strdup_or_null(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        char *c = strdup(s);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

int free_and_strdup(char **p, const char *s) {
        char *c = NULL;
        if (strdup_or_null(s, &c) < 0)
                return -ENOMEM;
        free(*p);
        *p = c;
        return 0;
}
