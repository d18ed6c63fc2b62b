/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* The guest's memory as the vhost-user frontend shared it (VHOST_USER_SET_MEM_TABLE): a bounded table of regions,
 * each known by its guest physical address (what descriptors carry) and by the frontend's own virtual address
 * (what VHOST_USER_SET_VRING_ADDR carries). Every translation checks that the whole range lies inside one region,
 * overflow-safe: the guest controls the addresses and lengths, so nothing outside the mappings is ever touched. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QEMU sends at most 8 regions without VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS (not offered). */
#define GUEST_MEMORY_MAX_REGIONS 8

typedef struct GuestMemoryRegion {
        uint64_t gpa;  /* guest physical address of the first byte */
        uint64_t size; /* bytes */
        uint64_t uva;  /* the frontend's virtual address of the first byte */
        uint8_t *host; /* our address of the first byte */
        void *map;     /* what munmap() gets, NULL when the memory is not ours (tests, fuzzing) */
        size_t map_len;
} GuestMemoryRegion;

typedef struct GuestMemory {
        GuestMemoryRegion regions[GUEST_MEMORY_MAX_REGIONS];
        unsigned n_regions;
} GuestMemory;

/* Maps size + mmap_offset bytes of fd (MAP_SHARED) and adds the region. The fd is not consumed.
 * -EINVAL for an empty or overflowing region, -E2BIG when the table is full, -errno from mmap. */
int guest_memory_add_fd(GuestMemory *m, uint64_t gpa, uint64_t size, uint64_t uva, uint64_t mmap_offset, int fd);

/* Adds memory the caller owns (not unmapped by guest_memory_clear()). Same checks as guest_memory_add_fd(). */
int guest_memory_add_mapped(GuestMemory *m, uint64_t gpa, uint64_t size, uint64_t uva, void *host);

/* Unmaps what was mapped and empties the table. */
void guest_memory_clear(GuestMemory *m);

/* Our address of [gpa, gpa + len) when the whole range lies in one region: 0, or -EFAULT. len 0 still needs gpa
 * inside a region (or at its very end). */
int guest_memory_gpa(const GuestMemory *m, uint64_t gpa, uint64_t len, uint8_t **ret);

/* Same for the frontend's virtual addresses (ring addresses). */
int guest_memory_uva(const GuestMemory *m, uint64_t uva, uint64_t len, uint8_t **ret);
