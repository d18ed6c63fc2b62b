/* SPDX-License-Identifier: MIT */
/* Room libvirt: the libvirt watcher; registers and retires machines through core's manager. */
#pragma once

/* libvirt's event loop on tetherd's sd-event loop: virEventRegisterImpl() with handle callbacks mapped to
 * sd_event_add_io() and timeout callbacks to sd_event_add_time(). libvirt needs it registered before the first
 * virConnectOpen(); it drives connection I/O, keepalive and domain event dispatch. libvirt's free functions
 * (the "ff" of a handle or timeout) run from an sd-event defer source after the remove call returned, never
 * inside it (libvirt may hold locks there).
 *
 * The implementation is process-wide (libvirt has one): the first call registers it on that loop; later calls
 * with the same loop are no-ops, with another loop -EBUSY. It stays registered until the process exits. Never
 * logs; libvirt's own error printing is turned off (callers read virGetLastErrorMessage()). */

#include <systemd/sd-event.h>

/* Returns 0, -EBUSY (registered on another loop) or -ENOMEM. */
int libvirt_event_bridge_register(sd_event *e);

/* Handles and timeouts currently registered by libvirt (tests: nothing leaks after a connection closes). */
unsigned libvirt_event_bridge_handles(void);
unsigned libvirt_event_bridge_timeouts(void);
