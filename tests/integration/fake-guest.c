/* SPDX-License-Identifier: MIT */
/* fake-guest: a scripted tether guest for integration tests. It speaks the real protocol (proto/envelope.h,
 * common/frame.h) over a Unix stream socket, and can misbehave on purpose to check that tetherd bounds,
 * counts and survives what an untrusted guest sends.
 *
 *   fake-guest --socket PATH --scenario NAME [options]
 *
 * Scenarios:
 *   healthy              Hello, milestone "healthy.start", 3 stdout lines; when --ready-file exists, Ready
 *                        (source "notify"); then stays connected (answering clock probes, heartbeats) until
 *                        --hold-ms has passed or it is killed.
 *   oversized-header     after a valid marker milestone: a frame header announcing 65537 bytes
 *   zero-length          ... a frame header announcing 0 bytes
 *   garbage              ... a frame whose payload is not protobuf
 *   invalid-utf8         ... a Milestone whose name is not UTF-8
 *   huge-log-dropped     ... a LogDropped claiming 2^63 + 5 records and 2^64 - 1 bytes
 *   too-many-attributes  ... a Milestone with 33 attributes
 *   seq-regression       ... records with seq 2, 3, then 2 again on the same connection
 *   unknown-message      ... an Envelope holding only field 25 (inside the oneof range, unknown to v1)
 *   before-hello         a record as the very first frame, no Hello
 *   trickle              ... a frame announced and then sent a byte every 10 ms, never finished
 *   journal              a journal agent's Hello (protocol version 3), then journal Log records "prio P" with
 *                        syslog priority P = 0 ... 7 (Log.priority P + 1) and a stdout line "plain" without one;
 *                        when --ready-file exists: "late crit" (2), "late info" (6), stdout "late plain", "late
 *                        alert" (1); then Ready, and stays connected like healthy
 *   flood                Hello, then --records Log records of --record-bytes each, as fast as the socket
 *                        takes them; waits until the last one is acked. With --newlines every record is
 *                        only newlines (the most lines, each an empty one, a record can hold)
 *
 * Output: one JSON object on stdout when the scenario ends (for "healthy": when its Ready is acked):
 *   {"scenario", "welcome", "acked_seq", "last_seq", "closed_by_peer", "records_sent", "bytes_sent"}
 * Exit status: 0 when the host did what the scenario expects from its side (hostile: closed the connection
 * within --timeout-ms; healthy/journal/flood: acked every record), 1 when it did not, 2 on usage or I/O errors. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
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

#define HEARTBEAT_MS 1000u
#define MAX_RECORD_BYTES 16384u

typedef struct Guest {
        int fd;
        FrameReader reader;
        bool welcome;
        bool closed_by_peer;
        uint64_t acked_seq;
        uint64_t next_seq;
        uint64_t records_sent;
        uint64_t bytes_sent;
        uint64_t last_send_ns;
} Guest;

static bool streq_ptr(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

static const char *arg_socket;
static const char *arg_scenario;
static bool arg_newlines;
static const char *arg_boot_id;
static const char *arg_ready_file;
static uint64_t arg_hold_ms = 120000;
static uint64_t arg_timeout_ms = 10000;
static uint64_t arg_records = 10000;
static uint64_t arg_record_bytes = 4096;

static _printf_(1, 2) int log_errorf(const char *fmt, ...) {
        va_list ap;
        fputs("fake-guest: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 0;
}

static int log_error_errno(int r, const char *what) {
        log_errorf("%s: %s", what, strerror(r < 0 ? -r : r));
        return r < 0 ? r : -r;
}

static uint64_t mono_ms(void) {
        return now_ns(CLOCK_MONOTONIC) / NSEC_PER_MSEC;
}

static void guest_done(Guest *g) {
        frame_reader_done(&g->reader);
        g->fd = safe_close(g->fd);
}

static int guest_connect(Guest *g, const char *path) {
        _cleanup_close_ int fd = -1;
        int r;

        fd = unix_stream_connect(path);
        if (fd < 0)
                return fd;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;

        r = frame_reader_init(&g->reader, 0);
        if (r < 0)
                return r;
        g->fd = TAKE_FD(fd);
        g->next_seq = 1;
        return 0;
}

static int guest_send_frame(Guest *g, const Tether__Envelope *e);

/* Handles one frame from the host. The host is bounded input for us too: a frame that does not decode is
 * an error, not a crash. */
static int guest_handle(Guest *g, const uint8_t *payload, size_t len) {
        Tether__Envelope *e = NULL;
        int r;

        r = envelope_unpack(payload, len, &e);
        if (r < 0)
                return r;

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_WELCOME:
                g->welcome = true;
                if (e->welcome->acked_seq > g->acked_seq)
                        g->acked_seq = e->welcome->acked_seq;
                break;
        case TETHER__ENVELOPE__MSG_ACK:
                if (e->ack->seq > g->acked_seq)
                        g->acked_seq = e->ack->seq;
                break;
        case TETHER__ENVELOPE__MSG_CLOCK_PROBE: {
                Tether__Envelope reply = TETHER__ENVELOPE__INIT;
                Tether__ClockSample sample = TETHER__CLOCK_SAMPLE__INIT;

                sample.probe_id = e->clock_probe->probe_id;
                sample.boottime_ns = now_ns(CLOCK_BOOTTIME);
                sample.monotonic_ns = now_ns(CLOCK_MONOTONIC);
                reply.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
                reply.clock_sample = &sample;
                envelope_free(e);
                return guest_send_frame(g, &reply);
        }
        default:
                break;
        }
        envelope_free(e);
        return 0;
}

/* Reads and handles everything available. Returns 0, or -ECONNRESET once the host closed. */
static int guest_drain(Guest *g) {
        for (;;) {
                const uint8_t *payload;
                size_t len;
                int r;

                while ((r = frame_reader_next(&g->reader, &payload, &len)) > 0) {
                        r = guest_handle(g, payload, len);
                        if (r < 0 && r != -ECONNRESET)
                                return r;
                }
                if (r < 0)
                        return r;

                r = frame_reader_fill(&g->reader, g->fd);
                if (r == -EAGAIN)
                        return 0;
                if (r == 0 || r == -ECONNRESET || r == -EPIPE) {
                        g->closed_by_peer = true;
                        return -ECONNRESET;
                }
                if (r < 0)
                        return r;
        }
}

/* Waits up to timeout_ms for input and handles it. */
static int guest_pump(Guest *g, uint64_t timeout_ms) {
        struct pollfd p = { .fd = g->fd, .events = POLLIN };
        int r;

        r = poll(&p, 1, (int) timeout_ms);
        if (r < 0)
                return errno == EINTR ? 0 : -errno;
        if (r == 0)
                return 0;
        return guest_drain(g);
}

/* Writes all bytes, answering the host while the socket is full so neither side can wedge the other. */
static int guest_write(Guest *g, const void *data, size_t n) {
        const uint8_t *p = data;

        while (n > 0) {
                ssize_t k = send(g->fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EPIPE || errno == ECONNRESET) {
                                g->closed_by_peer = true;
                                return -ECONNRESET;
                        }
                        if (errno != EAGAIN)
                                return -errno;

                        struct pollfd pfd = { .fd = g->fd, .events = POLLIN | POLLOUT };
                        if (poll(&pfd, 1, (int) arg_timeout_ms) == 0)
                                return -ETIMEDOUT;
                        if (pfd.revents & (POLLIN | POLLHUP)) {
                                int r = guest_drain(g);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                p += k;
                n -= (size_t) k;
                g->bytes_sent += (uint64_t) k;
        }
        g->last_send_ns = now_ns(CLOCK_MONOTONIC);
        return 0;
}

static int guest_send_frame(Guest *g, const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;
        int r;

        r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        r = guest_write(g, frame, len);
        if (r < 0)
                return r;
        if (envelope_is_record(e))
                g->records_sent++;
        return 0;
}

/* Sends a payload as one frame without any validation (hostile scenarios). */
static int guest_send_raw(Guest *g, const uint8_t *payload, size_t len) {
        uint8_t header[TETHER_FRAME_HEADER_SIZE];
        int r;

        frame_header_put(header, (uint32_t) len);
        r = guest_write(g, header, sizeof(header));
        if (r < 0)
                return r;
        return guest_write(g, payload, len);
}

static int guest_hello(Guest *g) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        char boot_id[64];

        if (arg_boot_id)
                snprintf(boot_id, sizeof(boot_id), "%s", arg_boot_id);
        else
                snprintf(boot_id, sizeof(boot_id), "fake-%d-%" PRIu64, (int) getpid(), now_ns(CLOCK_REALTIME));

        h.protocol_version = TETHER_PROTOCOL_VERSION;
        if (streq_ptr(arg_scenario, "journal"))
                h.max_protocol_version = TETHER_PROTOCOL_VERSION_JOURNAL;
        h.agent_version = (char *) "fake-guest";
        h.boot_id = boot_id;
        h.kernel_release = (char *) "fake";
        h.mode = TETHER__AGENT_MODE__AGENT_MODE_SERVICE;
        h.boottime_ns = now_ns(CLOCK_BOOTTIME);
        h.hostname = (char *) "fake-guest";
        h.first_seq = 1;
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        return guest_send_frame(g, &e);
}

static int guest_wait(Guest *g, bool (*done)(Guest *g, uint64_t arg), uint64_t arg, uint64_t timeout_ms) {
        uint64_t deadline = mono_ms() + timeout_ms;

        while (!done(g, arg)) {
                uint64_t now = mono_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                int r = guest_pump(g, MIN(deadline - now, (uint64_t) 100));
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool have_welcome(Guest *g, uint64_t arg) {
        return g->welcome;
}

static bool acked_up_to(Guest *g, uint64_t seq) {
        return g->acked_seq >= seq;
}

static int guest_milestone(Guest *g, uint64_t seq, const char *name, size_t n_attrs) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Milestone m = TETHER__MILESTONE__INIT;
        _cleanup_free_ Tether__Attribute *attrs = NULL;
        _cleanup_free_ Tether__Attribute **attr_ptrs = NULL;
        char keys[64][16];

        if (n_attrs > ELEMENTSOF(keys))
                return -EINVAL;
        if (n_attrs > 0) {
                attrs = calloc(n_attrs, sizeof(*attrs));
                attr_ptrs = calloc(n_attrs, sizeof(*attr_ptrs));
                if (!attrs || !attr_ptrs)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n_attrs; i++) {
                tether__attribute__init(&attrs[i]);
                snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
                attrs[i].key = keys[i];
                attrs[i].value = (char *) "v";
                attr_ptrs[i] = &attrs[i];
        }

        m.name = (char *) name;
        m.boottime_ns = now_ns(CLOCK_BOOTTIME);
        m.n_attributes = n_attrs;
        m.attributes = attr_ptrs;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_MILESTONE;
        e.milestone = &m;
        return guest_send_frame(g, &e);
}

static int guest_log(Guest *g, uint64_t seq, const void *data, size_t len) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Log l = TETHER__LOG__INIT;

        l.stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT;
        l.source = (char *) "workload";
        l.boottime_ns = now_ns(CLOCK_BOOTTIME);
        l.data.data = (uint8_t *) data;
        l.data.len = len;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        return guest_send_frame(g, &e);
}

/* A journal entry of tether-agent-systemd: syslog priority p (sent as p + 1), source "app.service". */
static int guest_journal(Guest *g, uint64_t seq, unsigned p, const char *text) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Log l = TETHER__LOG__INIT;
        char data[128], cursor[64];
        int n = snprintf(data, sizeof(data), "%s\n", text);

        snprintf(cursor, sizeof(cursor), "s=fake;i=%" PRIu64, seq);
        l.stream = TETHER__LOG_STREAM__LOG_STREAM_JOURNAL;
        l.source = (char *) "app.service";
        l.boottime_ns = now_ns(CLOCK_BOOTTIME);
        l.priority = p + 1;
        l.cursor = cursor;
        l.data.data = (uint8_t *) data;
        l.data.len = (size_t) n;
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        return guest_send_frame(g, &e);
}

static int guest_ready(Guest *g, uint64_t seq) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Ready rd = TETHER__READY__INIT;

        rd.source = (char *) "notify";
        rd.detail = (char *) "fake-guest";
        rd.boottime_ns = now_ns(CLOCK_BOOTTIME);
        e.seq = seq;
        e.msg_case = TETHER__ENVELOPE__MSG_READY;
        e.ready = &rd;
        return guest_send_frame(g, &e);
}

static int guest_heartbeat(Guest *g) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Heartbeat hb = TETHER__HEARTBEAT__INIT;

        hb.boottime_ns = now_ns(CLOCK_BOOTTIME);
        e.msg_case = TETHER__ENVELOPE__MSG_HEARTBEAT;
        e.heartbeat = &hb;
        return guest_send_frame(g, &e);
}

/* Keeps the connection alive (probes answered, heartbeats sent) until pred holds or timeout_ms passes. */
static int guest_idle(Guest *g, bool (*pred)(Guest *g, uint64_t arg), uint64_t arg, uint64_t timeout_ms) {
        uint64_t deadline = mono_ms() + timeout_ms;
        int r;

        while (!pred || !pred(g, arg)) {
                uint64_t now = mono_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = guest_pump(g, MIN(deadline - now, (uint64_t) 50));
                if (r < 0)
                        return r;
                if (now_ns(CLOCK_MONOTONIC) - g->last_send_ns >= HEARTBEAT_MS * NSEC_PER_MSEC) {
                        r = guest_heartbeat(g);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static bool ready_file_exists(Guest *g, uint64_t arg) {
        return access(arg_ready_file, F_OK) == 0;
}

static void print_summary(const Guest *g) {
        printf("{\"scenario\": \"%s\", \"welcome\": %s, \"acked_seq\": %" PRIu64 ", \"last_seq\": %" PRIu64
               ", \"closed_by_peer\": %s, \"records_sent\": %" PRIu64 ", \"bytes_sent\": %" PRIu64 "}\n",
               arg_scenario,
               g->welcome ? "true" : "false",
               g->acked_seq,
               g->next_seq - 1,
               g->closed_by_peer ? "true" : "false",
               g->records_sent,
               g->bytes_sent);
        fflush(stdout);
}

/* Ready, and once it is acked the summary; then stays connected until --hold-ms has passed or it is killed. */
static int guest_ready_and_hold(Guest *g) {
        int r;

        r = guest_ready(g, g->next_seq++);
        if (r < 0)
                return r;
        r = guest_wait(g, acked_up_to, g->next_seq - 1, arg_timeout_ms);
        if (r < 0)
                return log_error_errno(r, "Waiting for Ready to be acked");
        print_summary(g);

        r = guest_idle(g, NULL, 0, arg_hold_ms);
        return r == -ETIMEDOUT ? 0 : r;
}

static int scenario_healthy(Guest *g) {
        int r;

        r = guest_milestone(g, g->next_seq++, "healthy.start", 1);
        if (r < 0)
                return r;
        for (int i = 0; i < 3; i++) {
                char line[64];
                int n = snprintf(line, sizeof(line), "healthy line %d\n", i);
                r = guest_log(g, g->next_seq++, line, (size_t) n);
                if (r < 0)
                        return r;
        }
        r = guest_wait(g, acked_up_to, g->next_seq - 1, arg_timeout_ms);
        if (r < 0)
                return log_error_errno(r, "Waiting for the first records to be acked");

        if (arg_ready_file) {
                r = guest_idle(g, ready_file_exists, 0, arg_hold_ms);
                if (r < 0)
                        return log_error_errno(r, "Waiting for the ready file");
        }
        return guest_ready_and_hold(g);
}

static int scenario_journal(Guest *g) {
        char text[32];
        int r;

        for (unsigned p = 0; p <= 7; p++) {
                snprintf(text, sizeof(text), "prio %u", p);
                r = guest_journal(g, g->next_seq++, p, text);
                if (r < 0)
                        return r;
        }
        r = guest_log(g, g->next_seq++, "plain\n", 6);
        if (r < 0)
                return r;
        r = guest_wait(g, acked_up_to, g->next_seq - 1, arg_timeout_ms);
        if (r < 0)
                return log_error_errno(r, "Waiting for the journal records to be acked");

        if (arg_ready_file) {
                r = guest_idle(g, ready_file_exists, 0, arg_hold_ms);
                if (r < 0)
                        return log_error_errno(r, "Waiting for the ready file");
                r = guest_journal(g, g->next_seq++, 2, "late crit");
                if (r >= 0)
                        r = guest_journal(g, g->next_seq++, 6, "late info");
                if (r >= 0)
                        r = guest_log(g, g->next_seq++, "late plain\n", 11);
                if (r >= 0)
                        r = guest_journal(g, g->next_seq++, 1, "late alert");
                if (r < 0)
                        return r;
        }
        return guest_ready_and_hold(g);
}

static int scenario_flood(Guest *g) {
        _cleanup_free_ char *buf = NULL;
        size_t len = MIN(arg_record_bytes, (uint64_t) MAX_RECORD_BYTES);
        int r;

        if (len < 32)
                len = 32;
        buf = malloc(len);
        if (!buf)
                return -ENOMEM;

        for (uint64_t i = 0; i < arg_records; i++) {
                /* Numbered lines of 64 bytes each, so a reader could check them. */
                size_t off = 0;
                if (arg_newlines) {
                        memset(buf, '\n', len);
                        off = len;
                }
                while (off + 64 <= len) {
                        char line[128];
                        snprintf(line, sizeof(line), "flood %012" PRIu64 " %044zu", i, off);
                        memcpy(buf + off, line, 63);
                        buf[off + 63] = '\n';
                        off += 64;
                }
                r = guest_log(g, g->next_seq++, buf, off);
                if (r < 0)
                        return r;
                if ((i & 63) == 0) {
                        r = guest_drain(g);
                        if (r < 0)
                                return r;
                }
        }
        r = guest_wait(g, acked_up_to, g->next_seq - 1, arg_timeout_ms);
        if (r < 0)
                return log_error_errno(r, "Waiting for the flood to be acked");
        return 0;
}

/* Sends the scenario's bad bytes; the host is expected to close the connection. */
static int scenario_send_bad(Guest *g, const char *scenario) {
        int r;

        if (streq_ptr(scenario, "oversized-header")) {
                uint8_t bytes[TETHER_FRAME_HEADER_SIZE + 16] = {};
                frame_header_put(bytes, TETHER_FRAME_MAX + 1);
                return guest_write(g, bytes, sizeof(bytes));
        }
        if (streq_ptr(scenario, "trickle")) {
                /* One frame announced, then a byte every 10 ms, never finished (4095 bytes: 41 s): what
                 * arrives is never a whole message, and tetherd must not take the trickle for a live guest.
                 * No heartbeats meanwhile: they would land inside the unfinished frame. */
                uint8_t header[TETHER_FRAME_HEADER_SIZE];
                frame_header_put(header, 4096);
                r = guest_write(g, header, sizeof(header));
                for (unsigned i = 0; r >= 0 && i < 4095 && !g->closed_by_peer; i++) {
                        static const uint8_t byte = 0x0a;
                        r = guest_write(g, &byte, 1);
                        if (r >= 0)
                                r = guest_pump(g, 10);
                }
                return r;
        }
        if (streq_ptr(scenario, "zero-length")) {
                uint8_t bytes[TETHER_FRAME_HEADER_SIZE] = {};
                return guest_write(g, bytes, sizeof(bytes));
        }
        if (streq_ptr(scenario, "garbage")) {
                /* A varint longer than 10 bytes: no protobuf decoder accepts it. */
                uint8_t junk[24];
                memset(junk, 0xff, sizeof(junk));
                return guest_send_raw(g, junk, sizeof(junk));
        }
        if (streq_ptr(scenario, "huge-log-dropped")) {
                /* Counts no host could have seen: 2^63 + 5 records, 2^64 - 1 bytes. */
                Tether__Envelope e = TETHER__ENVELOPE__INIT;
                Tether__LogDropped d = TETHER__LOG_DROPPED__INIT;
                d.records = (UINT64_C(1) << 63) + 5;
                d.bytes = UINT64_MAX;
                e.seq = g->next_seq++;
                e.msg_case = TETHER__ENVELOPE__MSG_LOG_DROPPED;
                e.log_dropped = &d;
                return guest_send_frame(g, &e);
        }
        if (streq_ptr(scenario, "invalid-utf8"))
                return guest_milestone(g, g->next_seq++, "bad\xff\xfename", 0);
        if (streq_ptr(scenario, "too-many-attributes"))
                return guest_milestone(g, g->next_seq++, "many.attributes", 33);
        if (streq_ptr(scenario, "seq-regression")) {
                uint64_t s = g->next_seq;
                r = guest_milestone(g, s + 1, "seq.two", 0);
                if (r < 0)
                        return r;
                r = guest_milestone(g, s + 2, "seq.three", 0);
                if (r < 0)
                        return r;
                return guest_milestone(g, s + 1, "seq.two.again", 0);
        }
        if (streq_ptr(scenario, "unknown-message")) {
                /* Field 25, wire type 2 (length-delimited), length 0: tag (25 << 3 | 2) = 202 = 0xca 0x01. */
                static const uint8_t payload[] = { 0xca, 0x01, 0x00 };
                return guest_send_raw(g, payload, sizeof(payload));
        }
        return -EINVAL;
}

static int run(Guest *g) {
        bool hostile = !streq_ptr(arg_scenario, "healthy") && !streq_ptr(arg_scenario, "flood") &&
                !streq_ptr(arg_scenario, "journal");
        int r;

        r = guest_connect(g, arg_socket);
        if (r < 0)
                return log_error_errno(r, "Failed to connect");

        if (streq_ptr(arg_scenario, "before-hello")) {
                r = guest_milestone(g, 1, "before.hello", 0);
                if (r < 0 && r != -ECONNRESET)
                        return log_error_errno(r, "Failed to send");
        } else {
                r = guest_hello(g);
                if (r < 0)
                        return log_error_errno(r, "Failed to send Hello");
                r = guest_wait(g, have_welcome, 0, arg_timeout_ms);
                if (r < 0)
                        return log_error_errno(r, "Waiting for Welcome");
                g->next_seq = g->acked_seq + 1;

                if (streq_ptr(arg_scenario, "healthy"))
                        return scenario_healthy(g);
                if (streq_ptr(arg_scenario, "flood"))
                        return scenario_flood(g);
                if (streq_ptr(arg_scenario, "journal"))
                        return scenario_journal(g);

                /* A valid record first, acked, so the hostile machine has a boot and known-good data. */
                r = guest_milestone(g, g->next_seq++, "hostile.marker", 0);
                if (r < 0)
                        return log_error_errno(r, "Failed to send the marker");
                r = guest_wait(g, acked_up_to, g->next_seq - 1, arg_timeout_ms);
                if (r < 0)
                        return log_error_errno(r, "Waiting for the marker's ack");

                r = scenario_send_bad(g, arg_scenario);
                if (r == -EINVAL)
                        return log_error_errno(r, "Unknown scenario");
                if (r < 0 && r != -ECONNRESET)
                        return log_error_errno(r, "Failed to send the bad frame");
        }

        if (hostile) {
                /* Keep reading (and ignore what comes) until the host hangs up, or give up. */
                r = guest_idle(g, NULL, 0, arg_timeout_ms);
                if (r == -ECONNRESET || g->closed_by_peer)
                        return 0;
                return r == -ETIMEDOUT ? 1 : r;
        }
        return 0;
}

static int help(void) {
        printf("Usage: fake-guest --socket PATH --scenario NAME [--boot-id ID] [--ready-file PATH]\n"
               "                  [--hold-ms N] [--timeout-ms N] [--records N] [--record-bytes N]\n"
               "                  [--newlines]\n"
               "Scenarios: healthy flood oversized-header zero-length garbage invalid-utf8 huge-log-dropped\n"
               "           too-many-attributes seq-regression unknown-message before-hello\n");
        return 0;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_SOCKET = 0x100,
                ARG_SCENARIO,
                ARG_BOOT_ID,
                ARG_READY_FILE,
                ARG_HOLD_MS,
                ARG_TIMEOUT_MS,
                ARG_RECORDS,
                ARG_RECORD_BYTES,
                ARG_NEWLINES
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "scenario", required_argument, NULL, ARG_SCENARIO },
                { "boot-id", required_argument, NULL, ARG_BOOT_ID },
                { "ready-file", required_argument, NULL, ARG_READY_FILE },
                { "hold-ms", required_argument, NULL, ARG_HOLD_MS },
                { "timeout-ms", required_argument, NULL, ARG_TIMEOUT_MS },
                { "records", required_argument, NULL, ARG_RECORDS },
                { "record-bytes", required_argument, NULL, ARG_RECORD_BYTES },
                { "newlines", no_argument, NULL, ARG_NEWLINES },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                uint64_t *target = NULL;
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case ARG_SCENARIO:
                        arg_scenario = optarg;
                        break;
                case ARG_BOOT_ID:
                        arg_boot_id = optarg;
                        break;
                case ARG_READY_FILE:
                        arg_ready_file = optarg;
                        break;
                case ARG_HOLD_MS:
                        target = &arg_hold_ms;
                        break;
                case ARG_TIMEOUT_MS:
                        target = &arg_timeout_ms;
                        break;
                case ARG_RECORDS:
                        target = &arg_records;
                        break;
                case ARG_RECORD_BYTES:
                        target = &arg_record_bytes;
                        break;
                case ARG_NEWLINES:
                        arg_newlines = true;
                        break;
                default:
                        return -EINVAL;
                }
                if (target && parse_u64(optarg, target) < 0) {
                        log_errorf("Invalid number: %s", optarg);
                        return -EINVAL;
                }
        }
        if (!arg_socket || !arg_scenario) {
                log_errorf("--socket and --scenario are required");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        Guest g = { .fd = -1 };
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        r = run(&g);
        if (!streq_ptr(arg_scenario, "healthy") && !streq_ptr(arg_scenario, "journal"))
                print_summary(&g);
        guest_done(&g);
        if (r < 0)
                return r == -ETIMEDOUT ? 1 : 2;
        return r;
}
