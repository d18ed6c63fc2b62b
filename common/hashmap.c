/* SPDX-License-Identifier: MIT */
#include "hashmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct HashmapEntry {
        struct HashmapEntry *next;
        const char *key;
        void *value;
        uint64_t hash;
} HashmapEntry;

struct Hashmap {
        HashmapEntry **buckets;
        size_t n_buckets; /* power of two */
        size_t size;
};

/* FNV-1a, not keyed: the keys are machine ids and small formatted integers chosen by the registering
 * orchestrator, and tether-vsock's connection ports, largely a guest's choice. A guest that makes those
 * collide slows only the lookups of its own tether-vsock (one process per VM), among at most its
 * max_connections. */
static uint64_t string_hash(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037);
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= UINT64_C(1099511628211);
        }
        return h;
}

Hashmap *hashmap_new(void) {
        Hashmap *h = calloc(1, sizeof(Hashmap));
        if (!h)
                return NULL;
        h->n_buckets = 64;
        h->buckets = calloc(h->n_buckets, sizeof(HashmapEntry *));
        if (!h->buckets) {
                free(h);
                return NULL;
        }
        return h;
}

Hashmap *hashmap_free(Hashmap *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_buckets; i++) {
                HashmapEntry *e = h->buckets[i];
                while (e) {
                        HashmapEntry *next = e->next;
                        free(e);
                        e = next;
                }
        }
        free(h->buckets);
        free(h);
        return NULL;
}

static void hashmap_grow(Hashmap *h) {
        size_t n = h->n_buckets * 2;
        HashmapEntry **b = calloc(n, sizeof(HashmapEntry *));
        if (!b)
                return; /* a fuller table is slower, not wrong */

        for (size_t i = 0; i < h->n_buckets; i++) {
                HashmapEntry *e = h->buckets[i];
                while (e) {
                        HashmapEntry *next = e->next;
                        size_t k = e->hash & (n - 1);
                        e->next = b[k];
                        b[k] = e;
                        e = next;
                }
        }
        free(h->buckets);
        h->buckets = b;
        h->n_buckets = n;
}

static HashmapEntry **hashmap_find(const Hashmap *h, const char *key, uint64_t hash) {
        HashmapEntry **p = &h->buckets[hash & (h->n_buckets - 1)];
        for (; *p; p = &(*p)->next)
                if ((*p)->hash == hash && strcmp((*p)->key, key) == 0)
                        return p;
        return p;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        uint64_t hash = string_hash(key);
        HashmapEntry **p = hashmap_find(h, key, hash);
        if (*p)
                return -EEXIST;

        HashmapEntry *e = malloc(sizeof(HashmapEntry));
        if (!e)
                return -ENOMEM;
        *e = (HashmapEntry) { .key = key, .value = value, .hash = hash };
        *p = e;
        h->size++;

        if (h->size > h->n_buckets * 3 / 4)
                hashmap_grow(h);
        return 0;
}

void *hashmap_get(const Hashmap *h, const char *key) {
        if (!h || !key)
                return NULL;
        HashmapEntry **p = hashmap_find(h, key, string_hash(key));
        return *p ? (*p)->value : NULL;
}

void *hashmap_remove(Hashmap *h, const char *key) {
        if (!h || !key)
                return NULL;
        HashmapEntry **p = hashmap_find(h, key, string_hash(key));
        HashmapEntry *e = *p;
        if (!e)
                return NULL;
        void *value = e->value;
        *p = e->next;
        free(e);
        h->size--;
        return value;
}
