/* SPDX-License-Identifier: MIT */
/* tether-line-sink: the cheapest possible reader of a line stream, for bench/log-throughput's physical limit.
 *
 *   seq ... > UNIX-STREAM-SOCKET;  tether-line-sink < OTHER-END
 *
 * Reads standard input (a Unix stream socket, a pipe, anything) to EOF in 1 MiB reads, counts bytes and
 * newlines, and prints one JSON line: {"bytes", "lines", "seconds" (first byte -> EOF, CLOCK_MONOTONIC),
 * "cpu_seconds" (its own utime + stime)}. No parsing, no copying beyond the read itself: what tetherd's ingest
 * of the same lines is compared with. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "time-util.h"

#define SINK_BUFFER (1024u * 1024u)

static int sink(int fd, uint64_t *ret_bytes, uint64_t *ret_lines, uint64_t *ret_ns) {
        _cleanup_free_ char *buf = malloc(SINK_BUFFER);
        uint64_t bytes = 0, lines = 0, first = 0, last = 0;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf, SINK_BUFFER);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                last = now_ns(CLOCK_MONOTONIC);
                if (n == 0)
                        break;
                if (bytes == 0)
                        first = last;
                bytes += (uint64_t) n;
                for (const char *p = buf, *end = buf + n; (p = memchr(p, '\n', (size_t) (end - p))); p++)
                        lines++;
        }
        *ret_bytes = bytes;
        *ret_lines = lines;
        *ret_ns = bytes > 0 ? last - first : 0;
        return 0;
}

int main(int argc, char *argv[]) {
        uint64_t bytes = 0, lines = 0, ns = 0;
        struct rusage ru;
        int r;

        if (argc != 1) {
                fprintf(stderr, "Usage: %s < STREAM\n", argv[0]);
                return 2;
        }
        r = sink(STDIN_FILENO, &bytes, &lines, &ns);
        if (r < 0) {
                fprintf(stderr, "Failed to read standard input: %s\n", strerror(-r));
                return 1;
        }
        if (getrusage(RUSAGE_SELF, &ru) < 0)
                memset(&ru, 0, sizeof(ru));
        double cpu = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
                (double) ru.ru_stime.tv_usec / 1e6;
        printf("{\"bytes\": %" PRIu64 ", \"lines\": %" PRIu64 ", \"seconds\": %.6f, \"cpu_seconds\": %.6f}\n",
               bytes,
               lines,
               (double) ns / 1e9,
               cpu);
        return 0;
}
