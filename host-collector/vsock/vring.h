/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* Device side of one split virtqueue (virtio 1.x, section 2.7) living in guest memory. The guest writes the
 * descriptor table and the available ring and may change them at any moment, so every value is read once into a
 * local and validated before use: descriptor ranges against the memory table, chain length against the queue size
 * (no loops), next indexes, avail index jumps, the INDIRECT flag (not offered, so a broken ring) and
 * device-readable descriptors after device-writable ones. The first violation marks the ring broken (with a static
 * reason) and it is not touched again until it is set up anew. No I/O, no logging: fuzzable. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guest-memory.h"

/* The split ring's maximum (virtio 1.x: Queue Size is a power of 2, at most 32768). */
#define VRING_MAX_SIZE 32768u

typedef struct Vring {
        uint32_t num; /* 0 until VHOST_USER_SET_VRING_NUM */
        uint64_t desc_uva, avail_uva, used_uva;
        bool addr_set;

        /* Valid while mapped is true (vring_map() succeeded against the current memory table). */
        bool mapped;
        struct vring_desc *desc;
        struct vring_avail *avail;
        struct vring_used *used;

        uint16_t last_avail_idx; /* next avail entry to take */
        uint16_t used_idx;       /* next used entry to fill */

        bool started;       /* has its kick fd (the frontend started it) */
        bool enabled;       /* VHOST_USER_SET_VRING_ENABLE, or implicitly without VHOST_USER_F_PROTOCOL_FEATURES */
        const char *broken; /* why the guest broke it; NULL while healthy */

        struct iovec *iov; /* num elements: the buffers of the chain being processed */
} Vring;

/* One descriptor chain: iov[0..n_readable) are device-readable, iov[n_readable..n_readable+n_writable) writable. */
typedef struct VringChain {
        uint16_t head;
        struct iovec *iov;
        size_t n_readable, n_writable;
        uint64_t readable_len, writable_len;
} VringChain;

void vring_done(Vring *vr);

/* A power of 2 in 1..VRING_MAX_SIZE, else -EINVAL (the ring is not changed). */
int vring_set_num(Vring *vr, uint32_t num);
void vring_set_addr(Vring *vr, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva);
/* Also what the device continues from: everything before was used. */
void vring_set_base(Vring *vr, uint16_t base);

/* Translates the ring addresses against the memory table (size and alignment checked). -EINVAL when not
 * configured, -EFAULT when a part lies outside memory or is misaligned. */
int vring_map(Vring *vr, const GuestMemory *m);

/* Whether the device may process this ring now. */
bool vring_usable(const Vring *vr);

/* Takes the next available chain. 1 with *ret filled, 0 when the guest offered nothing, -EBADMSG when the ring is
 * broken (vr->broken says why; set by this call or an earlier one). */
int vring_pop(Vring *vr, const GuestMemory *m, VringChain *ret);

/* Gives the chain taken last back, untouched, so the next vring_pop() returns it again. */
void vring_unpop(Vring *vr);

/* Returns a chain to the guest with len bytes written into its writable buffers. */
void vring_push(Vring *vr, uint16_t head, uint32_t len);

/* Whether the guest wants an interrupt now (it did not set VRING_AVAIL_F_NO_INTERRUPT). */
bool vring_should_notify(const Vring *vr);

/* Marks the ring broken (first reason wins). */
void vring_mark_broken(Vring *vr, const char *reason);
