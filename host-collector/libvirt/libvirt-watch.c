/* SPDX-License-Identifier: MIT */
/* Room libvirt: the libvirt watcher; registers and retires machines through core's manager. */
#include "libvirt-watch.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonlog.h"
#include "libvirt-event-bridge.h"
#include "libvirt-metadata.h"
#include "macro.h"
#include "time-util.h"

struct LibvirtWatch {
        Manager *manager;
        sd_event *event;
        char *uri;
        virConnectPtr conn;
        int lifecycle_id, metadata_id; /* libvirt callback ids, -1 when not registered */
        bool close_callback;
        bool closed;        /* libvirt said the connection closed: tear down from the retry timer */
        bool outage_logged; /* one warning per outage, not one per attempt */
        sd_event_source *retry;
        uint64_t backoff_ns;
        unsigned connections;
};

/* ---------------------------------------------------------------------------------------------------------
 * libvirt's event details, as event names and reasons */

static const char *const event_names[] = {
        [VIR_DOMAIN_EVENT_DEFINED] = "defined",   [VIR_DOMAIN_EVENT_UNDEFINED] = "undefined",
        [VIR_DOMAIN_EVENT_STARTED] = "started",   [VIR_DOMAIN_EVENT_SUSPENDED] = "suspended",
        [VIR_DOMAIN_EVENT_RESUMED] = "resumed",   [VIR_DOMAIN_EVENT_STOPPED] = "stopped",
        [VIR_DOMAIN_EVENT_SHUTDOWN] = "shutdown", [VIR_DOMAIN_EVENT_PMSUSPENDED] = "pmsuspended",
        [VIR_DOMAIN_EVENT_CRASHED] = "crashed",
};

/* Indexed by detail, per event (libvirt's enums in libvirt-domain.h). */
static const char *const defined_details[] = { "added", "updated", "renamed", "from_snapshot" };
static const char *const undefined_details[] = { "removed", "renamed" };
static const char *const started_details[] = {
        "booted", "migrated", "restored", "from_snapshot", "wakeup", "recreated"
};
static const char *const suspended_details[] = {
        "paused",        "migrated",  "ioerror",  "watchdog",        "restored",
        "from_snapshot", "api_error", "postcopy", "postcopy_failed",
};
static const char *const resumed_details[] = { "unpaused", "migrated", "from_snapshot", "postcopy", "postcopy_failed" };
static const char *const stopped_details[] = {
        "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from_snapshot",
};
static const char *const shutdown_details[] = { "finished", "guest", "host" };
static const char *const pmsuspended_details[] = { "memory", "disk" };
static const char *const crashed_details[] = { "panicked", "crashloaded" };
/* virDomainGetState()'s reasons for VIR_DOMAIN_SHUTOFF. */
static const char *const shutoff_reasons[] = {
        "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from_snapshot", "daemon",
};

#define DETAIL(table, d) ((unsigned) (d) < ELEMENTSOF(table) ? (table)[(d)] : "unknown")

static const char *event_to_string(int event) {
        return (unsigned) event < ELEMENTSOF(event_names) && event_names[event] ? event_names[event] : "unknown";
}

static const char *detail_to_string(int event, int detail) {
        switch (event) {
        case VIR_DOMAIN_EVENT_DEFINED:
                return DETAIL(defined_details, detail);
        case VIR_DOMAIN_EVENT_UNDEFINED:
                return DETAIL(undefined_details, detail);
        case VIR_DOMAIN_EVENT_STARTED:
                return DETAIL(started_details, detail);
        case VIR_DOMAIN_EVENT_SUSPENDED:
                return DETAIL(suspended_details, detail);
        case VIR_DOMAIN_EVENT_RESUMED:
                return DETAIL(resumed_details, detail);
        case VIR_DOMAIN_EVENT_STOPPED:
                return DETAIL(stopped_details, detail);
        case VIR_DOMAIN_EVENT_SHUTDOWN:
                return DETAIL(shutdown_details, detail);
        case VIR_DOMAIN_EVENT_PMSUSPENDED:
                return DETAIL(pmsuspended_details, detail);
        case VIR_DOMAIN_EVENT_CRASHED:
                return DETAIL(crashed_details, detail);
        default:
                return "unknown";
        }
}

static const char *libvirt_error(void) {
        const char *m = virGetLastErrorMessage();
        return m && *m ? m : "unknown libvirt error";
}

/* ---------------------------------------------------------------------------------------------------------
 * Machines of libvirt domains */

static Machine *find_machine(LibvirtWatch *w, const char *uuid) {
        for (Machine *m = w->manager->registry->machines; m; m = m->machines_next)
                if (m->source == MACHINE_SOURCE_LIBVIRT && m->source_id && strcmp(m->source_id, uuid) == 0)
                        return m;
        return NULL;
}

static LogFields fields(const Machine *m, const char *transition) {
        return (LogFields) { .machine_id = m->id, .request_id = m->request_id, .transition = transition };
}

static void delete_machine(LibvirtWatch *w, Machine *m, const char *why) {
        LogFields f = fields(m, "deleted");

        log_emit(LOG_INFO, 0, &f, "Removing machine %s: its libvirt domain %s.", m->id, why);
        manager_delete_machine(w->manager, m);
}

static bool streq_null(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* Registers or updates the machine of a domain from its (live) XML, or removes it when the domain no longer
 * wants one. Returns the machine, NULL if there is none (or the domain could not be read: *ret_gone). */
static Machine *sync_domain(LibvirtWatch *w, virDomainPtr dom, bool *ret_gone) {
        _cleanup_(libvirt_domain_info_done) LibvirtDomainInfo info = {};
        _cleanup_free_ char *xml = NULL;
        char uuid[VIR_UUID_STRING_BUFLEN];
        const char *keys[2], *values[2], *err = NULL;
        MachineSpec spec;
        Machine *m;
        int r, active;

        if (ret_gone)
                *ret_gone = false;
        if (virDomainGetUUIDString(dom, uuid) < 0)
                return NULL;
        m = find_machine(w, uuid);
        active = virDomainIsActive(dom);
        xml = virDomainGetXMLDesc(dom, 0);
        if (!xml || active < 0) {
                /* Gone between the event and now (a transient domain that stopped), or libvirt failed. */
                if (ret_gone)
                        *ret_gone = true;
                return m;
        }
        r = libvirt_domain_info_parse(xml, strlen(xml), &info, &err);
        if (r == -ENOMEM) {
                log_oom();
                return m;
        }
        if (r < 0) {
                log_warning("Ignoring libvirt domain %s: %s.", uuid, err);
                return m;
        }
        if (info.metadata_error)
                log_warning(
                        "Ignoring the tether metadata of libvirt domain %s (%s): %s.",
                        info.name ?: "?",
                        uuid,
                        info.metadata_error);

        if (!libvirt_domain_info_wanted(&info)) {
                if (m)
                        delete_machine(w, m, "has no vsock device nor tether metadata any more");
                return NULL;
        }

        libvirt_domain_info_to_spec(&info, active == 1, keys, values, &spec);
        if (m && (strcmp(m->id, spec.machine_id) != 0 || !streq_null(m->uds_path, spec.uds_path))) {
                delete_machine(w, m, "changed the machine id or uds-path (registered again)");
                m = NULL;
        }

        Machine *holder = spec.cid != 0 ? registry_find_by_cid(w->manager->registry, spec.cid) : NULL;
        if (holder && holder != m) {
                /* Another machine holds the CID: the domain is registered without it, so its metadata still
                 * applies, and its agent is refused until the conflict is gone. */
                log_warning(
                        "libvirt domain %s (%s) has vsock CID %" PRIu32
                        ", which machine %s holds: registered "
                        "without a CID.",
                        info.name ?: "?",
                        uuid,
                        spec.cid,
                        holder->id);
                spec.cid = 0;
        }
        bool update = m;
        if (update)
                r = manager_update_machine(w->manager, m, &spec, &err);
        else
                r = manager_register_machine(w->manager, &spec, &m, &err);
        if (r < 0) {
                log_warning(
                        "Cannot register libvirt domain %s (%s) as machine %s: %s.",
                        info.name ?: "?",
                        uuid,
                        spec.machine_id,
                        err ?: strerror(-r));
                /* An update refused (invalid metadata, say) leaves the machine as it was: it is still the
                 * domain's, and must not be taken for gone by the caller (resync would delete it). */
                return m;
        }
        if (update && r > 0) {
                /* Something changed. */
                LogFields f = fields(m, "updated");
                log_emit(
                        LOG_INFO,
                        0,
                        &f,
                        "Updated machine %s from libvirt domain %s (vsock CID %" PRIu32 ").",
                        m->id,
                        info.name ?: uuid,
                        m->cid);
        }
        return m;
}

static void emit(LibvirtWatch *w, Machine *m, const char *transition, const char *reason, uint64_t now) {
        const char *name = NULL;

        for (size_t i = 0; i < m->n_attrs; i++)
                if (strcmp(m->attrs[i].key, "libvirt.domain.name") == 0)
                        name = m->attrs[i].value;
        registry_emit_event(
                w->manager->registry,
                m,
                transition,
                now,
                json_pack(
                        "{s:s, s:s?, s:s?, s:s}",
                        "source",
                        "libvirt",
                        "reason",
                        reason,
                        "domain",
                        name,
                        "domain_uuid",
                        m->source_id ?: ""));
}

static bool state_final(MachineState s) {
        /* What the workload said about its end says more than the VM stopping afterwards. */
        return s == MACHINE_EXITED || s == MACHINE_CRASHED;
}

/* The VM stopped: its pending host start is void, its ready waiters are answered now (409 with the reason, unless
 * the boot was ready), its agent connection is dead. */
static void vm_stopped(LibvirtWatch *w, Machine *m, bool crashed, const char *reason_text) {
        m->pending_host_start_unix_ns = 0;
        if (!state_final(m->state))
                registry_set_state(w->manager->registry, m, crashed ? MACHINE_CRASHED : MACHINE_STOPPED, reason_text);
        manager_disconnect_machine(w->manager, m, CLOSE_VM_STOPPED);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        LibvirtWatch *w = opaque;
        const char *what = event_to_string(event), *reason = detail_to_string(event, detail);
        uint64_t now = now_ns(CLOCK_REALTIME);
        char uuid[VIR_UUID_STRING_BUFLEN], transition[64], reason_text[128];
        Machine *m;
        bool gone = false;

        if (virDomainGetUUIDString(dom, uuid) < 0)
                return 0;
        snprintf(transition, sizeof(transition), "domain.%s", what);
        snprintf(reason_text, sizeof(reason_text), "libvirt: domain %s (%s)", what, reason);

        switch (event) {
        case VIR_DOMAIN_EVENT_UNDEFINED:
                m = find_machine(w, uuid);
                if (!m || detail == VIR_DOMAIN_EVENT_UNDEFINED_RENAMED)
                        return 0; /* a rename keeps the UUID: the DEFINED that follows updates the name */
                emit(w, m, transition, reason, now);
                delete_machine(w, m, "was undefined");
                return 0;

        case VIR_DOMAIN_EVENT_DEFINED:
                m = sync_domain(w, dom, NULL);
                break;

        case VIR_DOMAIN_EVENT_STARTED:
                /* The live XML now has the CID (auto-assigned ones too). */
                m = sync_domain(w, dom, NULL);
                if (!m)
                        return 0;
                if (detail == VIR_DOMAIN_EVENT_STARTED_BOOTED) {
                        /* A fresh boot: it starts now, host side, and its waiters wait for it (not for the
                         * previous boot's verdict). */
                        m->pending_host_start_unix_ns = now;
                        registry_set_state(
                                w->manager->registry, m, m->current ? MACHINE_BOOTING : MACHINE_REGISTERED, NULL);
                } else if (m->state == MACHINE_STOPPED)
                        /* Restored, migrated in, from a snapshot: the guest carries on where it was. */
                        registry_set_state(w->manager->registry, m, machine_state_from_boot(m), NULL);
                break;

        case VIR_DOMAIN_EVENT_STOPPED:
                m = find_machine(w, uuid);
                if (!m)
                        return 0;
                vm_stopped(w, m, detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED, reason_text);
                {
                        LogFields f = fields(m, transition);
                        log_emit(LOG_INFO, 0, &f, "Machine %s: libvirt domain %s (%s).", m->id, what, reason);
                }
                emit(w, m, transition, reason, now);
                /* Drops the CID (a stopped domain holds none); a transient domain is gone: so is its machine. */
                m = sync_domain(w, dom, &gone);
                if (m && (gone || virDomainIsPersistent(dom) != 1))
                        delete_machine(w, m, "stopped and was transient");
                m = NULL;
                break;

        case VIR_DOMAIN_EVENT_CRASHED:
                m = find_machine(w, uuid);
                if (!m)
                        return 0;
                vm_stopped(w, m, true, reason_text);
                break;

        default: /* suspended, resumed, shutdown (in progress; STOPPED follows), pmsuspended */
                m = find_machine(w, uuid);
                break;
        }

        if (m) {
                LogFields f = fields(m, transition);
                log_emit(LOG_INFO, 0, &f, "Machine %s: libvirt domain %s (%s).", m->id, what, reason);
                emit(w, m, transition, reason, now);
        }
        return 0;
}

static void on_metadata_change(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque) {
        LibvirtWatch *w = opaque;
        Machine *m;

        if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && strcmp(nsuri, TETHER_LIBVIRT_NS) != 0)
                return; /* someone else's metadata */
        m = sync_domain(w, dom, NULL);
        if (m)
                emit(w, m, "domain.metadata_changed", NULL, now_ns(CLOCK_REALTIME));
}

/* ---------------------------------------------------------------------------------------------------------
 * Re-synchronisation with the live domain list */

static void resync_state(LibvirtWatch *w, Machine *m, virDomainPtr dom) {
        int state = 0, reason = 0;
        char text[128];

        if (virDomainGetState(dom, &state, &reason, 0) < 0)
                return;
        if (state == VIR_DOMAIN_SHUTOFF) {
                /* Stopped while tetherd was not watching (or not running). */
                if (m->state == MACHINE_BOOTING || m->state == MACHINE_READY || m->state == MACHINE_DISCONNECTED) {
                        snprintf(
                                text,
                                sizeof(text),
                                "libvirt: domain not running (%s)",
                                DETAIL(shutoff_reasons, reason));
                        vm_stopped(w, m, reason == VIR_DOMAIN_SHUTOFF_CRASHED, text);
                }
        } else if (m->state == MACHINE_STOPPED)
                /* Started again while tetherd was not watching: the start time is unknown. */
                registry_set_state(w->manager->registry, m, m->current ? MACHINE_BOOTING : MACHINE_REGISTERED, NULL);
}

static int resync(LibvirtWatch *w) {
        virDomainPtr *doms = NULL;
        char **seen = NULL;
        size_t n_seen = 0, removed = 0;
        bool complete = true;
        Machine *m, *next;
        int n;

        n = virConnectListAllDomains(w->conn, &doms, 0);
        if (n < 0)
                return log_error_errno(EIO, "Failed to list the libvirt domains of %s: %s", w->uri, libvirt_error());
        seen = calloc((size_t) n + 1, sizeof(char *));
        if (!seen) {
                for (int i = 0; i < n; i++)
                        virDomainFree(doms[i]);
                free(doms);
                return log_oom();
        }

        for (int i = 0; i < n; i++) {
                m = sync_domain(w, doms[i], NULL);
                if (m) {
                        resync_state(w, m, doms[i]);
                        if (m->source_id && (seen[n_seen] = strdup(m->source_id)))
                                n_seen++;
                        else
                                complete = false; /* then nothing is taken for stale */
                }
                virDomainFree(doms[i]);
        }
        free(doms);

        for (m = complete ? w->manager->registry->machines : NULL; m; m = next) {
                bool found = false;
                next = m->machines_next;
                if (m->source != MACHINE_SOURCE_LIBVIRT)
                        continue;
                for (size_t i = 0; i < n_seen && !found; i++)
                        found = m->source_id && strcmp(seen[i], m->source_id) == 0;
                if (!found) {
                        delete_machine(w, m, "no longer exists");
                        removed++;
                }
        }
        for (size_t i = 0; i < n_seen; i++)
                free(seen[i]);
        free(seen);
        log_info(
                "libvirt %s: %d domains, %zu registered as machines, %zu stale machines removed.",
                w->uri,
                n,
                n_seen,
                removed);
        return 0;
}

/* ---------------------------------------------------------------------------------------------------------
 * Connection, keepalive, reconnection */

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        LibvirtWatch *w = opaque;
        static const char *const reasons[] = { "error", "end of file", "keepalive timeout", "client closed" };

        if (w->closed)
                return;
        w->closed = true;
        log_warning(
                "Lost the connection to libvirt %s (%s): reconnecting.",
                w->uri,
                (unsigned) reason < ELEMENTSOF(reasons) ? reasons[reason] : "unknown");
        /* Not from inside libvirt's callback: from the retry timer, at once. */
        (void) sd_event_source_set_time_relative(w->retry, 0);
        (void) sd_event_source_set_enabled(w->retry, SD_EVENT_ONESHOT);
}

static void disconnect(LibvirtWatch *w) {
        if (!w->conn)
                return;
        if (w->lifecycle_id >= 0)
                (void) virConnectDomainEventDeregisterAny(w->conn, w->lifecycle_id);
        if (w->metadata_id >= 0)
                (void) virConnectDomainEventDeregisterAny(w->conn, w->metadata_id);
        if (w->close_callback)
                (void) virConnectUnregisterCloseCallback(w->conn, on_close);
        w->lifecycle_id = w->metadata_id = -1;
        w->close_callback = false;
        (void) virConnectClose(w->conn);
        w->conn = NULL;
        w->closed = false;
}

static void schedule_retry(LibvirtWatch *w) {
        (void) sd_event_source_set_time_relative(w->retry, w->backoff_ns / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(w->retry, SD_EVENT_ONESHOT);
        w->backoff_ns = MIN(w->backoff_ns * 2, LIBVIRT_WATCH_BACKOFF_MAX_NS);
}

static int try_connect(LibvirtWatch *w) {
        int r;

        /* Read-only: tetherd only watches (events, XML, metadata); it never changes a domain. */
        w->conn = virConnectOpenReadOnly(w->uri);
        if (!w->conn) {
                if (!w->outage_logged)
                        log_warning(
                                "Cannot connect to libvirt %s: %s. Retrying with backoff (up to every %" PRIu64 " s).",
                                w->uri,
                                libvirt_error(),
                                LIBVIRT_WATCH_BACKOFF_MAX_NS / NSEC_PER_SEC);
                w->outage_logged = true;
                return -ECONNREFUSED;
        }

        /* Remote connections only (a local driver such as test:// has no keepalive: it cannot go away). */
        if (virConnectSetKeepAlive(w->conn, LIBVIRT_WATCH_KEEPALIVE_INTERVAL_S, LIBVIRT_WATCH_KEEPALIVE_COUNT) < 0)
                log_debug("libvirt %s: no keepalive: %s", w->uri, libvirt_error());
        if (virConnectRegisterCloseCallback(w->conn, on_close, w, NULL) >= 0)
                w->close_callback = true;
        w->lifecycle_id = virConnectDomainEventRegisterAny(
                w->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), w, NULL);
        if (w->lifecycle_id < 0) {
                log_warning("Cannot watch the domain events of libvirt %s: %s.", w->uri, libvirt_error());
                disconnect(w);
                return -EIO;
        }
        w->metadata_id = virConnectDomainEventRegisterAny(
                w->conn,
                NULL,
                VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                VIR_DOMAIN_EVENT_CALLBACK(on_metadata_change),
                w,
                NULL);
        if (w->metadata_id < 0)
                log_warning("libvirt %s sends no metadata change events: %s.", w->uri, libvirt_error());

        /* After the callbacks: an event during the listing is handled again afterwards, idempotently. */
        r = resync(w);
        if (r < 0) {
                disconnect(w);
                return r;
        }
        w->connections++;
        w->outage_logged = false;
        w->backoff_ns = LIBVIRT_WATCH_BACKOFF_MIN_NS;
        log_info("Connected to libvirt %s%s.", w->uri, w->connections > 1 ? " again (re-synchronised)" : "");
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        LibvirtWatch *w = userdata;

        if (w->conn) {
                /* The close callback: tear down, then reconnect after the backoff (libvirtd is restarting). */
                disconnect(w);
                schedule_retry(w);
                return 0;
        }
        if (try_connect(w) < 0)
                schedule_retry(w);
        return 0;
}

int libvirt_watch_new(Manager *manager, sd_event *e, const char *uri, LibvirtWatch **ret) {
        int r;

        LibvirtWatch *w = calloc(1, sizeof(LibvirtWatch));
        if (!w)
                return -ENOMEM;
        *w = (LibvirtWatch) {
                .manager = manager,
                .event = e,
                .lifecycle_id = -1,
                .metadata_id = -1,
                .backoff_ns = LIBVIRT_WATCH_BACKOFF_MIN_NS,
        };
        if (!(w->uri = strdup(uri))) {
                free(w);
                return -ENOMEM;
        }
        r = sd_event_add_time_relative(e, &w->retry, CLOCK_MONOTONIC, 0, 1000, on_retry, w);
        if (r < 0) {
                libvirt_watch_free(w);
                return r;
        }
        (void) sd_event_source_set_enabled(w->retry, SD_EVENT_OFF);
        (void) sd_event_source_set_description(w->retry, "libvirt-retry");

        if (try_connect(w) < 0)
                schedule_retry(w);
        *ret = w;
        return 0;
}

LibvirtWatch *libvirt_watch_free(LibvirtWatch *w) {
        if (!w)
                return NULL;
        disconnect(w);
        sd_event_source_disable_unref(w->retry);
        free(w->uri);
        free(w);
        return NULL;
}

void libvirt_watch_reconnect(LibvirtWatch *w) {
        disconnect(w);
        (void) sd_event_source_set_enabled(w->retry, SD_EVENT_OFF);
        if (try_connect(w) < 0)
                schedule_retry(w);
}

bool libvirt_watch_connected(const LibvirtWatch *w) {
        return w->conn && !w->closed;
}

unsigned libvirt_watch_connections(const LibvirtWatch *w) {
        return w->connections;
}
