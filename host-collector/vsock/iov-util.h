/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#pragma once

/* Scatter-gather helpers over the buffers of a descriptor chain. A virtio-vsock packet's header and payload may be
 * split across descriptors in any way, so everything reads and writes through these. */

#include <stddef.h>
#include <sys/uio.h>

/* Total bytes of the first n elements. */
size_t iov_length(const struct iovec *iov, size_t n);

/* Copies up to len bytes starting at byte offset of the iovec out to buf / in from buf; returns the bytes copied
 * (less than len when the iovec ends first). */
size_t iov_to_buf(const struct iovec *iov, size_t n, size_t offset, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, size_t n, size_t offset, const void *buf, size_t len);

/* Describes bytes [offset, offset + max_len) of iov in out (at most out_max elements, empty ones skipped); returns
 * the number of elements used. */
size_t iov_slice(const struct iovec *iov, size_t n, size_t offset, size_t max_len, struct iovec *out, size_t out_max);
