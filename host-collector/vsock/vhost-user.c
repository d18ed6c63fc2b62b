/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "vhost-user.h"

#include <errno.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"
#include "socket-util.h"
#include "time-util.h"

/* How long the rest of a message may take once its header arrived. */
#define VHOST_USER_MSG_TIMEOUT_MSEC 1000

void vhost_user_dev_init(
        VhostUserDev *d,
        uint64_t features,
        uint64_t protocol_features,
        unsigned n_queues,
        const uint8_t *config,
        size_t config_size) {
        *d = (VhostUserDev) {
                .features = features,
                .protocol_features = protocol_features,
                .n_queues = MIN(n_queues, VHOST_USER_MAX_QUEUES),
                .config = config,
                .config_size = config_size,
        };
        for (unsigned i = 0; i < VHOST_USER_MAX_QUEUES; i++)
                d->kick_fds[i] = d->call_fds[i] = -1;
}

void vhost_user_dev_done(VhostUserDev *d) {
        for (unsigned i = 0; i < VHOST_USER_MAX_QUEUES; i++) {
                d->kick_fds[i] = safe_close(d->kick_fds[i]);
                d->call_fds[i] = safe_close(d->call_fds[i]);
                vring_done(&d->vrings[i]);
        }
        guest_memory_clear(&d->mem);
}

void vhost_user_dev_reset(VhostUserDev *d) {
        uint64_t features = d->features, protocol_features = d->protocol_features;
        unsigned n_queues = d->n_queues;
        const uint8_t *config = d->config;
        size_t config_size = d->config_size;

        vhost_user_dev_done(d);
        vhost_user_dev_init(d, features, protocol_features, n_queues, config, config_size);
}

static void close_fds(int *fds, size_t n_fds) {
        for (size_t i = 0; i < n_fds; i++)
                fds[i] = safe_close(fds[i]);
}

static void reply_u64(const VhostUserMsg *msg, VhostUserMsg *reply, uint64_t value) {
        reply->request = msg->request;
        reply->flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
        reply->size = sizeof(value);
        memcpy(reply->payload, &value, sizeof(value));
}

static int get_u64(const VhostUserMsg *msg, uint64_t *ret) {
        if (msg->size < sizeof(uint64_t))
                return -EINVAL;
        memcpy(ret, msg->payload, sizeof(*ret));
        return 0;
}

static int get_state(const VhostUserDev *d, const VhostUserMsg *msg, struct vhost_vring_state *ret) {
        if (msg->size < sizeof(*ret))
                return -EINVAL;
        memcpy(ret, msg->payload, sizeof(*ret));
        if (ret->index >= d->n_queues)
                return -ERANGE;
        return 0;
}

static bool protocol_features_on(const VhostUserDev *d) {
        return d->acked_features & (UINT64_C(1) << VHOST_USER_F_PROTOCOL_FEATURES);
}

static int set_mem_table(VhostUserDev *d, const VhostUserMsg *msg, int *fds, size_t n_fds) {
        GuestMemory mem = {};
        uint32_t n;
        int r;

        if (msg->size < 8)
                return -EINVAL;
        memcpy(&n, msg->payload, sizeof(n));
        if (n > GUEST_MEMORY_MAX_REGIONS)
                return -E2BIG;
        if (msg->size < 8 + n * sizeof(VhostUserMemRegion) || n_fds != n)
                return -EINVAL;

        for (uint32_t i = 0; i < n; i++) {
                VhostUserMemRegion reg;

                memcpy(&reg, msg->payload + 8 + i * sizeof(reg), sizeof(reg));
                r = guest_memory_add_fd(
                        &mem, reg.guest_phys_addr, reg.memory_size, reg.userspace_addr, reg.mmap_offset, fds[i]);
                if (r < 0) {
                        guest_memory_clear(&mem);
                        return r;
                }
        }

        /* The new table replaces the old one; rings are translated anew (hotplug moves nothing we hold on to, since
         * rings are known by the frontend's addresses). */
        guest_memory_clear(&d->mem);
        d->mem = mem;
        for (unsigned i = 0; i < d->n_queues; i++)
                if (d->vrings[i].addr_set && d->vrings[i].num > 0)
                        (void) vring_map(&d->vrings[i], &d->mem);
        return 0;
}

static int set_vring_addr(VhostUserDev *d, const VhostUserMsg *msg) {
        struct vhost_vring_addr a;
        Vring *vr;

        if (msg->size < sizeof(a))
                return -EINVAL;
        memcpy(&a, msg->payload, sizeof(a));
        if (a.index >= d->n_queues)
                return -ERANGE;
        vr = &d->vrings[a.index];
        vring_set_addr(vr, a.desc_user_addr, a.avail_user_addr, a.used_user_addr);
        vr->broken = NULL;
        if (d->mem.n_regions > 0)
                return vring_map(vr, &d->mem);
        return 0;
}

static int set_vring_fd(VhostUserDev *d, const VhostUserMsg *msg, int *fds, size_t n_fds, int *table, bool kick) {
        uint64_t v;
        unsigned index;
        int r;

        r = get_u64(msg, &v);
        if (r < 0)
                return r;
        index = v & VHOST_USER_VRING_INDEX_MASK;
        if (index >= d->n_queues)
                return -ERANGE;
        if (v & VHOST_USER_VRING_NOFD_MASK) {
                if (n_fds != 0)
                        return -EINVAL;
                /* Without a kick fd the backend would have to poll the ring: not supported. */
                if (kick)
                        return -EOPNOTSUPP;
                table[index] = safe_close(table[index]);
                return 0;
        }
        if (n_fds != 1)
                return -EINVAL;

        safe_close(table[index]);
        table[index] = TAKE_FD(fds[0]);
        if (kick) {
                Vring *vr = &d->vrings[index];

                vr->started = true;
                /* Without protocol features a ring is enabled as soon as it starts; with them it waits for
                 * SET_VRING_ENABLE. */
                if (!protocol_features_on(d))
                        vr->enabled = true;
                if (!vr->mapped && d->mem.n_regions > 0)
                        (void) vring_map(vr, &d->mem);
        }
        return 0;
}

static int get_config(const VhostUserDev *d, const VhostUserMsg *msg, VhostUserMsg *reply) {
        uint32_t offset, size;

        if (msg->size < 12)
                return -EINVAL;
        memcpy(&offset, msg->payload, 4);
        memcpy(&size, msg->payload + 4, 4);
        if (size > VHOST_USER_MAX_CONFIG || msg->size < 12 + size)
                return -EINVAL;

        reply->request = msg->request;
        reply->flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
        reply->size = 12 + size;
        memcpy(reply->payload, msg->payload, 12);
        memset(reply->payload + 12, 0, size);
        /* Bytes beyond the device's config read as zero, like a virtio config space's unused tail. */
        if (offset < d->config_size)
                memcpy(reply->payload + 12, d->config + offset, MIN((size_t) size, d->config_size - offset));
        return 0;
}

int vhost_user_dev_handle(
        VhostUserDev *d,
        const VhostUserMsg *msg,
        int *fds,
        size_t n_fds,
        VhostUserMsg *reply,
        int *ret_result,
        unsigned *ret_changes) {
        struct vhost_vring_state st = {}; /* all 8 bytes go back in replies, also when the request was short */
        unsigned changes = 0;
        bool replied = false;
        uint64_t v;
        int r = 0;

        if ((msg->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION || msg->size > VHOST_USER_MAX_PAYLOAD) {
                close_fds(fds, n_fds);
                return -EBADMSG;
        }

        switch (msg->request) {
        case VHOST_USER_GET_FEATURES:
                reply_u64(msg, reply, d->features);
                replied = true;
                break;
        case VHOST_USER_SET_FEATURES:
                r = get_u64(msg, &v);
                if (r >= 0 && (v & ~d->features) != 0)
                        r = -EINVAL;
                if (r >= 0)
                        d->acked_features = v;
                break;
        case VHOST_USER_GET_PROTOCOL_FEATURES:
                reply_u64(msg, reply, d->protocol_features);
                replied = true;
                break;
        case VHOST_USER_SET_PROTOCOL_FEATURES:
                r = get_u64(msg, &v);
                if (r >= 0 && (v & ~d->protocol_features) != 0)
                        r = -EINVAL;
                if (r >= 0)
                        d->acked_protocol_features = v;
                break;
        case VHOST_USER_SET_OWNER:
                break;
        case VHOST_USER_RESET_OWNER:
                vhost_user_dev_reset(d);
                changes |= VHOST_USER_CHANGE_KICK | VHOST_USER_CHANGE_STOPPED;
                break;
        case VHOST_USER_SET_MEM_TABLE:
                r = set_mem_table(d, msg, fds, n_fds);
                changes |= VHOST_USER_CHANGE_RINGS;
                break;
        case VHOST_USER_GET_QUEUE_NUM:
                reply_u64(msg, reply, d->n_queues);
                replied = true;
                break;
        case VHOST_USER_SET_VRING_NUM:
                r = get_state(d, msg, &st);
                if (r >= 0)
                        r = vring_set_num(&d->vrings[st.index], st.num);
                break;
        case VHOST_USER_SET_VRING_ADDR:
                r = set_vring_addr(d, msg);
                changes |= VHOST_USER_CHANGE_RINGS;
                break;
        case VHOST_USER_SET_VRING_BASE:
                r = get_state(d, msg, &st);
                if (r >= 0) {
                        vring_set_base(&d->vrings[st.index], (uint16_t) st.num);
                        d->vrings[st.index].broken = NULL;
                }
                break;
        case VHOST_USER_GET_VRING_BASE:
                r = get_state(d, msg, &st);
                if (r < 0) {
                        /* The frontend waits for an answer whatever happens. */
                        memcpy(&st, msg->payload, MIN((size_t) msg->size, sizeof(st)));
                        st.num = 0;
                } else {
                        Vring *vr = &d->vrings[st.index];

                        st.num = vr->last_avail_idx;
                        vr->started = false;
                        if (protocol_features_on(d))
                                vr->enabled = false;
                        d->kick_fds[st.index] = safe_close(d->kick_fds[st.index]);
                        changes |= VHOST_USER_CHANGE_KICK | VHOST_USER_CHANGE_STOPPED;
                }
                reply->request = msg->request;
                reply->flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
                reply->size = sizeof(st);
                memcpy(reply->payload, &st, sizeof(st));
                replied = true;
                break;
        case VHOST_USER_SET_VRING_KICK:
                r = set_vring_fd(d, msg, fds, n_fds, d->kick_fds, true);
                changes |= VHOST_USER_CHANGE_KICK | VHOST_USER_CHANGE_RINGS;
                break;
        case VHOST_USER_SET_VRING_CALL:
                r = set_vring_fd(d, msg, fds, n_fds, d->call_fds, false);
                break;
        case VHOST_USER_SET_VRING_ERR:
                /* Errors are never signalled: the fd is not needed. */
                break;
        case VHOST_USER_SET_VRING_ENABLE:
                r = get_state(d, msg, &st);
                if (r >= 0 && !protocol_features_on(d))
                        r = -EPROTO;
                if (r >= 0) {
                        d->vrings[st.index].enabled = st.num != 0;
                        changes |= VHOST_USER_CHANGE_RINGS;
                }
                break;
        case VHOST_USER_GET_CONFIG:
                r = get_config(d, msg, reply);
                if (r < 0) {
                        /* An answer of the wrong size tells QEMU the request failed. */
                        reply->request = msg->request;
                        reply->flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
                        reply->size = 0;
                }
                replied = true;
                break;
        case VHOST_USER_SET_CONFIG:
                r = -EPERM; /* the config (the guest's CID) is read-only */
                break;
        default:
                /* Logging (SET_LOG_*) and everything else we did not offer. */
                r = -EOPNOTSUPP;
                break;
        }

        close_fds(fds, n_fds);

        if (!replied && (msg->flags & VHOST_USER_FLAG_NEED_REPLY) &&
            (d->acked_protocol_features & (UINT64_C(1) << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
                reply_u64(msg, reply, r < 0 ? 1 : 0);
                replied = true;
        }

        *ret_result = r;
        *ret_changes = changes;
        return replied;
}

/* The whole message, not each wait, is bounded: a frontend trickling bytes cannot hold the loop longer. */
static uint64_t msg_deadline(void) {
        return now_ns(CLOCK_MONOTONIC) + VHOST_USER_MSG_TIMEOUT_MSEC * NSEC_PER_MSEC;
}

static int wait_fd(int fd, short events, uint64_t deadline) {
        struct pollfd p = { .fd = fd, .events = events };
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        int r;

        if (now >= deadline)
                return -ETIMEDOUT;
        r = poll(&p, 1, (int) ((deadline - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC));
        if (r < 0)
                return errno == EINTR ? 0 : -errno;
        if (r == 0)
                return -ETIMEDOUT;
        return 0;
}

static int read_rest(int fd, uint8_t *buf, size_t len, uint64_t deadline) {
        size_t done = 0;

        while (done < len) {
                ssize_t k = RETRY_ON_EINTR(recv(fd, buf + done, len - done, 0));
                if (k == 0)
                        return -ECONNRESET;
                if (k < 0) {
                        if (errno != EAGAIN)
                                return -errno;
                        int r = wait_fd(fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                done += (size_t) k;
        }
        return 0;
}

int vhost_user_recv(int fd, VhostUserMsg *ret, int fds[VHOST_USER_MAX_FDS], size_t *ret_n_fds) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        } control;
        uint64_t deadline = msg_deadline();
        uint8_t hdr[VHOST_USER_HDR_SIZE];
        struct iovec iov = { hdr, sizeof(hdr) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        size_t n_fds = 0;
        ssize_t k;
        int r;

        k = RETRY_ON_EINTR(recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
        if (k < 0)
                return -errno;

        n_fds = (size_t) cmsg_take_fds(&mh, fds, VHOST_USER_MAX_FDS);

        if (k == 0) {
                r = 0;
                goto fail;
        }
        if (mh.msg_flags & MSG_CTRUNC) {
                r = -EBADMSG;
                goto fail;
        }
        if ((size_t) k < sizeof(hdr)) {
                r = read_rest(fd, hdr + k, sizeof(hdr) - (size_t) k, deadline);
                if (r < 0)
                        goto fail;
        }

        memcpy(&ret->request, hdr, 4);
        memcpy(&ret->flags, hdr + 4, 4);
        memcpy(&ret->size, hdr + 8, 4);
        if (ret->size > VHOST_USER_MAX_PAYLOAD) {
                r = -EBADMSG;
                goto fail;
        }
        r = read_rest(fd, ret->payload, ret->size, deadline);
        if (r < 0)
                goto fail;

        *ret_n_fds = n_fds;
        return 1;

fail:
        close_fds(fds, n_fds);
        return r;
}

int vhost_user_send(int fd, const VhostUserMsg *msg, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        } control = {};
        uint8_t hdr[VHOST_USER_HDR_SIZE];
        size_t total, done = 0;
        uint64_t deadline = msg_deadline();

        if (msg->size > VHOST_USER_MAX_PAYLOAD || n_fds > VHOST_USER_MAX_FDS)
                return -EINVAL;
        memcpy(hdr, &msg->request, 4);
        memcpy(hdr + 4, &msg->flags, 4);
        memcpy(hdr + 8, &msg->size, 4);
        total = sizeof(hdr) + msg->size;

        while (done < total) {
                struct iovec iov[2];
                size_t n_iov = 0;
                struct msghdr mh = {};
                ssize_t k;

                if (done < sizeof(hdr))
                        iov[n_iov++] = (struct iovec) { hdr + done, sizeof(hdr) - done };
                if (msg->size > 0) {
                        size_t off = done > sizeof(hdr) ? done - sizeof(hdr) : 0;
                        iov[n_iov++] = (struct iovec) { (uint8_t *) msg->payload + off, msg->size - off };
                }
                mh.msg_iov = iov;
                mh.msg_iovlen = n_iov;
                /* The fds travel with the first byte. */
                if (done == 0 && n_fds > 0) {
                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
                }
                k = RETRY_ON_EINTR(sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT));
                if (k < 0) {
                        if (errno != EAGAIN)
                                return -errno;
                        int r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                done += (size_t) k;
        }
        return 0;
}

const char *vhost_user_request_to_string(uint32_t request) {
        static const char *const table[] = {
                [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
                [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
                [VHOST_USER_SET_OWNER] = "SET_OWNER",
                [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
                [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
                [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
                [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
                [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
                [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
                [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
                [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
                [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
                [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
                [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
                [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
                [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
                [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
                [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
                [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
                [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
        };
        if (request < ELEMENTSOF(table) && table[request])
                return table[request];
        return "UNKNOWN";
}
