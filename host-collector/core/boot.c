/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "boot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "time-math.h"
#include "traceparent.h"

int ready_condition_parse(const char *s, ReadyCondition *ret) {
        ReadyCondition c = { .type = READY_CONDITION_ANY };
        const char *arg;

        if (!s || !*s || strcmp(s, "any") == 0) {
                *ret = c;
                return 0;
        }
        if (strncmp(s, "source:", 7) == 0) {
                c.type = READY_CONDITION_SOURCE;
                arg = s + 7;
        } else if (strncmp(s, "milestone:", 10) == 0) {
                c.type = READY_CONDITION_MILESTONE;
                arg = s + 10;
        } else
                return -EINVAL;

        if (!*arg || strlen(arg) > 1024)
                return -EINVAL;
        c.arg = strdup(arg);
        if (!c.arg)
                return -ENOMEM;
        *ret = c;
        return 0;
}

void ready_condition_done(ReadyCondition *c) {
        free(c->arg);
        c->arg = NULL;
}

char *ready_condition_to_string(const ReadyCondition *c) {
        char *s = NULL;

        switch (c->type) {
        case READY_CONDITION_SOURCE:
                if (asprintf(&s, "source:%s", c->arg) < 0)
                        return NULL;
                return s;
        case READY_CONDITION_MILESTONE:
                if (asprintf(&s, "milestone:%s", c->arg) < 0)
                        return NULL;
                return s;
        default:
                return strdup("any");
        }
}

int boot_new(uint64_t index, const char *boot_id, const uint8_t trace_id[16], const BootLimits *limits, Boot **ret) {
        int r;

        if (!boot_id || !*boot_id)
                return -EINVAL;

        Boot *b = calloc(1, sizeof(Boot));
        if (!b)
                return -ENOMEM;
        b->index = index;
        b->limits = limits ? *limits : BOOT_LIMITS_DEFAULT;
        unwritten_init(&b->unwritten, b->limits.unwritten_budget);
        b->boot_id = strdup(boot_id);
        if (!b->boot_id || log_tail_init(&b->logs, b->limits.max_log_bytes, b->limits.log_budget) < 0) {
                boot_free(b);
                return -ENOMEM;
        }
        if (trace_id)
                memcpy(b->trace_id, trace_id, sizeof(b->trace_id));
        else {
                r = random_id(b->trace_id, sizeof(b->trace_id));
                if (r < 0) {
                        boot_free(b);
                        return r;
                }
        }
        *ret = b;
        return 0;
}

static void milestone_done(BootMilestone *m) {
        free(m->name);
        attrs_free(m->attrs, m->n_attrs);
}

static void phase_done(BootPhase *p) {
        free(p->name);
        free(p->message);
        attrs_free(p->attrs, p->n_attrs);
}

Boot *boot_free(Boot *b) {
        if (!b)
                return NULL;
        free(b->boot_id);
        free(b->hostname);
        free(b->kernel_release);
        free(b->journal_cursor);
        free(b->agent_version);
        for (size_t i = 0; i < b->n_milestones; i++)
                milestone_done(&b->milestones[i]);
        free(b->milestones);
        for (size_t i = 0; i < b->n_phases; i++)
                phase_done(&b->phases[i]);
        free(b->phases);
        log_tail_done(&b->logs);
        log_index_done(&b->log_index);
        unwritten_clear(&b->unwritten);
        free(b->instances);
        free(b->ready.source);
        free(b->ready.detail);
        free(b->exit.reason);
        free(b);
        return NULL;
}

int boot_update_from_hello(Boot *b, const Tether__Hello *h, uint64_t recv_unix_ns) {
        char *hostname = NULL, *kernel = NULL, *version = NULL;

        b->last_hello_unix_ns = MAX(b->last_hello_unix_ns, recv_unix_ns);

        if (strdup_or_null(h->hostname, &hostname) < 0 || strdup_or_null(h->kernel_release, &kernel) < 0 ||
            strdup_or_null(h->agent_version, &version) < 0) {
                free(hostname);
                free(kernel);
                free(version);
                return -ENOMEM;
        }
        free(b->hostname);
        b->hostname = hostname;
        free(b->kernel_release);
        b->kernel_release = kernel;
        free(b->agent_version);
        b->agent_version = version;
        b->agent_mode = h->mode;

        if (b->first_seen_unix_ns == 0)
                b->first_seen_unix_ns = recv_unix_ns;

        /* A Hello is a one-way clock sample: its transit delay only ever makes the offset larger, so the
         * smallest one seen is the best. */
        if (!b->clock_fixed && h->boottime_ns > 0 && h->boottime_ns < recv_unix_ns) {
                int64_t offset = (int64_t) (recv_unix_ns - h->boottime_ns);
                if (!b->hello_offset_valid || offset < b->hello_offset_ns) {
                        b->hello_offset_ns = offset;
                        b->hello_offset_valid = true;
                }
        }
        return 0;
}

int boot_find_instance(const Boot *b, const uint8_t *id, size_t id_len, uint64_t *ret_offset) {
        if (id_len == 0) {
                *ret_offset = 0;
                return 1;
        }
        for (size_t i = 0; i < b->n_instances; i++)
                if (b->instances[i].id_len == id_len && memcmp(b->instances[i].id, id, id_len) == 0) {
                        *ret_offset = b->instances[i].seq_offset;
                        return 1;
                }
        return 0;
}

int boot_add_instance(Boot *b, const uint8_t *id, size_t id_len, uint64_t seq_offset) {
        if (id_len == 0 || id_len > BOOT_INSTANCE_ID_MAX)
                return -EINVAL;

        if (b->n_instances == BOOT_INSTANCES_MAX) {
                /* Instances of one boot follow each other (a restarted agent): the oldest is the least likely to
                 * come back. If it does, it is a new instance again: its replay is stored twice, never lost. */
                memmove(&b->instances[0], &b->instances[1], (b->n_instances - 1) * sizeof(BootInstance));
                b->n_instances--;
                b->instances_forgotten++;
        } else if (b->n_instances == b->instances_cap) {
                /* Most boots see one instance: grow on demand rather than reserve the whole table. */
                size_t cap = MIN(b->instances_cap ? b->instances_cap * 2 : 2, (size_t) BOOT_INSTANCES_MAX);
                BootInstance *a = realloc(b->instances, cap * sizeof(BootInstance));
                if (!a)
                        return -ENOMEM;
                b->instances = a;
                b->instances_cap = cap;
        }

        BootInstance *x = &b->instances[b->n_instances++];
        *x = (BootInstance) { .id_len = id_len, .seq_offset = seq_offset };
        memcpy(x->id, id, id_len);
        return 0;
}

void boot_restore_clock(Boot *b, const ClockEstimate *e, bool fixed) {
        if (!e->valid || b->clock_fixed)
                return;
        b->clock = *e;
        if (fixed)
                b->clock_fixed = true;
}

int boot_offer_clock(Boot *b, const ClockEstimate *candidate) {
        if (b->clock_fixed) {
                (void) clock_estimate_offer(&b->clock_latest, candidate);
                return 0;
        }
        return clock_estimate_offer(&b->clock, candidate);
}

bool boot_fix_clock(Boot *b) {
        if (b->clock_fixed)
                return false;
        b->clock_fixed = true;
        b->clock_latest = b->clock;
        return true;
}

bool boot_clock_drift_ns(const Boot *b, int64_t *ret) {
        if (!b->clock_fixed || !b->clock.valid || !b->clock_latest.valid)
                return false;
        *ret = b->clock_latest.offset_ns - b->clock.offset_ns;
        return true;
}

uint64_t boot_to_unix_ns(const Boot *b, uint64_t boottime_ns, uint64_t fallback_ns) {
        uint64_t t;

        if (clock_estimate_to_host(&b->clock, boottime_ns, &t) >= 0)
                return t;
        if (b->hello_offset_valid)
                return time_add_offset(boottime_ns, b->hello_offset_ns);
        return fallback_ns;
}

const BootMilestone *boot_find_milestone(const Boot *b, const char *name) {
        for (size_t i = 0; i < b->n_milestones; i++)
                if (strcmp(b->milestones[i].name, name) == 0)
                        return &b->milestones[i];
        return NULL;
}

static int milestone_to_ready_ns(const Boot *b, const char *name, uint64_t *ret) {
        const BootMilestone *m;

        if (!b->ready.set || !(m = boot_find_milestone(b, name)))
                return -ENODATA;
        *ret = b->ready.boottime_ns > m->boottime_ns ? b->ready.boottime_ns - m->boottime_ns : 0;
        return 0;
}

int boot_kernel_to_ready_ns(const Boot *b, uint64_t *ret) {
        return milestone_to_ready_ns(b, BOOT_MILESTONE_KERNEL_START, ret);
}

int boot_init_to_ready_ns(const Boot *b, uint64_t *ret) {
        return milestone_to_ready_ns(b, BOOT_MILESTONE_INIT_START, ret);
}

int boot_host_start_to_ready_ns(const Boot *b, uint64_t *ret) {
        if (!b->ready.set || b->host_start_unix_ns == 0)
                return -ENODATA;
        uint64_t ready = boot_to_unix_ns(b, b->ready.boottime_ns, b->ready.recv_unix_ns);
        *ret = ready > b->host_start_unix_ns ? ready - b->host_start_unix_ns : 0;
        return 0;
}

bool boot_exit_is_crash(const Boot *b) {
        return b->exit.set && (b->exit.signal != 0 || b->exit.oom_killed);
}

/* Keeps a log entry: indexed when it is in the file, in memory unless replaying (then the file has it). */
static int log_store(Boot *b, const LogEntry *entry, uint64_t file_offset, BootApplyFlags flags, BootApplyResult *res) {
        LogTailEvictions lost = {};
        int r;

        if (file_offset != BOOT_NO_FILE_OFFSET) {
                r = log_index_add(&b->log_index, entry->seq, file_offset);
                if (r < 0)
                        return r;
        }
        if (file_offset == BOOT_NO_FILE_OFFSET || !(flags & BOOT_APPLY_INDEX_ONLY)) {
                r = log_tail_append(&b->logs, entry, file_offset != BOOT_NO_FILE_OFFSET, &lost);
                if (r < 0)
                        return r;
        }
        res->evicted_records += lost.records;
        res->evicted_bytes += lost.bytes;
        if (entry->kind == LOG_ENTRY_LINES)
                b->log_bytes_total += entry->len;
        return 0;
}

int boot_record_persisted(Boot *b, const Tether__Envelope *e, uint64_t file_offset) {
        if (e->msg_case != TETHER__ENVELOPE__MSG_LOG && e->msg_case != TETHER__ENVELOPE__MSG_LOG_DROPPED)
                return 0; /* only log records are read back from the file at run time */
        log_tail_set_persisted(&b->logs, e->seq, e->seq, true);
        return log_index_add(&b->log_index, e->seq, file_offset);
}

static void gaps_remove_at(Boot *b, size_t i) {
        memmove(&b->gaps[i], &b->gaps[i + 1], (b->n_gaps - i - 1) * sizeof(SeqRange));
        b->n_gaps--;
}

/* Keeps at most BOOT_GAPS_MAX pending ranges: the oldest is given up first. */
static void gaps_add(Boot *b, SeqRange g, BootApplyResult *res) {
        if (b->n_gaps == BOOT_GAPS_MAX) {
                uint64_t n = b->gaps[0].last - b->gaps[0].first + 1;
                b->seq_gaps++;
                b->seq_gap_records += n;
                res->gaps_overflowed++;
                res->gap_overflow_records += n;
                gaps_remove_at(b, 0);
        }
        b->gaps[b->n_gaps++] = g;
}

static void gaps_explain(Boot *b, uint64_t first, uint64_t last, BootApplyResult *res) {
        for (size_t i = 0; i < b->n_gaps;) {
                SeqRange g = b->gaps[i];
                if (g.last < first || g.first > last) {
                        i++;
                        continue;
                }
                res->gaps_explained++;
                gaps_remove_at(b, i);
                /* Whatever the LogDropped did not cover stays pending. */
                if (g.first < first)
                        gaps_add(b, (SeqRange) { g.first, first - 1 }, res);
                if (g.last > last)
                        gaps_add(b, (SeqRange) { last + 1, g.last }, res);
                /* Re-added ranges went to the end; they cannot intersect [first, last], so rescanning from i is
                 * safe and terminates. */
        }
}

uint64_t boot_flush_gaps(Boot *b, uint64_t *ret_records) {
        uint64_t n = b->n_gaps, records = 0;

        for (size_t i = 0; i < b->n_gaps; i++)
                records += b->gaps[i].last - b->gaps[i].first + 1;
        b->seq_gaps += n;
        b->seq_gap_records += records;
        b->n_gaps = 0;
        if (ret_records)
                *ret_records = records;
        return n;
}

static bool ready_condition_matches_ready(const ReadyCondition *c, const Tether__Ready *r) {
        switch (c->type) {
        case READY_CONDITION_ANY:
                return true;
        case READY_CONDITION_SOURCE:
                return r->source && strcmp(r->source, c->arg) == 0;
        default:
                return false;
        }
}

static void set_ready(Boot *b, char *source, char *detail, uint64_t seq, uint64_t boottime_ns, uint64_t recv_unix_ns) {
        b->ready = (BootReady) {
                .set = true,
                .source = source,
                .detail = detail,
                .seq = seq,
                .boottime_ns = boottime_ns,
                .recv_unix_ns = recv_unix_ns,
        };
}

/* Makes room for one more element after the n of size bytes in the array *array_ptr points to (a T ** passed as
 * void *). Returns 0, or -ENOMEM with the array untouched. */
static int array_room_for_one(void *array_ptr, size_t n, size_t size) {
        void **array = array_ptr;
        void *a = realloc(*array, (n + 1) * size);
        if (!a)
                return -ENOMEM;
        *array = a;
        return 0;
}

/* Whether one more milestone or phase (count, of cost bytes) fits the boot's bounds; when not it is counted in
 * *dropped and reported in res. */
static bool annotation_fits(
        Boot *b, size_t count, size_t max, uint64_t cost, uint64_t *dropped, DropReason reason, BootApplyResult *res) {
        if (count < max && b->annotation_bytes + cost <= b->limits.max_annotation_bytes)
                return true;
        (*dropped)++;
        res->limit_dropped = true;
        res->limit_reason = reason;
        return false;
}

/* A milestone or phase equal to one already there: the same moment said again by a later agent process of the
 * boot (e.g. tether-agent-systemd restarted, reporting systemd's timestamps again). Bounded: at most max_milestones
 * or max_phases to compare.
 *
 * init.start and ready are the boot's, once: every agent process of the boot sends its own init.start (its main())
 * and, finding the boot ready, ready again, each at its own time. The first one stands, whichever process said it. */
static bool milestone_is_repeated(const Boot *b, const Tether__Milestone *m) {
        if ((strcmp(m->name, BOOT_MILESTONE_INIT_START) == 0 || strcmp(m->name, BOOT_MILESTONE_READY) == 0) &&
            boot_find_milestone(b, m->name))
                return true;
        for (size_t i = 0; i < b->n_milestones; i++)
                if (b->milestones[i].boottime_ns == m->boottime_ns && strcmp(b->milestones[i].name, m->name) == 0)
                        return true;
        return false;
}

static bool phase_is_repeated(const Boot *b, const Tether__Phase *p) {
        for (size_t i = 0; i < b->n_phases; i++) {
                const BootPhase *q = &b->phases[i];
                if (q->start_boottime_ns == p->start_boottime_ns && q->end_boottime_ns == p->end_boottime_ns &&
                    q->status == (int) p->status && strcmp(q->name, p->name) == 0)
                        return true;
        }
        return false;
}

static int apply_milestone(
        Boot *b, const ReadyCondition *cond, const Tether__Envelope *e, uint64_t recv, BootApplyResult *res) {
        const Tether__Milestone *m = e->milestone;
        bool becomes_ready = !b->ready.set && cond->type == READY_CONDITION_MILESTONE &&
                strcmp(cond->arg, m->name) == 0;
        _cleanup_free_ char *ready_source = NULL, *ready_detail = NULL;
        Attr *attrs = NULL;
        size_t n_attrs = 0, attr_bytes = 0;
        int r;

        if (milestone_is_repeated(b, m)) {
                b->annotations_repeated++; /* it had whatever effect it has the first time */
                res->repeated = true;
                return 0;
        }
        if (becomes_ready) {
                if (asprintf(&ready_source, "milestone:%s", m->name) < 0) {
                        ready_source = NULL;
                        return -ENOMEM;
                }
                if (!(ready_detail = strdup("")))
                        return -ENOMEM;
        }

        r = attrs_from_pb(m->attributes, m->n_attributes, &attrs, &n_attrs, &attr_bytes);
        if (r < 0)
                return r;
        uint64_t cost = strlen(m->name) + attr_bytes;

        if (!annotation_fits(
                    b,
                    b->n_milestones,
                    b->limits.max_milestones,
                    cost,
                    &b->milestones_dropped,
                    DROP_MILESTONE_LIMIT,
                    res))
                /* Readiness is still honoured: bounds protect memory, they must not hide a ready machine. */
                attrs_free(attrs, n_attrs);
        else {
                char *name = strdup(m->name);
                if (!name || array_room_for_one(&b->milestones, b->n_milestones, sizeof(BootMilestone)) < 0) {
                        free(name);
                        attrs_free(attrs, n_attrs);
                        return -ENOMEM;
                }
                b->milestones[b->n_milestones++] = (BootMilestone) {
                        .seq = e->seq,
                        .name = name,
                        .boottime_ns = m->boottime_ns,
                        .recv_unix_ns = recv,
                        .attrs = attrs,
                        .n_attrs = n_attrs,
                };
                b->annotation_bytes += cost;
        }

        if (becomes_ready) {
                set_ready(b, TAKE_PTR(ready_source), TAKE_PTR(ready_detail), e->seq, m->boottime_ns, recv);
                res->became_ready = true;
        }
        return 0;
}

static int apply_phase(Boot *b, const Tether__Envelope *e, BootApplyResult *res) {
        const Tether__Phase *p = e->phase;
        Attr *attrs = NULL;
        size_t n_attrs = 0, attr_bytes = 0;
        int r;

        if (phase_is_repeated(b, p)) {
                b->annotations_repeated++;
                res->repeated = true;
                return 0;
        }
        r = attrs_from_pb(p->attributes, p->n_attributes, &attrs, &n_attrs, &attr_bytes);
        if (r < 0)
                return r;
        uint64_t cost = strlen(p->name) + (p->message ? strlen(p->message) : 0) + attr_bytes;

        if (!annotation_fits(b, b->n_phases, b->limits.max_phases, cost, &b->phases_dropped, DROP_PHASE_LIMIT, res)) {
                attrs_free(attrs, n_attrs);
                return 0;
        }

        char *name = strdup(p->name), *message = NULL;
        if (!name || strdup_or_null(p->message, &message) < 0 ||
            array_room_for_one(&b->phases, b->n_phases, sizeof(BootPhase)) < 0) {
                free(name);
                free(message);
                attrs_free(attrs, n_attrs);
                return -ENOMEM;
        }
        b->phases[b->n_phases++] = (BootPhase) {
                .seq = e->seq,
                .name = name,
                .start_boottime_ns = p->start_boottime_ns,
                .end_boottime_ns = p->end_boottime_ns,
                .status = p->status,
                .message = message,
                .attrs = attrs,
                .n_attrs = n_attrs,
        };
        b->annotation_bytes += cost;
        return 0;
}

static int apply_log(
        Boot *b,
        const Tether__Envelope *e,
        uint64_t recv,
        uint64_t offset,
        BootApplyFlags flags,
        BootApplyResult *res) {
        LogEntry entry;
        int r;

        r = log_entry_from_envelope(e, recv, &entry);
        if (r < 0)
                return r;
        /* Seqs only grow: the newest cursor is the last one applied (also when the boot file is read back). */
        _cleanup_free_ char *cursor = NULL;
        if (e->log->cursor && *e->log->cursor && !(cursor = strdup(e->log->cursor)))
                return -ENOMEM;
        r = log_store(b, &entry, offset, flags, res);
        if (r < 0)
                return r;
        if (cursor) {
                free(b->journal_cursor);
                b->journal_cursor = TAKE_PTR(cursor);
        }
        return 0;
}

static int apply_log_dropped(
        Boot *b,
        const Tether__Envelope *e,
        uint64_t recv,
        uint64_t offset,
        BootApplyFlags flags,
        BootApplyResult *res) {
        const Tether__LogDropped *d = e->log_dropped;
        LogEntry entry;
        int r;

        r = log_entry_from_envelope(e, recv, &entry);
        if (r < 0)
                return r;
        r = log_store(b, &entry, offset, flags, res);
        if (r < 0)
                return r;
        b->logs_dropped = add_sat(b->logs_dropped, d->records);
        b->logs_dropped_bytes = add_sat(b->logs_dropped_bytes, d->bytes);
        if (d->first_seq > 0)
                gaps_explain(b, d->first_seq, d->last_seq, res);
        return 0;
}

static int apply_ready(
        Boot *b, const ReadyCondition *cond, const Tether__Envelope *e, uint64_t recv, BootApplyResult *res) {
        const Tether__Ready *r = e->ready;

        b->ready_signals++;
        if (b->ready.set || !ready_condition_matches_ready(cond, r))
                return 0;
        char *source = strdup(r->source ?: ""), *detail = strdup(r->detail ?: "");
        if (!source || !detail) {
                free(source);
                free(detail);
                return -ENOMEM;
        }
        set_ready(b, source, detail, e->seq, r->boottime_ns, recv);
        res->became_ready = true;
        return 0;
}

static int apply_exit(Boot *b, const Tether__Envelope *e, uint64_t recv, BootApplyResult *res) {
        const Tether__Exit *x = e->exit;
        char *reason = NULL;

        /* The first exit is the workload's end; anything later (a shutdown helper, say) does not change it. */
        if (b->exit.set)
                return 0;
        if (!(reason = strdup(x->reason ?: "")))
                return -ENOMEM;
        b->exit = (BootExit) {
                .set = true,
                .code = x->code,
                .signal = x->signal,
                .oom_killed = x->oom_killed,
                .reason = reason,
                .seq = e->seq,
                .boottime_ns = x->boottime_ns,
                .recv_unix_ns = recv,
        };
        res->exited = true;
        return 0;
}

int boot_apply_record(
        Boot *b, const ReadyCondition *cond, const Tether__Envelope *e, uint64_t recv_unix_ns, BootApplyResult *ret) {
        return boot_apply_record_at(b, cond, e, recv_unix_ns, BOOT_NO_FILE_OFFSET, 0, ret);
}

int boot_apply_record_at(
        Boot *b,
        const ReadyCondition *cond,
        const Tether__Envelope *e,
        uint64_t recv_unix_ns,
        uint64_t file_offset,
        BootApplyFlags flags,
        BootApplyResult *ret) {
        static const ReadyCondition any = { .type = READY_CONDITION_ANY };
        BootApplyResult res = {};
        int r;

        if (!cond)
                cond = &any;

        if (e->seq <= b->last_seq) {
                b->duplicates++;
                res.duplicate = true;
                *ret = res;
                return 0;
        }

        /* A gap is recorded before the record's own effect, so that a LogDropped explaining the very gap it
         * follows clears it. Gap bookkeeping cannot fail; the record's effects below are all-or-nothing. */
        SeqRange gap = { b->last_seq + 1, e->seq - 1 };
        bool has_gap = e->seq > b->last_seq + 1;
        SeqRange saved_gaps[BOOT_GAPS_MAX];
        size_t saved_n_gaps = b->n_gaps;
        uint64_t saved_seq_gaps = b->seq_gaps, saved_seq_gap_records = b->seq_gap_records;
        memcpy(saved_gaps, b->gaps, sizeof(saved_gaps));
        if (has_gap) {
                gaps_add(b, gap, &res);
                res.gap_opened = true;
                res.gap = gap;
        }

        switch (e->msg_case) {
        case TETHER__ENVELOPE__MSG_MILESTONE:
                r = apply_milestone(b, cond, e, recv_unix_ns, &res);
                break;
        case TETHER__ENVELOPE__MSG_PHASE:
                r = apply_phase(b, e, &res);
                break;
        case TETHER__ENVELOPE__MSG_LOG:
                r = apply_log(b, e, recv_unix_ns, file_offset, flags, &res);
                break;
        case TETHER__ENVELOPE__MSG_LOG_DROPPED:
                r = apply_log_dropped(b, e, recv_unix_ns, file_offset, flags, &res);
                break;
        case TETHER__ENVELOPE__MSG_READY:
                r = apply_ready(b, cond, e, recv_unix_ns, &res);
                break;
        case TETHER__ENVELOPE__MSG_EXIT:
                r = apply_exit(b, e, recv_unix_ns, &res);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                memcpy(b->gaps, saved_gaps, sizeof(saved_gaps));
                b->n_gaps = saved_n_gaps;
                b->seq_gaps = saved_seq_gaps;
                b->seq_gap_records = saved_seq_gap_records;
                return r;
        }

        b->last_seq = e->seq;
        b->records++;
        *ret = res;
        return 0;
}
