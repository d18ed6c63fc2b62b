/* SPDX-License-Identifier: MIT */
#include "transport.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-log.h"
#include "config.h"
#include "format.h"
#include "frame.h"
#include "macro.h"
#include "time-util.h"
#include "traceparent.h"

/* Enough to batch many small records per write(), small enough that a ClockSample never waits long. */
#define OUT_BATCH_BYTES 16384u
#define SESSION_ID_MAX 64u

#ifndef GRND_INSECURE
#        define GRND_INSECURE 0x0004 /* Linux 5.6; older kernels refuse it with EINVAL */
#endif

typedef enum TransportState {
        STATE_BACKOFF,    /* no socket; reconnect at reconnect_at */
        STATE_CONNECTING, /* non-blocking connect in progress */
        STATE_HANDSHAKE,  /* Hello queued, waiting for Welcome */
        STATE_ESTABLISHED,
} TransportState;

struct Transport {
        TransportConfig config;
        char *unix_path, *boot_id, *kernel_release, *hostname;
        char address[128]; /* for log lines */

        Replay *replay;
        transport_welcome_t on_welcome;
        void *userdata;

        TransportState state;
        int fd;
        FrameReader reader;

        /* Frames waiting to be written: [out_pos, out_len). out_frame is the start of the frame out_pos is
         * in, so that a ClockSample can be slipped in right after it. */
        uint8_t *out;
        size_t out_len, out_pos, out_cap, out_frame;

        uint64_t backoff_ns;
        uint64_t reconnect_at;
        uint64_t deadline; /* connect or handshake timeout */
        uint64_t last_write_ns;
        uint64_t heartbeat_ns;
        bool failure_logged;

        uint8_t session_id[SESSION_ID_MAX];
        size_t session_id_len;
        uint32_t version; /* the Welcome's protocol version */
        uint8_t instance_id[TRANSPORT_INSTANCE_ID_BYTES];

        uint64_t rng;
        TransportStats stats;
};

/* splitmix64: spreads a weak seed over all bits. */
static uint64_t mix64(uint64_t z) {
        z += UINT64_C(0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/* Hello.agent_instance names this agent process, so that tetherd can tell a restarted agent (seq 1 again, same
 * boot id) from a reconnect. Only uniqueness matters, and PID 1 must never wait for entropy: without a ready
 * pool, the insecure pool, else the clocks and pid (an agent restarted within one boot differs in both). */
static void instance_id_init(uint8_t *out, size_t n) {
        if (getrandom(out, n, GRND_NONBLOCK) == (ssize_t) n || getrandom(out, n, GRND_INSECURE) == (ssize_t) n)
                return;
        uint64_t seed = now_ns(CLOCK_BOOTTIME) ^ now_ns(CLOCK_REALTIME) << 17 ^ (uint64_t) getpid() << 40;
        for (size_t i = 0; i < n; i += 8) {
                uint64_t v = mix64(seed + i);
                memcpy(out + i, &v, MIN((size_t) 8, n - i));
        }
}

static int dup_string(char **field, const char *s) {
        if (!s)
                return 0;
        return (*field = strdup(s)) ? 0 : -ENOMEM;
}

int transport_new(
        const TransportConfig *config,
        Replay *replay,
        transport_welcome_t on_welcome,
        void *userdata,
        Transport **ret) {
        Transport *t = calloc(1, sizeof(Transport));
        if (!t)
                return -ENOMEM;

        t->config = *config;
        t->fd = -1;
        t->replay = replay;
        t->on_welcome = on_welcome;
        t->userdata = userdata;
        t->backoff_ns = TRANSPORT_BACKOFF_MIN_NS;
        t->heartbeat_ns = TRANSPORT_HEARTBEAT_DEFAULT_MS * NSEC_PER_MSEC;
        t->reconnect_at = UINT64_MAX;

        if (dup_string(&t->unix_path, config->unix_path) < 0 || dup_string(&t->boot_id, config->boot_id) < 0 ||
            dup_string(&t->kernel_release, config->kernel_release) < 0 ||
            dup_string(&t->hostname, config->hostname) < 0) {
                transport_free(t);
                return -ENOMEM;
        }
        t->config.unix_path = t->unix_path;
        t->config.boot_id = t->boot_id;
        t->config.kernel_release = t->kernel_release;
        t->config.hostname = t->hostname;

        if (config->kind == TRANSPORT_UNIX)
                format(t->address, sizeof(t->address), "unix:%s", config->unix_path ?: "");
        else
                format(t->address, sizeof(t->address), "vsock:%u:%u", config->cid, config->port);

        instance_id_init(t->instance_id, sizeof(t->instance_id));
        if (getrandom(&t->rng, sizeof(t->rng), GRND_NONBLOCK) != sizeof(t->rng))
                t->rng = now_ns(CLOCK_MONOTONIC) ^ (uint64_t) getpid() << 32;
        t->rng |= 1;

        *ret = t;
        return 0;
}

Transport *transport_free(Transport *t) {
        if (!t)
                return NULL;
        safe_close(t->fd);
        frame_reader_done(&t->reader);
        free(t->out);
        free(t->unix_path);
        free(t->boot_id);
        free(t->kernel_release);
        free(t->hostname);
        free(t);
        return NULL;
}

static uint64_t next_random(Transport *t) {
        /* xorshift64: jitter only, nothing secret */
        t->rng ^= t->rng << 13;
        t->rng ^= t->rng >> 7;
        t->rng ^= t->rng << 17;
        return t->rng;
}

static void out_reset(Transport *t) {
        t->out_len = t->out_pos = t->out_frame = 0;
}

static size_t out_pending(const Transport *t) {
        return t->out_len - t->out_pos;
}

static int out_reserve(Transport *t, size_t more) {
        if (t->out_len + more <= t->out_cap)
                return 0;
        if (t->out_pos > 0 && t->out_pos == t->out_len)
                out_reset(t);
        size_t cap = MAX(t->out_cap * 2, t->out_len + more);
        uint8_t *n = realloc(t->out, cap);
        if (!n)
                return -ENOMEM;
        t->out = n;
        t->out_cap = cap;
        return 0;
}

static int out_append(Transport *t, const uint8_t *frame, size_t len) {
        int r = out_reserve(t, len);
        if (r < 0)
                return r;
        memcpy(t->out + t->out_len, frame, len);
        t->out_len += len;
        return 0;
}

/* Inserts a control frame right after the frame being written, ahead of queued records: a ClockSample that
 * waited behind 16 KiB of logs would widen the clock error bound for nothing. */
static int out_insert_priority(Transport *t, const uint8_t *frame, size_t len) {
        int r = out_reserve(t, len); /* may compact: compute the position afterwards */
        if (r < 0)
                return r;

        size_t at = t->out_frame;
        if (t->out_pos > t->out_frame)
                at = t->out_frame + TETHER_FRAME_HEADER_SIZE + frame_header_get(t->out + t->out_frame);
        memmove(t->out + at + len, t->out + at, t->out_len - at);
        memcpy(t->out + at, frame, len);
        t->out_len += len;
        return 0;
}

static int queue_envelope(Transport *t, const Tether__Envelope *e, bool priority) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;
        int r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        return priority ? out_insert_priority(t, frame, len) : out_append(t, frame, len);
}

static void schedule_reconnect(Transport *t, uint64_t now) {
        /* "Equal jitter": half the backoff fixed, half random, so that many guests restarted together do not
         * knock on the host in lockstep. */
        uint64_t half = t->backoff_ns / 2;
        t->reconnect_at = now + half + next_random(t) % (half + 1);
        t->backoff_ns = MIN(t->backoff_ns * 2, TRANSPORT_BACKOFF_MAX_NS);
        t->state = STATE_BACKOFF;
}

static void disconnect(Transport *t, uint64_t now) {
        if (t->fd >= 0)
                t->stats.disconnects++;
        t->fd = safe_close(t->fd);
        out_reset(t);
        t->reader.start = t->reader.end = 0;
        /* Everything not acked goes again, in order, on the next connection. */
        replay_rewind(t->replay);
        schedule_reconnect(t, now);
}

static void connect_failed(Transport *t, int error, uint64_t now) {
        if (!t->failure_logged) {
                log_info_errno(error, "tetherd not reachable at %s (%m); retrying in the background", t->address);
                t->failure_logged = true;
        } else
                log_debug_errno(error, "connecting to %s failed: %m", t->address);
        t->fd = safe_close(t->fd);
        schedule_reconnect(t, now);
}

static int queue_hello(Transport *t, uint64_t now) {
        Tether__Hello h = TETHER__HELLO__INIT;
        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.max_protocol_version = TETHER_PROTOCOL_VERSION_MAX;
        h.agent_version = (char *) TETHER_VERSION;
        h.boot_id = t->boot_id ?: (char *) "";
        h.kernel_release = t->kernel_release ?: (char *) "";
        h.hostname = t->hostname ?: (char *) "";
        h.mode = t->config.mode;
        h.resume_token.data = t->session_id;
        h.resume_token.len = t->session_id_len;
        h.agent_instance.data = t->instance_id;
        h.agent_instance.len = sizeof(t->instance_id);
        h.boottime_ns = now;
        h.first_seq = replay_first_seq(t->replay);
        h.last_seq = replay_last_seq(t->replay);

        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        return queue_envelope(t, &e, false);
}

static void connected(Transport *t, uint64_t now) {
        int r;

        if (!t->reader.buf && (r = frame_reader_init(&t->reader, 0)) < 0) {
                log_warning_errno(r, "Failed to allocate the frame reader: %m");
                disconnect(t, now);
                return;
        }
        out_reset(t);
        replay_rewind(t->replay);
        if ((r = queue_hello(t, now)) < 0) {
                log_warning_errno(r, "Failed to build Hello: %m");
                disconnect(t, now);
                return;
        }
        t->state = STATE_HANDSHAKE;
        t->deadline = now + TRANSPORT_HANDSHAKE_TIMEOUT_NS;
        transport_flush(t, now);
}

static void connect_now(Transport *t, uint64_t now) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
                struct sockaddr_vm vm;
        } addr = {};
        socklen_t addr_len;

        t->reconnect_at = UINT64_MAX;

        if (t->config.kind == TRANSPORT_UNIX) {
                size_t n = strlen(t->unix_path);
                if (n >= sizeof(addr.un.sun_path)) {
                        connect_failed(t, ENAMETOOLONG, now);
                        return;
                }
                addr.un.sun_family = AF_UNIX;
                memcpy(addr.un.sun_path, t->unix_path, n);
                addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
        } else {
                addr.vm.svm_family = AF_VSOCK;
                addr.vm.svm_cid = t->config.cid;
                addr.vm.svm_port = t->config.port;
                addr_len = sizeof(addr.vm);
        }

        t->fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (t->fd < 0) {
                connect_failed(t, errno, now);
                return;
        }

        if (connect(t->fd, &addr.sa, addr_len) < 0) {
                if (errno != EINPROGRESS) {
                        /* A Unix socket with a full backlog says EAGAIN: just another reason to retry. */
                        connect_failed(t, errno, now);
                        return;
                }
                t->state = STATE_CONNECTING;
                t->deadline = now + TRANSPORT_CONNECT_TIMEOUT_NS;
                return;
        }
        connected(t, now);
}

void transport_start(Transport *t, uint64_t now) {
        connect_now(t, now);
}

static void protocol_error(Transport *t, ProtocolError pe, const char *detail, uint64_t now) {
        t->stats.protocol_errors++;
        log_warning(
                "protocol error from tetherd at %s: %s%s%s; reconnecting",
                t->address,
                protocol_error_to_string(pe),
                detail ? ": " : "",
                detail ?: "");
        disconnect(t, now);
}

static int queue_clock_sample(Transport *t, uint64_t probe_id) {
        Tether__ClockSample s = TETHER__CLOCK_SAMPLE__INIT;
        s.probe_id = probe_id;
        s.boottime_ns = now_ns(CLOCK_BOOTTIME);
        s.monotonic_ns = now_ns(CLOCK_MONOTONIC);

        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
        e.clock_sample = &s;
        t->stats.clock_samples++;
        return queue_envelope(t, &e, true);
}

static void handle_welcome(Transport *t, const Tether__Welcome *w, uint64_t now) {
        if (w->protocol_version < TETHER_PROTOCOL_VERSION || w->protocol_version > TETHER_PROTOCOL_VERSION_MAX) {
                char detail[64];
                format(detail, sizeof(detail), "host speaks version %u", w->protocol_version);
                protocol_error(t, PROTOCOL_ERROR_VERSION_MISMATCH, detail, now);
                return;
        }

        t->version = w->protocol_version;
        memcpy(t->session_id, w->session_id.data, w->session_id.len); /* validated: at most 64 bytes */
        t->session_id_len = w->session_id.len;

        /* Frees what tetherd holds, reports what it lost (records dropped after they were sent), rewinds. */
        bool clamped;
        size_t freed = replay_welcome(t->replay, w->acked_seq, &clamped);
        if (clamped)
                t->stats.clamped_acks++;
        if (freed > 0)
                t->stats.progress_ns = now;

        uint32_t hb = w->limits && w->limits->heartbeat_interval_ms ? w->limits->heartbeat_interval_ms :
                                                                      TRANSPORT_HEARTBEAT_DEFAULT_MS;
        hb = MAX(hb, 100u);
        hb = MIN(hb, 3600u * 1000u);
        t->heartbeat_ns = (uint64_t) hb * NSEC_PER_MSEC;

        t->state = STATE_ESTABLISHED;
        t->deadline = UINT64_MAX;
        t->last_write_ns = now;
        t->backoff_ns = TRANSPORT_BACKOFF_MIN_NS;
        t->failure_logged = false;
        t->stats.connects++;
        log_info(
                "connected to tetherd at %s (acked seq %llu, %zu freed, resending from seq %llu)",
                t->address,
                (unsigned long long) w->acked_seq,
                freed,
                (unsigned long long) replay_first_seq(t->replay));

        if (w->traceparent && *w->traceparent && t->on_welcome) {
                TraceParent tp;
                if (traceparent_parse(w->traceparent, &tp) >= 0)
                        t->on_welcome(w->traceparent, t->userdata);
                else
                        log_warning("ignoring invalid traceparent from tetherd");
        }
}

/* Returns false when the connection was closed. */
static bool handle_frame(Transport *t, const uint8_t *payload, size_t len, uint64_t now) {
        Tether__Envelope *e = NULL;

        if (envelope_unpack(payload, len, &e) < 0) {
                protocol_error(t, PROTOCOL_ERROR_DECODE_FAILED, NULL, now);
                return false;
        }

        EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        ProtocolError pe = envelope_validate(e, &limits);
        if (pe != PROTOCOL_ERROR_NONE) {
                envelope_free(e);
                protocol_error(t, pe, NULL, now);
                return false;
        }

        bool ok = true;
        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_WELCOME:
                if (t->state != STATE_HANDSHAKE) {
                        protocol_error(t, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, "second Welcome", now);
                        ok = false;
                        break;
                }
                handle_welcome(t, e->welcome, now);
                ok = t->state == STATE_ESTABLISHED;
                break;
        case TETHER__ENVELOPE__MSG_CLOCK_PROBE: {
                int r = queue_clock_sample(t, e->clock_probe->probe_id);
                if (r < 0)
                        log_debug_errno(r, "Failed to queue a ClockSample: %m");
                break;
        }
        case TETHER__ENVELOPE__MSG_ACK:
                if (t->state != STATE_ESTABLISHED) {
                        protocol_error(t, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, "Ack before Welcome", now);
                        ok = false;
                        break;
                }
                bool clamped;
                if (replay_ack(t->replay, e->ack->seq, &clamped) > 0)
                        t->stats.progress_ns = now;
                if (clamped) {
                        t->stats.clamped_acks++;
                        log_debug("tetherd acked seq %llu, beyond the last record", (unsigned long long) e->ack->seq);
                }
                break;
        default:
                protocol_error(t, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, "a message only the agent sends", now);
                ok = false;
        }

        envelope_free(e);
        return ok;
}

static void handle_readable(Transport *t, uint64_t now) {
        /* A bounded number of reads per wakeup: the workload's pipes must not starve. */
        for (unsigned i = 0; i < 8; i++) {
                int k = frame_reader_fill(&t->reader, t->fd);
                if (k == -EAGAIN)
                        return;
                if (k == 0) {
                        log_info("tetherd at %s closed the connection", t->address);
                        disconnect(t, now);
                        return;
                }
                if (k < 0) {
                        log_info_errno(k, "connection to tetherd at %s failed: %m", t->address);
                        disconnect(t, now);
                        return;
                }

                for (;;) {
                        const uint8_t *payload;
                        size_t len;
                        int r = frame_reader_next(&t->reader, &payload, &len);
                        if (r == 0)
                                break;
                        if (r < 0) {
                                protocol_error(
                                        t,
                                        r == -EMSGSIZE ? PROTOCOL_ERROR_FRAME_TOO_LARGE : PROTOCOL_ERROR_FRAME_EMPTY,
                                        NULL,
                                        now);
                                return;
                        }
                        if (!handle_frame(t, payload, len, now))
                                return;
                }
        }
}

void transport_handle_io(Transport *t, short revents, uint64_t now) {
        if (t->fd < 0)
                return;

        if (t->state == STATE_CONNECTING) {
                if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
                        return;
                int error = 0;
                socklen_t len = sizeof(error);
                if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        connect_failed(t, error, now);
                        return;
                }
                connected(t, now);
                return;
        }

        if (revents & (POLLIN | POLLHUP | POLLERR))
                handle_readable(t, now);
        if (t->fd >= 0 && (revents & POLLOUT))
                transport_flush(t, now);
}

static void refill(Transport *t, uint64_t now) {
        if (t->state != STATE_ESTABLISHED)
                return;

        while (out_pending(t) < OUT_BATCH_BYTES) {
                const uint8_t *frame;
                size_t len;
                if (replay_next(t->replay, &frame, &len, NULL) <= 0)
                        break;
                if (out_append(t, frame, len) < 0) {
                        /* Out of memory: the record stays in the replay buffer for the next connection. */
                        log_warning("out of memory queueing records; reconnecting");
                        disconnect(t, now);
                        return;
                }
        }
}

void transport_flush(Transport *t, uint64_t now) {
        if (t->fd < 0 || t->state == STATE_CONNECTING)
                return;

        for (;;) {
                if (out_pending(t) == 0) {
                        out_reset(t);
                        refill(t, now);
                        if (t->fd < 0 || out_pending(t) == 0)
                                return;
                }

                ssize_t k = RETRY_ON_EINTR(write(t->fd, t->out + t->out_pos, out_pending(t)));
                if (k < 0) {
                        if (errno == EAGAIN)
                                return;
                        log_info_errno(errno, "sending to tetherd at %s failed: %m", t->address);
                        disconnect(t, now);
                        return;
                }
                t->out_pos += (size_t) k;
                t->stats.bytes_sent += (uint64_t) k;
                t->last_write_ns = now;

                /* Keep out_frame at the start of the frame out_pos is in. */
                while (t->out_frame < t->out_pos && t->out_len - t->out_frame >= TETHER_FRAME_HEADER_SIZE) {
                        size_t end = t->out_frame + TETHER_FRAME_HEADER_SIZE + frame_header_get(t->out + t->out_frame);
                        if (end > t->out_pos)
                                break;
                        t->out_frame = end;
                }
        }
}

int transport_fd(const Transport *t, short *ret_events) {
        if (t->fd < 0)
                return -1;

        short events;
        if (t->state == STATE_CONNECTING)
                events = POLLOUT;
        else {
                events = POLLIN;
                if (out_pending(t) > 0 || (t->state == STATE_ESTABLISHED && replay_has_unsent(t->replay)))
                        events |= POLLOUT;
        }
        *ret_events = events;
        return t->fd;
}

uint64_t transport_next_deadline(const Transport *t) {
        switch (t->state) {
        case STATE_BACKOFF:
                return t->reconnect_at;
        case STATE_CONNECTING:
        case STATE_HANDSHAKE:
                return t->deadline;
        case STATE_ESTABLISHED:
                return t->last_write_ns + t->heartbeat_ns;
        }
        return UINT64_MAX;
}

void transport_handle_timers(Transport *t, uint64_t now) {
        switch (t->state) {
        case STATE_BACKOFF:
                if (now >= t->reconnect_at)
                        connect_now(t, now);
                break;
        case STATE_CONNECTING:
                if (now >= t->deadline)
                        connect_failed(t, ETIMEDOUT, now);
                break;
        case STATE_HANDSHAKE:
                if (now >= t->deadline) {
                        log_info("no Welcome from tetherd at %s in time; reconnecting", t->address);
                        disconnect(t, now);
                }
                break;
        case STATE_ESTABLISHED:
                if (now >= t->last_write_ns + t->heartbeat_ns) {
                        if (out_pending(t) == 0 && !replay_has_unsent(t->replay)) {
                                Tether__Heartbeat hb = TETHER__HEARTBEAT__INIT;
                                hb.boottime_ns = now;
                                Tether__Envelope e = TETHER__ENVELOPE__INIT;
                                e.msg_case = TETHER__ENVELOPE__MSG_HEARTBEAT;
                                e.heartbeat = &hb;
                                if (queue_envelope(t, &e, false) >= 0)
                                        t->stats.heartbeats++;
                        }
                        /* Not idle, or the socket is stuck: either way, do not spin on this deadline. */
                        t->last_write_ns = now;
                        transport_flush(t, now);
                }
                break;
        }
}

int transport_send_sample(Transport *t, const Tether__ResourceSample *s) {
        /* A sample waits for nothing: behind a backlog it would be stale, and the next one carries the same
         * cumulative counters. */
        if (t->state != STATE_ESTABLISHED || t->version < TETHER_PROTOCOL_VERSION_SAMPLES ||
            out_pending(t) > TRANSPORT_SAMPLE_MAX_BACKLOG)
                return 0;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE;
        e.resource_sample = (Tether__ResourceSample *) s;
        int r = queue_envelope(t, &e, false);
        if (r < 0)
                return r;
        t->stats.samples++;
        return 1;
}

bool transport_wants_samples(const Transport *t) {
        return t->state == STATE_ESTABLISHED && t->version >= TETHER_PROTOCOL_VERSION_SAMPLES;
}

bool transport_is_established(const Transport *t) {
        return t->state == STATE_ESTABLISHED;
}

void transport_get_stats(const Transport *t, TransportStats *ret) {
        *ret = t->stats;
}
