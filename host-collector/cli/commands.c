/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "commands.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli-log.h"
#include "format.h"
#include "macro.h"
#include "str-util.h"
#include "time-util.h"
#include "top.h"
#include "waterfall.h"

#define REQUEST_TIMEOUT_MS UINT64_C(30000)

int wait_ready_exit_code(long http_status) {
        switch (http_status) {
        case 200:
                return WAIT_READY_EXIT_READY;
        case 504:
                return WAIT_READY_EXIT_TIMEOUT;
        case 409:
                return WAIT_READY_EXIT_FAILED;
        default:
                return WAIT_READY_EXIT_ERROR;
        }
}

uint64_t wait_ready_client_timeout_ms(uint64_t server_timeout_ms) {
        return server_timeout_ms + MAX(WAIT_READY_CLIENT_MARGIN_MIN_MS, server_timeout_ms / 10);
}

static int print_text(const char *s) {
        size_t n = strlen(s);

        if (fwrite(s, 1, n, stdout) != n || (n > 0 && s[n - 1] != '\n' && putchar('\n') == EOF))
                return -EIO;
        return 0;
}

static int finish_output(void) {
        if (fflush(stdout) != 0 || ferror(stdout))
                return log_error_errno(-EIO, "cannot write to standard output: %m");
        return 0;
}

/* One API call whose answer must have status expected (or also also_ok, if non-zero). On success the response
 * is returned; otherwise the failure is printed as "tether: <what>: <reason>" and -errno returned. */
static int api_call(
        const CliContext *ctx,
        const char *method,
        const char *path,
        const char *body,
        long expected,
        long also_ok,
        const char *what,
        HttpResponse *ret) {
        _cleanup_(http_response_done) HttpResponse resp = {};

        int r = http_request(ctx->http, method, path, body, REQUEST_TIMEOUT_MS, &resp);
        if (r < 0)
                return log_error_errno(r, "%s", http_client_error(ctx->http));

        if (resp.status != expected && (also_ok == 0 || resp.status != also_ok)) {
                json_auto_t *err = json_loads(resp.body, 0, NULL);
                _cleanup_free_ char *msg = api_error_message(resp.status, err, resp.body);
                log_error("%s: %s (HTTP %ld)", what, msg ?: "?", resp.status);
                return -EPROTO;
        }

        *ret = resp;
        resp = (HttpResponse) {};
        return 0;
}

/* Parses an API answer that must be JSON. */
static int parse_body(const HttpResponse *resp, const char *what, json_t **ret) {
        json_error_t error;
        json_t *j = json_loads(resp->body, 0, &error);

        if (!j)
                return log_error_errno(
                        -EBADMSG, "%s: tetherd sent invalid JSON (%s at line %d)", what, error.text, error.line);
        *ret = j;
        return 0;
}

static int cmd_ls(const CliContext *ctx) {
        _cleanup_(http_response_done) HttpResponse resp = {};
        json_auto_t *doc = NULL;
        _cleanup_free_ char *text = NULL;

        int r = api_call(ctx, "GET", "/v1/machines", NULL, 200, 0, "cannot list machines", &resp);
        if (r < 0)
                return r;
        if (ctx->json)
                return print_text(resp.body) < 0 ? log_error_errno(-EIO, "cannot write: %m") : finish_output();

        r = parse_body(&resp, "cannot list machines", &doc);
        if (r < 0)
                return r;
        r = format_machine_table(doc, ctx->ascii, &text);
        if (r == -EINVAL)
                return log_error_errno(r, "cannot list machines: tetherd's answer has no machines array");
        if (r < 0)
                return log_error_errno(r, "cannot list machines: %m");

        fputs(text, stdout);
        return finish_output();
}

static int cmd_get(const CliContext *ctx, const CliArgs *args) {
        _cleanup_(http_response_done) HttpResponse resp = {};
        json_auto_t *doc = NULL;
        _cleanup_free_ char *path = str_printf("/v1/machines/%s", args->machine_id);
        _cleanup_free_ char *what = str_printf("cannot get %s", args->machine_id);
        _cleanup_free_ char *text = NULL;
        if (!path || !what)
                return log_error_errno(-ENOMEM, "out of memory");

        int r = api_call(ctx, "GET", path, NULL, 200, 0, what, &resp);
        if (r < 0)
                return r;
        if (ctx->json) {
                print_text(resp.body);
                return finish_output();
        }

        r = parse_body(&resp, what, &doc);
        if (r < 0)
                return r;
        r = format_machine_details(doc, ctx->ascii, &text);
        if (r < 0)
                return log_error_errno(r, "%s: cannot show tetherd's answer: %m", what);

        fputs(text, stdout);
        return finish_output();
}

static int cmd_rm(const CliContext *ctx, const CliArgs *args) {
        _cleanup_(http_response_done) HttpResponse resp = {};
        _cleanup_free_ char *path = str_printf("/v1/machines/%s", args->machine_id);
        _cleanup_free_ char *what = str_printf("cannot remove %s", args->machine_id);
        if (!path || !what)
                return log_error_errno(-ENOMEM, "out of memory");

        int r = api_call(ctx, "DELETE", path, NULL, 204, 200, what, &resp);
        if (r < 0)
                return r;
        if (ctx->json && resp.size > 0)
                print_text(resp.body);
        return finish_output();
}

static int build_register_body(const CliArgs *args, char **ret) {
        json_auto_t *o = json_object();
        json_auto_t *attrs = json_object();
        if (!o || !attrs)
                return -ENOMEM;

        int r = json_object_set_new(o, "machine_id", json_string(args->machine_id));
        if (args->cid >= 0)
                r = r ?: json_object_set_new(o, "cid", json_integer(args->cid));
        if (args->uds_path)
                r = r ?: json_object_set_new(o, "uds_path", json_string(args->uds_path));
        if (args->traceparent)
                r = r ?: json_object_set_new(o, "traceparent", json_string(args->traceparent));
        if (args->request_id)
                r = r ?: json_object_set_new(o, "request_id", json_string(args->request_id));
        if (args->service_name)
                r = r ?: json_object_set_new(o, "service_name", json_string(args->service_name));
        if (args->ready_condition)
                r = r ?: json_object_set_new(o, "ready_condition", json_string(args->ready_condition));
        for (size_t i = 0; i < args->n_attributes; i++)
                r = r ?: json_object_set_new(attrs, args->attributes[i].key, json_string(args->attributes[i].value));
        if (args->n_attributes > 0)
                r = r ?: json_object_set(o, "attributes", attrs);
        /* jansson refuses strings that are not UTF-8: that, not memory, is the likely failure here. */
        if (r < 0)
                return -EINVAL;

        char *s = json_dumps(o, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int cmd_register(const CliContext *ctx, const CliArgs *args) {
        _cleanup_(http_response_done) HttpResponse resp = {};
        _cleanup_free_ char *body = NULL;
        _cleanup_free_ char *what = str_printf("cannot register %s", args->machine_id);
        if (!what)
                return log_error_errno(-ENOMEM, "out of memory");

        int r = build_register_body(args, &body);
        if (r == -EINVAL)
                return log_error_errno(r, "%s: arguments must be valid UTF-8", what);
        if (r < 0)
                return log_error_errno(r, "%s: %m", what);

        r = api_call(ctx, "POST", "/v1/machines", body, 201, 200, what, &resp);
        if (r < 0)
                return r;
        if (ctx->json) {
                print_text(resp.body);
                return finish_output();
        }

        if (args->cid >= 0)
                printf("registered %s (cid:%" PRId64 ")\n", args->machine_id, args->cid);
        else
                printf("registered %s (uds:%s)\n", args->machine_id, args->uds_path);
        return finish_output();
}

/* Returns an exit code of wait-ready, never -errno. */
static int cmd_wait_ready(const CliContext *ctx, const CliArgs *args) {
        _cleanup_(http_response_done) HttpResponse resp = {};
        json_auto_t *doc = NULL;
        _cleanup_free_ char *text = NULL;
        char since[32] = "";
        if (args->since_unix_ns > 0)
                snprintf(since, sizeof(since), "&since=%" PRIu64, args->since_unix_ns);
        _cleanup_free_ char *path = str_printf(
                "/v1/machines/%s/ready?timeout=%" PRIu64 ".%03" PRIu64 "%s",
                args->machine_id,
                args->timeout_ms / 1000,
                args->timeout_ms % 1000,
                since);
        if (!path) {
                log_error_errno(-ENOMEM, "out of memory");
                return WAIT_READY_EXIT_ERROR;
        }

        int r = http_request(ctx->http, "GET", path, NULL, wait_ready_client_timeout_ms(args->timeout_ms), &resp);
        if (r < 0) {
                log_error_errno(r, "%s", http_client_error(ctx->http));
                return WAIT_READY_EXIT_ERROR;
        }

        int code = wait_ready_exit_code(resp.status);
        doc = json_loads(resp.body, 0, NULL);

        if (ctx->json && doc) {
                print_text(resp.body);
                if (finish_output() < 0)
                        return WAIT_READY_EXIT_ERROR;
                return code;
        }

        if (code == WAIT_READY_EXIT_READY) {
                if (!doc) {
                        log_error_errno(-EBADMSG, "%s: tetherd answered ready with invalid JSON", args->machine_id);
                        return WAIT_READY_EXIT_ERROR;
                }
                r = format_ready(args->machine_id, doc, ctx->ascii, &text);
                if (r < 0) {
                        log_error_errno(r, "%m");
                        return WAIT_READY_EXIT_ERROR;
                }
                puts(text);
                return finish_output() < 0 ? WAIT_READY_EXIT_ERROR : code;
        }

        r = format_not_ready(args->machine_id, resp.status, doc, resp.body, ctx->ascii, &text);
        if (r < 0)
                log_error_errno(r, "%m");
        else
                log_error("%s", text);
        return code;
}

/* Streams whose partial lines are joined: stdout, stderr, console, kmsg. */
#define PRINTER_STREAMS 5u

typedef struct StreamPrinter {
        const CliContext *ctx;
        LogFormat log_format;
        bool events; /* event lines, not log records */
        unsigned malformed;
        char *partial[PRINTER_STREAMS]; /* a line's beginning, waiting for the rest (the record said "partial") */
        json_t *partial_record[PRINTER_STREAMS];
} StreamPrinter;

static int printer_stream_index(const char *stream) {
        static const char *const names[PRINTER_STREAMS] = { "stdout", "stderr", "console", "kmsg", "journal" };
        for (unsigned i = 0; stream && i < PRINTER_STREAMS; i++)
                if (strcmp(stream, names[i]) == 0)
                        return (int) i;
        return -1;
}

static int print_log_record(StreamPrinter *p, json_t *j) {
        _cleanup_free_ char *text = NULL;
        int r = format_log_record(j, &p->log_format, &text);
        if (r < 0)
                return r;
        return puts(text) == EOF ? -EIO : 0;
}

/* What is left of partial lines when the stream ends is printed as it is. */
static int printer_flush(StreamPrinter *p) {
        int ret = 0;
        for (unsigned i = 0; i < PRINTER_STREAMS; i++) {
                if (p->partial_record[i]) {
                        int r = json_object_set_new(p->partial_record[i], "line", json_string(p->partial[i])) < 0 ?
                                -ENOMEM :
                                print_log_record(p, p->partial_record[i]);
                        if (r < 0 && ret >= 0)
                                ret = r;
                }
                json_decref(p->partial_record[i]);
                p->partial_record[i] = NULL;
                free(p->partial[i]);
                p->partial[i] = NULL;
        }
        return ret;
}

/* A record marked partial is held and the next line of its stream appended to it: one line, as written. Bounded:
 * a "line" that never ends is printed in pieces of at most 64 KiB. */
static int printer_join_partial(StreamPrinter *p, json_t *j, bool *ret_held) {
        int i = printer_stream_index(json_string_value(json_object_get(j, "stream")));
        const char *line = json_string_value(json_object_get(j, "line"));

        *ret_held = false;
        if (i < 0 || !line)
                return 0;
        if (p->partial[i]) {
                char *joined = str_printf("%s%s", p->partial[i], line);
                if (!joined)
                        return -ENOMEM;
                free(p->partial[i]);
                p->partial[i] = joined;
        } else if (json_is_true(json_object_get(j, "partial"))) {
                if (!(p->partial[i] = strdup(line)))
                        return -ENOMEM;
                p->partial_record[i] = json_incref(j);
                *ret_held = true;
                return 0;
        } else
                return 0;

        if (json_is_true(json_object_get(j, "partial")) && strlen(p->partial[i]) < 64 * 1024) {
                *ret_held = true;
                return 0;
        }
        /* Complete: the first piece's record (its time, seq) with the whole line. */
        json_t *first = p->partial_record[i];
        p->partial_record[i] = NULL;
        int r = json_object_set_new(first, "line", json_string(p->partial[i])) < 0 ? -ENOMEM :
                                                                                     print_log_record(p, first);
        json_decref(first);
        free(p->partial[i]);
        p->partial[i] = NULL;
        *ret_held = true;
        return r;
}

static int print_stream_line(const char *line, size_t len, void *userdata) {
        StreamPrinter *p = userdata;
        json_auto_t *j = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (len == 0)
                return 0;

        if (p->ctx->json) {
                if (fwrite(line, 1, len, stdout) != len || putchar('\n') == EOF)
                        return -EIO;
                return 0;
        }

        j = json_loadb(line, len, 0, NULL);
        if (!j)
                r = -EBADMSG;
        else if (p->events)
                r = format_event_line(j, p->ctx->ascii, &text);
        else {
                bool held;
                r = printer_join_partial(p, j, &held);
                if (r < 0)
                        return r;
                if (held)
                        return 0;
                r = format_log_record(j, &p->log_format, &text);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* Tell once; a newer tetherd may send records this CLI does not know yet. */
                if (p->malformed++ == 0)
                        log_error(
                                "skipping a record from tetherd that is not understood: %.*s",
                                (int) MIN(len, (size_t) 200),
                                line);
                return 0;
        }

        if (puts(text) == EOF)
                return -EIO;
        return 0;
}

static int run_stream(const CliContext *ctx, const char *path, StreamPrinter *printer, const char *what) {
        _cleanup_(http_response_done) HttpResponse resp = {};

        /* Lines go out as they arrive, even into a pipe. */
        setvbuf(stdout, NULL, _IOLBF, 0);

        int r = http_stream_lines(ctx->http, path, print_stream_line, printer, &resp);
        int k = printer_flush(printer);
        if (k < 0 && (r >= 0 || r == -ECANCELED))
                r = k;
        if (r == -ECANCELED)
                return finish_output(); /* SIGINT ends a follow: not an error */
        if (r == -EIO && ferror(stdout))
                return log_error_errno(r, "cannot write to standard output: %m");
        if (r < 0)
                return log_error_errno(r, "%s: %s", what, http_client_error(ctx->http));

        if (resp.status < 200 || resp.status >= 300) {
                json_auto_t *err = json_loads(resp.body, 0, NULL);
                _cleanup_free_ char *msg = api_error_message(resp.status, err, resp.body);
                log_error("%s: %s (HTTP %ld)", what, msg ?: "?", resp.status);
                return -EPROTO;
        }
        return finish_output();
}

/* Appends "?name=value", or "&name=value" if path has a query already. value must be URL-safe (validated). */
static int append_query(char **path, const char *name, const char *value) {
        char *p = str_printf("%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', name, value);
        if (!p)
                return -ENOMEM;
        free(*path);
        *path = p;
        return 0;
}

static int cmd_logs(const CliContext *ctx, const CliArgs *args) {
        _cleanup_free_ char *what = str_printf("cannot get the logs of %s", args->machine_id);
        _cleanup_free_ char *path = str_printf("/v1/machines/%s/logs", args->machine_id);
        if (!what || !path || (args->follow && append_query(&path, "follow", "1") < 0) ||
            (args->streams && append_query(&path, "stream", args->streams) < 0) ||
            (args->priority && append_query(&path, "priority", args->priority) < 0))
                return log_error_errno(-ENOMEM, "out of memory");

        StreamPrinter printer = {
                .ctx = ctx,
                .log_format = {
                        /* One stream chosen: its lines need no label. */
                        .prefix_streams = !args->streams || strchr(args->streams, ','),
                        .sanitize = ctx->stdout_is_tty,
                        .ascii = ctx->ascii,
                },
        };
        return run_stream(ctx, path, &printer, what);
}

static int cmd_events(const CliContext *ctx, const CliArgs *args) {
        _cleanup_free_ char *path = strdup("/v1/events");
        if (!path || (args->follow && append_query(&path, "follow", "1") < 0) ||
            (args->machine_filter && append_query(&path, "machine_id", args->machine_filter) < 0))
                return log_error_errno(-ENOMEM, "out of memory");

        StreamPrinter printer = { .ctx = ctx, .events = true };
        return run_stream(ctx, path, &printer, "cannot get events");
}

static int cmd_trace(const CliContext *ctx, const CliArgs *args) {
        _cleanup_(http_response_done) HttpResponse spans_resp = {}, machine_resp = {};
        json_auto_t *spans = NULL, *machine = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ char *what = str_printf("cannot get the trace of %s", args->machine_id);
        _cleanup_free_ char *spans_path = str_printf("/v1/machines/%s/spans", args->machine_id);
        _cleanup_free_ char *machine_path = str_printf("/v1/machines/%s", args->machine_id);
        if (!what || !spans_path || !machine_path)
                return log_error_errno(-ENOMEM, "out of memory");

        int r = api_call(ctx, "GET", spans_path, NULL, 200, 0, what, &spans_resp);
        if (r < 0)
                return r;
        if (ctx->json) {
                print_text(spans_resp.body);
                return finish_output();
        }
        r = parse_body(&spans_resp, what, &spans);
        if (r < 0)
                return r;

        /* The header's boot id and clock bound live on the machine; without them the waterfall still works. */
        WaterfallOptions o = {
                .width = ctx->width, .ascii = ctx->ascii, .machine_id = args->machine_id, .clock_error_ns = -1
        };
        if (http_request(ctx->http, "GET", machine_path, NULL, REQUEST_TIMEOUT_MS, &machine_resp) >= 0 &&
            machine_resp.status == 200 && (machine = json_loads(machine_resp.body, 0, NULL))) {
                const json_t *boot = json_object_get(machine, "boot");
                const json_t *boot_id = json_object_get(boot, "boot_id");
                const json_t *clock = json_object_get(boot, "clock_error_ns");

                if (json_is_string(boot_id))
                        o.boot_id = json_string_value(boot_id);
                if (json_is_integer(clock) && json_integer_value(clock) >= 0)
                        o.clock_error_ns = json_integer_value(clock);
        }

        r = waterfall_render(spans, &o, &text);
        if (r == -EINVAL)
                return log_error_errno(r, "%s: tetherd's answer is not a spans document", what);
        if (r < 0)
                return log_error_errno(r, "%s: %m", what);

        fputs(text, stdout);
        return finish_output();
}

/* Sleeps ms, waking early on SIGINT. Returns false when interrupted. */
static bool sleep_interruptible(const CliContext *ctx, uint64_t ms) {
        while (ms > 0 && !*ctx->interrupted) {
                uint64_t step = MIN(ms, (uint64_t) 100);
                struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) (step * NSEC_PER_MSEC) };
                (void) nanosleep(&ts, NULL);
                ms -= step;
        }
        return !*ctx->interrupted;
}

static int fetch_machines(const CliContext *ctx, json_t **ret, uint64_t *ret_mono_ns) {
        _cleanup_(http_response_done) HttpResponse resp = {};

        int r = api_call(ctx, "GET", "/v1/machines", NULL, 200, 0, "cannot list machines", &resp);
        if (r < 0)
                return r;
        *ret_mono_ns = now_ns(CLOCK_MONOTONIC);
        return parse_body(&resp, "cannot list machines", ret);
}

/* On a terminal (and not --json): a screen redrawn every interval until SIGINT. Otherwise one snapshot, its rates
 * over one interval (two requests). */
static int cmd_top(const CliContext *ctx, const CliArgs *args) {
        bool live = ctx->stdout_is_tty && !ctx->json && args->interval_ms > 0;
        json_auto_t *prev = NULL;
        uint64_t prev_mono = 0;
        int r;

        if (!live && args->interval_ms > 0) {
                r = fetch_machines(ctx, &prev, &prev_mono);
                if (r < 0)
                        return r;
                if (!sleep_interruptible(ctx, args->interval_ms))
                        return 0;
        }
        for (;;) {
                json_auto_t *doc = NULL;
                _cleanup_free_ char *text = NULL;
                uint64_t mono;

                r = fetch_machines(ctx, &doc, &mono);
                if (r < 0)
                        return r;
                uint64_t elapsed = prev ? mono - prev_mono : 0, now = now_ns(CLOCK_REALTIME);
                if (ctx->json) {
                        json_auto_t *o = NULL;
                        r = top_json(doc, prev, elapsed, now, &o);
                        if (r >= 0 && !(text = json_dumps(o, JSON_COMPACT)))
                                r = -ENOMEM;
                } else
                        /* The screen keeps a line for the summary, the header and the cursor. */
                        r = top_format(
                                doc,
                                prev,
                                elapsed,
                                now,
                                ctx->width,
                                live && ctx->height > 3 ? ctx->height - 3 : 0,
                                ctx->ascii,
                                &text);
                if (r == -EINVAL)
                        return log_error_errno(r, "cannot show machines: tetherd's answer has no machines array");
                if (r < 0)
                        return log_error_errno(r, "cannot show machines: %m");
                if (live)
                        fputs("\x1b[H\x1b[J", stdout); /* home, clear: redrawn in place */
                if (print_text(text) < 0 || fflush(stdout) != 0)
                        return log_error_errno(-EIO, "cannot write to standard output: %m");
                if (!live)
                        return finish_output();

                json_decref(prev);
                prev = TAKE_PTR(doc);
                prev_mono = mono;
                if (!sleep_interruptible(ctx, args->interval_ms))
                        return 0;
        }
}

int cli_run(const CliContext *ctx, const CliArgs *args) {
        int r;

        switch (args->command) {
        case CLI_COMMAND_WAIT_READY:
                return cmd_wait_ready(ctx, args);
        case CLI_COMMAND_LS:
                r = cmd_ls(ctx);
                break;
        case CLI_COMMAND_REGISTER:
                r = cmd_register(ctx, args);
                break;
        case CLI_COMMAND_GET:
                r = cmd_get(ctx, args);
                break;
        case CLI_COMMAND_RM:
                r = cmd_rm(ctx, args);
                break;
        case CLI_COMMAND_LOGS:
                r = cmd_logs(ctx, args);
                break;
        case CLI_COMMAND_EVENTS:
                r = cmd_events(ctx, args);
                break;
        case CLI_COMMAND_TRACE:
                r = cmd_trace(ctx, args);
                break;
        case CLI_COMMAND_TOP:
                r = cmd_top(ctx, args);
                break;
        default:
                r = log_error_errno(-EINVAL, "nothing to run");
        }
        return r < 0 ? 1 : 0;
}
