/* SPDX-License-Identifier: MIT */
#include "vsock-guest.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "time-util.h"

static uint64_t now_ms(void) {
        return now_ns(CLOCK_MONOTONIC) / NSEC_PER_MSEC;
}

uint64_t guest_gpa(size_t offset) {
        return GUEST_GPA_BASE + offset;
}

static uint64_t guest_uva(size_t offset) {
        return GUEST_UVA_BASE + offset;
}

int guest_init(Guest *g, int vu_fd, sd_event *event) {
        *g = (Guest) { .vu_fd = vu_fd, .event = event, .memfd = -1 };
        for (unsigned q = 0; q < 3; q++)
                g->kick[q] = g->call[q] = -1;

        g->memfd = memfd_create("guest-memory", MFD_CLOEXEC);
        if (g->memfd < 0 || ftruncate(g->memfd, GUEST_MEM_SIZE) < 0)
                return -errno;
        g->mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
        if (g->mem == MAP_FAILED)
                return -errno;
        for (unsigned q = 0; q < 3; q++) {
                g->kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                g->call[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (g->kick[q] < 0 || g->call[q] < 0)
                        return -errno;
        }
        return 0;
}

void guest_done(Guest *g) {
        for (unsigned q = 0; q < 3; q++) {
                safe_close(g->kick[q]);
                safe_close(g->call[q]);
        }
        if (g->mem && g->mem != MAP_FAILED)
                munmap(g->mem, GUEST_MEM_SIZE);
        safe_close(g->memfd);
        safe_close(g->vu_fd);
        *g = (Guest) { .vu_fd = -1, .memfd = -1 };
}

void guest_pump(Guest *g) {
        if (!g->event) {
                usleep(2000);
                return;
        }
        for (int i = 0; i < 64; i++)
                if (sd_event_run(g->event, 1000) <= 0)
                        break;
}

int guest_vu(
        Guest *g,
        uint32_t request,
        uint32_t flags,
        const void *payload,
        uint32_t size,
        const int *fds,
        size_t n_fds,
        VhostUserMsg *reply) {
        static VhostUserMsg msg;
        int vfds[VHOST_USER_MAX_FDS];
        size_t n = 0;
        int r;

        msg.request = request;
        msg.flags = VHOST_USER_VERSION | flags;
        msg.size = size;
        if (size > 0)
                memcpy(msg.payload, payload, size);
        r = vhost_user_send(g->vu_fd, &msg, fds, n_fds);
        if (r < 0 || !reply) {
                guest_pump(g);
                return r;
        }

        for (uint64_t end = now_ms() + 3000; now_ms() < end;) {
                struct pollfd p = { .fd = g->vu_fd, .events = POLLIN };
                if (poll(&p, 1, 0) > 0)
                        break;
                guest_pump(g);
        }
        r = vhost_user_recv(g->vu_fd, reply, vfds, &n);
        for (size_t i = 0; i < n; i++)
                close(vfds[i]);
        if (r == 0)
                return -ECONNRESET;
        if (r < 0)
                return r;
        if (reply->request != request || !(reply->flags & VHOST_USER_FLAG_REPLY))
                return -EBADMSG;
        return 0;
}

static int vu_u64(Guest *g, uint32_t request, uint64_t *ret) {
        VhostUserMsg reply;
        int r = guest_vu(g, request, 0, NULL, 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        if (reply.size != 8)
                return -EBADMSG;
        memcpy(ret, reply.payload, 8);
        return 0;
}

/* A request answered with REPLY_ACK: 0 when the backend accepted it. */
static int vu_ack(Guest *g, uint32_t request, const void *payload, uint32_t size, const int *fds, size_t n_fds) {
        VhostUserMsg reply;
        uint64_t v;
        int r = guest_vu(g, request, VHOST_USER_FLAG_NEED_REPLY, payload, size, fds, n_fds, &reply);
        if (r < 0)
                return r;
        if (reply.size != 8)
                return -EBADMSG;
        memcpy(&v, reply.payload, 8);
        return v == 0 ? 0 : -EIO;
}

int guest_negotiate(Guest *g, uint64_t *ret_cid) {
        uint64_t features, pf, nq;
        int r;

        r = vu_u64(g, VHOST_USER_GET_FEATURES, &features);
        if (r < 0)
                return r;
        if (!(features & (UINT64_C(1) << VIRTIO_F_VERSION_1)) ||
            !(features & (UINT64_C(1) << VHOST_USER_F_PROTOCOL_FEATURES)))
                return -EPROTO;
        r = vu_u64(g, VHOST_USER_GET_PROTOCOL_FEATURES, &pf);
        if (r < 0)
                return r;
        uint64_t want = (UINT64_C(1) << VHOST_USER_PROTOCOL_F_MQ) | (UINT64_C(1) << VHOST_USER_PROTOCOL_F_CONFIG) |
                (UINT64_C(1) << VHOST_USER_PROTOCOL_F_REPLY_ACK);
        if ((pf & want) != want)
                return -EPROTO;
        r = guest_vu(g, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &want, 8, NULL, 0, NULL);
        if (r < 0)
                return r;
        r = vu_u64(g, VHOST_USER_GET_QUEUE_NUM, &nq);
        if (r < 0)
                return r;
        if (nq != 3)
                return -EPROTO;
        r = vu_ack(g, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
        if (r < 0)
                return r;

        uint8_t cfg[12 + 8] = {};
        uint32_t cfg_size = 8;
        memcpy(cfg + 4, &cfg_size, 4);
        VhostUserMsg reply;
        r = guest_vu(g, VHOST_USER_GET_CONFIG, 0, cfg, sizeof(cfg), NULL, 0, &reply);
        if (r < 0)
                return r;
        if (reply.size != sizeof(cfg))
                return -EBADMSG;
        uint64_t cid_le;
        memcpy(&cid_le, reply.payload + 12, 8);
        g->cid = le64toh(cid_le);
        if (ret_cid)
                *ret_cid = g->cid;

        features = (UINT64_C(1) << VIRTIO_F_VERSION_1) | (UINT64_C(1) << VHOST_USER_F_PROTOCOL_FEATURES);
        r = vu_ack(g, VHOST_USER_SET_FEATURES, &features, 8, NULL, 0);
        if (r < 0)
                return r;

        uint8_t mt[8 + sizeof(VhostUserMemRegion)] = {};
        uint32_t nregions = 1;
        VhostUserMemRegion reg = {
                .guest_phys_addr = GUEST_GPA_BASE,
                .memory_size = GUEST_MEM_SIZE,
                .userspace_addr = GUEST_UVA_BASE,
                .mmap_offset = 0,
        };
        memcpy(mt, &nregions, 4);
        memcpy(mt + 8, &reg, sizeof(reg));
        r = vu_ack(g, VHOST_USER_SET_MEM_TABLE, mt, sizeof(mt), &g->memfd, 1);
        if (r < 0)
                return r;

        for (unsigned q = 0; q < 3; q++) {
                struct vhost_vring_state st = { .index = q, .num = GUEST_QSZ };
                r = vu_ack(g, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
                if (r < 0)
                        return r;
                st.num = 0;
                r = vu_ack(g, VHOST_USER_SET_VRING_BASE, &st, sizeof(st), NULL, 0);
                if (r < 0)
                        return r;
                struct vhost_vring_addr a = {
                        .index = q,
                        .desc_user_addr = guest_uva(GUEST_DESC_OFF(q)),
                        .used_user_addr = guest_uva(GUEST_USED_OFF(q)),
                        .avail_user_addr = guest_uva(GUEST_AVAIL_OFF(q)),
                };
                r = vu_ack(g, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
                if (r < 0)
                        return r;
                uint64_t idx = q;
                r = vu_ack(g, VHOST_USER_SET_VRING_KICK, &idx, 8, &g->kick[q], 1);
                if (r < 0)
                        return r;
                r = vu_ack(g, VHOST_USER_SET_VRING_CALL, &idx, 8, &g->call[q], 1);
                if (r < 0)
                        return r;
                st.num = 1;
                r = vu_ack(g, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

struct vring_desc *guest_desc(Guest *g, unsigned q) {
        return (struct vring_desc *) (g->mem + GUEST_DESC_OFF(q));
}

static struct vring_avail *guest_avail(Guest *g, unsigned q) {
        return (struct vring_avail *) (g->mem + GUEST_AVAIL_OFF(q));
}

static struct vring_used *guest_used(Guest *g, unsigned q) {
        return (struct vring_used *) (g->mem + GUEST_USED_OFF(q));
}

uint16_t guest_used_idx(Guest *g, unsigned q) {
        return le16toh(__atomic_load_n(&guest_used(g, q)->idx, __ATOMIC_ACQUIRE));
}

void guest_avail_push(Guest *g, unsigned q, uint16_t head) {
        struct vring_avail *a = guest_avail(g, q);
        a->ring[g->avail_idx[q] % GUEST_QSZ] = htole16(head);
        g->avail_idx[q]++;
        __atomic_store_n(&a->idx, htole16(g->avail_idx[q]), __ATOMIC_RELEASE);
}

void guest_avail_set_idx(Guest *g, unsigned q, uint16_t idx) {
        g->avail_idx[q] = idx;
        __atomic_store_n(&guest_avail(g, q)->idx, htole16(idx), __ATOMIC_RELEASE);
}

void guest_kick(Guest *g, unsigned q) {
        (void) eventfd_write(g->kick[q], 1);
        guest_pump(g);
}

static void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        d->addr = htole64(addr);
        d->len = htole32(len);
        d->flags = htole16(flags);
        d->next = htole16(next);
}

/* rx buffer k (0..GUEST_QSZ/2) is descriptors 2k (GUEST_RX_SPLIT bytes) and 2k+1 (the rest). */
static void post_rx_buffer(Guest *g, unsigned k) {
        struct vring_desc *d = guest_desc(g, 0);
        size_t off = GUEST_RX_DATA_OFF + (size_t) k * GUEST_RX_BUF;

        set_desc(&d[2 * k], guest_gpa(off), GUEST_RX_SPLIT, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2 * k + 1);
        set_desc(&d[2 * k + 1], guest_gpa(off + GUEST_RX_SPLIT), GUEST_RX_BUF - GUEST_RX_SPLIT, VRING_DESC_F_WRITE, 0);
        memset(g->mem + off, 0xAA, GUEST_RX_BUF);
        guest_avail_push(g, 0, 2 * k);
}

void guest_post_rx(Guest *g, unsigned n) {
        /* Buffers are numbered by how many were ever posted fresh; guest_recv() reposts the used ones. */
        for (unsigned i = 0; i < n && g->rx_fresh < GUEST_QSZ / 2; i++)
                post_rx_buffer(g, g->rx_fresh++);
        guest_kick(g, 0);
}

VsockHdr guest_hdr(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t buf_alloc, uint32_t fwd_cnt) {
        return (VsockHdr) {
                .src_cid = GUEST_CID,
                .dst_cid = VSOCK_HOST_CID,
                .src_port = src_port,
                .dst_port = dst_port,
                .type = VIRTIO_VSOCK_TYPE_STREAM,
                .op = op,
                .buf_alloc = buf_alloc,
                .fwd_cnt = fwd_cnt,
        };
}

bool guest_tx_done(Guest *g) {
        return guest_used_idx(g, 1) == g->avail_idx[1];
}

void guest_send(Guest *g, const VsockHdr *h, const void *payload, uint32_t len) {
        VsockHdr copy = *h;
        copy.len = len;
        guest_send_raw(g, &copy, payload, len);
}

void guest_send_raw(Guest *g, const VsockHdr *h, const void *payload, uint32_t len) {
        struct vring_desc *d = guest_desc(g, 1);
        unsigned s = g->tx_slot++ % GUEST_TX_SLOTS;
        size_t off = GUEST_TX_DATA_OFF + (size_t) s * GUEST_TX_SLOT_SIZE;

        /* A slot is reused only once the backend returned it. */
        for (uint64_t end = now_ms() + 3000;
             (uint16_t) (g->avail_idx[1] - guest_used_idx(g, 1)) >= GUEST_TX_SLOTS && now_ms() < end;)
                guest_pump(g);

        vsock_hdr_build(h, g->mem + off);
        if (len > 0) {
                memcpy(g->mem + off + 64, payload, len);
                set_desc(&d[2 * s], guest_gpa(off), VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, 2 * s + 1);
                set_desc(&d[2 * s + 1], guest_gpa(off + 64), len, 0, 0);
        } else
                set_desc(&d[2 * s], guest_gpa(off), VSOCK_HDR_SIZE, 0, 0);
        guest_avail_push(g, 1, 2 * s);
        guest_kick(g, 1);
}

int guest_recv(Guest *g, GuestPacket *ret, int timeout_ms) {
        uint64_t end = now_ms() + (uint64_t) timeout_ms;

        for (;;) {
                if (guest_used_idx(g, 0) != g->used_seen[0]) {
                        struct vring_used_elem *e = &guest_used(g, 0)->ring[g->used_seen[0] % GUEST_QSZ];
                        uint32_t id = le32toh(e->id), len = le32toh(e->len);
                        size_t off = GUEST_RX_DATA_OFF + (size_t) (id / 2) * GUEST_RX_BUF;

                        g->used_seen[0]++;
                        if (len < VSOCK_HDR_SIZE || len > GUEST_RX_BUF)
                                return -EBADMSG;
                        vsock_hdr_parse(g->mem + off, &ret->h);
                        if (ret->h.len != len - VSOCK_HDR_SIZE)
                                return -EBADMSG;
                        memcpy(ret->data, g->mem + off + VSOCK_HDR_SIZE, ret->h.len);
                        if (!g->no_repost) {
                                post_rx_buffer(g, id / 2);
                                (void) eventfd_write(g->kick[0], 1);
                        }
                        return 1;
                }
                if (now_ms() >= end)
                        return 0;
                guest_pump(g);
        }
}

int unix_connect_path(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int unix_accept_wait(Guest *g, int listen_fd, int timeout_ms) {
        uint64_t end = now_ms() + (uint64_t) timeout_ms;

        for (;;) {
                int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                        return fd;
                if (errno != EAGAIN)
                        return -errno;
                if (now_ms() >= end)
                        return -ETIMEDOUT;
                guest_pump(g);
        }
}

ssize_t unix_read_wait(Guest *g, int fd, void *buf, size_t n, int timeout_ms) {
        uint64_t end = now_ms() + (uint64_t) timeout_ms;
        size_t done = 0;

        while (done < n) {
                ssize_t k = recv(fd, (uint8_t *) buf + done, n - done, MSG_DONTWAIT);
                if (k > 0) {
                        done += (size_t) k;
                        continue;
                }
                if (k == 0)
                        return (ssize_t) done;
                if (errno != EAGAIN)
                        return -errno;
                if (now_ms() >= end)
                        return done > 0 ? (ssize_t) done : -ETIMEDOUT;
                guest_pump(g);
        }
        return (ssize_t) done;
}
