/* SPDX-License-Identifier: MIT */
/* Room otlp: OTLP export of traces, logs and events (encode, queue, spool, libcurl); a core observer. */
/* A signal's channel: its batch queue, the OTLP/JSON file, OTLP/HTTP requests in flight, the spool, retries. */
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

/* ---- the JSON file ---- */

/* The file's space is reserved ahead in steps of this much: writing into space already allocated costs the
 * kernel less per page than delayed allocation does (ext4: no per-block reservation, extent-status and quota
 * update at write time), about a quarter of the write's CPU. */
#define FILE_PREALLOC_STEP (UINT64_C(8) << 20)

/* Gives back the space reserved beyond what was written (a truncate to the same size does that). */
void channel_file_release_prealloc(OtlpExporter *x) {
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

        channel_file_release_prealloc(x);
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
                        exporter_count_drop(x, (ExportSignal) i, EXPORT_DROP_ROTATED, x->file_prev_items[i]);
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
                channel_file_release_prealloc(x);
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
                (void) otlp_queue_seal(ch->queue, exporter_mono_ns(), true);
        for (;;) {
                int r = otlp_queue_take(ch->queue, &b, &dropped);
                if (r == -EBADMSG) {
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_ENCODE, dropped);
                        continue;
                }
                if (r < 0) {
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
                        break;
                }
                if (!b)
                        break;
                size_t len = b->body_len;
                r = file_write_line(x, b->iov, b->n_iov, len);
                if (r < 0) {
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_REJECTED, b->items);
                        if (!x->file_failing)
                                log_warning_errno(r, "Failed to write OTLP/JSON to %s: %m", x->file_path);
                        x->file_failing = true;
                } else {
                        OtlpBlob *res;
                        size_t items;
                        x->file_failing = false;
                        exporter_count_delivered(x, ch->signal, b->items, len);
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


void channel_arm_timer(Channel *ch, uint64_t at_mono_ns) {
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

void channel_request_clear(Channel *ch, Request *rq) {
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
int channel_request_spool(Channel *ch, Request *rq) {
        size_t len;
        const uint8_t *body = request_body(rq, &len);
        struct iovec iov = { (void *) body, len };

        return otlp_spool_push(ch->exporter->spool, rq->id, ch->signal, &iov, 1, rq->items, rq->gzip, rq->keys);
}

/* At shutdown: cancels every request of ch in flight. What one carried goes to the spool under its id (with
 * spool, unless it is there already) or is counted dropped. */
void channel_abort_requests(Channel *ch, bool spool) {
        OtlpExporter *x = ch->exporter;

        for (size_t j = 0; j < INFLIGHT_MAX; j++) {
                Request *rq = &ch->slots[j];
                otlp_http_call_cancel(rq->call);
                bool carries = rq->batch || rq->body;
                if (carries && !spool)
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, rq->items);
                else if (carries && !rq->spooled && channel_request_spool(ch, rq) < 0)
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, rq->items);
                channel_request_clear(ch, rq);
        }
}

/* Takes the queue's oldest batch to the spool. Returns 1 when one went, 0 when there was none, -ENOSPC when
 * the spool is full (the batch stays queued), other -errno (dropped: counted). */
int channel_spill(Channel *ch) {
        OtlpExporter *x = ch->exporter;
        OtlpBatch *b;
        size_t dropped;

        int r = otlp_queue_take(ch->queue, &b, &dropped);
        if (r == -EBADMSG) {
                exporter_count_drop(x, ch->signal, EXPORT_DROP_ENCODE, dropped);
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
                exporter_count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, b->items);
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
                ch->attempt, x->config.backoff_initial_ns, x->config.backoff_max_ns, rnd, retry_after);
        if (ch->attempt < 32)
                ch->attempt++;
        ch->backing_off = true;
        channel_arm_timer(ch, exporter_mono_ns() + delay);
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
void channel_start_requests(Channel *ch) {
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
                                exporter_count_drop(x, ch->signal, EXPORT_DROP_SPOOL_FULL, items);
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
                                exporter_count_drop(x, ch->signal, EXPORT_DROP_ENCODE, dropped);
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
                        if (x->spool && !free_slot->spooled && channel_request_spool(ch, free_slot) >= 0) {
                                free_slot->spooled = true;
                                channel_request_clear(ch, free_slot);
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
                exporter_count_delivered(x, s, rq->items - rej, body_len);
                if (rej > 0) {
                        exporter_count_drop(x, s, EXPORT_DROP_PARTIAL, rej);
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
                channel_request_clear(ch, rq);
        } else if (v == OTLP_VERDICT_REJECT) {
                x->stats->export.failures[s]++;
                exporter_count_drop(x, s, EXPORT_DROP_REJECTED, rq->items);
                log_warning(
                        "OTLP %s: the backend rejected a request of %" PRIu64 " items with HTTP %ld, not retrying.",
                        export_signal_to_string(s),
                        rq->items,
                        resp->status);
                ch->attempt = 0;
                if (rq->spooled)
                        (void) otlp_spool_remove(x->spool, rq->id);
                channel_request_clear(ch, rq);
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
                        if (!rq->spooled && (!x->spool || channel_request_spool(ch, rq) < 0))
                                exporter_count_drop(x, s, EXPORT_DROP_SHUTDOWN, rq->items);
                        channel_request_clear(ch, rq);
                        exporter_update_gauges(x);
                        return;
                }
                /* With a spool, the request waits on disk (in order with what follows: by its id) rather than in
                 * memory. */
                if (rq->spooled)
                        channel_request_clear(ch, rq); /* re-read from the spool on the next attempt */
                else if (x->spool) {
                        int r = channel_request_spool(ch, rq);
                        if (r == -ENOSPC)
                                exporter_count_drop(x, s, EXPORT_DROP_SPOOL_FULL, rq->items);
                        if (r >= 0 || r == -ENOSPC)
                                channel_request_clear(ch, rq);
                        else {
                                log_warning_errno(
                                        r, "Failed to write to the OTLP spool, keeping the request in memory: %m");
                                rq->waiting = true;
                        }
                } else
                        rq->waiting = true;
                channel_backoff(ch, retry_after);
        }
        exporter_update_gauges(x);
        channel_pump(ch);
}

void channel_pump(Channel *ch) {
        OtlpExporter *x = ch->exporter;

        if (ch->disabled)
                return;
        if (!ch->http) {
                channel_write_file(ch, x->shutting_down);
                channel_arm_deadline(ch);
                exporter_update_gauges(x);
                return;
        }
        if (ch->backing_off) {
                /* While the backend is away, sealed batches go to the spool rather than fill memory. */
                if (x->spool)
                        while (channel_spill(ch) > 0)
                                ;
                exporter_update_gauges(x);
                return;
        }
        channel_start_requests(ch);
        channel_arm_deadline(ch);
        exporter_update_gauges(x);
}

static int on_channel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Channel *ch = userdata;

        ch->timer_at = UINT64_MAX;
        ch->backing_off = false;
        if (otlp_queue_seal(ch->queue, exporter_mono_ns(), false) > 0)
                exporter_worker_kick(ch->exporter);
        channel_pump(ch);
        return 0;
}

/* Batch work: finishing sealed batches (assembly, gzip), writing or sending them. */
int channels_on_worker(sd_event_source *s, uint64_t usec, void *userdata) {
        OtlpExporter *x = userdata;
        uint64_t budget = MAX((uint64_t) WORK_BUDGET_MIN, x->queued_since_work);
        bool more = false;

        x->queued_since_work = 0;
        for (size_t i = 0; i < N_CHANNELS; i++) {
                Channel *ch = &x->channels[i];
                if (ch->disabled || !ch->queue)
                        continue;
                (void) otlp_queue_seal(ch->queue, exporter_mono_ns(), false);
                int r = otlp_queue_work(ch->queue, budget);
                if (r < 0)
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_ENCODE, otlp_queue_clear(ch->queue));
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
        if (r == 0 && otlp_queue_seal(ch->queue, exporter_mono_ns(), true) > 0)
                r = channel_spill(ch);
        return r > 0 ? 0 : r == 0 ? -ENOBUFS : r;
}

/* Room for one item of size bytes (see otlp_queue_reserve()); with ret_room, for a run of JSON items that begins
 * with it (otlp_queue_reserve_items()). Counts the item's drop when there is none (also as the boot's, if
 * given). */
int channel_reserve(
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
        exporter_count_boot_drop(
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
void channel_queued(Channel *ch, uint64_t bytes) {
        OtlpExporter *x = ch->exporter;

        x->queued_since_work += bytes;
        if (otlp_queue_head(ch->queue))
                exporter_worker_kick(x);
        if (ch->timer_at == UINT64_MAX)
                channel_arm_deadline(ch);
}

/* A span or event, encoded (protobuf): queued as it is, or as JSON for the file. */
void channel_push(Channel *ch, Boot *boot, OtlpBlob *resource, uint64_t key, const uint8_t *data, size_t len) {
        OtlpExporter *x = ch->exporter;
        _cleanup_free_ char *json = NULL;
        uint8_t *p;

        if (ch->disabled)
                return;
        if (x->shut_down) {
                exporter_count_drop(x, ch->signal, EXPORT_DROP_SHUTDOWN, 1);
                return;
        }
        if (!ch->http) {
                size_t n;
                if (otlp_item_to_json(ch->signal, data, len, &json, &n) < 0) {
                        exporter_count_drop(x, ch->signal, EXPORT_DROP_ENCODE, 1);
                        return;
                }
                data = (const uint8_t *) json;
                len = n;
        }
        if (channel_reserve(ch, boot, resource, key, len, exporter_mono_ns(), &p, NULL, NULL) < 0)
                return;
        memcpy(p, data, len);
        otlp_queue_commit(ch->queue, len);
        channel_queued(ch, len);
        exporter_update_gauges(x);
}

static int url_join(const char *base, const char *path, char **ret) {
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                n--;
        return asprintf(ret, "%.*s%s", (int) n, base, path) < 0 ? -ENOMEM : 0;
}

int channel_setup(
        OtlpExporter *x,
        Channel *ch,
        ExportSignal signal,
        const OtlpConfig *config,
        bool http,
        const char *const *headers) {
        static const char *const paths[N_CHANNELS] = {
                [EXPORT_SIGNAL_TRACES] = "/v1/traces",
                [EXPORT_SIGNAL_LOGS] = "/v1/logs",
                [EXPORT_SIGNAL_METRICS] = "/v1/metrics",
        };
        const char *const overrides[N_CHANNELS] = {
                [EXPORT_SIGNAL_TRACES] = config->traces_endpoint,
                [EXPORT_SIGNAL_LOGS] = config->logs_endpoint,
                [EXPORT_SIGNAL_METRICS] = config->metrics_endpoint,
        };
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
                .batch_delay_ns = config->batch_delay_ns,
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

        if (overrides[signal])
                url = strdup(overrides[signal]);
        else if (config->endpoint)
                r = url_join(config->endpoint, paths[signal], &url);
        else {
                /* Only another signal has an endpoint: this one is not exported. */
                ch->disabled = true;
                log_info("Not exporting OTLP %s: no endpoint for them.", export_signal_to_string(signal));
                return 0;
        }
        if (r < 0 || !url)
                return -ENOMEM;
        for (size_t j = 0; j < INFLIGHT_MAX; j++) {
                r = otlp_http_call_new(
                        x->http, url, headers, config->n_headers, config->request_timeout_ns, &ch->slots[j].call);
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

bool channel_busy(const Channel *ch) {
        for (size_t i = 0; i < INFLIGHT_MAX; i++)
                if (ch->slots[i].busy)
                        return true;
        return false;
}
