/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "vsock-device.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event-util.h"
#include "iov-util.h"
#include "macro.h"
#include "socket-util.h"
#include "vhost-user.h"
#include "vsock-log.h"

/* Messages handled per wakeup of the frontend socket, so the rings get their turn. */
#define VHOST_USER_MSGS_PER_WAKEUP 64

#define DEVICE_FEATURES ((UINT64_C(1) << VIRTIO_F_VERSION_1) | (UINT64_C(1) << VHOST_USER_F_PROTOCOL_FEATURES))
#define DEVICE_PROTOCOL_FEATURES                                                                     \
        ((UINT64_C(1) << VHOST_USER_PROTOCOL_F_MQ) | (UINT64_C(1) << VHOST_USER_PROTOCOL_F_CONFIG) | \
         (UINT64_C(1) << VHOST_USER_PROTOCOL_F_REPLY_ACK))

typedef struct Kick {
        VsockDevice *device;
        unsigned queue;
        int fd; /* the fd the source watches (owned by vu.kick_fds) */
        sd_event_source *io;
} Kick;

struct VsockDevice {
        sd_event *event;
        VsockDeviceConfig config;
        char *uds_path, *ident, *vhost_path;
        struct virtio_vsock_config vconfig;
        VhostUserDev vu;
        VsockMux *mux;
        VsockStats stats;

        int listen_fd;
        sd_event_source *listen_io;
        int conn_fd;
        sd_event_source *conn_io;
        Kick kicks[VSOCK_NUM_QUEUES];
        sd_event_source *tx_turn, *rx_turn; /* continue a queue in a later turn (event-util.h) */

        VhostUserMsg msg, reply; /* the frontend's message being handled and our reply: 4 KiB each, off the stack */
        struct iovec *scratch;   /* payload slices of a tx chain, one per descriptor at most */
        size_t n_scratch;
        bool verdict_logged[_VSOCK_VERDICT_MAX];
        bool broken_logged[VSOCK_NUM_QUEUES];
        bool running; /* rx and tx both usable, for the "started" log line */
};

static const char *const queue_names[VSOCK_NUM_QUEUES] = { "rx", "tx", "event" };

static void schedule(sd_event_source *s) {
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void mux_wake(void *userdata) {
        VsockDevice *d = userdata;
        schedule(d->rx_turn);
}

static void notify_guest(VsockDevice *d, unsigned q) {
        Vring *vr = &d->vu.vrings[q];

        if (d->vu.call_fds[q] >= 0 && vring_should_notify(vr))
                (void) eventfd_write(d->vu.call_fds[q], 1);
}

/* Logs a ring the guest broke, once. */
static void ring_broken(VsockDevice *d, unsigned q) {
        if (d->broken_logged[q])
                return;
        d->broken_logged[q] = true;
        d->stats.broken_rings++;
        vsock_log(
                LOG_ERR,
                0,
                d->ident,
                "%s queue broken by the guest (%s): not processing it any more",
                queue_names[q],
                d->vu.vrings[q].broken);
}

static void count_verdict(VsockDevice *d, VsockVerdict v, const VsockHdr *h) {
        d->stats.tx_dropped[v]++;
        /* Once at warning (it names what the guest does wrong), then quietly: a hostile guest can send millions. */
        vsock_log(
                d->verdict_logged[v] ? LOG_DEBUG : LOG_WARNING,
                0,
                d->ident,
                "dropped a guest packet: %s (src %llu:%u dst %llu:%u op %u len %u)%s",
                vsock_verdict_to_string(v),
                (unsigned long long) h->src_cid,
                h->src_port,
                (unsigned long long) h->dst_cid,
                h->dst_port,
                h->op,
                h->len,
                d->verdict_logged[v] ? "" : "; further ones are logged at debug level");
        d->verdict_logged[v] = true;
}

static void vsock_device_process_tx(VsockDevice *d) {
        Vring *vr = &d->vu.vrings[VSOCK_QUEUE_TX];
        bool used = false;
        uint32_t budget;

        if (!vring_usable(vr))
                return;

        if (d->n_scratch < vr->num) {
                struct iovec *s = reallocarray(d->scratch, vr->num, sizeof(struct iovec));
                if (!s)
                        return;
                d->scratch = s;
                d->n_scratch = vr->num;
        }

        /* At most a queue's worth per run: a guest refilling as fast as we drain must not starve the loop. */
        for (budget = vr->num; budget > 0; budget--) {
                VringChain chain;
                VsockVerdict v;
                VsockHdr h = {};
                int r;

                /* Answers wait for rx buffers; when too many do, leave the packets in the ring (backpressure). */
                if (vsock_mux_tx_blocked(d->mux))
                        break;
                r = vring_pop(vr, &d->vu.mem, &chain);
                if (r < 0) {
                        ring_broken(d, VSOCK_QUEUE_TX);
                        break;
                }
                if (r == 0)
                        break;

                v = vsock_packet_parse_iov(chain.iov, chain.n_readable, d->config.guest_cid, &h);
                if (v != VSOCK_VERDICT_OK) {
                        count_verdict(d, v, &h);
                        if (vsock_verdict_wants_rst(v))
                                vsock_mux_guest_reject(d->mux, &h);
                } else {
                        size_t n = iov_slice(
                                chain.iov, chain.n_readable, VSOCK_HDR_SIZE, h.len, d->scratch, d->n_scratch);
                        vsock_mux_guest_packet(d->mux, &h, d->scratch, n);
                }
                vring_push(vr, chain.head, 0);
                used = true;
        }
        if (used)
                notify_guest(d, VSOCK_QUEUE_TX);
        if (budget == 0)
                schedule(d->tx_turn);
}

static void vsock_device_process_rx(VsockDevice *d) {
        Vring *vr = &d->vu.vrings[VSOCK_QUEUE_RX];
        bool used = false, was_blocked = vsock_mux_tx_blocked(d->mux);
        uint32_t budget;

        if (!vring_usable(vr))
                return;

        for (budget = vr->num; budget > 0 && vsock_mux_has_rx(d->mux); budget--) {
                VringChain chain;
                uint32_t len = 0;
                int r;

                r = vring_pop(vr, &d->vu.mem, &chain);
                if (r < 0) {
                        ring_broken(d, VSOCK_QUEUE_RX);
                        break;
                }
                if (r == 0)
                        break; /* no buffers: nothing more is read from the Unix side until the guest kicks */
                /* A buffer with no room for payload could only ever carry control packets: with data waiting on
                 * a connection, nothing fills it and the loop would spin on it. */
                if (chain.writable_len <= VSOCK_HDR_SIZE) {
                        vring_mark_broken(vr, "rx buffer with no room for payload");
                        ring_broken(d, VSOCK_QUEUE_RX);
                        break;
                }
                r = vsock_mux_fill_rx(d->mux, chain.iov + chain.n_readable, chain.n_writable, &len);
                if (r == 0) {
                        vring_unpop(vr);
                        break;
                }
                vring_push(vr, chain.head, len);
                used = true;
        }
        if (used)
                notify_guest(d, VSOCK_QUEUE_RX);
        if (budget == 0 && vsock_mux_has_rx(d->mux))
                schedule(d->rx_turn);
        if (was_blocked && !vsock_mux_tx_blocked(d->mux))
                schedule(d->tx_turn);
}

static int turn_tx(sd_event_source *s, uint64_t usec, void *userdata) {
        vsock_device_process_tx(userdata);
        return 0;
}

static int turn_rx(sd_event_source *s, uint64_t usec, void *userdata) {
        vsock_device_process_rx(userdata);
        return 0;
}

static int kick_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Kick *k = userdata;
        eventfd_t v;

        if (eventfd_read(fd, &v) < 0 && errno != EAGAIN) {
                vsock_log(
                        LOG_WARNING,
                        errno,
                        k->device->ident,
                        "%s kick fd unreadable, ignoring it: %m",
                        queue_names[k->queue]);
                k->io = sd_event_source_disable_unref(k->io);
                return 0;
        }
        if (k->queue == VSOCK_QUEUE_TX)
                vsock_device_process_tx(k->device);
        else if (k->queue == VSOCK_QUEUE_RX)
                vsock_device_process_rx(k->device);
        /* The event queue carries nothing from the guest (transport resets go the other way, never sent). */
        return 0;
}

static void update_kicks(VsockDevice *d) {
        for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++) {
                Kick *k = &d->kicks[q];
                int fd = d->vu.kick_fds[q];

                if (k->fd == fd && (fd < 0 || k->io))
                        continue;
                k->io = sd_event_source_disable_unref(k->io);
                k->fd = fd;
                if (fd < 0)
                        continue;
                int r = sd_event_add_io(d->event, &k->io, fd, EPOLLIN, kick_io, k);
                if (r < 0)
                        vsock_log(LOG_ERR, r, d->ident, "cannot watch the %s kick fd: %m", queue_names[q]);
        }
}

static void update_running(VsockDevice *d) {
        bool running = vring_usable(&d->vu.vrings[VSOCK_QUEUE_RX]) && vring_usable(&d->vu.vrings[VSOCK_QUEUE_TX]);

        for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
                if (!d->vu.vrings[q].broken)
                        d->broken_logged[q] = false;
        if (running && !d->running)
                vsock_log(
                        LOG_INFO,
                        0,
                        d->ident,
                        "device running (rx %u, tx %u descriptors)",
                        d->vu.vrings[VSOCK_QUEUE_RX].num,
                        d->vu.vrings[VSOCK_QUEUE_TX].num);
        d->running = running;
}

static void frontend_detach(VsockDevice *d, const char *why) {
        vsock_log(LOG_INFO, 0, d->ident, "frontend disconnected (%s)", why);
        d->conn_io = sd_event_source_disable_unref(d->conn_io);
        d->conn_fd = safe_close(d->conn_fd);
        vhost_user_dev_reset(&d->vu);
        update_kicks(d);
        vsock_mux_reset(d->mux);
        d->running = false;
        if (d->config.exit_on_disconnect)
                (void) sd_event_exit(d->event, 0);
        else if (d->listen_io)
                (void) sd_event_source_set_enabled(d->listen_io, SD_EVENT_ON);
}

static int frontend_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VsockDevice *d = userdata;

        for (int i = 0; i < VHOST_USER_MSGS_PER_WAKEUP; i++) {
                VhostUserMsg *msg = &d->msg, *reply = &d->reply;
                int fds[VHOST_USER_MAX_FDS];
                size_t n_fds = 0;
                unsigned changes = 0;
                int result = 0, r;

                r = vhost_user_recv(d->conn_fd, msg, fds, &n_fds);
                if (r == -EAGAIN)
                        return 0;
                if (r == 0) {
                        frontend_detach(d, "end of stream");
                        return 0;
                }
                if (r < 0) {
                        vsock_log(LOG_ERR, r, d->ident, "vhost-user receive failed: %m");
                        frontend_detach(d, "receive error");
                        return 0;
                }

                r = vhost_user_dev_handle(&d->vu, msg, fds, n_fds, reply, &result, &changes);
                if (r < 0) {
                        vsock_log(
                                LOG_ERR,
                                r,
                                d->ident,
                                "vhost-user %s (%u): malformed message (flags 0x%x size %u): %m",
                                vhost_user_request_to_string(msg->request),
                                msg->request,
                                msg->flags,
                                msg->size);
                        frontend_detach(d, "protocol error");
                        return 0;
                }
                if (result < 0) {
                        d->stats.vhost_user_errors++;
                        vsock_log(
                                LOG_WARNING,
                                result,
                                d->ident,
                                "vhost-user %s (%u) failed: %m",
                                vhost_user_request_to_string(msg->request),
                                msg->request);
                } else
                        vsock_log(
                                LOG_DEBUG,
                                0,
                                d->ident,
                                "vhost-user %s (%u) size %u fds %zu%s",
                                vhost_user_request_to_string(msg->request),
                                msg->request,
                                msg->size,
                                n_fds,
                                r > 0 ? ", replied" : "");
                if (r > 0) {
                        int k = vhost_user_send(d->conn_fd, reply, NULL, 0);
                        if (k < 0) {
                                vsock_log(
                                        LOG_ERR,
                                        k,
                                        d->ident,
                                        "vhost-user reply to %s failed: %m",
                                        vhost_user_request_to_string(msg->request));
                                frontend_detach(d, "send error");
                                return 0;
                        }
                }

                if (changes & VHOST_USER_CHANGE_KICK)
                        update_kicks(d);
                if (changes & VHOST_USER_CHANGE_STOPPED) {
                        /* The frontend stops the device when the guest resets it or reboots: its connections are
                         * gone, and the new driver would reset whatever it hears of them. */
                        if (vsock_mux_n_connections(d->mux) > 0)
                                vsock_log(
                                        LOG_INFO,
                                        0,
                                        d->ident,
                                        "device stopped: dropping %zu connections",
                                        vsock_mux_n_connections(d->mux));
                        vsock_mux_reset(d->mux);
                }
                if (changes & (VHOST_USER_CHANGE_RINGS | VHOST_USER_CHANGE_STOPPED)) {
                        update_running(d);
                        schedule(d->tx_turn);
                        schedule(d->rx_turn);
                }
        }
        return 0;
}

int vsock_device_attach(VsockDevice *d, int fd) {
        int flags, r;

        if (d->conn_fd >= 0)
                return -EBUSY;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(d->event, &d->conn_io, fd, EPOLLIN, frontend_io, d);
        if (r < 0)
                return r;
        d->conn_fd = fd;
        if (d->listen_io)
                (void) sd_event_source_set_enabled(d->listen_io, SD_EVENT_OFF);
        vsock_log(LOG_INFO, 0, d->ident, "frontend connected");
        return 0;
}

static int listen_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VsockDevice *d = userdata;
        _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int r;

        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        vsock_log(LOG_WARNING, errno, d->ident, "accept on the vhost-user socket failed: %m");
                return 0;
        }
        r = vsock_device_attach(d, cfd);
        if (r < 0) {
                vsock_log(LOG_WARNING, r, d->ident, "refused a second frontend connection: %m");
                return 0;
        }
        TAKE_FD(cfd);
        return 0;
}

int vsock_device_listen_vhost(VsockDevice *d, const char *path) {
        _cleanup_close_ int fd = -1;
        int r;

        if (d->listen_fd >= 0)
                return -EBUSY;
        d->vhost_path = strdup(path);
        if (!d->vhost_path)
                return -ENOMEM;
        fd = unix_stream_listen(path, 0600);
        if (fd < 0)
                return fd;
        r = sd_event_add_io(d->event, &d->listen_io, fd, EPOLLIN, listen_io, d);
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        if (d->conn_fd >= 0)
                (void) sd_event_source_set_enabled(d->listen_io, SD_EVENT_OFF);
        d->listen_fd = TAKE_FD(fd);
        return 0;
}

int vsock_device_listen_uds(VsockDevice *d) {
        return vsock_mux_listen(d->mux);
}

int vsock_device_new(sd_event *e, const VsockDeviceConfig *config, VsockDevice **ret) {
        VsockDevice *d;
        int r;

        if (!config->uds_path || config->guest_cid < 3 || config->guest_cid > UINT32_MAX - 1)
                return -EINVAL;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(e);
        d->config = *config;
        d->listen_fd = d->conn_fd = -1;
        for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
                d->kicks[q] = (Kick) { .device = d, .queue = q, .fd = -1 };
        d->uds_path = strdup(config->uds_path);
        if (!d->uds_path ||
            asprintf(&d->ident, "cid=%llu uds=%s", (unsigned long long) config->guest_cid, config->uds_path) < 0) {
                d->ident = NULL;
                vsock_device_free(d);
                return -ENOMEM;
        }
        d->config.uds_path = d->uds_path;
        if (d->config.max_connections == 0)
                d->config.max_connections = VSOCK_MUX_MAX_CONNECTIONS_DEFAULT;
        if (d->config.max_clients == 0)
                d->config.max_clients = VSOCK_MUX_MAX_CLIENTS_DEFAULT;
        if (d->config.buf_alloc == 0)
                d->config.buf_alloc = VSOCK_MUX_BUF_ALLOC_DEFAULT;

        d->vconfig.guest_cid = htole64(config->guest_cid);
        vhost_user_dev_init(
                &d->vu,
                DEVICE_FEATURES,
                DEVICE_PROTOCOL_FEATURES,
                VSOCK_NUM_QUEUES,
                (const uint8_t *) &d->vconfig,
                sizeof(d->vconfig));

        VsockMuxConfig mc = {
                .guest_cid = config->guest_cid,
                .uds_path = d->uds_path,
                .ident = d->ident,
                .max_connections = d->config.max_connections,
                .max_clients = d->config.max_clients,
                .buf_alloc = d->config.buf_alloc,
        };
        r = vsock_mux_new(e, &mc, &d->stats, mux_wake, d, &d->mux);
        /* Turn sources, not defer sources: a re-enabled defer would run before every io source that became
         * ready since, and a guest keeping its TX queue full would starve the Unix side and the RX queue. */
        if (r >= 0)
                r = event_add_turn(e, &d->tx_turn, turn_tx, d);
        if (r >= 0)
                r = event_add_turn(e, &d->rx_turn, turn_rx, d);
        if (r < 0) {
                vsock_device_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

VsockDevice *vsock_device_free(VsockDevice *d) {
        if (!d)
                return NULL;
        for (unsigned q = 0; q < VSOCK_NUM_QUEUES; q++)
                d->kicks[q].io = sd_event_source_disable_unref(d->kicks[q].io);
        d->conn_io = sd_event_source_disable_unref(d->conn_io);
        d->conn_fd = safe_close(d->conn_fd);
        d->listen_io = sd_event_source_disable_unref(d->listen_io);
        if (d->listen_fd >= 0) {
                (void) unlink(d->vhost_path);
                d->listen_fd = safe_close(d->listen_fd);
        }
        d->tx_turn = sd_event_source_disable_unref(d->tx_turn);
        d->rx_turn = sd_event_source_disable_unref(d->rx_turn);
        d->mux = vsock_mux_free(d->mux);
        vhost_user_dev_done(&d->vu);
        sd_event_unref(d->event);
        free(d->scratch);
        free(d->uds_path);
        free(d->vhost_path);
        free(d->ident);
        free(d);
        return NULL;
}

const VsockStats *vsock_device_get_stats(const VsockDevice *d) {
        return &d->stats;
}

const char *vsock_device_broken(const VsockDevice *d, unsigned q) {
        return q < VSOCK_NUM_QUEUES ? d->vu.vrings[q].broken : NULL;
}

bool vsock_device_attached(const VsockDevice *d) {
        return d->conn_fd >= 0;
}

size_t vsock_device_n_connections(const VsockDevice *d) {
        return vsock_mux_n_connections(d->mux);
}

const char *vsock_device_ident(const VsockDevice *d) {
        return d->ident;
}
