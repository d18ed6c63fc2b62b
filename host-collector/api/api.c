/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
#include "api.h"
#include "api-gate.h"
#include "api-internal.h"
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

void api_request_wake(Request *r) {
        if (r->suspended) {
                r->suspended = false;
                MHD_resume_connection(r->conn);
                api_kick(r->api);
        }
}

static void api_stream_wake(Stream *s) {
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
                                api_request_wake(r);
        if (log_streams)
                for (Stream *s = a->streams; s; s = s->streams_next)
                        if (s->kind == STREAM_LOGS && strcmp(s->machine_id, m->id) == 0)
                                api_stream_wake(s);
}

static void on_record_stored(
        Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns, void *userdata) {
        wake_machine(userdata, m, false, true);
}

static void on_state_changed(Registry *r, Machine *m, MachineState old, void *userdata) {
        api_decide_waiters(userdata, m, false);
        wake_machine(userdata, m, false, true);
}

static void on_boot_changed(Registry *r, Machine *m, Boot *b, void *userdata) {
        wake_machine(userdata, m, false, true);
}

static void on_machine_persisted(Registry *r, Machine *m, void *userdata) {
        Api *a = userdata;
        for (Request *req = a->waiters; req; req = req->waiters_next)
                if (req->registering && strcmp(req->machine_id, m->id) == 0)
                        api_request_wake(req);
}

static void on_machine_removed(Registry *r, Machine *m, void *userdata) {
        api_decide_waiters(userdata, m, true);
        wake_machine(userdata, m, true, true);
}

static void on_event_added(Registry *r, const RegistryEvent *ev, void *userdata) {
        Api *a = userdata;
        for (Stream *s = a->streams; s; s = s->streams_next)
                if (s->kind == STREAM_EVENTS &&
                    (!s->machine_id || (ev->machine && strcmp(ev->machine->id, s->machine_id) == 0)))
                        api_stream_wake(s);
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
                        api_request_wake(r);
                }
        for (Stream *s = a->streams; s; s = s->streams_next)
                if (s->suspended && client_gone(s->conn)) {
                        s->gone = true;
                        api_stream_wake(s);
                }
        (void) sd_event_source_set_time_relative(src, API_SWEEP_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

static enum MHD_Result handle_spans(Api *a, Request *req, Machine *m) {
        const char *boot = api_query(req->conn, "boot");
        Boot *b = api_find_boot_param(m, boot);
        SpanSet *set;

        if (!b)
                return api_respond_error(
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
        return api_respond_json(req->conn, MHD_HTTP_OK, o);
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
                        return api_respond_json(conn, req->verdict_status, TAKE_PTR(req->verdict));
                m = registry_find(a->manager->registry, req->machine_id);
                if (m && m->persisted)
                        return api_respond_json(
                                conn, MHD_HTTP_CREATED, render_machine(m, a->manager->registry->config.node_id));
                if (a->stopping)
                        return api_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "tetherd is shutting down");
                req->suspended = true; /* a spurious wakeup */
                MHD_suspend_connection(conn);
                return MHD_YES;
        }
        if (req->body_too_large)
                return api_respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body larger than %u bytes", API_BODY_MAX);
        json_t *o = json_loadb(req->body ?: "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
                return api_respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid JSON: %s", jerr.text);

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
                return api_respond_error(conn, MHD_HTTP_BAD_REQUEST, "%s", err ?: "invalid registration");
        case -EEXIST:
                return api_respond_error(conn, MHD_HTTP_CONFLICT, "%s", err ?: "already registered");
        case -ENOSPC:
                return api_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err ?: "too many machines");
        default:
                return api_respond_error(
                        conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s: %s", err ?: "registration failed", strerror(-r));
        }
        return api_respond_json(conn, MHD_HTTP_CREATED, render_machine(m, a->manager->registry->config.node_id));
}

static enum MHD_Result handle_list(Api *a, Request *req) {
        Registry *reg = a->manager->registry;
        json_t *list = json_array();

        if (!list)
                return MHD_NO;
        for (Machine *m = reg->machines; m; m = m->machines_next)
                json_array_append_new(list, render_machine(m, reg->config.node_id));
        return api_respond_json(req->conn, MHD_HTTP_OK, json_pack("{s:o}", "machines", list));
}

static enum MHD_Result handle_healthz(Api *a, Request *req) {
        return api_respond_json(
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
                return api_respond_error(req->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return api_respond_raw(req->conn, MHD_HTTP_OK, text, len, METRICS_CONTENT_TYPE);
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
                return get ? api_respond_json(conn, MHD_HTTP_OK, render_stats(a->manager->stats)) :
                             method_not_allowed(conn, "GET");
        if (strcmp(url, "/v1/events") == 0)
                return get ? api_handle_events(a, req) : method_not_allowed(conn, "GET");
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
                return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");

        _cleanup_free_ char *id = strdup(url + 13);
        if (!id)
                return MHD_NO;
        char *sub = strchr(id, '/');
        if (sub)
                *sub++ = '\0';
        if (!*id || (sub && strchr(sub, '/')))
                return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");
        if (!machine_id_is_valid(id))
                return api_respond_error(conn, MHD_HTTP_BAD_REQUEST, "invalid machine id");

        if (sub && strcmp(sub, "ready") == 0)
                return get ? api_handle_ready(a, req, id) : method_not_allowed(conn, "GET");

        Machine *m = registry_find(a->manager->registry, id);
        if (!sub) {
                if (!get && strcmp(method, MHD_HTTP_METHOD_DELETE) != 0)
                        return method_not_allowed(conn, "GET, DELETE");
                if (!m)
                        return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "unknown machine %s", id);
                if (get)
                        return api_respond_json(
                                conn, MHD_HTTP_OK, render_machine(m, a->manager->registry->config.node_id));
                manager_delete_machine(a->manager, m);
                return api_respond_raw(conn, MHD_HTTP_NO_CONTENT, NULL, 0, NULL);
        }
        if (strcmp(sub, "logs") != 0 && strcmp(sub, "spans") != 0 && strcmp(sub, "metrics") != 0)
                return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");
        if (!get)
                return method_not_allowed(conn, "GET");
        if (!m)
                return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "unknown machine %s", id);
        if (strcmp(sub, "metrics") == 0)
                return api_respond_json(
                        conn, MHD_HTTP_OK, render_machine_metrics(m, a->manager->registry->config.node_id));
        return strcmp(sub, "logs") == 0 ? api_handle_logs(a, req, m) : handle_spans(a, req, m);
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
                .max_connections = a->config.max_connections,
                .request_timeout_ns = a->config.request_timeout_ns,
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
                2 * a->config.max_connections + 1,
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

int api_new(Manager *manager, sd_event *e, const ApiConfig *config, Api **ret) {
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
        a->config = *config;
        r = sd_event_add_time_relative(
                e, &a->sweep, CLOCK_MONOTONIC, API_SWEEP_INTERVAL_USEC, USEC_PER_SEC, on_sweep, a);
        if (r < 0) {
                api_free(a);
                return r;
        }
        o.userdata = a;
        r = registry_add_observer(manager->registry, &o);
        if (r >= 0)
                r = metrics_new(manager->registry, manager->stats, config->metrics_per_machine, &a->metrics);
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
                api_request_wake(r);
        for (Stream *s = a->streams; s; s = s->streams_next)
                api_stream_wake(s);
        /* Let the woken connections answer before the daemons go. */
        for (ApiDaemon *d = a->daemons; d; d = d->daemons_next)
                MHD_run(d->mhd);
}

const Metrics *api_metrics(const Api *a) {
        return a->metrics;
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
