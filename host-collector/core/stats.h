/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Process-wide counters, in one place so that /v1/stats (and later /metrics) can expose all of them. Counters
 * only ever grow (the few gauges say so). */

#include <stdbool.h>
#include <stdint.h>

#include "envelope.h"

/* Why data that reached (or should have reached) tetherd is not in its store. */
typedef enum DropReason {
        DROP_AGENT_BUFFER,    /* the agent's replay buffer overflowed (LogDropped) */
        DROP_EVICTED,         /* stored log lines evicted by the per-boot memory bound */
        DROP_MILESTONE_LIMIT, /* per-boot milestone count or size bound */
        DROP_PHASE_LIMIT,     /* per-boot phase count or size bound */
        DROP_DISK_LIMIT,      /* per-boot on-disk bound: kept in memory, not persisted */
        DROP_PERSIST_FAILED,  /* a write to the state directory failed: kept in memory, not persisted */
        _DROP_REASON_MAX,
} DropReason;

/* Why an accepted transport connection was closed before it carried a session. */
typedef enum RefuseReason {
        REFUSE_UNKNOWN_CID,
        REFUSE_NO_PEER_ADDRESS,
        REFUSE_OUT_OF_MEMORY,
        _REFUSE_REASON_MAX,
} RefuseReason;

/* Why a connection to the vmm.notify port (systemd's notifications, docs/agentless.md) changed nothing. */
typedef enum NotifyRefuseReason {
        NOTIFY_REFUSE_TOO_LARGE,     /* a message above VMM_NOTIFY_MESSAGE_MAX bytes */
        NOTIFY_REFUSE_MALFORMED,     /* not a single KEY=VALUE line */
        NOTIFY_REFUSE_EMPTY,         /* closed or timed out without a byte */
        NOTIFY_REFUSE_MACHINE_LIMIT, /* the machine's open notify connections at their bound */
        NOTIFY_REFUSE_TOTAL_LIMIT,   /* every machine's open notify connections at their bound */
        NOTIFY_REFUSE_UNKNOWN_CID,   /* AF_VSOCK from a CID no machine has */
        NOTIFY_REFUSE_NO_PEER,       /* AF_VSOCK without a peer address */
        NOTIFY_REFUSE_OUT_OF_MEMORY,
        _NOTIFY_REFUSE_REASON_MAX,
} NotifyRefuseReason;

/* How a connection to the vmm.notify port ended (tetherd closes each one itself). */
typedef enum NotifyCloseReason {
        NOTIFY_CLOSE_EOF,       /* the guest half-closed (or closed) after its message */
        NOTIFY_CLOSE_IDLE,      /* the message was quiet for the idle window: no half-close came (or will) */
        NOTIFY_CLOSE_TIMEOUT,   /* the connection's overall timeout */
        NOTIFY_CLOSE_TOO_LARGE, /* the message grew beyond its bound */
        NOTIFY_CLOSE_DROPPED,   /* the machine went away, or tetherd stopped */
        _NOTIFY_CLOSE_REASON_MAX,
} NotifyCloseReason;

/* Why a session ended. */
typedef enum CloseReason {
        CLOSE_EOF,
        CLOSE_IO_ERROR,
        CLOSE_PROTOCOL_ERROR,
        CLOSE_HEARTBEAT_TIMEOUT,
        CLOSE_OUTPUT_OVERFLOW,
        CLOSE_REPLACED,
        CLOSE_DELETED,
        CLOSE_SHUTDOWN,
        CLOSE_VM_STOPPED, /* the hypervisor (libvirt) said the VM stopped */
        CLOSE_RESYNC,     /* the boot file can be written again: the agent resends what it misses */
        _CLOSE_REASON_MAX,
} CloseReason;

/* What the OTLP exporter sends. */
typedef enum ExportSignal {
        EXPORT_SIGNAL_TRACES,
        EXPORT_SIGNAL_LOGS,
        EXPORT_SIGNAL_METRICS,
        _EXPORT_SIGNAL_MAX,
} ExportSignal;

/* Why exported items (spans, log records, data points) never reached the backend. */
typedef enum ExportDropReason {
        EXPORT_DROP_QUEUE_FULL, /* the bounded in-memory queue overflowed (and no spool took them) */
        EXPORT_DROP_SPOOL_FULL, /* the on-disk spool reached its bound */
        EXPORT_DROP_REJECTED,   /* the backend refused the request (400 and other non-retryable codes) */
        EXPORT_DROP_PARTIAL,    /* the backend accepted the request but rejected these items (partial_success) */
        EXPORT_DROP_ENCODE,     /* could not be encoded (too large, out of memory) */
        EXPORT_DROP_SHUTDOWN,   /* still queued at exit with no spool to keep them */
        /* log records that waited for their boot's clock mapping and could not be read back once it was fixed
         * (evicted from memory and not in the boot file, or the file failed to read) */
        EXPORT_DROP_UNREADABLE,
        /* written to the OTLP/JSON file, and in the rotated file that a later rotation deleted (read by a
         * consumer before, or not: tetherd cannot tell) */
        EXPORT_DROP_ROTATED,
        /* the metrics of a guest sample beyond the bound on a machine's sample exports per second (its
         * samples are still in the API) */
        EXPORT_DROP_RATE_LIMITED,
        _EXPORT_DROP_REASON_MAX,
} ExportDropReason;

/* The lifecycle events counted per transition (tether_machine_transitions_total): a fixed set, so that the label's
 * cardinality does not depend on what guests or libvirt say. */
typedef enum MachineTransition {
        TRANSITION_REGISTERED,
        TRANSITION_CONNECTED,
        TRANSITION_BOOTING,
        TRANSITION_READY,
        TRANSITION_EXITED,
        TRANSITION_CRASHED,
        TRANSITION_OOM_KILLED,
        TRANSITION_DISCONNECTED,
        TRANSITION_DELETED,
        TRANSITION_PROTOCOL_ERROR,
        TRANSITION_LOGS_DROPPED,
        _MACHINE_TRANSITION_MAX,
} MachineTransition;

const char *machine_transition_to_string(MachineTransition t);
/* The transition of an event name, or -EINVAL for one not counted. */
int machine_transition_from_string(const char *s);

/* Filled by the OTLP exporter, read by /metrics. Counters only grow; the gauges are current values. */
typedef struct ExportStats {
        uint64_t requests[_EXPORT_SIGNAL_MAX]; /* export requests the backend accepted */
        uint64_t failures[_EXPORT_SIGNAL_MAX]; /* failed attempts, each retry counted */
        uint64_t items[_EXPORT_SIGNAL_MAX];    /* items delivered */
        uint64_t bytes[_EXPORT_SIGNAL_MAX];    /* request bytes on the wire (after compression) */
        uint64_t dropped[_EXPORT_SIGNAL_MAX][_EXPORT_DROP_REASON_MAX]; /* items lost, by reason */
        uint64_t queue_bytes;                                          /* gauge: bytes waiting in memory */
        uint64_t spool_bytes;                                          /* gauge: bytes waiting on disk */
        uint64_t last_success_unix_ns[_EXPORT_SIGNAL_MAX];             /* gauge: 0 = never */
        bool enabled[_EXPORT_SIGNAL_MAX];                              /* the exporter sends this signal */
        uint64_t spool_limit_bytes;                                    /* 0: no spool */
        uint64_t deferred; /* times a boot's live log export was left to the log store (over its fair share) */
} ExportStats;

/* In-memory log data of every boot (log-tail.h's LogBudget): gauges, and what the budget evicted. */
typedef struct LogMemoryStats {
        uint64_t bytes;           /* gauge: charged by every boot's in-memory tail */
        uint64_t limit;           /* gauge: --log-memory-bytes */
        uint64_t evicted_records; /* entries evicted to stay within the limit (lost, or still in the file) */
        uint64_t evicted_bytes;   /* their data bytes */
} LogMemoryStats;

/* Indexed by Tether__LogStream (0 = unspecified, never stored). */
#define STATS_LOG_STREAMS 6

typedef struct Stats {
        uint64_t protocol_errors[_PROTOCOL_ERROR_MAX];
        uint64_t dropped_records[_DROP_REASON_MAX];
        uint64_t dropped_bytes[_DROP_REASON_MAX];
        uint64_t connections_refused[_REFUSE_REASON_MAX];
        uint64_t connections_closed[_CLOSE_REASON_MAX];
        uint64_t log_records[STATS_LOG_STREAMS];
        uint64_t log_bytes[STATS_LOG_STREAMS];

        uint64_t connections_accepted;
        uint64_t records_stored;
        uint64_t records_duplicate;
        uint64_t records_repersisted; /* resent after a failed write, and written to the boot file then */
        uint64_t seq_gaps;            /* gaps no LogDropped explained */
        uint64_t seq_gap_records;     /* sequence numbers missing in those gaps */
        uint64_t clock_samples;
        uint64_t clock_samples_ignored; /* ids tetherd never sent, or answered twice */
        uint64_t guest_samples;         /* ResourceSamples kept */
        uint64_t guest_samples_refused; /* a guest clock going backwards, or no memory for the machine's ring */
        uint64_t transitions[_MACHINE_TRANSITION_MAX]; /* lifecycle events, by transition */
        uint64_t acks_sent;
        uint64_t syncs; /* fdatasync calls before acks */
        uint64_t persist_errors;
        uint64_t api_requests;
        uint64_t events_evicted;            /* by the event log's bounds, from the machine holding the most */
        uint64_t events_too_large;          /* a single event above an eighth of the event log's bytes: not kept */
        uint64_t api_connections_refused;   /* at the connection limit: answered 503 and closed */
        uint64_t api_connections_timed_out; /* no whole request within the request timeout: shut down */
        uint64_t api_connections_evicted;   /* still waiting for their request when a newcomer needed room */

        /* systemd's notifications on the vmm.notify port (agentless.h) */
        uint64_t notify_messages; /* messages applied (to an agentless boot, or as an agent boot's event) */
        uint64_t notify_refused[_NOTIFY_REFUSE_REASON_MAX];
        uint64_t notify_closed[_NOTIFY_CLOSE_REASON_MAX];
        uint64_t notify_keys_ignored;     /* well-formed lines with a key tetherd does not know */
        uint64_t notify_lines_invalid;    /* lines that were not KEY=VALUE, or bad values of known keys */
        uint64_t notify_connections_open; /* gauge */

        /* Gauges the daemon keeps, for /healthz and /metrics. */
        uint64_t connections_open; /* agent connections attached to machines */
        bool vsock_listening;      /* the AF_VSOCK listener is up */

        LogMemoryStats log_memory;
        ExportStats export;
} Stats;

const char *drop_reason_to_string(DropReason r);
const char *refuse_reason_to_string(RefuseReason r);
const char *close_reason_to_string(CloseReason r);
const char *notify_refuse_reason_to_string(NotifyRefuseReason r);
const char *notify_close_reason_to_string(NotifyCloseReason r);
const char *log_stream_to_string(int stream);
const char *export_signal_to_string(ExportSignal s);
const char *export_drop_reason_to_string(ExportDropReason r);
/* Returns the Tether__LogStream value, or -EINVAL. */
int log_stream_from_string(const char *s);
