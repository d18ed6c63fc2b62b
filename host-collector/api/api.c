/* SPDX-License-Identifier: MIT */
#include "api.h"
#include "api-gate.h"
#include "hexdecoct.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "jsonlog.h"
#include "list.h"
#include "log-store.h"
#include "machine-json.h"
#include "macro.h"
#include "metrics.h"
#include "render.h"
#include "socket-util.h"
#include "stitch.h"
#include "time-util.h"
#include "utf8.h"

#define API_BODY_MAX (64u * 1024u)
#define API_READY_TIMEOUT_DEFAULT_S 30.0
#define API_READY_TIMEOUT_MAX_S 3600.0
#define API_STREAM_CHUNK (64u * 1024u)
#define API_SWEEP_INTERVAL_USEC (5 * USEC_PER_SEC)
#define API_CONNECTION_TIMEOUT_S 60u

typedef struct ApiDaemon ApiDaemon;
typedef struct Request Request;
typedef struct Stream Stream;

struct ApiDaemon {
        Api *api;
        LIST_FIELDS(ApiDaemon, daemons);
        struct MHD_Daemon *mhd;
        sd_event_source *io, *timer;
        sd_event_source *kick; /* defer, SD_EVENT_PRIORITY_IMPORTANT: runs MHD for resumed connections */
        ApiGate *gate;         /* accepts for MHD */
        char *unix_path;
        struct stat unix_bound; /* the socket file bound at unix_path: only that one is removed */
};

/* Per HTTP request state (MHD's con_cls). A ready long-poll stays in api->waiters while suspended. */
struct Request {
        Api *api;
        struct MHD_Connection *conn;
        LIST_FIELDS(Request, waiters);
        char *body;
        size_t body_len;
        bool body_too_large;
        bool waiting, suspended, timed_out, gone;
        bool answering;   /* arrived whole: the gate's deadline is off (api-gate.h) */
        bool registering; /* a POST /v1/machines waiting for its registration to reach the disk */
        char *machine_id;
        json_t *verdict; /* decided when the machine's state changed, answered when resumed */
        unsigned verdict_status;
        double timeout_s;
        uint64_t since_unix_ns; /* ?since=: only a state reached at or after this answers */
        uint64_t started_monotonic_ns;
        sd_event_source *timer;
};

typedef enum StreamKind {
        STREAM_LOGS,
        STREAM_EVENTS,
} StreamKind;

/* An NDJSON response body produced on demand (MHD content reader); suspended while there is nothing new. */
struct Stream {
        Api *api;
        StreamKind kind;
        struct MHD_Connection *conn;
        LIST_FIELDS(Stream, streams);
        bool follow, suspended, gone, finished;
        char *machine_id;            /* logs: the machine; events: the filter (NULL: all) */
        uint64_t boot_index;         /* logs: 0 = the current boot, fixed once there is one */
        uint64_t registered_unix_ns; /* logs: tells the machine from a later one registered with the same id */
        uint64_t cursor;             /* events: last event id delivered */
        LogCursor log_cursor;        /* logs: last seq delivered, where the boot file reading stopped */
        unsigned stream_mask;
        uint64_t evicted_seen_records, evicted_seen_bytes;
        SpanSet *spans;
        uint64_t spans_signature;
        /* logs: a record whose lines did not all fit in the chunk, and where its next line starts. A copy (at most
         * a record's data), since the store's may be gone by the next read. */
        LogEntry pending;
        uint8_t *pending_data;
        char *pending_source;
        size_t pending_offset;
        bool has_pending;
        char *buf;
        size_t len, off, cap;
};

struct Api {
        Manager *manager;
        sd_event *event;
        LIST_HEAD(ApiDaemon, daemons);
        LIST_HEAD(Request, waiters);
        LIST_HEAD(Stream, streams);
        sd_event_source *sweep;
        Metrics *metrics; /* GET /metrics */
        ApiLimits limits;
        bool stopping;
};

/* ---- responses ---- */

static enum MHD_Result respond_raw(
        struct MHD_Connection *conn, unsigned status, char *body, size_t len, const char *content_type) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        if (content_type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        enum MHD_Result ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* Consumes o. */
static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_t *o) {
        if (!o)
                return respond_raw(
                        conn,
                        MHD_HTTP_INTERNAL_SERVER_ERROR,
                        strdup("{\"error\":\"out of memory\"}\n"),
                        25,
                        "application/json");
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return MHD_NO;
        size_t n = strlen(text);
        char *body = realloc(text, n + 2);
        if (!body) {
                free(text);
                return MHD_NO;
        }
        body[n] = '\n';
        body[n + 1] = '\0';
        return respond_raw(conn, status, body, n + 1, "application/json");
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...) _printf_(3, 4);
static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL, *clean = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        /* Messages quote what the client sent (a boot, a stream name): a JSON string must be valid UTF-8, or the
         * answer would be 500 "out of memory" instead of this one. */
        if (text && !(clean = utf8_sanitize(text, strlen(text), NULL)))
                return respond_json(conn, status, NULL);
        return respond_json(conn, status, json_pack("{s:s}", "error", clean ?: "error"));
}

static const char *query(struct MHD_Connection *conn, const char *key) {
        return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

static bool query_bool(struct MHD_Connection *conn, const char *key) {
        const char *v = query(conn, key);
        return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || *v == '\0');
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

/* ---- waking suspended connections ---- */

/* A resumed connection is only processed by the next MHD_run(): run the daemons in the next loop iteration
 * rather than whenever their sockets or timeouts would next fire. The kick is a defer source at
 * SD_EVENT_PRIORITY_IMPORTANT: it goes before every other pending source (sd-event dispatches one source per
 * iteration, by priority), so a readiness answer does not queue behind a thousand guests' pending reads, and,
 * unlike a timer due now, it needs no timerfd armed and read. HTTP clients otherwise run at normal priority
 * (the io source and the timeout timer) and never outrank the guests. */
static void api_kick(Api *a) {
        for (ApiDaemon *d = a->daemons; d; d = d->daemons_next)
                (void) sd_event_source_set_enabled(d->kick, SD_EVENT_ONESHOT);
}

static void request_wake(Request *r) {
        if (r->suspended) {
                r->suspended = false;
                MHD_resume_connection(r->conn);
                api_kick(r->api);
        }
}

static void stream_wake(Stream *s) {
        if (s->suspended) {
                s->suspended = false;
                MHD_resume_connection(s->conn);
                api_kick(s->api);
        }
}

static void wake_machine(Api *a, const Machine *m, bool waiters, bool log_streams) {
        if (waiters)
                for (Request *r = a->waiters; r; r = r->waiters_next)
                        if (strcmp(r->machine_id, m->id) == 0)
                                request_wake(r);
        if (log_streams)
                for (Stream *s = a->streams; s; s = s->streams_next)
                        if (s->kind == STREAM_LOGS && strcmp(s->machine_id, m->id) == 0)
                                stream_wake(s);
}

static void on_record_stored(
        Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns, void *userdata) {
        wake_machine(userdata, m, false, true);
}

static void decide_waiters(Api *a, const Machine *m, bool removed);

static void on_state_changed(Registry *r, Machine *m, MachineState old, void *userdata) {
        decide_waiters(userdata, m, false);
        wake_machine(userdata, m, false, true);
}

static void on_boot_changed(Registry *r, Machine *m, Boot *b, void *userdata) {
        wake_machine(userdata, m, false, true);
}

static void on_machine_persisted(Registry *r, Machine *m, void *userdata) {
        Api *a = userdata;
        for (Request *req = a->waiters; req; req = req->waiters_next)
                if (req->registering && strcmp(req->machine_id, m->id) == 0)
                        request_wake(req);
}

static void on_machine_removed(Registry *r, Machine *m, void *userdata) {
        decide_waiters(userdata, m, true);
        wake_machine(userdata, m, true, true);
}

static void on_event_added(Registry *r, const RegistryEvent *ev, void *userdata) {
        Api *a = userdata;
        for (Stream *s = a->streams; s; s = s->streams_next)
                if (s->kind == STREAM_EVENTS &&
                    (!s->machine_id || (ev->machine && strcmp(ev->machine->id, s->machine_id) == 0)))
                        stream_wake(s);
}

/* MHD cannot notice a client that went away while its connection is suspended: look at the sockets. */
static bool client_gone(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        char c;

        if (!info)
                return false;
        ssize_t k = recv(info->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k == 0)
                return true;
        return k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static int on_sweep(sd_event_source *src, uint64_t usec, void *userdata) {
        Api *a = userdata;

        for (Request *r = a->waiters; r; r = r->waiters_next)
                if (r->suspended && client_gone(r->conn)) {
                        r->gone = true;
                        request_wake(r);
                }
        for (Stream *s = a->streams; s; s = s->streams_next)
                if (s->suspended && client_gone(s->conn)) {
                        s->gone = true;
                        stream_wake(s);
                }
        (void) sd_event_source_set_time_relative(src, API_SWEEP_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

/* ---- streams ---- */

static void stream_free(void *userdata) {
        Stream *s = userdata;
        if (!s)
                return;
        LIST_REMOVE(streams, s->api->streams, s);
        span_set_free(s->spans);
        free(s->pending_data);
        free(s->pending_source);
        free(s->machine_id);
        free(s->buf);
        free(s);
}

static int stream_append(Stream *s, const char *data, size_t n) {
        if (s->len + n + 1 > s->cap) {
                size_t cap = MAX(s->cap * 2, s->len + n + 1);
                char *b = realloc(s->buf, cap);
                if (!b)
                        return -ENOMEM;
                s->buf = b;
                s->cap = cap;
        }
        memcpy(s->buf + s->len, data, n);
        s->len += n;
        return 0;
}

/* Appends o as one line. Consumes o. */
static int stream_append_json(Stream *s, json_t *o) {
        if (!o)
                return -ENOMEM;
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        int r = stream_append(s, text, strlen(text));
        free(text);
        if (r >= 0)
                r = stream_append(s, "\n", 1);
        return r;
}

static uint64_t spans_signature(const Boot *b) {
        return (uint64_t) b->n_milestones * UINT64_C(1000003) + (uint64_t) b->n_phases * UINT64_C(7919) +
                (uint64_t) b->ready.set * 2 + (uint64_t) b->exit.set * 4 + (uint64_t) b->clock.valid * 8 +
                (uint64_t) b->clock.offset_ns + (uint64_t) b->hello_offset_ns;
}

static void stream_update_spans(Stream *s, const Machine *m, const Boot *b) {
        const Registry *reg = m->registry;
        uint64_t sig = spans_signature(b);

        if (s->spans && s->spans_signature == sig)
                return;
        StitchContext ctx = {
                .machine_id = m->id,
                .node_id = reg->config.node_id,
                .request_id = m->request_id,
                .service_name = m->service_name,
                .parent_span_id = m->has_parent ? m->parent.span_id : NULL,
                .now_unix_ns = now_ns(CLOCK_REALTIME),
        };
        SpanSet *set;
        if (stitch_boot(&ctx, b, &set) < 0)
                return; /* keep the old attribution */
        span_set_free(s->spans);
        s->spans = set;
        s->spans_signature = sig;
}

/* Stops the rendering of a record once a chunk is ready: one record can be thousands of lines. */
static int stream_append_line(json_t *o, void *userdata) {
        Stream *s = userdata;
        int r = stream_append_json(s, o);
        return r < 0 ? r : s->len >= API_STREAM_CHUNK;
}

static void stream_drop_pending(Stream *s) {
        s->pending_data = mfree(s->pending_data);
        s->pending_source = mfree(s->pending_source);
        s->pending = (LogEntry) {};
        s->has_pending = false;
}

static int stream_keep_pending(Stream *s, const LogEntry *e, size_t offset) {
        _cleanup_free_ uint8_t *data = malloc(e->len);
        _cleanup_free_ char *source = NULL;

        if (!data || (e->source && !(source = strdup(e->source))))
                return -ENOMEM;
        memcpy(data, e->data, e->len);
        stream_drop_pending(s);
        s->pending = *e;
        s->pending.data = s->pending_data = TAKE_PTR(data);
        s->pending.source = s->pending_source = TAKE_PTR(source);
        s->pending_offset = offset;
        s->has_pending = true;
        return 0;
}

static int stream_log_dropped(
        Stream *s,
        const Machine *m,
        const Boot *b,
        uint64_t seq,
        uint64_t records,
        uint64_t bytes,
        const char *reason) {
        return stream_append_json(s, render_log_dropped(m, b, seq, records, bytes, reason));
}

static int stream_log_entry(Stream *s, const Machine *m, const Boot *b, const LogEntry *e) {
        if (e->kind == LOG_ENTRY_DROPPED)
                return stream_log_dropped(s, m, b, e->seq, e->dropped_records, e->dropped_bytes, "agent_buffer");
        if (!(s->stream_mask & (1u << e->stream)))
                return 0;
        size_t offset = 0;
        int r = render_log_lines(m, b, e, s->spans, &offset, stream_append_line, s);
        if (r <= 0)
                return r;
        r = stream_keep_pending(s, e, offset); /* the rest of its lines on the next read */
        return r < 0 ? r : 1;
}

typedef struct LogFill {
        Stream *stream;
        const Machine *machine;
        const Boot *boot;
} LogFill;

static int on_log_entry(const LogEntry *e, void *userdata) {
        LogFill *f = userdata;
        int r;

        r = stream_log_entry(f->stream, f->machine, f->boot, e);
        if (r < 0)
                return r;
        return r > 0 || f->stream->len >= API_STREAM_CHUNK; /* a chunk is ready: the rest on the next read */
}

static int stream_fill_logs(Stream *s) {
        Registry *reg = s->api->manager->registry;
        Machine *m = registry_find(reg, s->machine_id);
        Boot *b;
        int r;

        if (!m || m->registered_unix_ns != s->registered_unix_ns) {
                s->finished = true; /* deleted (and maybe registered again: not the machine we followed) */
                return 0;
        }
        b = s->boot_index ? machine_find_boot_by_index(m, s->boot_index) : m->current;
        if (!b) {
                if (s->boot_index || !s->follow)
                        s->finished = true;
                return 0; /* follow: wait for the first boot */
        }
        s->boot_index = b->index;
        stream_update_spans(s, m, b);

        /* The rest of a record the last chunk ended in. */
        if (s->has_pending) {
                r = render_log_lines(m, b, &s->pending, s->spans, &s->pending_offset, stream_append_line, s);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 0;
                stream_drop_pending(s);
        }

        /* Lines lost from memory (never in a boot file) since this stream last looked. */
        if (b->logs.evicted_records > s->evicted_seen_records) {
                if (b->logs.evicted_last_seq > s->log_cursor.seq) {
                        r = stream_log_dropped(
                                s,
                                m,
                                b,
                                b->logs.evicted_last_seq,
                                b->logs.evicted_records - s->evicted_seen_records,
                                b->logs.evicted_bytes - s->evicted_seen_bytes,
                                "evicted");
                        if (r < 0)
                                return r;
                }
                s->evicted_seen_records = b->logs.evicted_records;
                s->evicted_seen_bytes = b->logs.evicted_bytes;
        }

        LogFill fill = { .stream = s, .machine = m, .boot = b };
        r = log_store_read(s->api->manager->store, b, &s->log_cursor, on_log_entry, &fill);
        if (r < 0)
                return r;
        if (r == 0) {
                /* Everything stored so far was delivered. */
                log_cursor_skip_to(&s->log_cursor, b->last_seq);
                /* A follower ends with its boot: after the exit, or once another boot replaced it. */
                if (!s->follow || b->exit.set || m->current != b)
                        s->finished = true;
        }
        return 0;
}

static int stream_fill_events(Stream *s) {
        const EventLog *l = s->api->manager->registry->events;
        size_t i = event_log_find_after(l, s->cursor);
        int r;

        for (; i < l->n && s->len < API_STREAM_CHUNK; i++) {
                const Event *ev = event_log_at(l, i);
                s->cursor = ev->id;
                if (s->machine_id && (!ev->machine_id || strcmp(ev->machine_id, s->machine_id) != 0))
                        continue;
                r = stream_append(s, ev->json, strlen(ev->json));
                if (r >= 0)
                        r = stream_append(s, "\n", 1);
                if (r < 0)
                        return r;
        }
        if (i == l->n && !s->follow)
                s->finished = true;
        return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
        Stream *s = cls;
        int r;

        if (s->gone)
                return MHD_CONTENT_READER_END_WITH_ERROR;

        if (s->off == s->len) {
                s->off = s->len = 0;
                if (!s->finished) {
                        r = s->kind == STREAM_LOGS ? stream_fill_logs(s) : stream_fill_events(s);
                        if (r < 0) {
                                log_error_errno(r, "Failed to produce a response stream: %m");
                                return MHD_CONTENT_READER_END_WITH_ERROR;
                        }
                }
        }
        if (s->off < s->len) {
                size_t n = MIN(max, s->len - s->off);
                memcpy(buf, s->buf + s->off, n);
                s->off += n;
                return (ssize_t) n;
        }
        if (s->finished || s->api->stopping)
                return MHD_CONTENT_READER_END_OF_STREAM;

        /* Nothing new: park the connection until an observer wakes it (returning 0 alone would spin). */
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        return 0;
}

static enum MHD_Result respond_stream(Api *a, struct MHD_Connection *conn, Stream *s) {
        struct MHD_Response *resp = MHD_create_response_from_callback(
                MHD_SIZE_UNKNOWN, API_STREAM_CHUNK, stream_read, s, stream_free);
        if (!resp) {
                stream_free(s);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
}

static Stream *stream_new(Api *a, struct MHD_Connection *conn, StreamKind kind, const char *machine_id) {
        Stream *s = calloc(1, sizeof(Stream));
        if (!s)
                return NULL;
        *s = (Stream) { .api = a, .kind = kind, .conn = conn, .stream_mask = ~0u };
        if (machine_id && !(s->machine_id = strdup(machine_id))) {
                free(s);
                return NULL;
        }
        LIST_PREPEND(streams, a->streams, s);
        return s;
}

/* ---- handlers ---- */

static Boot *find_boot_param(Machine *m, const char *boot) {
        uint64_t index;

        if (!boot || strcmp(boot, "current") == 0)
                return m->current;
        Boot *b = machine_find_boot(m, boot);
        if (!b && parse_u64(boot, &index) >= 0)
                b = machine_find_boot_by_index(m, index);
        return b;
}

static enum MHD_Result handle_logs(Api *a, Request *req, Machine *m) {
        struct MHD_Connection *conn = req->conn;
        const char *streams = query(conn, "stream"), *since = query(conn, "since_seq"), *boot = query(conn, "boot");
        unsigned mask = 0;
        uint64_t since_seq = 0;
        Boot *b = NULL;

        if (streams && *streams) {
                _cleanup_free_ char *copy = strdup(streams);
                char *save = NULL;
                if (!copy)
                        return MHD_NO;
                for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                        int k = log_stream_from_string(t);
                        if (k < 0)
                                return respond_error(
                                        conn,
                                        MHD_HTTP_BAD_REQUEST,
                                        "unknown stream \"%s\" (stdout, stderr, console, kmsg)",
                                        t);
                        mask |= 1u << k;
                }
        } else
                mask = ~0u;
        if (since && parse_u64(since, &since_seq) < 0)
                return respond_error(conn, MHD_HTTP_BAD_REQUEST, "since_seq must be a non-negative integer");
        if (boot && strcmp(boot, "current") != 0) {
                b = find_boot_param(m, boot);
                if (!b)
                        return respond_error(conn, MHD_HTTP_NOT_FOUND, "machine %s has no boot %s", m->id, boot);
        }

        Stream *s = stream_new(a, conn, STREAM_LOGS, m->id);
        if (!s)
                return MHD_NO;
        s->follow = query_bool(conn, "follow");
        s->registered_unix_ns = m->registered_unix_ns;
        s->stream_mask = mask;
        s->log_cursor.seq = since_seq;
        s->boot_index = b ? b->index : 0;
        return respond_stream(a, conn, s);
}

static enum MHD_Result handle_events(Api *a, Request *req) {
        const char *machine_id = query(req->conn, "machine_id");

        if (machine_id && !machine_id_is_valid(machine_id))
                return respond_error(req->conn, MHD_HTTP_BAD_REQUEST, "invalid machine_id");
        Stream *s = stream_new(a, req->conn, STREAM_EVENTS, machine_id);
        if (!s)
                return MHD_NO;
        s->follow = query_bool(req->conn, "follow");
        return respond_stream(a, req->conn, s);
}

static enum MHD_Result handle_spans(Api *a, Request *req, Machine *m) {
        const char *boot = query(req->conn, "boot");
        Boot *b = find_boot_param(m, boot);
        SpanSet *set;

        if (!b)
                return respond_error(
                        req->conn,
                        MHD_HTTP_NOT_FOUND,
                        "machine %s has %s",
                        m->id,
                        boot && strcmp(boot, "current") != 0 ? "no such boot" : "not booted yet");
        StitchContext ctx = {
                .machine_id = m->id,
                .node_id = a->manager->registry->config.node_id,
                .request_id = m->request_id,
                .service_name = m->service_name,
                .parent_span_id = m->has_parent ? m->parent.span_id : NULL,
                .now_unix_ns = now_ns(CLOCK_REALTIME),
        };
        if (stitch_boot(&ctx, b, &set) < 0)
                return MHD_NO;
        json_t *o = render_spans(set);
        if (o) {
                json_object_set_new(o, "machine_id", json_string(m->id));
                json_object_set_new(o, "boot_id", json_string(b->boot_id));
        }
        span_set_free(set);
        return respond_json(req->conn, MHD_HTTP_OK, o);
}

static int on_waiter_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Request *r = userdata;
        r->timed_out = true;
        request_wake(r);
        return 0;
}

static bool state_failed(MachineState s) {
        return s == MACHINE_EXITED || s == MACHINE_CRASHED || s == MACHINE_DISCONNECTED || s == MACHINE_STOPPED;
}

/* The answer to a ready long-poll if the machine's state decides it, else NULL (keep waiting). Taken at the
 * moment the state changes, so that a Ready immediately followed by an Exit still answers 200. */
static json_t *ready_verdict(const Machine *m, uint64_t since_unix_ns, uint64_t waited_ns, unsigned *ret_status) {
        /* The orchestrator (re)started the machine at since: what the machine was before that is not the answer
         * (a restarted libvirt domain is still "stopped" until tetherd sees libvirt's started event). */
        if (since_unix_ns > 0 && m->state_unix_ns < since_unix_ns)
                return NULL;
        /* The current boot met its ready condition: that is the answer, even if its workload has ended since
         * (the state says so). */
        if (m->current && m->current->ready.set && m->state != MACHINE_BOOTING) {
                *ret_status = MHD_HTTP_OK;
                return json_pack(
                        "{s:s, s:s, s:s, s:o, s:I}",
                        "machine_id",
                        m->id,
                        "state",
                        machine_state_to_string(m->state),
                        "boot_id",
                        m->current->boot_id,
                        "ready",
                        render_ready(m, m->current),
                        "waited_ns",
                        (json_int_t) waited_ns);
        }
        if (!state_failed(m->state))
                return NULL;

        const char *state = machine_state_to_string(m->state);
        const char *error = m->state == MACHINE_DISCONNECTED ? "agent disconnected before ready" :
                m->state == MACHINE_CRASHED                  ? "machine crashed before ready" :
                m->state == MACHINE_STOPPED                  ? "machine stopped before ready" :
                                                               "machine exited before ready";
        *ret_status = MHD_HTTP_CONFLICT;
        return json_pack(
                "{s:s, s:s, s:s, s:s, s:I}",
                "error",
                error,
                "machine_id",
                m->id,
                "state",
                state,
                "reason",
                m->state_reason ?: state,
                "waited_ns",
                (json_int_t) waited_ns);
}

static void decide_waiters(Api *a, const Machine *m, bool removed) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);

        for (Request *r = a->waiters; r; r = r->waiters_next) {
                if (r->verdict || strcmp(r->machine_id, m->id) != 0)
                        continue;
                if (r->registering) {
                        if (!removed)
                                continue;
                        r->verdict_status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                        r->verdict = json_pack(
                                "{s:s, s:s}",
                                "error",
                                "registration failed: the machine was removed before its registration reached the "
                                "disk (tetherd's log says why)",
                                "machine_id",
                                m->id);
                } else if (removed) {
                        r->verdict_status = MHD_HTTP_CONFLICT;
                        r->verdict = json_pack(
                                "{s:s, s:s, s:s, s:s}",
                                "error",
                                "machine was deleted",
                                "machine_id",
                                m->id,
                                "state",
                                "deleted",
                                "reason",
                                "deleted");
                } else
                        r->verdict = ready_verdict(
                                m, r->since_unix_ns, now - r->started_monotonic_ns, &r->verdict_status);
                if (r->verdict)
                        request_wake(r);
        }
}

/* Answers a ready long-poll with its verdict (consumed), stamped with answered_unix_ns: host realtime as the
 * response is queued, so a client can tell tetherd's part of the latency (ready.delivered_unix_ns to here) from
 * its own (here to its return). */
static enum MHD_Result respond_verdict(struct MHD_Connection *conn, unsigned status, json_t *verdict) {
        json_int_t now = (json_int_t) now_ns(CLOCK_REALTIME);
        if (verdict && json_object_set_new(verdict, "answered_unix_ns", json_integer(now)) < 0) {
                json_decref(verdict);
                verdict = NULL; /* answered 500, out of memory */
        }
        return respond_json(conn, status, verdict);
}

static enum MHD_Result handle_ready(Api *a, Request *req, const char *id) {
        struct MHD_Connection *conn = req->conn;
        unsigned status;
        int r;

        if (req->verdict)
                return respond_verdict(conn, req->verdict_status, TAKE_PTR(req->verdict));

        Machine *m = registry_find(a->manager->registry, id);
        if (!m)
                return respond_error(conn, MHD_HTTP_NOT_FOUND, "unknown machine %s", id);

        if (!req->waiting) {
                const char *t = query(conn, "timeout");
                req->timeout_s = API_READY_TIMEOUT_DEFAULT_S;
                if (t) {
                        char *end;
                        errno = 0;
                        double v = strtod(t, &end);
                        if (errno != 0 || end == t || *end != '\0' || !isfinite(v) || v < 0 ||
                            v > API_READY_TIMEOUT_MAX_S)
                                return respond_error(
                                        conn,
                                        MHD_HTTP_BAD_REQUEST,
                                        "timeout must be a number of seconds between 0 and 3600");
                        req->timeout_s = v;
                }
                const char *since = query(conn, "since");
                if (since && parse_u64(since, &req->since_unix_ns) < 0)
                        return respond_error(
                                conn,
                                MHD_HTTP_BAD_REQUEST,
                                "since must be a time in ns since the epoch (host realtime)");
                req->started_monotonic_ns = now_ns(CLOCK_MONOTONIC);
        }
        uint64_t waited = now_ns(CLOCK_MONOTONIC) - req->started_monotonic_ns;

        json_t *verdict = ready_verdict(m, req->since_unix_ns, waited, &status);
        if (verdict)
                return respond_verdict(conn, status, verdict);
        if (a->stopping)
                return respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "tetherd is shutting down");
        if (req->timed_out || req->timeout_s == 0) {
                char msg[128];
                snprintf(msg, sizeof(msg), "timed out after %g s waiting for readiness", req->timeout_s);
                json_t *o = json_pack(
                        "{s:s, s:s, s:s, s:b, s:b, s:I}",
                        "error",
                        msg,
                        "machine_id",
                        m->id,
                        "state",
                        machine_state_to_string(m->state),
                        "agent_seen",
                        m->agent_seen,
                        "connected",
                        m->connected,
                        "waited_ns",
                        (json_int_t) waited);
                if (o && !m->agent_seen)
                        json_object_set_new(o, "detail", json_string("no agent has connected for this machine"));
                return respond_json(conn, MHD_HTTP_GATEWAY_TIMEOUT, o);
        }

        if (!req->waiting) {
                if (!(req->machine_id = strdup(id)))
                        return MHD_NO;
                r = sd_event_add_time_relative(
                        a->event,
                        &req->timer,
                        CLOCK_MONOTONIC,
                        (uint64_t) (req->timeout_s * USEC_PER_SEC),
                        USEC_PER_MSEC, /* not 0: that would be 250 ms of slack */
                        on_waiter_timeout,
                        req);
                if (r < 0)
                        return respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to arm a timer");
                req->waiting = true;
                LIST_PREPEND(waiters, a->waiters, req);
        }
        req->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
}

static enum MHD_Result handle_register(Api *a, Request *req) {
        struct MHD_Connection *conn = req->conn;
        MachineSpecJson spec;
        const char *err = NULL;
        json_error_t jerr;
        Machine *m;
        int r;

        if (req->registering) {
                /* Resumed: the registration reached the disk, failed, or tetherd is stopping. */
                if (req->verdict)
                        return respond_json(conn, req->verdict_status, TAKE_PTR(req->verdict));
                m = registry_find(a->manager->registry, req->machine_id);
                if (m && m->persisted)
                        return respond_json(
                                conn, MHD_HTTP_CREATED, render_machine(m, a->manager->registry->config.node_id));
                if (a->stopping)
                        return respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "tetherd is shutting down");
                req->suspended = true; /* a spurious wakeup */
                MHD_suspend_connection(conn);
                return MHD_YES;
        }
        if (req->body_too_large)
                return respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body larger than %u bytes", API_BODY_MAX);
        json_t *o = json_loadb(req->body ?: "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
                return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid JSON: %s", jerr.text);

        r = machine_spec_from_json(o, &spec, &err);
        if (r >= 0 && json_object_get(o, "registered_unix_ns"))
                spec.spec.registered_unix_ns = 0; /* the API registers now; only the state directory restores */
        /* The API registers API machines: only tetherd's libvirt watcher registers libvirt ones. */
        spec.spec.source = MACHINE_SOURCE_API;
        spec.spec.source_id = NULL;
        if (r >= 0)
                r = manager_register_machine(a->manager, &spec.spec, &m, &err);
        json_decref(o);
        switch (r) {
        case 0:
                break;
        case 1:
                /* Answered once the registration is durable (on_machine_persisted), like a ready long-poll. */
                if (!(req->machine_id = strdup(m->id)))
                        return MHD_NO;
                req->registering = req->waiting = true;
                LIST_PREPEND(waiters, a->waiters, req);
                req->suspended = true;
                MHD_suspend_connection(conn);
                return MHD_YES;
        case -EINVAL:
                return respond_error(conn, MHD_HTTP_BAD_REQUEST, "%s", err ?: "invalid registration");
        case -EEXIST:
                return respond_error(conn, MHD_HTTP_CONFLICT, "%s", err ?: "already registered");
        case -ENOSPC:
                return respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err ?: "too many machines");
        default:
                return respond_error(
                        conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s: %s", err ?: "registration failed", strerror(-r));
        }
        return respond_json(conn, MHD_HTTP_CREATED, render_machine(m, a->manager->registry->config.node_id));
}

static enum MHD_Result handle_list(Api *a, Request *req) {
        Registry *reg = a->manager->registry;
        json_t *list = json_array();

        if (!list)
                return MHD_NO;
        for (Machine *m = reg->machines; m; m = m->machines_next)
                json_array_append_new(list, render_machine(m, reg->config.node_id));
        return respond_json(req->conn, MHD_HTTP_OK, json_pack("{s:o}", "machines", list));
}

static enum MHD_Result handle_healthz(Api *a, Request *req) {
        return respond_json(
                req->conn,
                MHD_HTTP_OK,
                json_pack(
                        "{s:s, s:I, s:I, s:s, s:b}",
                        "status",
                        "ok",
                        "machines",
                        (json_int_t) a->manager->registry->n_machines,
                        "connections",
                        (json_int_t) a->manager->stats->connections_open,
                        "node_id",
                        a->manager->registry->config.node_id,
                        "vsock",
                        a->manager->stats->vsock_listening));
}

static enum MHD_Result handle_metrics(Api *a, Request *req) {
        char *text;
        size_t len;

        if (metrics_render(a->metrics, &text, &len) < 0)
                return respond_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return respond_raw(req->conn, MHD_HTTP_OK, text, len, METRICS_CONTENT_TYPE);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *conn, const char *allowed) {
        char *body = strdup("{\"error\":\"method not allowed\"}\n");
        if (!body)
                return MHD_NO;
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allowed);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result dispatch(Api *a, Request *req, const char *url, const char *method) {
        struct MHD_Connection *conn = req->conn;
        bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

        if (strcmp(url, "/healthz") == 0)
                return get ? handle_healthz(a, req) : method_not_allowed(conn, "GET");
        if (strcmp(url, "/v1/stats") == 0)
                return get ? respond_json(conn, MHD_HTTP_OK, render_stats(a->manager->stats)) :
                             method_not_allowed(conn, "GET");
        if (strcmp(url, "/v1/events") == 0)
                return get ? handle_events(a, req) : method_not_allowed(conn, "GET");
        if (strcmp(url, "/metrics") == 0)
                return get ? handle_metrics(a, req) : method_not_allowed(conn, "GET");
        if (strcmp(url, "/v1/machines") == 0) {
                if (get)
                        return handle_list(a, req);
                if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
                        return handle_register(a, req);
                return method_not_allowed(conn, "GET, POST");
        }
        if (strncmp(url, "/v1/machines/", 13) != 0)
                return respond_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");

        _cleanup_free_ char *id = strdup(url + 13);
        if (!id)
                return MHD_NO;
        char *sub = strchr(id, '/');
        if (sub)
                *sub++ = '\0';
        if (!*id || (sub && strchr(sub, '/')))
                return respond_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");
        if (!machine_id_is_valid(id))
                return respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid machine id");

        if (sub && strcmp(sub, "ready") == 0)
                return get ? handle_ready(a, req, id) : method_not_allowed(conn, "GET");

        Machine *m = registry_find(a->manager->registry, id);
        if (!sub) {
                if (!get && strcmp(method, MHD_HTTP_METHOD_DELETE) != 0)
                        return method_not_allowed(conn, "GET, DELETE");
                if (!m)
                        return respond_error(conn, MHD_HTTP_NOT_FOUND, "unknown machine %s", id);
                if (get)
                        return respond_json(conn, MHD_HTTP_OK, render_machine(m, a->manager->registry->config.node_id));
                manager_delete_machine(a->manager, m);
                return respond_raw(conn, MHD_HTTP_NO_CONTENT, NULL, 0, NULL);
        }
        if (strcmp(sub, "logs") != 0 && strcmp(sub, "spans") != 0)
                return respond_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");
        if (!get)
                return method_not_allowed(conn, "GET");
        if (!m)
                return respond_error(conn, MHD_HTTP_NOT_FOUND, "unknown machine %s", id);
        return strcmp(sub, "logs") == 0 ? handle_logs(a, req, m) : handle_spans(a, req, m);
}

static enum MHD_Result on_request(
        void *cls,
        struct MHD_Connection *conn,
        const char *url,
        const char *method,
        const char *version,
        const char *upload_data,
        size_t *upload_data_size,
        void **con_cls) {
        ApiDaemon *d = cls;
        Api *a = d->api;
        Request *req = *con_cls;

        if (!req) {
                req = calloc(1, sizeof(Request));
                if (!req)
                        return MHD_NO;
                req->api = a;
                req->conn = conn;
                *con_cls = req;
                a->manager->stats->api_requests++;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (req->body_too_large || req->body_len + n > API_BODY_MAX) {
                        req->body_too_large = true;
                        return MHD_YES;
                }
                char *b = realloc(req->body, req->body_len + n + 1);
                if (!b)
                        return MHD_NO;
                memcpy(b + req->body_len, upload_data, n);
                req->body = b;
                req->body_len += n;
                req->body[req->body_len] = '\0';
                return MHD_YES;
        }
        if (req->gone)
                return MHD_NO;
        if (!req->answering) {
                req->answering = true;
                api_gate_request_answering(conn);
        }
        return dispatch(a, req, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Request *req = *con_cls;

        api_gate_request_completed(conn);
        if (!req)
                return;
        if (req->waiting)
                LIST_REMOVE(waiters, req->api->waiters, req);
        sd_event_source_disable_unref(req->timer);
        json_decref(req->verdict);
        free(req->machine_id);
        free(req->body);
        free(req);
        *con_cls = NULL;
}

/* MHD_OPTION_UNESCAPE_CALLBACK: %XX decoding of the path and the query arguments, except %00. MHD's own
 * decoder writes a NUL into the string, and everything after it is silently cut off: "/v1/machines/a%00x"
 * would name machine "a". Kept as "%00", it makes an id or an argument invalid instead (400). */
static size_t unescape_without_nul(void *cls, struct MHD_Connection *conn, char *s) {
        char *w = s;

        for (const char *r = s; *r;) {
                if (r[0] == '%' && unhexchar(r[1]) >= 0 && unhexchar(r[2]) >= 0) {
                        char c = (char) (unhexchar(r[1]) << 4 | unhexchar(r[2]));
                        if (c != '\0') {
                                *w++ = c;
                                r += 3;
                                continue;
                        }
                }
                *w++ = *r++;
        }
        *w = '\0';
        return (size_t) (w - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;

        if (vasprintf(&msg, fmt, ap) < 0)
                return;
        size_t n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
                msg[--n] = '\0';
        log_debug("libmicrohttpd: %s", msg);
}

/* ---- MHD on sd-event ---- */

static void daemon_update_timer(ApiDaemon *d) {
        MHD_UNSIGNED_LONG_LONG ms;

        if (MHD_get_timeout(d->mhd, &ms) == MHD_YES) {
                (void) sd_event_source_set_time_relative(d->timer, (uint64_t) ms * USEC_PER_MSEC);
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
}

static void daemon_run(ApiDaemon *d) {
        MHD_run(d->mhd);
        daemon_update_timer(d);
}

static int on_daemon_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        daemon_run(userdata);
        return 0;
}

static int on_daemon_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        daemon_run(userdata);
        return 0;
}

static int on_daemon_kick(sd_event_source *s, void *userdata) {
        daemon_run(userdata);
        return 0;
}

static ApiDaemon *daemon_free(ApiDaemon *d) {
        if (!d)
                return NULL;
        sd_event_source_disable_unref(d->io);
        sd_event_source_disable_unref(d->timer);
        sd_event_source_disable_unref(d->kick);
        if (d->mhd)
                MHD_stop_daemon(d->mhd);
        api_gate_free(d->gate); /* after MHD closed its connections */
        if (d->unix_path)
                (void) unix_socket_unlink(d->unix_path, &d->unix_bound);
        free(d->unix_path);
        free(d);
        return NULL;
}

/* Takes ownership of listen_fd. */
static int api_add_daemon(Api *a, int listen_fd, const char *unix_path) {
        int r;

        ApiDaemon *d = calloc(1, sizeof(ApiDaemon));
        if (!d) {
                safe_close(listen_fd);
                return -ENOMEM;
        }
        d->api = a;
        if (unix_path && !(d->unix_path = strdup(unix_path))) {
                safe_close(listen_fd);
                free(d);
                return -ENOMEM;
        }

        ApiGateConfig gc = {
                .max_connections = a->limits.max_connections,
                .request_timeout_ns = a->limits.request_timeout_ns,
        };
        r = api_gate_new(a->event, listen_fd, &gc, a->manager->stats, &d->gate);
        if (r < 0) {
                daemon_free(d);
                return r;
        }
        /* MHD gets no listening socket: the gate accepts and hands connections over (api-gate.h says why). Its
         * own limit is above the gate's, with room for those cut off and not closed yet, so that it never
         * refuses one the gate took. */
        d->mhd = MHD_start_daemon(
                MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET,
                0,
                NULL,
                NULL,
                on_request,
                d,
                MHD_OPTION_EXTERNAL_LOGGER,
                on_mhd_log,
                d,
                MHD_OPTION_NOTIFY_COMPLETED,
                on_completed,
                d,
                MHD_OPTION_NOTIFY_CONNECTION,
                api_gate_notify_connection,
                d->gate,
                MHD_OPTION_UNESCAPE_CALLBACK,
                unescape_without_nul,
                NULL,
                MHD_OPTION_CONNECTION_TIMEOUT,
                API_CONNECTION_TIMEOUT_S,
                MHD_OPTION_CONNECTION_LIMIT,
                2 * a->limits.max_connections + 1,
                MHD_OPTION_END);
        if (!d->mhd) {
                daemon_free(d);
                return -EIO;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info) {
                daemon_free(d);
                return -EIO;
        }
        r = sd_event_add_io(a->event, &d->io, info->epoll_fd, EPOLLIN, on_daemon_io, d);
        if (r >= 0)
                /* Accuracy 1 µs, not 0: 0 means sd-event's default slack of 250 ms. */
                r = sd_event_add_time_relative(a->event, &d->timer, CLOCK_MONOTONIC, 0, 1, on_daemon_timer, d);
        if (r >= 0)
                r = sd_event_add_defer(a->event, &d->kick, on_daemon_kick, d);
        if (r >= 0)
                r = sd_event_source_set_priority(d->kick, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->kick, SD_EVENT_OFF);
        if (r < 0) {
                daemon_free(d);
                return r;
        }
        r = api_gate_attach(d->gate, d->mhd);
        if (r < 0) {
                daemon_free(d);
                return r;
        }
        daemon_update_timer(d);
        LIST_PREPEND(daemons, a->daemons, d);
        return 0;
}

int api_listen_unix(Api *a, const char *path) {
        struct stat bound;

        /* Registering machines decides which guests may speak for which machine: owner and group only. */
        int fd = unix_stream_listen_full(path, 0660, 0, (uid_t) -1, &bound);
        if (fd < 0)
                return fd;
        int r = api_add_daemon(a, fd, path);
        if (r < 0)
                (void) unix_socket_unlink(path, &bound);
        else
                a->daemons->unix_bound = bound;
        return r;
}

int api_listen_tcp(Api *a, uint16_t port) {
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons(port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        int one = 1;

        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        return api_add_daemon(a, TAKE_FD(fd), NULL);
}

int api_new(Manager *manager, sd_event *e, const ApiLimits *limits, Api **ret) {
        RegistryObserver o = {
                .record_stored = on_record_stored,
                .state_changed = on_state_changed,
                .boot_started = on_boot_changed,
                .boot_finished = on_boot_changed,
                .event_added = on_event_added,
                .machine_removed = on_machine_removed,
                .machine_persisted = on_machine_persisted,
        };
        int r;

        Api *a = calloc(1, sizeof(Api));
        if (!a)
                return -ENOMEM;
        a->manager = manager;
        a->event = sd_event_ref(e);
        a->limits = *limits;
        r = sd_event_add_time_relative(
                e, &a->sweep, CLOCK_MONOTONIC, API_SWEEP_INTERVAL_USEC, USEC_PER_SEC, on_sweep, a);
        if (r < 0) {
                api_free(a);
                return r;
        }
        o.userdata = a;
        r = registry_add_observer(manager->registry, &o);
        if (r >= 0)
                r = metrics_new(manager->registry, manager->stats, &a->metrics);
        if (r < 0) {
                api_free(a);
                return r;
        }
        *ret = a;
        return 0;
}

void api_shutdown(Api *a) {
        if (!a || a->stopping)
                return;
        a->stopping = true;
        for (Request *r = a->waiters; r; r = r->waiters_next)
                request_wake(r);
        for (Stream *s = a->streams; s; s = s->streams_next)
                stream_wake(s);
        /* Let the woken connections answer before the daemons go. */
        for (ApiDaemon *d = a->daemons; d; d = d->daemons_next)
                MHD_run(d->mhd);
}

Api *api_free(Api *a) {
        if (!a)
                return NULL;
        api_shutdown(a);
        registry_remove_observers(a->manager->registry, a);
        a->metrics = metrics_free(a->metrics);
        while (a->daemons) {
                ApiDaemon *d = a->daemons;
                LIST_REMOVE(daemons, a->daemons, d);
                daemon_free(d);
        }
        sd_event_source_disable_unref(a->sweep);
        sd_event_unref(a->event);
        free(a);
        return NULL;
}
