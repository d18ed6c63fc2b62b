/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* The backend side of the vhost-user protocol (QEMU docs/interop/vhost-user.rst): message I/O over the Unix
 * socket (header, payload, fds by SCM_RIGHTS) and the handling of the messages a virtio device backend needs -
 * features, memory table, vrings, config space. Device-independent: the vsock device reads the rings and fds it
 * leaves in VhostUserDev. No logging: the caller logs what vhost_user_dev_handle() decided. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest-memory.h"
#include "vring.h"

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_FLAG_REPLY (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)
#define VHOST_USER_HDR_SIZE 12u
/* Larger than any message we accept (memory table with 8 regions: 264 bytes; config: 12 + 256). */
#define VHOST_USER_MAX_PAYLOAD 4096u
#define VHOST_USER_MAX_FDS GUEST_MEMORY_MAX_REGIONS
#define VHOST_USER_MAX_CONFIG 256u
#define VHOST_USER_MAX_QUEUES 8u

/* Feature bits that are vhost-user's own (not in the kernel's uapi headers). */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9

/* Payload of SET_VRING_KICK / CALL / ERR: the index in the low bits, NOFD when no fd came with it. */
#define VHOST_USER_VRING_INDEX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

typedef enum VhostUserRequest {
        VHOST_USER_GET_FEATURES = 1,
        VHOST_USER_SET_FEATURES = 2,
        VHOST_USER_SET_OWNER = 3,
        VHOST_USER_RESET_OWNER = 4,
        VHOST_USER_SET_MEM_TABLE = 5,
        VHOST_USER_SET_LOG_BASE = 6,
        VHOST_USER_SET_LOG_FD = 7,
        VHOST_USER_SET_VRING_NUM = 8,
        VHOST_USER_SET_VRING_ADDR = 9,
        VHOST_USER_SET_VRING_BASE = 10,
        VHOST_USER_GET_VRING_BASE = 11,
        VHOST_USER_SET_VRING_KICK = 12,
        VHOST_USER_SET_VRING_CALL = 13,
        VHOST_USER_SET_VRING_ERR = 14,
        VHOST_USER_GET_PROTOCOL_FEATURES = 15,
        VHOST_USER_SET_PROTOCOL_FEATURES = 16,
        VHOST_USER_GET_QUEUE_NUM = 17,
        VHOST_USER_SET_VRING_ENABLE = 18,
        VHOST_USER_GET_CONFIG = 24,
        VHOST_USER_SET_CONFIG = 25,
} VhostUserRequest;

/* One message. The wire header is 12 bytes followed directly by size bytes of payload. */
typedef struct VhostUserMsg {
        uint32_t request;
        uint32_t flags;
        uint32_t size;
        uint8_t payload[VHOST_USER_MAX_PAYLOAD] __attribute__((aligned(8)));
} VhostUserMsg;

/* Wire layout of one SET_MEM_TABLE region (little-endian like everything here: the frontend is on this host). */
typedef struct VhostUserMemRegion {
        uint64_t guest_phys_addr;
        uint64_t memory_size;
        uint64_t userspace_addr;
        uint64_t mmap_offset;
} VhostUserMemRegion;

typedef struct VhostUserDev {
        /* What the device offers. */
        uint64_t features;
        uint64_t protocol_features;
        unsigned n_queues;
        const uint8_t *config; /* device config space, read-only here */
        size_t config_size;

        /* What the frontend set. */
        uint64_t acked_features;
        uint64_t acked_protocol_features;
        GuestMemory mem;
        Vring vrings[VHOST_USER_MAX_QUEUES];
        int kick_fds[VHOST_USER_MAX_QUEUES];
        int call_fds[VHOST_USER_MAX_QUEUES];
} VhostUserDev;

/* What the loop must do after a message. */
typedef enum VhostUserChange {
        VHOST_USER_CHANGE_KICK = 1u << 0,    /* a kick fd was replaced: re-create its io source */
        VHOST_USER_CHANGE_RINGS = 1u << 1,   /* a ring started, was enabled or re-mapped: process it */
        VHOST_USER_CHANGE_STOPPED = 1u << 2, /* a ring was stopped (GET_VRING_BASE) or the owner reset */
} VhostUserChange;

void vhost_user_dev_init(
        VhostUserDev *d,
        uint64_t features,
        uint64_t protocol_features,
        unsigned n_queues,
        const uint8_t *config,
        size_t config_size);
/* Closes fds, unmaps memory, frees rings; d can be initialized again. */
void vhost_user_dev_done(VhostUserDev *d);
/* Back to the state of a fresh connection (keeps what the device offers). */
void vhost_user_dev_reset(VhostUserDev *d);

/* Handles one message; takes ownership of fds[0..n_fds) (kept or closed). Fills *reply and returns 1 when a reply
 * must be sent, 0 when not; the request's own result (0 or -errno: what was wrong with it) goes to *ret_result.
 * *ret_changes gets VhostUserChange bits. Returns -EBADMSG for a message so malformed that the connection should
 * be dropped (the frontend is confused). */
int vhost_user_dev_handle(
        VhostUserDev *d,
        const VhostUserMsg *msg,
        int *fds,
        size_t n_fds,
        VhostUserMsg *reply,
        int *ret_result,
        unsigned *ret_changes);

/* Receives one message from a non-blocking socket. 1 with *ret and fds filled, 0 at EOF, -EAGAIN when nothing is
 * there yet, -EBADMSG for a malformed header, -errno otherwise. The payload is waited for (1 s) once the header
 * came: the frontend sends a message in one go. Received fds are O_CLOEXEC; on failure none are left open. */
int vhost_user_recv(int fd, VhostUserMsg *ret, int fds[VHOST_USER_MAX_FDS], size_t *ret_n_fds);

/* Sends one message (header + size bytes of payload) with n_fds fds attached. */
int vhost_user_send(int fd, const VhostUserMsg *msg, const int *fds, size_t n_fds);

const char *vhost_user_request_to_string(uint32_t request);
