/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "unwritten.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t entry_cost(size_t len) {
        return (uint64_t) len + UNWRITTEN_ENTRY_OVERHEAD;
}

void unwritten_init(Unwritten *u, UnwrittenBudget *budget) {
        *u = (Unwritten) { .budget = budget };
}

static void unwritten_free_entries(Unwritten *u) {
        UnwrittenEntry *e = u->first;
        while (e) {
                UnwrittenEntry *next = e->next;
                free(e);
                e = next;
        }
        if (u->budget)
                u->budget->bytes -= u->bytes;
        u->first = u->last = NULL;
        u->n = 0;
        u->bytes = 0;
}

void unwritten_clear(Unwritten *u) {
        unwritten_free_entries(u);
        u->incomplete = false;
}

void unwritten_give_up(Unwritten *u) {
        unwritten_free_entries(u);
        u->incomplete = true;
}

int unwritten_add(Unwritten *u, int type, uint64_t recv_unix_ns, const void *payload, size_t len) {
        uint64_t cost = entry_cost(len);

        if (u->incomplete)
                return -ENOBUFS;
        if (u->bytes + cost > UNWRITTEN_BOOT_MAX_BYTES ||
            (u->budget && u->budget->bytes + cost > u->budget->max_bytes)) {
                unwritten_give_up(u);
                return -ENOBUFS;
        }
        UnwrittenEntry *e = malloc(sizeof(UnwrittenEntry) + len);
        if (!e) {
                unwritten_give_up(u);
                return -ENOMEM;
        }
        *e = (UnwrittenEntry) { .type = type, .recv_unix_ns = recv_unix_ns, .offset = UINT64_MAX, .len = len };
        if (len > 0)
                memcpy(e->payload, payload, len);
        if (u->last)
                u->last->next = e;
        else
                u->first = e;
        u->last = e;
        u->n++;
        u->bytes += cost;
        if (u->budget)
                u->budget->bytes += cost;
        return 0;
}

void unwritten_drop_first(Unwritten *u, size_t n) {
        while (n-- > 0 && u->first) {
                UnwrittenEntry *e = u->first;
                u->first = e->next;
                if (!u->first)
                        u->last = NULL;
                u->n--;
                u->bytes -= entry_cost(e->len);
                if (u->budget)
                        u->budget->bytes -= entry_cost(e->len);
                free(e);
        }
}
