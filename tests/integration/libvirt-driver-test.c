/* SPDX-License-Identifier: MIT */
/* tetherd's libvirt watcher end to end, in one process: the real Server (registry, API on a Unix socket, state
 * directory) watching libvirt's in-process test driver (test:///default, whose state is shared by every
 * connection of the process), while this test changes domains through its own connection to the same driver.
 * A fake agent is attached as a domain's guest through server_accept_vsock_peer(), the function the AF_VSOCK
 * listener hands its accepted connections to (peer CID → machine). Asserts:
 *   - a domain with <vsock> CID N is registered (source libvirt, machine id = UUID, or the metadata's id), holds
 *     its CID while running;
 *   - a METADATA_CHANGE updates request id and traceparent;
 *   - started → the boot trace's root starts at the start event, host.start then the guest kernel under it, one
 *     trace, host_start_to_ready_ns;
 *   - suspended/resumed appear in /v1/events;
 *   - destroy before ready answers a parked ready waiter at once: 409, state stopped, libvirt's reason;
 *   - undefine removes the machine, a transient domain's machine goes when it stops;
 *   - a reconnection re-synchronises (adds, removes) without duplicating machines, and leaves API machines alone;
 *   - nothing of libvirt's event handles/timeouts is left once the connections are closed. */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libvirt/libvirt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "collector-test.h"
#include "jsonlog.h"
#include "libvirt-event-bridge.h"
#include "libvirt-metadata.h"
#include "libvirt-watch.h"
#include "server.h"
#include "time-util.h"

#define UUID_A "11111111-2222-3333-4444-00000000000a"
#define UUID_B "11111111-2222-3333-4444-00000000000b"
#define UUID_C "11111111-2222-3333-4444-00000000000c"
#define UUID_T "11111111-2222-3333-4444-00000000000f"
#define TRACEPARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static char tmpdir[] = "/tmp/tether-libvirt-test-XXXXXX";
static char api_path[100];
static Server *server;
static virConnectPtr conn; /* the test's own connection: the "orchestrator" */

/* Runs the loop until cond holds (5 s at most). */
#define PUMP_UNTIL(cond)                                                                          \
        do {                                                                                      \
                uint64_t _deadline_ = now_ns(CLOCK_MONOTONIC) + 5 * NSEC_PER_SEC;                 \
                while (!(cond)) {                                                                 \
                        if (now_ns(CLOCK_MONOTONIC) > _deadline_)                                 \
                                fail_msg("timed out waiting for: %s", #cond);                     \
                        assert_true(sd_event_run(server_event(server), 10 * USEC_PER_MSEC) >= 0); \
                }                                                                                 \
        } while (0)

static void pump(unsigned ms) {
        uint64_t end = now_ns(CLOCK_MONOTONIC) + ms * NSEC_PER_MSEC;
        while (now_ns(CLOCK_MONOTONIC) < end)
                assert_true(sd_event_run(server_event(server), 5 * USEC_PER_MSEC) >= 0);
}

/* ---- HTTP/1.0 over the API socket, the loop running while we wait ---- */

typedef struct Http {
        int fd;
        Bytes in;
        bool done;
} Http;

static void http_start(Http *h, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char req[512];

        *h = (Http) { .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
        assert_true(h->fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", api_path);
        assert_int_equal(connect(h->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: tether\r\n\r\n", path);
        assert_int_equal(write(h->fd, req, (size_t) n), n);
        assert_int_equal(fcntl(h->fd, F_SETFL, O_NONBLOCK), 0);
}

static bool http_poll(Http *h) {
        char buf[65536];
        ssize_t k;

        while (!h->done && (k = read(h->fd, buf, sizeof(buf))) != 0) {
                if (k < 0) {
                        assert_true(errno == EAGAIN);
                        return false;
                }
                bytes_append(&h->in, buf, (size_t) k);
        }
        h->done = true;
        return true;
}

/* Waits for the answer; returns the status, the body in *ret_body (NUL-terminated, to free). */
static int http_finish(Http *h, char **ret_body) {
        PUMP_UNTIL(http_poll(h));
        close(h->fd);
        bytes_append(&h->in, "", 1);
        char *text = (char *) h->in.data;
        int status = 0;
        assert_int_equal(sscanf(text, "HTTP/1.%*d %d", &status), 1);
        char *body = strstr(text, "\r\n\r\n");
        assert_non_null(body);
        *ret_body = strdup(body + 4);
        bytes_free(&h->in);
        return status;
}

static json_t *http_get_json(const char *path, int *ret_status) {
        Http h;
        _cleanup_free_ char *body = NULL;

        http_start(&h, path);
        *ret_status = http_finish(&h, &body);
        json_t *o = json_loads(body, 0, NULL);
        assert_non_null(o);
        return o;
}

/* The events of a machine (NDJSON), as one JSON array. */
static json_t *machine_events(const char *id) {
        char path[256];
        Http h;
        _cleanup_free_ char *body = NULL;
        json_t *a = json_array();

        snprintf(path, sizeof(path), "/v1/events?machine_id=%s", id);
        http_start(&h, path);
        assert_int_equal(http_finish(&h, &body), 200);
        for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
                json_t *o = json_loads(line, 0, NULL);
                assert_non_null(o);
                json_array_append_new(a, o);
        }
        return a;
}

static json_t *find_event(json_t *events, const char *transition) {
        size_t i;
        json_t *e;
        json_array_foreach(events, i, e) {
                if (strcmp(json_string_value(json_object_get(e, "transition")), transition) == 0)
                        return e;
        }
        return NULL;
}

/* ---- libvirt and the fake agent ---- */

static virDomainPtr define(const char *name, const char *uuid, const char *devices, const char *metadata) {
        char *xml;
        assert_true(
                asprintf(
                        &xml,
                        "<domain type='test'><name>%s</name><uuid>%s</uuid><memory>8192</memory>"
                        "<os><type>hvm</type></os><metadata>%s</metadata><devices>%s</devices></domain>",
                        name,
                        uuid,
                        metadata ?: "",
                        devices ?: "") > 0);
        virDomainPtr d = virDomainDefineXML(conn, xml);
        free(xml);
        assert_non_null(d);
        return d;
}

static const char *vsock(unsigned cid) {
        static char b[128];
        snprintf(b, sizeof(b), "<vsock model='virtio'><cid auto='no' address='%u'/></vsock>", cid);
        return b;
}

static size_t count_machines(const char *id) {
        size_t n = 0;
        for (Machine *m = server_manager(server)->registry->machines; m; m = m->machines_next)
                if (!id || strcmp(m->id, id) == 0)
                        n++;
        return n;
}

static void hello(Bytes *b, const char *boot_id, uint64_t boottime_ns) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.agent_version = (char *) "fake-1";
        h.boot_id = (char *) boot_id;
        h.kernel_release = (char *) "6.1.0-test";
        h.hostname = (char *) "guest";
        h.mode = TETHER__AGENT_MODE__AGENT_MODE_INIT;
        h.boottime_ns = boottime_ns;
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;
        frame_append(b, &e);
}

/* A fake agent "over vsock" from this CID: the host end goes through the listener's path. Returns the guest
 * end. */
static int agent_connect(unsigned cid) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        server_accept_vsock_peer(server, sv[0], cid, 49152);
        return sv[1];
}

static void agent_send(int fd, Bytes *b) {
        size_t off = 0;
        while (off < b->len) {
                ssize_t k = write(fd, b->data + off, b->len - off);
                if (k < 0 && errno == EAGAIN) {
                        pump(5);
                        continue;
                }
                assert_true(k > 0);
                off += (size_t) k;
        }
        bytes_free(b);
}

/* ---- tests ---- */

static void test_register_metadata_start_trace(void **state) {
        virDomainPtr d = define("vm-a", UUID_A, vsock(42), NULL);
        Machine *m;
        int status;

        /* DEFINED: registered under its UUID, source libvirt; not running, so no CID yet. */
        PUMP_UNTIL((m = registry_find(server_manager(server)->registry, UUID_A)));
        assert_int_equal(m->source, MACHINE_SOURCE_LIBVIRT);
        assert_string_equal(m->source_id, UUID_A);
        assert_int_equal(m->cid, 0);
        json_t *o = http_get_json("/v1/machines/" UUID_A, &status);
        assert_int_equal(status, 200);
        assert_string_equal(json_string_value(json_object_get(o, "source")), "libvirt");
        assert_string_equal(json_string_value(json_object_get(o, "source_id")), UUID_A);
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(o, "attributes"), "libvirt.domain.name")), "vm-a");
        json_decref(o);

        /* METADATA_CHANGE: request id and traceparent follow. */
        assert_int_equal(
                virDomainSetMetadata(
                        d,
                        VIR_DOMAIN_METADATA_ELEMENT,
                        "<machine request-id='req-1' traceparent='" TRACEPARENT "' service='web'/>",
                        TETHER_LIBVIRT_NS_PREFIX,
                        TETHER_LIBVIRT_NS,
                        VIR_DOMAIN_AFFECT_CURRENT),
                0);
        PUMP_UNTIL(m->request_id && strcmp(m->request_id, "req-1") == 0);
        assert_string_equal(m->traceparent, TRACEPARENT);
        assert_string_equal(m->service_name, "web");
        assert_ptr_equal(registry_find(server_manager(server)->registry, UUID_A), m); /* updated in place */

        /* STARTED: the CID is held, the host-side start recorded. */
        uint64_t before = now_ns(CLOCK_REALTIME);
        assert_int_equal(virDomainCreate(d), 0);
        PUMP_UNTIL(m->cid == 42);
        assert_ptr_equal(registry_find_by_cid(server_manager(server)->registry, 42), m);
        PUMP_UNTIL(m->pending_host_start_unix_ns != 0);
        uint64_t host_start = m->pending_host_start_unix_ns;
        assert_true(host_start >= before);

        /* The guest's kernel starts 150 ms after libvirt's start (its clock says it has been up 50 ms). */
        pump(200);
        int agent = agent_connect(42);
        Bytes b = {};
        hello(&b, "boot-a1", 50 * NSEC_PER_MSEC);
        milestone_frame(&b, 1, "kernel.start", 0);
        milestone_frame(&b, 2, "init.start", 20 * NSEC_PER_MSEC);
        milestone_frame(&b, 3, "workload.exec", 30 * NSEC_PER_MSEC);
        ready_frame(&b, 4, "test", 45 * NSEC_PER_MSEC);
        agent_send(agent, &b);
        PUMP_UNTIL(m->state == MACHINE_READY);
        assert_int_equal(m->current->host_start_unix_ns, host_start);
        assert_int_equal(m->pending_host_start_unix_ns, 0);

        o = http_get_json("/v1/machines/" UUID_A "/spans", &status);
        assert_int_equal(status, 200);
        json_t *spans = json_object_get(o, "spans"), *sp, *root = json_array_get(spans, 0), *host = NULL,
               *kernel = NULL;
        size_t i;
        assert_string_equal(json_string_value(json_object_get(root, "name")), "machine.boot");
        /* One trace: the registered traceparent's, the root's parent its span. */
        assert_string_equal(json_string_value(json_object_get(o, "trace_id")), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_string_equal(json_string_value(json_object_get(root, "parent_span_id")), "00f067aa0ba902b7");
        assert_int_equal(json_integer_value(json_object_get(root, "start_unix_ns")), (json_int_t) host_start);
        json_array_foreach(spans, i, sp) {
                const char *name = json_string_value(json_object_get(sp, "name"));
                assert_string_equal(
                        json_string_value(json_object_get(sp, "trace_id")), "4bf92f3577b34da6a3ce929d0e0e4736");
                if (i > 0)
                        assert_string_equal(
                                json_string_value(json_object_get(sp, "parent_span_id")),
                                json_string_value(json_object_get(root, "span_id")));
                if (strcmp(name, "host.start") == 0)
                        host = sp;
                if (strcmp(name, "kernel") == 0)
                        kernel = sp;
        }
        assert_non_null(host);
        assert_non_null(kernel);
        assert_ptr_equal(json_array_get(spans, 1), host); /* first child */
        assert_int_equal(json_integer_value(json_object_get(host, "start_unix_ns")), (json_int_t) host_start);
        json_int_t kernel_start = json_integer_value(json_object_get(kernel, "start_unix_ns"));
        assert_int_equal(json_integer_value(json_object_get(host, "end_unix_ns")), kernel_start);
        assert_true(kernel_start > (json_int_t) host_start);
        json_decref(o);

        o = http_get_json("/v1/machines/" UUID_A, &status);
        json_t *ready = json_object_get(json_object_get(o, "boot"), "ready");
        assert_true(json_is_integer(json_object_get(ready, "host_start_to_ready_ns")));
        assert_true(json_integer_value(json_object_get(ready, "host_start_to_ready_ns")) >= 150 * 1000000);
        assert_int_equal(
                json_integer_value(json_object_get(json_object_get(o, "boot"), "host_start_unix_ns")),
                (json_int_t) host_start);
        json_decref(o);

        /* SUSPENDED / RESUMED: events with libvirt's reason. */
        assert_int_equal(virDomainSuspend(d), 0);
        assert_int_equal(virDomainResume(d), 0);
        pump(100);
        json_t *events = machine_events(UUID_A);
        json_t *started = find_event(events, "domain.started"), *suspended = find_event(events, "domain.suspended"),
               *resumed = find_event(events, "domain.resumed");
        assert_non_null(find_event(events, "domain.defined"));
        assert_non_null(find_event(events, "domain.metadata_changed"));
        assert_non_null(started);
        assert_string_equal(json_string_value(json_object_get(started, "reason")), "booted");
        assert_string_equal(json_string_value(json_object_get(started, "source")), "libvirt");
        assert_int_equal(json_integer_value(json_object_get(started, "time_unix_ns")), (json_int_t) host_start);
        assert_non_null(suspended);
        assert_string_equal(json_string_value(json_object_get(suspended, "reason")), "paused");
        assert_non_null(resumed);
        assert_string_equal(json_string_value(json_object_get(resumed, "reason")), "unpaused");
        json_decref(events);

        /* Shut down after ready: the state says stopped, the ready answer stays 200. */
        assert_int_equal(virDomainDestroy(d), 0);
        PUMP_UNTIL(m->state == MACHINE_STOPPED);
        assert_int_equal(m->cid, 0); /* released */
        assert_null(m->connection);
        o = http_get_json("/v1/machines/" UUID_A "/ready?timeout=1", &status);
        assert_int_equal(status, 200);
        json_decref(o);
        close(agent);

        /* UNDEFINED: the machine goes. */
        assert_int_equal(virDomainUndefine(d), 0);
        PUMP_UNTIL(!registry_find(server_manager(server)->registry, UUID_A));
        o = http_get_json("/v1/machines/" UUID_A, &status);
        assert_int_equal(status, 404);
        json_decref(o);
        virDomainFree(d);
}

static void test_destroy_before_ready_answers_waiters(void **state) {
        virDomainPtr d = define(
                "vm-b",
                UUID_B,
                vsock(43),
                "<tether:machine xmlns:tether='" TETHER_LIBVIRT_NS "' id='vm-b' request-id='req-b'/>");
        Machine *m;
        Http w1, w2;
        _cleanup_free_ char *body1 = NULL, *body2 = NULL;

        /* The metadata's id, not the UUID. */
        PUMP_UNTIL((m = registry_find(server_manager(server)->registry, "vm-b")));
        assert_null(registry_find(server_manager(server)->registry, UUID_B));
        assert_string_equal(m->request_id, "req-b");
        assert_int_equal(virDomainCreate(d), 0);
        PUMP_UNTIL(m->cid == 43);

        int agent = agent_connect(43);
        Bytes b = {};
        hello(&b, "boot-b1", 10 * NSEC_PER_MSEC);
        milestone_frame(&b, 1, "kernel.start", 0);
        agent_send(agent, &b);
        PUMP_UNTIL(m->state == MACHINE_BOOTING && m->connected);

        /* Two parked waiters. */
        http_start(&w1, "/v1/machines/vm-b/ready?timeout=30");
        http_start(&w2, "/v1/machines/vm-b/ready?timeout=30");
        pump(200);
        assert_false(http_poll(&w1));
        assert_false(http_poll(&w2));

        uint64_t t0 = now_ns(CLOCK_MONOTONIC), closed = server_stats(server)->connections_closed[CLOSE_VM_STOPPED];
        assert_int_equal(virDomainDestroy(d), 0);
        assert_int_equal(http_finish(&w1, &body1), 409);
        assert_int_equal(http_finish(&w2, &body2), 409);
        assert_true(now_ns(CLOCK_MONOTONIC) - t0 < 2 * NSEC_PER_SEC); /* at once, not at the timeout */
        json_t *o = json_loads(body1, 0, NULL);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "state")), "stopped");
        assert_string_equal(json_string_value(json_object_get(o, "error")), "machine stopped before ready");
        assert_non_null(strstr(json_string_value(json_object_get(o, "reason")), "destroyed"));
        json_decref(o);
        assert_int_equal(m->state, MACHINE_STOPPED);
        assert_false(m->connected);
        assert_int_equal(server_stats(server)->connections_closed[CLOSE_VM_STOPPED], closed + 1);

        json_t *events = machine_events("vm-b");
        json_t *stopped = find_event(events, "domain.stopped");
        assert_non_null(stopped);
        assert_string_equal(json_string_value(json_object_get(stopped, "reason")), "destroyed");
        assert_string_equal(json_string_value(json_object_get(stopped, "request_id")), "req-b");
        json_decref(events);

        /* Started again: a new boot is awaited (booting), not the last verdict. */
        assert_int_equal(virDomainCreate(d), 0);
        PUMP_UNTIL(m->state == MACHINE_BOOTING && m->cid == 43);
        assert_int_equal(virDomainDestroy(d), 0);
        PUMP_UNTIL(m->state == MACHINE_STOPPED);
        close(agent);
        virDomainFree(d);
}

static void test_transient_domain(void **state) {
        char *xml;
        assert_true(
                asprintf(
                        &xml,
                        "<domain type='test'><name>vm-t</name><uuid>" UUID_T "</uuid><memory>8192</memory>"
                        "<os><type>hvm</type></os><devices>%s</devices></domain>",
                        vsock(77)) > 0);
        virDomainPtr d = virDomainCreateXML(conn, xml, 0);
        free(xml);
        assert_non_null(d);
        Machine *m;
        PUMP_UNTIL((m = registry_find(server_manager(server)->registry, UUID_T)) && m->cid == 77);
        assert_int_equal(virDomainDestroy(d), 0);
        PUMP_UNTIL(!registry_find(server_manager(server)->registry, UUID_T));
        virDomainFree(d);
}

static void test_reconnect_resync(void **state) {
        MachineSpec api_spec = { .machine_id = "api-vm", .cid = 500 };
        const char *err = NULL;
        Machine *api_machine;
        size_t before;

        /* With a state dir the registration is durable once its syncs completed. */
        int r = manager_register_machine(server_manager(server), &api_spec, &api_machine, &err);
        assert_true(r == 0 || r == 1);
        PUMP_UNTIL(api_machine->persisted);
        assert_int_equal(api_machine->source, MACHINE_SOURCE_API);
        before = count_machines(NULL);

        /* Nothing changed: the same machines, once each. */
        libvirt_watch_reconnect(server_libvirt(server));
        assert_true(libvirt_watch_connected(server_libvirt(server)));
        assert_int_equal(libvirt_watch_connections(server_libvirt(server)), 2);
        assert_int_equal(count_machines(NULL), before);
        assert_int_equal(count_machines("vm-b"), 1);

        /* Changes the watcher does not see as events (made without running the loop, then the connection
         * goes): the resync finds them. */
        virDomainPtr c = define("vm-c", UUID_C, vsock(44), NULL);
        assert_int_equal(virDomainCreate(c), 0);
        virDomainPtr b = virDomainLookupByUUIDString(conn, UUID_B);
        assert_non_null(b);
        assert_int_equal(virDomainUndefine(b), 0);
        virDomainFree(b);

        libvirt_watch_reconnect(server_libvirt(server));
        assert_int_equal(libvirt_watch_connections(server_libvirt(server)), 3);
        Machine *mc = registry_find(server_manager(server)->registry, UUID_C);
        assert_non_null(mc);
        assert_int_equal(mc->cid, 44); /* running: holds its CID */
        assert_int_equal(mc->state, MACHINE_REGISTERED);
        assert_null(registry_find(server_manager(server)->registry, "vm-b")); /* undefined while unseen */
        assert_ptr_equal(registry_find(server_manager(server)->registry, "api-vm"), api_machine); /* left alone */
        assert_int_equal(count_machines(NULL), before);                                           /* -vm-b +vm-c */
        pump(100);
        assert_int_equal(count_machines(UUID_C), 1); /* the DEFINED/STARTED events that arrive late change nothing */

        /* Metadata the registry refuses (an invalid ready condition) leaves the machine as it was: neither the
         * event nor a resync takes the domain for gone. */
        assert_int_equal(
                virDomainSetMetadata(
                        c,
                        VIR_DOMAIN_METADATA_ELEMENT,
                        "<machine ready='no-such-condition'/>",
                        TETHER_LIBVIRT_NS_PREFIX,
                        TETHER_LIBVIRT_NS,
                        VIR_DOMAIN_AFFECT_CURRENT),
                0);
        pump(100);
        assert_ptr_equal(registry_find(server_manager(server)->registry, UUID_C), mc);
        libvirt_watch_reconnect(server_libvirt(server));
        assert_ptr_equal(registry_find(server_manager(server)->registry, UUID_C), mc);
        assert_int_equal(mc->cid, 44);

        assert_int_equal(virDomainDestroy(c), 0);
        assert_int_equal(virDomainUndefine(c), 0);
        PUMP_UNTIL(!registry_find(server_manager(server)->registry, UUID_C));
        virDomainFree(c);
        manager_delete_machine(server_manager(server), api_machine);
}

static int setup(void **state) {
        ServerConfig c;

        assert_non_null(mkdtemp(tmpdir));
        snprintf(api_path, sizeof(api_path), "%s/api.sock", tmpdir);
        char state_dir[256];
        snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);

        log_setup(LOG_TARGET_JSON, getenv("TETHER_TEST_VERBOSE") ? LOG_DEBUG : LOG_WARNING, "test-node");
        server_config_init(&c);
        c.api_socket = api_path;
        c.vsock = false;
        c.state_dir = state_dir;
        c.node_id = "test-node";
        c.otlp = false;
        c.libvirt_uri = "test:///default";
        assert_int_equal(server_new(&c, &server), 0);
        assert_int_equal(server_start(server), 0);
        assert_non_null(server_libvirt(server));
        assert_true(libvirt_watch_connected(server_libvirt(server)));
        /* The default test driver's own domain ("test") has no vsock: not registered. */
        assert_int_equal(count_machines(NULL), 0);

        /* After the watcher: libvirt's event implementation is registered before any connection. */
        conn = virConnectOpen("test:///default");
        assert_non_null(conn);
        return 0;
}

static int teardown(void **state) {
        sd_event *e = sd_event_ref(server_event(server));

        virConnectClose(conn);
        server_free(server);
        /* Deferred free functions run; nothing of libvirt's stays on the loop. */
        for (int i = 0; i < 10; i++)
                (void) sd_event_run(e, 1000);
        assert_int_equal(libvirt_event_bridge_handles(), 0);
        assert_int_equal(libvirt_event_bridge_timeouts(), 0);
        sd_event_unref(e);
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_register_metadata_start_trace),
                cmocka_unit_test(test_destroy_before_ready_answers_waiters),
                cmocka_unit_test(test_transient_domain),
                cmocka_unit_test(test_reconnect_resync),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
