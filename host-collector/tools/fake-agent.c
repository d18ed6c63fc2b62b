/* SPDX-License-Identifier: MIT */
/* tether-fake-agent: speaks the agent side of the tether protocol from a script on the command line, for
 * manual and integration tests of tetherd without a VM, and for benchmarks (bench/scale).
 *
 *   tether-fake-agent [--boot-id ID] [--instance ID] [--uptime-ms N] [--agent-version V] [--reconnect yes|no]
 *                     [--welcome-timeout-ms N] [--window-bytes N] [--window-records N] [--ack-stall-ms N]
 *                     [--hold-probes yes|no] ADDRESS ACTION...
 *
 * --instance sends Hello.agent_instance (the bytes of ID; default none, like an agent older than the field):
 * run twice with the same boot id and different instances to play an agent restarted within a boot.
 *
 * After connecting it sends Hello and sends nothing else until the Welcome arrives (--welcome-timeout-ms,
 * default 30000: it fails then, saying so). On the Welcome it frees what Welcome.acked_seq covers and resends
 * the rest, in order, before any new record. With --reconnect yes a lost connection is re-established (the
 * same way: connect for 5 s, then wait for the Welcome) and unacked records are resent, as the real agent
 * does.
 *
 * --hold-probes yes leaves tetherd's clock probes unanswered until the `answer-probes` action (a guest too busy to
 * answer at first): records sent before it reach tetherd before any clock sample, while the boot's clock
 * mapping is not fixed yet. The held probes are answered then, each with the guest time of its answer.
 *
 * Records are kept until acked. --window-bytes (default 1 MiB, the real agent's replay buffer) and
 * --window-records (default 0: no bound) bound what is sent but not acked: `flood` waits for acks when the
 * window is full, so it runs exactly as fast as tetherd acks and the fake agent's memory stays bounded.
 *
 * ADDRESS is unix:PATH or vsock:CID:PORT. Actions run in order:
 *   milestone NAME [MS]      Milestone at guest boottime MS (default: now)
 *   phase NAME START END     Phase with boottimes in ms (status ok)
 *   log STREAM TEXT          Log record (stdout, stderr, console, kmsg), TEXT plus a newline
 *   logs STREAM N            N log records "line i"
 *   flood STREAM N BYTES     N log records of one line of BYTES bytes each (with the newline, 20..16384):
 *                            "line NNNNNNNNNNNN xxx...", numbered from 0, as fast as the window allows
 *   ready SOURCE             Ready record; prints ready_sent_unix_ns=T (host realtime just before sending)
 *   exit CODE [SIGNAL]       Exit record
 *   skip N                   Burn N sequence numbers without sending them (a gap)
 *   dropped N                Burn N sequence numbers and send a LogDropped naming them
 *   raw-seq N                Force the next record's seq (for regression tests)
 *   sleep MS                 Keep serving (probes, acks, heartbeats) for MS milliseconds
 *   wait-acks                Serve until every sent record is acked, for as long as acks make progress (fails
 *                            after --ack-stall-ms without any, default 10000)
 *   wait-signal              Keep serving until SIGUSR1 arrives (at any time since the start)
 *   reconnect                Close and connect again, resending unacked records after Welcome.acked_seq
 *   garbage                  Send a frame that is not a valid envelope
 *   answer-probes            Answer the clock probes held by --hold-probes yes, and every later one at once
 * Prints each Welcome (with unix_ns=T, host realtime when it arrived) and at the end "acked_seq=N unacked=N
 * max_unacked_records=N max_unacked_bytes=N max_ack_latency_us=N unix_ns=T" to stdout: max_ack_latency_us is the
 * longest a record waited from its (last) send to its ack, unix_ns host realtime at the end. Exits 0 on success,
 * 1 on failure (the reason on stderr). After the last action it waits for the acks as wait-acks does. */

#include <errno.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "frame.h"
#include "macro.h"
#include "socket-util.h"
#include "time-util.h"

#define CONNECT_ATTEMPTS 50
#define CONNECT_RETRY_USEC (100 * USEC_PER_MSEC)
#define FLOOD_LINE_MIN 20u
#define FLOOD_LINE_MAX (16u * 1024u)
/* tetherd keeps at most 16 probes pending per connection: answers to older ones are ignored anyway. */
#define HELD_PROBES_MAX 16u

typedef struct Pending {
        uint64_t seq;
        uint8_t *frame;
        size_t len;
        uint64_t sent_ns; /* CLOCK_MONOTONIC of the last send, 0 before the first */
} Pending;

/* What serve() waits for. */
typedef enum Until {
        UNTIL_DEADLINE, /* sleep: the deadline */
        UNTIL_WELCOME,  /* the Welcome of this connection, by the deadline */
        UNTIL_ACKED,    /* every record acked, as long as acks make progress */
        UNTIL_ROOM,     /* room in the window for one more record, as long as acks make progress */
        UNTIL_SIGNAL,   /* SIGUSR1 */
        UNTIL_NOTHING,  /* process what is readable now, without waiting */
} Until;

static const char *address;
static const char *boot_id = "00000000-0000-4000-8000-000000000001";
static const char *agent_version = "fake-0.1";
static const char *agent_instance = NULL;
static uint64_t uptime_ns = 1000 * NSEC_PER_MSEC, start_boottime;
static uint64_t welcome_timeout_ns = 30 * NSEC_PER_SEC;
static size_t window_bytes = 1024 * 1024, window_records;
static int fd = -1;
static FrameReader reader;
static bool welcomed; /* the current connection's Welcome arrived */
static uint64_t next_seq = 1, acked_seq, forced_seq;
static uint64_t last_ack_progress_ns, ack_stall_ns = 10 * NSEC_PER_SEC, max_ack_latency_ns;
static Pending *pending;
static size_t n_pending, pending_cap, pending_bytes, max_pending, max_pending_bytes;
static uint32_t heartbeat_ms = 5000;
static uint64_t last_send_ns;
static bool reconnect;
static volatile sig_atomic_t got_signal;
static bool hold_probes;
static uint64_t held_probes[HELD_PROBES_MAX];
static size_t n_held_probes;

static int do_connect(void);

static void on_sigusr1(int sig) {
        got_signal = 1;
}

static uint64_t guest_boottime(void) {
        return now_ns(CLOCK_BOOTTIME) - start_boottime + uptime_ns;
}

static int connect_address(void) {
        if (strncmp(address, "unix:", 5) == 0) {
                int r = unix_stream_connect(address + 5);
                if (r < 0)
                        return r;
                fd = r;
                return 0;
        }
        unsigned cid, port;
        if (sscanf(address, "vsock:%u:%u", &cid, &port) == 2) {
                struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
                fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return -errno;
                return 0;
        }
        return -EINVAL;
}

static int send_bytes(const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        last_send_ns = now_ns(CLOCK_MONOTONIC);
        return 0;
}

static int send_envelope(const Tether__Envelope *e) {
        uint8_t *frame;
        size_t len;
        int r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        r = send_bytes(frame, len);
        free(frame);
        return r;
}

/* Sends a kept record, noting when: its ack latency counts from its last send. */
static int send_pending(Pending *p) {
        p->sent_ns = now_ns(CLOCK_MONOTONIC);
        return send_bytes(p->frame, p->len);
}

static bool window_full(void) {
        if (n_pending == 0)
                return false;
        return (window_bytes > 0 && pending_bytes >= window_bytes) ||
                (window_records > 0 && n_pending >= window_records);
}

/* Records are kept until acked, and resent after a reconnect. Nothing is sent before the connection's Welcome:
 * the Welcome resends what is kept, in order. */
static int send_record(Tether__Envelope *e) {
        uint8_t *frame;
        size_t len;
        int r;

        if (forced_seq) {
                e->seq = forced_seq;
                forced_seq = 0;
        } else
                e->seq = next_seq++;
        r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        if (n_pending == pending_cap) {
                size_t cap = MAX(pending_cap * 2, (size_t) 64);
                Pending *a = realloc(pending, cap * sizeof(Pending));
                if (!a) {
                        free(frame);
                        return -ENOMEM;
                }
                pending = a;
                pending_cap = cap;
        }
        pending[n_pending++] = (Pending) { .seq = e->seq, .frame = frame, .len = len };
        pending_bytes += len;
        max_pending = MAX(max_pending, n_pending);
        max_pending_bytes = MAX(max_pending_bytes, pending_bytes);
        if (fd < 0 || !welcomed)
                return 0;
        r = send_pending(&pending[n_pending - 1]);
        if (r < 0 && reconnect) {
                fprintf(stderr, "Sending failed (%s), reconnecting\n", strerror(-r));
                fd = safe_close(fd);
                return do_connect(); /* resends it with everything else unacked */
        }
        return r;
}

static void free_acked(void) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        size_t k = 0;

        for (size_t i = 0; i < n_pending; i++)
                if (pending[i].seq <= acked_seq) {
                        if (pending[i].sent_ns > 0)
                                max_ack_latency_ns = MAX(max_ack_latency_ns, now - pending[i].sent_ns);
                        pending_bytes -= pending[i].len;
                        free(pending[i].frame);
                } else
                        pending[k++] = pending[i];
        n_pending = k;
}

static void ack_to(uint64_t seq) {
        if (seq > acked_seq) {
                acked_seq = seq;
                last_ack_progress_ns = now_ns(CLOCK_MONOTONIC);
        }
        free_acked();
}

static void answer_probe(uint64_t probe_id) {
        Tether__Envelope out = TETHER__ENVELOPE__INIT;
        Tether__ClockSample cs = TETHER__CLOCK_SAMPLE__INIT;

        cs.probe_id = probe_id;
        cs.boottime_ns = guest_boottime();
        cs.monotonic_ns = cs.boottime_ns;
        out.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
        out.clock_sample = &cs;
        (void) send_envelope(&out);
}

static int handle_frame(const uint8_t *payload, size_t len) {
        Tether__Envelope *e;
        int r = 0;

        if (envelope_unpack(payload, len, &e) < 0)
                return -EBADMSG;
        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_WELCOME:
                if (welcomed) {
                        fprintf(stderr, "A second Welcome on one connection\n");
                        r = -EBADMSG;
                        break;
                }
                welcomed = true;
                /* Welcome.acked_seq is what tetherd holds of this boot: it may be below an earlier Ack only if
                 * tetherd lost state, and then the records are resent from there. */
                acked_seq = e->welcome->acked_seq;
                last_ack_progress_ns = now_ns(CLOCK_MONOTONIC);
                if (e->welcome->limits && e->welcome->limits->heartbeat_interval_ms)
                        heartbeat_ms = e->welcome->limits->heartbeat_interval_ms;
                printf("welcome acked_seq=%" PRIu64 " traceparent=%s machine_id=%s unix_ns=%" PRIu64 "\n",
                       acked_seq,
                       e->welcome->traceparent,
                       e->welcome->machine_id,
                       now_ns(CLOCK_REALTIME));
                fflush(stdout);
                free_acked();
                /* Resend what tetherd does not hold, in order, before anything new. A failure shows as the
                 * connection closing. */
                for (size_t i = 0; i < n_pending; i++)
                        if (send_pending(&pending[i]) < 0)
                                break;
                break;
        case TETHER__ENVELOPE__MSG_ACK:
                if (!welcomed) {
                        fprintf(stderr, "Ack before the Welcome\n");
                        r = -EBADMSG;
                        break;
                }
                ack_to(e->ack->seq);
                break;
        case TETHER__ENVELOPE__MSG_CLOCK_PROBE:
                if (!hold_probes) {
                        answer_probe(e->clock_probe->probe_id);
                        break;
                }
                if (n_held_probes == HELD_PROBES_MAX) {
                        memmove(&held_probes[0], &held_probes[1], (HELD_PROBES_MAX - 1) * sizeof(uint64_t));
                        n_held_probes--;
                }
                held_probes[n_held_probes++] = e->clock_probe->probe_id;
                break;
        default:
                break;
        }
        envelope_free(e);
        return r;
}

static bool serve_done(Until until) {
        switch (until) {
        case UNTIL_WELCOME:
                return welcomed;
        case UNTIL_ACKED:
                return n_pending == 0;
        case UNTIL_ROOM:
                return !window_full();
        case UNTIL_SIGNAL:
                return got_signal;
        default:
                return false;
        }
}

/* Serves the connection (acks, clock probes, heartbeats) until what `until` says, or the deadline
 * (CLOCK_MONOTONIC ns; UNTIL_DEADLINE and UNTIL_WELCOME only). Waiting for acks fails only when they make no
 * progress for --ack-stall-ms. A lost connection is re-established with --reconnect yes, except while waiting
 * for a Welcome: then it returns -ECONNRESET to do_connect(), which decides. */
static int serve(Until until, uint64_t deadline) {
        uint64_t entered = now_ns(CLOCK_MONOTONIC);

        for (;;) {
                uint64_t now = now_ns(CLOCK_MONOTONIC);
                uint64_t wait_ns = 100 * NSEC_PER_MSEC;

                if (serve_done(until))
                        return 0;
                if (until == UNTIL_DEADLINE || until == UNTIL_WELCOME) {
                        if (now >= deadline)
                                return until == UNTIL_DEADLINE ? 0 : -ETIMEDOUT;
                        wait_ns = MIN(wait_ns, deadline - now);
                } else if (until == UNTIL_ACKED || until == UNTIL_ROOM) {
                        uint64_t since = MAX(last_ack_progress_ns, entered);
                        if (now - since >= ack_stall_ns) {
                                fprintf(stderr,
                                        "No ack progress for %" PRIu64 " ms: acked_seq %" PRIu64
                                        ", %zu records unacked\n",
                                        ack_stall_ns / NSEC_PER_MSEC,
                                        acked_seq,
                                        n_pending);
                                return -ETIMEDOUT;
                        }
                } else if (until == UNTIL_NOTHING)
                        wait_ns = 0;

                if (welcomed && now - last_send_ns >= (uint64_t) heartbeat_ms * NSEC_PER_MSEC) {
                        Tether__Envelope hb = TETHER__ENVELOPE__INIT;
                        Tether__Heartbeat h = TETHER__HEARTBEAT__INIT;
                        h.boottime_ns = guest_boottime();
                        hb.msg_case = TETHER__ENVELOPE__MSG_HEARTBEAT;
                        hb.heartbeat = &h;
                        (void) send_envelope(&hb);
                }
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int k = poll(&p, 1, (int) ((wait_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC));
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k > 0) {
                        int r = frame_reader_fill(&reader, fd);
                        if (r == 0 || (r < 0 && r != -EAGAIN && r != -EINTR)) {
                                fd = safe_close(fd);
                                if (until == UNTIL_WELCOME)
                                        return -ECONNRESET;
                                fprintf(stderr, "tetherd closed the connection%s\n", reconnect ? ", reconnecting" : "");
                                if (!reconnect)
                                        return -ECONNRESET;
                                /* Like the real agent: reconnect and resend everything unacked. */
                                r = do_connect();
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        const uint8_t *payload;
                        size_t len;
                        while ((r = frame_reader_next(&reader, &payload, &len)) > 0)
                                if (handle_frame(payload, len) < 0)
                                        return -EBADMSG;
                        if (r < 0)
                                return r;
                }
                if (until == UNTIL_NOTHING)
                        return 0;
        }
}

static int hello(void) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        char host[64];

        gethostname(host, sizeof(host));
        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.agent_version = (char *) agent_version;
        h.boot_id = (char *) boot_id;
        h.kernel_release = (char *) "6.1.0-fake";
        h.mode = TETHER__AGENT_MODE__AGENT_MODE_INIT;
        h.boottime_ns = guest_boottime();
        h.hostname = host;
        if (agent_instance) {
                h.agent_instance.data = (uint8_t *) agent_instance;
                h.agent_instance.len = strlen(agent_instance);
        }
        h.first_seq = n_pending ? pending[0].seq : next_seq;
        h.last_seq = next_seq - 1;
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        return send_envelope(&e);
}

/* Connects (retrying for CONNECT_ATTEMPTS * 100 ms), says Hello and waits for the Welcome, which resends the
 * unacked records: nothing else is sent before it. With --reconnect yes a connection closed before its Welcome
 * is retried until the Welcome timeout. */
static int do_connect(void) {
        uint64_t deadline = now_ns(CLOCK_MONOTONIC) + welcome_timeout_ns;
        int r;

        for (;;) {
                for (int attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
                        r = connect_address();
                        if (r >= 0)
                                break;
                        fd = safe_close(fd);
                        usleep(CONNECT_RETRY_USEC);
                }
                if (r < 0) {
                        fprintf(stderr, "Failed to connect to %s: %s\n", address, strerror(-r));
                        return r;
                }
                welcomed = false;
                frame_reader_done(&reader);
                r = frame_reader_init(&reader, 0);
                if (r < 0)
                        return r;
                r = hello();
                if (r >= 0)
                        r = serve(UNTIL_WELCOME, deadline);
                if (r >= 0)
                        return 0;
                fd = safe_close(fd);
                if (r == -ETIMEDOUT) {
                        fprintf(stderr,
                                "No Welcome from tetherd at %s within %" PRIu64 " ms\n",
                                address,
                                welcome_timeout_ns / NSEC_PER_MSEC);
                        return r;
                }
                if (!reconnect || now_ns(CLOCK_MONOTONIC) >= deadline) {
                        fprintf(stderr, "tetherd at %s closed the connection before its Welcome\n", address);
                        return r;
                }
                fprintf(stderr, "tetherd at %s closed the connection before its Welcome, reconnecting\n", address);
                usleep(CONNECT_RETRY_USEC);
        }
}

/* Log records of one numbered line each, as fast as acks keep the window open. */
static int flood(int stream, uint64_t n, size_t line_bytes) {
        _cleanup_free_ char *buf = NULL;
        Tether__Log l = TETHER__LOG__INIT;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        int r;

        if (line_bytes < FLOOD_LINE_MIN || line_bytes > FLOOD_LINE_MAX) {
                fprintf(stderr, "flood: a line is %u..%u bytes\n", FLOOD_LINE_MIN, FLOOD_LINE_MAX);
                return -EINVAL;
        }
        buf = malloc(line_bytes + 1);
        if (!buf)
                return -ENOMEM;
        memset(buf, 'x', line_bytes);
        buf[line_bytes - 1] = '\n';
        l.stream = stream;
        l.source = (char *) "workload";
        l.data.data = (uint8_t *) buf;
        l.data.len = line_bytes;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        for (uint64_t k = 0; k < n; k++) {
                /* Take the acks and probes that came in, then wait while the window is full. */
                r = serve(UNTIL_NOTHING, 0);
                if (r >= 0 && window_full())
                        r = serve(UNTIL_ROOM, 0);
                if (r < 0)
                        return r;
                /* "line %012" PRIu64 " " overwrites the head of the padding, never the newline. */
                char head[FLOOD_LINE_MIN];
                int m = snprintf(head, sizeof(head), "line %012" PRIu64 " ", k);
                memcpy(buf, head, MIN((size_t) m, line_bytes - 1));
                l.boottime_ns = guest_boottime();
                r = send_record(&e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static uint64_t ms_arg(const char *s) {
        return s ? strtoull(s, NULL, 10) * NSEC_PER_MSEC : guest_boottime();
}

static int stream_arg(const char *s) {
        return strcmp(s, "stderr") == 0 ? 2 : strcmp(s, "console") == 0 ? 3 : strcmp(s, "kmsg") == 0 ? 4 : 1;
}

int main(int argc, char *argv[]) {
        int i = 1, r = 0;

        for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
                if (i + 1 >= argc)
                        goto usage;
                if (strcmp(argv[i], "--boot-id") == 0)
                        boot_id = argv[i + 1];
                else if (strcmp(argv[i], "--uptime-ms") == 0)
                        uptime_ns = strtoull(argv[i + 1], NULL, 10) * NSEC_PER_MSEC;
                else if (strcmp(argv[i], "--instance") == 0)
                        agent_instance = argv[i + 1];
                else if (strcmp(argv[i], "--agent-version") == 0)
                        agent_version = argv[i + 1];
                else if (strcmp(argv[i], "--reconnect") == 0)
                        reconnect = strcmp(argv[i + 1], "yes") == 0;
                else if (strcmp(argv[i], "--welcome-timeout-ms") == 0)
                        welcome_timeout_ns = strtoull(argv[i + 1], NULL, 10) * NSEC_PER_MSEC;
                else if (strcmp(argv[i], "--window-bytes") == 0)
                        window_bytes = strtoull(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--window-records") == 0)
                        window_records = strtoull(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--ack-stall-ms") == 0)
                        ack_stall_ns = strtoull(argv[i + 1], NULL, 10) * NSEC_PER_MSEC;
                else if (strcmp(argv[i], "--hold-probes") == 0)
                        hold_probes = strcmp(argv[i + 1], "yes") == 0;
                else
                        goto usage;
        }
        if (i >= argc)
                goto usage;
        address = argv[i++];

        /* Installed before anything can send it; no SA_RESTART, so a poll() waiting for it returns. */
        struct sigaction sa = { .sa_handler = on_sigusr1 };
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) < 0) {
                fprintf(stderr, "Failed to install a SIGUSR1 handler: %m\n");
                return 1;
        }

        start_boottime = now_ns(CLOCK_BOOTTIME);
        if (frame_reader_init(&reader, 0) < 0 || do_connect() < 0)
                return 1;

        while (i < argc && r >= 0) {
                const char *a = argv[i++];
                Tether__Envelope e = TETHER__ENVELOPE__INIT;
#define ARG(k) (i + (k) < argc ? argv[i + (k)] : NULL)
                if (strcmp(a, "milestone") == 0 && ARG(0)) {
                        Tether__Milestone m = TETHER__MILESTONE__INIT;
                        m.name = argv[i++];
                        bool has_time = ARG(0) && argv[i][0] >= '0' && argv[i][0] <= '9';
                        m.boottime_ns = ms_arg(has_time ? argv[i++] : NULL);
                        e.msg_case = TETHER__ENVELOPE__MSG_MILESTONE;
                        e.milestone = &m;
                        r = send_record(&e);
                } else if (strcmp(a, "phase") == 0 && ARG(2)) {
                        Tether__Phase p = TETHER__PHASE__INIT;
                        p.name = argv[i];
                        p.start_boottime_ns = ms_arg(argv[i + 1]);
                        p.end_boottime_ns = ms_arg(argv[i + 2]);
                        p.status = TETHER__PHASE_STATUS__PHASE_STATUS_OK;
                        i += 3;
                        e.msg_case = TETHER__ENVELOPE__MSG_PHASE;
                        e.phase = &p;
                        r = send_record(&e);
                } else if ((strcmp(a, "log") == 0 || strcmp(a, "logs") == 0) && ARG(1)) {
                        Tether__Log l = TETHER__LOG__INIT;
                        bool many = strcmp(a, "logs") == 0;
                        long n = many ? strtol(argv[i + 1], NULL, 10) : 1;
                        for (long k = 0; k < n && r >= 0; k++) {
                                char buf[1100];
                                if (many)
                                        snprintf(buf, sizeof(buf), "line %ld\n", k);
                                else
                                        snprintf(buf, sizeof(buf), "%s\n", argv[i + 1]);
                                l.stream = stream_arg(argv[i]);
                                l.source = (char *) "workload";
                                l.boottime_ns = guest_boottime();
                                l.data.data = (uint8_t *) buf;
                                l.data.len = strlen(buf);
                                e.msg_case = TETHER__ENVELOPE__MSG_LOG;
                                e.log = &l;
                                r = send_record(&e);
                        }
                        i += 2;
                } else if (strcmp(a, "flood") == 0 && ARG(2)) {
                        r = flood(
                                stream_arg(argv[i]),
                                strtoull(argv[i + 1], NULL, 10),
                                (size_t) strtoull(argv[i + 2], NULL, 10));
                        i += 3;
                } else if (strcmp(a, "ready") == 0 && ARG(0)) {
                        Tether__Ready rd = TETHER__READY__INIT;
                        rd.source = argv[i++];
                        rd.detail = (char *) "";
                        rd.boottime_ns = guest_boottime();
                        e.msg_case = TETHER__ENVELOPE__MSG_READY;
                        e.ready = &rd;
                        uint64_t sent = now_ns(CLOCK_REALTIME);
                        r = send_record(&e);
                        printf("ready_sent_unix_ns=%" PRIu64 "\n", sent);
                        fflush(stdout);
                } else if (strcmp(a, "exit") == 0 && ARG(0)) {
                        Tether__Exit x = TETHER__EXIT__INIT;
                        x.code = atoi(argv[i++]);
                        if (ARG(0) && argv[i][0] >= '0' && argv[i][0] <= '9')
                                x.signal = atoi(argv[i++]);
                        x.boottime_ns = guest_boottime();
                        x.reason = (char *) "";
                        e.msg_case = TETHER__ENVELOPE__MSG_EXIT;
                        e.exit = &x;
                        r = send_record(&e);
                } else if (strcmp(a, "skip") == 0 && ARG(0)) {
                        next_seq += strtoull(argv[i++], NULL, 10);
                } else if (strcmp(a, "dropped") == 0 && ARG(0)) {
                        Tether__LogDropped d = TETHER__LOG_DROPPED__INIT;
                        uint64_t n = strtoull(argv[i++], NULL, 10);
                        d.first_seq = next_seq;
                        d.last_seq = next_seq + n - 1;
                        d.records = n;
                        d.bytes = n * 10;
                        next_seq += n;
                        e.msg_case = TETHER__ENVELOPE__MSG_LOG_DROPPED;
                        e.log_dropped = &d;
                        r = send_record(&e);
                } else if (strcmp(a, "raw-seq") == 0 && ARG(0)) {
                        forced_seq = strtoull(argv[i++], NULL, 10);
                } else if (strcmp(a, "sleep") == 0 && ARG(0)) {
                        r = serve(
                                UNTIL_DEADLINE,
                                now_ns(CLOCK_MONOTONIC) + strtoull(argv[i++], NULL, 10) * NSEC_PER_MSEC);
                } else if (strcmp(a, "wait-acks") == 0) {
                        r = serve(UNTIL_ACKED, 0);
                } else if (strcmp(a, "wait-signal") == 0) {
                        r = serve(UNTIL_SIGNAL, 0);
                } else if (strcmp(a, "answer-probes") == 0) {
                        hold_probes = false;
                        for (size_t k = 0; k < n_held_probes && fd >= 0; k++)
                                answer_probe(held_probes[k]);
                        n_held_probes = 0;
                } else if (strcmp(a, "reconnect") == 0) {
                        fd = safe_close(fd);
                        r = do_connect();
                } else if (strcmp(a, "garbage") == 0) {
                        static const uint8_t bad[] = { 3, 0, 0, 0, 0xff, 0xff, 0xff };
                        r = send_bytes(bad, sizeof(bad));
                } else {
                        fprintf(stderr, "Unknown or incomplete action: %s\n", a);
                        return 2;
                }
#undef ARG
        }
        if (r >= 0)
                r = serve(UNTIL_ACKED, 0);
        printf("acked_seq=%" PRIu64
               " unacked=%zu max_unacked_records=%zu max_unacked_bytes=%zu max_ack_latency_us=%" PRIu64
               " unix_ns=%" PRIu64 "\n",
               acked_seq,
               n_pending,
               max_pending,
               max_pending_bytes,
               max_ack_latency_ns / NSEC_PER_USEC,
               now_ns(CLOCK_REALTIME));
        safe_close(fd);
        return r < 0 ? 1 : 0;

usage:
        fprintf(stderr,
                "Usage: %s [--boot-id ID] [--instance ID] [--uptime-ms N] [--agent-version V] [--reconnect yes|no] "
                "[--welcome-timeout-ms N] [--window-bytes N] [--window-records N] [--ack-stall-ms N] "
                "[--hold-probes yes|no] unix:PATH|vsock:CID:PORT "
                "ACTION...\n",
                argv[0]);
        return 2;
}
