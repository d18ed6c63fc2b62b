/* SPDX-License-Identifier: MIT */
#include "kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hexdecoct.h"
#include "macro.h"

static int parse_field_u64(const char **p, const char *end, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (s >= end || *s < '0' || *s > '9')
                return -EBADMSG;
        while (s < end && *s >= '0' && *s <= '9') {
                uint64_t d = (uint64_t) (*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
                s++;
        }
        *p = s;
        *ret = v;
        return 0;
}

int kmsg_parse_record(const char *buf, size_t len, KmsgRecord *ret) {
        const char *end = buf + len, *p = buf;
        uint64_t prio, seq, usec;

        const char *semi = memchr(buf, ';', len);
        if (!semi)
                return -EBADMSG;

        if (parse_field_u64(&p, semi, &prio) < 0 || p >= semi || *p++ != ',')
                return -EBADMSG;
        if (parse_field_u64(&p, semi, &seq) < 0 || p >= semi || *p++ != ',')
                return -EBADMSG;
        if (parse_field_u64(&p, semi, &usec) < 0 || p >= semi || *p++ != ',')
                return -EBADMSG;
        if (p >= semi || prio > 1023)
                return -EBADMSG;
        char flags = *p; /* further comma-separated fields may follow; they are ignored */

        const char *msg = semi + 1;
        const char *nl = memchr(msg, '\n', (size_t) (end - msg));
        size_t mlen = nl ? (size_t) (nl - msg) : (size_t) (end - msg);

        *ret = (KmsgRecord) {
                .priority = (unsigned) prio,
                .seq = seq,
                .usec = usec,
                .flags = flags,
                .message = msg,
                .message_len = mlen,
        };
        return 0;
}

size_t kmsg_unescape(const char *msg, size_t len, char *out, size_t out_size) {
        size_t o = 0;

        for (size_t i = 0; i < len && o < out_size; i++) {
                int hi, lo;
                if (msg[i] == '\\' && i + 3 < len && msg[i + 1] == 'x' && (hi = unhexchar(msg[i + 2])) >= 0 &&
                    (lo = unhexchar(msg[i + 3])) >= 0) {
                        out[o++] = (char) (hi << 4 | lo);
                        i += 3;
                } else
                        out[o++] = msg[i];
        }
        return o;
}

static bool skip_prefix(const char **p, const char *end, const char *prefix) {
        size_t n = strlen(prefix);
        if ((size_t) (end - *p) < n || memcmp(*p, prefix, n) != 0)
                return false;
        *p += n;
        return true;
}

bool kmsg_parse_oom(const char *msg, size_t len, pid_t *ret_pid, char ret_comm[KMSG_COMM_MAX]) {
        const char *p = msg, *end = msg + len;
        uint64_t pid;

        if (!skip_prefix(&p, end, "Out of memory: ") && !skip_prefix(&p, end, "Memory cgroup out of memory: "))
                return false;
        if (!skip_prefix(&p, end, "Killed process "))
                return false;
        if (parse_field_u64(&p, end, &pid) < 0 || pid == 0 || pid > INT32_MAX)
                return false;
        if (!skip_prefix(&p, end, " ("))
                return false;

        /* comm may itself contain ") ": the kernel follows it with ") total-vm:" (or ends the line). */
        const char *close = NULL;
        for (const char *s = p; s < end; s++)
                if (*s == ')') {
                        close = s;
                        if (end - s >= 11 && memcmp(s, ") total-vm:", 11) == 0)
                                break;
                }
        if (!close)
                return false;

        size_t n = kmsg_unescape(p, (size_t) (close - p), ret_comm, KMSG_COMM_MAX - 1);
        ret_comm[n] = '\0';
        *ret_pid = (pid_t) pid;
        return true;
}

int kmsg_reader_open(KmsgReader *k, const char *path) {
        int fd = open(path ?: "/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        *k = (KmsgReader) { .fd = fd };
        return 0;
}

void kmsg_reader_close(KmsgReader *k) {
        k->fd = safe_close(k->fd);
}

int kmsg_reader_read(KmsgReader *k, char *buf, size_t size, KmsgRecord *ret, uint64_t *ret_lost) {
        for (;;) {
                ssize_t n = RETRY_ON_EINTR(read(k->fd, buf, size));
                if (n < 0) {
                        if (errno == EAGAIN)
                                return 0;
                        /* EPIPE: the record we were about to read was overwritten; the next read continues
                         * with the oldest one left, and the seq gap tells how many went. */
                        if (errno == EPIPE)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;

                KmsgRecord rec;
                if (kmsg_parse_record(buf, (size_t) n, &rec) < 0)
                        continue;

                uint64_t lost = 0;
                if (k->next_seq != 0 && rec.seq > k->next_seq)
                        lost = rec.seq - k->next_seq;
                k->lost += lost;
                k->next_seq = rec.seq + 1;

                *ret = rec;
                if (ret_lost)
                        *ret_lost = lost;
                return 1;
        }
}
