/* SPDX-License-Identifier: MIT */
#pragma once

/* Process-wide counters, in one place so that /v1/stats (and later /metrics) can expose all of them. Counters
 * only ever grow. */

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
        _CLOSE_REASON_MAX,
} CloseReason;

/* Indexed by Tether__LogStream (0 = unspecified, never stored). */
#define STATS_LOG_STREAMS 5

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
        uint64_t seq_gaps;        /* gaps no LogDropped explained */
        uint64_t seq_gap_records; /* sequence numbers missing in those gaps */
        uint64_t clock_samples;
        uint64_t clock_samples_ignored; /* ids tetherd never sent, or answered twice */
        uint64_t acks_sent;
        uint64_t syncs; /* fdatasync calls before acks */
        uint64_t persist_errors;
        uint64_t api_requests;
} Stats;

const char *drop_reason_to_string(DropReason r);
const char *refuse_reason_to_string(RefuseReason r);
const char *close_reason_to_string(CloseReason r);
const char *log_stream_to_string(int stream);
/* Returns the Tether__LogStream value, or -EINVAL. */
int log_stream_from_string(const char *s);
