/* SPDX-License-Identifier: MIT */
#include "iov-util.h"

#include <stdint.h>
#include <string.h>

size_t iov_length(const struct iovec *iov, size_t n) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += iov[i].iov_len;
        return total;
}

size_t iov_to_buf(const struct iovec *iov, size_t n, size_t offset, void *buf, size_t len) {
        size_t done = 0;

        for (size_t i = 0; i < n && done < len; i++) {
                if (offset >= iov[i].iov_len) {
                        offset -= iov[i].iov_len;
                        continue;
                }
                size_t k = iov[i].iov_len - offset;
                if (k > len - done)
                        k = len - done;
                memcpy((uint8_t *) buf + done, (const uint8_t *) iov[i].iov_base + offset, k);
                done += k;
                offset = 0;
        }
        return done;
}

size_t iov_from_buf(const struct iovec *iov, size_t n, size_t offset, const void *buf, size_t len) {
        size_t done = 0;

        for (size_t i = 0; i < n && done < len; i++) {
                if (offset >= iov[i].iov_len) {
                        offset -= iov[i].iov_len;
                        continue;
                }
                size_t k = iov[i].iov_len - offset;
                if (k > len - done)
                        k = len - done;
                memcpy((uint8_t *) iov[i].iov_base + offset, (const uint8_t *) buf + done, k);
                done += k;
                offset = 0;
        }
        return done;
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
