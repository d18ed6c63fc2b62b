/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* One VM's vhost-user-vsock device on an sd-event loop: the vhost-user connection from the frontend (QEMU), the
 * kick eventfds of the three queues (rx 0, tx 1, event 2), the processing of the tx and rx rings, and the
 * connection mux (vsock-mux.h). The guest's CID is served as the device config (struct virtio_vsock_config).
 *
 * A ring the guest breaks (vring.h) is logged once and not processed until the frontend sets it up again; the
 * device and the other VMs' backends go on. Packets that fail vsock_packet_check() are dropped and counted (the
 * first of each kind is logged at warning level, the rest at debug level). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "vsock-mux.h"

#define VSOCK_QUEUE_RX 0u
#define VSOCK_QUEUE_TX 1u
#define VSOCK_QUEUE_EVENT 2u
#define VSOCK_NUM_QUEUES 3u

typedef struct VsockDeviceConfig {
        uint64_t guest_cid; /* >= 3 */
        const char *uds_path;
        uint32_t max_connections; /* 0: VSOCK_MUX_MAX_CONNECTIONS_DEFAULT */
        uint32_t max_clients;     /* 0: VSOCK_MUX_MAX_CLIENTS_DEFAULT */
        uint32_t buf_alloc;       /* 0: VSOCK_MUX_BUF_ALLOC_DEFAULT */
        bool exit_on_disconnect;  /* end the loop when the frontend goes away, instead of waiting for another */
} VsockDeviceConfig;

typedef struct VsockDevice VsockDevice;

int vsock_device_new(sd_event *e, const VsockDeviceConfig *config, VsockDevice **ret);
VsockDevice *vsock_device_free(VsockDevice *d);

/* Listens for the frontend on path (one at a time; the socket is created 0600, a stale one replaced). */
int vsock_device_listen_vhost(VsockDevice *d, const char *path);
/* Listens for host clients on uds_path. */
int vsock_device_listen_uds(VsockDevice *d);
/* Takes a connected frontend socket (tests; an accepted connection). -EBUSY when one is attached already. */
int vsock_device_attach(VsockDevice *d, int fd);


const VsockStats *vsock_device_get_stats(const VsockDevice *d);
/* Why the guest broke queue q, or NULL. */
const char *vsock_device_broken(const VsockDevice *d, unsigned q);
bool vsock_device_attached(const VsockDevice *d);
size_t vsock_device_n_connections(const VsockDevice *d);
const char *vsock_device_ident(const VsockDevice *d);
