/* SPDX-License-Identifier: MIT */
/* Room api: the HTTP API, long-polls, streams and /metrics on libmicrohttpd; sees the model through core. */
/* The ready long-poll: answered the moment the machine's state decides it, or at its timeout. */
#include "api-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "time-util.h"

static int on_waiter_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Request *r = userdata;
        r->timed_out = true;
        api_request_wake(r);
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

void api_decide_waiters(Api *a, const Machine *m, bool removed) {
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
                        api_request_wake(r);
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
        return api_respond_json(conn, status, verdict);
}

enum MHD_Result api_handle_ready(Api *a, Request *req, const char *id) {
        struct MHD_Connection *conn = req->conn;
        unsigned status;
        int r;

        if (req->verdict)
                return respond_verdict(conn, req->verdict_status, TAKE_PTR(req->verdict));

        Machine *m = registry_find(a->manager->registry, id);
        if (!m)
                return api_respond_error(conn, MHD_HTTP_NOT_FOUND, "unknown machine %s", id);

        if (!req->waiting) {
                const char *t = api_query(conn, "timeout");
                req->timeout_s = API_READY_TIMEOUT_DEFAULT_S;
                if (t) {
                        char *end;
                        errno = 0;
                        double v = strtod(t, &end);
                        if (errno != 0 || end == t || *end != '\0' || !isfinite(v) || v < 0 ||
                            v > API_READY_TIMEOUT_MAX_S)
                                return api_respond_error(
                                        conn,
                                        MHD_HTTP_BAD_REQUEST,
                                        "timeout must be a number of seconds between 0 and 3600");
                        req->timeout_s = v;
                }
                const char *since = api_query(conn, "since");
                if (since && api_parse_u64(since, &req->since_unix_ns) < 0)
                        return api_respond_error(
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
                return api_respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "tetherd is shutting down");
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
                return api_respond_json(conn, MHD_HTTP_GATEWAY_TIMEOUT, o);
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
                        return api_respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to arm a timer");
                req->waiting = true;
                LIST_PREPEND(waiters, a->waiters, req);
        }
        req->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
}
