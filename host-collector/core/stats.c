/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "stats.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

static const char *const drop_reason_names[_DROP_REASON_MAX] = {
        [DROP_AGENT_BUFFER] = "agent_buffer",       [DROP_EVICTED] = "evicted",
        [DROP_MILESTONE_LIMIT] = "milestone_limit", [DROP_PHASE_LIMIT] = "phase_limit",
        [DROP_DISK_LIMIT] = "disk_limit",           [DROP_PERSIST_FAILED] = "persist_failed",
};

static const char *const refuse_reason_names[_REFUSE_REASON_MAX] = {
        [REFUSE_UNKNOWN_CID] = "unknown_cid",
        [REFUSE_NO_PEER_ADDRESS] = "no_peer_address",
        [REFUSE_OUT_OF_MEMORY] = "out_of_memory",
};

static const char *const close_reason_names[_CLOSE_REASON_MAX] = {
        [CLOSE_EOF] = "eof",
        [CLOSE_IO_ERROR] = "io_error",
        [CLOSE_PROTOCOL_ERROR] = "protocol_error",
        [CLOSE_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
        [CLOSE_OUTPUT_OVERFLOW] = "output_overflow",
        [CLOSE_REPLACED] = "replaced",
        [CLOSE_DELETED] = "deleted",
        [CLOSE_SHUTDOWN] = "shutdown",
        [CLOSE_VM_STOPPED] = "vm_stopped",
        [CLOSE_RESYNC] = "resync",
};

static const char *const notify_refuse_reason_names[_NOTIFY_REFUSE_REASON_MAX] = {
        [NOTIFY_REFUSE_TOO_LARGE] = "too_large",
        [NOTIFY_REFUSE_MALFORMED] = "malformed",
        [NOTIFY_REFUSE_EMPTY] = "empty",
        [NOTIFY_REFUSE_MACHINE_LIMIT] = "machine_limit",
        [NOTIFY_REFUSE_TOTAL_LIMIT] = "total_limit",
        [NOTIFY_REFUSE_UNKNOWN_CID] = "unknown_cid",
        [NOTIFY_REFUSE_NO_PEER] = "no_peer_address",
        [NOTIFY_REFUSE_OUT_OF_MEMORY] = "out_of_memory",
};

const char *notify_refuse_reason_to_string(NotifyRefuseReason r) {
        return (unsigned) r < _NOTIFY_REFUSE_REASON_MAX ? notify_refuse_reason_names[r] : "unknown";
}

static const char *const notify_close_reason_names[_NOTIFY_CLOSE_REASON_MAX] = {
        [NOTIFY_CLOSE_EOF] = "eof",         [NOTIFY_CLOSE_IDLE] = "idle",
        [NOTIFY_CLOSE_TIMEOUT] = "timeout", [NOTIFY_CLOSE_TOO_LARGE] = "too_large",
        [NOTIFY_CLOSE_DROPPED] = "dropped",
};

const char *notify_close_reason_to_string(NotifyCloseReason r) {
        return (unsigned) r < _NOTIFY_CLOSE_REASON_MAX ? notify_close_reason_names[r] : "unknown";
}

static const char *const transition_names[_MACHINE_TRANSITION_MAX] = {
        [TRANSITION_REGISTERED] = "registered",
        [TRANSITION_CONNECTED] = "connected",
        [TRANSITION_BOOTING] = "booting",
        [TRANSITION_READY] = "ready",
        [TRANSITION_EXITED] = "exited",
        [TRANSITION_CRASHED] = "crashed",
        [TRANSITION_OOM_KILLED] = "oom_killed",
        [TRANSITION_DISCONNECTED] = "disconnected",
        [TRANSITION_DELETED] = "deleted",
        [TRANSITION_PROTOCOL_ERROR] = "protocol_error",
        [TRANSITION_LOGS_DROPPED] = "logs_dropped",
};

const char *machine_transition_to_string(MachineTransition t) {
        return (unsigned) t < _MACHINE_TRANSITION_MAX ? transition_names[t] : "unknown";
}

int machine_transition_from_string(const char *s) {
        for (MachineTransition t = 0; t < _MACHINE_TRANSITION_MAX; t++)
                if (strcmp(transition_names[t], s) == 0)
                        return (int) t;
        return -EINVAL;
}

static const char *const log_stream_names[STATS_LOG_STREAMS] = {
        [0] = "unspecified", [1] = "stdout", [2] = "stderr", [3] = "console", [4] = "kmsg", [5] = "journal",
};

const char *drop_reason_to_string(DropReason r) {
        return (unsigned) r < _DROP_REASON_MAX ? drop_reason_names[r] : "unknown";
}

const char *refuse_reason_to_string(RefuseReason r) {
        return (unsigned) r < _REFUSE_REASON_MAX ? refuse_reason_names[r] : "unknown";
}

const char *close_reason_to_string(CloseReason r) {
        return (unsigned) r < _CLOSE_REASON_MAX ? close_reason_names[r] : "unknown";
}

const char *log_stream_to_string(int stream) {
        return stream >= 0 && stream < STATS_LOG_STREAMS ? log_stream_names[stream] : "unknown";
}

int log_stream_from_string(const char *s) {
        for (int i = 1; i < STATS_LOG_STREAMS; i++)
                if (strcmp(s, log_stream_names[i]) == 0)
                        return i;
        return -EINVAL;
}

static const char *const export_signal_names[_EXPORT_SIGNAL_MAX] = {
        [EXPORT_SIGNAL_TRACES] = "traces",
        [EXPORT_SIGNAL_LOGS] = "logs",
        [EXPORT_SIGNAL_METRICS] = "metrics",
};

static const char *const export_drop_reason_names[_EXPORT_DROP_REASON_MAX] = {
        [EXPORT_DROP_QUEUE_FULL] = "queue_full",     [EXPORT_DROP_SPOOL_FULL] = "spool_full",
        [EXPORT_DROP_REJECTED] = "rejected",         [EXPORT_DROP_PARTIAL] = "partial_success",
        [EXPORT_DROP_ENCODE] = "encode_failed",      [EXPORT_DROP_SHUTDOWN] = "shutdown",
        [EXPORT_DROP_UNREADABLE] = "unreadable",     [EXPORT_DROP_ROTATED] = "rotated",
        [EXPORT_DROP_RATE_LIMITED] = "rate_limited",
};

const char *export_signal_to_string(ExportSignal s) {
        return (unsigned) s < _EXPORT_SIGNAL_MAX ? export_signal_names[s] : "unknown";
}

const char *export_drop_reason_to_string(ExportDropReason r) {
        return (unsigned) r < _EXPORT_DROP_REASON_MAX ? export_drop_reason_names[r] : "unknown";
}
