/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#pragma once

/* A machine's hybrid vsock Unix socket for one port: "<uds_path>_<port>", with the owner, group and mode its
 * registration asks for. The agent's port and the vmm.notify port each have one. */

#include <stdint.h>
#include <systemd/sd-event.h>

#include "listener.h"
#include "machine.h"

/* Returns 0 or -errno (see listener_new_unix()). */
int machine_socket_listen(
        sd_event *e,
        const Machine *m,
        uint32_t port,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret);
