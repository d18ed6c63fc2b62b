/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#include "machine-socket.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"

int machine_socket_listen(
        sd_event *e,
        const Machine *m,
        uint32_t port,
        ListenerAcceptHandler on_accept,
        ListenerErrorHandler on_error,
        void *userdata,
        Listener **ret) {
        _cleanup_free_ char *path = NULL;
        Listener *l;
        int r;

        if (asprintf(&path, "%s_%" PRIu32, m->uds_path, port) < 0)
                return -ENOMEM;
        r = listener_new_unix(
                e, path, m->socket_uid_set ? (uid_t) m->socket_uid : (uid_t) -1, on_accept, on_error, userdata, &l);
        if (r < 0)
                return r;
        if (m->socket_uid_set || m->socket_gid_set || m->socket_mode) {
                r = listener_set_unix_owner(
                        l,
                        m->socket_uid_set ? (uid_t) m->socket_uid : (uid_t) -1,
                        m->socket_gid_set ? (gid_t) m->socket_gid : (gid_t) -1,
                        (mode_t) m->socket_mode);
                if (r < 0) {
                        listener_free(l);
                        return r;
                }
        }
        *ret = l;
        return 0;
}
