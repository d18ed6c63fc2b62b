/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#include "notify-server.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentless.h"
#include "jsonlog.h"
#include "list.h"
#include "listener.h"
#include "machine-socket.h"
#include "macro.h"
#include "ratelimit.h"
#include "time-util.h"
#include "vmm-notify.h"

typedef struct NotifyConnection NotifyConnection;

struct NotifyConnection {
        NotifyServer *server;
        Machine *machine;
        int fd;
        sd_event_source *io, *timer;
        uint64_t deadline_ns; /* CLOCK_MONOTONIC: accepted + NOTIFY_TIMEOUT_NS */
        size_t len;
        uint8_t buf[VMM_NOTIFY_MESSAGE_MAX + 1]; /* one byte more: a message above the bound is seen as such */
        LIST_FIELDS(NotifyConnection, connections);
};

struct NotifyServer {
        sd_event *event;
        const SessionContext *ctx;
        uint32_t port;
        Listener *vsock_listener;
        LIST_HEAD(NotifyConnection, connections);
        size_t n_connections;
        RateLimit refused_ratelimit;
};

static void notify_refuse(NotifyServer *ns, Machine *m, NotifyRefuseReason reason, const char *what) {
        uint64_t suppressed = 0;

        ns->ctx->stats->notify_refused[reason]++;
        /* A guest looping on connect must not flood the log: one line a second for all of them. */
        if (!ratelimit_below(&ns->refused_ratelimit, now_ns(CLOCK_MONOTONIC), &suppressed))
                return;
        log_warning(
                "Refusing a vmm.notify message%s%s: %s (%s); %" PRIu64 " more refused since the last report.",
                m ? " from machine " : "",
                m ? m->id : "",
                notify_refuse_reason_to_string(reason),
                what,
                suppressed);
}

static NotifyConnection *notify_connection_free(NotifyConnection *c) {
        if (!c)
                return NULL;
        if (c->fd >= 0)
                c->server->ctx->stats->notify_closed[NOTIFY_CLOSE_DROPPED]++;
        LIST_REMOVE(connections, c->server->connections, c);
        c->server->n_connections--;
        c->server->ctx->stats->notify_connections_open = c->server->n_connections;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c);
        return NULL;
}

/* The guest is released first (the close), then the message is applied. */
static void notify_connection_finish(NotifyConnection *c, NotifyCloseReason how) {
        NotifyServer *ns = c->server;
        Machine *m = c->machine;
        size_t len = c->len;
        VmmNotify n;
        int r;

        c->fd = safe_close(c->fd);
        ns->ctx->stats->notify_closed[how]++;
        if (len == 0) {
                notify_refuse(ns, m, NOTIFY_REFUSE_EMPTY, "no byte before the connection ended");
                notify_connection_free(c);
                return;
        }
        r = vmm_notify_parse(c->buf, len, &n);
        if (r == -EMSGSIZE)
                notify_refuse(ns, m, NOTIFY_REFUSE_TOO_LARGE, "above the message size bound");
        else if (r == -EBADMSG)
                notify_refuse(ns, m, NOTIFY_REFUSE_MALFORMED, "no KEY=VALUE line");
        else if (r < 0)
                notify_refuse(ns, m, NOTIFY_REFUSE_OUT_OF_MEMORY, "out of memory");
        if (r < 0) {
                notify_connection_free(c);
                return;
        }
        notify_connection_free(c);

        Stats *st = ns->ctx->stats;
        st->notify_messages++;
        st->notify_keys_ignored += n.n_unknown;
        st->notify_lines_invalid += n.n_invalid + n.n_units_dropped;
        if (vmm_notify_is_empty(&n))
                log_debug("Machine %s sent a vmm.notify message with nothing tetherd uses.", m->id);
        else {
                r = agentless_apply(ns->ctx, m, &n);
                if (r == -ENOMEM)
                        log_oom();
                else if (r < 0 && r != -EPROTO)
                        log_warning_errno(r, "Failed to apply a vmm.notify message of machine %s: %m", m->id);
        }
        vmm_notify_done(&n);
}

static int notify_arm_timer(NotifyConnection *c) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        uint64_t when = c->len > 0 ? MIN(now + NOTIFY_IDLE_NS, c->deadline_ns) : c->deadline_ns;
        int r = sd_event_source_set_time(c->timer, when / NSEC_PER_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r;
}

static int on_notify_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        NotifyConnection *c = userdata;

        notify_connection_finish(
                c, c->len > 0 && now_ns(CLOCK_MONOTONIC) < c->deadline_ns ? NOTIFY_CLOSE_IDLE : NOTIFY_CLOSE_TIMEOUT);
        return 0;
}

static int on_notify_readable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        NotifyConnection *c = userdata;

        for (;;) {
                ssize_t k = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        break;
                if (k <= 0) {
                        /* EOF (systemd's half-close, where the transport carries it), or a reset. */
                        notify_connection_finish(c, NOTIFY_CLOSE_EOF);
                        return 0;
                }
                c->len += (size_t) k;
                if (c->len > VMM_NOTIFY_MESSAGE_MAX) {
                        notify_connection_finish(c, NOTIFY_CLOSE_TOO_LARGE); /* and refused */
                        return 0;
                }
        }
        if (notify_arm_timer(c) < 0)
                notify_connection_finish(c, NOTIFY_CLOSE_TIMEOUT);
        return 0;
}

static size_t notify_machine_connections(const NotifyServer *ns, const Machine *m) {
        size_t n = 0;
        for (const NotifyConnection *c = ns->connections; c; c = c->connections_next)
                if (c->machine == m)
                        n++;
        return n;
}

static void notify_accept(NotifyServer *ns, Machine *m, int fd) {
        NotifyConnection *c;
        int r;

        if (ns->n_connections >= NOTIFY_MAX_CONNECTIONS) {
                safe_close(fd);
                notify_refuse(ns, m, NOTIFY_REFUSE_TOTAL_LIMIT, "too many open vmm.notify connections");
                return;
        }
        if (notify_machine_connections(ns, m) >= NOTIFY_MAX_CONNECTIONS_PER_MACHINE) {
                safe_close(fd);
                notify_refuse(ns, m, NOTIFY_REFUSE_MACHINE_LIMIT, "too many open connections of this machine");
                return;
        }
        c = malloc(sizeof(NotifyConnection));
        if (!c) {
                safe_close(fd);
                notify_refuse(ns, m, NOTIFY_REFUSE_OUT_OF_MEMORY, "out of memory");
                return;
        }
        *c = (NotifyConnection) {
                .server = ns,
                .machine = m,
                .fd = fd,
                .deadline_ns = now_ns(CLOCK_MONOTONIC) + NOTIFY_TIMEOUT_NS,
        };
        LIST_PREPEND(connections, ns->connections, c);
        ns->n_connections++;
        ns->ctx->stats->notify_connections_open = ns->n_connections;
        r = sd_event_add_io(ns->event, &c->io, fd, EPOLLIN | EPOLLRDHUP, on_notify_readable, c);
        if (r >= 0)
                r = sd_event_add_time(
                        ns->event, &c->timer, CLOCK_MONOTONIC, c->deadline_ns / NSEC_PER_USEC, 1, on_notify_timer, c);
        if (r < 0) {
                notify_refuse(ns, m, NOTIFY_REFUSE_OUT_OF_MEMORY, "cannot watch the connection");
                notify_connection_free(c);
        }
}

void notify_server_accept_vsock_peer(NotifyServer *ns, int fd, uint32_t cid) {
        /* Identity comes from the transport: the CID the hypervisor gave the guest. */
        Machine *m = registry_find_by_cid(ns->ctx->registry, cid);
        if (!m) {
                char what[64];
                safe_close(fd);
                snprintf(what, sizeof(what), "unregistered CID %u", cid);
                notify_refuse(ns, NULL, NOTIFY_REFUSE_UNKNOWN_CID, what);
                return;
        }
        notify_accept(ns, m, fd);
}

static void on_notify_vsock_accept(Listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *userdata) {
        NotifyServer *ns = userdata;
        const struct sockaddr_vm *vm = (const struct sockaddr_vm *) peer;

        if (len < sizeof(struct sockaddr_vm) || peer->sa_family != AF_VSOCK) {
                safe_close(fd);
                notify_refuse(ns, NULL, NOTIFY_REFUSE_NO_PEER, "no peer address");
                return;
        }
        notify_server_accept_vsock_peer(ns, fd, vm->svm_cid);
}

static void on_notify_uds_accept(Listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *userdata) {
        NotifyServer *ns = userdata;

        /* Whoever can connect to this machine's socket speaks for this machine (and only for it). */
        for (Machine *m = ns->ctx->registry->machines; m; m = m->machines_next)
                if (m->notify_listener == l) {
                        notify_accept(ns, m, fd);
                        return;
                }
        safe_close(fd);
}

static void on_notify_accept_error(Listener *l, int error, void *userdata) {
        log_warning_errno(error, "Failed to accept a vmm.notify connection on %s: %m", listener_description(l));
}

int notify_server_new(sd_event *e, const SessionContext *ctx, uint32_t port, NotifyServer **ret) {
        NotifyServer *ns = calloc(1, sizeof(NotifyServer));
        if (!ns)
                return -ENOMEM;
        ns->event = sd_event_ref(e);
        ns->ctx = ctx;
        ns->port = port;
        ns->refused_ratelimit = RATELIMIT_INIT(NSEC_PER_SEC, 1);
        *ret = ns;
        return 0;
}

NotifyServer *notify_server_free(NotifyServer *ns) {
        if (!ns)
                return NULL;
        while (ns->connections)
                notify_connection_free(ns->connections);
        for (Machine *m = ns->ctx->registry->machines; m; m = m->machines_next)
                m->notify_listener = listener_free(m->notify_listener);
        listener_free(ns->vsock_listener);
        sd_event_unref(ns->event);
        free(ns);
        return NULL;
}

uint32_t notify_server_port(const NotifyServer *ns) {
        return ns ? ns->port : 0;
}

int notify_server_listen_vsock(NotifyServer *ns) {
        if (!ns || ns->port == 0 || ns->vsock_listener)
                return 0;
        return listener_new_vsock(
                ns->event, ns->port, on_notify_vsock_accept, on_notify_accept_error, ns, &ns->vsock_listener);
}

int notify_server_listen_machine(NotifyServer *ns, Machine *m) {
        if (!ns || ns->port == 0 || !m->uds_path || m->notify_listener)
                return 0;
        return machine_socket_listen(
                ns->event, m, ns->port, on_notify_uds_accept, on_notify_accept_error, ns, &m->notify_listener);
}

void notify_server_unlisten_machine(NotifyServer *ns, Machine *m) {
        if (!ns)
                return;
        m->notify_listener = listener_free(m->notify_listener);
        for (NotifyConnection *c = ns->connections, *next; c; c = next) {
                next = c->connections_next;
                if (c->machine == m)
                        notify_connection_free(c);
        }
}
