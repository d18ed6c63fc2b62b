/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "vring.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>

/* The guest may write these concurrently: load each field exactly once, so that the value checked is the value
 * used (the compiler may not re-read shared memory). */
#define LOAD_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void vring_done(Vring *vr) {
        free(vr->iov);
        *vr = (Vring) {};
}

int vring_set_num(Vring *vr, uint32_t num) {
        struct iovec *iov;

        if (num == 0 || num > VRING_MAX_SIZE || (num & (num - 1)) != 0)
                return -EINVAL;
        iov = reallocarray(vr->iov, num, sizeof(struct iovec));
        if (!iov)
                return -ENOMEM;
        vr->iov = iov;
        vr->num = num;
        vr->mapped = false;
        return 0;
}

void vring_set_addr(Vring *vr, uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva) {
        vr->desc_uva = desc_uva;
        vr->avail_uva = avail_uva;
        vr->used_uva = used_uva;
        vr->addr_set = true;
        vr->mapped = false;
}

void vring_set_base(Vring *vr, uint16_t base) {
        vr->last_avail_idx = base;
        vr->used_idx = base;
}

int vring_map(Vring *vr, const GuestMemory *m) {
        uint8_t *desc, *avail, *used;
        uint64_t n;

        vr->mapped = false;
        if (vr->num == 0 || !vr->addr_set)
                return -EINVAL;
        n = vr->num;
        /* Sizes include the event index fields: the guest may use them even though EVENT_IDX is not offered. */
        if (guest_memory_uva(m, vr->desc_uva, 16 * n, &desc) < 0 ||
            guest_memory_uva(m, vr->avail_uva, 6 + 2 * n, &avail) < 0 ||
            guest_memory_uva(m, vr->used_uva, 6 + 8 * n, &used) < 0)
                return -EFAULT;
        /* Atomic accesses to misaligned fields are undefined: the spec's alignments are required. */
        if (((uintptr_t) desc & 15) != 0 || ((uintptr_t) avail & 1) != 0 || ((uintptr_t) used & 3) != 0)
                return -EFAULT;

        vr->desc = (struct vring_desc *) desc;
        vr->avail = (struct vring_avail *) avail;
        vr->used = (struct vring_used *) used;
        vr->mapped = true;
        return 0;
}

bool vring_usable(const Vring *vr) {
        return vr->mapped && vr->started && vr->enabled && !vr->broken;
}

void vring_mark_broken(Vring *vr, const char *reason) {
        if (!vr->broken)
                vr->broken = reason;
}

static int broken(Vring *vr, const char *reason) {
        vring_mark_broken(vr, reason);
        return -EBADMSG;
}

int vring_pop(Vring *vr, const GuestMemory *m, VringChain *ret) {
        uint16_t avail_idx, pending, head, i;
        size_t n_readable = 0, n_writable = 0;
        uint64_t readable_len = 0, writable_len = 0;

        if (vr->broken)
                return -EBADMSG;
        if (!vr->mapped)
                return 0;

        /* Acquire: the ring entries and descriptors the guest wrote before publishing idx are visible after it. */
        avail_idx = le16toh(__atomic_load_n(&vr->avail->idx, __ATOMIC_ACQUIRE));
        pending = (uint16_t) (avail_idx - vr->last_avail_idx);
        if (pending == 0)
                return 0;
        if (pending > vr->num)
                return broken(vr, "avail index moved by more than the queue size");

        head = le16toh(LOAD_ONCE(vr->avail->ring[vr->last_avail_idx & (vr->num - 1)]));
        if (head >= vr->num)
                return broken(vr, "avail ring names a descriptor beyond the queue size");

        i = head;
        for (uint32_t count = 0;; count++) {
                uint64_t addr;
                uint32_t len;
                uint16_t flags, next;
                uint8_t *p;

                /* A chain has at most num descriptors: one more means it loops. */
                if (count >= vr->num)
                        return broken(vr, "descriptor chain longer than the queue (loop)");

                addr = le64toh(LOAD_ONCE(vr->desc[i].addr));
                len = le32toh(LOAD_ONCE(vr->desc[i].len));
                flags = le16toh(LOAD_ONCE(vr->desc[i].flags));
                next = le16toh(LOAD_ONCE(vr->desc[i].next));

                if (flags & VRING_DESC_F_INDIRECT)
                        return broken(vr, "indirect descriptor (not offered)");
                if (guest_memory_gpa(m, addr, len, &p) < 0)
                        return broken(vr, "descriptor outside guest memory");

                if (flags & VRING_DESC_F_WRITE) {
                        vr->iov[n_readable + n_writable++] = (struct iovec) { p, len };
                        writable_len += len;
                } else {
                        if (n_writable > 0)
                                return broken(vr, "device-readable descriptor after a writable one");
                        vr->iov[n_readable++] = (struct iovec) { p, len };
                        readable_len += len;
                }

                if (!(flags & VRING_DESC_F_NEXT))
                        break;
                if (next >= vr->num)
                        return broken(vr, "descriptor next index beyond the queue size");
                i = next;
        }

        vr->last_avail_idx++;
        *ret = (VringChain) {
                .head = head,
                .iov = vr->iov,
                .n_readable = n_readable,
                .n_writable = n_writable,
                .readable_len = readable_len,
                .writable_len = writable_len,
        };
        return 1;
}

void vring_unpop(Vring *vr) {
        vr->last_avail_idx--;
}

void vring_push(Vring *vr, uint16_t head, uint32_t len) {
        struct vring_used_elem *e = &vr->used->ring[vr->used_idx & (vr->num - 1)];

        __atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
        __atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
        vr->used_idx++;
        /* Release: the element (and the buffer contents) are visible before the guest sees the new index. */
        __atomic_store_n(&vr->used->idx, htole16(vr->used_idx), __ATOMIC_RELEASE);
}

bool vring_should_notify(const Vring *vr) {
        /* Order the used index store before reading the guest's flags (virtio 2.7.7.2). */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return !(le16toh(LOAD_ONCE(vr->avail->flags)) & VRING_AVAIL_F_NO_INTERRUPT);
}
