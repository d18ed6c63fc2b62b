/* SPDX-License-Identifier: MIT */
/* tether-fake-agent: speaks the agent side of the tether protocol from a script on the command line, for
 * manual and integration tests of tetherd without a VM.
 *
 *   tether-fake-agent [--boot-id ID] [--instance ID] [--uptime-ms N] [--agent-version V] [--reconnect yes|no]
 *                     ADDRESS ACTION...
 *
 * --instance sends Hello.agent_instance (the bytes of ID; default none, like an agent older than the field):
 * run twice with the same boot id and different instances to play an agent restarted within a boot.
 *
 * With --reconnect yes a lost connection is re-established (for 5 s) and unacked records are resent, as the
 * real agent does.
 *
 * ADDRESS is unix:PATH or vsock:CID:PORT. Actions run in order:
 *   milestone NAME [MS]      Milestone at guest boottime MS (default: now)
 *   phase NAME START END     Phase with boottimes in ms (status ok)
 *   log STREAM TEXT          Log record (stdout, stderr, console, kmsg), TEXT plus a newline
 *   logs STREAM N            N log records "line i"
 *   ready SOURCE             Ready record
 *   exit CODE [SIGNAL]       Exit record
 *   skip N                   Burn N sequence numbers without sending them (a gap)
 *   dropped N                Burn N sequence numbers and send a LogDropped naming them
 *   raw-seq N                Force the next record's seq (for regression tests)
 *   sleep MS                 Keep serving (probes, acks, heartbeats) for MS milliseconds
 *   wait-acks                Serve until every sent record is acked (10 s at most)
 *   reconnect                Close and connect again, resending unacked records after Welcome.acked_seq
 *   garbage                  Send a frame that is not a valid envelope
 * Prints the Welcome and the final acked seq to stdout; exits 0 on success. */

#include <errno.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "frame.h"
#include "macro.h"
#include "time-util.h"

typedef struct Pending {
        uint64_t seq;
        uint8_t *frame;
        size_t len;
} Pending;

static const char *address;
static const char *boot_id = "00000000-0000-4000-8000-000000000001";
static const char *agent_version = "fake-0.1";
static const char *agent_instance = NULL;
static uint64_t uptime_ns = 1000 * NSEC_PER_MSEC, start_boottime;
static int fd = -1;
static FrameReader reader;
static uint64_t next_seq = 1, acked_seq, forced_seq;
static Pending *pending;
static size_t n_pending;
static uint32_t heartbeat_ms = 5000;
static uint64_t last_send_ns;
static bool reconnect;

static int do_connect(void);

static uint64_t guest_boottime(void) {
        return now_ns(CLOCK_BOOTTIME) - start_boottime + uptime_ns;
}

static int connect_address(void) {
        if (strncmp(address, "unix:", 5) == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", address + 5);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return -errno;
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

/* Records are kept until acked, and resent after a reconnect. */
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
        Pending *a = realloc(pending, (n_pending + 1) * sizeof(Pending));
        if (!a)
                return -ENOMEM;
        pending = a;
        pending[n_pending++] = (Pending) { .seq = e->seq, .frame = frame, .len = len };
        if (fd < 0)
                return 0;
        r = send_bytes(frame, len);
        if (r < 0 && reconnect) {
                fd = safe_close(fd);
                return do_connect(); /* resends it with everything else unacked */
        }
        return r;
}

static void free_acked(void) {
        size_t k = 0;
        for (size_t i = 0; i < n_pending; i++)
                if (pending[i].seq <= acked_seq)
                        free(pending[i].frame);
                else
                        pending[k++] = pending[i];
        n_pending = k;
}

static int handle_frame(const uint8_t *payload, size_t len) {
        Tether__Envelope *e;

        if (envelope_unpack(payload, len, &e) < 0)
                return -EBADMSG;
        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_WELCOME:
                acked_seq = e->welcome->acked_seq;
                if (e->welcome->limits && e->welcome->limits->heartbeat_interval_ms)
                        heartbeat_ms = e->welcome->limits->heartbeat_interval_ms;
                printf("welcome acked_seq=%" PRIu64 " traceparent=%s machine_id=%s\n",
                       acked_seq,
                       e->welcome->traceparent,
                       e->welcome->machine_id);
                fflush(stdout);
                free_acked();
                /* Resend what tetherd does not hold, in order. */
                for (size_t i = 0; i < n_pending; i++)
                        if (send_bytes(pending[i].frame, pending[i].len) < 0)
                                break;
                break;
        case TETHER__ENVELOPE__MSG_ACK:
                if (e->ack->seq > acked_seq)
                        acked_seq = e->ack->seq;
                free_acked();
                break;
        case TETHER__ENVELOPE__MSG_CLOCK_PROBE: {
                Tether__Envelope out = TETHER__ENVELOPE__INIT;
                Tether__ClockSample cs = TETHER__CLOCK_SAMPLE__INIT;
                cs.probe_id = e->clock_probe->probe_id;
                cs.boottime_ns = guest_boottime();
                cs.monotonic_ns = cs.boottime_ns;
                out.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
                out.clock_sample = &cs;
                (void) send_envelope(&out);
                break;
        }
        default:
                break;
        }
        envelope_free(e);
        return 0;
}

/* Serves the connection until deadline (CLOCK_MONOTONIC ns) or, with until_acked, until all is acked. */
static int serve(uint64_t deadline, bool until_acked) {
        for (;;) {
                uint64_t now = now_ns(CLOCK_MONOTONIC);
                if (now >= deadline || (until_acked && n_pending == 0))
                        return until_acked && n_pending > 0 ? -ETIMEDOUT : 0;
                if (now - last_send_ns >= (uint64_t) heartbeat_ms * NSEC_PER_MSEC) {
                        Tether__Envelope hb = TETHER__ENVELOPE__INIT;
                        Tether__Heartbeat h = TETHER__HEARTBEAT__INIT;
                        h.boottime_ns = guest_boottime();
                        hb.msg_case = TETHER__ENVELOPE__MSG_HEARTBEAT;
                        hb.heartbeat = &h;
                        (void) send_envelope(&hb);
                }
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t wait_ms = MIN((deadline - now) / NSEC_PER_MSEC + 1, (uint64_t) 100);
                int k = poll(&p, 1, (int) wait_ms);
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k <= 0)
                        continue;
                int r = frame_reader_fill(&reader, fd);
                if (r == 0 || (r < 0 && r != -EAGAIN)) {
                        fprintf(stderr, "tetherd closed the connection%s\n", reconnect ? ", reconnecting" : "");
                        if (!reconnect)
                                return -ECONNRESET;
                        /* Like the real agent: reconnect and resend everything unacked. */
                        fd = safe_close(fd);
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
        int r = send_envelope(&e);
        if (r < 0)
                return r;
        /* Wait for the Welcome (it resends the backlog). */
        return serve(now_ns(CLOCK_MONOTONIC) + 200 * NSEC_PER_MSEC, false);
}

static int do_connect(void) {
        int r;
        for (int attempt = 0; attempt < 50; attempt++) {
                r = connect_address();
                if (r >= 0)
                        break;
                fd = safe_close(fd);
                usleep(100 * 1000);
        }
        if (r < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", address, strerror(-r));
                return r;
        }
        frame_reader_done(&reader);
        frame_reader_init(&reader, 0);
        return hello();
}

static uint64_t ms_arg(const char *s) {
        return s ? strtoull(s, NULL, 10) * NSEC_PER_MSEC : guest_boottime();
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
                else
                        goto usage;
        }
        if (i >= argc)
                goto usage;
        address = argv[i++];
        start_boottime = now_ns(CLOCK_BOOTTIME);
        frame_reader_init(&reader, 0);
        if (do_connect() < 0)
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
                        int stream = strcmp(argv[i], "stderr") == 0 ? 2 :
                                strcmp(argv[i], "console") == 0     ? 3 :
                                strcmp(argv[i], "kmsg") == 0        ? 4 :
                                                                      1;
                        long n = many ? strtol(argv[i + 1], NULL, 10) : 1;
                        for (long k = 0; k < n && r >= 0; k++) {
                                char buf[1100];
                                if (many)
                                        snprintf(buf, sizeof(buf), "line %ld\n", k);
                                else
                                        snprintf(buf, sizeof(buf), "%s\n", argv[i + 1]);
                                l.stream = stream;
                                l.source = (char *) "workload";
                                l.boottime_ns = guest_boottime();
                                l.data.data = (uint8_t *) buf;
                                l.data.len = strlen(buf);
                                e.msg_case = TETHER__ENVELOPE__MSG_LOG;
                                e.log = &l;
                                r = send_record(&e);
                        }
                        i += 2;
                } else if (strcmp(a, "ready") == 0 && ARG(0)) {
                        Tether__Ready rd = TETHER__READY__INIT;
                        rd.source = argv[i++];
                        rd.detail = (char *) "";
                        rd.boottime_ns = guest_boottime();
                        e.msg_case = TETHER__ENVELOPE__MSG_READY;
                        e.ready = &rd;
                        r = send_record(&e);
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
                        r = serve(now_ns(CLOCK_MONOTONIC) + strtoull(argv[i++], NULL, 10) * NSEC_PER_MSEC, false);
                } else if (strcmp(a, "wait-acks") == 0) {
                        r = serve(now_ns(CLOCK_MONOTONIC) + 10 * NSEC_PER_SEC, true);
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
                r = serve(now_ns(CLOCK_MONOTONIC) + 300 * NSEC_PER_MSEC, true);
        printf("acked_seq=%" PRIu64 " unacked=%zu\n", acked_seq, n_pending);
        safe_close(fd);
        return r < 0 ? 1 : 0;

usage:
        fprintf(stderr,
                "Usage: %s [--boot-id ID] [--instance ID] [--uptime-ms N] [--agent-version V] [--reconnect yes|no] "
                "unix:PATH|vsock:CID:PORT ACTION...\n",
                argv[0]);
        return 2;
}
