/* SPDX-License-Identifier: MIT */
/* Room vsock: tether-vsock, the vhost-user-vsock backend; guest ports to hybrid vsock sockets. */
#include "iov-util.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

size_t iov_length(const struct iovec *iov, size_t n) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += iov[i].iov_len;
        return total;
}

/* Copies between the iovec, from offset on, and buf: into buf, or out of it with to_iov. */
static size_t iov_copy(const struct iovec *iov, size_t n, size_t offset, uint8_t *buf, size_t len, bool to_iov) {
        size_t done = 0;

        for (size_t i = 0; i < n && done < len; i++) {
                if (offset >= iov[i].iov_len) {
                        offset -= iov[i].iov_len;
                        continue;
                }
                size_t k = iov[i].iov_len - offset;
                if (k > len - done)
                        k = len - done;
                uint8_t *p = (uint8_t *) iov[i].iov_base + offset;
                if (to_iov)
                        memcpy(p, buf + done, k);
                else
                        memcpy(buf + done, p, k);
                done += k;
                offset = 0;
        }
        return done;
}

size_t iov_to_buf(const struct iovec *iov, size_t n, size_t offset, void *buf, size_t len) {
        return iov_copy(iov, n, offset, buf, len, false);
}

size_t iov_from_buf(const struct iovec *iov, size_t n, size_t offset, const void *buf, size_t len) {
        return iov_copy(iov, n, offset, (uint8_t *) buf, len, true); /* buf is only read when to_iov */
}

size_t iov_slice(const struct iovec *iov, size_t n, size_t offset, size_t max_len, struct iovec *out, size_t out_max) {
        size_t used = 0;

        for (size_t i = 0; i < n && max_len > 0 && used < out_max; i++) {
                if (offset >= iov[i].iov_len) {
                        offset -= iov[i].iov_len;
                        continue;
                }
                size_t k = iov[i].iov_len - offset;
                if (k > max_len)
                        k = max_len;
                out[used++] = (struct iovec) { (uint8_t *) iov[i].iov_base + offset, k };
                max_len -= k;
                offset = 0;
        }
        return used;
}
