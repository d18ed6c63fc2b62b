/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* The connection table of one VM and the hybrid-vsock mapping (Firecracker's, also Cloud Hypervisor's):
 *
 *   guest connects to CID 2 port P      -> we connect to the Unix socket <uds_path>_<P>; nobody there: RST
 *   host client connects to <uds_path>  -> it writes "CONNECT <P>\n"; we send REQUEST to guest port P from a local
 *                                          port >= 2^30; RESPONSE -> "OK <local port>\n" to the client; RST -> close
 *
 * then bytes flow both ways with virtio-vsock credit flow control. Guest->host bytes go straight to the Unix
 * socket; what it does not take is buffered, at most the buf_alloc we advertised (fwd_cnt only advances for
 * bytes the Unix socket took), so memory is bounded. Host->guest bytes are read from the Unix socket directly
 * into the guest's rx buffer, only when the guest has credit and gave us a buffer: a socket is not read again
 * until its previous readiness was served, so with no rx buffers nothing is read at all.
 *
 * The device feeds guest packets with vsock_mux_guest_packet() (after vsock_packet_check()) and asks for packets
 * to put into rx buffers with vsock_mux_fill_rx(); the mux calls wake() when it has something for the guest. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "vsock-packet.h"

#define VSOCK_MUX_MAX_CONNECTIONS_DEFAULT 1024u
#define VSOCK_MUX_MAX_CLIENTS_DEFAULT 64u
#define VSOCK_MUX_BUF_ALLOC_DEFAULT (64u * 1024u)
/* Longest "CONNECT <port>\n" line accepted, newline included. */
#define VSOCK_MUX_MAX_LINE 64u
/* Host ports of host-initiated connections start here (Firecracker's choice). */
#define VSOCK_MUX_LOCAL_PORT_FIRST (UINT32_C(1) << 30)
/* Connection-less RSTs waiting for an rx buffer; when full, the device stops taking tx packets. */
#define VSOCK_MUX_RST_QUEUE 128u
/* A host client that sends no CONNECT line, or a guest that does not answer REQUEST, within this is closed. */
#define VSOCK_MUX_CONNECT_TIMEOUT_NS (5 * NSEC_PER_SEC)

typedef struct VsockStats {
        uint64_t tx_packets; /* guest -> host, accepted */
        uint64_t rx_packets; /* host -> guest */
        uint64_t tx_dropped[_VSOCK_VERDICT_MAX];
        uint64_t tx_bytes, rx_bytes; /* payload */
        uint64_t rst_sent, rst_received;
        uint64_t unknown_connection; /* packets for no connection, answered with RST */
        uint64_t protocol_errors;    /* ops a connection's state does not allow, answered with RST */
        uint64_t credit_violations;  /* guest sent beyond the credit we gave: RST */
        uint64_t connect_refused;    /* nobody listening at <uds_path>_<P> */
        uint64_t connections_limit;  /* refused: the table was full */
        uint64_t connections_opened, connections_closed;
        uint64_t clients_rejected; /* host clients closed before CONNECT completed: bad line, too many, timeout */
        uint64_t connect_timeouts;
        uint64_t broken_rings;
        uint64_t vhost_user_errors; /* requests that failed */
} VsockStats;

typedef struct VsockMuxConfig {
        uint64_t guest_cid;
        const char *uds_path;
        const char *ident; /* for log lines */
        uint32_t max_connections;
        uint32_t max_clients;
        uint32_t buf_alloc;
} VsockMuxConfig;

typedef struct VsockMux VsockMux;
typedef void (*VsockMuxWake)(void *userdata);

int vsock_mux_new(
        sd_event *e,
        const VsockMuxConfig *config,
        VsockStats *stats,
        VsockMuxWake wake,
        void *userdata,
        VsockMux **ret);
VsockMux *vsock_mux_free(VsockMux *m);

/* Listens on uds_path for host clients. */
int vsock_mux_listen(VsockMux *m);

/* Drops every connection and pending client without telling the guest (it is being reset). */
void vsock_mux_reset(VsockMux *m);

/* A packet from the guest that passed vsock_packet_check(); payload is its h->len bytes. */
void vsock_mux_guest_packet(VsockMux *m, const VsockHdr *h, const struct iovec *payload, size_t n_payload);

/* A packet from the guest that failed a check that wants a RST: resets its connection, if any. */
void vsock_mux_guest_reject(VsockMux *m, const VsockHdr *h);

/* Whether the queue of connection-less RSTs is full: the device should stop taking tx packets for now. */
bool vsock_mux_tx_blocked(const VsockMux *m);

/* Whether something waits for an rx buffer. */
bool vsock_mux_has_rx(const VsockMux *m);

/* Writes the next packet for the guest into the writable buffers iov (at least VSOCK_HDR_SIZE bytes). Returns 1
 * with the bytes written in *ret_len, 0 when there is nothing to send. */
int vsock_mux_fill_rx(VsockMux *m, const struct iovec *iov, size_t n, uint32_t *ret_len);

size_t vsock_mux_n_connections(const VsockMux *m);
