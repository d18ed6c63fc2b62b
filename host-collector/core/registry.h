/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* The machines tetherd knows, indexed by id, CID and Unix socket path; the ring of recent lifecycle events;
 * and the observer interface other modules (HTTP API, later OTLP export and metrics) subscribe to. No I/O:
 * listening sockets and files are handled by the server and store modules. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "hashmap.h"
#include "machine.h"
#include "samples.h"
#include "stats.h"

typedef struct RegistryConfig {
        const char *node_id;
        const char *default_service_name;
        size_t max_machines;             /* default 4096 */
        size_t max_boots;                /* per machine, default 4 */
        size_t max_events;               /* event log, default 4096 */
        size_t max_event_bytes;          /* event log, default 8 MiB */
        uint32_t vsock_port;             /* to validate uds_path lengths */
        uint64_t log_memory_bytes;       /* every boot's in-memory log data together, 0: LOG_MEMORY_BYTES_DEFAULT */
        uint64_t unwritten_memory_bytes; /* copies of what boot files miss (unwritten.h), all boots; 0: none */
        BootLimits boot_limits;          /* log_budget is set by registry_new() */
} RegistryConfig;

/* A lifecycle event as observers get it: the structure it was built from, not the text the event log keeps, so
 * that no observer parses it back. */
typedef struct RegistryEvent {
        Machine *machine; /* NULL for the node's own events */
        const char *transition;
        const json_t *object; /* the whole event, the fields /v1/events shows (its time among them) */
} RegistryEvent;

/* Callbacks run synchronously, in the order observers were added. They must not remove machines. */
typedef struct RegistryObserver {
        /* recv_unix_ns: when tetherd received the record (stored with it: the logs API's fallback time). */
        void (*record_stored)(
                Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns, void *userdata);
        void (*state_changed)(Registry *r, Machine *m, MachineState old_state, void *userdata);
        void (*connection_changed)(Registry *r, Machine *m, void *userdata);
        void (*boot_started)(Registry *r, Machine *m, Boot *b, void *userdata);
        void (*boot_finished)(Registry *r, Machine *m, Boot *b, void *userdata); /* exited, or replaced */
        void (*event_added)(Registry *r, const RegistryEvent *ev, void *userdata);
        void (*machine_removed)(Registry *r, Machine *m, void *userdata); /* before it is freed */
        /* Its registration reached the disk (m->persisted): registry_machine_persisted(). */
        void (*machine_persisted)(Registry *r, Machine *m, void *userdata);
        /* The boot's clock mapping was just fixed (boot_fix_clock()), after the events that waited for it. */
        void (*clock_fixed)(Registry *r, Machine *m, Boot *b, void *userdata);
        /* A guest resource sample was kept in m->samples (it is the ring's latest). */
        void (*sample_added)(Registry *r, Machine *m, const GuestSample *s, void *userdata);
        void *userdata;
} RegistryObserver;

struct Registry {
        RegistryConfig config; /* strings owned */
        Stats *stats;
        Hashmap *by_id, *by_cid, *by_uds;
        LIST_HEAD(Machine, machines); /* registration order */
        size_t n_machines;
        EventLog *events;
        LogBudget *log_budget;            /* config.boot_limits.log_budget */
        UnwrittenBudget unwritten_budget; /* config.boot_limits.unwritten_budget */
        RegistryObserver *observers;
        size_t n_observers;
};

int registry_new(const RegistryConfig *config, Stats *stats, Registry **ret);
Registry *registry_free(Registry *r);

int registry_add_observer(Registry *r, const RegistryObserver *o);
/* Removes every observer registered with this userdata. */
void registry_remove_observers(Registry *r, void *userdata);

/* Validates and adds a machine (state "registered"). Returns 0; -EINVAL (invalid spec) or -EEXIST (id, CID
 * or uds_path taken) with a static reason in *ret_error; -ENOSPC at max_machines; -ENOMEM. Emits no event:
 * the caller announces the machine once it is fully set up (registry_announce_machine()). */
int registry_add_machine(Registry *r, const MachineSpec *spec, Machine **ret, const char **ret_error);

/* Updates a machine in place from a spec with the same machine_id and uds_path (-EINVAL otherwise): its CID
 * (re-indexed; 0 drops it), traceparent, request id, service name, attributes, ready condition and source id. The
 * current boot keeps its trace id; the next boot takes the new traceparent's. Returns 1 when something changed,
 * 0 when nothing did, -EINVAL/-EEXIST (CID taken) with a static reason in *ret_error, or -ENOMEM; on error the
 * machine is unchanged. Emits no event and notifies no observer. */
int registry_update_machine(Registry *r, Machine *m, const MachineSpec *spec, const char **ret_error);

/* Emits "deleted", notifies machine_removed observers and frees the machine. The caller has closed its
 * connection and listener. */
void registry_remove_machine(Registry *r, Machine *m);

/* Emits "registered": the machine is set up (listening). */
void registry_announce_machine(Registry *r, Machine *m);
/* Notifies machine_persisted observers: its registration is durable (the state directory's syncer). */
void registry_machine_persisted(Registry *r, Machine *m);

/* Removes and frees a machine that was never announced (a registration rolled back): no event, no observers. */
void registry_discard_machine(Registry *r, Machine *m);

Machine *registry_find(const Registry *r, const char *machine_id);
Machine *registry_find_by_cid(const Registry *r, uint32_t cid);
Machine *registry_find_by_uds(const Registry *r, const char *uds_path);

/* Finds the machine's boot with this boot id (returns 0), or starts a new one (returns 1) with the next
 * index and the registered traceparent's trace id or a random one. A boot replaced as current is finished
 * (boot_finished). When the boot count exceeds max_boots, the oldest is detached into *ret_evicted for the
 * caller to delete from the store and free. */
int registry_start_boot(Registry *r, Machine *m, const char *boot_id, Boot **ret_boot, Boot **ret_evicted);

/* Updates state (and its reason, which may be NULL) and notifies state_changed when it changed. */
void registry_set_state(Registry *r, Machine *m, MachineState state, const char *reason);
void registry_set_connected(Registry *r, Machine *m, bool connected);

/* Appends a lifecycle event: {"machine_id","node_id","request_id","transition","time_unix_ns", details...}.
 * details (may be NULL) is consumed. m may be NULL for node-wide events. Returns 0 or -ENOMEM. */
int registry_emit_event(Registry *r, Machine *m, const char *transition, uint64_t time_unix_ns, json_t *details);

void registry_notify_record_stored(Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns);
void registry_notify_clock_fixed(Registry *r, Machine *m, Boot *b);
void registry_notify_sample_added(Registry *r, Machine *m, const GuestSample *s);
void registry_notify_boot_finished(Registry *r, Machine *m, Boot *b);
