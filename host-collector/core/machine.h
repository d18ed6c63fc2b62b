/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* A registered machine: identity (machine id, and the transport it is reached by: a vsock CID or a hybrid
 * vsock Unix socket path), what the orchestrator said about it, its state and its recent boots. Pure model. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "boot.h"
#include "list.h"
#include "ratelimit.h"
#include "samples.h"
#include "traceparent.h"

#define MACHINE_ID_MAX 128u
#define MACHINE_ATTRIBUTES_MAX 32u
#define MACHINE_STRING_MAX 1024u

typedef enum MachineState {
        MACHINE_REGISTERED,   /* no agent has said Hello yet */
        MACHINE_BOOTING,      /* current boot not ready yet */
        MACHINE_READY,        /* current boot met the ready condition */
        MACHINE_EXITED,       /* the workload exited (any code) */
        MACHINE_CRASHED,      /* the workload was killed by a signal or the OOM killer */
        MACHINE_DISCONNECTED, /* the agent went away before ready and before an exit */
        MACHINE_STOPPED,      /* the VM itself stopped (libvirt: shut off, destroyed, failed) */
        _MACHINE_STATE_MAX,
} MachineState;

const char *machine_state_to_string(MachineState s);

/* Who registered a machine: the HTTP API (or the state directory it was persisted to), or tetherd's libvirt
 * watcher, which owns the machines it registered (adds, updates and removes them to match libvirt). */
typedef enum MachineSource {
        MACHINE_SOURCE_API,
        MACHINE_SOURCE_LIBVIRT,
        _MACHINE_SOURCE_MAX,
} MachineSource;

const char *machine_source_to_string(MachineSource s);
/* Returns the source or -EINVAL. */
int machine_source_from_string(const char *s);

/* The libvirt domain UUID ("source_id" of a libvirt machine): 36 characters. */
#define MACHINE_SOURCE_ID_MAX 64u

/* What an orchestrator registers (POST /v1/machines, machine.json in the state directory, libvirt later).
 * Strings are borrowed. */
typedef struct MachineSpec {
        const char *machine_id;
        uint32_t cid; /* 0: none */
        const char *uds_path;
        const char *traceparent;
        const char *request_id;
        const char *service_name;
        const char *const *attr_keys;
        const char *const *attr_values;
        size_t n_attrs;
        const char *ready_condition;
        uint64_t registered_unix_ns; /* 0: now */
        MachineSource source;
        const char *source_id; /* libvirt: the domain UUID; NULL for the API */
        /* The machine's socket file "<uds_path>_<port>": owner, group and mode for a VMM that does not run as
         * tetherd's user (a jailed Firecracker, Cloud Hypervisor as a user). Unset: tetherd's user, the umask. */
        bool socket_uid_set, socket_gid_set;
        uint32_t socket_uid, socket_gid;
        uint32_t socket_mode; /* 0: unset; else 0001..0777 */
} MachineSpec;

/* [A-Za-z0-9._:-]{1,MACHINE_ID_MAX}, not "." or ".." (it names a directory in the state dir). */
bool machine_id_is_valid(const char *id);

/* Checks a spec. A libvirt machine may have neither cid nor uds_path (a stopped domain holds no CID). vsock_port is
 * needed to check that "<uds_path>_<port>" fits a socket address. Returns 0, or -EINVAL with a static human-readable
 * reason in *ret_error. */
int machine_spec_validate(const MachineSpec *spec, uint32_t vsock_port, const char **ret_error);

typedef struct Registry Registry;
typedef struct Machine Machine;
typedef struct MachineSave MachineSave; /* store.c */

/* At most this many log lines a machine's guest causes per interval; the rest are counted and reported. */
#define MACHINE_LOG_RATELIMIT_INTERVAL_NS (10 * NSEC_PER_SEC)
#define MACHINE_LOG_RATELIMIT_BURST 20u

struct Machine {
        Registry *registry;
        LIST_FIELDS(Machine, machines);

        char *id;
        uint32_t cid;
        char *cid_key; /* "cid:N", the by-CID index key */
        char *uds_path;
        char *traceparent;
        bool has_parent;
        TraceParent parent;
        char *request_id;
        char *service_name;
        Attr *attrs;
        size_t n_attrs;
        ReadyCondition ready_condition;
        uint64_t registered_unix_ns;
        MachineSource source;
        char *source_id;

        /* The host-side start of the next boot (libvirt's "started"), 0 if unknown: given to the next new boot
         * (registry_start_boot), cleared when the VM stops. */
        uint64_t pending_host_start_unix_ns;

        MachineState state;
        char *state_reason;     /* why it exited, crashed or disconnected */
        uint64_t state_unix_ns; /* when state last changed (host realtime); 0: before this tetherd started */
        bool connected;
        bool agent_seen; /* some agent said Hello since registration (or before a restart) */

        Boot **boots; /* oldest first */
        size_t n_boots;
        Boot *current;
        uint64_t next_boot_index;

        SampleRing *samples; /* the current boot's resource samples (protocol version 2); NULL until the first */

        uint64_t connections; /* sessions that said Hello */
        uint64_t protocol_errors;

        /* The daemon's (connection.h, listener.h), which closes them before the machine is removed: the agent's
         * connection and the machine's own socket. */
        struct Connection *connection;
        struct Listener *uds_listener;
        struct Listener *notify_listener; /* "<uds_path>_<vmm.notify port>" (notify-server.h) */
        /* Owned by store.c. */
        bool persisted;                      /* machine.json is durable */
        MachineSave *store_save;             /* machine.json on its way to the disk, or NULL */
        bool socket_uid_set, socket_gid_set; /* see MachineSpec */
        uint32_t socket_uid, socket_gid, socket_mode;
        RateLimit log_ratelimit; /* tetherd's log lines this machine's guest causes (jsonlog.h) */
};

/* Creates a machine from a validated spec. Returns 0 or -ENOMEM/-EINVAL. */
int machine_new(const MachineSpec *spec, const char *default_service_name, Machine **ret);
Machine *machine_free(Machine *m);

/* Adds a boot as the current one. When more than max_boots are kept, the oldest non-current boot is removed
 * from the machine and returned in *ret_evicted (the caller deletes its files and frees it). Returns 0 or
 * -ENOMEM. */
int machine_add_boot(Machine *m, Boot *b, size_t max_boots, Boot **ret_evicted);

Boot *machine_find_boot(const Machine *m, const char *boot_id);
Boot *machine_find_boot_by_index(const Machine *m, uint64_t index);

/* The state a machine is in given its current boot (used after a restart, where nothing is connected yet:
 * a boot neither ready nor exited is "booting", awaiting its agent's reconnection). */
MachineState machine_state_from_boot(const Machine *m);
