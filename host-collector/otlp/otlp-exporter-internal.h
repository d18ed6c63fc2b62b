/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
#pragma once

/* What the exporter's files share: otlp-exporter.c (the registry observer, the boots' tracks, fair shares,
 * setup and shutdown) and otlp-channel.c (a signal's channel: its queue, the OTLP/JSON file, requests in flight,
 * the spool, retries). Not for use outside host-collector/otlp/. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "list.h"
#include "log-store.h"
#include "otlp-encode.h"
#include "otlp-exporter.h"
#include "otlp-http.h"
#include "otlp-metrics.h"
#include "otlp-queue.h"
#include "otlp-retry.h"
#include "otlp-spool.h"

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

        /* The guest sets its sampling rate: its samples' metrics are exported at most SAMPLE_EXPORTS_MAX per
         * SAMPLES_MIN_INTERVAL_NS of host time (the agent's sample at the workload's exit may follow a periodic
         * one closely); the rest are counted (rate_limited). */
        uint64_t samples_window_unix_ns;
        unsigned samples_in_window;
} BootTrack;

#define SAMPLE_EXPORTS_MAX 2u

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
        uint64_t next_id;            /* request order without a spool */
        Channel channels[N_SIGNALS]; /* by ExportSignal: traces, logs, metrics */
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
        uint64_t queued_since_work;            /* bytes */
        OtlpLogTemplate tmpl;                  /* of the record being written */
        sd_event_source *fleet_timer;          /* tetherd's own metrics, every config.metrics_interval_ns */
        OtlpBlob *self_resource;               /* tetherd's: service.name tetherd, tether.node.id */
        const OtlpFleetHistograms *histograms; /* the boot histograms (api's /metrics), or NULL */
        uint64_t start_unix_ns;                /* the start of tetherd's cumulative metrics */
};

#define N_CHANNELS N_SIGNALS

/* ---- otlp-exporter.c ---- */

uint64_t exporter_mono_ns(void);
void exporter_update_gauges(OtlpExporter *x);
void exporter_count_drop(OtlpExporter *x, ExportSignal s, ExportDropReason r, uint64_t items);
void exporter_count_delivered(OtlpExporter *x, ExportSignal s, uint64_t items, uint64_t bytes);
void exporter_count_boot_drop(OtlpExporter *x, Boot *b, ExportSignal s, ExportDropReason r, uint64_t items);
void exporter_worker_kick(OtlpExporter *x);

/* ---- otlp-channel.c ---- */

void channel_file_release_prealloc(OtlpExporter *x);
void channel_pump(Channel *ch);
void channel_arm_timer(Channel *ch, uint64_t at_mono_ns);
void channel_request_clear(Channel *ch, Request *rq);
int channel_request_spool(Channel *ch, Request *rq);
void channel_abort_requests(Channel *ch, bool spool);
int channel_spill(Channel *ch);
void channel_start_requests(Channel *ch);
int channels_on_worker(sd_event_source *s, uint64_t usec, void *userdata);
int channel_reserve(
        Channel *ch,
        Boot *boot,
        OtlpBlob *resource,
        uint64_t key,
        size_t size,
        uint64_t now,
        uint8_t **ret,
        size_t *ret_room,
        size_t *ret_items);
void channel_queued(Channel *ch, uint64_t bytes);
void channel_push(Channel *ch, Boot *boot, OtlpBlob *resource, uint64_t key, const uint8_t *data, size_t len);
int channel_setup(
        OtlpExporter *x,
        Channel *ch,
        ExportSignal signal,
        const OtlpConfig *config,
        bool http,
        const char *const *headers);
bool channel_busy(const Channel *ch);
