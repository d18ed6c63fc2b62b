/* SPDX-License-Identifier: MIT */
/* The HTTP API through api.h only: api_new() with a manager (and its fake transport), a Unix socket, requests
 * written by hand over it while the test runs the loop. Routing (404, 405 with Allow, 400), the status a failed
 * listen becomes, and a ready long-poll parked until the machine's state decides it: ready, exited, deleted, or
 * its timeout. The logs' priority member and filter, stored and followed. */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "api.h"
#include "collector-test.h"
#include "macro.h"
#include "socket-util.h"
#include "time-util.h"

#define MS UINT64_C(1000000)

typedef struct World {
        TestManager t;
        char dir[64];
        char path[128]; /* the API's socket */
        sd_event *event;
        Api *api;
        Machine *vm1; /* registered by the setup, CID 42 */
} World;

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        ApiConfig limits = { .max_connections = 16, .request_timeout_ns = 10 * UINT64_C(1000000000) };
        MachineSpec spec = { .machine_id = "vm-1", .cid = 42 };
        const char *err;

        assert_non_null(w);
        test_manager_init(&w->t, TEST_NO_STORE);
        test_dir_make(w->dir, sizeof(w->dir), "api");
        snprintf(w->path, sizeof(w->path), "%s/api.sock", w->dir);
        assert_int_equal(sd_event_new(&w->event), 0);
        assert_int_equal(api_new(&w->t.manager, w->event, &limits, &w->api), 0);
        assert_int_equal(api_listen_unix(w->api, w->path), 0);
        assert_int_equal(manager_register_machine(&w->t.manager, &spec, &w->vm1, &err), 0);
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        api_free(w->api);
        sd_event_unref(w->event);
        test_manager_done(&w->t);
        test_dir_remove(w->dir);
        free(w);
        return 0;
}

typedef struct Response {
        int fd;
        char text[16384]; /* status line, headers and body */
        size_t len;
        bool done; /* the server closed the connection (Connection: close) */
        int status;
        const char *body;
} Response;

/* Sends a request; the answer is read by response_wait(). */
static void request_send(World *w, Response *r, const char *method, const char *target, const char *body) {
        char req[4096];
        int n;

        *r = (Response) {};
        if (body)
                n = snprintf(
                        req,
                        sizeof(req),
                        "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                        method,
                        target,
                        strlen(body),
                        body);
        else
                n = snprintf(
                        req,
                        sizeof(req),
                        "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                        method,
                        target);
        assert_true(n > 0 && (size_t) n < sizeof(req));
        r->fd = unix_stream_connect(w->path);
        assert_true(r->fd >= 0);
        assert_int_equal(write(r->fd, req, (size_t) n), n);
        assert_int_equal(fcntl(r->fd, F_SETFL, O_NONBLOCK), 0);
}

/* Runs the loop for up to usec, reading the answer; returns whether it is complete. */
static bool response_wait(World *w, Response *r, uint64_t usec) {
        uint64_t deadline = now_ns(CLOCK_MONOTONIC) / 1000 + usec;

        while (!r->done) {
                ssize_t k = read(r->fd, r->text + r->len, sizeof(r->text) - 1 - r->len);
                if (k > 0) {
                        r->len += (size_t) k;
                        r->text[r->len] = '\0';
                        continue;
                }
                if (k == 0) {
                        r->done = true;
                        break;
                }
                assert_int_equal(errno, EAGAIN);
                if (now_ns(CLOCK_MONOTONIC) / 1000 >= deadline)
                        return false;
                assert_true(sd_event_run(w->event, 1000) >= 0);
        }
        close(r->fd);
        assert_int_equal(sscanf(r->text, "HTTP/1.1 %d ", &r->status), 1);
        r->body = strstr(r->text, "\r\n\r\n");
        assert_non_null(r->body);
        r->body += 4;
        return true;
}

static void request(World *w, Response *r, const char *method, const char *target, const char *body) {
        request_send(w, r, method, target, body);
        assert_true(response_wait(w, r, 5 * USEC_PER_SEC));
}

static void test_routing(void **state) {
        static const struct {
                const char *method, *target, *body;
                int status;
                const char *has; /* in the body, or for 405 the Allow header's value */
        } cases[] = {
                { "GET", "/healthz", NULL, 200, "\"status\":\"ok\"" },
                { "GET", "/v1/machines", NULL, 200, "\"machine_id\":\"vm-1\"" },
                { "GET", "/v1/machines/vm-1", NULL, 200, "\"machine_id\":\"vm-1\"" },
                /* 404: no such endpoint, or no such machine */
                { "GET", "/nope", NULL, 404, "no such endpoint" },
                { "GET", "/v1/machinesx", NULL, 404, "no such endpoint" },
                { "GET", "/v1/machines/", NULL, 404, "no such endpoint" },
                { "GET", "/v1/machines/vm-1/nope", NULL, 404, "no such endpoint" },
                { "GET", "/v1/machines/vm-1/logs/more", NULL, 404, "no such endpoint" },
                { "DELETE", "/v1/machines/vm-1/nope", NULL, 404, "no such endpoint" },
                { "GET", "/v1/machines/vm-x", NULL, 404, "unknown machine vm-x" },
                { "DELETE", "/v1/machines/vm-x", NULL, 404, "unknown machine vm-x" },
                { "GET", "/v1/machines/vm-x/ready", NULL, 404, "unknown machine vm-x" },
                { "GET", "/v1/machines/vm-x/logs", NULL, 404, "unknown machine vm-x" },
                { "GET", "/v1/machines/vm-x/spans", NULL, 404, "unknown machine vm-x" },
                /* 405, with what is allowed */
                { "POST", "/healthz", NULL, 405, "GET" },
                { "DELETE", "/v1/stats", NULL, 405, "GET" },
                { "POST", "/v1/events", NULL, 405, "GET" },
                { "PUT", "/metrics", NULL, 405, "GET" },
                { "PUT", "/v1/machines", NULL, 405, "GET, POST" },
                { "POST", "/v1/machines/vm-1", NULL, 405, "GET, DELETE" },
                { "POST", "/v1/machines/vm-x", NULL, 405, "GET, DELETE" }, /* the method first */
                { "POST", "/v1/machines/vm-1/ready", NULL, 405, "GET" },
                { "DELETE", "/v1/machines/vm-1/logs", NULL, 405, "GET" },
                { "PUT", "/v1/machines/vm-x/spans", NULL, 405, "GET" },
                /* 400: what the request says is malformed */
                { "GET", "/v1/machines/a%00b", NULL, 400, "invalid machine id" }, /* not cut to "a" */
                { "GET", "/v1/machines/../ready", NULL, 400, "invalid machine id" },
                { "GET", "/v1/events?machine_id=a%00b", NULL, 400, "invalid machine_id" },
                { "GET", "/v1/machines/vm-1/ready?timeout=soon", NULL, 400, "timeout must be" },
                { "GET", "/v1/machines/vm-1/ready?timeout=3601", NULL, 400, "timeout must be" },
                { "GET", "/v1/machines/vm-1/ready?since=yesterday", NULL, 400, "since must be" },
                { "GET", "/v1/machines/vm-1/logs?since_seq=-1", NULL, 400, "since_seq" },
                { "GET", "/v1/machines/vm-1/logs?priority=loud", NULL, 400, "priority must be" },
                { "GET", "/v1/machines/vm-1/logs?priority=0..8", NULL, 400, "priority must be" },
                { "POST", "/v1/machines", "{", 400, "invalid JSON" },
                { "POST", "/v1/machines", "{\"machine_id\":\"vm-2\"}", 400, "exactly one of cid and uds_path" },
                /* 409: taken */
                { "POST",
                  "/v1/machines",
                  "{\"machine_id\":\"vm-1\",\"cid\":43}",
                  409,
                  "machine_id is already registered" },
                { "POST", "/v1/machines", "{\"machine_id\":\"vm-2\",\"cid\":42}", 409, "cid is already registered" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                World *w = *state;
                Response r;

                request(w, &r, cases[i].method, cases[i].target, cases[i].body);
                if (r.status != cases[i].status)
                        fail_msg("%s %s: %d, not %d", cases[i].method, cases[i].target, r.status, cases[i].status);
                if (cases[i].status == 405) {
                        char allow[64];
                        snprintf(allow, sizeof(allow), "\r\nAllow: %s\r\n", cases[i].has);
                        assert_non_null(strcasestr(r.text, allow));
                } else if (!strstr(r.body, cases[i].has))
                        fail_msg("%s %s: \"%s\" not in %s", cases[i].method, cases[i].target, cases[i].has, r.body);
        }
        /* None of that registered or deleted anything. */
        World *w = *state;
        assert_int_equal(w->t.registry->n_machines, 1);
        assert_int_equal(w->t.transport.listens + w->t.transport.unlistens + w->t.transport.disconnects, 0);
}

/* What the daemon's listen returned, as the client sees it: 400 for a path that can never work, 409 for one in use,
 * 500 otherwise; and --uds-root's refusal, 400. */
static void test_register_listen_failure(void **state) {
        static char *roots[] = { (char *) "/run/vms", NULL };
        static const struct {
                int listen_error;
                bool below_roots;
                int status;
                const char *has;
        } cases[] = {
                { -EEXIST, true, 400, "exists and is not a socket" },  { -ELOOP, true, 400, "symbolic link" },
                { -EADDRINUSE, true, 409, "another process listens" }, { -EACCES, true, 500, "permission denied" },
                { -EIO, true, 500, "failed to set up the machine" },   { 0, false, 400, "--uds-root" },
        };
        World *w = *state;

        w->t.manager.uds_roots = roots;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Response r;

                w->t.transport.listen_result = cases[i].listen_error;
                request(w,
                        &r,
                        "POST",
                        "/v1/machines",
                        cases[i].below_roots ? "{\"machine_id\":\"vm-2\",\"uds_path\":\"/run/vms/v.sock\"}" :
                                               "{\"machine_id\":\"vm-2\",\"uds_path\":\"/srv/v.sock\"}");
                assert_int_equal(r.status, cases[i].status);
                assert_non_null(strstr(r.body, cases[i].has));
                assert_null(registry_find(w->t.registry, "vm-2"));
        }

        /* And once it works: 201, the machine and its socket are there. */
        w->t.transport.listen_result = 0;
        Response r;
        request(w, &r, "POST", "/v1/machines", "{\"machine_id\":\"vm-2\",\"uds_path\":\"/run/vms/v.sock\"}");
        assert_int_equal(r.status, 201);
        assert_non_null(registry_find(w->t.registry, "vm-2"));
        assert_true(w->t.transport.listening);

        request(w, &r, "DELETE", "/v1/machines/vm-2", NULL);
        assert_int_equal(r.status, 204);
        assert_null(registry_find(w->t.registry, "vm-2"));
        assert_false(w->t.transport.listening);
}

/* What decides a parked ready long-poll. */
static void agent_ready(World *w, Session *s) {
        Bytes in = {};
        ready_frame(&in, 1, "notify", 1 * MS);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
}

static void agent_exits(World *w, Session *s) {
        Bytes in = {};
        exit_frame(&in, 1, 3, 0, 1 * MS);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
}

static void machine_deleted(World *w, Session *s) {
        session_end(s, CLOSE_DELETED);
        manager_delete_machine(&w->t.manager, w->vm1);
        w->vm1 = NULL;
}

/* The long-poll waits (the agent connected and is booting: no answer yet), then is answered the moment the state
 * decides it, not by its timeout (30 s) or the API's sweep (5 s). */
static void test_ready_long_poll(void **state) {
        static const struct {
                void (*decide)(World *w, Session *s);
                int status;
                const char *has;
        } cases[] = {
                { agent_ready, 200, "\"state\":\"ready\"" },
                { agent_exits, 409, "machine exited before ready" },
                { machine_deleted, 409, "machine was deleted" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                SessionContext ctx;
                World *w;
                Response r;

                /* A world each: one of them deletes the machine. */
                assert_int_equal(setup((void **) &w), 0);
                session_context_init(&ctx, w->t.registry, NULL, &w->t.stats);
                Session *s = test_connect(&ctx, w->vm1, "boot-1");
                request_send(w, &r, "GET", "/v1/machines/vm-1/ready?timeout=30", NULL);
                assert_false(response_wait(w, &r, 100 * USEC_PER_MSEC));
                assert_int_equal(r.len, 0);

                cases[i].decide(w, s);
                assert_true(response_wait(w, &r, 2 * USEC_PER_SEC));
                assert_int_equal(r.status, cases[i].status);
                assert_non_null(strstr(r.body, cases[i].has));
                assert_non_null(strstr(r.body, "\"answered_unix_ns\""));
                if (w->vm1)
                        session_end(s, CLOSE_EOF);
                session_free(s);
                assert_int_equal(teardown((void **) &w), 0);
        }
}

static void test_ready_long_poll_timeout(void **state) {
        World *w = *state;
        Response r;

        uint64_t start = now_ns(CLOCK_MONOTONIC);
        request_send(w, &r, "GET", "/v1/machines/vm-1/ready?timeout=0.2", NULL);
        assert_true(response_wait(w, &r, 5 * USEC_PER_SEC));
        assert_int_equal(r.status, 504);
        assert_non_null(strstr(r.body, "timed out after 0.2 s"));
        assert_non_null(strstr(r.body, "no agent has connected"));
        assert_true(now_ns(CLOCK_MONOTONIC) - start >= 200 * MS);
}

static size_t count_of(const char *haystack, const char *needle) {
        size_t n = 0;
        for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* The logs show a journal line's syslog priority ("priority", absent without one) and ?priority= selects as
 * journalctl -p does (a line without a priority is in no selection), also for a follower: a parked stream gets the
 * new lines of its selection, and only those. */
static void test_logs_priority(void **state) {
        static const struct {
                const char *text;
                unsigned priority; /* Log.priority: 1 + syslog's; 0: a stdout line */
        } lines[] = {
                { "emerg line\n", 1 }, { "err line\n", 4 },   { "warning line\n", 5 },
                { "plain line\n", 0 }, { "debug line\n", 8 },
        };
        World *w = *state;
        SessionContext ctx;
        Response r, follow;
        Session *s;
        Bytes in = {};
        Tether__Envelope *out[16];
        uint64_t seq = 0;

        session_context_init(&ctx, w->t.registry, NULL, &w->t.stats);
        assert_int_equal(session_new(&ctx, w->vm1, &s), 0);
        hello_journal_frame(&in, "boot-1", "guest", NULL);
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                seq++;
                if (lines[i].priority)
                        journal_frame(&in, seq, "a.service", lines[i].priority, "s=1", lines[i].text);
                else
                        log_frame(&in, seq, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, lines[i].text, seq * MS);
        }
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));

        request(w, &r, "GET", "/v1/machines/vm-1/logs", NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(count_of(r.body, "\"priority\":"), 4);
        assert_non_null(strstr(r.body, "\"line\":\"err line\",\"trace_id\""));
        assert_non_null(strstr(r.body, "\"priority\":3"));
        assert_non_null(strstr(r.body, "\"priority\":7"));
        const char *plain = strstr(r.body, "plain line");
        assert_non_null(plain);
        assert_null(memmem(plain, (size_t) (strchr(plain, '\n') - plain), "priority", 8));

        request(w, &r, "GET", "/v1/machines/vm-1/logs?priority=err", NULL);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, "emerg line"));
        assert_non_null(strstr(r.body, "err line"));
        assert_null(strstr(r.body, "warning line"));
        assert_null(strstr(r.body, "plain line"));
        assert_null(strstr(r.body, "debug line"));

        request(w, &r, "GET", "/v1/machines/vm-1/logs?priority=debug..4", NULL);
        assert_int_equal(r.status, 200);
        assert_null(strstr(r.body, "err line"));
        assert_non_null(strstr(r.body, "warning line"));
        assert_non_null(strstr(r.body, "debug line"));
        assert_null(strstr(r.body, "plain line"));

        /* A follower of err or worse: parked after the stored lines, woken by new ones, ended by the exit. */
        request_send(w, &follow, "GET", "/v1/machines/vm-1/logs?follow=1&priority=3", NULL);
        assert_false(response_wait(w, &follow, 100 * USEC_PER_MSEC));
        journal_frame(&in, ++seq, "a.service", 3, "s=2", "crit late\n");
        journal_frame(&in, ++seq, "a.service", 7, "s=3", "info late\n");
        log_frame(&in, seq + 1, TETHER__LOG_STREAM__LOG_STREAM_STDERR, "stderr late\n", (seq + 1) * MS);
        exit_frame(&in, seq + 2, 0, 0, (seq + 2) * MS);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        assert_true(response_wait(w, &follow, 2 * USEC_PER_SEC));
        assert_int_equal(follow.status, 200);
        assert_non_null(strstr(follow.body, "emerg line"));
        assert_non_null(strstr(follow.body, "err line"));
        assert_non_null(strstr(follow.body, "crit late"));
        assert_non_null(strstr(follow.body, "\"priority\":2"));
        assert_null(strstr(follow.body, "info late"));
        assert_null(strstr(follow.body, "stderr late"));
        assert_null(strstr(follow.body, "warning line"));

        session_end(s, CLOSE_EOF);
        session_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_register_listen_failure, setup, teardown),
                cmocka_unit_test(test_ready_long_poll),
                cmocka_unit_test_setup_teardown(test_ready_long_poll_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_logs_priority, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
