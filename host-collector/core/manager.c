/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "manager.h"

#include <errno.h>
#include <string.h>

#include "jsonlog.h"

static const char *listen_error_text(int r) {
        switch (r) {
        case -EEXIST:
                return "the machine's socket path exists and is not a socket";
        case -EADDRINUSE:
                return "another process listens on the machine's socket path";
        case -ELOOP:
                return "the machine's socket path goes through a symbolic link";
        case -ENAMETOOLONG:
                return "the machine's socket path is too long";
        case -EACCES:
        case -EPERM:
                return "permission denied creating the machine's socket";
        case -ENOENT:
        case -ENOTDIR:
                return "cannot create the machine's socket directory";
        default:
                return "failed to set up the machine";
        }
}

static LogFields fields(const Machine *m, const char *transition) {
        return (LogFields) { .machine_id = m->id, .request_id = m->request_id, .transition = transition };
}

static void announce_machine(Manager *mgr, Machine *m) {
        LogFields f = fields(m, "registered");

        if (m->cid)
                log_emit(LOG_INFO, 0, &f, "Registered machine %s (vsock CID %u).", m->id, m->cid);
        else if (!m->uds_path)
                log_emit(
                        LOG_INFO,
                        0,
                        &f,
                        "Registered machine %s (from %s; no vsock CID until its domain runs).",
                        m->id,
                        machine_source_to_string(m->source));
        else
                log_emit(
                        LOG_INFO,
                        0,
                        &f,
                        "Registered machine %s (listening on %s_%u).",
                        m->id,
                        m->uds_path,
                        mgr->vsock_port);
        registry_announce_machine(mgr->registry, m);
}

/* Undoes what a registration set up: its agent's connection, its socket, its files. */
static void release_machine(Manager *mgr, Machine *m) {
        mgr->transport.disconnect(m, CLOSE_DELETED, mgr->transport.userdata);
        mgr->transport.unlisten(m, mgr->transport.userdata);
        if (mgr->store) {
                int r = store_remove_machine(mgr->store, m);
                if (r < 0)
                        log_warning_errno(r, "Failed to remove the files of machine %s: %m", m->id);
        }
}

static void on_registration_saved(Store *store, Machine *m, int error, void *userdata) {
        Manager *mgr = userdata;

        if (error == -ECANCELED) /* deleted before it reached the disk */
                return;
        if (error < 0) {
                LogFields f = fields(m, "deleted");
                log_emit(LOG_ERR, error, &f, "Failed to persist machine %s, removing it again: %m", m->id);
                release_machine(mgr, m);
                registry_remove_machine(mgr->registry, m);
                return;
        }
        registry_machine_persisted(mgr->registry, m);
}

/* With --uds-root, a machine's socket must be below one of those directories (its path is canonical already:
 * machine_spec_validate()): an API client cannot make tetherd create "<anything>_4817" anywhere it can write,
 * such as /etc/passwd_4817. */
static bool uds_path_allowed(const Manager *mgr, const char *path) {
        if (!mgr->uds_roots || !path)
                return true;
        for (char **root = mgr->uds_roots; *root; root++) {
                size_t n = strlen(*root);
                if (n == 1 || (strncmp(path, *root, n) == 0 && path[n] == '/' && path[n + 1]))
                        return true; /* "/" allows everything */
        }
        return false;
}

int manager_register_machine(Manager *mgr, const MachineSpec *spec, Machine **ret, const char **ret_error) {
        Machine *m;
        int r, saving = 0;

        if (!uds_path_allowed(mgr, spec->uds_path)) {
                *ret_error = "uds_path is not below any of tetherd's --uds-root directories";
                return -EINVAL;
        }
        r = registry_add_machine(mgr->registry, spec, &m, ret_error);
        if (r < 0)
                return r;

        if (m->uds_path) {
                r = mgr->transport.listen(m, mgr->transport.userdata);
                if (r < 0) {
                        *ret_error = listen_error_text(r);
                        log_warning_errno(
                                r, "Failed to listen for machine %s on %s_%u: %m", m->id, m->uds_path, mgr->vsock_port);
                        registry_discard_machine(mgr->registry, m);
                        /* A path in use by another process is a conflict (409), like one another machine has. */
                        return r == -EEXIST || r == -ELOOP || r == -ENOTDIR ? -EINVAL : r == -EADDRINUSE ? -EEXIST : r;
                }
        }
        if (mgr->store) {
                saving = r = store_save_machine(mgr->store, m, on_registration_saved, mgr);
                if (r < 0) {
                        *ret_error = "failed to persist the registration";
                        log_error_errno(r, "Failed to persist machine %s: %m", m->id);
                        release_machine(mgr, m);
                        registry_discard_machine(mgr->registry, m);
                        return r;
                }
        }
        announce_machine(mgr, m);
        if (ret)
                *ret = m;
        return saving;
}

static void on_update_saved(Store *store, Machine *m, int error, void *userdata) {
        if (error < 0 && error != -ECANCELED) {
                LogFields f = fields(m, NULL);
                log_emit(LOG_WARNING, error, &f, "Failed to persist machine %s: %m", m->id);
        }
}

int manager_update_machine(Manager *mgr, Machine *m, const MachineSpec *spec, const char **ret_error) {
        int r = registry_update_machine(mgr->registry, m, spec, ret_error);
        if (r <= 0 || !mgr->store)
                return r;
        int q = store_save_machine(mgr->store, m, on_update_saved, NULL);
        if (q < 0)
                on_update_saved(mgr->store, m, q, NULL);
        return r;
}

void manager_delete_machine(Manager *mgr, Machine *m) {
        LogFields f = fields(m, "deleted");

        release_machine(mgr, m);
        log_emit(LOG_INFO, 0, &f, "Deleted machine %s.", m->id);
        registry_remove_machine(mgr->registry, m);
}

void manager_disconnect_machine(Manager *mgr, Machine *m, CloseReason reason) {
        mgr->transport.disconnect(m, reason, mgr->transport.userdata);
}
