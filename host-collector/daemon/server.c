/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "api-probe.h"
#include "api.h"
#include "config.h"
#include "connection.h"
#include "file-repair.h"
#include "jsonlog.h"
#include "listener.h"
#include "metrics.h"
#if HAVE_LIBVIRT
#        include "libvirt-event-bridge.h"
#        include "libvirt-watch.h"
#endif
#include "machine-socket.h"
#include "macro.h"
#include "notify-server.h"
#include "time-util.h"

struct Server {
        sd_event *event;
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext session_ctx;
        Manager manager; /* what the API and the libvirt watcher register, update and delete machines through */
        Listener *vsock_listener;
        NotifyServer *notify; /* the vmm.notify port: systemd's own notifications (agentless boots) */
        LIST_HEAD(Connection, connections);
        Api *api;
        OtlpExporter *otlp;
        OtlpFleetHistograms otlp_histograms; /* the API's boot histograms, in the OTLP fleet metrics */
        char *libvirt_uri;
        char **uds_roots;      /* --uds-root: the directories machine sockets may be under (NULL: anywhere) */
        LibvirtWatch *libvirt; /* NULL without --libvirt-uri */
        sd_event_source *sigterm, *sigint;
        sd_event_source *sync_source;  /* completed syncs of the store's threads */
        sd_event_source *repair_timer; /* boot files missing records whose agent is gone (file-repair.h) */
        uint32_t vsock_port;
        uint32_t notify_port;
        char *api_socket;
        uint16_t api_port;
        ApiConfig api_config;
        bool vsock_enabled;
        bool stopping;
        ApiProbe *api_probe; /* with the systemd watchdog: feeds it only while the API answers */
        sd_event_source *watchdog_timer;
        uint64_t watchdog_ns;
        bool api_unanswered;         /* logged */
        RateLimit refused_ratelimit; /* "refusing a connection" lines */
};

void server_config_init(ServerConfig *c) {
        *c = (ServerConfig) {
                .api_socket = TETHERD_API_SOCKET_DEFAULT,
                .api_config = { .max_connections = API_MAX_CONNECTIONS_DEFAULT,
                                .request_timeout_ns = API_REQUEST_TIMEOUT_NS_DEFAULT },
                .vsock_port = TETHER_VSOCK_PORT_DEFAULT,
                .notify_port = TETHER_NOTIFY_PORT_DEFAULT,
                .vsock = true,
                .state_dir = TETHERD_STATE_DIR_DEFAULT,
                .service_name = "tether",
                .max_log_bytes_per_boot = UINT64_C(8) << 20,
                .log_memory_bytes = 0, /* by mode: LOG_MEMORY_BYTES_DEFAULT or _DEFAULT_STATE_DIR */
                .unwritten_memory_bytes = UNWRITTEN_NODE_MAX_BYTES,
                .max_disk_bytes_per_boot = STORE_BOOT_FILE_BYTES_DEFAULT,
                .max_boots = 4,
                .max_machines = 4096,
                .max_events = 4096,
                .max_event_bytes = (size_t) 8 << 20,
                .sync = true,
                .otlp = true,
        };
        otlp_config_init(&c->otlp_config);
}

static int server_setup_otlp(Server *s, const ServerConfig *config) {
        _cleanup_free_ char *file = NULL, *spool = NULL;
        OtlpConfig oc = config->otlp_config;
        bool state = config->state_dir && *config->state_dir;

        if (!config->otlp) {
                log_info("OTLP export disabled.");
                return 0;
        }
        if (!oc.file_path && !config->otlp_no_file && state && asprintf(&file, "%s/otlp.jsonl", config->state_dir) < 0)
                return log_oom();
        if (!oc.spool_dir && !config->otlp_no_spool && state &&
            asprintf(&spool, "%s/otlp-spool", config->state_dir) < 0)
                return log_oom();
        if (file)
                oc.file_path = file;
        if (spool)
                oc.spool_dir = spool;
        if (config->otlp_no_file)
                oc.file_path = NULL;
        if (config->otlp_no_spool)
                oc.spool_dir = NULL;
        if (!oc.endpoint && !oc.traces_endpoint && !oc.logs_endpoint && !oc.metrics_endpoint && !oc.file_path) {
                log_info("OTLP export off: no --otlp-endpoint, no --otlp-file and no state directory.");
                return 0;
        }
        return otlp_exporter_new(s->event, s->registry, s->store, &s->stats, &oc, &s->otlp);
}

static void server_close_connection(Server *s, Connection *c, CloseReason reason) {
        Machine *m = c->session->machine;

        s->stats.connections_closed[reason]++;
        if (m->connection == c)
                m->connection = NULL;
        LIST_REMOVE(connections, s->connections, c);
        s->stats.connections_open--;
        connection_free(c, reason);
}

static void on_connection_closed(Connection *c, CloseReason reason, void *userdata) {
        server_close_connection(userdata, c, reason);
}

/* A transport connection for machine m: replaces any previous one (one live connection per machine). */
static void server_attach(Server *s, Machine *m, int fd, const char *peer) {
        Connection *c;
        int r;

        if (m->connection) {
                LogFields f = { .machine_id = m->id, .request_id = m->request_id, .ratelimit = &m->log_ratelimit };
                log_emit(
                        LOG_INFO,
                        0,
                        &f,
                        "New connection for machine %s from %s replaces the previous one.",
                        m->id,
                        peer);
                server_close_connection(s, m->connection, CLOSE_REPLACED);
        }

        r = connection_new(s->event, fd, peer, &s->session_ctx, m, on_connection_closed, s, &c);
        if (r < 0) {
                s->stats.connections_refused[REFUSE_OUT_OF_MEMORY]++;
                log_error_errno(r, "Failed to set up the connection from %s: %m", peer);
                return;
        }
        LIST_PREPEND(connections, s->connections, c);
        s->stats.connections_open++;
        s->stats.connections_accepted++;
        m->connection = c;
        log_debug("Accepted a connection for machine %s from %s.", m->id, peer);
}

void server_accept_vsock_peer(Server *s, int fd, uint32_t cid, uint32_t port) {
        char desc[64];

        /* Identity comes from the transport: the CID the hypervisor gave the guest. */
        Machine *m = registry_find_by_cid(s->registry, cid);
        if (!m) {
                s->stats.connections_refused[REFUSE_UNKNOWN_CID]++;
                /* A guest looping on connect must not flood the log: at most one line per second. */
                uint64_t suppressed = 0;
                if (ratelimit_below(&s->refused_ratelimit, now_ns(CLOCK_MONOTONIC), &suppressed))
                        log_warning(
                                "Refusing a vsock connection from unregistered CID %u (port %u); %" PRIu64
                                " more refused since the last report.",
                                cid,
                                port,
                                suppressed);
                safe_close(fd);
                return;
        }
        snprintf(desc, sizeof(desc), "vsock:%u:%u", cid, port);
        server_attach(s, m, fd, desc);
}

static void on_vsock_accept(Listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *userdata) {
        Server *s = userdata;
        const struct sockaddr_vm *vm = (const struct sockaddr_vm *) peer;

        if (len < sizeof(struct sockaddr_vm) || peer->sa_family != AF_VSOCK) {
                s->stats.connections_refused[REFUSE_NO_PEER_ADDRESS]++;
                log_warning("Refusing a vsock connection without a peer address.");
                safe_close(fd);
                return;
        }
        server_accept_vsock_peer(s, fd, vm->svm_cid, vm->svm_port);
}

static void on_uds_accept(Listener *l, int fd, const struct sockaddr *peer, socklen_t len, void *userdata) {
        Server *s = userdata;

        /* Whoever can connect to this machine's socket speaks for this machine (and only for it). */
        Machine *m = NULL;
        for (Machine *i = s->registry->machines; i; i = i->machines_next)
                if (i->uds_listener == l) {
                        m = i;
                        break;
                }
        if (!m) {
                safe_close(fd);
                return;
        }
        server_attach(s, m, fd, listener_description(l));
}

static void on_accept_error(Listener *l, int error, void *userdata) {
        log_warning_errno(error, "Failed to accept a connection on %s: %m", listener_description(l));
}

static int server_listen_machine(Server *s, Machine *m) {
        int r;

        if (!m->uds_path)
                return 0;
        r = machine_socket_listen(s->event, m, s->vsock_port, on_uds_accept, on_accept_error, s, &m->uds_listener);
        if (r < 0)
                return r;
        /* Not a reason to refuse the machine: its agent can connect without it. */
        r = notify_server_listen_machine(s->notify, m);
        if (r < 0)
                log_warning_errno(
                        r,
                        "Failed to listen for machine %s on %s_%" PRIu32
                        ", systemd's notifications cannot reach "
                        "tetherd: %m",
                        m->id,
                        m->uds_path,
                        notify_server_port(s->notify));
        return 0;
}

/* ---- the transport the machine manager asks for (manager.h) ---- */

static int transport_listen(Machine *m, void *userdata) {
        return server_listen_machine(userdata, m);
}

static void transport_unlisten(Machine *m, void *userdata) {
        Server *s = userdata;

        m->uds_listener = listener_free(m->uds_listener);
        notify_server_unlisten_machine(s->notify, m);
}

static void transport_disconnect(Machine *m, CloseReason reason, void *userdata) {
        if (m->connection)
                server_close_connection(userdata, m->connection, reason);
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Server *s = userdata;

        log_info("Received %s, shutting down.", strsignal((int) si->ssi_signo));
        server_stop(s);
        return 0;
}

/* Syncs completed on the store's threads: their acks go out from here. */
static int on_syncs_completed(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        store_dispatch_syncs(s->store);
        return 0;
}

#define SERVER_REPAIR_INTERVAL_USEC USEC_PER_SEC
/* Boots repaired per tick: each writes at most UNWRITTEN_BOOT_MAX_BYTES, so the loop is not held long. */
#define SERVER_REPAIRS_PER_TICK 4u

/* A boot whose file misses records a failed write kept out, with its copies in memory, and no connection of its
 * agent to take care of it (session_wants_resync() does while there is one). */
static bool boot_wants_repair_here(const Machine *m, const Boot *b) {
        return file_repair_needed(b) && !unwritten_is_empty(&b->unwritten) && !(m->connected && m->current == b);
}

/* Writes what boot files miss for boots whose agent went away before the file could be written again: copies the
 * boot kept in memory (Boot.unwritten), so that they survive a restart. due: honour each boot's retry schedule
 * (false at shutdown: a last try). */
static void server_repair_boots(Server *s, bool due) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        unsigned repaired = 0;

        if (!s->store || !s->registry || s->registry->unwritten_budget.bytes == 0)
                return;
        for (Machine *m = s->registry->machines; m && repaired < SERVER_REPAIRS_PER_TICK; m = m->machines_next)
                for (size_t i = 0; i < m->n_boots && repaired < SERVER_REPAIRS_PER_TICK; i++) {
                        Boot *b = m->boots[i];
                        uint64_t records = 0;

                        if (!boot_wants_repair_here(m, b) || (due && !file_repair_due(b, now)))
                                continue;
                        repaired++;
                        int r = file_repair(s->store, &s->stats, m, b, &records);
                        LogFields f = { .machine_id = m->id, .request_id = m->request_id };
                        if (r == 0)
                                log_emit(
                                        LOG_NOTICE,
                                        0,
                                        &f,
                                        "The boot file of machine %s (boot %" PRIu64
                                        ") can be written again: wrote the %" PRIu64
                                        " records kept in memory, it holds every record again.",
                                        m->id,
                                        b->index,
                                        records);
                        else if (r > 0)
                                log_emit(
                                        LOG_WARNING,
                                        0,
                                        &f,
                                        "The boot file of machine %s (boot %" PRIu64
                                        ") can be written again, but misses records from seq %" PRIu64
                                        " on that tetherd could not keep: they are lost unless its agent "
                                        "reconnects and resends them.",
                                        m->id,
                                        b->index,
                                        b->unpersisted_seq);
                }
}

static int on_repair_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        Server *s = userdata;

        server_repair_boots(s, true);
        (void) sd_event_source_set_time_relative(src, SERVER_REPAIR_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

/* At exit: what no boot file holds is said, per machine (it is lost unless its agent resends it to the next
 * tetherd: nothing from the hole on was acked). */
static void server_report_unwritten(Server *s) {
        if (!s->store || !s->registry)
                return;
        for (Machine *m = s->registry->machines; m; m = m->machines_next)
                for (size_t i = 0; i < m->n_boots; i++) {
                        const Boot *b = m->boots[i];
                        if (!file_repair_needed(b) || b->unpersisted_seq > b->last_seq)
                                continue;
                        LogFields f = { .machine_id = m->id, .request_id = m->request_id };
                        log_emit(
                                LOG_WARNING,
                                0,
                                &f,
                                "The boot file of machine %s (boot %" PRIu64 ") misses records %" PRIu64 "..%" PRIu64
                                " (it could not be written): they are lost unless its agent resends them to the "
                                "next tetherd (they were not acked).",
                                m->id,
                                b->index,
                                b->unpersisted_seq,
                                b->last_seq);
                }
}

int server_new(const ServerConfig *config, Server **ret) {
        RegistryConfig rc = {
                .node_id = config->node_id,
                .default_service_name = config->service_name,
                .max_machines = config->max_machines,
                .max_boots = config->max_boots,
                .max_events = config->max_events,
                .max_event_bytes = config->max_event_bytes,
                .vsock_port = config->vsock_port,
                .log_memory_bytes = config->log_memory_bytes,
                .unwritten_memory_bytes = config->unwritten_memory_bytes,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        if (rc.log_memory_bytes == 0)
                rc.log_memory_bytes = config->state_dir && *config->state_dir ? LOG_MEMORY_BYTES_DEFAULT_STATE_DIR :
                                                                                LOG_MEMORY_BYTES_DEFAULT;
        int r;

        rc.boot_limits.max_log_bytes = config->max_log_bytes_per_boot;

        _cleanup_(server_freep) Server *s = calloc(1, sizeof(Server));
        if (!s)
                return log_oom();
        s->vsock_port = config->vsock_port;
        s->notify_port = config->notify_port;
        s->api_port = config->api_port;
        s->api_config = config->api_config;
        s->refused_ratelimit = RATELIMIT_INIT(NSEC_PER_SEC, 1);
        if (config->uds_roots && config->uds_roots[0]) {
                size_t n = 0;
                while (config->uds_roots[n])
                        n++;
                if (!(s->uds_roots = calloc(n + 1, sizeof(char *))))
                        return log_oom();
                for (size_t i = 0; i < n; i++) {
                        /* Canonical, without a trailing slash, like the paths it is compared with. */
                        size_t len = strlen(config->uds_roots[i]);
                        while (len > 1 && config->uds_roots[i][len - 1] == '/')
                                len--;
                        if (!(s->uds_roots[i] = strndup(config->uds_roots[i], len)))
                                return log_oom();
                }
        }
        s->vsock_enabled = config->vsock;
        if (config->api_socket && *config->api_socket && !(s->api_socket = strdup(config->api_socket)))
                return log_oom();
        if (config->libvirt_uri) {
#if HAVE_LIBVIRT
                if (!(s->libvirt_uri = strdup(config->libvirt_uri)))
                        return log_oom();
#else
                return log_error_errno(EOPNOTSUPP, "libvirt support is not compiled in (meson -Dlibvirt=enabled).");
#endif
        }

        r = sd_event_default(&s->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = registry_new(&rc, &s->stats, &s->registry);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the registry: %m");

        if (config->state_dir && *config->state_dir) {
                StoreConfig sc = {
                        .dir = config->state_dir,
                        .max_boot_bytes = config->max_disk_bytes_per_boot,
                        .sync = config->sync,
                };
                StoreLoadReport report;

                r = store_open(&sc, &s->stats, &s->store);
                if (r == -EBUSY)
                        return log_error_errno(
                                r,
                                "Another tetherd uses the state directory %s (its lock is held).",
                                config->state_dir);
                if (r < 0)
                        return log_error_errno(r, "Failed to open the state directory %s: %m", config->state_dir);
                r = store_load(s->store, s->registry, &report);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the state directory %s: %m", config->state_dir);
                if (store_sync_fd(s->store) >= 0) {
                        r = sd_event_add_io(
                                s->event, &s->sync_source, store_sync_fd(s->store), EPOLLIN, on_syncs_completed, s);
                        if (r < 0)
                                return log_error_errno(r, "Failed to watch the sync threads: %m");
                }
                r = sd_event_add_time_relative(
                        s->event,
                        &s->repair_timer,
                        CLOCK_MONOTONIC,
                        SERVER_REPAIR_INTERVAL_USEC,
                        0,
                        on_repair_timer,
                        s);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the boot file repair timer: %m");
                log_info(
                        "Loaded %zu machines (%zu skipped), %zu boots, %zu records from %s%s.",
                        report.machines,
                        report.machines_skipped,
                        report.boots,
                        report.records,
                        config->state_dir,
                        report.torn_tails ? " (truncated incomplete tails)" : "");
        } else
                log_notice("No state directory: records are kept in memory only and lost on restart.");

        session_context_init(&s->session_ctx, s->registry, s->store, &s->stats);
        r = notify_server_new(s->event, &s->session_ctx, s->notify_port, &s->notify);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the vmm.notify port: %m");
        s->manager = (Manager) {
                .registry = s->registry,
                .store = s->store,
                .stats = &s->stats,
                .uds_roots = s->uds_roots,
                .vsock_port = s->vsock_port,
                .transport = { .listen = transport_listen,
                               .unlisten = transport_unlisten,
                               .disconnect = transport_disconnect,
                               .userdata = s },
        };
        r = server_setup_otlp(s, config);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Whether the watchdog may be fed now: the HTTP API answered within the last half watchdog period. */
static bool server_watchdog_may_ping(uint64_t last_answer_ns, uint64_t now_ns, uint64_t watchdog_ns) {
        return now_ns < last_answer_ns || now_ns - last_answer_ns <= watchdog_ns / 2;
}

/* The watchdog is fed from a timer, and only while the HTTP API answered tetherd's own probe within the last
 * half period (api-probe.h): a loop that runs while the API does not answer is as stuck, for orchestrators, as
 * one that does not run. */
static int on_watchdog(sd_event_source *src, uint64_t usec, void *userdata) {
        Server *s = userdata;
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        uint64_t last = s->api_probe ? api_probe_last_answer_ns(s->api_probe) : now;

        if (server_watchdog_may_ping(last, now, s->watchdog_ns)) {
                (void) sd_notify(false, "WATCHDOG=1");
                if (s->api_unanswered) {
                        s->api_unanswered = false;
                        log_notice("The HTTP API answers again; feeding the watchdog.");
                }
        } else if (!s->api_unanswered) {
                s->api_unanswered = true;
                log_error(
                        "The HTTP API has not answered tetherd's own probe for %.1f s: no more watchdog pings "
                        "(systemd restarts tetherd).",
                        (double) (now - last) / 1e9);
        }
        (void) sd_event_source_set_time_relative(src, s->watchdog_ns / 4 / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

static int server_setup_watchdog(Server *s) {
        uint64_t usec = 0;
        int r;

        r = sd_watchdog_enabled(false, &usec);
        if (r <= 0)
                return r;
        s->watchdog_ns = usec * NSEC_PER_USEC;
        if (s->watchdog_ns < 4 * NSEC_PER_MSEC)
                return -EINVAL;

        union {
                struct sockaddr sa;
                struct sockaddr_un un;
                struct sockaddr_in in;
        } addr = {};
        socklen_t addrlen = 0;
        if (s->api_socket && strlen(s->api_socket) < sizeof(addr.un.sun_path)) {
                addr.un.sun_family = AF_UNIX;
                strcpy(addr.un.sun_path, s->api_socket);
                addrlen = sizeof(addr.un);
        } else if (s->api_port) {
                addr.in.sin_family = AF_INET;
                addr.in.sin_port = htons(s->api_port);
                addr.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                addrlen = sizeof(addr.in);
        }
        if (addrlen > 0) {
                /* Four probes per watchdog period: two may go unanswered before the pings stop. */
                r = api_probe_new(s->event, &addr.sa, addrlen, s->watchdog_ns / 4, &s->api_probe);
                if (r < 0)
                        return r;
        }
        r = sd_event_add_time_relative(
                s->event, &s->watchdog_timer, CLOCK_MONOTONIC, s->watchdog_ns / 4 / NSEC_PER_USEC, 0, on_watchdog, s);
        if (r < 0)
                return r;
        (void) sd_notify(false, "WATCHDOG=1");
        return 0;
}

int server_start(Server *s) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        r = sd_event_add_signal(s->event, &s->sigterm, SIGTERM, on_signal, s);
        if (r >= 0)
                r = sd_event_add_signal(s->event, &s->sigint, SIGINT, on_signal, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");

        if (s->vsock_enabled) {
                r = listener_new_vsock(
                        s->event, s->vsock_port, on_vsock_accept, on_accept_error, s, &s->vsock_listener);
                if (r == -EAFNOSUPPORT)
                        log_warning(
                                "AF_VSOCK is not available on this host (no vhost_vsock module?): continuing "
                                "with hybrid vsock Unix sockets only.");
                else if (r < 0)
                        return log_error_errno(r, "Failed to listen on vsock port %u: %m", s->vsock_port);
                else {
                        s->stats.vsock_listening = true;
                        log_info("Listening on vsock port %u.", s->vsock_port);
                }
                r = notify_server_listen_vsock(s->notify);
                if (r < 0 && r != -EAFNOSUPPORT)
                        return log_error_errno(r, "Failed to listen on vsock port %u (vmm.notify): %m", s->notify_port);
                if (r >= 0 && s->notify_port > 0 && s->stats.vsock_listening)
                        log_info(
                                "Listening for systemd's notifications (vmm.notify) on vsock port %u.", s->notify_port);
        }

        for (Machine *m = s->registry->machines; m; m = m->machines_next) {
                r = server_listen_machine(s, m);
                if (r < 0)
                        log_warning_errno(
                                r,
                                "Failed to listen for machine %s on %s_%u, its agent cannot connect: %m",
                                m->id,
                                m->uds_path,
                                s->vsock_port);
        }

        r = api_new(&s->manager, s->event, &s->api_config, &s->api);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the HTTP API: %m");
        const Metrics *mt = api_metrics(s->api);
        s->otlp_histograms = (OtlpFleetHistograms) {
                .kernel = &mt->phase[METRICS_PHASE_KERNEL],
                .init = &mt->phase[METRICS_PHASE_INIT],
                .workload_start = &mt->phase[METRICS_PHASE_WORKLOAD_START],
                .phase = &mt->phase[METRICS_PHASE_OTHER],
                .kernel_to_ready = &mt->kernel_to_ready,
                .init_to_ready = &mt->init_to_ready,
                .registered_to_ready = &mt->registered_to_ready,
                .ready_delivery = &mt->ready_delivery,
        };
        otlp_exporter_set_fleet_histograms(s->otlp, &s->otlp_histograms);
        if (s->api_socket) {
                r = api_listen_unix(s->api, s->api_socket);
                if (r < 0)
                        return log_error_errno(
                                r,
                                r == -EADDRINUSE ? "Another process (another tetherd?) serves the API socket %s." :
                                                   "Failed to listen on the API socket %s: %m",
                                s->api_socket);
                log_info("HTTP API on unix:%s.", s->api_socket);
        }
        if (s->api_port) {
                r = api_listen_tcp(s->api, s->api_port);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on 127.0.0.1:%u: %m", s->api_port);
                log_info("HTTP API on http://127.0.0.1:%u.", s->api_port);
        }

#if HAVE_LIBVIRT
        if (s->libvirt_uri) {
                /* libvirt's event implementation is the process's, registered here once, before any connection
                 * (as libvirt requires). Connected and re-synchronised before READY=1 when libvirt answers;
                 * retried otherwise. */
                r = libvirt_event_bridge_register(s->event);
                if (r < 0)
                        return log_error_errno(r, "Failed to register libvirt's event loop: %m");
                r = libvirt_watch_new(&s->manager, s->event, s->libvirt_uri, &s->libvirt);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the libvirt watcher: %m");
        }
#endif

        r = server_setup_watchdog(s);
        if (r < 0)
                log_warning_errno(r, "Failed to set up the watchdog: %m");

        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving %zu machines.", s->registry->n_machines);
        return 0;
}

void server_stop(Server *s) {
        if (s->stopping)
                return;
        s->stopping = true;
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down.");
#if HAVE_LIBVIRT
        /* No more registrations or lifecycle changes from libvirt while going down. */
        s->libvirt = libvirt_watch_free(s->libvirt);
#endif

        /* Whatever was stored is synced and acked before the connections go: less to resend after restart. */
        while (s->connections) {
                Connection *c = s->connections;
                connection_flush(c);
                server_close_connection(s, c, CLOSE_SHUTDOWN);
        }
        if (s->api)
                api_shutdown(s->api);
        /* After the connections: what they stored last is exported (or spooled) too. */
        otlp_exporter_shutdown(s->otlp);
        (void) sd_event_exit(s->event, 0);
}

int server_run(Server *s) {
        int r = sd_event_loop(s->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return r;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
#if HAVE_LIBVIRT
        s->libvirt = libvirt_watch_free(s->libvirt);
#endif
        free(s->libvirt_uri);
        while (s->connections)
                server_close_connection(s, s->connections, CLOSE_SHUTDOWN);
        s->watchdog_timer = sd_event_source_disable_unref(s->watchdog_timer);
        s->api_probe = api_probe_free(s->api_probe);
        otlp_exporter_set_fleet_histograms(s->otlp, NULL);
        s->api = api_free(s->api);
        s->otlp = otlp_exporter_free(s->otlp);
        s->notify = notify_server_free(s->notify);
        if (s->registry)
                for (Machine *m = s->registry->machines; m; m = m->machines_next)
                        m->uds_listener = listener_free(m->uds_listener);
        s->vsock_listener = listener_free(s->vsock_listener);
        s->stats.vsock_listening = false;
        /* A last try to write what boot files miss, then what is still missing is said. */
        s->repair_timer = sd_event_source_disable_unref(s->repair_timer);
        server_repair_boots(s, false);
        server_report_unwritten(s);
        /* Before the registry: the store detaches its files from the boots the registry frees. */
        s->sync_source = sd_event_source_disable_unref(s->sync_source);
        s->store = store_free(s->store);
        s->registry = registry_free(s->registry);
        sd_event_source_disable_unref(s->sigterm);
        sd_event_source_disable_unref(s->sigint);
        sd_event_unref(s->event);
        free(s->api_socket);
        for (char **root = s->uds_roots; root && *root; root++)
                free(*root);
        free(s->uds_roots);
        free(s);
        return NULL;
}

sd_event *server_event(Server *s) {
        return s->event;
}

Manager *server_manager(Server *s) {
        return &s->manager;
}

const SessionContext *server_session_context(Server *s) {
        return &s->session_ctx;
}

const Stats *server_stats(Server *s) {
        return &s->stats;
}

LibvirtWatch *server_libvirt(Server *s) {
        return s->libvirt;
}
