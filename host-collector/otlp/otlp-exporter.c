/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#include "otlp-exporter-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "event-util.h"
#include "fs-util.h"
#include "hashmap.h"
#include "jsonlog.h"
#include "list.h"
#include "log-store.h"
#include "macro.h"
#include "otlp-encode.h"
#include "otlp-http.h"
#include "otlp-json.h"
#include "otlp-queue.h"
#include "otlp-retry.h"
#include "otlp-spool.h"
#include "stitch.h"
#include "time-util.h"
#include "utf8.h"

uint64_t exporter_mono_ns(void) {
        return now_ns(CLOCK_MONOTONIC);
}

static bool logs_pressed(OtlpExporter *x);

/* After every change of what waits: the gauges, and the tracks held back by the pressure resume once it is gone. */
void exporter_update_gauges(OtlpExporter *x) {
        uint64_t q = 0;
        for (size_t i = 0; i < N_CHANNELS; i++)
                if (x->channels[i].queue)
                        q += otlp_queue_pending_bytes(x->channels[i].queue);
        x->stats->export.queue_bytes = q;
        x->stats->export.spool_bytes = x->spool ? otlp_spool_bytes(x->spool) : 0;
        if (x->logs_blocked && !logs_pressed(x)) {
                x->logs_blocked = false;
                (void) sd_event_source_set_enabled(x->logs_source, SD_EVENT_ON);
        }
}

void exporter_count_drop(OtlpExporter *x, ExportSignal s, ExportDropReason r, uint64_t items) {
        x->stats->export.dropped[s][r] += items;
}

void exporter_count_delivered(OtlpExporter *x, ExportSignal s, uint64_t items, uint64_t bytes) {
        x->stats->export.requests[s]++;
        x->stats->export.items[s] += items;
        x->stats->export.bytes[s] += bytes;
        x->stats->export.last_success_unix_ns[s] = now_ns(CLOCK_REALTIME);
}

/* Items of a boot that could not be exported: node-wide, and the boot's own count. */
void exporter_count_boot_drop(OtlpExporter *x, Boot *b, ExportSignal s, ExportDropReason r, uint64_t items) {
        exporter_count_drop(x, s, r, items);
        if (b)
                b->export_dropped = add_sat(b->export_dropped, items);
}

/* The spool at half its bound: its content cannot be told apart by boot, so every boot's log records wait in the
 * log store until it drained (the spool exists only with a state directory, where the boot files hold them). */
static bool spool_pressed(OtlpExporter *x) {
        return x->spool && otlp_spool_bytes(x->spool) >= x->config.spool_bytes / 2;
}

/* The logs queue's waiting item bytes at a quarter of its bound (the bound counts buffers by capacity, up to
 * about twice the items they hold). */
static bool queue_pressed(OtlpExporter *x) {
        const Channel *ch = &x->channels[1];
        return ch->http && ch->queue && otlp_queue_pending_bytes(ch->queue) >= x->config.queue_bytes / 4;
}

static bool logs_pressed(OtlpExporter *x) {
        return spool_pressed(x) || queue_pressed(x);
}

static uint64_t logs_share(OtlpExporter *x) {
        uint64_t now = exporter_mono_ns();

        if (x->share_at_ns != 0 && now - x->share_at_ns < FAIR_SHARE_REFRESH_NS)
                return x->share_bytes;
        uint64_t n = 0;
        BootTrack *t;
        LIST_FOREACH(tracks, t, x->tracks)
        if (t->resource && t->resource->pending_bytes > 0)
                n++;
        uint64_t quarter = x->config.queue_bytes / 4;
        x->share_bytes = MAX(quarter / MAX(n, (uint64_t) 1), MIN((uint64_t) FAIR_SHARE_MIN_BYTES, quarter / 2));
        x->share_at_ns = now;
        return x->share_bytes;
}

/* The boot's log records wait in the log store: it holds more than its share of a pressed logs queue, or the
 * spool is pressed. */
static bool track_over_share(OtlpExporter *x, const BootTrack *t) {
        if (spool_pressed(x))
                return true;
        return t->resource && queue_pressed(x) && t->resource->pending_bytes >= logs_share(x);
}

void exporter_worker_kick(OtlpExporter *x) {
        if (!x->worker_on && x->worker) {
                (void) sd_event_source_set_enabled(x->worker, SD_EVENT_ON);
                x->worker_on = true;
        }
}

/* ---- boots ---- */

static uint64_t spans_signature(const Boot *b) {
        return (uint64_t) b->n_milestones * UINT64_C(1000003) + (uint64_t) b->n_phases * UINT64_C(7919) +
                (uint64_t) b->ready.set * 2 + (uint64_t) b->exit.set * 4 + (uint64_t) b->clock.valid * 8 +
                (uint64_t) b->clock.offset_ns + (uint64_t) b->hello_offset_ns + b->host_start_unix_ns;
}

static void track_disown(OtlpBlob *resource) {
        if (resource) {
                resource->owner = NULL;
                otlp_blob_unref(resource);
        }
}

static BootTrack *track_free(OtlpExporter *x, BootTrack *t) {
        if (!t)
                return NULL;
        if (x->last_track == t)
                x->last_track = NULL;
        LIST_REMOVE(tracks, x->tracks, t);
        (void) hashmap_remove(x->track_index, t->key);
        /* Queued items may outlive the track under its resources: they count node-wide only from now on. */
        track_disown(t->resource);
        track_disown(t->old_resource);
        span_set_free(t->spans);
        free(t->exported);
        free(t);
        return NULL;
}

static bool track_exported(const BootTrack *t, const uint8_t id[8]) {
        for (size_t i = 0; i < t->n_exported; i++)
                if (memcmp(t->exported[i], id, 8) == 0)
                        return true;
        return false;
}

static int track_mark_exported(BootTrack *t, const uint8_t id[8]) {
        if (t->n_exported == t->cap_exported) {
                size_t cap = MAX(t->cap_exported * 2, (size_t) 8);
                uint8_t(*n)[8] = realloc(t->exported, cap * 8);
                if (!n)
                        return -ENOMEM;
                t->exported = n;
                t->cap_exported = cap;
        }
        memcpy(t->exported[t->n_exported++], id, 8);
        return 0;
}

static int track_stitch(OtlpExporter *x, BootTrack *t) {
        const Machine *m = t->machine;
        uint64_t sig = spans_signature(t->boot);
        SpanSet *set;

        if (t->spans && t->spans_signature == sig)
                return 0;
        StitchContext ctx = {
                .machine_id = m->id,
                .node_id = x->registry->config.node_id,
                .request_id = m->request_id,
                .service_name = m->service_name,
                .parent_span_id = m->has_parent ? m->parent.span_id : NULL,
                .now_unix_ns = now_ns(CLOCK_REALTIME),
        };
        int r = stitch_boot(&ctx, t->boot, &set);
        if (r < 0)
                return r;
        span_set_free(t->spans);
        t->spans = set;
        t->spans_signature = sig;
        return 0;
}

static int resource_for(OtlpExporter *x, const Machine *m, const Boot *b, OtlpBlob **ret) {
        OtlpResource res = {
                .service_name = m->service_name ?: x->registry->config.default_service_name,
                .host_name = b ? b->hostname : NULL,
                .host_id = m->id,
                .machine_id = m->id,
                .node_id = x->registry->config.node_id,
                .request_id = m->request_id,
                .boot_id = b ? b->boot_id : NULL,
                .attrs = m->attrs,
                .n_attrs = m->n_attrs,
        };
        return otlp_encode_resource(&res, ret);
}

/* One bit of 64 per machine (FNV-1a of its id): requests in flight at once carry disjoint sets, so one machine's
 * items reach the backend in order. Machines that share a bit merely wait for each other. */
static uint64_t order_key(const char *machine_id) {
        uint64_t h = UINT64_C(14695981039346656037);
        for (const char *p = machine_id ?: ""; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(1099511628211);
        return UINT64_C(1) << (h % 64);
}

static void track_key(const Machine *m, const Boot *b, char key[static sizeof(((BootTrack *) NULL)->key)]) {
        snprintf(key, sizeof(((BootTrack *) NULL)->key), "%p/%p/%" PRIu64, (void *) m, (const void *) b, b->index);
}

/* The boot's track, or NULL. */
static BootTrack *track_find(OtlpExporter *x, const Machine *m, const Boot *b) {
        char key[sizeof(((BootTrack *) NULL)->key)];
        BootTrack *t;

        t = x->last_track;
        if (t && t->machine == m && t->boot == b && t->boot_index == b->index)
                return t;
        /* The index keeps the per-record cost independent of how many machines the node runs. */
        track_key(m, b, key);
        t = hashmap_get(x->track_index, key);
        if (t)
                x->last_track = t;
        return t;
}

/* The boot's track, created when missing. A track created for a boot that already has spans (tetherd restarted,
 * or the boot was forgotten) treats its closed spans as exported: they were, before. */
static BootTrack *track_get(OtlpExporter *x, Machine *m, Boot *b, bool fresh) {
        char key[sizeof(((BootTrack *) NULL)->key)];
        BootTrack *t;

        t = track_find(x, m, b);
        if (t)
                return t;
        track_key(m, b, key);
        t = calloc(1, sizeof(BootTrack));
        if (!t)
                return NULL;
        t->machine = m;
        t->boot = b;
        t->boot_index = b->index;
        t->order_key = order_key(m->id);
        memcpy(t->key, key, sizeof(key));
        if (hashmap_put(x->track_index, t->key, t) < 0) {
                free(t);
                return NULL;
        }
        LIST_PREPEND(tracks, x->tracks, t);
        if (!fresh && track_stitch(x, t) >= 0)
                for (size_t i = 0; i < t->spans->n_spans; i++)
                        if (!t->spans->spans[i].open)
                                (void) track_mark_exported(t, t->spans->spans[i].span_id);
        return (x->last_track = t);
}

static OtlpBlob *track_resource(OtlpExporter *x, BootTrack *t) {
        /* The hostname arrives with the Hello: rebuild until it is known. The old one stays the track's while items
         * under it may be queued, so that they are counted in the file's generations too. */
        if (t->resource && !t->resource_has_hostname && t->boot->hostname) {
                track_disown(t->old_resource);
                t->old_resource = TAKE_PTR(t->resource);
        }
        if (!t->resource && resource_for(x, t->machine, t->boot, &t->resource) >= 0) {
                t->resource_has_hostname = t->boot->hostname;
                t->resource->owner = t;
        }
        return t->resource;
}

static void track_export_spans(OtlpExporter *x, BootTrack *t, bool final);

/* Exports the spans of the boot that closed since the last call; with final, the open ones too (the boot ended
 * without closing them: exit or disconnect before ready). Closed spans are stitched and encoded from the spans
 * source, after the loop has dispatched what the record that closed them decided (a readiness answer goes out
 * before its span is encoded). Final ones now: the boot may be evicted before the source runs. */
static void export_spans(OtlpExporter *x, Machine *m, Boot *b, bool final) {
        /* A span is exported once: only with the boot's fixed clock mapping, so that it says what the API says
         * for good (on_clock_fixed() brings us back here). */
        if (x->channels[0].disabled || (!b->clock_fixed && !final))
                return;
        BootTrack *t = track_get(x, m, b, false);
        if (!t)
                return;
        if (!final) {
                t->spans_due = true;
                (void) sd_event_source_set_enabled(x->spans_source, SD_EVENT_ONESHOT);
                return;
        }
        track_export_spans(x, t, true);
}

static int on_spans_due(sd_event_source *s, void *userdata) {
        OtlpExporter *x = userdata;
        BootTrack *t;

        LIST_FOREACH(tracks, t, x->tracks)
        if (t->spans_due)
                track_export_spans(x, t, false);
        return 0;
}

static void track_export_spans(OtlpExporter *x, BootTrack *t, bool final) {
        t->spans_due = false;
        /* Open spans end at "now": stitch afresh only when they are exported too (final). Closed spans do not
         * depend on it, and the signature tells when the boot changed. */
        if (final)
                t->spans_signature = UINT64_MAX;
        if (track_stitch(x, t) < 0) {
                exporter_count_drop(x, EXPORT_SIGNAL_TRACES, EXPORT_DROP_ENCODE, 1);
                return;
        }
        OtlpBlob *res = track_resource(x, t);
        for (size_t i = 0; i < t->spans->n_spans; i++) {
                const Span *sp = &t->spans->spans[i];
                uint8_t *data;
                size_t len;

                if ((sp->open && !final) || track_exported(t, sp->span_id))
                        continue;
                if (!res || track_mark_exported(t, sp->span_id) < 0 ||
                    otlp_encode_span(t->spans->trace_id, sp, &data, &len) < 0) {
                        exporter_count_drop(x, EXPORT_SIGNAL_TRACES, EXPORT_DROP_ENCODE, 1);
                        continue;
                }
                channel_push(&x->channels[0], t->boot, res, t->order_key, data, len);
                free(data);
        }
}

static uint64_t count_lines(const char *p, size_t n) {
        uint64_t lines = 0;
        const char *end = p + n;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                lines++;
                p = nl ? nl + 1 : end;
        }
        return lines;
}

/* A stored Log record (live, or read back from the log store): one OTLP log record per line, as the API shows
 * them (a trailing newline ends the last line; the time mapped with the boot's fixed mapping, the receive time
 * stored with the record as its fallback), written straight into the logs queue from a template of what its lines
 * share. No copy of the record, no allocation; the batch work (gzip, writing, sending) runs from the worker. */
static void track_export_log(OtlpExporter *x, BootTrack *t, const LogEntry *le) {
        Channel *ch = &x->channels[1];
        const Boot *b = t->boot;

        if (le->len == 0)
                return; /* no line (and data may be NULL: read back from a boot file) */
        const char *p = (const char *) le->data, *end = p + le->len;
        if (x->shut_down) {
                exporter_count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, EXPORT_DROP_SHUTDOWN, count_lines(p, le->len));
                return;
        }
        OtlpBlob *res = track_resource(x, t);
        if (!res) {
                exporter_count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, count_lines(p, le->len));
                return;
        }
        uint64_t now = exporter_mono_ns(), queued = 0;
        (void) track_stitch(x, t);
        const Span *sp = t->spans ? span_set_find_for_time(t->spans, le->boottime_ns) : NULL;
        OtlpLogLine line = {
                .time_unix_ns = boot_to_unix_ns(b, le->boottime_ns, le->recv_unix_ns),
                .observed_unix_ns = le->recv_unix_ns,
                .trace_id = b->trace_id,
                .span_id = sp ? sp->span_id : NULL,
                .stream = le->stream,
                .source = le->source && *le->source ? le->source : NULL,
                .priority = le->priority,
                .seq = le->seq,
        };
        int r = ch->http ? otlp_log_template_protobuf(&line, &x->tmpl) : otlp_log_template_json(&line, &x->tmpl);
        if (r < 0) {
                exporter_count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, count_lines(p, le->len));
                return;
        }
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p), size, room, max_items, consumed, items;
                uint8_t *out;

                if (!ch->http) {
                        /* As many lines at once as the batch takes: one reservation, and between two bodies one
                         * copy. */
                        if (channel_reserve(
                                    ch,
                                    t->boot,
                                    res,
                                    t->order_key,
                                    otlp_log_line_json_max(&x->tmpl, n),
                                    now,
                                    &out,
                                    &room,
                                    &max_items) < 0) {
                                p += n + (nl ? 1 : 0);
                                continue;
                        }
                        size = otlp_log_lines_json(
                                &x->tmpl, p, (size_t) (end - p), room, max_items, (char *) out, &consumed, &items);
                        otlp_queue_commit_items(ch->queue, size, items);
                        queued += size;
                        p += consumed;
                        continue;
                }
                size = otlp_log_line_protobuf_size(&x->tmpl, p, n, !nl);
                if (channel_reserve(ch, t->boot, res, t->order_key, size, now, &out, NULL, NULL) >= 0) {
                        size = otlp_log_line_protobuf(&x->tmpl, p, n, !nl, out);
                        otlp_queue_commit(ch->queue, size);
                        queued += size;
                }
                p += n + (nl ? 1 : 0);
        }
        channel_queued(ch, queued);
        exporter_update_gauges(x);
}

/* The records that waited and could not be exported: counted, and live export resumes. */
static void track_logs_done(OtlpExporter *x, BootTrack *t, ExportDropReason reason) {
        if (t->logs_waiting_lines > t->logs_read_lines)
                exporter_count_boot_drop(
                        x, t->boot, EXPORT_SIGNAL_LOGS, reason, t->logs_waiting_lines - t->logs_read_lines);
        t->logs_waiting = t->logs_catching_up = false;
        t->logs_waiting_lines = t->logs_read_lines = 0;
}

typedef struct CatchUp {
        OtlpExporter *exporter;
        BootTrack *track;
        uint64_t *budget;
} CatchUp;

static int on_log_read_back(const LogEntry *e, void *userdata) {
        CatchUp *c = userdata;
        uint64_t cost = LOG_ENTRY_OVERHEAD + e->len;

        if (e->kind == LOG_ENTRY_LINES && e->len > 0) {
                c->track->logs_read_lines += count_lines((const char *) e->data, e->len);
                track_export_log(c->exporter, c->track, e);
        }
        *c->budget = *c->budget > cost ? *c->budget - cost : 0;
        /* The slice is used up, or the boot reached its share of a pressed queue: the rest on a later run. */
        return *c->budget == 0 || (!c->exporter->shutting_down && track_over_share(c->exporter, c->track));
}

/* Exports the records that waited for the boot's clock mapping, reading them back in seq order, until they are
 * all out (returns true: live export resumes) or about *budget bytes were read (returns false). Records that can
 * no longer be read (evicted from memory without a boot file, a file that fails to read) are counted unreadable. */
static bool track_catch_up(OtlpExporter *x, BootTrack *t, uint64_t *budget) {
        CatchUp c = { .exporter = x, .track = t, .budget = budget };

        int r = log_store_read(x->store, t->boot, &t->logs_cursor, on_log_read_back, &c);
        if (r > 0)
                return false;
        /* Everything stored so far was passed (or the rest cannot be read): what was not read back is lost. */
        track_logs_done(x, t, EXPORT_DROP_UNREADABLE);
        return true;
}

/* Before a track goes (its boot or machine is going, or tetherd is): the records still waiting are exported now
 * if the mapping is fixed, else counted as lost for the given reason. */
static void track_settle_logs(OtlpExporter *x, BootTrack *t, ExportDropReason reason) {
        uint64_t unbounded = UINT64_MAX;

        if (!t->logs_waiting)
                return;
        if (t->boot->clock_fixed && !x->shut_down)
                (void) track_catch_up(x, t, &unbounded);
        else
                track_logs_done(x, t, reason);
}

static int on_logs_due(sd_event_source *s, uint64_t usec, void *userdata) {
        OtlpExporter *x = userdata;
        uint64_t budget = WORK_BUDGET_MIN;
        bool more = false, blocked = false;
        BootTrack *t;

        LIST_FOREACH(tracks, t, x->tracks)
        if (t->logs_catching_up) {
                if (track_over_share(x, t))
                        blocked = true; /* its turn comes when the pressure is gone (exporter_update_gauges()) */
                else if (budget == 0 || !track_catch_up(x, t, &budget))
                        more = true;
        }
        if (!more) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                x->logs_blocked = blocked;
        }
        return 0;
}

/* A stored Log record: exported now with the boot's fixed mapping, or, while the mapping is provisional (or
 * records from then are still being read back), left to wait in the log store (see BootTrack). */
static void export_log(OtlpExporter *x, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns) {
        const Tether__Log *l = e->log;
        LogEntry entry;

        if (x->channels[1].disabled || l->data.len == 0)
                return;
        if (x->shut_down) {
                exporter_count_drop(
                        x,
                        EXPORT_SIGNAL_LOGS,
                        EXPORT_DROP_SHUTDOWN,
                        count_lines((const char *) l->data.data, l->data.len));
                return;
        }
        BootTrack *t = track_get(x, m, b, false);
        if (!t) {
                exporter_count_boot_drop(
                        x,
                        b,
                        EXPORT_SIGNAL_LOGS,
                        EXPORT_DROP_ENCODE,
                        count_lines((const char *) l->data.data, l->data.len));
                return;
        }
        bool over_share = !t->logs_waiting && b->clock_fixed && track_over_share(x, t);
        if (!b->clock_fixed || t->logs_waiting || over_share) {
                if (!t->logs_waiting) {
                        t->logs_waiting = true;
                        t->logs_cursor = (LogCursor) { .seq = e->seq - 1 };
                }
                t->logs_waiting_lines += count_lines((const char *) l->data.data, l->data.len);
                if (over_share) {
                        /* Read back from the log store once it is within its share again (FAIR_SHARE_*). */
                        b->export_deferred++;
                        x->stats->export.deferred++;
                        t->logs_catching_up = true;
                        x->logs_blocked = true;
                }
                return;
        }
        if (log_entry_from_envelope(e, recv_unix_ns, &entry) >= 0)
                track_export_log(x, t, &entry);
}

/* The boot's clock mapping was fixed: the spans that closed meanwhile and the log records that waited go out. */
static void on_clock_fixed(Registry *r, Machine *m, Boot *b, void *userdata) {
        OtlpExporter *x = userdata;
        BootTrack *t;

        export_spans(x, m, b, false);
        t = track_find(x, m, b);
        if (!t || !t->logs_waiting || t->logs_catching_up)
                return;
        t->logs_catching_up = true;
        /* A turn in every round of the bulk priority until every track caught up. */
        (void) sd_event_source_set_enabled(x->logs_source, SD_EVENT_ON);
}

static void on_record_stored(
        Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns, void *userdata) {
        OtlpExporter *x = userdata;

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_LOG:
                export_log(x, m, b, e, recv_unix_ns);
                break;
        case TETHER__ENVELOPE__MSG_MILESTONE:
        case TETHER__ENVELOPE__MSG_PHASE:
        case TETHER__ENVELOPE__MSG_READY:
        case TETHER__ENVELOPE__MSG_EXIT:
                export_spans(x, m, b, b->exit.set);
                break;
        default:
                break;
        }
}

static void on_state_changed(Registry *r, Machine *m, MachineState old_state, void *userdata) {
        OtlpExporter *x = userdata;

        if (!m->current)
                return;
        switch (m->state) {
        case MACHINE_READY:
                export_spans(x, m, m->current, false);
                break;
        case MACHINE_EXITED:
        case MACHINE_CRASHED:
        case MACHINE_DISCONNECTED:
        case MACHINE_STOPPED:
                export_spans(x, m, m->current, true);
                break;
        default:
                break;
        }
}

static void on_boot_started(Registry *r, Machine *m, Boot *b, void *userdata) {
        OtlpExporter *x = userdata;
        BootTrack *t, *n;

        /* Forget boots the machine no longer keeps. */
        LIST_FOREACH_SAFE(tracks, t, n, x->tracks) {
                if (t->machine != m)
                        continue;
                bool kept = false;
                for (size_t i = 0; i < m->n_boots; i++)
                        if (m->boots[i] == t->boot && m->boots[i]->index == t->boot_index)
                                kept = true;
                if (kept)
                        continue;
                /* An evicted boot is still readable here: it is freed, and its file removed, after this. */
                track_settle_logs(x, t, EXPORT_DROP_UNREADABLE);
                track_free(x, t);
        }
        (void) track_get(x, m, b, true);
}

static void on_boot_finished(Registry *r, Machine *m, Boot *b, void *userdata) {
        export_spans(userdata, m, b, true);
}

static void on_machine_removed(Registry *r, Machine *m, void *userdata) {
        OtlpExporter *x = userdata;
        BootTrack *t, *n;

        LIST_FOREACH_SAFE(tracks, t, n, x->tracks)
        if (t->machine == m) {
                track_settle_logs(x, t, EXPORT_DROP_UNREADABLE);
                track_free(x, t);
        }
}

static void on_event_added(Registry *r, const RegistryEvent *ev, void *userdata) {
        OtlpExporter *x = userdata;
        _cleanup_free_ uint8_t *data = NULL;
        OtlpBlob *res = NULL;
        const uint8_t *trace_id = NULL, *span_id = NULL;
        uint8_t root[8];
        size_t len;

        if (x->channels[1].disabled)
                return;
        if (x->shut_down) {
                exporter_count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_SHUTDOWN, 1);
                return;
        }
        /* Milestones and phases are on the spans already. */
        if (strcmp(ev->transition, "milestone") == 0 || strcmp(ev->transition, "phase") == 0)
                return;
        Machine *m = ev->machine;
        if (m && m->current) {
                BootTrack *t = track_get(x, m, m->current, false);
                res = t ? otlp_blob_ref(track_resource(x, t)) : NULL;
                trace_id = m->current->trace_id;
                stitch_root_span_id(m->current, root);
                span_id = root;
        } else if (m) {
                (void) resource_for(x, m, NULL, &res);
                if (m->has_parent) {
                        trace_id = m->parent.trace_id;
                        span_id = m->parent.span_id;
                }
        } else {
                OtlpResource nr = {
                        .service_name = x->registry->config.default_service_name,
                        .node_id = x->registry->config.node_id,
                };
                (void) otlp_encode_resource(&nr, &res);
        }
        if (!res || otlp_encode_event(ev->object, now_ns(CLOCK_REALTIME), trace_id, span_id, &data, &len) < 0)
                exporter_count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, 1);
        else
                channel_push(&x->channels[1], m ? m->current : NULL, res, m ? order_key(m->id) : 0, data, len);
        otlp_blob_unref(res);
}

/* ---- metrics ---- */

typedef struct MetricPush {
        OtlpExporter *x;
        Boot *boot;
        OtlpBlob *resource;
        uint64_t key;
} MetricPush;

/* Encodes one metric and queues it (an item of the metrics signal). A metric that cannot be encoded is counted,
 * and the others still go. */
static int push_metric(const OtlpMetric *m, void *userdata) {
        MetricPush *mp = userdata;
        _cleanup_free_ uint8_t *data = NULL;
        size_t len;

        if (otlp_encode_metric(m, &data, &len) < 0) {
                exporter_count_boot_drop(mp->x, mp->boot, EXPORT_SIGNAL_METRICS, EXPORT_DROP_ENCODE, 1);
                return 0;
        }
        channel_push(&mp->x->channels[EXPORT_SIGNAL_METRICS], mp->boot, mp->resource, mp->key, data, len);
        return 0;
}

/* A guest resource sample: its metrics under the resource of the machine's boot (the one its spans and logs
 * carry). */
static void on_sample_added(Registry *r, Machine *m, const GuestSample *s, void *userdata) {
        OtlpExporter *x = userdata;

        if (x->channels[EXPORT_SIGNAL_METRICS].disabled || !m->current)
                return;
        BootTrack *t = track_get(x, m, m->current, false);
        OtlpBlob *res = t ? track_resource(x, t) : NULL;
        if (!res) {
                exporter_count_boot_drop(
                        x,
                        m->current,
                        EXPORT_SIGNAL_METRICS,
                        EXPORT_DROP_ENCODE,
                        otlp_guest_sample_metrics(s, NULL, NULL));
                return;
        }
        if (s->recv_unix_ns < t->samples_window_unix_ns ||
            s->recv_unix_ns - t->samples_window_unix_ns >= SAMPLES_MIN_INTERVAL_NS) {
                t->samples_window_unix_ns = s->recv_unix_ns;
                t->samples_in_window = 0;
        }
        if (t->samples_in_window >= SAMPLE_EXPORTS_MAX) {
                exporter_count_boot_drop(
                        x,
                        m->current,
                        EXPORT_SIGNAL_METRICS,
                        EXPORT_DROP_RATE_LIMITED,
                        otlp_guest_sample_metrics(s, NULL, NULL));
                return;
        }
        t->samples_in_window++;
        MetricPush mp = { .x = x, .boot = m->current, .resource = res, .key = t->order_key };
        (void) otlp_guest_sample_metrics(s, push_metric, &mp);
}

/* tetherd's own metrics, now. */
static void export_fleet(OtlpExporter *x) {
        OtlpFleetState st = {
                .machines = x->registry->n_machines,
                .start_unix_ns = x->start_unix_ns,
                .now_unix_ns = now_ns(CLOCK_REALTIME),
                .histograms = x->histograms,
        };
        Machine *m;

        if (x->channels[EXPORT_SIGNAL_METRICS].disabled || !x->self_resource)
                return;
        LIST_FOREACH(machines, m, x->registry->machines) {
                if ((unsigned) m->state < _MACHINE_STATE_MAX)
                        st.machines_by_state[m->state]++;
                st.agents_connected += m->connected;
        }
        MetricPush mp = { .x = x, .resource = x->self_resource };
        (void) otlp_fleet_metrics(x->stats, &st, push_metric, &mp);
}

static int on_fleet_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        OtlpExporter *x = userdata;

        export_fleet(x);
        (void) sd_event_source_set_time_relative(s, x->config.metrics_interval_ns / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

void otlp_exporter_set_fleet_histograms(OtlpExporter *x, const OtlpFleetHistograms *h) {
        if (x)
                x->histograms = h;
}

static int fleet_setup(OtlpExporter *x) {
        OtlpResource self = {
                .service_name = "tetherd",
                .node_id = x->registry->config.node_id,
        };
        int r;

        x->start_unix_ns = now_ns(CLOCK_REALTIME);
        if (x->channels[EXPORT_SIGNAL_METRICS].disabled || x->config.metrics_interval_ns == 0)
                return 0;
        r = otlp_encode_resource(&self, &x->self_resource);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(
                x->event,
                &x->fleet_timer,
                CLOCK_MONOTONIC,
                x->config.metrics_interval_ns / NSEC_PER_USEC,
                USEC_PER_MSEC,
                on_fleet_timer,
                x);
        return r < 0 ? r : 0;
}

int otlp_exporter_new(
        sd_event *event, Registry *registry, Store *store, Stats *stats, const OtlpConfig *config, OtlpExporter **ret) {
        _cleanup_free_ char **headers = NULL;
        int r;

        _cleanup_(otlp_exporter_freep) OtlpExporter *x = calloc(1, sizeof(OtlpExporter));
        if (!x)
                return log_oom();
        x->event = sd_event_ref(event);
        x->file_fd = -EBADF;
        x->registry = registry;
        x->store = store;
        x->stats = stats;
        if (!(x->track_index = hashmap_new()))
                return log_oom();
        x->config = *config;
        x->config.endpoint = x->config.traces_endpoint = x->config.logs_endpoint = x->config.metrics_endpoint = NULL;
        x->config.file_path = x->config.spool_dir = NULL;
        x->config.headers = NULL;

        bool http = config->endpoint || config->traces_endpoint || config->logs_endpoint || config->metrics_endpoint;
        if (!http && config->file_path && !(x->file_path = strdup(config->file_path)))
                return log_oom();

        if (http) {
                r = otlp_http_new(event, &x->http);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the OTLP HTTP client: %m");
                headers = calloc(config->n_headers + 1, sizeof(char *));
                if (!headers)
                        return log_oom();
                for (size_t i = 0; i < config->n_headers; i++) {
                        r = otlp_header_from_option(config->headers[i], &headers[i]);
                        if (r < 0) {
                                for (size_t j = 0; j < i; j++)
                                        free(headers[j]);
                                return log_error_errno(r, "Invalid OTLP header '%s': %m", config->headers[i]);
                        }
                }
                if (config->spool_dir) {
                        r = otlp_spool_open(config->spool_dir, config->spool_bytes, &x->spool);
                        if (r < 0)
                                log_warning_errno(
                                        r,
                                        "Failed to open the OTLP spool %s, continuing without: %m",
                                        config->spool_dir);
                        else if (otlp_spool_bytes(x->spool) > 0)
                                log_info(
                                        "OTLP spool %s holds %" PRIu64 " bytes from before, replaying them first.",
                                        config->spool_dir,
                                        otlp_spool_bytes(x->spool));
                }
        }

        for (size_t i = 0; i < N_CHANNELS; i++) {
                r = channel_setup(x, &x->channels[i], (ExportSignal) i, config, http, (const char *const *) headers);
                if (r < 0)
                        break;
        }
        for (size_t j = 0; headers && j < config->n_headers; j++)
                free(headers[j]);
        if (r < 0)
                return log_error_errno(r, "Failed to set up OTLP export: %m");
        if (!http)
                log_info("Exporting OTLP/JSON to %s.", x->file_path ?: "(nowhere)");
        for (size_t i = 0; i < N_CHANNELS; i++)
                x->stats->export.enabled[x->channels[i].signal] = !x->channels[i].disabled;
        x->stats->export.spool_limit_bytes = x->spool ? config->spool_bytes : 0;
        r = fleet_setup(x);
        if (r < 0)
                return log_error_errno(r, "Failed to set up OTLP metrics export: %m");

        /* Bulk priority, in turns with the busy connections (event-util.h): export keeps pace with what they
         * store (see WORK_BUDGET_MIN) without holding up a quiet guest's Ready or the API. */
        r = event_add_turn(event, &x->worker, channels_on_worker, x);
        if (r >= 0)
                r = sd_event_source_set_priority(x->worker, EVENT_PRIORITY_BULK);
        if (r < 0)
                return log_error_errno(r, "Failed to set up OTLP export: %m");
        r = sd_event_add_defer(event, &x->spans_source, on_spans_due, x);
        if (r < 0)
                return log_error_errno(r, "Failed to set up OTLP export: %m");
        (void) sd_event_source_set_enabled(x->spans_source, SD_EVENT_OFF);
        /* Reading back log records that waited for their boot's clock mapping is batch work too. */
        r = event_add_turn(event, &x->logs_source, on_logs_due, x);
        if (r >= 0)
                r = sd_event_source_set_priority(x->logs_source, EVENT_PRIORITY_BULK);
        if (r < 0)
                return log_error_errno(r, "Failed to set up OTLP export: %m");

        RegistryObserver o = {
                .record_stored = on_record_stored,
                .state_changed = on_state_changed,
                .boot_started = on_boot_started,
                .boot_finished = on_boot_finished,
                .event_added = on_event_added,
                .machine_removed = on_machine_removed,
                .clock_fixed = on_clock_fixed,
                .sample_added = on_sample_added,
                .userdata = x,
        };
        r = registry_add_observer(registry, &o);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe the OTLP exporter: %m");
        /* Replay what the spool kept from before a restart. */
        for (size_t i = 0; i < N_CHANNELS; i++)
                if (x->channels[i].http)
                        channel_pump(&x->channels[i]);
        exporter_update_gauges(x);
        *ret = TAKE_PTR(x);
        return 0;
}

void otlp_exporter_shutdown(OtlpExporter *x) {
        if (!x || x->shut_down)
                return;
        /* The last interval of tetherd's own metrics goes with the final flush: they are cumulative, so this
         * point holds every count up to the shutdown (a restart starts them again). */
        if (x->fleet_timer)
                export_fleet(x);
        x->shutting_down = true;
        x->fleet_timer = sd_event_source_disable_unref(x->fleet_timer);
        /* Spans that closed and wait for the spans source go with the rest, and so do the log records that waited
         * for their boot's clock mapping (every connection is closed: every mapping is fixed). */
        (void) on_spans_due(x->spans_source, x);
        BootTrack *t;
        LIST_FOREACH(tracks, t, x->tracks)
        track_settle_logs(x, t, EXPORT_DROP_SHUTDOWN);
        (void) sd_event_source_set_enabled(x->logs_source, SD_EVENT_OFF);

        if (!x->http) {
                for (size_t i = 0; i < N_CHANNELS; i++)
                        channel_pump(&x->channels[i]);
        } else if (x->spool) {
                /* Everything goes to disk under its id: what was being sent keeps its place before the queue. */
                for (size_t i = 0; i < N_CHANNELS; i++) {
                        Channel *ch = &x->channels[i];
                        if (ch->disabled)
                                continue;
                        channel_abort_requests(ch, true);
                        (void) otlp_queue_seal(ch->queue, exporter_mono_ns(), true);
                        for (;;) {
                                int r = channel_spill(ch);
                                if (r == 0)
                                        break;
                                if (r == -ENOSPC) {
                                        exporter_count_drop(
                                                x, ch->signal, EXPORT_DROP_SPOOL_FULL, otlp_queue_clear(ch->queue));
                                        break;
                                }
                                if (r < 0) {
                                        exporter_count_drop(
                                                x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
                                        break;
                                }
                        }
                }
        } else {
                uint64_t deadline = exporter_mono_ns() + x->config.shutdown_timeout_ns;
                for (size_t i = 0; i < N_CHANNELS; i++)
                        if (!x->channels[i].disabled)
                                (void) otlp_queue_seal(x->channels[i].queue, exporter_mono_ns(), true);
                for (;;) {
                        bool busy = false;
                        for (size_t i = 0; i < N_CHANNELS; i++) {
                                Channel *ch = &x->channels[i];
                                if (ch->disabled)
                                        continue;
                                ch->backing_off = false;
                                (void) otlp_queue_work(ch->queue, UINT64_MAX);
                                channel_start_requests(ch);
                                busy = busy || channel_busy(ch);
                        }
                        uint64_t now = exporter_mono_ns();
                        if (!busy || now >= deadline)
                                break;
                        otlp_http_drain(x->http, deadline - now);
                }
                for (size_t i = 0; i < N_CHANNELS; i++) {
                        Channel *ch = &x->channels[i];
                        if (ch->disabled)
                                continue;
                        channel_abort_requests(ch, false);
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, otlp_queue_clear(ch->queue));
                }
        }
        for (size_t i = 0; i < N_CHANNELS; i++)
                if (x->channels[i].timer)
                        channel_arm_timer(&x->channels[i], UINT64_MAX);
        if (x->worker) {
                (void) sd_event_source_set_enabled(x->worker, SD_EVENT_OFF);
                x->worker_on = false;
        }
        x->shut_down = true;
        exporter_update_gauges(x);
}

OtlpExporter *otlp_exporter_free(OtlpExporter *x) {
        if (!x)
                return NULL;
        registry_remove_observers(x->registry, x);
        sd_event_source_disable_unref(x->worker);
        sd_event_source_disable_unref(x->spans_source);
        sd_event_source_disable_unref(x->logs_source);
        sd_event_source_disable_unref(x->fleet_timer);
        otlp_blob_unref(x->self_resource);
        while (x->tracks) {
                track_logs_done(x, x->tracks, EXPORT_DROP_SHUTDOWN);
                track_free(x, x->tracks);
        }
        hashmap_free(x->track_index);
        for (size_t i = 0; i < N_CHANNELS; i++) {
                Channel *ch = &x->channels[i];
                for (size_t j = 0; j < INFLIGHT_MAX; j++) {
                        Request *rq = &ch->slots[j];
                        otlp_http_call_cancel(rq->call);
                        if (rq->batch || rq->body)
                                exporter_count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, rq->items);
                        if (ch->queue)
                                channel_request_clear(ch, rq);
                        otlp_http_call_free(rq->call);
                }
                if (ch->queue) {
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, otlp_queue_items(ch->queue));
                        otlp_queue_free(ch->queue);
                }
                sd_event_source_disable_unref(ch->timer);
        }
        otlp_http_free(x->http);
        otlp_spool_free(x->spool);
        channel_file_release_prealloc(x);
        safe_close(x->file_fd);
        free(x->file_path);
        sd_event_unref(x->event);
        free(x);
        return NULL;
}
