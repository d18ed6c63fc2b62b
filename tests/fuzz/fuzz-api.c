/* SPDX-License-Identifier: MIT */
/* HTTP API requests (method, path, query parameters, body) through the real thing: a Server with a state
 * directory in a scratch directory, its API listening on a Unix socket and served by libmicrohttpd on the
 * server's sd-event loop (the gate accepting, MHD parsing and %-decoding, dispatch(), every handler: registration,
 * deletion, machines, boots, logs and events as NDJSON streams, spans, ready long-polls, stats, metrics). Two
 * machines are registered and have booted ("guest" and "bystander", each with its own boot, log lines and
 * milestones). The requests go over real connections, one after the other; the loop runs until each is answered,
 * or has nothing left to do (a parked long-poll or follow stream, answered by api_shutdown() at the end).
 *
 * Checked on every answer: it is an HTTP response with a known status; JSON bodies (and every NDJSON line) parse,
 * metrics follow the text format; and a response about a machine is about that machine only: for
 * /v1/machines/{id}[/...] the id is decoded (%XX, %00 kept) as dispatch() sees it, an id machine_id_is_valid()
 * refuses gets 400 or 404 and no machine's data, and every "machine_id" in a response names the decoded id;
 * /v1/events?machine_id=X streams X's events only.
 *
 * Input: up to 4 requests separated by "\n%%\n", each "METHOD TARGET" on its first line and its body after it.
 * Bytes of TARGET an HTTP request line cannot carry (controls, space, DEL) are sent %-encoded. */

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "fuzz-checks.h"
#include "fuzz-util.h"
#include "fuzz.h"
#include "hexdecoct.h"
#include "jsonlog.h"
#include "macro.h"
#include "sample-envelopes.h"
#include "server.h"
#include "session.h"

#define NODE_ID "fuzz-node"
#define MAX_REQUESTS 4u
#define SEPARATOR "\n%%\n"
/* Loop iterations per request, and idle ones (nothing dispatched, nothing read) before it counts as parked. */
#define MAX_ITERATIONS 2000u
#define IDLE_ITERATIONS 3u

typedef struct Client {
        int fd;
        char *response;
        size_t len;
        bool eof;
        bool answered; /* the connection ended before the server was freed: the answer is whole */
        /* What was asked. */
        bool head;
        char *path;          /* decoded as dispatch() sees it */
        char *events_filter; /* ?machine_id= (NULL: none, or no value) */
        bool events_filtered;
} Client;

/* ---- the canned state ---- */

static uint8_t *guest_stream, *bystander_stream;
static size_t guest_stream_len, bystander_stream_len;

static void append(uint8_t **buf, size_t *len, const void *p, size_t n) {
        *buf = realloc(*buf, *len + n);
        FUZZ_ASSERT(*buf);
        memcpy(*buf + *len, p, n);
        *len += n;
}

static const Tether__Envelope__MsgCase records[] = {
        TETHER__ENVELOPE__MSG_MILESTONE,   TETHER__ENVELOPE__MSG_PHASE, TETHER__ENVELOPE__MSG_LOG,
        TETHER__ENVELOPE__MSG_LOG_DROPPED, TETHER__ENVELOPE__MSG_LOG,   TETHER__ENVELOPE__MSG_READY,
};

/* An agent's boot: Hello, a milestone, a phase, log lines, ready. */
static void make_stream(uint8_t **buf, size_t *len, const char *boot_id, const char *text) {
        SampleEnvelope s;
        uint8_t *frame;
        size_t n;

        FUZZ_ASSERT(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0) >= 0);
        s.hello.boot_id = (char *) boot_id;
        s.hello.hostname = (char *) boot_id;
        FUZZ_ASSERT(envelope_pack_frame(&s.envelope, &frame, &n) >= 0);
        append(buf, len, frame, n);
        free(frame);
        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                FUZZ_ASSERT(sample_envelope_init(&s, records[i], i + 1) >= 0);
                if (records[i] == TETHER__ENVELOPE__MSG_LOG)
                        s.log.data = (ProtobufCBinaryData) { .len = strlen(text), .data = (uint8_t *) text };
                if (records[i] == TETHER__ENVELOPE__MSG_LOG_DROPPED)
                        s.log_dropped.first_seq = s.log_dropped.last_seq = 0;
                FUZZ_ASSERT(envelope_pack_frame(&s.envelope, &frame, &n) >= 0);
                append(buf, len, frame, n);
                free(frame);
        }
}

static void boot_machine(Server *s, const char *id, uint32_t cid, const uint8_t *stream, size_t len) {
        Machine *m;
        Session *session;
        const char *err = NULL;

        FUZZ_ASSERT(
                manager_register_machine(
                        server_manager(s),
                        &(MachineSpec) { .machine_id = id, .cid = cid, .request_id = id },
                        &m,
                        &err) == 0);
        FUZZ_ASSERT(session_new(server_session_context(s), m, &session) >= 0);
        FUZZ_ASSERT(session_feed(session, stream, len) >= 0);
        session_flush_writes(session);
        FUZZ_ASSERT(m->state == MACHINE_READY && m->current && m->current->records == ELEMENTSOF(records));
        session_end(session, CLOSE_EOF);
        session_free(session);
}

/* ---- the request ---- */

/* %XX decoding without %00, as api.c's unescape callback does; plus: '+' is a space (query arguments). */
static char *decode(const char *s, size_t n, bool plus) {
        char *out = malloc(n + 1), *w = out;
        FUZZ_ASSERT(out);
        for (size_t i = 0; i < n;) {
                if (s[i] == '%' && i + 2 < n && unhexchar(s[i + 1]) >= 0 && unhexchar(s[i + 2]) >= 0) {
                        char c = (char) (unhexchar(s[i + 1]) << 4 | unhexchar(s[i + 2]));
                        if (c != '\0') {
                                *w++ = c;
                                i += 3;
                                continue;
                        }
                }
                *w++ = plus && s[i] == '+' ? ' ' : s[i];
                i++;
        }
        *w = '\0';
        return out;
}

/* The request as sent, and what the checks need to know of it. */
static char *make_request(Client *c, const char *p, size_t n) {
        const char *nl = memchr(p, '\n', n), *sp;
        const char *body = nl ? nl + 1 : p + n;
        size_t line_len = nl ? (size_t) (nl - p) : n, body_len = (size_t) (p + n - body);
        _cleanup_free_ char *target = NULL, *method = NULL;
        size_t tlen = 0;
        char *req = NULL;

        sp = memchr(p, ' ', line_len);
        if (!sp || sp == p)
                return NULL;
        method = strndup(p, (size_t) (sp - p));
        FUZZ_ASSERT(method);
        for (const char *m = method; *m; m++)
                if (*m <= ' ' || *m == 0x7f)
                        return NULL;
        c->head = strcmp(method, "HEAD") == 0;

        const char *t = sp + 1, *tend = p + line_len;
        target = malloc((size_t) (tend - t) * 3 + 2);
        FUZZ_ASSERT(target);
        for (; t < tend; t++) {
                unsigned char ch = (unsigned char) *t;
                if (ch <= ' ' || ch == 0x7f) {
                        static const char hex[] = "0123456789ABCDEF";
                        target[tlen++] = '%';
                        target[tlen++] = hex[ch >> 4];
                        target[tlen++] = hex[ch & 15];
                } else
                        target[tlen++] = (char) ch;
        }
        target[tlen] = '\0';
        if (tlen == 0)
                return NULL;

        /* What dispatch() and the handlers see: the path up to '?', decoded; the arguments. */
        const char *q = strchr(target, '?');
        c->path = decode(target, q ? (size_t) (q - target) : tlen, false);
        for (const char *a = q ? q + 1 : NULL; a && *a;) {
                const char *amp = strchr(a, '&'), *end = amp ? amp : a + strlen(a);
                const char *eq = memchr(a, '=', (size_t) (end - a));
                _cleanup_free_ char *key = decode(a, (size_t) ((eq ?: end) - a), true);
                /* The first one counts (MHD_lookup_connection_value()); without '=' it has no value, which the
                 * handlers take as no argument. */
                if (strcmp(key, "machine_id") == 0 && !c->events_filtered) {
                        c->events_filtered = true;
                        c->events_filter = eq ? decode(eq + 1, (size_t) (end - eq - 1), true) : NULL;
                }
                a = amp ? amp + 1 : NULL;
        }

        FUZZ_ASSERT(
                asprintf(
                        &req,
                        "%s %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
                        method,
                        target,
                        body_len) >= 0);
        size_t hlen = strlen(req);
        req = realloc(req, hlen + body_len + 1);
        FUZZ_ASSERT(req);
        memcpy(req + hlen, body, body_len);
        req[hlen + body_len] = '\0';
        c->len = hlen + body_len; /* until sent: the request's length */
        return req;
}

static void client_drain(Client *c) {
        char buf[16384];

        while (!c->eof) {
                ssize_t k = read(c->fd, buf, sizeof(buf));
                if (k < 0) {
                        FUZZ_ASSERT(errno == EAGAIN || errno == EINTR || errno == ECONNRESET);
                        if (errno == ECONNRESET)
                                c->eof = true;
                        return;
                }
                if (k == 0) {
                        c->eof = true;
                        return;
                }
                c->response = realloc(c->response, c->len + (size_t) k + 1);
                FUZZ_ASSERT(c->response);
                memcpy(c->response + c->len, buf, (size_t) k);
                c->len += (size_t) k;
                c->response[c->len] = '\0';
        }
}

/* Runs the loop until every client has its answer or nothing is left to do. */
static void run(sd_event *e, Client *clients, size_t n) {
        unsigned idle = 0;

        for (unsigned i = 0; i < MAX_ITERATIONS && idle < IDLE_ITERATIONS; i++) {
                int r = sd_event_run(e, 0);
                FUZZ_ASSERT(r >= 0);
                bool done = true, progress = r > 0;
                for (size_t j = 0; j < n; j++) {
                        size_t before = clients[j].len;
                        client_drain(&clients[j]);
                        progress = progress || clients[j].len != before;
                        done = done && clients[j].eof;
                }
                if (done)
                        return;
                idle = progress ? 0 : idle + 1;
        }
}

static bool send_request(const char *socket_path, Client *c, const char *req, size_t len) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        FUZZ_ASSERT(c->fd >= 0);
        strncpy(sa.sun_path, socket_path, sizeof(sa.sun_path) - 1);
        FUZZ_ASSERT(connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0);
        /* Well below the socket buffer: the request goes in one write, without waiting for the loop. */
        ssize_t k = write(c->fd, req, len);
        FUZZ_ASSERT(k == (ssize_t) len);
        return true;
}

/* ---- checking the answer ---- */

/* Every "machine_id" member in v names id. */
static void check_machine_ids(const json_t *v, const char *id) {
        const char *key;
        json_t *item;
        size_t i;

        if (json_is_object(v)) {
                json_object_foreach((json_t *) v, key, item) {
                        if (strcmp(key, "machine_id") == 0 && !json_is_null(item)) {
                                if (!json_is_string(item) || strcmp(json_string_value(item), id) != 0) {
                                        fprintf(stderr,
                                                "response names machine %s, not %s\n",
                                                json_string_value(item) ?: "(not a string)",
                                                id);
                                        abort();
                                }
                        } else
                                check_machine_ids(item, id);
                }
        } else if (json_is_array(v))
                json_array_foreach(v, i, item) check_machine_ids(item, id);
}

/* The body of a chunked response, decoded; *ret_complete: the last chunk arrived. */
static char *dechunk(const char *p, const char *end, size_t *ret_len, bool *ret_complete) {
        char *out = malloc((size_t) (end - p) + 1);
        size_t n = 0;

        FUZZ_ASSERT(out);
        *ret_complete = false;
        while (p < end) {
                char *e;
                unsigned long size = strtoul(p, &e, 16);
                const char *crlf = strstr(p, "\r\n");
                FUZZ_ASSERT(crlf && e > p && e <= crlf);
                p = crlf + 2;
                if (size == 0) {
                        *ret_complete = true;
                        break;
                }
                if ((size_t) (end - p) < size + 2)
                        break; /* cut off */
                memcpy(out + n, p, size);
                n += size;
                p += size;
                FUZZ_ASSERT(p[0] == '\r' && p[1] == '\n');
                p += 2;
        }
        out[n] = '\0';
        *ret_len = n;
        return out;
}

static const char *header(const char *headers, const char *name, char *buf, size_t size) {
        size_t n = strlen(name);
        for (const char *p = strstr(headers, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
                if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
                        const char *v = p + 3 + n, *e = strstr(v, "\r\n");
                        while (*v == ' ')
                                v++;
                        snprintf(buf, size, "%.*s", (int) (e - v), v);
                        return buf;
                }
        }
        return NULL;
}

static void check_response(const Client *c) {
        char ctype[128], te[64], clen[32];
        unsigned status;

        if (c->len == 0)
                return; /* MHD closed a request it did not take (nothing of ours ran) */
        FUZZ_ASSERT(c->len >= 12 && strncmp(c->response, "HTTP/1.1 ", 9) == 0);
        FUZZ_ASSERT(sscanf(c->response + 9, "%3u", &status) == 1);
        const char *head_end = strstr(c->response, "\r\n\r\n");
        FUZZ_ASSERT(head_end);
        _cleanup_free_ char *headers = strndup(c->response, (size_t) (head_end - c->response) + 2);
        FUZZ_ASSERT(headers);
        const char *body = head_end + 4, *end = c->response + c->len;
        bool json = header(headers, "Content-Type", ctype, sizeof(ctype)) && strcmp(ctype, "application/json") == 0;
        bool ndjson = header(headers, "Content-Type", ctype, sizeof(ctype)) &&
                strcmp(ctype, "application/x-ndjson") == 0;
        bool metrics = header(headers, "Content-Type", ctype, sizeof(ctype)) && strncmp(ctype, "text/plain", 10) == 0;

        /* Ours, or MHD's own refusals of what is not HTTP enough for it. No 500: nothing here runs out of memory. */
        static const unsigned known[] = { 200, 201, 204, 400, 404, 405, 409, 413, 414, 431, 501, 503, 504, 505 };
        bool ok = false;
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                ok = ok || known[i] == status;
        if (!ok) {
                fprintf(stderr, "unexpected status %u for %s\n", status, c->path);
                abort();
        }

        _cleanup_free_ char *text = NULL;
        size_t len;
        bool complete = true;
        if (header(headers, "Transfer-Encoding", te, sizeof(te)) && strcasecmp(te, "chunked") == 0)
                text = dechunk(body, end, &len, &complete);
        else {
                len = (size_t) (end - body);
                text = strndup(body, len);
                FUZZ_ASSERT(text);
                if (header(headers, "Content-Length", clen, sizeof(clen)) && !c->head && c->answered)
                        FUZZ_ASSERT(strtoull(clen, NULL, 10) == len);
        }
        if (c->head)
                return;

        /* Which machine the answer may be about. */
        const char *id = NULL;
        _cleanup_free_ char *id_buf = NULL;
        bool machine_path = strncmp(c->path, "/v1/machines/", 13) == 0;
        if (machine_path) {
                id_buf = strdup(c->path + 13);
                FUZZ_ASSERT(id_buf);
                char *slash = strchr(id_buf, '/');
                if (slash)
                        *slash = '\0';
                id = id_buf;
                if (!machine_id_is_valid(id)) {
                        /* Never a machine's data: the error alone. */
                        FUZZ_ASSERT(status == 400 || status == 404);
                        FUZZ_ASSERT(json);
                }
        } else if (strcmp(c->path, "/v1/events") == 0 && c->events_filter)
                id = c->events_filter;

        if (json) {
                json_t *o = fuzz_check_json_text(text, len);
                FUZZ_ASSERT(len > 0 && text[len - 1] == '\n');
                if (status >= 400)
                        FUZZ_ASSERT(json_is_string(json_object_get(o, "error")));
                if (machine_path && !machine_id_is_valid(id))
                        FUZZ_ASSERT(json_object_size(o) == 1); /* {"error": ...} and nothing about any machine */
                if (id)
                        check_machine_ids(o, id);
                json_decref(o);
        } else if (ndjson) {
                FUZZ_ASSERT(status == 200);
                for (const char *p = text, *tend = text + len; p < tend;) {
                        const char *nl = memchr(p, '\n', (size_t) (tend - p));
                        if (!nl) {
                                FUZZ_ASSERT(!complete); /* a whole stream ends with a whole line */
                                break;
                        }
                        json_t *o = fuzz_check_json_text(p, (size_t) (nl - p));
                        if (id)
                                check_machine_ids(o, id);
                        json_decref(o);
                        p = nl + 1;
                }
        } else if (metrics) {
                FUZZ_ASSERT(status == 200);
                for (const char *p = text, *tend = text + len; p < tend;) {
                        const char *nl = memchr(p, '\n', (size_t) (tend - p));
                        FUZZ_ASSERT(nl);
                        if (strncmp(p, "# HELP ", 7) != 0 && strncmp(p, "# TYPE ", 7) != 0)
                                check_sample_line(p, nl);
                        p = nl + 1;
                }
        } else
                /* Only MHD's own answers (HTML), and 204, have no type of ours. */
                FUZZ_ASSERT(
                        status == 204 || status == 400 || status == 413 || status == 414 || status == 431 ||
                        status == 501 || status == 505);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool set_up = false;
        _cleanup_free_ char *state = NULL, *socket_path = NULL, *uds_root = NULL, *input = NULL;
        Client clients[MAX_REQUESTS] = {};
        size_t n_clients = 0;
        ServerConfig config;
        Server *s;
        Api *api = NULL;

        if (!set_up) {
                log_setup(LOG_TARGET_JSON, LOG_CRIT, "fuzz");
                make_stream(&guest_stream, &guest_stream_len, "guest-boot", "guest says hello\n");
                make_stream(&bystander_stream, &bystander_stream_len, "bystander-boot", "bystander's secret\n");
                set_up = true;
        }
        const char *scratch = fuzz_scratch_dir();
        FUZZ_ASSERT(asprintf(&state, "%s/state", scratch) >= 0);
        FUZZ_ASSERT(asprintf(&socket_path, "%s/api.sock", scratch) >= 0);
        FUZZ_ASSERT(asprintf(&uds_root, "%s/uds", scratch) >= 0);
        const char *roots[] = { uds_root, NULL };

        server_config_init(&config);
        config.api_socket = NULL;
        config.vsock = false;
        config.state_dir = state;
        config.node_id = NODE_ID;
        config.sync = false;
        config.otlp = false;
        config.max_machines = 8;
        config.max_events = 256;
        config.uds_roots = roots;
        FUZZ_ASSERT(server_new(&config, &s) >= 0);
        boot_machine(s, "guest", 3, guest_stream, guest_stream_len);
        boot_machine(s, "bystander", 4, bystander_stream, bystander_stream_len);
        ApiConfig limits = { .max_connections = API_MAX_CONNECTIONS_DEFAULT,
                             .request_timeout_ns = API_REQUEST_TIMEOUT_NS_DEFAULT };
        FUZZ_ASSERT(api_new(server_manager(s), server_event(s), &limits, &api) >= 0);
        FUZZ_ASSERT(api_listen_unix(api, socket_path) >= 0);

        input = malloc(size + 1);
        FUZZ_ASSERT(input);
        memcpy(input, data, size);
        input[size] = '\0';
        for (const char *p = input, *end = input + size; p && p < end && n_clients < MAX_REQUESTS;) {
                const char *sep = memmem(p, (size_t) (end - p), SEPARATOR, strlen(SEPARATOR));
                size_t n = sep ? (size_t) (sep - p) : (size_t) (end - p);
                Client *c = &clients[n_clients];
                _cleanup_free_ char *req = make_request(c, p, n);
                p = sep ? sep + strlen(SEPARATOR) : NULL;
                if (!req) {
                        free(c->path);
                        free(c->events_filter);
                        *c = (Client) {};
                        continue;
                }
                size_t len = c->len;
                c->len = 0;
                send_request(socket_path, c, req, len);
                n_clients++;
                run(server_event(s), clients, n_clients);
        }

        /* Parked long-polls and follow streams are answered by the shutdown. */
        api_shutdown(api);
        run(server_event(s), clients, n_clients);
        for (size_t i = 0; i < n_clients; i++)
                clients[i].answered = clients[i].eof;
        api = api_free(api);
        s = server_free(s);
        for (size_t i = 0; i < n_clients; i++) {
                client_drain(&clients[i]);
                /* FUZZ_API_VERBOSE=1: what came back, to look at a corpus. */
                if (getenv("FUZZ_API_VERBOSE"))
                        fprintf(stderr,
                                "--- %s%s\n%.*s\n",
                                clients[i].path,
                                clients[i].answered ? "" : " (cut off at shutdown)",
                                (int) MIN(clients[i].len, (size_t) 2000),
                                clients[i].response ?: "");
                check_response(&clients[i]);
        }
        for (size_t i = 0; i < n_clients; i++) {
                safe_close(clients[i].fd);
                free(clients[i].response);
                free(clients[i].path);
                free(clients[i].events_filter);
        }
        return 0;
}
