/* SPDX-License-Identifier: MIT */
/* Room libvirt: the libvirt watcher; registers and retires machines through core's manager. */
#pragma once

/* tetherd's libvirt watcher (docs/libvirt.md): one read-only connection to a libvirt URI, driven by tetherd's
 * sd-event loop (libvirt-event-bridge), with keepalive (5 s, 3 missed). Domains with a vsock device or tether
 * metadata are registered as machines of source "libvirt" (libvirt-metadata), kept in step with domain lifecycle
 * and metadata events, and removed when their domain is undefined (or a transient domain stops). Lifecycle
 * events become registry events ("domain.started", ...), the host-side start of the next boot, and states
 * (a VM that stops before ready answers the ready waiters at once). When the connection closes (libvirtd
 * restarted) it reconnects with exponential backoff (0.5 s doubling to 30 s) and re-synchronises the registry
 * with the live domain list: machines are added, updated and removed to match, never duplicated. Machines
 * registered through the API are never touched. Logs through jsonlog, once where it decides something. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "manager.h"

typedef struct LibvirtWatch LibvirtWatch;

#define LIBVIRT_WATCH_BACKOFF_MIN_NS (500 * UINT64_C(1000000))
#define LIBVIRT_WATCH_BACKOFF_MAX_NS (30 * UINT64_C(1000000000))
#define LIBVIRT_WATCH_KEEPALIVE_INTERVAL_S 5
#define LIBVIRT_WATCH_KEEPALIVE_COUNT 3u

/* Connects at once, on the loop e, whose libvirt event implementation the caller registered first
 * (libvirt_event_bridge_register(): process-wide, so the process's top level does it); machines are registered,
 * updated and deleted through manager; a failed connection is retried with
 * backoff (logged). Returns 0 or -ENOMEM. */
int libvirt_watch_new(Manager *manager, sd_event *e, const char *uri, LibvirtWatch **ret);
LibvirtWatch *libvirt_watch_free(LibvirtWatch *w);

/* Drops the connection as if libvirtd had gone away and connects again at once (then re-synchronises). What the
 * close callback leads to, minus the backoff; for tests. Not to be called from a libvirt callback. */
void libvirt_watch_reconnect(LibvirtWatch *w);

bool libvirt_watch_connected(const LibvirtWatch *w);
/* Successful connections so far (1 after the first). */
unsigned libvirt_watch_connections(const LibvirtWatch *w);
