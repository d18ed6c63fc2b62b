/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* One boot of one machine: what its agent reported, in memory, within per-boot bounds. Pure model: no I/O,
 * no logging. The same boot_apply_record() is used for live records and for replaying the state directory,
 * so a restarted tetherd rebuilds exactly the state it acked. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "clock.h"
#include "log-index.h"
#include "log-tail.h"
#include "stats.h"
#include "tether.pb-c.h"
#include "unwritten.h"

typedef enum ReadyConditionType {
        READY_CONDITION_ANY,       /* the first Ready record */
        READY_CONDITION_SOURCE,    /* a Ready record with this source */
        READY_CONDITION_MILESTONE, /* a milestone with this name */
} ReadyConditionType;

typedef struct ReadyCondition {
        ReadyConditionType type;
        char *arg; /* NULL for ANY */
} ReadyCondition;

/* Parses "any", "source:<name>", "milestone:<name>" (NULL or "" mean any). Returns 0 or -EINVAL/-ENOMEM. */
int ready_condition_parse(const char *s, ReadyCondition *ret);
void ready_condition_done(ReadyCondition *c);
/* Returns a newly allocated string, or NULL on allocation failure. */
char *ready_condition_to_string(const ReadyCondition *c);

typedef struct BootLimits {
        size_t max_milestones;             /* default 256 */
        size_t max_phases;                 /* default 256 */
        uint64_t max_log_bytes;            /* log data in memory (plus a fixed per-line cost), default 8 MiB */
        uint64_t max_annotation_bytes;     /* names, attributes, messages of milestones+phases, default 1 MiB */
        LogBudget *log_budget;             /* shared by every boot's in-memory log data, NULL for none */
        UnwrittenBudget *unwritten_budget; /* shared by every boot's unwritten entries, NULL for none */
} BootLimits;

#define BOOT_LIMITS_DEFAULT                                 \
        ((BootLimits) { .max_milestones = 256,              \
                        .max_phases = 256,                  \
                        .max_log_bytes = UINT64_C(8) << 20, \
                        .max_annotation_bytes = UINT64_C(1) << 20 })

typedef struct BootMilestone {
        uint64_t seq;
        char *name;
        uint64_t boottime_ns;
        uint64_t recv_unix_ns;
        Attr *attrs;
        size_t n_attrs;
} BootMilestone;

typedef struct BootPhase {
        uint64_t seq;
        char *name;
        uint64_t start_boottime_ns;
        uint64_t end_boottime_ns;
        int status; /* Tether__PhaseStatus */
        char *message;
        Attr *attrs;
        size_t n_attrs;
} BootPhase;

typedef struct BootReady {
        bool set;
        char *source;
        char *detail;
        uint64_t seq;
        uint64_t boottime_ns;
        uint64_t recv_unix_ns; /* when tetherd processed it: the "delivered" time */
} BootReady;

typedef struct BootExit {
        bool set;
        int32_t code;
        int32_t signal;
        bool oom_killed;
        char *reason;
        uint64_t seq;
        uint64_t boottime_ns;
        uint64_t recv_unix_ns;
} BootExit;

/* Sequence ranges that arrived missing and that no LogDropped explained yet. */
#define BOOT_GAPS_MAX 16u
typedef struct SeqRange {
        uint64_t first, last;
} SeqRange;

/* Agent processes (Hello.agent_instance) that reported for a boot. A restarted agent starts again at seq 1 with
 * the same boot id; its seq space is moved above what the boot already stored: stored seq = wire seq +
 * seq_offset. Bounded: beyond BOOT_INSTANCES_MAX the oldest instance is forgotten (docs/architecture.md). */
#define BOOT_INSTANCES_MAX 64u
#define BOOT_INSTANCE_ID_MAX 64u
typedef struct BootInstance {
        uint8_t id[BOOT_INSTANCE_ID_MAX];
        size_t id_len;
        uint64_t seq_offset;
} BootInstance;

typedef struct Boot {
        uint64_t index; /* per machine, increasing; names the boot's file in the state directory */
        char *boot_id;
        uint8_t trace_id[16];
        char *hostname;
        char *kernel_release;
        char *journal_cursor; /* the newest Log.cursor (tether-agent-systemd's journal), NULL: none; Welcome says it */
        char *agent_version;
        int agent_mode; /* Tether__AgentMode */

        uint64_t first_seen_unix_ns; /* first Hello of this boot */
        /* When the host started the VM of this boot (libvirt's "started" event, host realtime), 0 if unknown:
         * the root span starts there, before the guest kernel. */
        uint64_t host_start_unix_ns;
        /* The mapping of guest boottime onto host realtime that every view uses (API, events, spans, metrics,
         * export): `clock` (a probe estimate), else the Hello fallback (receive time of a Hello minus its
         * boottime: one-way, no error bound, never reported as one). It is provisional until clock_fixed, then
         * never changes again (boot_fix_clock()): whatever was shown or exported stays consistent with what
         * comes later. Later probes only go to clock_latest, which measures drift. */
        /* When the newest Hello of this boot was received: after a restart the boot with the newest one is current
         * again, also when an agent resumed an older boot (registry_start_boot()). */
        uint64_t last_hello_unix_ns;
        bool hello_offset_valid;
        int64_t hello_offset_ns;
        ClockEstimate clock;
        bool clock_fixed;
        ClockEstimate clock_latest;

        uint64_t last_seq; /* highest stored record */
        uint64_t records;  /* records stored */

        BootInstance *instances; /* oldest first */
        size_t n_instances, instances_cap;
        uint64_t instances_forgotten;

        BootMilestone *milestones;
        size_t n_milestones;
        BootPhase *phases;
        size_t n_phases;
        uint64_t annotation_bytes;

        /* Log records: the newest in memory (bounded by limits.max_log_bytes and the shared budget; entries
         * evicted from it while not in the boot file are counted there as lost), and where the others are in
         * the boot file (store.c reads them back). */
        LogTail logs;
        LogIndex log_index;
        uint64_t log_bytes_total; /* data bytes ever stored */
        uint64_t logs_dropped;    /* records the agent reported as dropped */
        uint64_t logs_dropped_bytes;
        uint64_t milestones_dropped, phases_dropped;
        /* Milestones and phases equal to one the boot has (a restarted agent reporting the same: kernel.start,
         * systemd's boot phases and units), and init.start or ready when the boot has one: kept once. */
        uint64_t annotations_repeated;

        SeqRange gaps[BOOT_GAPS_MAX];
        size_t n_gaps;
        uint64_t seq_gaps, seq_gap_records;
        uint64_t duplicates;
        uint64_t protocol_errors;
        uint64_t ready_signals; /* Ready records, matching the condition or not */

        BootReady ready; /* set when the machine's ready condition was met */
        BootExit exit;

        BootLimits limits;
        void *store_file; /* owned by store.c */
        /* The boot file's hole: the first stored seq that a failed write (a full disk, an I/O error) or a missing
         * file kept out of it, 0 when the file holds every record the boot applied. Nothing from there on is
         * acked: the agent keeps it and resends it after a reconnect, and it is appended then, in seq order
         * (session.c). persist_retry_ns (CLOCK_MONOTONIC) is when the next repair may be tried. */
        uint64_t unpersisted_seq;
        uint64_t persist_retry_ns;
        uint64_t persist_backoff_ns;
        /* What the file misses from its hole on, as it would have been written (unwritten.h): written by a
         * repair, also after the agent went away. Incomplete when a bound refused an entry: then the agent has
         * to resend. */
        Unwritten unwritten;
        /* The OTLP exporter's: items of this boot it could not export (any reason), and how often the boot's log
         * records were left in the log store to be read back later because it held more than its share of a
         * pressed logs queue. */
        uint64_t export_dropped;
        uint64_t export_deferred;
} Boot;

/* trace_id may be NULL: a random one is drawn. Returns 0, -EINVAL (empty boot id) or -ENOMEM/-errno. */
int boot_new(uint64_t index, const char *boot_id, const uint8_t trace_id[16], const BootLimits *limits, Boot **ret);
Boot *boot_free(Boot *b);

/* Updates what the guest said about itself in a Hello. recv_unix_ns is the host receive time. */
int boot_update_from_hello(Boot *b, const Tether__Hello *h, uint64_t recv_unix_ns);

typedef struct BootApplyResult {
        bool duplicate;    /* seq <= last_seq: ignored */
        bool became_ready; /* the ready condition was met by this record */
        bool exited;       /* first Exit of this boot */
        bool gap_opened;   /* the record skipped sequence numbers */
        SeqRange gap;
        uint64_t gaps_explained;  /* pending gaps this LogDropped explained */
        uint64_t gaps_overflowed; /* older pending gaps given up (counted as seq_gap) to make room */
        uint64_t gap_overflow_records;
        DropReason limit_reason; /* valid when limit_dropped */
        bool limit_dropped;      /* the record exceeded a per-boot bound and was not kept */
        bool repeated;           /* a milestone or phase the boot has already (annotations_repeated): not kept */
        /* Log lines lost to make room in memory (not in any boot file), in this boot or, for the shared
         * budget, in others. */
        uint64_t evicted_records, evicted_bytes;
} BootApplyResult;

/* Applies one validated record (envelope_validate() passed, seq >= 1) that is in memory only. Returns 0 (see
 * ret for what happened), or -ENOMEM (the boot is unchanged). */
int boot_apply_record(
        Boot *b, const ReadyCondition *cond, const Tether__Envelope *e, uint64_t recv_unix_ns, BootApplyResult *ret);

#define BOOT_NO_FILE_OFFSET UINT64_MAX

/* A record applied earlier in memory only (boot_apply_record*() with BOOT_NO_FILE_OFFSET) is now in the boot file
 * at file_offset: a resent record filling the file's hole. Returns 0 or -ENOMEM (the record stays unindexed,
 * still read from memory while it is there). */
int boot_record_persisted(Boot *b, const Tether__Envelope *e, uint64_t file_offset);

typedef enum BootApplyFlags {
        /* Replaying the boot file: a log record is only indexed, not kept in memory (the file holds it). */
        BOOT_APPLY_INDEX_ONLY = 1 << 0,
} BootApplyFlags;

/* Same, for a record stored in the boot file at file_offset (its entry header), or BOOT_NO_FILE_OFFSET when it
 * is not: a log record is indexed there, and evicting it from memory loses nothing. */
int boot_apply_record_at(
        Boot *b,
        const ReadyCondition *cond,
        const Tether__Envelope *e,
        uint64_t recv_unix_ns,
        uint64_t file_offset,
        BootApplyFlags flags,
        BootApplyResult *ret);

/* Gives up on the pending gaps: they become seq_gap (no LogDropped will explain them any more: the connection
 * ended, or the boot exited). Returns the number of gaps; *ret_records gets the missing record count. */
uint64_t boot_flush_gaps(Boot *b, uint64_t *ret_records);

/* The seq offset of a known agent instance. An empty id (an agent older than agent_instance) always has offset 0.
 * Returns 1 and *ret_offset if known, 0 if not. */
int boot_find_instance(const Boot *b, const uint8_t *id, size_t id_len, uint64_t *ret_offset);
/* Remembers an instance (not known yet) with its seq offset; when the table is full, the oldest instance is
 * forgotten. Returns 0, -EINVAL (empty or longer than BOOT_INSTANCE_ID_MAX) or -ENOMEM. */
int boot_add_instance(Boot *b, const uint8_t *id, size_t id_len, uint64_t seq_offset);

/* Restores a persisted clock estimate (state directory replay); fixed: it was the boot's fixed mapping. A boot
 * already fixed keeps its mapping. */
void boot_restore_clock(Boot *b, const ClockEstimate *e, bool fixed);

/* Offers a probe estimate: it refines the mapping while that is provisional, else only clock_latest. Returns 1
 * if the mapping changed (persist it), 0 if not. */
int boot_offer_clock(Boot *b, const ClockEstimate *candidate);

/* Fixes the mapping as it is now. Returns true if it was fixed by this call, false if it already was. Without a
 * probe estimate and a Hello boottime the mapping is fixed as none: guest times are shown as the receive times
 * of what carries them (the fallback of boot_to_unix_ns()), for good. */
bool boot_fix_clock(Boot *b);

/* How far the estimator's latest offset moved from the fixed mapping (guest clock drift since). Returns true and
 * *ret when both are probe estimates. */
bool boot_clock_drift_ns(const Boot *b, int64_t *ret);

/* Maps a guest boottime to host realtime: the probe estimate, else the Hello fallback, else fallback_ns.
 * Returns the mapped time. */
uint64_t boot_to_unix_ns(const Boot *b, uint64_t boottime_ns, uint64_t fallback_ns);

/* Log data bytes the boot still has, in memory or in its file: all but the lost ones. */
static inline uint64_t boot_log_bytes_stored(const Boot *b) {
        return b->log_bytes_total - b->logs.evicted_bytes;
}

/* Milestone lookup by name (first occurrence), NULL if absent. */
const BootMilestone *boot_find_milestone(const Boot *b, const char *name);

/* Standard milestones the stitcher and the API interpret. An agent sends kernel.start only when it runs in the
 * initial pid namespace (a VM): in a container, boottime 0 is the host kernel's start and means nothing. A boot keeps
 * one init.start and one ready, the first applied: each agent process of the boot sends its own. */
#define BOOT_MILESTONE_KERNEL_START "kernel.start"
#define BOOT_MILESTONE_INIT_START "init.start"
#define BOOT_MILESTONE_WORKLOAD_EXEC "workload.exec"
#define BOOT_MILESTONE_READY "ready"

/* Guest time from kernel.start, or from init.start, to ready (0 if ready claims to come first). Returns 0, or
 * -ENODATA when the boot is not ready or lacks that milestone. */
int boot_kernel_to_ready_ns(const Boot *b, uint64_t *ret);
int boot_init_to_ready_ns(const Boot *b, uint64_t *ret);

/* "exited" or "crashed": a workload killed by a signal or by the OOM killer crashed. */
bool boot_exit_is_crash(const Boot *b);

/* Host time from the host-side start of the boot (host_start_unix_ns) to ready (the guest's ready time mapped to
 * host time; 0 if ready claims to come first). Returns 0, or -ENODATA when not ready or the host start is unknown. */
int boot_host_start_to_ready_ns(const Boot *b, uint64_t *ret);
