/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#pragma once

/* tetherd itself: one sd-event loop tying together the registry, the store, the vsock and per-machine Unix
 * listeners, agent connections and the HTTP API; signals, sd_notify and the watchdog. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "api.h"
#include "macro.h"
#include "manager.h"
#include "notify-server.h"
#include "otlp-exporter.h"
#include "session.h"
#include "stats.h"

#define TETHER_VSOCK_PORT_DEFAULT 4817u
#define TETHERD_API_SOCKET_DEFAULT "/run/tether/api.sock"
#define TETHERD_STATE_DIR_DEFAULT "/var/lib/tether"

typedef struct ServerConfig {
        const char *api_socket; /* NULL or "": no Unix API socket */
        uint16_t api_port;      /* 0: no TCP API */
        ApiConfig api_config;
        uint32_t vsock_port;
        uint32_t notify_port; /* vmm.notify: systemd's own notifications (docs/agentless.md), 0: off */
        bool vsock;
        const char *state_dir; /* NULL or "": no persistence */
        const char *node_id;
        const char *service_name;
        uint64_t max_log_bytes_per_boot;  /* in memory: a boot's share of log_memory_bytes */
        uint64_t log_memory_bytes;        /* in memory: every boot's log data together */
        uint64_t unwritten_memory_bytes;  /* in memory: copies of what boot files miss after failed writes */
        uint64_t max_disk_bytes_per_boot; /* a boot file */
        size_t max_boots;
        size_t max_machines;
        size_t max_events; /* the event log (/v1/events) */
        size_t max_event_bytes;
        bool sync;               /* fdatasync before acks */
        bool otlp;               /* export at all (--otlp=off) */
        OtlpConfig otlp_config;  /* file_path and spool_dir NULL: <state_dir>/otlp.jsonl and <state_dir>/otlp-spool */
        bool otlp_no_file;       /* --otlp-file "" */
        bool otlp_no_spool;      /* --otlp-spool-dir "" */
        const char *libvirt_uri; /* NULL: no libvirt watcher (docs/libvirt.md) */
        const char *const *uds_roots; /* NULL-terminated; NULL or empty: a uds_path may be anywhere */
} ServerConfig;

void server_config_init(ServerConfig *c);

typedef struct Server Server;
typedef struct LibvirtWatch LibvirtWatch;

/* Sets up everything but listening: the loop, registry, store (and its replay). Returns 0 or -errno (logged). */
int server_new(const ServerConfig *config, Server **ret);
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free);

/* Opens the listeners and the API, then tells systemd READY=1. Returns 0 or -errno (logged). */
int server_start(Server *s);
/* Runs the loop until SIGTERM/SIGINT. Returns the exit code. */
int server_run(Server *s);
/* Flushes acks, closes connections and the API, and leaves the loop. */
void server_stop(Server *s);

/* A connection accepted on the AF_VSOCK listener from guest CID cid, source port port (the listener reads them
 * from the peer address): attached to the machine registered with that CID, or refused (counted, closed). Takes
 * ownership of fd (non-blocking, close-on-exec). Tests inject connections here with a CID of their choosing. */
void server_accept_vsock_peer(Server *s, int fd, uint32_t cid, uint32_t port);

/* For tests and fuzz targets, which drive the loop and register machines themselves. */
sd_event *server_event(Server *s);
Manager *server_manager(Server *s);
const SessionContext *server_session_context(Server *s);
const Stats *server_stats(Server *s);
LibvirtWatch *server_libvirt(Server *s); /* NULL without --libvirt-uri */
