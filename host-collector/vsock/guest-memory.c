/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "guest-memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static int region_check(const GuestMemory *m, uint64_t gpa, uint64_t size, uint64_t uva) {
        if (m->n_regions >= GUEST_MEMORY_MAX_REGIONS)
                return -E2BIG;
        if (size == 0 || size > SIZE_MAX)
                return -EINVAL;
        /* Last byte addresses must not wrap, so that later range checks can subtract safely. */
        if (gpa + (size - 1) < gpa || uva + (size - 1) < uva)
                return -EINVAL;
        return 0;
}

int guest_memory_add_fd(GuestMemory *m, uint64_t gpa, uint64_t size, uint64_t uva, uint64_t mmap_offset, int fd) {
        void *p;
        int r;

        r = region_check(m, gpa, size, uva);
        if (r < 0)
                return r;
        if (mmap_offset > SIZE_MAX - size)
                return -EINVAL;

        /* The offset is applied by hand: it need not be page aligned, and the spec maps from 0. */
        p = mmap(NULL, (size_t) (size + mmap_offset), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;

        m->regions[m->n_regions++] = (GuestMemoryRegion) {
                .gpa = gpa,
                .size = size,
                .uva = uva,
                .host = (uint8_t *) p + mmap_offset,
                .map = p,
                .map_len = (size_t) (size + mmap_offset),
        };
        return 0;
}

int guest_memory_add_mapped(GuestMemory *m, uint64_t gpa, uint64_t size, uint64_t uva, void *host) {
        int r;

        r = region_check(m, gpa, size, uva);
        if (r < 0)
                return r;
        if (!host)
                return -EINVAL;
        m->regions[m->n_regions++] = (GuestMemoryRegion) {
                .gpa = gpa,
                .size = size,
                .uva = uva,
                .host = host,
        };
        return 0;
}

void guest_memory_clear(GuestMemory *m) {
        for (unsigned i = 0; i < m->n_regions; i++)
                if (m->regions[i].map)
                        (void) munmap(m->regions[i].map, m->regions[i].map_len);
        *m = (GuestMemory) {};
}

/* [addr, addr + len) inside [start, start + size): written without computing addr + len, which may wrap. */
static bool range_inside(uint64_t start, uint64_t size, uint64_t addr, uint64_t len) {
        if (addr < start)
                return false;
        uint64_t off = addr - start;
        return off <= size && len <= size - off;
}

/* addr..addr+len inside one region, by guest physical address or by the frontend's virtual address. */
static int lookup(const GuestMemory *m, bool by_uva, uint64_t addr, uint64_t len, uint8_t **ret) {
        for (unsigned i = 0; i < m->n_regions; i++) {
                const GuestMemoryRegion *r = m->regions + i;
                uint64_t start = by_uva ? r->uva : r->gpa;
                if (range_inside(start, r->size, addr, len)) {
                        *ret = r->host + (addr - start);
                        return 0;
                }
        }
        return -EFAULT;
}

int guest_memory_gpa(const GuestMemory *m, uint64_t gpa, uint64_t len, uint8_t **ret) {
        return lookup(m, false, gpa, len, ret);
}

int guest_memory_uva(const GuestMemory *m, uint64_t uva, uint64_t len, uint8_t **ret) {
        return lookup(m, true, uva, len, ret);
}
