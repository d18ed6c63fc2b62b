/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#pragma once

/* What the API's files share (api.c: the daemons on sd-event, routing and the simple handlers; api-respond.c:
 * answers and query parameters; api-stream.c: the NDJSON streams of logs and events; api-ready.c: the ready
 * long-poll). Not for use outside host-collector/api/. */

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "api-gate.h"
#include "api.h"
#include "list.h"
#include "log-store.h"
#include "macro.h"
#include "metrics.h"
#include "stitch.h"

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
        uint8_t priority_mask; /* logs: the syslog priorities shown (bit p: priority p); 0: every line */
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
        ApiConfig config;
        bool stopping;
};

/* ---- answers and query parameters (api-respond.c) ---- */

enum MHD_Result api_respond_raw(
        struct MHD_Connection *conn, unsigned status, char *body, size_t len, const char *content_type);
/* Consumes o (NULL: 500). */
enum MHD_Result api_respond_json(struct MHD_Connection *conn, unsigned status, json_t *o);
enum MHD_Result api_respond_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...) _printf_(3, 4);
const char *api_query(struct MHD_Connection *conn, const char *key);
bool api_query_bool(struct MHD_Connection *conn, const char *key);
int api_parse_u64(const char *s, uint64_t *ret);
/* ?boot=: current (NULL), a boot id or a boot index. NULL when the machine has no such boot. */
Boot *api_find_boot_param(Machine *m, const char *boot);

/* ---- waking suspended connections (api.c) ---- */

void api_request_wake(Request *r);

/* ---- handlers of their own files ---- */

enum MHD_Result api_handle_logs(Api *a, Request *req, Machine *m);      /* api-stream.c */
enum MHD_Result api_handle_events(Api *a, Request *req);                /* api-stream.c */
enum MHD_Result api_handle_ready(Api *a, Request *req, const char *id); /* api-ready.c */
/* Decides the waiters of machine m after its state changed (or it was removed). api-ready.c */
void api_decide_waiters(Api *a, const Machine *m, bool removed);
