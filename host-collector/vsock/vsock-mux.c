/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "vsock-mux.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "hashmap.h"
#include "iov-util.h"
#include "list.h"
#include "macro.h"
#include "socket-util.h"
#include "vsock-log.h"

#define ACCEPT_PER_WAKEUP 16
/* "local:peer", a connection's key in the mux's map */
#define CONN_KEY_MAX sizeof("4294967295:4294967295")

/* What a connection owes the guest, sent in this order. */
enum {
        PEND_RST = 1u << 0,
        PEND_REQUEST = 1u << 1,
        PEND_RESPONSE = 1u << 2,
        PEND_SHUTDOWN = 1u << 3,
        PEND_CREDIT_UPDATE = 1u << 4,
};

typedef enum ConnState {
        CONN_HOST_CONNECTING, /* REQUEST sent (or queued) for a host client, waiting for RESPONSE */
        CONN_ESTABLISHED,
        CONN_CLOSING, /* Unix side closed, RST queued; freed once sent or when the guest resets too */
} ConnState;

typedef struct Conn Conn;
struct Conn {
        VsockMux *mux;
        uint32_t local_port; /* the host side's port */
        uint32_t peer_port;  /* the guest's port */
        ConnState state;
        int fd;
        sd_event_source *io;
        uint64_t deadline; /* CLOCK_MONOTONIC ns, while connecting */

        unsigned pending;
        uint32_t shutdown_flags; /* for PEND_SHUTDOWN */
        bool readable;           /* the Unix socket reported data, EOF or an error: serve it with an rx buffer */
        bool hup;                /* the Unix peer is gone both ways */
        bool guest_shut_rcv, guest_shut_send;
        bool host_eof; /* read() saw EOF: SHUTDOWN queued or sent */
        bool unix_wr_shut;

        /* guest -> Unix: bytes the socket did not take yet, a ring of buf_alloc bytes (allocated when needed). */
        uint8_t *buf;
        uint32_t buf_start, buf_used;
        uint32_t rx_cnt;  /* payload bytes received from the guest */
        uint32_t fwd_cnt; /* of those, bytes the Unix socket took */
        uint32_t fwd_cnt_sent;

        /* Unix -> guest */
        uint32_t tx_cnt;
        uint32_t peer_buf_alloc, peer_fwd_cnt;

        char key[CONN_KEY_MAX];
        LIST_FIELDS(Conn, conns);
        LIST_FIELDS(Conn, ready);
        bool in_ready;
};

typedef struct Client Client;
struct Client {
        VsockMux *mux;
        int fd;
        sd_event_source *io;
        uint64_t deadline; /* CLOCK_MONOTONIC ns, until the CONNECT line is whole */
        char line[VSOCK_MUX_MAX_LINE];
        size_t len;
        LIST_FIELDS(Client, clients);
};

struct VsockMux {
        sd_event *event;
        VsockMuxConfig config;
        char *uds_path, *ident;
        VsockStats *stats;
        VsockMuxWake wake;
        void *userdata;

        int listen_fd;
        sd_event_source *listen_io, *listen_retry, *timer;

        Hashmap *conns_by_key;
        LIST_HEAD(Conn, conns);
        size_t n_conns;
        LIST_HEAD(Conn, ready_head); /* connections with something for the guest, served round robin */
        Conn *ready_tail;
        LIST_HEAD(Client, clients);
        size_t n_clients;
        uint32_t next_local_port;

        VsockHdr rst_queue[VSOCK_MUX_RST_QUEUE];
        size_t rst_head, rst_len;
};

static char *conn_key(char buf[static CONN_KEY_MAX], uint32_t local_port, uint32_t peer_port) {
        snprintf(buf, CONN_KEY_MAX, "%" PRIu32 ":%" PRIu32, local_port, peer_port);
        return buf;
}

static Conn *conn_find(const VsockMux *m, uint32_t local_port, uint32_t peer_port) {
        char key[CONN_KEY_MAX];
        return hashmap_get(m->conns_by_key, conn_key(key, local_port, peer_port));
}

/* The loop's time of this iteration (sd-event's usec, made ns as everywhere else). */
static uint64_t loop_now_ns(const VsockMux *m) {
        uint64_t t = 0;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &t);
        return t * NSEC_PER_USEC;
}

static void wake(VsockMux *m) {
        if (m->wake)
                m->wake(m->userdata);
}

static void ready_add(Conn *c) {
        VsockMux *m = c->mux;

        if (c->in_ready)
                return;
        c->in_ready = true;
        LIST_APPEND_WITH_TAIL(ready, m->ready_head, m->ready_tail, c);
        wake(m);
}

static void ready_remove(Conn *c) {
        VsockMux *m = c->mux;

        if (!c->in_ready)
                return;
        LIST_REMOVE_WITH_TAIL(ready, m->ready_head, m->ready_tail, c);
        c->in_ready = false;
}

static void conn_close_fd(Conn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->fd = safe_close(c->fd);
}

static void conn_free(Conn *c) {
        VsockMux *m;

        if (!c)
                return;
        m = c->mux;
        ready_remove(c);
        (void) hashmap_remove(m->conns_by_key, c->key);
        LIST_REMOVE(conns, m->conns, c);
        conn_close_fd(c);
        free(c->buf);
        m->n_conns--;
        m->stats->connections_closed++;
        free(c);
}

/* Ends the connection: the Unix side is closed now, the guest gets a RST. */
static void conn_reset(Conn *c) {
        conn_close_fd(c);
        c->state = CONN_CLOSING;
        c->pending = PEND_RST;
        c->readable = false;
        ready_add(c);
}

static uint32_t peer_credit(const Conn *c) {
        uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
        /* A guest that shrinks buf_alloc below what is in flight gets nothing, not a wrapped-around credit. */
        return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void conn_update_io(Conn *c) {
        uint32_t events = 0;

        if (!c->io)
                return;
        if (c->state == CONN_ESTABLISHED && !c->readable && !c->host_eof && !c->guest_shut_rcv && peer_credit(c) > 0)
                events |= EPOLLIN;
        if (c->buf_used > 0)
                events |= EPOLLOUT;
        if (events == 0) {
                /* Off, not an empty mask: EPOLLHUP is reported whatever the mask, and would spin. */
                (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_io_events(c->io, events);
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_ON);
}

/* Once both directions are done and everything went to the Unix side, the connection ends with a RST, which is
 * what a Linux guest waits for after its close(). */
static void conn_check_done(Conn *c) {
        if (c->state != CONN_ESTABLISHED || c->buf_used > 0)
                return;
        if (c->guest_shut_send && !c->unix_wr_shut && c->fd >= 0) {
                (void) shutdown(c->fd, SHUT_WR);
                c->unix_wr_shut = true;
        }
        if ((c->guest_shut_send && c->guest_shut_rcv) || (c->guest_shut_send && c->host_eof && !c->pending))
                conn_reset(c);
}

static void conn_credit_progress(Conn *c) {
        /* A quarter of the window consumed since the guest last heard: tell it, so that it never waits for credit
         * we have (it blocks only when its whole window is outstanding, and then this triggers). */
        if (c->fwd_cnt - c->fwd_cnt_sent >= c->mux->config.buf_alloc / 4) {
                c->pending |= PEND_CREDIT_UPDATE;
                ready_add(c);
        }
}

/* Writes buffered guest bytes to the Unix socket. */
static void conn_flush(Conn *c) {
        uint32_t size = c->mux->config.buf_alloc;

        while (c->buf_used > 0) {
                uint32_t first = MIN(c->buf_used, size - c->buf_start);
                struct iovec iov[2] = {
                        { c->buf + c->buf_start, first },
                        { c->buf, c->buf_used - first },
                };
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = c->buf_used > first ? 2 : 1 };
                ssize_t k = RETRY_ON_EINTR(sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL));
                if (k < 0) {
                        if (errno == EAGAIN)
                                break;
                        vsock_log(
                                LOG_DEBUG,
                                errno,
                                c->mux->ident,
                                "connection %u<->%u: write to Unix socket failed: %m",
                                c->local_port,
                                c->peer_port);
                        conn_reset(c);
                        return;
                }
                c->buf_start = (c->buf_start + (uint32_t) k) % size;
                c->buf_used -= (uint32_t) k;
                c->fwd_cnt += (uint32_t) k;
        }
        if (c->buf_used == 0)
                c->buf_start = 0;
        conn_credit_progress(c);
        conn_check_done(c);
        conn_update_io(c);
}

static int conn_forward(Conn *c, const struct iovec *payload, size_t n, uint32_t len) {
        uint32_t size = c->mux->config.buf_alloc;
        size_t written = 0;

        /* The guest may have at most buf_alloc bytes we did not forward yet. */
        if ((uint64_t) (c->rx_cnt - c->fwd_cnt) + len > size) {
                c->mux->stats->credit_violations++;
                return -ENOBUFS;
        }
        c->rx_cnt += len;

        if (c->buf_used == 0 && len > 0) {
                struct msghdr mh = { .msg_iov = (struct iovec *) payload, .msg_iovlen = n };
                ssize_t k = RETRY_ON_EINTR(sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL));

                if (k < 0 && errno != EAGAIN)
                        return -errno;
                if (k > 0) {
                        written = (size_t) k;
                        c->fwd_cnt += (uint32_t) k;
                }
        }
        if (written < len) {
                if (!c->buf) {
                        c->buf = malloc(size);
                        if (!c->buf)
                                return -ENOMEM;
                }
                /* Append after what is buffered, wrapping around the ring. */
                uint32_t rest = len - (uint32_t) written;
                uint32_t tail = (c->buf_start + c->buf_used) % size;
                uint32_t first = MIN(rest, size - tail);
                iov_to_buf(payload, n, written, c->buf + tail, first);
                iov_to_buf(payload, n, written + first, c->buf, rest - first);
                c->buf_used += rest;
        }
        conn_credit_progress(c);
        conn_update_io(c);
        return 0;
}

static int conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;

        if (c->buf_used > 0 && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                conn_flush(c);
                if (c->state != CONN_ESTABLISHED)
                        return 0;
        }
        if (revents & EPOLLHUP)
                c->hup = true;
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state == CONN_ESTABLISHED && !c->host_eof &&
            !c->guest_shut_rcv) {
                /* Served by vsock_mux_fill_rx() when the guest has an rx buffer; until then not read again. */
                c->readable = true;
                ready_add(c);
        }
        conn_update_io(c);
        return 0;
}

/* Takes fd (also on failure). */
static int conn_new(VsockMux *m, uint32_t local_port, uint32_t peer_port, int fd, ConnState state, Conn **ret) {
        _cleanup_close_ int fd_owned = fd;
        Conn *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (Conn) {
                .mux = m,
                .local_port = local_port,
                .peer_port = peer_port,
                .state = state,
                .fd = -1,
        };
        r = sd_event_add_io(m->event, &c->io, fd_owned, 0, conn_io, c);
        if (r < 0) {
                free(c);
                return r;
        }
        (void) sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        r = hashmap_put(m->conns_by_key, conn_key(c->key, local_port, peer_port), c);
        if (r < 0) {
                c->io = sd_event_source_disable_unref(c->io);
                free(c);
                return r;
        }
        c->fd = TAKE_FD(fd_owned);
        LIST_PREPEND(conns, m->conns, c);
        m->n_conns++;
        m->stats->connections_opened++;
        *ret = c;
        return 0;
}

static void queue_rst(VsockMux *m, const VsockHdr *to) {
        /* Never answer a RST with a RST; and when the queue is full the device has stopped taking tx already. */
        if (to->op == VIRTIO_VSOCK_OP_RST || m->rst_len >= VSOCK_MUX_RST_QUEUE)
                return;
        m->rst_queue[(m->rst_head + m->rst_len++) % VSOCK_MUX_RST_QUEUE] = vsock_hdr_reply(to, VIRTIO_VSOCK_OP_RST);
        wake(m);
}

static void guest_connect(VsockMux *m, const VsockHdr *h) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        Conn *c;
        int r;

        if (m->n_conns >= m->config.max_connections) {
                m->stats->connections_limit++;
                vsock_log(
                        LOG_WARNING,
                        0,
                        m->ident,
                        "guest port %u -> host port %u refused: %u connections open",
                        h->src_port,
                        h->dst_port,
                        m->config.max_connections);
                queue_rst(m, h);
                return;
        }

        /* uds_path was checked at start-up to leave room for "_4294967295". */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", m->uds_path, h->dst_port);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                /* Unix connect() does not go in progress: refused, missing or a full backlog all mean RST. */
                m->stats->connect_refused++;
                vsock_log(LOG_DEBUG, errno, m->ident, "guest port %u -> %s refused: %m", h->src_port, sa.sun_path);
                queue_rst(m, h);
                return;
        }

        r = conn_new(m, h->dst_port, h->src_port, TAKE_FD(fd), CONN_ESTABLISHED, &c);
        if (r < 0) {
                vsock_log(
                        LOG_WARNING,
                        r,
                        m->ident,
                        "guest port %u -> %s: cannot track connection: %m",
                        h->src_port,
                        sa.sun_path);
                queue_rst(m, h);
                return;
        }
        c->peer_buf_alloc = h->buf_alloc;
        c->peer_fwd_cnt = h->fwd_cnt;
        c->pending |= PEND_RESPONSE;
        ready_add(c);
        conn_update_io(c);
        vsock_log(LOG_DEBUG, 0, m->ident, "guest port %u connected to %s", h->src_port, sa.sun_path);
}

static void host_connected(Conn *c) {
        char line[32];
        int n;
        ssize_t k;

        n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
        k = RETRY_ON_EINTR(send(c->fd, line, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL));
        /* A fresh socket takes a dozen bytes; if it does not, the client is gone. */
        if (k != n) {
                if (k < 0)
                        vsock_log(
                                LOG_DEBUG,
                                errno,
                                c->mux->ident,
                                "host client for guest port %u went away: %m",
                                c->peer_port);
                else
                        vsock_log(LOG_DEBUG, 0, c->mux->ident, "host client for guest port %u went away", c->peer_port);
                conn_reset(c);
                return;
        }
        c->state = CONN_ESTABLISHED;
        c->deadline = 0;
        conn_update_io(c);
        vsock_log(
                LOG_DEBUG,
                0,
                c->mux->ident,
                "host connection to guest port %u established (local port %u)",
                c->peer_port,
                c->local_port);
}

void vsock_mux_guest_reject(VsockMux *m, const VsockHdr *h) {
        Conn *c = conn_find(m, h->dst_port, h->src_port);

        if (c && c->state != CONN_CLOSING)
                conn_reset(c);
        else if (!c)
                queue_rst(m, h);
}

void vsock_mux_guest_packet(VsockMux *m, const VsockHdr *h, const struct iovec *payload, size_t n_payload) {
        Conn *c;
        int r;

        m->stats->tx_packets++;
        c = conn_find(m, h->dst_port, h->src_port);
        if (!c) {
                if (h->op == VIRTIO_VSOCK_OP_REQUEST)
                        guest_connect(m, h);
                else if (h->op != VIRTIO_VSOCK_OP_RST) {
                        m->stats->unknown_connection++;
                        queue_rst(m, h);
                }
                return;
        }

        /* Every packet carries the guest's current receive window. */
        c->peer_buf_alloc = h->buf_alloc;
        c->peer_fwd_cnt = h->fwd_cnt;

        if (h->op == VIRTIO_VSOCK_OP_RST) {
                m->stats->rst_received++;
                vsock_log(LOG_DEBUG, 0, m->ident, "connection %u<->%u reset by the guest", c->local_port, c->peer_port);
                conn_free(c);
                return;
        }

        switch (c->state) {
        case CONN_CLOSING:
                return; /* our RST is on its way */

        case CONN_HOST_CONNECTING:
                if (h->op == VIRTIO_VSOCK_OP_RESPONSE && !(c->pending & PEND_REQUEST))
                        host_connected(c);
                else {
                        m->stats->protocol_errors++;
                        conn_reset(c);
                }
                return;

        case CONN_ESTABLISHED:
                break;
        }

        switch (h->op) {
        case VIRTIO_VSOCK_OP_RW:
                if (c->guest_shut_send) {
                        m->stats->protocol_errors++;
                        conn_reset(c);
                        return;
                }
                r = conn_forward(c, payload, n_payload, h->len);
                if (r < 0) {
                        vsock_log(
                                r == -ENOBUFS ? LOG_WARNING : LOG_DEBUG,
                                r,
                                m->ident,
                                "connection %u<->%u: %s: %m",
                                c->local_port,
                                c->peer_port,
                                r == -ENOBUFS ? "guest sent beyond its credit, resetting" :
                                                "write to Unix socket failed");
                        conn_reset(c);
                        return;
                }
                m->stats->tx_bytes += h->len;
                break;
        case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
                break;
        case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
                c->pending |= PEND_CREDIT_UPDATE;
                ready_add(c);
                break;
        case VIRTIO_VSOCK_OP_SHUTDOWN:
                if ((h->flags & VIRTIO_VSOCK_SHUTDOWN_RCV) && !c->guest_shut_rcv) {
                        c->guest_shut_rcv = true;
                        (void) shutdown(c->fd, SHUT_RD);
                }
                if (h->flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
                        c->guest_shut_send = true;
                conn_check_done(c);
                break;
        default: /* REQUEST or RESPONSE on an established connection */
                m->stats->protocol_errors++;
                conn_reset(c);
                return;
        }
        if (c->state == CONN_ESTABLISHED)
                conn_update_io(c);
}

bool vsock_mux_tx_blocked(const VsockMux *m) {
        return m->rst_len >= VSOCK_MUX_RST_QUEUE;
}

bool vsock_mux_has_rx(const VsockMux *m) {
        return m->rst_len > 0 || m->ready_head;
}

static VsockHdr conn_hdr(Conn *c, uint16_t op) {
        VsockMux *m = c->mux;

        c->fwd_cnt_sent = c->fwd_cnt;
        return (VsockHdr) {
                .src_cid = VSOCK_HOST_CID,
                .dst_cid = m->config.guest_cid,
                .src_port = c->local_port,
                .dst_port = c->peer_port,
                .type = VIRTIO_VSOCK_TYPE_STREAM,
                .op = op,
                .buf_alloc = m->config.buf_alloc,
                .fwd_cnt = c->fwd_cnt,
        };
}

/* Reads from the Unix socket into the rx buffer after the header. 1: a packet was written; 0: nothing to send
 * (no data after all, or no credit). */
static int conn_fill_data(Conn *c, const struct iovec *iov, size_t n, VsockHdr *h) {
        struct iovec slice[64];
        size_t n_slice;
        uint32_t max;
        ssize_t k;

        max = MIN(peer_credit(c), VSOCK_MAX_PAYLOAD);
        if (max == 0)
                return 0; /* a credit update re-arms the socket */
        n_slice = iov_slice(iov, n, VSOCK_HDR_SIZE, max, slice, ELEMENTSOF(slice));
        if (n_slice == 0)
                return 0;

        k = RETRY_ON_EINTR(readv(c->fd, slice, (int) n_slice));
        if (k < 0 && errno == EAGAIN)
                return 0;
        if (k < 0) {
                vsock_log(
                        LOG_DEBUG,
                        errno,
                        c->mux->ident,
                        "connection %u<->%u: read from Unix socket failed: %m",
                        c->local_port,
                        c->peer_port);
                conn_reset(c);
                return 0;
        }
        if (k == 0) {
                /* EOF: the host side sends no more. If it is gone entirely (HUP) it receives nothing either. */
                c->host_eof = true;
                *h = conn_hdr(c, VIRTIO_VSOCK_OP_SHUTDOWN);
                h->flags = VIRTIO_VSOCK_SHUTDOWN_SEND | (c->hup ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0);
                return 1;
        }
        *h = conn_hdr(c, VIRTIO_VSOCK_OP_RW);
        h->len = (uint32_t) k;
        c->tx_cnt += (uint32_t) k;
        c->mux->stats->rx_bytes += (uint64_t) k;
        return 1;
}

/* The next packet of one connection, if any. */
static int conn_fill(Conn *c, const struct iovec *iov, size_t n, VsockHdr *h) {
        if (c->pending & PEND_RST) {
                *h = conn_hdr(c, VIRTIO_VSOCK_OP_RST);
                c->pending = 0;
                return 1;
        }
        if (c->pending & PEND_REQUEST) {
                c->pending &= ~PEND_REQUEST;
                *h = conn_hdr(c, VIRTIO_VSOCK_OP_REQUEST);
                return 1;
        }
        if (c->pending & PEND_RESPONSE) {
                c->pending &= ~PEND_RESPONSE;
                *h = conn_hdr(c, VIRTIO_VSOCK_OP_RESPONSE);
                return 1;
        }
        if (c->readable && c->state == CONN_ESTABLISHED) {
                int r = conn_fill_data(c, iov, n, h);
                c->readable = false;
                if (c->state == CONN_CLOSING) /* read error: RST now */
                        return conn_fill(c, iov, n, h);
                if (r > 0) {
                        /* More may be waiting: the socket is watched again. */
                        c->pending &= ~PEND_CREDIT_UPDATE;
                        conn_update_io(c);
                        return 1;
                }
                conn_update_io(c);
        }
        if (c->pending & PEND_CREDIT_UPDATE) {
                c->pending &= ~PEND_CREDIT_UPDATE;
                *h = conn_hdr(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
                return 1;
        }
        return 0;
}

int vsock_mux_fill_rx(VsockMux *m, const struct iovec *iov, size_t n, uint32_t *ret_len) {
        uint8_t buf[VSOCK_HDR_SIZE];
        VsockHdr h;

        if (m->rst_len > 0) {
                h = m->rst_queue[m->rst_head];
                m->rst_head = (m->rst_head + 1) % VSOCK_MUX_RST_QUEUE;
                m->rst_len--;
                m->stats->rst_sent++;
                goto write;
        }

        while (m->ready_head) {
                Conn *c = m->ready_head;
                int r;

                ready_remove(c);
                r = conn_fill(c, iov, n, &h);
                if (r == 0)
                        continue;
                if (h.op == VIRTIO_VSOCK_OP_RST) {
                        m->stats->rst_sent++;
                        vsock_log(LOG_DEBUG, 0, m->ident, "connection %u<->%u reset", c->local_port, c->peer_port);
                        conn_free(c);
                } else {
                        if (h.op == VIRTIO_VSOCK_OP_SHUTDOWN)
                                conn_check_done(c);
                        /* Round robin: whoever still has something goes to the back. */
                        if (c->pending || c->readable)
                                ready_add(c);
                }
                goto write;
        }
        return 0;

write:
        vsock_hdr_build(&h, buf);
        iov_from_buf(iov, n, 0, buf, sizeof(buf));
        m->stats->rx_packets++;
        *ret_len = VSOCK_HDR_SIZE + h.len;
        return 1;
}

static void client_free(Client *cl) {
        VsockMux *m;

        if (!cl)
                return;
        m = cl->mux;
        LIST_REMOVE(clients, m->clients, cl);
        m->n_clients--;
        cl->io = sd_event_source_disable_unref(cl->io);
        safe_close(cl->fd);
        free(cl);
}

static void client_reject(Client *cl, const char *why) {
        cl->mux->stats->clients_rejected++;
        vsock_log(LOG_DEBUG, 0, cl->mux->ident, "host client closed: %s", why);
        client_free(cl);
}

/* "CONNECT <port>" (keyword in any case, then blanks, then a decimal u32, optional trailing blanks). */
static int parse_connect(const char *line, uint32_t *ret_port) {
        const char *p = line;
        uint64_t port = 0;
        size_t digits = 0;

        if (strncasecmp(p, "CONNECT", 7) != 0)
                return -EINVAL;
        p += 7;
        if (*p != ' ' && *p != '\t')
                return -EINVAL;
        while (*p == ' ' || *p == '\t')
                p++;
        for (; *p >= '0' && *p <= '9'; p++) {
                port = port * 10 + (uint64_t) (*p - '0');
                if (++digits > 10 || port > UINT32_MAX)
                        return -ERANGE;
        }
        if (digits == 0)
                return -EINVAL;
        while (*p == ' ' || *p == '\t' || *p == '\r')
                p++;
        if (*p != '\0')
                return -EINVAL;
        *ret_port = (uint32_t) port;
        return 0;
}

static uint32_t local_port_alloc(VsockMux *m, uint32_t peer_port) {
        /* At most max_connections ports are taken, so this ends quickly. */
        for (;;) {
                uint32_t p = m->next_local_port;
                m->next_local_port = p == UINT32_MAX ? VSOCK_MUX_LOCAL_PORT_FIRST : p + 1;
                if (!conn_find(m, p, peer_port))
                        return p;
        }
}

static void client_connect(Client *cl, uint32_t port) {
        VsockMux *m = cl->mux;
        int fd;
        Conn *c;
        int r;

        if (m->n_conns >= m->config.max_connections) {
                m->stats->connections_limit++;
                client_reject(cl, "connection table full");
                return;
        }
        fd = TAKE_FD(cl->fd);
        client_free(cl);
        r = conn_new(m, local_port_alloc(m, port), port, fd, CONN_HOST_CONNECTING, &c);
        if (r < 0) {
                vsock_log(LOG_WARNING, r, m->ident, "host connection to guest port %u failed: %m", port);
                return;
        }
        c->deadline = loop_now_ns(m) + VSOCK_MUX_CONNECT_TIMEOUT_NS;
        c->pending |= PEND_REQUEST;
        ready_add(c);
        vsock_log(
                LOG_DEBUG, 0, m->ident, "host client connecting to guest port %u (local port %u)", port, c->local_port);
}

static int client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Client *cl = userdata;

        /* One byte at a time: whatever follows the newline is the connection's first data and must stay in the
         * socket for the guest. The line is short and bounded, so this is cheap. */
        for (;;) {
                char ch;
                ssize_t k = RETRY_ON_EINTR(recv(cl->fd, &ch, 1, MSG_DONTWAIT));
                if (k < 0) {
                        if (errno == EAGAIN)
                                return 0;
                        client_reject(cl, "read error");
                        return 0;
                }
                if (k == 0) {
                        client_reject(cl, "closed before CONNECT");
                        return 0;
                }
                if (ch == '\n') {
                        uint32_t port;
                        cl->line[cl->len] = '\0';
                        if (parse_connect(cl->line, &port) < 0) {
                                client_reject(cl, "not a CONNECT line");
                                return 0;
                        }
                        client_connect(cl, port);
                        return 0;
                }
                if (ch == '\0' || cl->len + 1 >= VSOCK_MUX_MAX_LINE) {
                        client_reject(cl, "CONNECT line too long");
                        return 0;
                }
                cl->line[cl->len++] = ch;
        }
}

static int listen_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        VsockMux *m = userdata;
        (void) sd_event_source_set_enabled(m->listen_io, SD_EVENT_ON);
        return 0;
}

static int listen_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        VsockMux *m = userdata;

        for (int i = 0; i < ACCEPT_PER_WAKEUP; i++) {
                _cleanup_close_ int cfd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                Client *cl;
                int r;

                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                /* The pending connection stays: pause instead of spinning on it. */
                                vsock_log(LOG_WARNING, errno, m->ident, "accept failed, pausing the listener 1 s (%m)");
                                (void) sd_event_source_set_enabled(m->listen_io, SD_EVENT_OFF);
                                if (m->listen_retry)
                                        (void) sd_event_source_set_time_relative(m->listen_retry, USEC_PER_SEC);
                                (void) sd_event_source_set_enabled(m->listen_retry, SD_EVENT_ONESHOT);
                                return 0;
                        }
                        vsock_log(LOG_WARNING, errno, m->ident, "accept failed: %m");
                        return 0;
                }
                if (m->n_clients >= m->config.max_clients) {
                        m->stats->clients_rejected++;
                        vsock_log(
                                LOG_WARNING,
                                0,
                                m->ident,
                                "host client refused: %u waiting for CONNECT already",
                                m->config.max_clients);
                        continue;
                }
                cl = calloc(1, sizeof(*cl));
                if (!cl)
                        return 0;
                cl->mux = m;
                cl->fd = -1;
                r = sd_event_add_io(m->event, &cl->io, cfd, EPOLLIN, client_io, cl);
                if (r < 0) {
                        free(cl);
                        continue;
                }
                cl->fd = TAKE_FD(cfd);
                cl->deadline = loop_now_ns(m) + VSOCK_MUX_CONNECT_TIMEOUT_NS;
                LIST_PREPEND(clients, m->clients, cl);
                m->n_clients++;
        }
        return 0;
}

/* Once a second: host clients that never said CONNECT, guests that never answered a REQUEST. */
static int timer_fired(sd_event_source *s, uint64_t usec, void *userdata) {
        VsockMux *m = userdata;
        uint64_t now = loop_now_ns(m);
        Client *cl, *next;
        Conn *c;

        LIST_FOREACH_SAFE(clients, cl, next, m->clients)
        if (cl->deadline <= now) {
                m->stats->connect_timeouts++;
                client_reject(cl, "no CONNECT line in time");
        }
        LIST_FOREACH(conns, c, m->conns)
        if (c->state == CONN_HOST_CONNECTING && c->deadline <= now) {
                m->stats->connect_timeouts++;
                vsock_log(LOG_DEBUG, 0, m->ident, "guest port %u did not answer CONNECT", c->peer_port);
                conn_reset(c);
        }
        (void) sd_event_source_set_time(s, usec + USEC_PER_SEC);
        return 0;
}

int vsock_mux_new(
        sd_event *e,
        const VsockMuxConfig *config,
        VsockStats *stats,
        VsockMuxWake wake_cb,
        void *userdata,
        VsockMux **ret) {
        VsockMux *m;
        int r;

        if (!config->uds_path || config->guest_cid < 3 || config->buf_alloc == 0 || config->max_connections == 0)
                return -EINVAL;
        /* The longest path we will build must fit sockaddr_un. */
        if (strlen(config->uds_path) + strlen("_4294967295") >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return -ENAMETOOLONG;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(e);
        m->config = *config;
        m->stats = stats;
        m->wake = wake_cb;
        m->userdata = userdata;
        m->listen_fd = -1;
        m->next_local_port = VSOCK_MUX_LOCAL_PORT_FIRST;
        m->uds_path = strdup(config->uds_path);
        m->ident = strdup(config->ident ?: "");
        m->conns_by_key = hashmap_new();
        if (!m->uds_path || !m->ident || !m->conns_by_key) {
                vsock_mux_free(m);
                return -ENOMEM;
        }
        m->config.uds_path = m->uds_path;
        m->config.ident = m->ident;

        r = sd_event_add_time_relative(e, &m->timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0, timer_fired, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->timer, SD_EVENT_ON);
        if (r < 0) {
                vsock_mux_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void vsock_mux_reset(VsockMux *m) {
        while (m->clients)
                client_free(m->clients);
        while (m->conns)
                conn_free(m->conns);
        m->rst_head = m->rst_len = 0;
}

VsockMux *vsock_mux_free(VsockMux *m) {
        if (!m)
                return NULL;
        vsock_mux_reset(m);
        m->listen_io = sd_event_source_disable_unref(m->listen_io);
        m->listen_retry = sd_event_source_disable_unref(m->listen_retry);
        m->timer = sd_event_source_disable_unref(m->timer);
        if (m->listen_fd >= 0) {
                (void) unlink(m->uds_path);
                safe_close(m->listen_fd);
        }
        hashmap_free(m->conns_by_key);
        sd_event_unref(m->event);
        free(m->uds_path);
        free(m->ident);
        free(m);
        return NULL;
}

int vsock_mux_listen(VsockMux *m) {
        _cleanup_close_ int fd = -1;
        int r;

        if (m->listen_fd >= 0)
                return -EBUSY;
        r = sd_event_add_time_relative(m->event, &m->listen_retry, CLOCK_MONOTONIC, USEC_PER_SEC, 0, listen_retry, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->listen_retry, SD_EVENT_OFF);
        fd = unix_stream_listen(m->uds_path, 0);
        if (fd < 0)
                return fd;
        r = sd_event_add_io(m->event, &m->listen_io, fd, EPOLLIN, listen_io, m);
        if (r < 0) {
                (void) unlink(m->uds_path);
                return r;
        }
        m->listen_fd = TAKE_FD(fd);
        return 0;
}

size_t vsock_mux_n_connections(const VsockMux *m) {
        return m->n_conns;
}
