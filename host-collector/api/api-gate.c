/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#include "api-gate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event-util.h"
#include "fs-util.h"
#include "jsonlog.h"
#include "list.h"
#include "listener.h"
#include "macro.h"
#include "time-util.h"

/* A refused client has this long to read its 503, and at most this many wait at once. */
#define GATE_LINGER_NS (1 * NSEC_PER_SEC)
#define GATE_LINGER_MAX 64u
/* Connections looked at for one eviction (gate_eviction_candidate()). */
#define GATE_EVICTION_SCAN 64u
/* A connection is cut off to make room only once it has waited this long for its request: a client descheduled
 * between its connect() and its write (a loaded host) must not lose the connection it just got. Until one has,
 * newcomers wait in the listening socket's backlog, in the order they came, rather than being refused: slow
 * clients that reconnect the moment they are cut off can then not crowd out a client that sends its request
 * whole, which they would by racing it for each freed place. */
#define GATE_EVICTION_MIN_AGE_NS (250 * NSEC_PER_MSEC)

typedef struct GateConn GateConn;
typedef struct Refused Refused;

struct GateConn {
        ApiGate *gate;
        int fd;            /* MHD's: shut down when late, never closed here */
        uint64_t armed_ns; /* CLOCK_MONOTONIC when its request's deadline started; 0 while answering */
        bool shut;
        LIST_FIELDS(GateConn, armed); /* gate->armed, oldest first */
};

struct ApiGate {
        sd_event *event;
        ApiGateConfig config;
        Stats *stats;
        struct MHD_Daemon *mhd;
        int listen_fd;      /* until api_gate_attach() makes it the listener's */
        Listener *listener; /* accepts, at most 16 per wakeup, pausing on EMFILE (listener.h) */
        sd_event_source *deadline_timer;
        sd_event_source *admit_timer; /* while holding newcomers back: when the oldest waiting one may be evicted */
        unsigned n_conns;             /* held by MHD, n_shut of them shut down and about to close */
        unsigned n_shut;
        GateConn *adding; /* the connection MHD_add_connection() is announcing */
        LIST_HEAD(GateConn, armed);
        GateConn *armed_tail;
        bool at_limit; /* refusing; logged once per episode */
        sd_event_source *linger_timer;
        LIST_HEAD(Refused, refused); /* oldest first */
        Refused *refused_tail;
        unsigned n_refused;
};

static void gate_update_admission(ApiGate *g);

static void gate_disarm(GateConn *c) {
        ApiGate *g = c->gate;

        if (c->armed_ns == 0)
                return;
        LIST_REMOVE_WITH_TAIL(armed, g->armed, g->armed_tail, c);
        c->armed_ns = 0;
}

static void gate_update_timer(ApiGate *g) {
        if (!g->armed) {
                (void) sd_event_source_set_enabled(g->deadline_timer, SD_EVENT_OFF);
                return;
        }
        uint64_t deadline_ns = g->armed->armed_ns + g->config.request_timeout_ns;
        (void) sd_event_source_set_time(g->deadline_timer, deadline_ns / NSEC_PER_USEC + 1);
        (void) sd_event_source_set_enabled(g->deadline_timer, SD_EVENT_ONESHOT);
}

/* Starts the connection's deadline: appended, so the list stays in deadline order. */
static void gate_arm(GateConn *c) {
        ApiGate *g = c->gate;

        gate_disarm(c);
        if (c->shut)
                return;
        c->armed_ns = now_ns(CLOCK_MONOTONIC) ?: 1;
        LIST_APPEND_WITH_TAIL(armed, g->armed, g->armed_tail, c);
        if (g->armed == c)
                gate_update_timer(g);
}

/* MHD sees the end of the stream at its next read and closes the connection itself; the fd stays MHD's until
 * then (the record goes when MHD says it closed). */
static void gate_shut(GateConn *c) {
        gate_disarm(c);
        (void) shutdown(c->fd, SHUT_RDWR);
        c->shut = true;
        c->gate->n_shut++;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        ApiGate *g = userdata;
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        unsigned n = 0;

        while (g->armed && g->armed->armed_ns + g->config.request_timeout_ns <= now) {
                gate_shut(g->armed);
                g->stats->api_connections_timed_out++;
                n++;
        }
        if (n > 0)
                log_debug(
                        "API: shut down %u connection(s) whose request did not arrive within %" PRIu64 " ms.",
                        n,
                        g->config.request_timeout_ns / NSEC_PER_MSEC);
        gate_update_timer(g);
        gate_update_admission(g);
        return 0;
}

/* A refused client, given time to read its 503: the socket is closed once the client closes its side or after
 * GATE_LINGER_NS. Closing at once could reset the connection while the client is still sending its request,
 * and a reset may discard the answer before the client read it. */
struct Refused {
        ApiGate *gate;
        int fd;
        uint64_t since_ns;
        sd_event_source *io;
        LIST_FIELDS(Refused, refused);
};

static Refused *refused_free(Refused *r) {
        if (!r)
                return NULL;
        ApiGate *g = r->gate;
        LIST_REMOVE_WITH_TAIL(refused, g->refused, g->refused_tail, r);
        g->n_refused--;
        sd_event_source_disable_unref(r->io);
        safe_close(r->fd);
        free(r);
        return NULL;
}

static int on_refused_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Refused *r = userdata;
        char scratch[4096];

        for (;;) {
                ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
                if (n > 0)
                        continue;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return 0;
                break; /* end of stream or an error: the client is done */
        }
        refused_free(r);
        return 0;
}

static void gate_update_linger_timer(ApiGate *g) {
        if (!g->refused) {
                (void) sd_event_source_set_enabled(g->linger_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(g->linger_timer, (g->refused->since_ns + GATE_LINGER_NS) / NSEC_PER_USEC + 1);
        (void) sd_event_source_set_enabled(g->linger_timer, SD_EVENT_ONESHOT);
}

static int on_linger_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ApiGate *g = userdata;
        uint64_t now = now_ns(CLOCK_MONOTONIC);

        while (g->refused && g->refused->since_ns + GATE_LINGER_NS <= now)
                refused_free(g->refused);
        gate_update_linger_timer(g);
        return 0;
}

/* Beyond the limit: a short answer instead of a wait in the backlog. The socket is new and its buffer empty,
 * so the write does not block; if it fails the client sees the connection closed, which says as much. */
static void gate_refuse(ApiGate *g, int fd) {
        static const char body[] = "{\"error\": \"too many API connections open\"}";
        char answer[256];
        int n = snprintf(
                answer,
                sizeof(answer),
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                "Connection: close\r\n\r\n%s",
                sizeof(body) - 1,
                body);

        g->stats->api_connections_refused++;
        if (!g->at_limit) {
                g->at_limit = true;
                log_warning(
                        "API: %u connections open, the limit: refusing new ones (503) until some close.", g->n_conns);
        }
        (void) send(fd, answer, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void) shutdown(fd, SHUT_WR);

        /* Lingering sockets are bounded too: beyond GATE_LINGER_MAX the oldest goes at once. */
        if (g->n_refused >= GATE_LINGER_MAX)
                refused_free(g->refused);
        Refused *r = calloc(1, sizeof(Refused));
        if (!r || sd_event_add_io(g->event, &r->io, fd, EPOLLIN, on_refused_io, r) < 0) {
                free(r);
                safe_close(fd);
                return;
        }
        r->gate = g;
        r->fd = fd;
        r->since_ns = now_ns(CLOCK_MONOTONIC);
        LIST_APPEND_WITH_TAIL(refused, g->refused, g->refused_tail, r);
        g->n_refused++;
        if (g->refused == r)
                gate_update_linger_timer(g);
}

/* Among the oldest connections that have waited GATE_EVICTION_MIN_AGE_NS or longer for their request, the first
 * whose socket holds nothing unread: one that MHD has read everything from and that has not completed a request
 * is a slow or idle client. One with unread bytes may hold a whole request that MHD is about to read: it is not
 * cut off while there is another choice. NULL when none has waited that long. */
static GateConn *gate_eviction_candidate(ApiGate *g, uint64_t now) {
        unsigned looked = 0;

        if (!g->armed || g->armed->armed_ns + GATE_EVICTION_MIN_AGE_NS > now)
                return NULL;
        for (GateConn *c = g->armed; c && c->armed_ns + GATE_EVICTION_MIN_AGE_NS <= now && looked < GATE_EVICTION_SCAN;
             c = c->armed_next, looked++) {
                int unread = 0;
                if (ioctl(c->fd, FIONREAD, &unread) < 0 || unread == 0)
                        return c;
        }
        return g->armed;
}

static bool gate_full(const ApiGate *g) {
        return g->n_conns - g->n_shut >= g->config.max_connections;
}

/* At the limit, while connections wait for their requests but none has waited long enough to be cut off, the
 * listener holds newcomers back until the oldest has (at most GATE_EVICTION_MIN_AGE_NS). Otherwise it accepts:
 * below the limit, to evict, or to refuse when every connection is being answered or MHD holds twice the limit.
 * Called whenever the count or the waiting list changes. */
static void gate_update_admission(ApiGate *g) {
        bool hold = false;

        if (gate_full(g) && g->n_conns < 2 * g->config.max_connections && g->armed) {
                uint64_t evictable_ns = g->armed->armed_ns + GATE_EVICTION_MIN_AGE_NS;
                if (evictable_ns > now_ns(CLOCK_MONOTONIC)) {
                        hold = true;
                        (void) sd_event_source_set_time(g->admit_timer, evictable_ns / NSEC_PER_USEC + 1);
                        (void) sd_event_source_set_enabled(g->admit_timer, SD_EVENT_ONESHOT);
                }
        }
        if (!hold)
                (void) sd_event_source_set_enabled(g->admit_timer, SD_EVENT_OFF);
        if (g->listener)
                listener_hold(g->listener, hold);
}

static int on_admit_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        gate_update_admission(userdata);
        return 0;
}

static void on_accept(Listener *l, int cfd, const struct sockaddr *sa, socklen_t salen, void *userdata) {
        ApiGate *g = userdata;

        if (g->n_conns >= 2 * g->config.max_connections) {
                /* As many cut off and not closed by MHD yet as the limit allows: MHD's own limit (twice ours)
                 * would close a newcomer without a word. */
                gate_refuse(g, cfd);
                return;
        }
        if (gate_full(g)) {
                /* Full. The oldest connection that has waited long enough for its request makes room: a client
                 * that sends its request whole is answered even while others trickle theirs (or send nothing)
                 * and reconnect as fast as they are cut off. When every connection is being answered
                 * (long-polls, streams) the newcomer is refused; when the waiting ones are all too young,
                 * gate_update_admission() holds newcomers back, so none is taken here but by a race. */
                GateConn *victim = gate_eviction_candidate(g, now_ns(CLOCK_MONOTONIC));
                if (!victim) {
                        gate_refuse(g, cfd);
                        gate_update_admission(g);
                        return;
                }
                gate_shut(victim);
                g->stats->api_connections_evicted++;
                gate_update_timer(g);
        }
        GateConn *c = calloc(1, sizeof(GateConn));
        if (!c) {
                safe_close(cfd);
                return;
        }
        c->gate = g;
        c->fd = cfd;
        g->adding = c;
        /* MHD announces it (api_gate_notify_connection(), STARTED) before this returns, and owns and closes the
         * fd from here on, also when it fails. */
        if (MHD_add_connection(g->mhd, cfd, sa, salen) != MHD_YES) {
                if (g->adding == c)
                        free(c);
                log_debug_errno(errno, "API: libmicrohttpd did not take a connection: %m");
        }
        g->adding = NULL;
        gate_update_admission(g);
}

static void on_accept_error(Listener *l, int error, void *userdata) {
        /* EMFILE and the like: the listener pauses for a second by itself. */
        log_debug_errno(error, "API: failed to accept a connection: %m");
}

void api_gate_notify_connection(
        void *cls, struct MHD_Connection *conn, void **socket_context, enum MHD_ConnectionNotificationCode toe) {
        ApiGate *g = cls;
        GateConn *c;

        switch (toe) {
        case MHD_CONNECTION_NOTIFY_STARTED:
                c = TAKE_PTR(g->adding);
                if (!c)
                        return; /* not one of ours (MHD accepts nothing itself here) */
                *socket_context = c;
                g->n_conns++;
                gate_arm(c);
                break;
        case MHD_CONNECTION_NOTIFY_CLOSED:
                c = *socket_context;
                if (!c)
                        return;
                *socket_context = NULL;
                gate_disarm(c);
                if (c->shut)
                        g->n_shut--;
                free(c);
                g->n_conns--;
                if (g->at_limit && !gate_full(g)) {
                        g->at_limit = false;
                        log_info("API: below %u connections again, accepting.", g->config.max_connections);
                }
                if (!g->armed)
                        gate_update_timer(g);
                gate_update_admission(g);
                break;
        default:
                break;
        }
}

static GateConn *gate_conn(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return info ? info->socket_context : NULL;
}

void api_gate_request_answering(struct MHD_Connection *conn) {
        GateConn *c = gate_conn(conn);
        if (c) {
                ApiGate *g = c->gate;
                bool was_first = g->armed == c;
                gate_disarm(c);
                if (was_first)
                        gate_update_timer(g);
                gate_update_admission(g);
        }
}

void api_gate_request_completed(struct MHD_Connection *conn) {
        GateConn *c = gate_conn(conn);
        if (c) {
                gate_arm(c);
                gate_update_admission(c->gate);
        }
}

int api_gate_new(sd_event *e, int listen_fd, const ApiGateConfig *config, Stats *stats, ApiGate **ret) {
        int r;

        ApiGate *g = calloc(1, sizeof(ApiGate));
        if (!g) {
                safe_close(listen_fd);
                return -ENOMEM;
        }
        g->event = sd_event_ref(e);
        g->config = *config;
        g->stats = stats;
        g->listen_fd = listen_fd;
        r = sd_event_add_time(e, &g->deadline_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC * 10, on_deadline, g);
        if (r >= 0)
                r = sd_event_source_set_enabled(g->deadline_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(e, &g->linger_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC * 10, on_linger_timer, g);
        if (r >= 0)
                r = sd_event_source_set_enabled(g->linger_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(e, &g->admit_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_admit_timer, g);
        if (r >= 0)
                r = sd_event_source_set_enabled(g->admit_timer, SD_EVENT_OFF);
        if (r < 0) {
                api_gate_free(g);
                return r;
        }
        *ret = g;
        return 0;
}

int api_gate_attach(ApiGate *g, struct MHD_Daemon *mhd) {
        g->mhd = mhd;
        int r = listener_new_fd(g->event, g->listen_fd, on_accept, on_accept_error, g, &g->listener);
        g->listen_fd = -1; /* the listener's, also on failure */
        return r;
}

ApiGate *api_gate_free(ApiGate *g) {
        if (!g)
                return NULL;
        /* MHD_stop_daemon() closed the connections (and freed their records through the CLOSED notification)
         * before this. */
        while (g->refused)
                refused_free(g->refused);
        listener_free(g->listener);
        sd_event_source_disable_unref(g->deadline_timer);
        sd_event_source_disable_unref(g->linger_timer);
        sd_event_source_disable_unref(g->admit_timer);
        safe_close(g->listen_fd);
        sd_event_unref(g->event);
        free(g);
        return NULL;
}
