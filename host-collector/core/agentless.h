/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

/* Agentless boots: what systemd's own notifications (vmm-notify.h) say about a guest with no tether-agent,
 * turned into the records an agent would have sent, and applied through the same path (a local session,
 * session.h): stored in the boot file, the machine's state, events, spans, the long-poll answers, OTLP.
 *
 * - READY=1 → a milestone "systemd.ready" and a Ready record with source "systemd" (detail: STATUS=).
 * - X_SYSTEMD_UNIT_ACTIVE=u → a milestone "u"; X_SYSTEMD_UNIT_INACTIVE=u → a milestone "inactive:u".
 * - EXIT_STATUS= / X_SYSTEMD_SHUTDOWN= → a milestone "systemd.shutdown" and an Exit record (code: the exit
 *   status; reason: "systemd: <kind>").
 * - anything else it knows (STATUS=, X_SYSTEMD_HOSTNAME=, X_SYSTEMD_MACHINE_ID= alone) → a milestone
 *   "systemd.notify". Every milestone carries the message's STATUS, hostname and machine id as attributes
 *   (systemd.status, host.name, systemd.machine_id): informational only, identity is the transport's.
 * Times are the host's receive times (the boot's guest clock is "since its first message").
 *
 * A boot of this kind has a boot id starting with AGENTLESS_BOOT_ID_PREFIX. A message continues the machine's
 * current agentless boot unless that boot exited, the host started the VM again (libvirt), or the message repeats
 * what a boot says once (once the boot is ready: READY=1, PID 1's X_SYSTEMD_HOSTNAME/X_SYSTEMD_MACHINE_ID, or the
 * activation of a unit whose last milestone says it is active, i.e. not stopped since; before ready a unit is
 * reached twice in one boot, the initrd's targets and then the root's): then a new agentless boot starts. While an
 * agent is connected, or the boot an agent reported has not exited, that boot is the agent's: systemd's messages are
 * only emitted as "systemd_notify" events. */

#include "session.h"
#include "vmm-notify.h"

#define AGENTLESS_BOOT_ID_PREFIX "vmm-notify-"
#define AGENTLESS_READY_SOURCE "systemd"
#define AGENTLESS_INACTIVE_PREFIX "inactive:"

bool boot_is_agentless(const Boot *b);

/* Applies one message for machine m (the transport's). Returns 0 (applied to an agentless boot), 1 (an agent's
 * boot is current: emitted as an event only), -ENOMEM, or -EPROTO (a record the session refused; counted there). */
int agentless_apply(const SessionContext *ctx, Machine *m, const VmmNotify *n);
