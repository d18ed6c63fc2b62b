/* SPDX-License-Identifier: MIT */
/* The HTTP client and the wait-ready command against a scripted server on a Unix socket in a thread: what
 * goes over the wire, how NDJSON is cut into lines, how statuses become exit codes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <curl/curl.h>
#include <jansson.h>

#include "args.h"
#include "commands.h"
#include "http.h"
#include "macro.h"

typedef struct FakeServer {
        char dir[64];
        char path[108];
        int listen_fd;
        pthread_t thread;

        /* The answer, written piece by piece (each piece its own write), then the connection is closed. */
        const char *const *pieces;
        size_t n_pieces;
        bool hang; /* never answer: read until the client goes away */

        char request[16384];
        size_t request_len;
} FakeServer;

static void read_request(FakeServer *s, int fd) {
        size_t want = SIZE_MAX;

        while (s->request_len < sizeof(s->request) - 1) {
                ssize_t n = read(fd, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len);
                if (n <= 0)
                        break;
                s->request_len += (size_t) n;
                s->request[s->request_len] = '\0';

                char *end = strstr(s->request, "\r\n\r\n");
                if (end && want == SIZE_MAX) {
                        const char *cl = strcasestr(s->request, "\r\nContent-Length:");
                        want = (size_t) (end + 4 - s->request) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
                }
                if (s->request_len >= want)
                        break;
        }
}

static void *serve(void *userdata) {
        FakeServer *s = userdata;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;

        read_request(s, fd);
        if (s->hang) {
                char buf[256];
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
        } else
                for (size_t i = 0; i < s->n_pieces; i++) {
                        if (write(fd, s->pieces[i], strlen(s->pieces[i])) < 0)
                                break;
                        usleep(2000); /* separate reads on the other side, most of the time */
                }
        close(fd);
        return NULL;
}

static void server_start(FakeServer *s, const char *const *pieces, size_t n_pieces, bool hang) {
        *s = (FakeServer) { .pieces = pieces, .n_pieces = n_pieces, .hang = hang };
        strcpy(s->dir, "/tmp/tether-cli-test.XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->path, sizeof(s->path), "%s/api.sock", s->dir);

        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, s->path);
        s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->listen_fd >= 0);
        assert_int_equal(bind(s->listen_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(s->listen_fd, 4), 0);
        assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(FakeServer *s) {
        /* Wakes an accept() that no client came to (a transfer cancelled before connecting). */
        shutdown(s->listen_fd, SHUT_RDWR);
        pthread_join(s->thread, NULL);
        close(s->listen_fd);
        unlink(s->path);
        rmdir(s->dir);
}

#define HEADER_200_STREAM "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"

typedef struct Lines {
        char *lines[16];
        size_t n;
        int fail_at; /* return an error for this line (1-based), 0: never */
} Lines;

static int collect(const char *line, size_t len, void *userdata) {
        Lines *l = userdata;

        assert_int_equal(strlen(line), len); /* NUL-terminated at len */
        if (l->n < ELEMENTSOF(l->lines))
                l->lines[l->n++] = strndup(line, len);
        if (l->fail_at > 0 && (size_t) l->fail_at == l->n)
                return -EPIPE;
        return 0;
}

static void lines_done(Lines *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->lines[i]);
}

static HttpClient *client_for(const FakeServer *s) {
        HttpClient *c = NULL;
        assert_int_equal(http_client_new(s->path, NULL, &c), 0);
        return c;
}

static void test_stream_lines_split_across_reads(void **state) {
        static const char *const pieces[] = {
                HEADER_200_STREAM "{\"line\":\"on",
                "e\"}\n{\"line\":\"two\"}\r\n",
                "\n{\"li",
                "ne\":\"three, no newline at the end\"}",
        };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        _cleanup_(http_response_done) HttpResponse resp = {};
        _cleanup_(lines_done) Lines l = {};

        assert_int_equal(http_stream_lines(c, "/v1/machines/vm-1/logs?follow=1", collect, &l, &resp), 0);
        server_stop(&s);

        assert_int_equal(resp.status, 200);
        assert_int_equal(l.n, 4);
        assert_string_equal(l.lines[0], "{\"line\":\"one\"}");
        assert_string_equal(l.lines[1], "{\"line\":\"two\"}"); /* CR dropped */
        assert_string_equal(l.lines[2], "");
        assert_string_equal(l.lines[3], "{\"line\":\"three, no newline at the end\"}");
        assert_non_null(strstr(s.request, "GET /v1/machines/vm-1/logs?follow=1 HTTP/1.1\r\n"));
}

static void test_stream_error_status_is_not_lines(void **state) {
        static const char *const pieces[] = {
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n",
                "{\"error\":\"unknown machine\"}\n",
        };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        _cleanup_(http_response_done) HttpResponse resp = {};
        _cleanup_(lines_done) Lines l = {};

        assert_int_equal(http_stream_lines(c, "/v1/machines/nope/logs", collect, &l, &resp), 0);
        server_stop(&s);

        assert_int_equal(resp.status, 404);
        assert_int_equal(l.n, 0);
        assert_string_equal(resp.body, "{\"error\":\"unknown machine\"}\n");
}

static void test_stream_handler_error_stops(void **state) {
        static const char *const pieces[] = { HEADER_200_STREAM "a\nb\nc\n" };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        _cleanup_(http_response_done) HttpResponse resp = {};
        _cleanup_(lines_done) Lines l = { .fail_at = 2 };

        assert_int_equal(http_stream_lines(c, "/v1/events", collect, &l, &resp), -EPIPE);
        server_stop(&s);
        assert_int_equal(l.n, 2);
}

static void test_request_sends_body(void **state) {
        static const char *const pieces[] = {
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
                "{\"machine_id\":\"vm-1\"}\n",
        };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        _cleanup_(http_response_done) HttpResponse resp = {};

        assert_int_equal(
                http_request(c, "POST", "/v1/machines", "{\"machine_id\":\"vm-1\",\"cid\":3}", 10000, &resp), 0);
        server_stop(&s);

        assert_int_equal(resp.status, 201);
        assert_string_equal(resp.body, "{\"machine_id\":\"vm-1\"}\n");
        assert_int_equal(resp.size, 22);
        assert_non_null(strstr(s.request, "POST /v1/machines HTTP/1.1\r\n"));
        assert_non_null(strcasestr(s.request, "\r\nContent-Type: application/json\r\n"));
        assert_non_null(strstr(s.request, "\r\n\r\n{\"machine_id\":\"vm-1\",\"cid\":3}"));
}

static void test_delete_and_dot_segments(void **state) {
        static const char *const pieces[] = { "HTTP/1.1 204 No Content\r\n\r\n" };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        _cleanup_(http_response_done) HttpResponse resp = {};

        /* ".." is a valid machine id: it must reach the server as such, not be resolved away. */
        assert_int_equal(http_request(c, "DELETE", "/v1/machines/..", NULL, 10000, &resp), 0);
        server_stop(&s);

        assert_int_equal(resp.status, 204);
        assert_string_equal(resp.body, "");
        assert_non_null(strstr(s.request, "DELETE /v1/machines/.. HTTP/1.1\r\n"));
}

static void test_connect_errors(void **state) {
        _cleanup_(http_client_freep) HttpClient *c = NULL;
        HttpResponse resp = {};

        assert_int_equal(http_client_new("/nonexistent/tether/api.sock", NULL, &c), 0);
        assert_int_equal(http_request(c, "GET", "/healthz", NULL, 10000, &resp), -ENOENT);
        assert_string_equal(
                http_client_error(c),
                "cannot connect to /nonexistent/tether/api.sock: No such file or directory "
                "(is tetherd running?)");
        assert_null(resp.body);

        /* A socket file nobody listens on. */
        char dir[] = "/tmp/tether-cli-test.XXXXXX";
        char path[128];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/dead.sock", dir);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(fd);

        _cleanup_(http_client_freep) HttpClient *dead = NULL;
        assert_int_equal(http_client_new(path, NULL, &dead), 0);
        assert_int_equal(http_request(dead, "GET", "/healthz", NULL, 10000, &resp), -ECONNREFUSED);
        assert_non_null(strstr(http_client_error(dead), "Connection refused (is tetherd running?)"));
        unlink(path);
        rmdir(dir);

        HttpClient *none = NULL;
        assert_int_equal(http_client_new(NULL, NULL, &none), -EINVAL);
        assert_int_equal(http_client_new("/a", "http://b", &none), -EINVAL);
        assert_int_equal(http_client_new(NULL, "", &none), -EINVAL);
        assert_int_equal(http_client_new("", NULL, &none), -EINVAL);
        assert_null(none);
}

static void test_timeout(void **state) {
        FakeServer s;
        server_start(&s, NULL, 0, true);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        HttpResponse resp = {};

        assert_int_equal(http_request(c, "GET", "/v1/machines", NULL, 100, &resp), -ETIMEDOUT);
        c = http_client_free(c); /* closes the connection: the server thread ends */
        server_stop(&s);
        assert_null(resp.body);
}

static void test_cancel(void **state) {
        static volatile sig_atomic_t flag = 1;
        static const char *const pieces[] = { HEADER_200_STREAM "a\n" };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        _cleanup_(lines_done) Lines l = {};
        HttpResponse resp = {};

        http_client_set_cancel_flag(c, &flag);
        assert_int_equal(http_stream_lines(c, "/v1/events?follow=1", collect, &l, &resp), -ECANCELED);
        c = http_client_free(c);
        server_stop(&s);
        assert_int_equal(l.n, 0);
}

/* wait-ready through cli_run(): the exit code follows the server's status, and the request carries the
 * timeout the user asked for. */
static int wait_ready_against(const char *response, char *ret_request, size_t request_size) {
        const char *pieces[] = { response };
        FakeServer s;
        server_start(&s, pieces, 1, false);

        char *argv[] = { (char *) "tether", (char *) "--socket",  s.path,         (char *) "wait-ready",
                         (char *) "vm-42",  (char *) "--timeout", (char *) "2.5", NULL };
        CliArgs args;
        assert_int_equal(cli_args_parse((int) ELEMENTSOF(argv) - 1, argv, NULL, &args), 0);

        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        CliContext ctx = { .http = c, .ascii = true, .width = 80 };
        int code = cli_run(&ctx, &args);

        cli_args_done(&args);
        server_stop(&s);
        snprintf(ret_request, request_size, "%s", s.request);
        return code;
}

#define JSON_RESPONSE(status, body) \
        "HTTP/1.1 " status "\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" body

static void test_wait_ready_exit_codes_end_to_end(void **state) {
        char request[16384];

        assert_int_equal(
                wait_ready_against(
                        JSON_RESPONSE(
                                "200 OK",
                                "{\"machine_id\":\"vm-42\",\"state\":\"ready\","
                                "\"ready\":{\"source\":\"sd_notify\","
                                "\"kernel_to_ready_ns\":1214000000}}"),
                        request,
                        sizeof(request)),
                0);
        assert_non_null(strstr(request, "GET /v1/machines/vm-42/ready?timeout=2.500 HTTP/1.1\r\n"));

        assert_int_equal(
                wait_ready_against(
                        JSON_RESPONSE(
                                "504 Gateway Timeout",
                                "{\"error\":\"timed out after 2.5 s waiting for readiness\","
                                "\"state\":\"registered\",\"agent_seen\":false}"),
                        request,
                        sizeof(request)),
                1);
        assert_int_equal(
                wait_ready_against(
                        JSON_RESPONSE(
                                "409 Conflict",
                                "{\"error\":\"exited before ready\","
                                "\"state\":\"exited\",\"reason\":\"exit 3\"}"),
                        request,
                        sizeof(request)),
                2);
        assert_int_equal(
                wait_ready_against(
                        JSON_RESPONSE("404 Not Found", "{\"error\":\"unknown machine\"}"), request, sizeof(request)),
                3);
        assert_int_equal(
                wait_ready_against(JSON_RESPONSE("500 Internal Server Error", "oops"), request, sizeof(request)), 3);
        /* 200 with a body that is not JSON: not a readiness we can trust. */
        assert_int_equal(wait_ready_against(JSON_RESPONSE("200 OK", "ready!"), request, sizeof(request)), 3);
}

static void test_wait_ready_cannot_connect(void **state) {
        char *argv[] = { (char *) "tether", (char *) "wait-ready", (char *) "vm-42", NULL };
        CliArgs args;
        _cleanup_(http_client_freep) HttpClient *c = NULL;

        assert_int_equal(cli_args_parse((int) ELEMENTSOF(argv) - 1, argv, "/nonexistent/api.sock", &args), 0);
        assert_int_equal(http_client_new(args.socket_path, NULL, &c), 0);
        CliContext ctx = { .http = c, .ascii = true, .width = 80 };
        assert_int_equal(cli_run(&ctx, &args), 3);
        cli_args_done(&args);
}

static void test_register_body(void **state) {
        static const char *const pieces[] = {
                JSON_RESPONSE("201 Created", "{\"machine_id\":\"vm-42\",\"state\":\"registered\"}"),
        };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);

        char *argv[] = { (char *) "tether",
                         (char *) "register",
                         (char *) "vm-42",
                         (char *) "--cid",
                         (char *) "42",
                         (char *) "--attr",
                         (char *) "zone=eu-1",
                         (char *) "--attr",
                         (char *) "note=a=b",
                         (char *) "--request-id",
                         (char *) "req-1",
                         (char *) "--service",
                         (char *) "svc",
                         (char *) "--ready",
                         (char *) "milestone:db.ready",
                         (char *) "--traceparent",
                         (char *) "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         NULL };
        CliArgs args;
        assert_int_equal(cli_args_parse((int) ELEMENTSOF(argv) - 1, argv, NULL, &args), 0);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        CliContext ctx = { .http = c, .ascii = true, .width = 80 };
        assert_int_equal(cli_run(&ctx, &args), 0);
        cli_args_done(&args);
        server_stop(&s);

        assert_non_null(strstr(s.request, "POST /v1/machines HTTP/1.1\r\n"));
        const char *body = strstr(s.request, "\r\n\r\n");
        assert_non_null(body);
        json_auto_t *j = json_loads(body + 4, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "machine_id")), "vm-42");
        assert_int_equal(json_integer_value(json_object_get(j, "cid")), 42);
        assert_null(json_object_get(j, "uds_path"));
        assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-1");
        assert_string_equal(json_string_value(json_object_get(j, "service_name")), "svc");
        assert_string_equal(json_string_value(json_object_get(j, "ready_condition")), "milestone:db.ready");
        assert_string_equal(
                json_string_value(json_object_get(j, "traceparent")),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        json_t *attrs = json_object_get(j, "attributes");
        assert_int_equal(json_object_size(attrs), 2);
        assert_string_equal(json_string_value(json_object_get(attrs, "zone")), "eu-1");
        assert_string_equal(json_string_value(json_object_get(attrs, "note")), "a=b");
}

static void test_register_conflict_fails(void **state) {
        static const char *const pieces[] = {
                JSON_RESPONSE("409 Conflict", "{\"error\":\"machine id vm-42 is already registered\"}"),
        };
        FakeServer s;
        server_start(&s, pieces, ELEMENTSOF(pieces), false);

        char *argv[] = { (char *) "tether", (char *) "register",    (char *) "vm-42",
                         (char *) "--uds",  (char *) "/run/v.sock", NULL };
        CliArgs args;
        assert_int_equal(cli_args_parse((int) ELEMENTSOF(argv) - 1, argv, NULL, &args), 0);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        CliContext ctx = { .http = c, .ascii = true, .width = 80 };
        assert_int_equal(cli_run(&ctx, &args), 1);
        cli_args_done(&args);
        server_stop(&s);

        const char *body = strstr(s.request, "\r\n\r\n");
        assert_non_null(body);
        json_auto_t *j = json_loads(body + 4, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(j, "uds_path")), "/run/v.sock");
        assert_null(json_object_get(j, "cid"));
        assert_null(json_object_get(j, "attributes"));
}

/* Runs tether with argv against a server answering pieces; returns the exit code, what went to stdout and the
 * request the server saw. */
static int run_captured(
        char **argv,
        int argc,
        const char *const *pieces,
        size_t n_pieces,
        char *ret_stdout,
        size_t stdout_size,
        char *ret_request,
        size_t request_size) {
        FakeServer s;
        server_start(&s, pieces, n_pieces, false);

        char out_path[] = "/tmp/tether-cli-out.XXXXXX";
        int out = mkostemp(out_path, O_CLOEXEC);
        assert_true(out >= 0);
        unlink(out_path);

        CliArgs args;
        assert_int_equal(cli_args_parse(argc, argv, s.path, &args), 0);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        CliContext ctx = { .http = c, .json = args.json, .width = 80 };

        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(out, STDOUT_FILENO) >= 0);
        int code = cli_run(&ctx, &args);
        fflush(stdout);
        assert_true(dup2(saved, STDOUT_FILENO) >= 0);
        close(saved);

        ssize_t n = pread(out, ret_stdout, stdout_size - 1, 0);
        assert_true(n >= 0);
        ret_stdout[n] = '\0';
        close(out);

        cli_args_done(&args);
        server_stop(&s);
        snprintf(ret_request, request_size, "%s", s.request);
        return code;
}

static void test_logs_end_to_end(void **state) {
        static const char *const pieces[] = {
                HEADER_200_STREAM "{\"seq\":1,\"stream\":\"stdout\",\"line\":\"first\"}\n",
                "{\"seq\":2,\"stream\":\"stderr\",\"line\":\"second\"}\n",
                "not json\n{\"dropped\":{\"records\":1,\"bytes\":5,\"reason\":\"evicted\"}}\n",
                "{\"seq\":4,\"stream\":\"kmsg\",\"line\":\"third\"}\n",
        };
        char *argv[] = { (char *) "tether",
                         (char *) "logs",
                         (char *) "vm-1",
                         (char *) "-f",
                         (char *) "--stream",
                         (char *) "stdout,stderr,kmsg",
                         NULL };
        char out[4096], request[16384];

        assert_int_equal(
                run_captured(
                        argv,
                        (int) ELEMENTSOF(argv) - 1,
                        pieces,
                        ELEMENTSOF(pieces),
                        out,
                        sizeof(out),
                        request,
                        sizeof(request)),
                0);
        assert_non_null(strstr(request, "GET /v1/machines/vm-1/logs?follow=1&stream=stdout,stderr,kmsg HTTP/1.1\r\n"));
        /* The line that is not JSON is reported on stderr and skipped. */
        assert_string_equal(out, "first\nstderr: second\n-- 1 records (5 bytes) dropped: evicted --\nkmsg: third\n");

        /* --json passes the records through untouched. */
        char *argv_json[] = { (char *) "tether", (char *) "--json", (char *) "logs", (char *) "vm-1", NULL };
        assert_int_equal(
                run_captured(
                        argv_json,
                        (int) ELEMENTSOF(argv_json) - 1,
                        pieces,
                        ELEMENTSOF(pieces),
                        out,
                        sizeof(out),
                        request,
                        sizeof(request)),
                0);
        assert_non_null(strstr(request, "GET /v1/machines/vm-1/logs HTTP/1.1\r\n"));
        assert_string_equal(
                out,
                "{\"seq\":1,\"stream\":\"stdout\",\"line\":\"first\"}\n"
                "{\"seq\":2,\"stream\":\"stderr\",\"line\":\"second\"}\n"
                "not json\n"
                "{\"dropped\":{\"records\":1,\"bytes\":5,\"reason\":\"evicted\"}}\n"
                "{\"seq\":4,\"stream\":\"kmsg\",\"line\":\"third\"}\n");
}

static void test_logs_unknown_machine(void **state) {
        static const char *const pieces[] = { JSON_RESPONSE("404 Not Found", "{\"error\":\"unknown machine\"}") };
        char *argv[] = { (char *) "tether", (char *) "logs", (char *) "vm-1", NULL };
        char out[4096], request[16384];

        /* The error body is not printed as log lines, and the command fails. */
        assert_int_equal(
                run_captured(
                        argv,
                        (int) ELEMENTSOF(argv) - 1,
                        pieces,
                        ELEMENTSOF(pieces),
                        out,
                        sizeof(out),
                        request,
                        sizeof(request)),
                1);
        assert_string_equal(out, "");
}

static void test_events_end_to_end(void **state) {
        static const char *const pieces[] = {
                HEADER_200_STREAM
                "{\"machine_id\":\"vm-1\",\"node_id\":\"n\",\"transition\":\"exited\","
                "\"time_unix_ns\":0,\"code\":3}\n",
        };
        char *argv[] = { (char *) "tether", (char *) "events", (char *) "--machine", (char *) "vm-1", NULL };
        char out[4096], request[16384];

        assert_int_equal(
                run_captured(
                        argv,
                        (int) ELEMENTSOF(argv) - 1,
                        pieces,
                        ELEMENTSOF(pieces),
                        out,
                        sizeof(out),
                        request,
                        sizeof(request)),
                0);
        assert_non_null(strstr(request, "GET /v1/events?machine_id=vm-1 HTTP/1.1\r\n"));
        assert_string_equal(out, "1970-01-01 00:00:00.000  vm-1          exited        code=3\n");
}

static int setup(void **state) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state) {
        curl_global_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stream_lines_split_across_reads),
                cmocka_unit_test(test_stream_error_status_is_not_lines),
                cmocka_unit_test(test_stream_handler_error_stops),
                cmocka_unit_test(test_request_sends_body),
                cmocka_unit_test(test_delete_and_dot_segments),
                cmocka_unit_test(test_connect_errors),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_wait_ready_exit_codes_end_to_end),
                cmocka_unit_test(test_wait_ready_cannot_connect),
                cmocka_unit_test(test_register_body),
                cmocka_unit_test(test_register_conflict_fails),
                cmocka_unit_test(test_logs_end_to_end),
                cmocka_unit_test(test_logs_unknown_machine),
                cmocka_unit_test(test_events_end_to_end),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
