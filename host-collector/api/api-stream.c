/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
/* NDJSON responses produced as the client reads: the logs of a boot and the events, following or not. */
#include "api-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonlog.h"
#include "render.h"
#include "syslog-priority.h"
#include "time-util.h"
#include "utf8.h"

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
        if (s->priority_mask && !syslog_priority_mask_has(s->priority_mask, e->priority))
                return 0; /* as journalctl -p: a line without a priority is in no set */
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

enum MHD_Result api_handle_logs(Api *a, Request *req, Machine *m) {
        struct MHD_Connection *conn = req->conn;
        const char *streams = api_query(conn, "stream"), *since = api_query(conn, "since_seq"),
                   *boot = api_query(conn, "boot"), *priority = api_query(conn, "priority");
        uint8_t priority_mask = 0;
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
                                return api_respond_error(
                                        conn,
                                        MHD_HTTP_BAD_REQUEST,
                                        "unknown stream \"%s\" (stdout, stderr, console, kmsg)",
                                        t);
                        mask |= 1u << k;
                }
        } else
                mask = ~0u;
        if (priority && *priority && syslog_priority_mask_from_string(priority, &priority_mask) < 0)
                return api_respond_error(
                        conn,
                        MHD_HTTP_BAD_REQUEST,
                        "priority must be a syslog priority (0-7 or emerg, alert, crit, err, warning, notice, info, "
                        "debug) or a range of two (err..warning)");
        if (since && api_parse_u64(since, &since_seq) < 0)
                return api_respond_error(conn, MHD_HTTP_BAD_REQUEST, "since_seq must be a non-negative integer");
        if (boot && strcmp(boot, "current") != 0) {
                b = api_find_boot_param(m, boot);
                if (!b)
                        return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "machine %s has no boot %s", m->id, boot);
        }

        Stream *s = stream_new(a, conn, STREAM_LOGS, m->id);
        if (!s)
                return MHD_NO;
        s->follow = api_query_bool(conn, "follow");
        s->registered_unix_ns = m->registered_unix_ns;
        s->stream_mask = mask;
        s->priority_mask = priority_mask;
        s->log_cursor.seq = since_seq;
        s->boot_index = b ? b->index : 0;
        return respond_stream(a, conn, s);
}

enum MHD_Result api_handle_events(Api *a, Request *req) {
        const char *machine_id = api_query(req->conn, "machine_id");

        if (machine_id && !machine_id_is_valid(machine_id))
                return api_respond_error(req->conn, MHD_HTTP_BAD_REQUEST, "invalid machine_id");
        Stream *s = stream_new(a, req->conn, STREAM_EVENTS, machine_id);
        if (!s)
                return MHD_NO;
        s->follow = api_query_bool(req->conn, "follow");
        return respond_stream(a, req->conn, s);
}
