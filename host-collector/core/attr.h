/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Owned key/value string pairs (registration attributes, milestone and phase attributes). */

#include <stddef.h>

#include "tether.pb-c.h"

typedef struct Attr {
        char *key;
        char *value;
} Attr;

void attrs_free(Attr *a, size_t n);

/* Copies protobuf attributes. Returns 0 or -ENOMEM. *ret_bytes gets the bytes of text copied. */
int attrs_from_pb(Tether__Attribute *const *a, size_t n, Attr **ret, size_t *ret_n, size_t *ret_bytes);

/* Copies n pairs from parallel arrays. Returns 0 or -ENOMEM. */
int attrs_from_arrays(const char *const *keys, const char *const *values, size_t n, Attr **ret);

/* strdup that keeps NULL as NULL. Returns 0 or -ENOMEM. */
int strdup_or_null(const char *s, char **ret);
/* Replaces *p with a copy of s (or NULL). Returns 0 or -ENOMEM (then *p is unchanged). */
int free_and_strdup(char **p, const char *s);
