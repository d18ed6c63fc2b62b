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

typedef struct OtlpExporter OtlpExporter;

#define N_SIGNALS _EXPORT_SIGNAL_MAX

/* What the exporter knows about one boot: its resource, the spans already exported, the last stitch (reused
 * for log/trace correlation while the boot does not change), and where its log records wait for the boot's clock
 * mapping. */
typedef struct BootTrack {
        LIST_FIELDS(struct BootTrack, tracks);
        Machine *machine;
        Boot *boot;
        uint64_t boot_index;    /* tells this boot from a later one allocated at the same address */
        OtlpBlob *resource;     /* its owner is the track (file generations below) */
        OtlpBlob *old_resource; /* the one made before the hostname was known: queued items may still be under it */
        bool resource_has_hostname;
        SpanSet *spans;
        uint64_t spans_signature;
        uint8_t (*exported)[8];
        size_t n_exported, cap_exported;
        uint64_t order_key; /* the machine's bit: requests in flight together share none */
        bool spans_due;     /* closed spans to export from the spans source */
        char key[64];       /* machine, boot and boot index: the track_index key */

        /* A log record's time is exported once, so only with the boot's fixed clock mapping (the one the API
         * shows for good). Records stored before it was fixed are not copied: the track remembers where they
         * begin, and once the mapping is fixed reads them back from the log store (memory tail or boot file) in
         * seq order, a slice per turn of the logs source, until it has caught up with what is stored; then live
         * export resumes. Records stored meanwhile wait behind them. */
        bool logs_waiting;           /* the records after logs_cursor.seq are not exported yet */
        bool logs_catching_up;       /* the mapping is fixed: reading them back */
        LogCursor logs_cursor;       /* the last record read back (or the one before the first waiting) */
        uint64_t logs_waiting_lines; /* lines of the records that waited, to count those that cannot be read */
        uint64_t logs_read_lines;    /* lines read back so far */

        /* Its items (every signal) written to the OTLP/JSON file: in the current generation, and in <path>.1.
         * The rotation that deletes <path>.1 counts the boot's items in it in its export_dropped, as every other
         * loss of a boot's items is: a flood's rotation deleting a quiet machine's lines shows on that machine.
         * Two counters per track keep this bounded by the boots the exporter tracks; a boot forgotten before
         * the rotation is counted node-wide only. */
        uint64_t file_items;
        uint64_t file_prev_items;
} BootTrack;

/* Requests in flight per signal. Concurrent requests never carry items of the same machine (order keys), so
 * that a backend receives each boot's items in order; more than a few gain nothing against one backend. */
#define INFLIGHT_MAX 4

/* One request: being sent, or (without a spool) waiting for its retry. */
typedef struct Channel Channel;

typedef struct Request {
        Channel *channel;
        OtlpHttpCall *call;
        bool busy;        /* in flight */
        bool waiting;     /* failed, waiting for the retry in memory */
        OtlpBatch *batch; /* from the queue (its memory counted there), or NULL */
        uint8_t *body;    /* read back from the spool: held in the queue's bound */
        size_t body_len;
        uint64_t id, items, keys;
        bool gzip;
        bool spooled; /* its file is in the spool: removed once delivered or rejected */
} Request;

struct Channel {
        OtlpExporter *exporter;
        ExportSignal signal;
        OtlpQueue *queue;
        bool http;              /* else the JSON file */
        bool disabled;          /* HTTP mode without a URL for this signal: not exported */
        sd_event_source *timer; /* the open batch's delay, the backoff */
        uint64_t timer_at;      /* UINT64_MAX: off */
        Request slots[INFLIGHT_MAX];
        bool backing_off;
        unsigned attempt;
        bool failing; /* logged once per outage */
};

/* Fair shares of the logs queue. Under pressure (the queue's waiting item bytes at a quarter of its bound), a
 * boot holding more than its share of them stops exporting live: its records wait in the log store (its boot
 * file, or memory without a state directory) and are read back, a slice per turn, once it is within its share
 * again, exactly as records that waited for the boot's clock mapping. A flooding machine's lines thus wait on its
 * own disk instead of pushing a quiet machine's out of the queue. The share is that quarter divided among the
 * boots with items waiting (at least FAIR_SHARE_MIN_BYTES or an eighth of the bound). While the spool is at half
 * its bound, every boot's records wait (its content cannot be told apart by boot). */
#define FAIR_SHARE_MIN_BYTES (64u << 10)
#define FAIR_SHARE_REFRESH_NS (50 * NSEC_PER_MSEC)

/* Batch work (assembly, gzip, writing, starting requests) per dispatch of the worker: at least this much, and at
 * least what was queued since the last dispatch, so that export keeps pace with ingestion instead of falling
 * behind forever, while each dispatch stays short enough (about a millisecond) not to hold guests up. */
#define WORK_BUDGET_MIN (256u * 1024u)

struct OtlpExporter {
        sd_event *event;
        Registry *registry;
        Store *store; /* the log store's files (NULL: no state directory, the records are in memory only) */
        Stats *stats;
        OtlpConfig config;
        OtlpHttp *http;
        OtlpSpool *spool;
        uint64_t next_id;    /* request order without a spool */
        Channel channels[2]; /* traces, logs */
        LIST_HEAD(BootTrack, tracks);
        Hashmap *track_index;  /* key → BootTrack: every stored log record looks its boot's track up */
        BootTrack *last_track; /* the last one looked up: a burst of one boot skips the index */
        char *file_path;
        int file_fd;
        uint64_t file_size;
        uint64_t file_items[N_SIGNALS];      /* written to the file (this tetherd's), per signal; per boot: BootTrack */
        uint64_t file_prev_items[N_SIGNALS]; /* in <path>.1, deleted by the next rotation */
        uint64_t file_alloc_end;             /* space reserved up to here (fallocate, the size kept) */
        bool file_no_prealloc;               /* the file system does not preallocate */
        bool file_failing;
        bool shutting_down, shut_down;
        sd_event_source *worker;       /* normal priority, enabled while batch work waits */
        sd_event_source *spans_source; /* exports the closed spans of tracks marked spans_due */
        sd_event_source *logs_source;  /* bulk priority, on while tracks catch up: reads their log records back */
        bool worker_on;
        bool logs_blocked;    /* tracks wait for the pressure on the logs queue to end (logs_source off) */
        uint64_t share_bytes; /* a boot's fair share of the logs queue, refreshed every FAIR_SHARE_REFRESH_NS */
        uint64_t share_at_ns;
        uint64_t queued_since_work; /* bytes */
        OtlpLogTemplate tmpl;       /* of the record being written */
};

#define N_CHANNELS 2

void otlp_config_init(OtlpConfig *c) {
        *c = (OtlpConfig) {
                .file_max_bytes = OTLP_FILE_MAX_BYTES_DEFAULT,
                .queue_bytes = OTLP_QUEUE_BYTES_DEFAULT,
                .spool_bytes = OTLP_SPOOL_BYTES_DEFAULT,
                .gzip = true,
                .batch_items = 8192,
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

static bool logs_pressed(OtlpExporter *x);

/* After every change of what waits: the gauges, and the tracks held back by the pressure resume once it is gone. */
static void update_gauges(OtlpExporter *x) {
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

static void count_drop(OtlpExporter *x, ExportSignal s, ExportDropReason r, uint64_t items) {
        x->stats->export.dropped[s][r] += items;
}

static void count_delivered(OtlpExporter *x, ExportSignal s, uint64_t items, uint64_t bytes) {
        x->stats->export.requests[s]++;
        x->stats->export.items[s] += items;
        x->stats->export.bytes[s] += bytes;
        x->stats->export.last_success_unix_ns[s] = now_ns(CLOCK_REALTIME);
}

/* Items of a boot that could not be exported: node-wide, and the boot's own count. */
static void count_boot_drop(OtlpExporter *x, Boot *b, ExportSignal s, ExportDropReason r, uint64_t items) {
        count_drop(x, s, r, items);
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
        uint64_t now = mono_ns();

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

static void worker_kick(OtlpExporter *x) {
        if (!x->worker_on && x->worker) {
                (void) sd_event_source_set_enabled(x->worker, SD_EVENT_ON);
                x->worker_on = true;
        }
}

/* ---- the JSON file ---- */

/* The file's space is reserved ahead in steps of this much: writing into space already allocated costs the
 * kernel less per page than delayed allocation does (ext4: no per-block reservation, extent-status and quota
 * update at write time), about a quarter of the write's CPU. */
#define FILE_PREALLOC_STEP (UINT64_C(8) << 20)

/* Gives back the space reserved beyond what was written (a truncate to the same size does that). */
static void file_release_prealloc(OtlpExporter *x) {
        if (x->file_fd >= 0 && x->file_alloc_end > x->file_size)
                (void) ftruncate(x->file_fd, (off_t) x->file_size);
        x->file_alloc_end = 0;
}

static void file_prealloc(OtlpExporter *x, size_t len) {
        uint64_t need = x->file_size + len;

        if (x->file_no_prealloc || need <= x->file_alloc_end)
                return;
        uint64_t from = MAX(x->file_alloc_end, x->file_size);
        uint64_t to = MAX(MIN(from + FILE_PREALLOC_STEP, x->config.file_max_bytes), need);
        if (fallocate(x->file_fd, FALLOC_FL_KEEP_SIZE, (off_t) from, (off_t) (to - from)) < 0) {
                /* Not supported, or no room to reserve: plain writes, which fail by themselves when it matters. */
                if (errno == EOPNOTSUPP || errno == ENOSYS)
                        x->file_no_prealloc = true;
                return;
        }
        x->file_alloc_end = to;
}

static int file_open(OtlpExporter *x) {
        struct stat st;

        file_release_prealloc(x);
        x->file_fd = safe_close(x->file_fd);
        int r = mkdir_parents(x->file_path, 0755);
        if (r < 0)
                return r;
        x->file_fd = open(x->file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (x->file_fd < 0)
                return -errno;
        x->file_size = fstat(x->file_fd, &st) >= 0 ? (uint64_t) st.st_size : 0;
        x->file_alloc_end = 0;
        return 0;
}

/* One line, from its pieces (the newline is the last piece's). */
static int file_write_line(OtlpExporter *x, struct iovec *iov, size_t n, size_t len) {
        _cleanup_free_ char *rotated = NULL;
        int r;

        if (x->file_fd < 0) {
                r = file_open(x);
                if (r < 0)
                        return r;
        }
        /* Bounded: past the limit the file becomes <path>.1 (replacing the previous one). */
        if (x->file_size > 0 && x->file_size + len > x->config.file_max_bytes) {
                if (asprintf(&rotated, "%s.1", x->file_path) < 0)
                        return -ENOMEM;
                /* Removed first rather than renamed over: ext4 starts writing back a file renamed over another
                 * right away (auto_da_alloc), in this thread; otherwise the kernel's flusher does it. */
                if (unlink(rotated) < 0 && errno != ENOENT)
                        return -errno;
                for (size_t i = 0; i < N_SIGNALS; i++) {
                        count_drop(x, (ExportSignal) i, EXPORT_DROP_ROTATED, x->file_prev_items[i]);
                        x->file_prev_items[i] = x->file_items[i];
                        x->file_items[i] = 0;
                }
                /* Once per file generation (--otlp-file-max-bytes of lines), over the tracks: cheap. */
                BootTrack *t;
                LIST_FOREACH(tracks, t, x->tracks) {
                        t->boot->export_dropped = add_sat(t->boot->export_dropped, t->file_prev_items);
                        t->file_prev_items = t->file_items;
                        t->file_items = 0;
                }
                file_release_prealloc(x);
                if (rename(x->file_path, rotated) < 0)
                        return -errno;
                r = file_open(x);
                if (r < 0)
                        return r;
        }
        file_prealloc(x, len);
        while (n > 0) {
                ssize_t k = writev(x->file_fd, iov, (int) MIN(n, (size_t) IOV_MAX));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                x->file_size += (uint64_t) k;
                /* A short write (disk full, a signal): go on from where it stopped. */
                while (n > 0 && (size_t) k >= iov->iov_len) {
                        k -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *) iov->iov_base + k;
                        iov->iov_len -= (size_t) k;
                }
        }
        return 0;
}

/* Writes every sealed batch (with force, the open one too): the file takes them as they come, so the queue
 * never holds more than about a batch. */
static void channel_write_file(Channel *ch, bool force) {
        OtlpExporter *x = ch->exporter;
        OtlpBatch *b;
        size_t dropped;

        if (force)
                (void) otlp_queue_seal(ch->queue, mono_ns(), true);
        for (;;) {
                int r = otlp_queue_take(ch->queue, &b, &dropped);
                if (r == -EBADMSG) {
                        count_drop(x, ch->signal, EXPORT_DROP_ENCODE, dropped);
                        continue;
                }
                if (r < 0) {
                        count_drop(x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
                        break;
                }
                if (!b)
                        break;
                size_t len = b->body_len;
                r = file_write_line(x, b->iov, b->n_iov, len);
                if (r < 0) {
                        count_drop(x, ch->signal, EXPORT_DROP_REJECTED, b->items);
                        if (!x->file_failing)
                                log_warning_errno(r, "Failed to write OTLP/JSON to %s: %m", x->file_path);
                        x->file_failing = true;
                } else {
                        OtlpBlob *res;
                        size_t items;
                        x->file_failing = false;
                        count_delivered(x, ch->signal, b->items, len);
                        x->file_items[ch->signal] += b->items;
                        /* The boots the line holds items of, for the rotation that will delete it (BootTrack). */
                        for (size_t i = 0; otlp_batch_group(b, i, &res, &items) >= 0; i++)
                                if (res->owner)
                                        ((BootTrack *) res->owner)->file_items += items;
                }
                otlp_queue_release(ch->queue, b);
        }
}

/* ---- requests ---- */

static void channel_pump(Channel *ch);

static void channel_arm_timer(Channel *ch, uint64_t at_mono_ns) {
        if (at_mono_ns == ch->timer_at)
                return;
        ch->timer_at = at_mono_ns;
        if (at_mono_ns == UINT64_MAX) {
                (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(ch->timer, at_mono_ns / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_ONESHOT);
}

/* The batch delay of the open batch, unless the backoff owns the timer. */
static void channel_arm_deadline(Channel *ch) {
        if (!ch->backing_off)
                channel_arm_timer(ch, otlp_queue_deadline(ch->queue));
}

static uint64_t new_id(OtlpExporter *x) {
        return x->spool ? otlp_spool_next_id(x->spool) : ++x->next_id;
}

static void request_clear(Channel *ch, Request *rq) {
        if (rq->batch)
                otlp_queue_release(ch->queue, rq->batch);
        if (rq->body) {
                otlp_queue_hold(ch->queue, -(int64_t) rq->body_len);
                free(rq->body);
        }
        *rq = (Request) { .channel = rq->channel, .call = rq->call };
}

static const uint8_t *request_body(const Request *rq, size_t *ret_len) {
        *ret_len = rq->batch ? rq->batch->body_len : rq->body_len;
        return rq->batch ? rq->batch->body : rq->body;
}

/* Writes a request to the spool under its id. Returns 0, -ENOSPC, or -errno. */
static int request_spool(Channel *ch, Request *rq) {
        size_t len;
        const uint8_t *body = request_body(rq, &len);
        struct iovec iov = { (void *) body, len };

        return otlp_spool_push(ch->exporter->spool, rq->id, ch->signal, &iov, 1, rq->items, rq->gzip, rq->keys);
}

/* Takes the queue's oldest batch to the spool. Returns 1 when one went, 0 when there was none, -ENOSPC when
 * the spool is full (the batch stays queued), other -errno (dropped: counted). */
static int channel_spill(Channel *ch) {
        OtlpExporter *x = ch->exporter;
        OtlpBatch *b;
        size_t dropped;

        int r = otlp_queue_take(ch->queue, &b, &dropped);
        if (r == -EBADMSG) {
                count_drop(x, ch->signal, EXPORT_DROP_ENCODE, dropped);
                return 1;
        }
        if (r < 0)
                return r;
        if (!b)
                return 0;
        struct iovec iov = { b->body, b->body_len };
        if (b->id == 0)
                b->id = new_id(x);
        r = otlp_spool_push(x->spool, b->id, ch->signal, &iov, 1, b->items, b->gzip, b->keys);
        if (r == -ENOSPC) {
                otlp_queue_untake(ch->queue, b);
                return r;
        }
        if (r < 0) {
                count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, b->items);
                log_warning_errno(r, "Failed to write to the OTLP spool: %m");
        }
        otlp_queue_release(ch->queue, b);
        return 1;
}

static void on_http_done(OtlpHttpCall *c, const OtlpHttpResponse *resp, void *userdata);

static const char *content_type_protobuf = "application/x-protobuf";

static void channel_backoff(Channel *ch, uint64_t retry_after) {
        OtlpExporter *x = ch->exporter;
        uint32_t rnd = 0;

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

static int request_start(Channel *ch, Request *rq) {
        size_t len;
        const uint8_t *body = request_body(rq, &len);
        int r = otlp_http_call_start(rq->call, content_type_protobuf, rq->gzip, body, len, on_http_done, rq);
        if (r < 0)
                return r;
        rq->busy = true;
        rq->waiting = false;
        return 0;
}

/* The next request in delivery order: the smallest id among those waiting in memory and in the spool, else the
 * queue's oldest batch. Starts requests while a slot is free and the next one shares no machine with those in
 * flight. */
static void channel_start_requests(Channel *ch) {
        OtlpExporter *x = ch->exporter;

        for (;;) {
                Request *free_slot = NULL, *waiting = NULL;
                uint64_t inflight_keys = 0;
                for (size_t i = 0; i < INFLIGHT_MAX; i++) {
                        Request *rq = &ch->slots[i];
                        if (rq->busy)
                                inflight_keys |= rq->keys;
                        else if (rq->waiting) {
                                if (!waiting || rq->id < waiting->id)
                                        waiting = rq;
                        } else if (!free_slot)
                                free_slot = rq;
                }
                const OtlpSpoolEntry *e = NULL;
                if (x->spool) {
                        size_t n;
                        const OtlpSpoolEntry *all = otlp_spool_entries(x->spool, &n);
                        for (size_t i = 0; i < n && !e; i++) {
                                if (all[i].signal != ch->signal)
                                        continue;
                                bool busy = false;
                                for (size_t j = 0; j < INFLIGHT_MAX; j++)
                                        busy = busy ||
                                                (ch->slots[j].busy && ch->slots[j].spooled &&
                                                 ch->slots[j].id == all[i].id);
                                if (!busy)
                                        e = &all[i];
                        }
                }

                if (waiting && (!e || waiting->id < e->id)) {
                        if (waiting->keys & inflight_keys)
                                return;
                        if (request_start(ch, waiting) < 0)
                                return;
                        continue;
                }
                if (!free_slot)
                        return;
                if (e) {
                        uint64_t id = e->id, items = e->items, keys = e->keys;
                        bool gzip = e->gzip;
                        if (keys & inflight_keys)
                                return;
                        /* The body counts against the bound like any queued request. */
                        if (otlp_queue_bytes(ch->queue) + e->bytes > x->config.queue_bytes && inflight_keys != 0)
                                return;
                        uint8_t *body;
                        size_t len;
                        if (otlp_spool_read(x->spool, e, &body, &len) < 0) {
                                count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, items);
                                (void) otlp_spool_remove(x->spool, id);
                                continue;
                        }
                        otlp_queue_hold(ch->queue, (int64_t) len);
                        *free_slot = (Request) {
                                .channel = ch,
                                .call = free_slot->call,
                                .body = body,
                                .body_len = len,
                                .id = id,
                                .items = items,
                                .keys = keys,
                                .gzip = gzip,
                                .spooled = true,
                        };
                } else {
                        OtlpBatch *b = otlp_queue_head(ch->queue);
                        if (!b || !b->ready || (b->keys & inflight_keys))
                                return;
                        size_t dropped;
                        int r = otlp_queue_take(ch->queue, &b, &dropped);
                        if (r == -EBADMSG) {
                                count_drop(x, ch->signal, EXPORT_DROP_ENCODE, dropped);
                                continue;
                        }
                        if (r < 0 || !b)
                                return;
                        if (b->id == 0)
                                b->id = new_id(x);
                        *free_slot = (Request) {
                                .channel = ch,
                                .call = free_slot->call,
                                .batch = b,
                                .id = b->id,
                                .items = b->items,
                                .keys = b->keys,
                                .gzip = b->gzip,
                        };
                }
                if (request_start(ch, free_slot) < 0) {
                        /* Cannot even start (out of memory): try again later like a connection failure. */
                        free_slot->waiting = true;
                        if (x->spool && !free_slot->spooled && request_spool(ch, free_slot) >= 0) {
                                free_slot->spooled = true;
                                request_clear(ch, free_slot);
                        }
                        channel_backoff(ch, 0);
                        return;
                }
        }
}

static void on_http_done(OtlpHttpCall *c, const OtlpHttpResponse *resp, void *userdata) {
        Request *rq = userdata;
        Channel *ch = rq->channel;
        OtlpExporter *x = ch->exporter;
        ExportSignal s = ch->signal;
        OtlpVerdict v = otlp_classify_status(resp->status);
        size_t body_len;
        (void) request_body(rq, &body_len);

        rq->busy = false;
        if (v == OTLP_VERDICT_SUCCESS) {
                int64_t rejected = 0;
                /* A JSON answer or an empty body carries no protobuf partial_success. */
                if (resp->body_len > 0 && !(resp->content_type && strstr(resp->content_type, "json")))
                        (void) otlp_decode_partial_success(s, resp->body, resp->body_len, &rejected);
                uint64_t rej = MIN((uint64_t) rejected, rq->items);
                count_delivered(x, s, rq->items - rej, body_len);
                if (rej > 0) {
                        count_drop(x, s, EXPORT_DROP_PARTIAL, rej);
                        log_warning(
                                "OTLP %s: the backend rejected %" PRIu64 " of %" PRIu64 " items (partial success).",
                                export_signal_to_string(s),
                                rej,
                                rq->items);
                }
                if (ch->failing)
                        log_info("OTLP %s export delivered again.", export_signal_to_string(s));
                ch->failing = false;
                ch->attempt = 0;
                if (rq->spooled)
                        (void) otlp_spool_remove(x->spool, rq->id);
                request_clear(ch, rq);
        } else if (v == OTLP_VERDICT_REJECT) {
                x->stats->export.failures[s]++;
                count_drop(x, s, EXPORT_DROP_REJECTED, rq->items);
                log_warning(
                        "OTLP %s: the backend rejected a request of %" PRIu64 " items with HTTP %ld, not retrying.",
                        export_signal_to_string(s),
                        rq->items,
                        resp->status);
                ch->attempt = 0;
                if (rq->spooled)
                        (void) otlp_spool_remove(x->spool, rq->id);
                request_clear(ch, rq);
        } else {
                uint64_t retry_after = 0;

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
                        if (!rq->spooled && (!x->spool || request_spool(ch, rq) < 0))
                                count_drop(x, s, EXPORT_DROP_SHUTDOWN, rq->items);
                        request_clear(ch, rq);
                        update_gauges(x);
                        return;
                }
                /* With a spool, the request waits on disk (in order with what follows: by its id) rather than in
                 * memory. */
                if (rq->spooled)
                        request_clear(ch, rq); /* re-read from the spool on the next attempt */
                else if (x->spool) {
                        int r = request_spool(ch, rq);
                        if (r == -ENOSPC)
                                count_drop(x, s, EXPORT_DROP_SPOOL_FULL, rq->items);
                        if (r >= 0 || r == -ENOSPC)
                                request_clear(ch, rq);
                        else {
                                log_warning_errno(
                                        r, "Failed to write to the OTLP spool, keeping the request in memory: %m");
                                rq->waiting = true;
                        }
                } else
                        rq->waiting = true;
                channel_backoff(ch, retry_after);
        }
        update_gauges(x);
        channel_pump(ch);
}

static void channel_pump(Channel *ch) {
        OtlpExporter *x = ch->exporter;

        if (ch->disabled)
                return;
        if (!ch->http) {
                channel_write_file(ch, x->shutting_down);
                channel_arm_deadline(ch);
                update_gauges(x);
                return;
        }
        if (ch->backing_off) {
                /* While the backend is away, sealed batches go to the spool rather than fill memory. */
                if (x->spool)
                        while (channel_spill(ch) > 0)
                                ;
                update_gauges(x);
                return;
        }
        channel_start_requests(ch);
        channel_arm_deadline(ch);
        update_gauges(x);
}

static int on_channel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Channel *ch = userdata;

        ch->timer_at = UINT64_MAX;
        ch->backing_off = false;
        if (otlp_queue_seal(ch->queue, mono_ns(), false) > 0)
                worker_kick(ch->exporter);
        channel_pump(ch);
        return 0;
}

/* Batch work: finishing sealed batches (assembly, gzip), writing or sending them. */
static int on_worker(sd_event_source *s, uint64_t usec, void *userdata) {
        OtlpExporter *x = userdata;
        uint64_t budget = MAX((uint64_t) WORK_BUDGET_MIN, x->queued_since_work);
        bool more = false;

        x->queued_since_work = 0;
        for (size_t i = 0; i < N_CHANNELS; i++) {
                Channel *ch = &x->channels[i];
                if (ch->disabled || !ch->queue)
                        continue;
                (void) otlp_queue_seal(ch->queue, mono_ns(), false);
                int r = otlp_queue_work(ch->queue, budget);
                if (r < 0)
                        count_drop(x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
                more = more || r > 0;
                channel_pump(ch);
        }
        if (!more) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                x->worker_on = false;
        }
        return 0;
}

/* Room for an item that did not fit: with a spool the oldest batches go there; the file takes what is sealed.
 * Returns 0 when something was freed (try again), -ENOSPC/-ENOBUFS when nothing can be. */
static int channel_make_room(Channel *ch) {
        OtlpExporter *x = ch->exporter;

        if (!ch->http) {
                channel_write_file(ch, true);
                return 0;
        }
        if (!x->spool)
                return -ENOBUFS;
        int r = channel_spill(ch);
        if (r == 0 && otlp_queue_seal(ch->queue, mono_ns(), true) > 0)
                r = channel_spill(ch);
        return r > 0 ? 0 : r == 0 ? -ENOBUFS : r;
}

/* Room for one item of size bytes (see otlp_queue_reserve()); with ret_room, for a run of JSON items that begins
 * with it (otlp_queue_reserve_items()). Counts the item's drop when there is none (also as the boot's, if
 * given). */
static int channel_reserve(
        Channel *ch,
        Boot *boot,
        OtlpBlob *resource,
        uint64_t key,
        size_t size,
        uint64_t now,
        uint8_t **ret,
        size_t *ret_room,
        size_t *ret_items) {
        OtlpExporter *x = ch->exporter;
        int r;

        /* The file takes a batch the moment it is sealed (by the previous item): its buffer is back for the
         * next batch, so that a steady stream circulates two warm buffers instead of growing a fresh one. */
        if (!ch->http && otlp_queue_head(ch->queue))
                channel_write_file(ch, false);
        for (unsigned tries = 0;; tries++) {
                r = ret_room ? otlp_queue_reserve_items(ch->queue, resource, key, size, now, ret, ret_room, ret_items) :
                               otlp_queue_reserve(ch->queue, resource, key, size, now, ret);
                if (r != -ENOBUFS || tries >= 4)
                        break;
                r = channel_make_room(ch);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                return 0;
        count_boot_drop(
                x,
                boot,
                ch->signal,
                r == -ENOSPC          ? EXPORT_DROP_SPOOL_FULL :
                        r == -ENOBUFS ? EXPORT_DROP_QUEUE_FULL :
                                        EXPORT_DROP_ENCODE,
                1);
        return r;
}

/* After items were committed: the worker when a batch is sealed, the delay timer when the open batch began. */
static void channel_queued(Channel *ch, uint64_t bytes) {
        OtlpExporter *x = ch->exporter;

        x->queued_since_work += bytes;
        if (otlp_queue_head(ch->queue))
                worker_kick(x);
        if (ch->timer_at == UINT64_MAX)
                channel_arm_deadline(ch);
}

/* A span or event, encoded (protobuf): queued as it is, or as JSON for the file. */
static void channel_push(Channel *ch, Boot *boot, OtlpBlob *resource, uint64_t key, const uint8_t *data, size_t len) {
        OtlpExporter *x = ch->exporter;
        _cleanup_free_ char *json = NULL;
        uint8_t *p;

        if (ch->disabled)
                return;
        if (x->shut_down) {
                count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, 1);
                return;
        }
        if (!ch->http) {
                size_t n;
                if (otlp_item_to_json(ch->signal, data, len, &json, &n) < 0) {
                        count_drop(x, ch->signal, EXPORT_DROP_ENCODE, 1);
                        return;
                }
                data = (const uint8_t *) json;
                len = n;
        }
        if (channel_reserve(ch, boot, resource, key, len, mono_ns(), &p, NULL, NULL) < 0)
                return;
        memcpy(p, data, len);
        otlp_queue_commit(ch->queue, len);
        channel_queued(ch, len);
        update_gauges(x);
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
                count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, EXPORT_DROP_SHUTDOWN, count_lines(p, le->len));
                return;
        }
        OtlpBlob *res = track_resource(x, t);
        if (!res) {
                count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, count_lines(p, le->len));
                return;
        }
        uint64_t now = mono_ns(), queued = 0;
        (void) track_stitch(x, t);
        const Span *sp = t->spans ? span_set_find_for_time(t->spans, le->boottime_ns) : NULL;
        OtlpLogLine line = {
                .time_unix_ns = boot_to_unix_ns(b, le->boottime_ns, le->recv_unix_ns),
                .observed_unix_ns = le->recv_unix_ns,
                .trace_id = b->trace_id,
                .span_id = sp ? sp->span_id : NULL,
                .stream = le->stream,
                .source = le->source && *le->source ? le->source : NULL,
                .seq = le->seq,
        };
        int r = ch->http ? otlp_log_template_protobuf(&line, &x->tmpl) : otlp_log_template_json(&line, &x->tmpl);
        if (r < 0) {
                count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, count_lines(p, le->len));
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
        update_gauges(x);
}

/* The records that waited and could not be exported: counted, and live export resumes. */
static void track_logs_done(OtlpExporter *x, BootTrack *t, ExportDropReason reason) {
        if (t->logs_waiting_lines > t->logs_read_lines)
                count_boot_drop(x, t->boot, EXPORT_SIGNAL_LOGS, reason, t->logs_waiting_lines - t->logs_read_lines);
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
                        blocked = true; /* its turn comes when the pressure is gone (update_gauges()) */
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
                count_drop(
                        x,
                        EXPORT_SIGNAL_LOGS,
                        EXPORT_DROP_SHUTDOWN,
                        count_lines((const char *) l->data.data, l->data.len));
                return;
        }
        BootTrack *t = track_get(x, m, b, false);
        if (!t) {
                count_boot_drop(
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
                count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_SHUTDOWN, 1);
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
                count_drop(x, EXPORT_SIGNAL_LOGS, EXPORT_DROP_ENCODE, 1);
        else
                channel_push(&x->channels[1], m ? m->current : NULL, res, m ? order_key(m->id) : 0, data, len);
        otlp_blob_unref(res);
}

/* ---- setup ---- */

static int url_join(const char *base, const char *path, char **ret) {
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                n--;
        return asprintf(ret, "%.*s%s", (int) n, base, path) < 0 ? -ENOMEM : 0;
}

static int channel_setup(
        OtlpExporter *x,
        Channel *ch,
        ExportSignal signal,
        const OtlpConfig *config,
        bool http,
        const char *const *headers) {
        static const char *const paths[N_CHANNELS] = { "/v1/traces", "/v1/logs" };
        _cleanup_free_ char *url = NULL;
        int r;

        ch->exporter = x;
        ch->signal = signal;
        ch->http = http;
        ch->timer_at = UINT64_MAX;
        for (size_t j = 0; j < INFLIGHT_MAX; j++)
                ch->slots[j].channel = ch;
        /* A batch takes at most an eighth of the bound: the rest holds what is in flight and being finished. */
        OtlpQueueLimits limits = {
                .max_bytes = config->queue_bytes,
                .batch_items = config->batch_items,
                .batch_bytes = MAX(MIN(config->batch_bytes, config->queue_bytes / 8), (uint64_t) 4096),
                .batch_delay_ns = config->batch_delay_usec * NSEC_PER_USEC,
                .format = http ? OTLP_FORMAT_PROTOBUF : OTLP_FORMAT_JSON,
                .gzip = config->gzip,
        };
        r = otlp_queue_new(signal, &limits, &ch->queue);
        if (r < 0)
                return r;
        r = sd_event_add_time(x->event, &ch->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC, on_channel_timer, ch);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(ch->timer, SD_EVENT_OFF);
        if (!http)
                return 0;

        const char *override = signal == EXPORT_SIGNAL_TRACES ? config->traces_endpoint : config->logs_endpoint;
        if (override)
                url = strdup(override);
        else if (config->endpoint)
                r = url_join(config->endpoint, paths[signal == EXPORT_SIGNAL_TRACES ? 0 : 1], &url);
        else {
                /* Only the other signal has an endpoint: this one is not exported. */
                ch->disabled = true;
                log_info("Not exporting OTLP %s: no endpoint for them.", export_signal_to_string(signal));
                return 0;
        }
        if (r < 0 || !url)
                return -ENOMEM;
        for (size_t j = 0; j < INFLIGHT_MAX; j++) {
                r = otlp_http_call_new(
                        x->http, url, headers, config->n_headers, config->request_timeout_usec, &ch->slots[j].call);
                if (r < 0)
                        return r;
        }
        log_info(
                "Exporting OTLP %s to %s%s.",
                export_signal_to_string(signal),
                url,
                x->spool ? " (spooling to disk when it falls behind or is unreachable)" : "");
        return 0;
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
        x->config.endpoint = x->config.traces_endpoint = x->config.logs_endpoint = NULL;
        x->config.file_path = x->config.spool_dir = NULL;
        x->config.headers = NULL;

        bool http = config->endpoint || config->traces_endpoint || config->logs_endpoint;
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
                r = channel_setup(
                        x,
                        &x->channels[i],
                        i == 0 ? EXPORT_SIGNAL_TRACES : EXPORT_SIGNAL_LOGS,
                        config,
                        http,
                        (const char *const *) headers);
                if (r < 0)
                        break;
        }
        for (size_t j = 0; headers && j < config->n_headers; j++)
                free(headers[j]);
        if (r < 0)
                return log_error_errno(r, "Failed to set up OTLP export: %m");
        if (!http)
                log_info("Exporting OTLP/JSON to %s.", x->file_path ?: "(nowhere)");

        /* Bulk priority, in turns with the busy connections (event-util.h): export keeps pace with what they
         * store (see WORK_BUDGET_MIN) without holding up a quiet guest's Ready or the API. */
        r = event_add_turn(event, &x->worker, on_worker, x);
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
                .userdata = x,
        };
        r = registry_add_observer(registry, &o);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe the OTLP exporter: %m");
        /* Replay what the spool kept from before a restart. */
        for (size_t i = 0; i < N_CHANNELS; i++)
                if (x->channels[i].http)
                        channel_pump(&x->channels[i]);
        update_gauges(x);
        *ret = TAKE_PTR(x);
        return 0;
}

static bool channel_busy(const Channel *ch) {
        for (size_t i = 0; i < INFLIGHT_MAX; i++)
                if (ch->slots[i].busy)
                        return true;
        return false;
}

void otlp_exporter_shutdown(OtlpExporter *x) {
        if (!x || x->shut_down)
                return;
        x->shutting_down = true;
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
                        for (size_t j = 0; j < INFLIGHT_MAX; j++) {
                                Request *rq = &ch->slots[j];
                                otlp_http_call_cancel(rq->call);
                                rq->busy = false;
                                if ((rq->batch || rq->body) && !rq->spooled) {
                                        int r = request_spool(ch, rq);
                                        if (r < 0)
                                                count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, rq->items);
                                }
                                request_clear(ch, rq);
                        }
                        (void) otlp_queue_seal(ch->queue, mono_ns(), true);
                        for (;;) {
                                int r = channel_spill(ch);
                                if (r == 0)
                                        break;
                                if (r == -ENOSPC) {
                                        count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, otlp_queue_clear(ch->queue));
                                        break;
                                }
                                if (r < 0) {
                                        count_drop(x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
                                        break;
                                }
                        }
                }
        } else {
                uint64_t deadline = mono_ns() + x->config.shutdown_timeout_usec * NSEC_PER_USEC;
                for (size_t i = 0; i < N_CHANNELS; i++)
                        if (!x->channels[i].disabled)
                                (void) otlp_queue_seal(x->channels[i].queue, mono_ns(), true);
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
                        uint64_t now = mono_ns();
                        if (!busy || now >= deadline)
                                break;
                        otlp_http_drain(x->http, (deadline - now) / NSEC_PER_USEC);
                }
                for (size_t i = 0; i < N_CHANNELS; i++) {
                        Channel *ch = &x->channels[i];
                        if (ch->disabled)
                                continue;
                        for (size_t j = 0; j < INFLIGHT_MAX; j++) {
                                Request *rq = &ch->slots[j];
                                otlp_http_call_cancel(rq->call);
                                if (rq->batch || rq->body)
                                        count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, rq->items);
                                request_clear(ch, rq);
                        }
                        count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, otlp_queue_clear(ch->queue));
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
        update_gauges(x);
}

OtlpExporter *otlp_exporter_free(OtlpExporter *x) {
        if (!x)
                return NULL;
        registry_remove_observers(x->registry, x);
        sd_event_source_disable_unref(x->worker);
        sd_event_source_disable_unref(x->spans_source);
        sd_event_source_disable_unref(x->logs_source);
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
                                count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, rq->items);
                        if (ch->queue)
                                request_clear(ch, rq);
                        otlp_http_call_free(rq->call);
                }
                if (ch->queue) {
                        count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, otlp_queue_items(ch->queue));
                        otlp_queue_free(ch->queue);
                }
                sd_event_source_disable_unref(ch->timer);
        }
        otlp_http_free(x->http);
        otlp_spool_free(x->spool);
        file_release_prealloc(x);
        safe_close(x->file_fd);
        free(x->file_path);
        sd_event_unref(x->event);
        free(x);
        return NULL;
}
