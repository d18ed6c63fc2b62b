/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope-cleanup.h"
#include "file-repair.h"
#include "jsonlog.h"
#include "machine-json.h"
#include "stitch.h"
#include "time-math.h"
#include "time-util.h"
#include "traceparent.h"

void session_context_init(SessionContext *ctx, Registry *registry, Store *store, Stats *stats) {
        *ctx = (SessionContext) {
                .registry = registry,
                .store = store,
                .stats = stats,
                .limits = ENVELOPE_LIMITS_DEFAULT,
                .heartbeat_interval_ms = SESSION_HEARTBEAT_INTERVAL_MS_DEFAULT,
                .max_output_bytes = SESSION_OUTPUT_MAX_DEFAULT,
        };
}

int session_new(const SessionContext *ctx, Machine *m, Session **ret) {
        int r;

        Session *s = calloc(1, sizeof(Session));
        if (!s)
                return -ENOMEM;
        s->ctx = ctx;
        s->machine = m;
        s->state = SESSION_AWAIT_HELLO;
        out_queue_init(&s->out, ctx->max_output_bytes);
        r = frame_reader_init(&s->reader, TETHER_FRAME_MAX);
        if (r < 0) {
                free(s);
                return r;
        }
        r = random_id(s->session_id, sizeof(s->session_id));
        if (r < 0) {
                session_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

Session *session_free(Session *s) {
        if (!s)
                return NULL;
        if (s->boot && s->ctx->store)
                store_forget_sync_handler(s->ctx->store, s->boot, s);
        envelope_free(s->tail_record);
        frame_reader_done(&s->reader);
        out_queue_done(&s->out);
        free(s);
        return NULL;
}

/* Every line of a session is one its guest causes: through its machine's limiter. */
static LogFields session_log_fields(const Session *s, const char *transition) {
        return (LogFields) {
                .machine_id = s->machine->id,
                .request_id = s->machine->request_id,
                .transition = transition,
                .ratelimit = &s->machine->log_ratelimit,
        };
}

static int session_fail(Session *s, ProtocolError pe, const char *fmt, ...) _printf_(3, 4);
static int session_fail(Session *s, ProtocolError pe, const char *fmt, ...) {
        LogFields f = session_log_fields(s, "protocol_error");
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(s->error_detail, sizeof(s->error_detail), fmt, ap);
        va_end(ap);

        s->error = pe;
        s->state = SESSION_FAILED;
        s->ctx->stats->protocol_errors[pe]++;
        s->machine->protocol_errors++;
        if (s->boot)
                s->boot->protocol_errors++;

        log_emit(
                LOG_WARNING,
                0,
                &f,
                "Protocol error from machine %s: %s (%s), closing the connection.",
                s->machine->id,
                protocol_error_to_string(pe),
                s->error_detail);
        registry_emit_event(
                s->ctx->registry,
                s->machine,
                "protocol_error",
                now_ns(CLOCK_REALTIME),
                json_pack("{s:s, s:s}", "reason", protocol_error_to_string(pe), "detail", s->error_detail));
        return -EPROTO;
}

static int session_queue(Session *s, const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;
        int r;

        r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        return out_queue_append(&s->out, frame, len);
}

static void session_warn_persist(Session *s, int r) {
        LogFields f = session_log_fields(s, NULL);

        if (s->persist_warned)
                return;
        s->persist_warned = true;
        if (r == -EFBIG)
                log_emit(
                        LOG_WARNING,
                        0,
                        &f,
                        "Boot %s of machine %s reached the on-disk size bound: further records are kept in "
                        "memory only and counted as dropped (disk_limit).",
                        s->boot->boot_id,
                        s->machine->id);
        else
                log_emit(
                        LOG_ERR,
                        r,
                        &f,
                        "Failed to persist records of machine %s: %m. They are not acked: the agent keeps them "
                        "and resends them once the boot file can be written again.",
                        s->machine->id);
}

/* Records from seq on are not in the boot file: the file has a hole there until a repair writes the copies the
 * boot keeps (Boot.unwritten) or, when not all could be kept, until the agent resends them. They are not acked
 * meanwhile, so they are not lost (the agent keeps them too). */
static void session_hole(Session *s, uint64_t seq) {
        Boot *b = s->boot;

        if (b->unpersisted_seq != 0 && b->unpersisted_seq <= seq)
                return;
        if (b->unpersisted_seq == 0)
                file_repair_schedule(b, now_ns(CLOCK_MONOTONIC));
        b->unpersisted_seq = seq;
}

/* The record seq is in the file (or was dropped for good by a bound): the hole, if it began there, moves on. */
static void session_hole_filled(Session *s, uint64_t seq) {
        Boot *b = s->boot;

        if (b->unpersisted_seq == 0 || seq != b->unpersisted_seq)
                return;
        /* A new record's seq is last_seq + 1 before it is applied: then nothing is missing any more. */
        b->unpersisted_seq = seq >= b->last_seq ? 0 : seq + 1;
        if (b->unpersisted_seq == 0) {
                unwritten_clear(&b->unwritten);
                LogFields f = session_log_fields(s, NULL);
                log_emit(
                        LOG_NOTICE,
                        0,
                        &f,
                        "The boot file of machine %s holds every record again (up to seq %" PRIu64 ").",
                        s->machine->id,
                        seq);
                s->persist_warned = false;
        }
}

static int keep_lost_entry(
        StoreEntryType type, uint64_t recv_unix_ns, const void *payload, size_t len, void *userdata) {
        Boot *b = userdata;
        (void) unwritten_add(&b->unwritten, type, recv_unix_ns, payload, len); /* else the agent resends them */
        return 0;
}

/* A write of buffered entries failed: the file was rolled back, so the entries of this wakeup's batch are not in
 * it after all. Memory must not take them for persisted, nor the log index point past the file; they are not
 * acked, and the boot keeps copies for the repair. */
static void session_batch_lost(Session *s) {
        Boot *b = s->boot;

        if (s->batch_first_seq == 0) {
                /* No record in it (a clock entry): nothing that is not written again later. */
                (void) store_take_lost(s->ctx->store, b, NULL, NULL);
                return;
        }
        log_tail_set_persisted(&b->logs, s->batch_first_seq, UINT64_MAX, false);
        log_index_truncate(&b->log_index, store_boot_written(s->ctx->store, b));
        session_hole(s, s->batch_first_seq);
        if (store_take_lost(s->ctx->store, b, keep_lost_entry, b) < 0)
                unwritten_give_up(&b->unwritten);
        s->batch_first_seq = 0;
}

/* An entry the store did not take: dropped for good if a bound refused it, else a failure to count and report
 * (none without a file: the missing file was counted when its creation failed). Returns whether the failure is
 * permanent. */
static bool session_persist_error(Session *s, int r, size_t bytes) {
        bool permanent = file_refused_for_good(r);

        if (permanent)
                file_count_refused(s->ctx->stats, r, bytes); /* a bound refused it: dropped */
        else if (r != -ENOENT)
                s->ctx->stats->persist_errors++;
        session_warn_persist(s, r);
        return permanent;
}

/* seq: the stored seq of a record, 0 for the other entries. *ret_offset (may be NULL) gets where the entry is in
 * the boot file, BOOT_NO_FILE_OFFSET when it is not. */
static int session_persist(
        Session *s,
        StoreEntryType type,
        uint64_t recv,
        const uint8_t *payload,
        size_t len,
        uint64_t seq,
        uint64_t *ret_offset) {
        uint64_t offset = BOOT_NO_FILE_OFFSET;
        int r;

        Boot *b = s->boot;

        if (!s->ctx->store)
                goto done;
        if ((seq > 0 && b->unpersisted_seq != 0 && seq != b->unpersisted_seq) || !unwritten_is_empty(&b->unwritten)) {
                /* Behind the file's hole, or behind entries kept for it: the file is written in order, so kept for
                 * the repair too (or, when not all could be kept, the agent's resend). */
                (void) unwritten_add(&b->unwritten, type, recv, payload, len);
                goto done;
        }
        r = store_append(s->ctx->store, b, type, recv, payload, len, &offset);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                offset = BOOT_NO_FILE_OFFSET;
                if (!file_refused_for_good(r) && r != -EIO && r != -ENOENT)
                        session_batch_lost(s); /* writing out the full buffer failed */
                if (session_persist_error(s, r, len))
                        session_hole_filled(s, seq);
                else if (seq > 0 || b->unpersisted_seq != 0) {
                        if (seq > 0)
                                session_hole(s, seq);
                        (void) unwritten_add(&b->unwritten, type, recv, payload, len);
                }
                goto done;
        }
        session_hole_filled(s, seq);
done:
        if (ret_offset)
                *ret_offset = offset;
        return 0;
}

void session_flush_writes(Session *s) {
        int r;

        if (!s->ctx->store || !s->boot)
                return;
        r = store_boot_flush(s->ctx->store, s->boot);
        if (r < 0) {
                session_batch_lost(s);
                session_warn_persist(s, r); /* the store counted the entries lost */
        }
        s->batch_first_seq = 0;
}

static uint64_t session_unix_time(const Session *s, uint64_t boottime_ns, uint64_t fallback) {
        return boot_to_unix_ns(s->boot, boottime_ns, fallback);
}

/* A stored seq in the agent instance's own seq space: Welcome.acked_seq and Ack.seq. */
static uint64_t session_wire_seq(const Session *s, uint64_t stored_seq) {
        return stored_seq > s->seq_offset ? stored_seq - s->seq_offset : 0;
}

/* A durable mark of the boot file, cut to what precedes the file's hole. */
static uint64_t session_ackable(const Session *s, uint64_t durable_seq) {
        if (s->boot->unpersisted_seq != 0)
                return MIN(durable_seq, s->boot->unpersisted_seq - 1);
        return durable_seq;
}

/* What is durable for this boot: only that may be acked, never a record in or behind the file's hole. */
static uint64_t session_durable_seq(const Session *s) {
        if (!s->ctx->store)
                return s->boot->last_seq;
        return session_ackable(s, store_durable_mark(s->ctx->store, s->boot, s->boot->last_seq));
}

static uint64_t session_acked_wire_seq(const Session *s) {
        return session_wire_seq(s, session_durable_seq(s));
}

static int session_send_welcome(Session *s) {
        Tether__Envelope env = TETHER__ENVELOPE__INIT;
        Tether__Welcome w = TETHER__WELCOME__INIT;
        Tether__Limits limits = TETHER__LIMITS__INIT;
        TraceParent tp = { .flags = 0x01 };
        char traceparent[TRACEPARENT_STRLEN + 1];

        memcpy(tp.trace_id, s->boot->trace_id, 16);
        stitch_workload_span_id(s->boot, tp.span_id);
        traceparent_format(&tp, traceparent);

        limits.max_frame_bytes = TETHER_FRAME_MAX;
        limits.max_attributes = s->ctx->limits.max_attributes;
        limits.max_string_bytes = s->ctx->limits.max_string_bytes;
        limits.heartbeat_interval_ms = s->ctx->heartbeat_interval_ms;

        w.protocol_version = s->protocol_version;
        w.session_id.data = s->session_id;
        w.session_id.len = sizeof(s->session_id);
        w.acked_seq = session_acked_wire_seq(s);
        w.limits = &limits;
        w.traceparent = traceparent;
        w.machine_id = s->machine->id;
        w.journal_cursor = s->boot->journal_cursor ?: (char *) "";

        env.msg_case = TETHER__ENVELOPE__MSG_WELCOME;
        env.welcome = &w;
        return session_queue(s, &env);
}

static int session_persist_instance(Session *s, uint64_t recv, const uint8_t *id, size_t id_len, uint64_t seq_offset) {
        int r;

        if (!s->ctx->store)
                return 0;
        r = store_append_instance(s->ctx->store, s->boot, recv, id, id_len, seq_offset);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENOENT)
                (void) session_persist_error(s, r, 8 + id_len);
        return 0;
}

/* A boot file created after the boot began (its first attempt failed): what a restarted tetherd needs besides the
 * records, written ahead of them. */
static int session_persist_boot_state(Session *s, uint64_t recv) {
        int r = store_append_boot_state(s->ctx->store, s->boot, recv);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENOENT)
                (void) session_persist_error(s, r, 0);
        return 0;
}

bool session_wants_resync(Session *s) {
        Boot *b = s->boot;
        uint64_t records = 0;
        int r;

        if (!s->ctx->store || !b || s->state != SESSION_ACTIVE || !file_repair_needed(b) ||
            !file_repair_due(b, now_ns(CLOCK_MONOTONIC)))
                return false;
        r = file_repair(s->ctx->store, s->ctx->stats, s->machine, b, &records);
        if (r < 0)
                return false;
        LogFields f = session_log_fields(s, NULL);
        if (r == 0) {
                log_emit(
                        LOG_NOTICE,
                        0,
                        &f,
                        "The boot file of machine %s can be written again: wrote the %" PRIu64
                        " records kept in memory, it holds every record again.",
                        s->machine->id,
                        records);
                s->persist_warned = false;
                s->ack_pending = true; /* what the hole held back can be acked now */
                return false;
        }
        if (b->unpersisted_seq > b->last_seq)
                return false; /* nothing to resend: the next record goes into the file */
        log_emit(
                LOG_NOTICE,
                0,
                &f,
                "The boot file of machine %s can be written again: reconnecting its agent to have records from seq "
                "%" PRIu64 " on resent (more than tetherd keeps in memory were missing).",
                s->machine->id,
                session_wire_seq(s, b->unpersisted_seq));
        return true;
}

static void session_emit_booting(Session *s, uint64_t recv);
static void session_fix_clock(Session *s);

static int session_handle_hello(Session *s, const Tether__Envelope *e, const uint8_t *payload, size_t len) {
        const Tether__Hello *h = e->hello;
        Registry *reg = s->ctx->registry;
        Machine *m = s->machine;
        uint64_t now = now_ns(CLOCK_REALTIME);
        Boot *b, *evicted = NULL;
        bool new_instance;
        int r;

        s->protocol_version = envelope_negotiate_version(h->protocol_version, h->max_protocol_version);
        if (s->protocol_version == 0)
                return session_fail(
                        s,
                        PROTOCOL_ERROR_VERSION_MISMATCH,
                        "agent speaks protocol versions %" PRIu32 " to %" PRIu32 ", tetherd %u to %u",
                        h->protocol_version,
                        MAX(h->protocol_version, h->max_protocol_version),
                        TETHER_PROTOCOL_VERSION,
                        TETHER_PROTOCOL_VERSION_MAX);
        if (!h->boot_id || !*h->boot_id)
                return session_fail(s, PROTOCOL_ERROR_INVALID_FIELD, "Hello without boot_id");

        r = registry_start_boot(reg, m, h->boot_id, &b, &evicted);
        if (r < 0)
                return r;
        s->new_boot = r > 0;
        if (s->new_boot && m->samples)
                sample_ring_reset(m->samples);
        if (evicted) {
                if (s->ctx->store)
                        (void) store_remove_boot(s->ctx->store, evicted);
                boot_free(evicted);
        }
        s->boot = b;
        r = boot_update_from_hello(b, h, now);
        if (r < 0)
                return r;

        /* A restarted agent (a new instance) starts again at seq 1 on the same boot: its records go after what
         * the boot already holds, instead of being taken for duplicates of the previous instance's. */
        new_instance = boot_find_instance(b, h->agent_instance.data, h->agent_instance.len, &s->seq_offset) == 0;
        if (new_instance) {
                s->seq_offset = b->last_seq;
                r = boot_add_instance(b, h->agent_instance.data, h->agent_instance.len, s->seq_offset);
                if (r < 0)
                        return r;
        }

        if (s->ctx->store) {
                r = store_begin_boot(s->ctx->store, m, b);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        /* No file: nothing of this boot is acked until one exists (session_wants_resync()). */
                        s->ctx->stats->persist_errors++;
                        session_warn_persist(s, r);
                        session_hole(s, b->last_seq + 1);
                } else {
                        if (r > 0)
                                /* A new file: every agent instance of the boot (a file created late, after a
                                 * failed first attempt, also misses those of earlier connections). */
                                r = session_persist_boot_state(s, now);
                        else
                                r = new_instance ?
                                        session_persist_instance(
                                                s, now, h->agent_instance.data, h->agent_instance.len, s->seq_offset) :
                                        0;
                        if (r >= 0)
                                r = session_persist(s, STORE_ENTRY_HELLO, now, payload, len, 0, NULL);
                        if (r < 0)
                                return r;
                }
                /* Welcome.acked_seq promises only what is durable; the agent resends the rest, taken as
                 * duplicates and acked once their sync completes. */
        }

        s->acked_seq = session_acked_wire_seq(s);
        s->state = SESSION_ACTIVE;
        if (s->local) {
                /* One local session per message of an agentless boot: the boot says what happened, not this. */
                if (s->new_boot) {
                        LogFields f = session_log_fields(s, "booting");
                        log_emit(LOG_INFO, 0, &f, "Machine %s started an agentless boot %s.", m->id, b->boot_id);
                        if (!b->clock_fixed) {
                                s->events_deferred = true;
                                s->deferred_after_seq = b->last_seq;
                                s->booting_deferred = true;
                        }
                }
                session_fix_clock(s);
                registry_set_state(reg, m, machine_state_from_boot(m), b->exit.set ? b->exit.reason : NULL);
                return 0;
        }
        m->agent_seen = true;
        m->connections++;
        registry_set_connected(reg, m, true);

        LogFields f = session_log_fields(s, "connected");
        log_emit(
                LOG_INFO,
                0,
                &f,
                "Machine %s connected (boot %s%s, agent %s%s, seq offset %" PRIu64 ", acked_seq %" PRIu64 ").",
                m->id,
                b->boot_id,
                s->new_boot ? ", new" : "",
                b->agent_version ?: "?",
                new_instance && !s->new_boot ? " restarted" : "",
                s->seq_offset,
                s->acked_seq);
        registry_emit_event(
                reg,
                m,
                "connected",
                now,
                json_pack(
                        "{s:s?, s:s?, s:s?, s:b, s:I, s:b, s:I}",
                        "hostname",
                        b->hostname,
                        "agent_version",
                        b->agent_version,
                        "kernel_release",
                        b->kernel_release,
                        "new_boot",
                        s->new_boot,
                        "acked_seq",
                        (json_int_t) s->acked_seq,
                        "new_instance",
                        new_instance && h->agent_instance.len > 0,
                        "seq_offset",
                        (json_int_t) s->seq_offset));
        if (!b->clock_fixed) {
                /* Events carrying guest times wait (briefly: the first good clock sample, the probe burst, or a
                 * Ready/Exit) until the boot's clock mapping is fixed, so that none disagrees with later views. */
                s->events_deferred = true;
                s->deferred_after_seq = b->last_seq;
                s->booting_deferred = s->new_boot;
        } else if (s->new_boot)
                session_emit_booting(s, now);
        registry_set_state(reg, m, machine_state_from_boot(m), m->current->exit.set ? m->current->exit.reason : NULL);

        return session_send_welcome(s);
}

static json_t *attrs_to_json(const Attr *a, size_t n) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < n; i++)
                json_object_set_new(o, a[i].key, json_string(a[i].value ?: ""));
        return o;
}

/* Events of stored milestones and phases are made from what the boot kept (not from the record: a milestone
 * beyond the per-boot bound has no event either), with the boot's clock mapping. */
static void session_emit_milestone(Session *s, const BootMilestone *ms) {
        Registry *reg = s->ctx->registry;
        uint64_t t = session_unix_time(s, ms->boottime_ns, ms->recv_unix_ns);

        registry_emit_event(
                reg,
                s->machine,
                "milestone",
                t,
                json_pack(
                        "{s:s, s:I, s:o}",
                        "name",
                        ms->name,
                        "boottime_ns",
                        (json_int_t) ms->boottime_ns,
                        "attributes",
                        attrs_to_json(ms->attrs, ms->n_attrs)));
        if (strcmp(ms->name, "oom.kill") == 0)
                registry_emit_event(
                        reg,
                        s->machine,
                        "oom_killed",
                        t,
                        json_pack("{s:o}", "attributes", attrs_to_json(ms->attrs, ms->n_attrs)));
}

static void session_emit_phase(Session *s, const BootPhase *p, uint64_t recv) {
        registry_emit_event(
                s->ctx->registry,
                s->machine,
                "phase",
                session_unix_time(s, p->end_boottime_ns, recv),
                json_pack(
                        "{s:s, s:I, s:I, s:s, s:s?}",
                        "name",
                        p->name,
                        "start_unix_ns",
                        (json_int_t) session_unix_time(s, p->start_boottime_ns, recv),
                        "end_unix_ns",
                        (json_int_t) session_unix_time(s, p->end_boottime_ns, recv),
                        "status",
                        p->status == TETHER__PHASE_STATUS__PHASE_STATUS_OK            ? "ok" :
                                p->status == TETHER__PHASE_STATUS__PHASE_STATUS_ERROR ? "error" :
                                                                                        "unset",
                        "message",
                        p->message && *p->message ? p->message : NULL));
}

static void session_emit_booting(Session *s, uint64_t recv) {
        char trace[33];

        hex_encode(s->boot->trace_id, 16, trace);
        registry_emit_event(
                s->ctx->registry,
                s->machine,
                "booting",
                recv,
                json_pack(
                        "{s:s, s:I, s:I}",
                        "trace_id",
                        trace,
                        "kernel_start_unix_ns",
                        (json_int_t) session_unix_time(s, 0, recv),
                        "boot_index",
                        (json_int_t) s->boot->index));
}

/* Emits what waited for the boot's clock mapping: the booting event and the events of milestones and phases
 * stored since, in seq order. */
static void session_emit_deferred(Session *s) {
        Boot *b = s->boot;

        if (!s->events_deferred)
                return;
        s->events_deferred = false;
        if (s->booting_deferred)
                session_emit_booting(s, b->first_seen_unix_ns);
        s->booting_deferred = false;

        size_t i = 0, j = 0;
        while (i < b->n_milestones && b->milestones[i].seq <= s->deferred_after_seq)
                i++;
        while (j < b->n_phases && b->phases[j].seq <= s->deferred_after_seq)
                j++;
        while (i < b->n_milestones || j < b->n_phases) {
                if (j == b->n_phases || (i < b->n_milestones && b->milestones[i].seq < b->phases[j].seq))
                        session_emit_milestone(s, &b->milestones[i++]);
                else {
                        session_emit_phase(s, &b->phases[j], b->first_seen_unix_ns);
                        j++;
                }
        }
}

/* Fixes the boot's clock mapping (see boot.h), emits the events that waited for it, then tells the observers (the
 * exporter sends the log records that waited for it). */
static void session_fix_clock(Session *s) {
        Boot *b = s->boot;

        if (!b || !boot_fix_clock(b))
                return;
        if (s->ctx->store && b->clock.valid)
                (void) store_append_clock(s->ctx->store, b, now_ns(CLOCK_REALTIME), &b->clock, true);
        session_emit_deferred(s);
        registry_notify_clock_fixed(s->ctx->registry, s->machine, b);
}

void session_clock_deadline(Session *s) {
        session_fix_clock(s);
}

static void session_settle_gaps(Session *s);

/* The machine's state reason for its boot's exit, or NULL when out of memory. */
static char *session_exit_reason(const Boot *b) {
        char *reason = NULL;

        if (b->exit.reason && *b->exit.reason)
                return strdup(b->exit.reason);
        if (b->exit.oom_killed)
                return strdup("killed by the OOM killer");
        if (b->exit.signal) {
                if (asprintf(&reason, "killed by signal %" PRIi32, b->exit.signal) < 0)
                        return NULL;
                return reason;
        }
        if (asprintf(&reason, "exited with code %" PRIi32, b->exit.code) < 0)
                return NULL;
        return reason;
}

/* The exited/crashed event's own fields. */
static json_t *exit_event_details(const Boot *b) {
        json_t *o = boot_exit_to_json(b);
        if (o)
                json_object_set_new(o, "before_ready", json_boolean(!b->ready.set));
        return o;
}

static void session_record_events(Session *s, const Tether__Envelope *e, const BootApplyResult *res, uint64_t recv) {
        Registry *reg = s->ctx->registry;
        Machine *m = s->machine;
        Boot *b = s->boot;

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_MILESTONE:
                /* Only the milestone this record added: a repeated one had its event the first time. */
                if (!res->limit_dropped && !res->repeated && !s->events_deferred && b->n_milestones > 0)
                        session_emit_milestone(s, &b->milestones[b->n_milestones - 1]);
                break;
        case TETHER__ENVELOPE__MSG_PHASE:
                if (!res->limit_dropped && !res->repeated && !s->events_deferred && b->n_phases > 0)
                        session_emit_phase(s, &b->phases[b->n_phases - 1], recv);
                break;
        case TETHER__ENVELOPE__MSG_LOG_DROPPED: {
                const Tether__LogDropped *d = e->log_dropped;
                LogFields f = session_log_fields(s, "logs_dropped");
                log_emit(
                        LOG_NOTICE,
                        0,
                        &f,
                        "Machine %s dropped %" PRIu64 " log records (%" PRIu64 " bytes, seq %" PRIu64 "-%" PRIu64
                        ") from its replay buffer.",
                        m->id,
                        d->records,
                        d->bytes,
                        d->first_seq,
                        d->last_seq);
                registry_emit_event(
                        reg,
                        m,
                        "logs_dropped",
                        recv,
                        json_pack(
                                "{s:I, s:I, s:I, s:I, s:s}",
                                "records",
                                (json_int_t) d->records,
                                "bytes",
                                (json_int_t) d->bytes,
                                "first_seq",
                                (json_int_t) d->first_seq,
                                "last_seq",
                                (json_int_t) d->last_seq,
                                "reason",
                                "agent_buffer"));
                break;
        }
        default:
                break;
        }

        if (res->became_ready) {
                uint64_t ready = session_unix_time(s, b->ready.boottime_ns, recv), since_kernel = 0, since_init = 0;
                bool has_kernel = boot_kernel_to_ready_ns(b, &since_kernel) >= 0;
                bool has_init = boot_init_to_ready_ns(b, &since_init) >= 0;
                uint64_t since_host = 0;
                bool has_host = boot_host_start_to_ready_ns(b, &since_host) >= 0;
                LogFields f = session_log_fields(s, "ready");

                if (has_kernel || has_init)
                        log_emit(
                                LOG_INFO,
                                0,
                                &f,
                                "Machine %s is ready (%s) %.3f s after %s start.",
                                m->id,
                                b->ready.source,
                                (double) (has_kernel ? since_kernel : since_init) / 1e9,
                                has_kernel ? "kernel" : "init");
                else
                        log_emit(LOG_INFO, 0, &f, "Machine %s is ready (%s).", m->id, b->ready.source);
                registry_emit_event(
                        reg,
                        m,
                        "ready",
                        ready,
                        json_pack(
                                "{s:s, s:s, s:I, s:o, s:o, s:I, s:o}",
                                "source",
                                b->ready.source,
                                "detail",
                                b->ready.detail,
                                "ready_unix_ns",
                                (json_int_t) ready,
                                "kernel_to_ready_ns",
                                has_kernel ? json_integer((json_int_t) since_kernel) : json_null(),
                                "init_to_ready_ns",
                                has_init ? json_integer((json_int_t) since_init) : json_null(),
                                "registered_to_ready_ns",
                                (json_int_t) time_diff(ready, m->registered_unix_ns),
                                "host_start_to_ready_ns",
                                has_host ? json_integer((json_int_t) since_host) : json_null()));
        }
        if (res->exited) {
                bool crash = boot_exit_is_crash(b);
                const char *transition = crash ? "crashed" : "exited";
                _cleanup_free_ char *reason = session_exit_reason(b);
                LogFields f = session_log_fields(s, transition);
                uint64_t t = session_unix_time(s, b->exit.boottime_ns, recv);

                log_emit(
                        crash ? LOG_WARNING : LOG_INFO,
                        0,
                        &f,
                        "Machine %s workload %s (code %" PRIi32 ").",
                        m->id,
                        reason ?: transition,
                        b->exit.code);
                /* One oom_killed event per kill: the agent's oom.kill milestone already emitted it. */
                if (b->exit.oom_killed && !boot_find_milestone(b, "oom.kill"))
                        registry_emit_event(reg, m, "oom_killed", t, NULL);
                registry_emit_event(reg, m, transition, t, exit_event_details(b));
        }
}

/* What a Ready or an Exit decides, before anything else is done with the record: the machine's state, whose
 * observers answer the parked long-polls from memory. The record's log line, event and OTLP work follow in the
 * session's next turn (session_record_tail()), after the loop has sent those answers. */
static void session_answer(Session *s, const BootApplyResult *res) {
        Registry *reg = s->ctx->registry;
        Boot *b = s->boot;

        /* An answer that goes out now fixes the mapping it is given in. */
        session_fix_clock(s);
        if (res->exited) {
                _cleanup_free_ char *reason = session_exit_reason(b);
                registry_set_state(reg, s->machine, boot_exit_is_crash(b) ? MACHINE_CRASHED : MACHINE_EXITED, reason);
        } else if (res->became_ready && !b->exit.set)
                registry_set_state(reg, s->machine, MACHINE_READY, NULL);
}

/* Everything a stored record causes besides the answer: events, log lines, observers (OTLP, metrics, log
 * streams). */
static void session_record_tail(Session *s, const Tether__Envelope *e, const BootApplyResult *res, uint64_t recv) {
        session_record_events(s, e, res, recv);
        if (res->exited) {
                /* Nothing after the exit can explain an earlier gap any more. */
                session_settle_gaps(s);
                registry_notify_boot_finished(s->ctx->registry, s->machine, s->boot);
        }
        registry_notify_record_stored(s->ctx->registry, s->machine, s->boot, e, recv);
}

/* The tail of a record that answered, left for after the answers went out. */
static void session_run_tail(Session *s) {
        _cleanup_envelope_ Tether__Envelope *e = TAKE_PTR(s->tail_record);

        if (e)
                session_record_tail(s, e, &s->tail_res, s->tail_recv);
}

bool session_answered(const Session *s) {
        return s->tail_record;
}

static void session_count_record(Session *s, const Tether__Envelope *e, const BootApplyResult *res) {
        Stats *st = s->ctx->stats;

        st->records_stored++;
        if (e->msg_case == TETHER__ENVELOPE__MSG_LOG && e->log->stream < STATS_LOG_STREAMS) {
                st->log_records[e->log->stream]++;
                st->log_bytes[e->log->stream] += e->log->data.len;
        }
        if (e->msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED) {
                st->dropped_records[DROP_AGENT_BUFFER] = add_sat(
                        st->dropped_records[DROP_AGENT_BUFFER], e->log_dropped->records);
                st->dropped_bytes[DROP_AGENT_BUFFER] = add_sat(
                        st->dropped_bytes[DROP_AGENT_BUFFER], e->log_dropped->bytes);
        }
        if (res->evicted_records > 0) {
                st->dropped_records[DROP_EVICTED] += res->evicted_records;
                st->dropped_bytes[DROP_EVICTED] += res->evicted_bytes;
        }
        if (res->limit_dropped)
                st->dropped_records[res->limit_reason]++;
        if (res->gaps_overflowed > 0) {
                st->seq_gaps += res->gaps_overflowed;
                st->seq_gap_records = add_sat(st->seq_gap_records, res->gap_overflow_records);
        }
}

static void session_settle_gaps(Session *s) {
        uint64_t records = 0, n;
        LogFields f = session_log_fields(s, NULL);

        if (!s->boot)
                return;
        n = boot_flush_gaps(s->boot, &records);
        if (n == 0)
                return;
        s->ctx->stats->seq_gaps += n;
        s->ctx->stats->seq_gap_records = add_sat(s->ctx->stats->seq_gap_records, records);
        log_emit(
                LOG_WARNING,
                0,
                &f,
                "Machine %s skipped %" PRIu64 " sequence numbers in %" PRIu64
                " gaps that no LogDropped explained (seq_gap).",
                s->machine->id,
                records,
                n);
}

/* Moves a record from the agent instance's seq space into the boot's. Returns 0, or -ERANGE when a seq does not
 * fit (the instance's offset leaves no room for it). */
static int session_translate_seq(const Session *s, Tether__Envelope *e) {
        uint64_t offset = s->seq_offset;

        if (offset == 0)
                return 0;
        if (e->seq > UINT64_MAX - offset)
                return -ERANGE;
        if (e->msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED) {
                Tether__LogDropped *d = e->log_dropped;
                /* 0 means "not said"; it stays so. */
                if (d->last_seq > UINT64_MAX - offset)
                        return -ERANGE;
                if (d->first_seq > 0)
                        d->first_seq += offset;
                if (d->last_seq > 0)
                        d->last_seq += offset;
        }
        e->seq += offset;
        return 0;
}

/* Takes *ep when the record answered (its tail waits in the session). */
static int session_handle_record(Session *s, Tether__Envelope **ep, const uint8_t *payload, size_t len) {
        Tether__Envelope *e = *ep;
        uint64_t recv = now_ns(CLOCK_REALTIME);
        _cleanup_free_ uint8_t *translated = NULL;
        uint64_t offset;
        BootApplyResult res;
        int r;

        if (e->seq <= s->last_record_seq)
                return session_fail(
                        s,
                        PROTOCOL_ERROR_SEQ_REGRESSION,
                        "record seq %" PRIu64 " after seq %" PRIu64 " on the same connection",
                        e->seq,
                        s->last_record_seq);
        s->last_record_seq = e->seq;
        if (e->msg_case == TETHER__ENVELOPE__MSG_LOG && s->protocol_version < TETHER_PROTOCOL_VERSION_JOURNAL &&
            (e->log->stream == TETHER__LOG_STREAM__LOG_STREAM_JOURNAL || e->log->priority != 0 ||
             (e->log->cursor && *e->log->cursor)))
                return session_fail(
                        s,
                        PROTOCOL_ERROR_INVALID_FIELD,
                        "a journal Log on a protocol version %" PRIu32 " connection",
                        s->protocol_version);
        s->records++;
        s->ack_pending = true;
        s->unacked_bytes += len;

        if (session_translate_seq(s, e) < 0)
                return session_fail(
                        s,
                        PROTOCOL_ERROR_INVALID_FIELD,
                        "record seq %" PRIu64 " does not fit above the agent instance's seq offset %" PRIu64,
                        e->seq,
                        s->seq_offset);

        bool resent = e->seq <= s->boot->last_seq;
        if (resent && !(s->ctx->store && e->seq == s->boot->unpersisted_seq)) {
                /* A replay after a lost ack. */
                s->boot->duplicates++;
                s->duplicates++;
                s->ctx->stats->records_duplicate++;
                return 0;
        }

        if (s->seq_offset > 0 && s->ctx->store) {
                /* The file holds stored seqs, so that a reload needs no instance bookkeeping to apply it. */
                len = tether__envelope__get_packed_size(e);
                if (!(translated = malloc(len)))
                        return -ENOMEM;
                tether__envelope__pack(e, translated);
                payload = translated;
        }
        r = session_persist(s, STORE_ENTRY_RECORD, recv, payload, len, e->seq, &offset);
        if (r < 0)
                return r;
        if (offset != BOOT_NO_FILE_OFFSET && s->batch_first_seq == 0)
                s->batch_first_seq = e->seq;
        if (resent) {
                /* Applied when it first came, kept out of the file by a failed write: only the file needed it. */
                if (offset == BOOT_NO_FILE_OFFSET)
                        return 0; /* failed again (or refused by a bound): the hole stays, or the drop counted */
                s->ctx->stats->records_repersisted++;
                return boot_record_persisted(s->boot, e, offset);
        }
        r = boot_apply_record_at(s->boot, &s->machine->ready_condition, e, recv, offset, 0, &res);
        if (r < 0)
                return r;

        session_count_record(s, e, &res);
        if (res.became_ready || res.exited) {
                s->ack_urgent = true;
                session_answer(s, &res);
                s->tail_record = TAKE_PTR(*ep);
                s->tail_res = res;
                s->tail_recv = recv;
                return 0;
        }
        session_record_tail(s, e, &res, recv);
        return 0;
}

static int session_handle_clock_sample(Session *s, const Tether__ClockSample *cs) {
        uint64_t recv_mono = now_ns(CLOCK_MONOTONIC);
        ClockProbeSlot probe;
        ClockEstimate candidate;

        if (clock_prober_take(&s->prober, cs->probe_id, &probe) < 0 ||
            clock_sample_estimate(&probe, recv_mono, cs->boottime_ns, &candidate) < 0) {
                s->ctx->stats->clock_samples_ignored++;
                return 0;
        }
        s->ctx->stats->clock_samples++;
        s->clock_samples++;
        if (boot_offer_clock(s->boot, &candidate) > 0 && s->ctx->store)
                /* Best effort: without it, a restart only loses precision until the next probe. */
                (void) store_append_clock(s->ctx->store, s->boot, now_ns(CLOCK_REALTIME), &s->boot->clock, false);
        if (s->boot->clock.valid &&
            (s->boot->clock.error_ns <= SESSION_CLOCK_FIX_ERROR_NS || s->clock_samples >= SESSION_CLOCK_FIX_SAMPLES))
                session_fix_clock(s);
        return 0;
}

/* Kept in the machine's ring (bounded in count and rate, see samples.h), counted either way. */
static void session_handle_resource_sample(Session *s, const Tether__ResourceSample *pb) {
        Machine *m = s->machine;
        GuestSample g;

        if (!m->samples && !(m->samples = calloc(1, sizeof(SampleRing)))) {
                s->ctx->stats->guest_samples_refused++;
                return;
        }
        guest_sample_from_pb(pb, now_ns(CLOCK_REALTIME), &g);
        if (sample_ring_push(m->samples, &g) > 0) {
                s->ctx->stats->guest_samples++;
                registry_notify_sample_added(s->ctx->registry, m, sample_ring_latest(m->samples));
        } else
                s->ctx->stats->guest_samples_refused++;
}

static int session_handle_frame(Session *s, const uint8_t *payload, size_t len) {
        _cleanup_envelope_ Tether__Envelope *e = NULL;
        ProtocolError pe;

        if (envelope_unpack(payload, len, &e) < 0)
                return session_fail(s, PROTOCOL_ERROR_DECODE_FAILED, "undecodable frame of %zu bytes", len);
        pe = envelope_validate(e, &s->ctx->limits);
        if (pe != PROTOCOL_ERROR_NONE)
                return session_fail(s, pe, "invalid message (field %u)", (unsigned) e->msg_case);

        if (s->state == SESSION_AWAIT_HELLO) {
                if (e->msg_case != TETHER__ENVELOPE__MSG_HELLO)
                        return session_fail(
                                s,
                                PROTOCOL_ERROR_UNEXPECTED_MESSAGE,
                                "first message is field %u, not Hello",
                                (unsigned) e->msg_case);
                return session_handle_hello(s, e, payload, len);
        }

        if (envelope_is_record(e))
                return session_handle_record(s, &e, payload, len);

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_CLOCK_SAMPLE:
                return session_handle_clock_sample(s, e->clock_sample);
        case TETHER__ENVELOPE__MSG_HEARTBEAT:
                return 0;
        case TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE:
                if (s->protocol_version < TETHER_PROTOCOL_VERSION_SAMPLES)
                        return session_fail(
                                s,
                                PROTOCOL_ERROR_UNEXPECTED_MESSAGE,
                                "ResourceSample on a protocol version %" PRIu32 " connection",
                                s->protocol_version);
                session_handle_resource_sample(s, e->resource_sample);
                return 0;
        case TETHER__ENVELOPE__MSG_HELLO:
                return session_fail(s, PROTOCOL_ERROR_UNEXPECTED_MESSAGE, "second Hello on one connection");
        default:
                /* Welcome, ClockProbe and Ack travel host to guest only. */
                return session_fail(
                        s,
                        PROTOCOL_ERROR_UNEXPECTED_MESSAGE,
                        "host-only message (field %u) from the guest",
                        (unsigned) e->msg_case);
        }
}

int session_process(Session *s, unsigned max_frames) {
        unsigned n = 0;
        int r;

        session_run_tail(s);
        while (n < max_frames && !s->tail_record) {
                const uint8_t *payload;
                size_t len;

                if (s->state == SESSION_FAILED)
                        return -EPROTO;
                r = frame_reader_next(&s->reader, &payload, &len);
                if (r == -EMSGSIZE)
                        return session_fail(
                                s, PROTOCOL_ERROR_FRAME_TOO_LARGE, "frame length above %u", TETHER_FRAME_MAX);
                if (r == -EBADMSG)
                        return session_fail(s, PROTOCOL_ERROR_FRAME_EMPTY, "frame of length 0");
                if (r <= 0)
                        break;
                n++;
                s->frames++;
                r = session_handle_frame(s, payload, len);
                if (r < 0)
                        return r;
        }
        return (int) n;
}

bool session_frame_ready(const Session *s) {
        size_t avail = frame_reader_pending(&s->reader);

        if (s->state == SESSION_FAILED || avail < TETHER_FRAME_HEADER_SIZE)
                return false;
        uint32_t len = frame_header_get(s->reader.buf + s->reader.start);
        if (len == 0 || len > s->reader.max_payload)
                return true;
        return avail - TETHER_FRAME_HEADER_SIZE >= len;
}

int session_feed(Session *s, const uint8_t *data, size_t n) {
        int r;

        while (n > 0 || session_answered(s) || session_frame_ready(s)) {
                size_t k = frame_reader_feed(&s->reader, data, n);
                data += k;
                n -= k;
                r = session_process(s, UINT32_MAX);
                if (r < 0)
                        return r;
                if (k == 0 && n > 0 && !session_frame_ready(s) && !session_answered(s))
                        return -EPROTO; /* unreachable: a full buffer always holds a frame or an error */
        }
        return s->state == SESSION_FAILED ? -EPROTO : 0;
}

static int session_queue_ack(Session *s, uint64_t durable_seq) {
        Tether__Envelope env = TETHER__ENVELOPE__INIT;
        Tether__Ack ack = TETHER__ACK__INIT;
        int r;

        ack.seq = session_wire_seq(s, durable_seq);
        env.msg_case = TETHER__ENVELOPE__MSG_ACK;
        env.ack = &ack;
        r = session_queue(s, &env);
        if (r < 0)
                return r;
        s->acked_seq = ack.seq;
        s->ctx->stats->acks_sent++;
        return 1;
}

static void session_warn_sync(Session *s, int error) {
        LogFields f = session_log_fields(s, NULL);

        if (s->sync_warned)
                return;
        s->sync_warned = true;
        log_emit(LOG_ERR, error, &f, "Failed to sync the records of machine %s: %m", s->machine->id);
}

static void session_on_durable(Boot *b, uint64_t durable_seq, int error, void *userdata) {
        Session *s = userdata;
        int r;

        if (error < 0)
                session_warn_sync(s, error);
        if (s->state != SESSION_ACTIVE || s->boot != b)
                return;
        durable_seq = session_ackable(s, durable_seq);
        if (session_wire_seq(s, durable_seq) <= s->acked_seq)
                return;
        r = session_queue_ack(s, durable_seq);
        if (s->on_ack)
                s->on_ack(s, r, s->on_ack_userdata);
}

int session_request_ack(Session *s) {
        int r;

        if (!s->boot || s->state != SESSION_ACTIVE || !s->ack_pending)
                return 0;
        s->ack_pending = s->ack_urgent = false;
        s->unacked_bytes = 0;
        if (!s->ctx->store)
                return session_queue_ack(s, s->boot->last_seq);

        /* An ack is a promise: the records must be on disk first. The sync runs on the store's threads. */
        r = store_request_sync(s->ctx->store, s->boot, s->boot->last_seq, session_on_durable, s);
        if (r < 0) {
                /* Could not hand it off (out of memory or fds): sync here rather than never acking. */
                r = store_sync(s->ctx->store, s->boot, s->boot->last_seq);
                if (r < 0)
                        session_warn_sync(s, r);
                r = 1;
        }
        if (r == 0)
                return 0;
        return session_queue_ack(s, session_durable_seq(s));
}

int session_flush_ack(Session *s) {
        int r;

        if (!s->boot || s->state != SESSION_ACTIVE || !s->ack_pending)
                return 0;
        s->ack_pending = s->ack_urgent = false;
        s->unacked_bytes = 0;
        if (s->ctx->store) {
                r = store_sync(s->ctx->store, s->boot, s->boot->last_seq);
                if (r < 0)
                        session_warn_sync(s, r);
        }
        return session_queue_ack(s, session_durable_seq(s));
}

int session_send_clock_probe(Session *s, uint64_t monotonic_ns, uint64_t realtime_ns) {
        Tether__Envelope env = TETHER__ENVELOPE__INIT;
        Tether__ClockProbe probe = TETHER__CLOCK_PROBE__INIT;

        if (s->state != SESSION_ACTIVE)
                return -ENOTCONN;
        probe.probe_id = clock_prober_send(&s->prober, monotonic_ns, realtime_ns);
        env.msg_case = TETHER__ENVELOPE__MSG_CLOCK_PROBE;
        env.clock_probe = &probe;
        return session_queue(s, &env);
}

void session_end(Session *s, CloseReason reason) {
        Registry *reg = s->ctx->registry;
        Machine *m = s->machine;
        Boot *b = s->boot;

        if (!b)
                return; /* never said Hello: nothing about the machine changed */

        if (reason == CLOSE_DELETED) {
                /* The machine is going: the events of its last record with it. */
                envelope_free(s->tail_record);
                s->tail_record = NULL;
        } else
                session_run_tail(s);
        session_settle_gaps(s);
        /* Nothing more will refine the mapping on this connection: what waited for it goes out now. */
        session_fix_clock(s);
        if (s->ctx->store) {
                /* What this connection stored becomes durable in the background; nobody waits for its ack. */
                store_forget_sync_handler(s->ctx->store, b, s);
                (void) store_request_sync(s->ctx->store, b, b->last_seq, NULL, NULL);
        }
        s->boot = NULL;

        if (reason == CLOSE_SHUTDOWN || reason == CLOSE_DELETED || s->local)
                return;
        registry_set_connected(reg, m, false);
        if (reason == CLOSE_REPLACED)
                return; /* the new connection carries on */

        const char *why = reason == CLOSE_PROTOCOL_ERROR ? protocol_error_to_string(s->error) :
                                                           close_reason_to_string(reason);
        LogFields f = session_log_fields(s, "disconnected");
        log_emit(LOG_INFO, 0, &f, "Machine %s disconnected (%s).", m->id, why);
        registry_emit_event(reg, m, "disconnected", now_ns(CLOCK_REALTIME), json_pack("{s:s}", "reason", why));

        if (m->current == b && m->state == MACHINE_BOOTING) {
                _cleanup_free_ char *reason_text = NULL;
                if (asprintf(&reason_text, "agent disconnected before ready (%s)", why) < 0)
                        reason_text = NULL;
                registry_set_state(reg, m, MACHINE_DISCONNECTED, reason_text ?: "agent disconnected before ready");
        }
}
