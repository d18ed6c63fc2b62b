/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "outqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void out_queue_init(OutQueue *q, size_t max) {
        *q = (OutQueue) { .max = max };
}

void out_queue_done(OutQueue *q) {
        free(q->buf);
        *q = (OutQueue) { .max = q->max };
}

int out_queue_append(OutQueue *q, const void *data, size_t n) {
        size_t used = q->end - q->start;

        if (n > q->max || used > q->max - n)
                return -ENOBUFS;
        if (q->start > 0 && q->end + n > q->capacity) {
                memmove(q->buf, q->buf + q->start, used);
                q->start = 0;
                q->end = used;
        }
        if (q->end + n > q->capacity) {
                size_t cap = q->capacity ? q->capacity : 256;
                while (cap < q->end + n)
                        cap *= 2;
                uint8_t *b = realloc(q->buf, cap);
                if (!b)
                        return -ENOMEM;
                q->buf = b;
                q->capacity = cap;
        }
        memcpy(q->buf + q->end, data, n);
        q->end += n;
        return 0;
}

void out_queue_consume(OutQueue *q, size_t n) {
        q->start += n;
        if (q->start >= q->end)
                q->start = q->end = 0;
}

int out_queue_flush(OutQueue *q, int fd) {
        while (out_queue_size(q) > 0) {
                /* MSG_NOSIGNAL: a guest that hung up must not kill tetherd with SIGPIPE. */
                ssize_t k = send(fd, out_queue_data(q), out_queue_size(q), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        return -errno;
                }
                out_queue_consume(q, (size_t) k);
        }
        return 1;
}
