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

#define JSON_RESPONSE(status, body) \
        "HTTP/1.1 " status "\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" body

static size_t count_pieces(const char *const *pieces, size_t max) {
        size_t n = 0;
        while (n < max && pieces[n])
                n++;
        return n;
}

/* ---- the client: one request against a server answering with pieces ---- */

typedef struct Exchange {
        const char *pieces[5]; /* NULL-terminated */
        const char *method;    /* NULL: http_stream_lines(), a GET */
        const char *path, *body;
        int fail_at; /* the line handler fails at this line (1-based) */
        int result;
        long status;          /* 0: not checked (a transfer the handler aborted) */
        const char *response; /* resp.body (NULL: not checked: a 2xx stream's body goes to the handler) */
        size_t n_lines;       /* handed to the handler */
        const char *lines[4];
        const char *request_has[3]; /* in the request as sent */
        const char *request_has_ci; /* the same, case-insensitively (a header) */
} Exchange;

static const Exchange exchanges[] = {
        /* Lines however the reads cut them: CR dropped, an empty line kept, the last one without its newline. */
        {
                .pieces = { HEADER_200_STREAM "{\"line\":\"on",
                            "e\"}\n{\"line\":\"two\"}\r\n",
                            "\n{\"li",
                            "ne\":\"three, no newline at the end\"}" },
                .path = "/v1/machines/vm-1/logs?follow=1",
                .status = 200,
                .n_lines = 4,
                .lines = { "{\"line\":\"one\"}",
                           "{\"line\":\"two\"}",
                           "",
                           "{\"line\":\"three, no newline at the end\"}" },
                .request_has = { "GET /v1/machines/vm-1/logs?follow=1 HTTP/1.1\r\n" },
        },
        /* An error status: its body is the response, not lines. */
        {
                .pieces = { "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n",
                            "{\"error\":\"unknown machine\"}\n" },
                .path = "/v1/machines/nope/logs",
                .status = 404,
                .response = "{\"error\":\"unknown machine\"}\n",
        },
        /* The handler's error stops the stream and is what the call returns. */
        {
                .pieces = { HEADER_200_STREAM "a\nb\nc\n" },
                .path = "/v1/events",
                .fail_at = 2,
                .result = -EPIPE,
                .n_lines = 2,
                .lines = { "a", "b" },
        },
        /* A request's body goes with its Content-Type. */
        {
                .pieces = { "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
                            "{\"machine_id\":\"vm-1\"}\n" },
                .method = "POST",
                .path = "/v1/machines",
                .body = "{\"machine_id\":\"vm-1\",\"cid\":3}",
                .status = 201,
                .response = "{\"machine_id\":\"vm-1\"}\n",
                .request_has = { "POST /v1/machines HTTP/1.1\r\n", "\r\n\r\n{\"machine_id\":\"vm-1\",\"cid\":3}" },
                .request_has_ci = "\r\nContent-Type: application/json\r\n",
        },
        /* ".." reaches the server as written (which judges the id), not resolved away. */
        {
                .pieces = { "HTTP/1.1 204 No Content\r\n\r\n" },
                .method = "DELETE",
                .path = "/v1/machines/..",
                .status = 204,
                .response = "",
                .request_has = { "DELETE /v1/machines/.. HTTP/1.1\r\n" },
        },
};

static void test_exchanges(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(exchanges); i++) {
                const Exchange *x = &exchanges[i];
                FakeServer s;
                int r;

                server_start(&s, x->pieces, count_pieces(x->pieces, ELEMENTSOF(x->pieces)), false);
                _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
                _cleanup_(http_response_done) HttpResponse resp = {};
                _cleanup_(lines_done) Lines l = { .fail_at = x->fail_at };
                if (x->method)
                        r = http_request(c, x->method, x->path, x->body, 10000, &resp);
                else
                        r = http_stream_lines(c, x->path, collect, &l, &resp);
                server_stop(&s);

                assert_int_equal(r, x->result);
                if (x->status)
                        assert_int_equal(resp.status, x->status);
                if (x->response) {
                        assert_string_equal(resp.body, x->response);
                        assert_int_equal(resp.size, strlen(x->response));
                }
                assert_int_equal(l.n, x->n_lines);
                for (size_t k = 0; k < x->n_lines; k++)
                        assert_string_equal(l.lines[k], x->lines[k]);
                for (size_t k = 0; k < ELEMENTSOF(x->request_has) && x->request_has[k]; k++)
                        assert_non_null(strstr(s.request, x->request_has[k]));
                if (x->request_has_ci)
                        assert_non_null(strcasestr(s.request, x->request_has_ci));
        }
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

/* ---- commands through cli_run(), against a server answering with pieces ---- */

typedef struct CliCase {
        const char *argv[20]; /* NULL-terminated; "@socket" stands for the server's socket */
        const char *pieces[5];
        bool ascii;
        int code;                 /* cli_run()'s exit code */
        const char *request_has;  /* in the request as sent (NULL: not checked) */
        const char *request_body; /* the request's body is this JSON (NULL: not checked) */
        const char *out;          /* all of stdout (NULL: not checked) */
} CliCase;

static void run_cli(const CliCase *k) {
        char *argv[ELEMENTSOF(k->argv)];
        int argc = 0;
        FakeServer s;

        server_start(&s, k->pieces, count_pieces(k->pieces, ELEMENTSOF(k->pieces)), false);
        for (; k->argv[argc]; argc++)
                argv[argc] = strcmp(k->argv[argc], "@socket") == 0 ? s.path : (char *) k->argv[argc];
        argv[argc] = NULL;

        char out_path[] = "/tmp/tether-cli-out.XXXXXX";
        int out = mkostemp(out_path, O_CLOEXEC);
        assert_true(out >= 0);
        unlink(out_path);

        CliArgs args;
        assert_int_equal(cli_args_parse(argc, argv, s.path, &args), 0);
        _cleanup_(http_client_freep) HttpClient *c = client_for(&s);
        CliContext ctx = { .http = c, .json = args.json, .ascii = k->ascii, .width = 80 };

        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(out, STDOUT_FILENO) >= 0);
        int code = cli_run(&ctx, &args);
        fflush(stdout);
        assert_true(dup2(saved, STDOUT_FILENO) >= 0);
        close(saved);

        char stdout_text[4096];
        ssize_t n = pread(out, stdout_text, sizeof(stdout_text) - 1, 0);
        assert_true(n >= 0);
        stdout_text[n] = '\0';
        close(out);
        cli_args_done(&args);
        server_stop(&s);

        assert_int_equal(code, k->code);
        if (k->request_has)
                assert_non_null(strstr(s.request, k->request_has));
        if (k->request_body) {
                const char *body = strstr(s.request, "\r\n\r\n");
                assert_non_null(body);
                json_auto_t *got = json_loads(body + 4, 0, NULL);
                json_auto_t *want = json_loads(k->request_body, 0, NULL);
                assert_non_null(got);
                assert_non_null(want);
                assert_true(json_equal(got, want));
        }
        if (k->out)
                assert_string_equal(stdout_text, k->out);
}

/* wait-ready: the exit code follows the server's status, and the request carries the timeout the user asked
 * for. */
static void test_wait_ready_exit_codes_end_to_end(void **state) {
#define WAIT_READY(response, exit_code)                                                                 \
        {                                                                                               \
                .argv = { "tether", "--socket", "@socket", "wait-ready", "vm-42", "--timeout", "2.5" }, \
                .pieces = { response }, .ascii = true, .code = exit_code,                               \
                .request_has = "GET /v1/machines/vm-42/ready?timeout=2.500 HTTP/1.1\r\n"                \
        }
        static const CliCase cases[] = {
                WAIT_READY(
                        JSON_RESPONSE(
                                "200 OK",
                                "{\"machine_id\":\"vm-42\",\"state\":\"ready\","
                                "\"ready\":{\"source\":\"sd_notify\",\"kernel_to_ready_ns\":1214000000}}"),
                        0),
                WAIT_READY(
                        JSON_RESPONSE(
                                "504 Gateway Timeout",
                                "{\"error\":\"timed out after 2.5 s waiting for readiness\","
                                "\"state\":\"registered\",\"agent_seen\":false}"),
                        1),
                WAIT_READY(
                        JSON_RESPONSE(
                                "409 Conflict",
                                "{\"error\":\"exited before ready\",\"state\":\"exited\",\"reason\":\"exit 3\"}"),
                        2),
                WAIT_READY(JSON_RESPONSE("404 Not Found", "{\"error\":\"unknown machine\"}"), 3),
                WAIT_READY(JSON_RESPONSE("500 Internal Server Error", "oops"), 3),
                /* 200 with a body that is not JSON: not a readiness we can trust. */
                WAIT_READY(JSON_RESPONSE("200 OK", "ready!"), 3),
        };
#undef WAIT_READY

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_cli(&cases[i]);
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

/* register: the body it sends, and a refusal fails the command. */
static void test_register_end_to_end(void **state) {
        static const CliCase cases[] = {
                {
                        .argv = { "tether",
                                  "register",
                                  "vm-42",
                                  "--cid",
                                  "42",
                                  "--attr",
                                  "zone=eu-1",
                                  "--attr",
                                  "note=a=b",
                                  "--request-id",
                                  "req-1",
                                  "--service",
                                  "svc",
                                  "--ready",
                                  "milestone:db.ready",
                                  "--traceparent",
                                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
                        .pieces = { JSON_RESPONSE(
                                "201 Created", "{\"machine_id\":\"vm-42\",\"state\":\"registered\"}") },
                        .ascii = true,
                        .code = 0,
                        .request_has = "POST /v1/machines HTTP/1.1\r\n",
                        .request_body = "{\"machine_id\":\"vm-42\",\"cid\":42,\"request_id\":\"req-1\","
                                        "\"service_name\":\"svc\",\"ready_condition\":\"milestone:db.ready\","
                                        "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\","
                                        "\"attributes\":{\"zone\":\"eu-1\",\"note\":\"a=b\"}}",
                },
                {
                        .argv = { "tether", "register", "vm-42", "--uds", "/run/v.sock" },
                        .pieces = { JSON_RESPONSE(
                                "409 Conflict", "{\"error\":\"machine id vm-42 is already registered\"}") },
                        .ascii = true,
                        .code = 1,
                        .request_has = "POST /v1/machines HTTP/1.1\r\n",
                        .request_body = "{\"machine_id\":\"vm-42\",\"uds_path\":\"/run/v.sock\"}",
                },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_cli(&cases[i]);
}

/* logs and events: the request, and what reaches stdout. */
static void test_logs_and_events_end_to_end(void **state) {
#define LOG_PIECES                                                                                      \
        {                                                                                               \
                HEADER_200_STREAM "{\"seq\":1,\"stream\":\"stdout\",\"line\":\"first\"}\n",             \
                        "{\"seq\":2,\"stream\":\"stderr\",\"line\":\"second\"}\n",                      \
                        "not json\n{\"dropped\":{\"records\":1,\"bytes\":5,\"reason\":\"evicted\"}}\n", \
                        "{\"seq\":4,\"stream\":\"kmsg\",\"line\":\"third\"}\n"                          \
        }
        static const CliCase cases[] = {
                /* The line that is not JSON is reported on stderr and skipped. */
                {
                        .argv = { "tether", "logs", "vm-1", "-f", "--stream", "stdout,stderr,kmsg" },
                        .pieces = LOG_PIECES,
                        .request_has = "GET /v1/machines/vm-1/logs?follow=1&stream=stdout,stderr,kmsg HTTP/1.1\r\n",
                        .out = "first\nstderr: second\n-- 1 records (5 bytes) dropped: evicted --\nkmsg: third\n",
                },
                /* --json passes the records through untouched. */
                {
                        .argv = { "tether", "--json", "logs", "vm-1" },
                        .pieces = LOG_PIECES,
                        .request_has = "GET /v1/machines/vm-1/logs HTTP/1.1\r\n",
                        .out = "{\"seq\":1,\"stream\":\"stdout\",\"line\":\"first\"}\n"
                               "{\"seq\":2,\"stream\":\"stderr\",\"line\":\"second\"}\n"
                               "not json\n"
                               "{\"dropped\":{\"records\":1,\"bytes\":5,\"reason\":\"evicted\"}}\n"
                               "{\"seq\":4,\"stream\":\"kmsg\",\"line\":\"third\"}\n",
                },
                /* The error body is not printed as log lines, and the command fails. */
                {
                        .argv = { "tether", "logs", "vm-1" },
                        .pieces = { JSON_RESPONSE("404 Not Found", "{\"error\":\"unknown machine\"}") },
                        .code = 1,
                        .out = "",
                },
                {
                        .argv = { "tether", "events", "--machine", "vm-1" },
                        .pieces = { HEADER_200_STREAM "{\"machine_id\":\"vm-1\",\"node_id\":\"n\","
                                                      "\"transition\":\"exited\",\"time_unix_ns\":0,\"code\":3}\n" },
                        .request_has = "GET /v1/events?machine_id=vm-1 HTTP/1.1\r\n",
                        .out = "1970-01-01 00:00:00.000  vm-1          exited        code=3\n",
                },
        };
#undef LOG_PIECES

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_cli(&cases[i]);
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
                cmocka_unit_test(test_exchanges),
                cmocka_unit_test(test_connect_errors),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_wait_ready_exit_codes_end_to_end),
                cmocka_unit_test(test_wait_ready_cannot_connect),
                cmocka_unit_test(test_register_end_to_end),
                cmocka_unit_test(test_logs_and_events_end_to_end),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
