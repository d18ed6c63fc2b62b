/* SPDX-License-Identifier: MIT */
#pragma once

/* tether-agent-systemd's plugin (agent-plugin.h), linked only into that variant (glibc, libsystemd):
 *  - boot phases from the Manager's timestamps (systemd-boot.h), the rest when StartupFinished arrives;
 *  - unit activations and failures from PropertiesChanged signals (systemd-units.h), never polled;
 *  - readiness: ready=boot-finished, unit:NAME, target:NAME;
 * over systemd's private bus (/run/systemd/private, there from the start of PID 1), else the system bus; a lost
 * connection (daemon-reexec) is made again. Logs where it decides. */

#include "agent-plugin.h"
