/* SPDX-License-Identifier: MIT */
/* The transport against a fake tetherd in the same process, over a real Unix socket. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "record.h"
#include "replay.h"
#include "time-util.h"
#include "transport.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

typedef struct Host {
        char dir[64];
        char path[108];
        int listen_fd;
        int conn;
} Host;

static char welcomed_traceparent[64];

static void on_welcome(const char *traceparent, void *userdata) {
        snprintf(welcomed_traceparent, sizeof(welcomed_traceparent), "%s", traceparent);
}

static void host_listen(Host *h) {
        strcpy(h->dir, "/tmp/tether-transport-XXXXXX");
        assert_non_null(mkdtemp(h->dir));
        snprintf(h->path, sizeof(h->path), "%s/vsock_4817", h->dir);
        h->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        strcpy(sun.sun_path, h->path);
        assert_int_equal(bind(h->listen_fd, (struct sockaddr *) &sun, sizeof(sun)), 0);
        assert_int_equal(listen(h->listen_fd, 4), 0);
        h->conn = -1;
}

static void host_done(Host *h) {
        if (h->conn >= 0)
                close(h->conn);
        close(h->listen_fd);
        unlink(h->path);
        rmdir(h->dir);
}

static void host_accept(Host *h) {
        struct pollfd p = { .fd = h->listen_fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        h->conn = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(h->conn >= 0);
}

static void read_exact(int fd, void *buf, size_t n) {
        size_t got = 0;
        while (got < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                assert_int_equal(poll(&p, 1, 5000), 1);
                ssize_t k = read(fd, (char *) buf + got, n - got);
                assert_true(k > 0);
                got += (size_t) k;
        }
}

static Tether__Envelope *host_read(Host *h) {
        uint8_t hdr[TETHER_FRAME_HEADER_SIZE];
        read_exact(h->conn, hdr, sizeof(hdr));
        uint32_t len = frame_header_get(hdr);
        assert_true(len > 0 && len <= TETHER_FRAME_MAX);
        uint8_t *payload = malloc(len);
        assert_non_null(payload);
        read_exact(h->conn, payload, len);
        Tether__Envelope *e;
        assert_int_equal(envelope_unpack(payload, len, &e), 0);
        free(payload);
        EnvelopeLimits limits = ENVELOPE_LIMITS_DEFAULT;
        assert_int_equal(envelope_validate(e, &limits), PROTOCOL_ERROR_NONE);
        return e;
}

/* True when the peer closed the connection (after whatever is still buffered). */
static bool host_sees_eof(Host *h) {
        char c;
        struct pollfd p = { .fd = h->conn, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        return read(h->conn, &c, 1) == 0;
}

static void host_send(Host *h, Tether__Envelope *e) {
        uint8_t *frame;
        size_t len;
        assert_int_equal(envelope_pack_frame(e, &frame, &len), 0);
        assert_int_equal(write(h->conn, frame, len), (ssize_t) len);
        free(frame);
}

static void host_send_welcome(Host *h, const char *session, uint64_t acked, uint32_t version) {
        Tether__Limits l = TETHER__LIMITS__INIT;
        l.heartbeat_interval_ms = 1000;
        Tether__Welcome w = TETHER__WELCOME__INIT;
        w.protocol_version = version;
        w.session_id.data = (uint8_t *) session;
        w.session_id.len = strlen(session);
        w.acked_seq = acked;
        w.limits = &l;
        w.traceparent = (char *) TP;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_WELCOME;
        e.welcome = &w;
        host_send(h, &e);
}

static void host_send_ack(Host *h, uint64_t seq) {
        Tether__Ack a = TETHER__ACK__INIT;
        a.seq = seq;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.msg_case = TETHER__ENVELOPE__MSG_ACK;
        e.ack = &a;
        host_send(h, &e);
}

/* Lets the transport react to whatever the host sent. */
static void pump(Transport *t) {
        short events;
        int fd = transport_fd(t, &events);
        assert_true(fd >= 0);
        struct pollfd p = { .fd = fd, .events = events | POLLIN };
        assert_true(poll(&p, 1, 5000) >= 1);
        transport_handle_io(t, p.revents, now_ns(CLOCK_BOOTTIME));
        transport_flush(t, now_ns(CLOCK_BOOTTIME));
}

static Transport *new_transport(Host *h, Replay *r) {
        TransportConfig tc = {
                .kind = TRANSPORT_UNIX,
                .unix_path = h->path,
                .mode = TETHER__AGENT_MODE__AGENT_MODE_INIT,
                .boot_id = "3f2c1d4e-0000-4000-8000-000000000001",
                .kernel_release = "6.1.0-test",
                .hostname = "guest",
        };
        Transport *t;
        assert_int_equal(transport_new(&tc, r, on_welcome, NULL, &t), 0);
        return t;
}

static void expect_milestone(Host *h, uint64_t seq, const char *name) {
        Tether__Envelope *e = host_read(h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_MILESTONE);
        assert_int_equal(e->seq, seq);
        assert_string_equal(e->milestone->name, name);
        envelope_free(e);
}

static void test_session(void **state) {
        Host h;
        Replay *r;
        host_listen(&h);
        assert_int_equal(replay_new(1 << 20, &r), 0);
        assert_int_equal(record_milestone(r, "kernel.start", 0, NULL), 0);
        assert_int_equal(record_milestone(r, "init.start", 1, NULL), 0);
        assert_int_equal(record_milestone(r, "mounts.done", 2, NULL), 0);

        Transport *t = new_transport(&h, r);
        transport_start(t, now_ns(CLOCK_BOOTTIME));
        host_accept(&h);

        /* Hello first, saying who we are and what the replay buffer holds */
        Tether__Envelope *e = host_read(&h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_HELLO);
        assert_int_equal(e->seq, 0);
        assert_int_equal(e->hello->protocol_version, 1);
        assert_int_equal(e->hello->max_protocol_version, TETHER_PROTOCOL_VERSION_MAX);
        assert_string_equal(e->hello->boot_id, "3f2c1d4e-0000-4000-8000-000000000001");
        assert_string_equal(e->hello->kernel_release, "6.1.0-test");
        assert_string_equal(e->hello->hostname, "guest");
        assert_int_equal(e->hello->mode, TETHER__AGENT_MODE__AGENT_MODE_INIT);
        assert_int_equal(e->hello->resume_token.len, 0);
        assert_int_equal(e->hello->first_seq, 1);
        assert_int_equal(e->hello->last_seq, 3);
        /* This agent process, so that tetherd tells a restarted agent from a reconnect. */
        uint8_t instance[TRANSPORT_INSTANCE_ID_BYTES], zero[TRANSPORT_INSTANCE_ID_BYTES] = {};
        assert_int_equal(e->hello->agent_instance.len, TRANSPORT_INSTANCE_ID_BYTES);
        memcpy(instance, e->hello->agent_instance.data, sizeof(instance));
        assert_memory_not_equal(instance, zero, sizeof(instance));
        envelope_free(e);
        assert_false(transport_is_established(t));
        TransportStats st;
        transport_get_stats(t, &st);
        assert_int_equal(st.progress_ns, 0);

        /* tetherd already has seq 1 (say, from an earlier connection): only 2 and 3 come */
        uint64_t welcome_at = now_ns(CLOCK_BOOTTIME);
        host_send_welcome(&h, "session-1", 1, 1);
        pump(t);
        assert_true(transport_is_established(t));
        /* A Welcome that frees records is progress (flow control). */
        transport_get_stats(t, &st);
        assert_true(st.progress_ns >= welcome_at && st.progress_ns <= now_ns(CLOCK_BOOTTIME));
        uint64_t progress = st.progress_ns;
        assert_string_equal(welcomed_traceparent, TP);
        expect_milestone(&h, 2, "init.start");
        expect_milestone(&h, 3, "mounts.done");

        /* A clock probe is answered at once */
        Tether__ClockProbe cp = TETHER__CLOCK_PROBE__INIT;
        cp.probe_id = 9;
        Tether__Envelope pe = TETHER__ENVELOPE__INIT;
        pe.msg_case = TETHER__ENVELOPE__MSG_CLOCK_PROBE;
        pe.clock_probe = &cp;
        uint64_t before = now_ns(CLOCK_BOOTTIME);
        host_send(&h, &pe);
        pump(t);
        e = host_read(&h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_CLOCK_SAMPLE);
        assert_int_equal(e->clock_sample->probe_id, 9);
        assert_true(e->clock_sample->boottime_ns >= before);
        assert_true(e->clock_sample->boottime_ns <= now_ns(CLOCK_BOOTTIME));
        envelope_free(e);
        transport_get_stats(t, &st);
        assert_int_equal(st.progress_ns, progress);

        /* Acks free records: progress */
        host_send_ack(&h, 3);
        pump(t);
        assert_true(replay_is_empty(r));
        transport_get_stats(t, &st);
        assert_true(st.progress_ns > progress);
        progress = st.progress_ns;

        /* An ack that frees nothing is not */
        host_send_ack(&h, 2);
        host_send_ack(&h, 3);
        pump(t);
        transport_get_stats(t, &st);
        assert_int_equal(st.progress_ns, progress);

        /* A new record goes out as soon as it is flushed */
        assert_int_equal(record_milestone(r, "workload.exec", 3, NULL), 0);
        transport_flush(t, now_ns(CLOCK_BOOTTIME));
        expect_milestone(&h, 4, "workload.exec");

        /* The host goes away before acking 4: the agent reconnects, resumes the session, resends 4 */
        close(h.conn);
        h.conn = -1;
        pump(t);
        short events;
        assert_int_equal(transport_fd(t, &events), -1);
        assert_false(transport_is_established(t));
        uint64_t deadline = transport_next_deadline(t);
        assert_true(deadline != UINT64_MAX);
        transport_handle_timers(t, deadline);
        host_accept(&h);
        e = host_read(&h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_HELLO);
        assert_int_equal(e->hello->resume_token.len, strlen("session-1"));
        assert_memory_equal(e->hello->resume_token.data, "session-1", strlen("session-1"));
        assert_int_equal(e->hello->first_seq, 4);
        assert_int_equal(e->hello->last_seq, 4);
        /* A reconnect is the same instance. */
        assert_int_equal(e->hello->agent_instance.len, TRANSPORT_INSTANCE_ID_BYTES);
        assert_memory_equal(e->hello->agent_instance.data, instance, sizeof(instance));
        envelope_free(e);
        host_send_welcome(&h, "session-2", 3, 1);
        pump(t);
        expect_milestone(&h, 4, "workload.exec");
        /* Nor is a Welcome that frees nothing (seq 4 is still held) */
        transport_get_stats(t, &st);
        assert_int_equal(st.progress_ns, progress);

        /* Idle: a heartbeat after the interval the host asked for (1 s) */
        host_send_ack(&h, 4);
        pump(t);
        uint64_t hb_at = transport_next_deadline(t);
        assert_true(hb_at > now_ns(CLOCK_BOOTTIME) - 1);
        transport_handle_timers(t, hb_at);
        e = host_read(&h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_HEARTBEAT);
        envelope_free(e);

        transport_get_stats(t, &st);
        assert_true(st.progress_ns > progress); /* the ack of 4 */
        assert_int_equal(st.connects, 2);
        assert_int_equal(st.disconnects, 1);
        assert_int_equal(st.protocol_errors, 0);
        assert_int_equal(st.clock_samples, 1);
        assert_int_equal(st.heartbeats, 1);

        transport_free(t);

        /* Another agent process (a restart) is another instance. */
        close(h.conn);
        t = new_transport(&h, r);
        transport_start(t, now_ns(CLOCK_BOOTTIME));
        host_accept(&h);
        e = host_read(&h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_HELLO);
        assert_int_equal(e->hello->agent_instance.len, TRANSPORT_INSTANCE_ID_BYTES);
        assert_memory_not_equal(e->hello->agent_instance.data, instance, sizeof(instance));
        envelope_free(e);
        transport_free(t);

        replay_free(r);
        host_done(&h);
}

static void test_protocol_errors_close(void **state) {
        Host h;
        Replay *r;
        host_listen(&h);
        assert_int_equal(replay_new(1 << 20, &r), 0);
        Transport *t = new_transport(&h, r);
        TransportStats st;

        /* 1: a record from the host (only the agent sends those) */
        transport_start(t, 0);
        host_accept(&h);
        envelope_free(host_read(&h));
        host_send_welcome(&h, "s", 0, 1);
        pump(t);
        Tether__Log l = TETHER__LOG__INIT;
        l.stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT;
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        e.seq = 1;
        e.msg_case = TETHER__ENVELOPE__MSG_LOG;
        e.log = &l;
        host_send(&h, &e);
        pump(t);
        assert_true(host_sees_eof(&h));
        transport_get_stats(t, &st);
        assert_int_equal(st.protocol_errors, 1);
        close(h.conn);

        /* 2: an Ack before the Welcome */
        transport_handle_timers(t, transport_next_deadline(t));
        host_accept(&h);
        envelope_free(host_read(&h));
        host_send_ack(&h, 1);
        pump(t);
        assert_true(host_sees_eof(&h));
        close(h.conn);

        /* 3: a Welcome of another protocol version */
        transport_handle_timers(t, transport_next_deadline(t));
        host_accept(&h);
        envelope_free(host_read(&h));
        host_send_welcome(&h, "s", 0, TETHER_PROTOCOL_VERSION_MAX + 1);
        pump(t);
        assert_true(host_sees_eof(&h));
        assert_false(transport_is_established(t));
        close(h.conn);

        /* 4: a frame announcing more than 64 KiB */
        transport_handle_timers(t, transport_next_deadline(t));
        host_accept(&h);
        envelope_free(host_read(&h));
        uint8_t hdr[4];
        frame_header_put(hdr, TETHER_FRAME_MAX + 1);
        assert_int_equal(write(h.conn, hdr, 4), 4);
        pump(t);
        assert_true(host_sees_eof(&h));
        close(h.conn);

        /* 5: bytes that are not a protobuf */
        transport_handle_timers(t, transport_next_deadline(t));
        host_accept(&h);
        envelope_free(host_read(&h));
        uint8_t junk[] = { 5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff };
        assert_int_equal(write(h.conn, junk, sizeof(junk)), (ssize_t) sizeof(junk));
        pump(t);
        assert_true(host_sees_eof(&h));
        h.conn = safe_close(h.conn);

        transport_get_stats(t, &st);
        assert_int_equal(st.protocol_errors, 5);
        assert_int_equal(st.connects, 1);

        transport_free(t);
        replay_free(r);
        host_done(&h);
}

/* Resource samples go only to a tetherd that chose version 2, as plain messages (seq 0, not in the replay). */
static void test_samples_follow_the_version(void **state) {
        Host h;
        Replay *r;
        Tether__ResourceSample s = TETHER__RESOURCE_SAMPLE__INIT;
        s.boottime_ns = 5;
        s.cpus = 3;
        host_listen(&h);
        assert_int_equal(replay_new(1 << 20, &r), 0);
        Transport *t = new_transport(&h, r);

        assert_false(transport_wants_samples(t));
        assert_int_equal(transport_send_sample(t, &s), 0); /* not connected */

        /* A version 1 tetherd: nothing sent. */
        transport_start(t, 0);
        host_accept(&h);
        envelope_free(host_read(&h));
        host_send_welcome(&h, "s", 0, 1);
        pump(t);
        assert_true(transport_is_established(t));
        assert_false(transport_wants_samples(t));
        assert_int_equal(transport_send_sample(t, &s), 0);
        close(h.conn);
        pump(t);

        /* Version 2: sent as it is. */
        transport_handle_timers(t, transport_next_deadline(t));
        host_accept(&h);
        envelope_free(host_read(&h));
        host_send_welcome(&h, "s", 0, 2);
        pump(t);
        assert_true(transport_wants_samples(t));
        assert_int_equal(transport_send_sample(t, &s), 1);
        transport_flush(t, 1);
        Tether__Envelope *e = host_read(&h);
        assert_int_equal(e->msg_case, TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE);
        assert_int_equal(e->seq, 0);
        assert_int_equal(e->resource_sample->cpus, 3);
        envelope_free(e);
        assert_int_equal(replay_last_seq(r), 0);
        TransportStats st;
        transport_get_stats(t, &st);
        assert_int_equal(st.samples, 1);

        transport_free(t);
        replay_free(r);
        h.conn = safe_close(h.conn);
        host_done(&h);
}

static void test_backoff_is_bounded(void **state) {
        Host h;
        Replay *r;
        host_listen(&h);
        close(h.listen_fd);
        unlink(h.path); /* nobody there */
        h.listen_fd = -1;
        assert_int_equal(replay_new(1 << 20, &r), 0);
        Transport *t = new_transport(&h, r);

        uint64_t now = 1000 * NSEC_PER_SEC;
        transport_start(t, now);
        uint64_t first = transport_next_deadline(t) - now;
        assert_true(first >= TRANSPORT_BACKOFF_MIN_NS / 2);
        assert_true(first <= TRANSPORT_BACKOFF_MIN_NS);

        uint64_t delays[20];
        for (int i = 0; i < 20; i++) {
                now = transport_next_deadline(t);
                transport_handle_timers(t, now);
                delays[i] = transport_next_deadline(t) - now;
                assert_true(delays[i] <= TRANSPORT_BACKOFF_MAX_NS);
        }
        /* Doubling: after a few attempts the wait is at least half the maximum, and it never exceeds it. */
        for (int i = 8; i < 20; i++)
                assert_true(delays[i] >= TRANSPORT_BACKOFF_MAX_NS / 2);
        assert_true(delays[0] < delays[10]);

        transport_free(t);
        replay_free(r);
        rmdir(h.dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_session),
                cmocka_unit_test(test_protocol_errors_close),
                cmocka_unit_test(test_samples_follow_the_version),
                cmocka_unit_test(test_backoff_is_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
