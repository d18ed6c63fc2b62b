/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Registering, updating, deleting and disconnecting machines, for every front-end that does (the HTTP API, the
 * libvirt watcher): the registry, the state directory, and the log lines and events that go with each. What
 * carries a machine's agent (its hybrid vsock socket, its connection) is the daemon's: the manager asks for it
 * through a MachineTransport, so that front-ends need nothing of the daemon. */

#include <stdint.h>

#include "registry.h"
#include "stats.h"
#include "store.h"

typedef struct MachineTransport {
        /* Listens on the machine's own socket (m->uds_path set). Returns 0 or -errno: -EEXIST (a path that is not
         * a socket), -EADDRINUSE (another process listens there), -ELOOP, -ENAMETOOLONG, -EACCES/-EPERM,
         * -ENOENT/-ENOTDIR. */
        int (*listen)(Machine *m, void *userdata);
        /* Stops listening and removes the socket it created. */
        void (*unlisten)(Machine *m, void *userdata);
        /* Closes the machine's agent connection, if there is one. */
        void (*disconnect)(Machine *m, CloseReason reason, void *userdata);
        void *userdata;
} MachineTransport;

typedef struct Manager {
        Registry *registry;
        Store *store; /* NULL: nothing is persisted */
        Stats *stats;
        char **uds_roots; /* borrowed: --uds-root, the directories machine sockets may be under (NULL: anywhere) */
        uint32_t vsock_port;
        MachineTransport transport;
} Manager;

/* Validates, adds to the registry, listens on the machine's socket, emits "registered", and persists
 * (store_save_machine(): the syncs run off the loop; machine_persisted observers hear when the registration is
 * durable). A registration that fails to reach the disk is deleted again ("deleted", machine_removed observers).
 * Returns 0 when the registration is durable already (no state dir, or --no-sync), 1 when machine_persisted
 * follows; or -EINVAL/-EEXIST/-ENOSPC with a static reason in *ret_error, or another -errno (*ret_error set too). */
int manager_register_machine(Manager *mgr, const MachineSpec *spec, Machine **ret, const char **ret_error);

/* Applies a new registration to a machine (same id and socket path) and, when something changed, persists it off
 * the loop; the machine does not wait for the disk (a failure is logged). Returns 1 when something changed, 0
 * when nothing did, or -errno with a static reason in *ret_error (the machine is then as it was). */
int manager_update_machine(Manager *mgr, Machine *m, const MachineSpec *spec, const char **ret_error);

/* Closes its connection, removes its socket and files, emits "deleted". */
void manager_delete_machine(Manager *mgr, Machine *m);

/* Closes the machine's agent connection, if any (the VM stopped). */
void manager_disconnect_machine(Manager *mgr, Machine *m, CloseReason reason);
