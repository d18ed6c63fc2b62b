/* SPDX-License-Identifier: MIT */
/* tether-wakeup-chain: the physical limit of bench/readiness-latency on this machine, measured in the same run.
 *
 *   tether-wakeup-chain RUNS HOPS
 *
 * A readiness answer crosses processes that sleep until it comes: the agent, which stamps the Ready and writes it
 * to tetherd (one hop), and tetherd, which answers the waiter (a second hop). Each hop is a process blocked in a
 * read being woken by a write into a Unix stream socket. This program does the same with nothing else to do: an
 * origin process sleeps a random 50-250 ms (as the bench's workloads do before READY=1), reads CLOCK_REALTIME and
 * writes it into a socket; HOPS-1 relay processes each read it and write it on; the last process reads it and
 * takes CLOCK_REALTIME again. RUNS times. What a Ready costs on top of this is tether's.
 *
 * Prints one JSON line: {"runs", "hops", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}. */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "time-util.h"

#define HOPS_MAX 8u
#define RUNS_MAX 100000u

/* Returns 1 with a stamp, 0 at the end of the stream (the origin is done), or -errno. */
static int read_stamp(int fd, uint64_t *ret) {
        ssize_t n = read_full(fd, ret, sizeof(*ret));
        if (n < 0)
                return (int) n;
        return n == sizeof(*ret);
}

static int write_stamp(int fd, uint64_t stamp) {
        return write_all(fd, &stamp, sizeof(stamp));
}

/* A relay: every stamp read from in is written to out, until EOF. */
static int relay(int in, int out) {
        uint64_t stamp = 0;
        int r;

        while ((r = read_stamp(in, &stamp)) > 0)
                if ((r = write_stamp(out, stamp)) < 0)
                        return r;
        return r;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static double percentile_ms(const uint64_t *sorted, unsigned n, double p) {
        /* Nearest rank, as bench/benchutil.py's percentile(). */
        unsigned k = (unsigned) (p / 100.0 * n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return (double) sorted[k - 1] / 1e6;
}

/* The last process: reads RUNS stamps and prints the figures. */
static int sink(int in, unsigned runs, unsigned hops) {
        _cleanup_free_ uint64_t *lat = calloc(runs, sizeof(uint64_t));
        uint64_t stamp = 0, sum = 0;
        unsigned n = 0;
        int r;

        if (!lat)
                return -ENOMEM;
        while (n < runs && (r = read_stamp(in, &stamp)) > 0) {
                uint64_t now = now_ns(CLOCK_REALTIME);
                lat[n] = now > stamp ? now - stamp : 0;
                sum += lat[n++];
        }
        if (n < runs)
                return -EPIPE;
        qsort(lat, n, sizeof(uint64_t), cmp_u64);
        printf("{\"runs\": %u, \"hops\": %u, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
               "\"mean_ms\": %.3f}\n",
               n,
               hops,
               percentile_ms(lat, n, 50),
               percentile_ms(lat, n, 90),
               percentile_ms(lat, n, 99),
               (double) lat[n - 1] / 1e6,
               (double) sum / n / 1e6);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

static int origin(int out, unsigned runs) {
        unsigned seed = (unsigned) now_ns(CLOCK_MONOTONIC);

        for (unsigned i = 0; i < runs; i++) {
                uint64_t ms = 50 + (uint64_t) (rand_r(&seed) % 201);
                struct timespec ts = { .tv_sec = (time_t) (ms / 1000), .tv_nsec = (long) (ms % 1000) * 1000000L };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
                int r = write_stamp(out, now_ns(CLOCK_REALTIME));
                if (r < 0)
                        return r;
        }
        return 0;
}

int main(int argc, char **argv) {
        pid_t pids[HOPS_MAX];
        int fds[HOPS_MAX][2];
        unsigned runs, hops, n_pids = 0;
        int r = 0, status;

        if (argc != 3 || (runs = (unsigned) strtoul(argv[1], NULL, 10)) == 0 || runs > RUNS_MAX ||
            (hops = (unsigned) strtoul(argv[2], NULL, 10)) == 0 || hops > HOPS_MAX) {
                fprintf(stderr, "usage: %s RUNS(1..%u) HOPS(1..%u)\n", argv[0], RUNS_MAX, HOPS_MAX);
                return 2;
        }
        for (unsigned i = 0; i < hops; i++)
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[i]) < 0) {
                        fprintf(stderr, "socketpair: %m\n");
                        return 1;
                }

        /* Process k (1..hops) reads link k-1; relays write link k; the last one is the sink. */
        for (unsigned k = 1; k <= hops; k++) {
                pid_t pid = fork();
                if (pid < 0) {
                        fprintf(stderr, "fork: %m\n");
                        r = -errno;
                        break;
                }
                if (pid == 0) {
                        int in = fds[k - 1][1], out = k < hops ? fds[k][0] : -1;
                        for (unsigned i = 0; i < hops; i++) {
                                if (fds[i][0] != out)
                                        safe_close(fds[i][0]);
                                if (fds[i][1] != in)
                                        safe_close(fds[i][1]);
                        }
                        r = out >= 0 ? relay(in, out) : sink(in, runs, hops);
                        if (r < 0)
                                fprintf(stderr, "tether-wakeup-chain: hop %u: %s\n", k, strerror(-r));
                        _exit(r < 0 ? 1 : 0);
                }
                pids[n_pids++] = pid;
        }
        for (unsigned i = 0; i < hops; i++) {
                if (i > 0 || r < 0)
                        safe_close(fds[i][0]);
                safe_close(fds[i][1]);
        }
        if (r >= 0) {
                r = origin(fds[0][0], runs);
                if (r < 0)
                        fprintf(stderr, "tether-wakeup-chain: origin: %s\n", strerror(-r));
                safe_close(fds[0][0]); /* EOF down the chain */
        }
        for (unsigned i = 0; i < n_pids; i++)
                if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        r = r < 0 ? r : -ECHILD;
        return r < 0 ? 1 : 0;
}
