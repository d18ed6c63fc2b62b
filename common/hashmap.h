/* SPDX-License-Identifier: MIT */
#pragma once

/* A small chained hash table from NUL-terminated string keys to pointers. Keys are not copied: each key must
 * stay valid (usually it lives inside the value) until its entry is removed. Library code: never logs. */

#include <stdbool.h>
#include <stddef.h>

typedef struct Hashmap Hashmap;

Hashmap *hashmap_new(void);
Hashmap *hashmap_free(Hashmap *h);

/* Returns 0, -EEXIST if the key is present (the map is unchanged), or -ENOMEM. */
int hashmap_put(Hashmap *h, const char *key, void *value);
void *hashmap_get(const Hashmap *h, const char *key);
/* Returns the removed value, or NULL if the key was not present. */
void *hashmap_remove(Hashmap *h, const char *key);
