/* SPDX-License-Identifier: MIT */
#include "otlp-exporter.h"

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

#include "fs-util.h"
#include "hashmap.h"
#include "jsonlog.h"
#include "list.h"
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

typedef struct OtlpExporter OtlpExporter;

/* What the exporter knows about one boot: its resource, the spans already exported, the last stitch (reused
 * for log/trace correlation while the boot does not change). */
typedef struct BootTrack {
        LIST_FIELDS(struct BootTrack, tracks);
        Machine *machine;
        const Boot *boot;
        uint64_t boot_index; /* tells this boot from a later one allocated at the same address */
        OtlpBlob *resource;
        bool resource_has_hostname;
        SpanSet *spans;
        uint64_t spans_signature;
        uint8_t (*exported)[8];
        size_t n_exported, cap_exported;
        char key[64]; /* machine, boot and boot index: the track_index key */
} BootTrack;

typedef struct Channel {
        OtlpExporter *exporter;
        ExportSignal signal;
        OtlpQueue *queue;
        OtlpHttpCall *call; /* NULL: file mode */
        bool disabled;      /* HTTP mode without a URL for this signal: not exported */
        sd_event_source *timer;
        /* The request being sent (or waiting for its retry). */
        uint8_t *body;
        size_t body_len;
        uint64_t body_items;
        bool body_gzip;
        uint64_t body_spool_id; /* 0: not from the spool */
        bool backing_off;
        unsigned attempt;
        bool failing; /* logged once per outage */
} Channel;

/* A stored Log record waiting to become OTLP log records: copied as it came, with what encoding needs from the
 * registry (which may change or go before it is encoded). Encoding is deferred to an idle-priority event source
 * so that export never takes CPU from ingestion: under a flood these wait (bounded by queue_bytes, shared with
 * the encoded queue) and, when the bound is hit, are dropped as queue_full, never slowing the guest. */
typedef struct PendingLog {
        struct PendingLog *next;
        OtlpBlob *resource;
        uint8_t trace_id[16];
        uint8_t span_id[8];
        bool has_span;
        uint64_t time_unix_ns;
        uint64_t observed_unix_ns;
        Tether__LogStream stream;
        uint64_t seq;
        char *source; /* NULL: none */
        size_t len;
        char data[];
} PendingLog;

/* Log data encoded per dispatch of the idle source (at least one record): small, so that input arriving in
 * the meantime waits at most a fraction of a millisecond. */
#define PENDING_BYTES_PER_DISPATCH (8u * 1024u)

struct OtlpExporter {
        sd_event *event;
        Registry *registry;
        Stats *stats;
        OtlpConfig config;
        OtlpHttp *http;
        OtlpSpool *spool;
        Channel channels[2]; /* traces, logs */
        LIST_HEAD(BootTrack, tracks);
        Hashmap *track_index; /* key → BootTrack: every stored log record looks its boot's track up */
        char *file_path;
        int file_fd;
        uint64_t file_size;
        bool file_failing;
        bool shutting_down, shut_down;
        PendingLog *pending_head, *pending_tail;
        uint64_t pending_bytes;
        sd_event_source *pending_source; /* idle priority */
};

#define N_CHANNELS 2

void otlp_config_init(OtlpConfig *c) {
        *c = (OtlpConfig) {
                .file_max_bytes = OTLP_FILE_MAX_BYTES_DEFAULT,
                .queue_bytes = OTLP_QUEUE_BYTES_DEFAULT,
                .spool_bytes = OTLP_SPOOL_BYTES_DEFAULT,
                .gzip = true,
                .batch_items = 512,
                .batch_bytes = UINT64_C(1) << 20,
                .batch_delay_usec = USEC_PER_SEC,
                .backoff_initial_usec = USEC_PER_SEC,
                .backoff_max_usec = 5 * USEC_PER_SEC,
                .request_timeout_usec = 10 * USEC_PER_SEC,
                .shutdown_timeout_usec = 3 * USEC_PER_SEC,
        };
}

int otlp_header_from_option(const char *s, char **ret) {
        const char *sep = strpbrk(s, "=:");
        char *h;

        if (!sep || sep == s || strpbrk(s, "\r\n"))
                return -EINVAL;
        const char *v = sep + 1;
        while (*v == ' ')
                v++;
        if (asprintf(&h, "%.*s: %s", (int) (sep - s), s, v) < 0)
                return -ENOMEM;
        *ret = h;
        return 0;
}

static uint64_t mono_ns(void) {
        return now_ns(CLOCK_MONOTONIC);
}

static void update_gauges(OtlpExporter *x) {
        uint64_t q = 0;
        for (size_t i = 0; i < N_CHANNELS; i++)
                q += otlp_queue_bytes(x->channels[i].queue) + x->channels[i].body_len;
        x->stats->export.queue_bytes = q + x->pending_bytes;
        x->stats->export.spool_bytes = x->spool ? otlp_spool_bytes(x->spool) : 0;
}

static void count_drop(OtlpExporter *x, ExportSignal s, ExportDropReason r, uint64_t items) {
        x->stats->export.dropped[s][r] += items;
}

/* ---- the JSON file ---- */

static int file_open(OtlpExporter *x) {
        struct stat st;

        x->file_fd = safe_close(x->file_fd);
        int r = mkdir_parents(x->file_path, 0755);
        if (r < 0)
                return r;
        x->file_fd = open(x->file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (x->file_fd < 0)
                return -errno;
        x->file_size = fstat(x->file_fd, &st) >= 0 ? (uint64_t) st.st_size : 0;
        return 0;
}

static int file_write_line(OtlpExporter *x, const char *line) {
        size_t len = strlen(line);
        _cleanup_free_ char *rotated = NULL;
        int r;

        if (x->file_fd < 0) {
                r = file_open(x);
                if (r < 0)
                        return r;
        }
        /* Bounded: past the limit the file becomes <path>.1 (replacing the previous one). */
        if (x->file_size > 0 && x->file_size + len + 1 > x->config.file_max_bytes) {
                if (asprintf(&rotated, "%s.1", x->file_path) < 0)
                        return -ENOMEM;
                if (rename(x->file_path, rotated) < 0)
                        return -errno;
                r = file_open(x);
                if (r < 0)
                        return r;
        }
        struct iovec iov[2] = { { (void *) line, len }, { (void *) "\n", 1 } };
        ssize_t n = writev(x->file_fd, iov, 2);
        if (n < 0)
                return -errno;
        x->file_size += (uint64_t) n;
        return n == (ssize_t) (len + 1) ? 0 : -EIO;
}

/* ---- sending ---- */

static void channel_pump(Channel *ch);

static void channel_arm_timer(Channel *ch, uint64_t at_mono_ns) {
        if (at_mono_ns == UINT64_MAX) {
                (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(ch->timer, at_mono_ns / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_ONESHOT);
}

static void channel_clear_body(Channel *ch) {
        ch->body = mfree(ch->body);
        ch->body_len = 0;
        ch->body_items = 0;
        ch->body_spool_id = 0;
}

static void channel_finish_spooled(Channel *ch) {
        OtlpExporter *x = ch->exporter;
        if (ch->body_spool_id != 0)
                (void) otlp_spool_remove(x->spool, ch->body_spool_id);
}

static void on_http_done(OtlpHttpCall *c, const OtlpHttpResponse *resp, void *userdata) {
        Channel *ch = userdata;
        OtlpExporter *x = ch->exporter;
        ExportSignal s = ch->signal;
        OtlpVerdict v = otlp_classify_status(resp->status);

        if (v == OTLP_VERDICT_SUCCESS) {
                int64_t rejected = 0;
                /* A JSON answer or an empty body carries no protobuf partial_success. */
                if (resp->body_len > 0 && !(resp->content_type && strstr(resp->content_type, "json")))
                        (void) otlp_decode_partial_success(s, resp->body, resp->body_len, &rejected);
                uint64_t rej = MIN((uint64_t) rejected, ch->body_items);
                x->stats->export.requests[s]++;
                x->stats->export.items[s] += ch->body_items - rej;
                x->stats->export.bytes[s] += ch->body_len;
                x->stats->export.last_success_unix_ns[s] = now_ns(CLOCK_REALTIME);
                if (rej > 0) {
                        count_drop(x, s, EXPORT_DROP_PARTIAL, rej);
                        log_warning(
                                "OTLP %s: the backend rejected %" PRIu64 " of %" PRIu64 " items (partial success).",
                                export_signal_to_string(s),
                                rej,
                                ch->body_items);
                }
                if (ch->failing)
                        log_info("OTLP %s export delivered again.", export_signal_to_string(s));
                ch->failing = false;
                ch->attempt = 0;
                channel_finish_spooled(ch);
                channel_clear_body(ch);
        } else if (v == OTLP_VERDICT_REJECT) {
                x->stats->export.failures[s]++;
                count_drop(x, s, EXPORT_DROP_REJECTED, ch->body_items);
                log_warning(
                        "OTLP %s: the backend rejected a request of %" PRIu64 " items with HTTP %ld, not retrying.",
                        export_signal_to_string(s),
                        ch->body_items,
                        resp->status);
                ch->attempt = 0;
                channel_finish_spooled(ch);
                channel_clear_body(ch);
        } else {
                uint64_t retry_after = 0;
                uint32_t rnd = 0;

                x->stats->export.failures[s]++;
                if (resp->retry_after)
                        (void) otlp_parse_retry_after(resp->retry_after, now_ns(CLOCK_REALTIME), &retry_after);
                if (!ch->failing) {
                        if (resp->status == 0)
                                log_warning(
                                        "OTLP %s export failed (%s), retrying.",
                                        export_signal_to_string(s),
                                        resp->error);
                        else
                                log_warning(
                                        "OTLP %s export answered HTTP %ld, retrying.",
                                        export_signal_to_string(s),
                                        resp->status);
                        ch->failing = true;
                }
                if (x->shutting_down) {
                        if (ch->body_spool_id == 0) {
                                if (!x->spool ||
                                    otlp_spool_push(
                                            x->spool, s, ch->body, ch->body_len, ch->body_items, ch->body_gzip) < 0)
                                        count_drop(x, s, EXPORT_DROP_SHUTDOWN, ch->body_items);
                        }
                        channel_clear_body(ch);
                        update_gauges(x);
                        return;
                }
                /* With a spool, the request waits on disk (in order with what follows) rather than in memory. */
                if (x->spool && ch->body_spool_id == 0) {
                        int r = otlp_spool_push(x->spool, s, ch->body, ch->body_len, ch->body_items, ch->body_gzip);
                        if (r == -ENOSPC)
                                count_drop(x, s, EXPORT_DROP_SPOOL_FULL, ch->body_items);
                        if (r >= 0 || r == -ENOSPC)
                                channel_clear_body(ch);
                        else
                                log_warning_errno(
                                        r, "Failed to write to the OTLP spool, keeping the request in memory: %m");
                } else if (ch->body_spool_id != 0)
                        channel_clear_body(ch); /* re-read from the spool on the next attempt */
                (void) getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK);
                uint64_t delay = otlp_backoff_ns(
                        ch->attempt,
                        x->config.backoff_initial_usec * NSEC_PER_USEC,
                        x->config.backoff_max_usec * NSEC_PER_USEC,
                        rnd,
                        retry_after);
                if (ch->attempt < 32)
                        ch->attempt++;
                ch->backing_off = true;
                channel_arm_timer(ch, mono_ns() + delay);
        }
        update_gauges(x);
        channel_pump(ch);
}

static const char *content_type_protobuf = "application/x-protobuf";

static void channel_send_body(Channel *ch) {
        int r = otlp_http_call_start(
                ch->call, content_type_protobuf, ch->body_gzip, ch->body, ch->body_len, on_http_done, ch);
        if (r < 0) {
                /* Cannot even start (out of memory): try again later like a connection failure. */
                ch->backing_off = true;
                channel_arm_timer(ch, mono_ns() + ch->exporter->config.backoff_max_usec * NSEC_PER_USEC);
        }
}

/* Encodes the next batch into ch->body (gzipped when configured). Returns 1 when there is a body, 0 when the
 * queue had nothing due. */
static int channel_take_batch(Channel *ch, bool force) {
        OtlpExporter *x = ch->exporter;
        uint8_t *raw;
        size_t raw_len, items;
        int r;

        if (!otlp_queue_batch_due(ch->queue, mono_ns(), force))
                return 0;
        r = otlp_queue_take(ch->queue, &raw, &raw_len, &items);
        if (r < 0) {
                count_drop(x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
                return 0;
        }
        if (items == 0)
                return 0;
        ch->body_items = items;
        ch->body_spool_id = 0;
        ch->body_gzip = false;
        if (x->config.gzip && ch->call) {
                uint8_t *gz;
                size_t gz_len;
                if (otlp_gzip(raw, raw_len, &gz, &gz_len) >= 0) {
                        free(raw);
                        raw = gz;
                        raw_len = gz_len;
                        ch->body_gzip = true;
                }
        }
        ch->body = raw;
        ch->body_len = raw_len;
        return 1;
}

static void channel_write_file(Channel *ch, bool force) {
        OtlpExporter *x = ch->exporter;

        while (channel_take_batch(ch, force) > 0) {
                _cleanup_free_ char *line = NULL;
                int r = otlp_request_to_json(ch->signal, ch->body, ch->body_len, &line);
                if (r >= 0)
                        r = file_write_line(x, line);
                if (r < 0) {
                        count_drop(x, ch->signal, EXPORT_DROP_REJECTED, ch->body_items);
                        if (!x->file_failing)
                                log_warning_errno(r, "Failed to write OTLP/JSON to %s: %m", x->file_path);
                        x->file_failing = true;
                } else {
                        x->file_failing = false;
                        x->stats->export.requests[ch->signal]++;
                        x->stats->export.items[ch->signal] += ch->body_items;
                        x->stats->export.bytes[ch->signal] += strlen(line) + 1;
                        x->stats->export.last_success_unix_ns[ch->signal] = now_ns(CLOCK_REALTIME);
                }
                channel_clear_body(ch);
        }
}

static void channel_pump(Channel *ch) {
        OtlpExporter *x = ch->exporter;
        bool force = x->shutting_down;

        if (ch->disabled)
                return;
        if (!ch->call) {
                channel_write_file(ch, force);
                channel_arm_timer(ch, otlp_queue_deadline(ch->queue));
                update_gauges(x);
                return;
        }
        if (otlp_http_call_busy(ch->call))
                return;
        if (ch->backing_off) {
                /* While the backend is away, due batches go to the spool rather than fill memory. */
                if (x->spool)
                        while (channel_take_batch(ch, force) > 0) {
                                int r = otlp_spool_push(
                                        x->spool, ch->signal, ch->body, ch->body_len, ch->body_items, ch->body_gzip);
                                if (r < 0)
                                        count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, ch->body_items);
                                channel_clear_body(ch);
                        }
                update_gauges(x);
                return;
        }
        if (!ch->body && x->spool) {
                const OtlpSpoolEntry *e;
                while ((e = otlp_spool_oldest(x->spool, ch->signal))) {
                        uint64_t id = e->id, items = e->items;
                        bool gzip = e->gzip;
                        if (otlp_spool_read(x->spool, e, &ch->body, &ch->body_len) >= 0) {
                                ch->body_items = items;
                                ch->body_gzip = gzip;
                                ch->body_spool_id = id;
                                break;
                        }
                        count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, items);
                        (void) otlp_spool_remove(x->spool, id);
                }
        }
        if (!ch->body)
                (void) channel_take_batch(ch, force);
        if (ch->body)
                channel_send_body(ch);
        else
                channel_arm_timer(ch, otlp_queue_deadline(ch->queue));
        update_gauges(x);
}

static int on_channel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Channel *ch = userdata;
        ch->backing_off = false;
        channel_pump(ch);
        return 0;
}

static void channel_push(Channel *ch, OtlpBlob *resource, uint8_t *data, size_t len) {
        OtlpExporter *x = ch->exporter;

        if (ch->disabled) {
                free(data);
                return;
        }
        if (x->shut_down) {
                free(data);
                count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, 1);
                return;
        }
        uint64_t now = mono_ns();
        int r = otlp_queue_push(ch->queue, resource, data, len, now);
        if (r < 0) {
                free(data);
                count_drop(x, ch->signal, r == -ENOBUFS ? EXPORT_DROP_QUEUE_FULL : EXPORT_DROP_ENCODE, 1);
                return;
        }
        /* A due batch is written from the idle-priority timer, never here: spans and events are pushed from the
         * ingest path, and encoding, gzip or JSON of a whole batch must not run there. */
        if (!ch->backing_off) {
                if (otlp_queue_batch_due(ch->queue, now, false))
                        channel_arm_timer(ch, now);
                else if (otlp_queue_items(ch->queue) == 1)
                        channel_arm_timer(ch, otlp_queue_deadline(ch->queue));
        }
        update_gauges(x);
}

/* ---- boots ---- */

static uint64_t spans_signature(const Boot *b) {
        return (uint64_t) b->n_milestones * UINT64_C(1000003) + (uint64_t) b->n_phases * UINT64_C(7919) +
                (uint64_t) b->ready.set * 2 + (uint64_t) b->exit.set * 4 + (uint64_t) b->clock.valid * 8 +
                (uint64_t) b->clock.offset_ns + (uint64_t) b->hello_offset_ns + b->host_start_unix_ns;
}

static BootTrack *track_free(OtlpExporter *x, BootTrack *t) {
        if (!t)
                return NULL;
        LIST_REMOVE(tracks, x->tracks, t);
        (void) hashmap_remove(x->track_index, t->key);
        otlp_blob_unref(t->resource);
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

/* The boot's track, created when missing. A track created for a boot that already has spans (tetherd restarted,
 * or the boot was forgotten) treats its closed spans as exported: they were, before. */
static BootTrack *track_get(OtlpExporter *x, Machine *m, const Boot *b, bool fresh) {
        char key[sizeof(((BootTrack *) NULL)->key)];
        BootTrack *t;

        /* The index keeps the per-record cost independent of how many machines the node runs. */
        snprintf(key, sizeof(key), "%p/%p/%" PRIu64, (void *) m, (const void *) b, b->index);
        t = hashmap_get(x->track_index, key);
        if (t)
                return t;
        t = calloc(1, sizeof(BootTrack));
        if (!t)
                return NULL;
        t->machine = m;
        t->boot = b;
        t->boot_index = b->index;
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
        return t;
}

static OtlpBlob *track_resource(OtlpExporter *x, BootTrack *t) {
        /* The hostname arrives with the Hello: rebuild until it is known. */
        if (t->resource && !t->resource_has_hostname && t->boot->hostname)
                t->resource = otlp_blob_unref(t->resource);
        if (!t->resource && resource_for(x, t->machine, t->boot, &t->resource) >= 0)
                t->resource_has_hostname = t->boot->hostname;
        return t->resource;
}

/* Exports the spans of the boot that closed since the last call; with final, the open ones too (the boot ended
 * without closing them: exit or disconnect before ready). */
static void export_spans(OtlpExporter *x, Machine *m, const Boot *b, bool final) {
        /* A span is exported once: only with the boot's fixed clock mapping, so that it says what the API says
         * for good (the events emitted when the mapping is fixed bring us back here). */
        if (x->channels[0].disabled || (!b->clock_fixed && !final))
                return;
        BootTrack *t = track_get(x, m, b, false);
        if (!t)
                return;
        /* Open spans end at "now": stitch afresh only when they are exported too (final). Closed spans do not
         * depend on it, and the signature tells when the boot changed. */
        if (final)
                t->spans_signature = UINT64_MAX;
        if (track_stitch(x, t) < 0) {
                count_drop(x, EXPORT_SIGNAL_TRACES, EXPORT_DROP_ENCODE, 1);
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
                        count_drop(x, EXPORT_SIGNAL_TRACES, EXPORT_DROP_ENCODE, 1);
                        continue;
                }
                channel_push(&x->channels[0], res, data, len);
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

static PendingLog *pending_free(PendingLog *p) {
        if (!p)
                return NULL;
        otlp_blob_unref(p->resource);
        free(p->source);
        free(p);
        return NULL;
}

static uint64_t pending_cost(const PendingLog *p) {
        return sizeof(PendingLog) + p->len;
}

/* Encodes one pending record: one OTLP log record per line, as the API shows them (a trailing newline ends the
 * last line). */
static void pending_encode(OtlpExporter *x, PendingLog *pl) {
        OtlpLogLine line = {
                .time_unix_ns = pl->time_unix_ns,
                .observed_unix_ns = pl->observed_unix_ns,
                .trace_id = pl->trace_id,
                .span_id = pl->has_span ? pl->span_id : NULL,
                .stream = pl->stream,
                .source = pl->source,
                .seq = pl->seq,
        };
        const char *p = pl->data, *end = p + pl->len;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                _cleanup_free_ char *body = utf8_sanitize(p, n, NULL);
                uint8_t *data;
                size_t len;

                line.body = body;
                line.partial = !nl;
                if (!pl->resource || !body || otlp_encode_log_line(&line, &data, &len) < 0)
                        count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, 1);
                else
                        channel_push(&x->channels[1], pl->resource, data, len);
                p += n + (nl ? 1 : 0);
        }
}

/* Encodes pending records, oldest first, until at least budget bytes of log data went. Returns 1 if some are
 * left, 0 if none. */
static int pending_process(OtlpExporter *x, uint64_t budget) {
        for (uint64_t done = 0; done < budget && x->pending_head;) {
                PendingLog *pl = x->pending_head;
                x->pending_head = pl->next;
                if (!x->pending_head)
                        x->pending_tail = NULL;
                x->pending_bytes -= pending_cost(pl);
                done += pl->len;
                pending_encode(x, pl);
                pending_free(pl);
        }
        update_gauges(x);
        return x->pending_head ? 1 : 0;
}

static int on_pending(sd_event_source *s, void *userdata) {
        OtlpExporter *x = userdata;

        if (pending_process(x, PENDING_BYTES_PER_DISPATCH) == 0)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static void export_log(OtlpExporter *x, Machine *m, Boot *b, const Tether__Envelope *e) {
        const Tether__Log *l = e->log;
        uint64_t recv = now_ns(CLOCK_REALTIME);

        if (x->channels[1].disabled || l->data.len == 0)
                return;
        if (x->shut_down) {
                count_drop(
                        x,
                        EXPORT_SIGNAL_LOGS,
                        EXPORT_DROP_SHUTDOWN,
                        count_lines((const char *) l->data.data, l->data.len));
                return;
        }
        /* The bound covers what waits here and what waits encoded: both are memory the export holds. */
        uint64_t cost = sizeof(PendingLog) + l->data.len;
        if (x->pending_bytes + otlp_queue_bytes(x->channels[1].queue) + cost > x->config.queue_bytes) {
                count_drop(
                        x,
                        EXPORT_SIGNAL_LOGS,
                        EXPORT_DROP_QUEUE_FULL,
                        count_lines((const char *) l->data.data, l->data.len));
                return;
        }

        BootTrack *t = track_get(x, m, b, false);
        PendingLog *pl = t ? malloc(sizeof(PendingLog) + l->data.len) : NULL;
        if (!pl) {
                count_drop(
                        x,
                        EXPORT_SIGNAL_LOGS,
                        EXPORT_DROP_ENCODE,
                        count_lines((const char *) l->data.data, l->data.len));
                return;
        }
        (void) track_stitch(x, t);
        const Span *sp = t->spans ? span_set_find_for_time(t->spans, l->boottime_ns) : NULL;
        *pl = (PendingLog) {
                .resource = otlp_blob_ref(track_resource(x, t)),
                .time_unix_ns = boot_to_unix_ns(b, l->boottime_ns, recv),
                .observed_unix_ns = recv,
                .has_span = sp != NULL,
                .stream = l->stream,
                .seq = b->last_seq,
                .source = l->source && *l->source ? strdup(l->source) : NULL,
                .len = l->data.len,
        };
        memcpy(pl->trace_id, b->trace_id, 16);
        if (sp)
                memcpy(pl->span_id, sp->span_id, 8);
        memcpy(pl->data, l->data.data, l->data.len);

        if (x->pending_tail)
                x->pending_tail->next = pl;
        else
                x->pending_head = pl;
        x->pending_tail = pl;
        x->pending_bytes += cost;
        (void) sd_event_source_set_enabled(x->pending_source, SD_EVENT_ON);
        update_gauges(x);
}

static void on_record_stored(Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, void *userdata) {
        OtlpExporter *x = userdata;

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_LOG:
                export_log(x, m, b, e);
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
                if (!kept)
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
        if (t->machine == m)
                track_free(x, t);
}

static void on_event_added(Registry *r, const Event *ev, void *userdata) {
        OtlpExporter *x = userdata;
        _cleanup_free_ uint8_t *data = NULL;
        OtlpBlob *res = NULL;
        const uint8_t *trace_id = NULL, *span_id = NULL;
        uint8_t root[8];
        size_t len;

        if (x->channels[1].disabled)
                return;
        json_t *o = json_loads(ev->json, 0, NULL);
        if (!o) {
                count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, 1);
                return;
        }
        const char *transition = json_string_value(json_object_get(o, "transition"));
        /* Milestones and phases are on the spans already. */
        if (!transition || strcmp(transition, "milestone") == 0 || strcmp(transition, "phase") == 0) {
                json_decref(o);
                return;
        }
        Machine *m = ev->machine_id ? registry_find(r, ev->machine_id) : NULL;
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
        if (!res || otlp_encode_event(o, now_ns(CLOCK_REALTIME), trace_id, span_id, &data, &len) < 0)
                count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, 1);
        else
                channel_push(&x->channels[1], res, TAKE_PTR(data), len);
        otlp_blob_unref(res);
        json_decref(o);
}

/* ---- setup ---- */

static int url_join(const char *base, const char *path, char **ret) {
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                n--;
        return asprintf(ret, "%.*s%s", (int) n, base, path) < 0 ? -ENOMEM : 0;
}

int otlp_exporter_new(sd_event *event, Registry *registry, Stats *stats, const OtlpConfig *config, OtlpExporter **ret) {
        static const char *const paths[N_CHANNELS] = { "/v1/traces", "/v1/logs" };
        _cleanup_free_ char **headers = NULL;
        int r;

        OtlpExporter *x = calloc(1, sizeof(OtlpExporter));
        if (!x)
                return log_oom();
        x->event = sd_event_ref(event);
        if (!(x->track_index = hashmap_new())) {
                free(x);
                sd_event_unref(event);
                return log_oom();
        }
        x->registry = registry;
        x->stats = stats;
        x->config = *config;
        x->file_fd = -EBADF;
        x->config.endpoint = x->config.traces_endpoint = x->config.logs_endpoint = NULL;
        x->config.file_path = x->config.spool_dir = NULL;
        x->config.headers = NULL;

        bool http = config->endpoint || config->traces_endpoint || config->logs_endpoint;
        if (!http && config->file_path && !(x->file_path = strdup(config->file_path))) {
                otlp_exporter_free(x);
                return log_oom();
        }

        if (http) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                        otlp_exporter_free(x);
                        return log_error_errno(EIO, "Failed to initialize libcurl.");
                }
                r = otlp_http_new(event, &x->http);
                if (r < 0) {
                        otlp_exporter_free(x);
                        return log_error_errno(r, "Failed to set up the OTLP HTTP client: %m");
                }
                headers = calloc(config->n_headers + 1, sizeof(char *));
                if (!headers) {
                        otlp_exporter_free(x);
                        return log_oom();
                }
                for (size_t i = 0; i < config->n_headers; i++) {
                        r = otlp_header_from_option(config->headers[i], &headers[i]);
                        if (r < 0) {
                                for (size_t j = 0; j < i; j++)
                                        free(headers[j]);
                                otlp_exporter_free(x);
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

        OtlpQueueLimits limits = {
                .max_bytes = config->queue_bytes,
                .batch_items = config->batch_items,
                .batch_bytes = config->batch_bytes,
                .batch_delay_ns = config->batch_delay_usec * NSEC_PER_USEC,
        };
        for (size_t i = 0; i < N_CHANNELS; i++) {
                Channel *ch = &x->channels[i];
                ch->exporter = x;
                ch->signal = i == 0 ? EXPORT_SIGNAL_TRACES : EXPORT_SIGNAL_LOGS;
                r = otlp_queue_new(ch->signal, &limits, &ch->queue);
                if (r >= 0)
                        r = sd_event_add_time(
                                event, &ch->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_channel_timer, ch);
                /* Batches are written (JSON, gzip) when ingestion leaves time for it. */
                if (r >= 0)
                        r = sd_event_source_set_priority(ch->timer, SD_EVENT_PRIORITY_IDLE);
                if (r >= 0 && http) {
                        _cleanup_free_ char *url = NULL;
                        const char *override = i == 0 ? config->traces_endpoint : config->logs_endpoint;
                        if (override)
                                url = strdup(override);
                        else if (config->endpoint)
                                r = url_join(config->endpoint, paths[i], &url);
                        else {
                                /* Only the other signal has an endpoint: this one is not exported. */
                                ch->disabled = true;
                                log_info(
                                        "Not exporting OTLP %s: no endpoint for them.",
                                        export_signal_to_string(ch->signal));
                                (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_OFF);
                                continue;
                        }
                        r = r >= 0 && url ? otlp_http_call_new(
                                                    x->http,
                                                    url,
                                                    (const char *const *) headers,
                                                    config->n_headers,
                                                    config->request_timeout_usec,
                                                    &ch->call) :
                                            -ENOMEM;
                        if (r >= 0)
                                log_info(
                                        "Exporting OTLP %s to %s%s.",
                                        export_signal_to_string(ch->signal),
                                        url,
                                        x->spool ? " (spooling to disk while it is unreachable)" : "");
                }
                if (r < 0) {
                        for (size_t j = 0; j < config->n_headers; j++)
                                free(headers[j]);
                        otlp_exporter_free(x);
                        return log_error_errno(r, "Failed to set up OTLP export: %m");
                }
                (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_OFF);
        }
        for (size_t j = 0; j < config->n_headers; j++)
                free(headers[j]);
        if (!http)
                log_info("Exporting OTLP/JSON to %s.", x->file_path ?: "(nowhere)");

        r = sd_event_add_defer(event, &x->pending_source, on_pending, x);
        if (r >= 0)
                r = sd_event_source_set_priority(x->pending_source, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                otlp_exporter_free(x);
                return log_error_errno(r, "Failed to set up OTLP log encoding: %m");
        }
        (void) sd_event_source_set_enabled(x->pending_source, SD_EVENT_OFF);

        RegistryObserver o = {
                .record_stored = on_record_stored,
                .state_changed = on_state_changed,
                .boot_started = on_boot_started,
                .boot_finished = on_boot_finished,
                .event_added = on_event_added,
                .machine_removed = on_machine_removed,
                .userdata = x,
        };
        r = registry_add_observer(registry, &o);
        if (r < 0) {
                otlp_exporter_free(x);
                return log_error_errno(r, "Failed to subscribe the OTLP exporter: %m");
        }
        /* Replay what the spool kept from before a restart. */
        for (size_t i = 0; i < N_CHANNELS; i++)
                if (x->channels[i].call)
                        channel_pump(&x->channels[i]);
        update_gauges(x);
        *ret = x;
        return 0;
}

void otlp_exporter_shutdown(OtlpExporter *x) {
        if (!x || x->shut_down)
                return;
        x->shutting_down = true;
        /* What waited for idle time is encoded now, then goes the way of the rest of the queue. */
        while (pending_process(x, UINT64_MAX) > 0)
                ;
        (void) sd_event_source_set_enabled(x->pending_source, SD_EVENT_OFF);

        if (!x->http) {
                for (size_t i = 0; i < N_CHANNELS; i++)
                        channel_pump(&x->channels[i]);
        } else if (x->spool) {
                /* Everything goes to disk, in order: what was being sent first, then the queue. */
                for (size_t i = 0; i < N_CHANNELS; i++) {
                        Channel *ch = &x->channels[i];
                        otlp_http_call_cancel(ch->call);
                        if (ch->body && ch->body_spool_id == 0 &&
                            otlp_spool_push(
                                    x->spool, ch->signal, ch->body, ch->body_len, ch->body_items, ch->body_gzip) < 0)
                                count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, ch->body_items);
                        channel_clear_body(ch);
                        while (channel_take_batch(ch, true) > 0) {
                                if (otlp_spool_push(
                                            x->spool,
                                            ch->signal,
                                            ch->body,
                                            ch->body_len,
                                            ch->body_items,
                                            ch->body_gzip) < 0)
                                        count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, ch->body_items);
                                channel_clear_body(ch);
                        }
                }
        } else {
                uint64_t deadline = mono_ns() + x->config.shutdown_timeout_usec * NSEC_PER_USEC;
                for (;;) {
                        bool busy = false;
                        for (size_t i = 0; i < N_CHANNELS; i++) {
                                Channel *ch = &x->channels[i];
                                ch->backing_off = false;
                                if (!otlp_http_call_busy(ch->call))
                                        channel_pump(ch);
                                busy = busy || otlp_http_call_busy(ch->call);
                        }
                        uint64_t now = mono_ns();
                        if (!busy || now >= deadline)
                                break;
                        otlp_http_drain(x->http, (deadline - now) / NSEC_PER_USEC);
                }
                for (size_t i = 0; i < N_CHANNELS; i++) {
                        Channel *ch = &x->channels[i];
                        otlp_http_call_cancel(ch->call);
                        count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, ch->body_items);
                        channel_clear_body(ch);
                        count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, otlp_queue_clear(ch->queue));
                }
        }
        for (size_t i = 0; i < N_CHANNELS; i++)
                (void) sd_event_source_set_enabled(x->channels[i].timer, SD_EVENT_OFF);
        x->shut_down = true;
        update_gauges(x);
}

OtlpExporter *otlp_exporter_free(OtlpExporter *x) {
        if (!x)
                return NULL;
        registry_remove_observers(x->registry, x);
        for (PendingLog *p = x->pending_head, *n; p; p = n) {
                n = p->next;
                count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_SHUTDOWN, count_lines(p->data, p->len));
                pending_free(p);
        }
        x->pending_head = x->pending_tail = NULL;
        sd_event_source_disable_unref(x->pending_source);
        while (x->tracks)
                track_free(x, x->tracks);
        hashmap_free(x->track_index);
        for (size_t i = 0; i < N_CHANNELS; i++) {
                Channel *ch = &x->channels[i];
                otlp_http_call_free(ch->call);
                free(ch->body);
                if (ch->queue) {
                        count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, otlp_queue_items(ch->queue));
                        otlp_queue_free(ch->queue);
                }
                sd_event_source_disable_unref(ch->timer);
        }
        otlp_http_free(x->http);
        otlp_spool_free(x->spool);
        safe_close(x->file_fd);
        free(x->file_path);
        sd_event_unref(x->event);
        free(x);
        return NULL;
}
