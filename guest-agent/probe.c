/* SPDX-License-Identifier: MIT */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "workload.h"

typedef struct ProbeState {
        const ProbeSpec *spec;
        int fd;            /* PROBE_TCP: connect in progress */
        pid_t pid;         /* PROBE_EXEC: command running (or killed, not yet reaped) */
        uint64_t deadline; /* of the attempt in progress */
} ProbeState;

struct Prober {
        ProbeState *probes;
        size_t n;
        uint64_t interval_ns, timeout_ns;
        uint64_t next_round;
        bool stopped;
};

const char *probe_kind_to_source(ProbeKind k) {
        switch (k) {
        case PROBE_TCP:
                return "probe:tcp";
        case PROBE_UNIX:
                return "probe:unix";
        case PROBE_FILE:
                return "probe:file";
        case PROBE_EXEC:
                return "probe:exec";
        }
        return "probe";
}

int prober_new(const ProbeSpec *specs, size_t n, uint64_t interval_ns, uint64_t timeout_ns, Prober **ret) {
        Prober *p = calloc(1, sizeof(Prober));
        if (!p)
                return -ENOMEM;
        p->probes = calloc(n ?: 1, sizeof(ProbeState));
        if (!p->probes) {
                free(p);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                p->probes[i] = (ProbeState) { .spec = &specs[i], .fd = -1, .deadline = UINT64_MAX };
        p->n = n;
        p->interval_ns = interval_ns;
        p->timeout_ns = timeout_ns;
        p->next_round = UINT64_MAX;
        *ret = p;
        return 0;
}

void prober_stop(Prober *p) {
        if (!p)
                return;
        p->stopped = true;
        p->next_round = UINT64_MAX;
        for (size_t i = 0; i < p->n; i++) {
                ProbeState *s = &p->probes[i];
                s->fd = safe_close(s->fd);
                if (s->pid > 0)
                        (void) kill(s->pid, SIGKILL);
                s->deadline = UINT64_MAX;
        }
}

Prober *prober_free(Prober *p) {
        if (!p)
                return NULL;
        prober_stop(p);
        free(p->probes);
        free(p);
        return NULL;
}

void prober_start(Prober *p, uint64_t now) {
        if (p->n > 0 && !p->stopped)
                p->next_round = now;
}

/* 1: accepting now, 0: in progress (fd kept), -errno: not (yet) accepting. */
static int try_connect(ProbeState *s, uint64_t now, uint64_t timeout_ns) {
        const ProbeSpec *spec = s->spec;
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        const struct sockaddr *sa;
        socklen_t len;

        if (spec->kind == PROBE_UNIX) {
                strncpy(un.sun_path, spec->path, sizeof(un.sun_path) - 1);
                sa = (const struct sockaddr *) &un;
                len = sizeof(un);
        } else {
                sa = (const struct sockaddr *) &spec->addr;
                len = spec->addr_len;
        }

        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, sa, len) == 0) {
                safe_close(fd);
                return 1;
        }
        if (errno == EINPROGRESS) {
                s->fd = fd;
                s->deadline = now + timeout_ns;
                return 0;
        }
        int r = -errno;
        safe_close(fd);
        return r;
}

static _noreturn_ void exec_child(char *const *argv) {
        int null = open("/dev/null", O_RDWR | O_NOCTTY);
        if (null >= 0) {
                (void) dup2(null, STDIN_FILENO);
                (void) dup2(null, STDOUT_FILENO);
                (void) dup2(null, STDERR_FILENO);
        }
        reset_signals_for_exec();
        execvp(argv[0], argv);
        _exit(127);
}

static int start_exec(ProbeState *s, uint64_t now, uint64_t timeout_ns) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                exec_child(s->spec->argv);
        s->pid = pid;
        s->deadline = now + timeout_ns;
        return 0;
}

static int run_round(Prober *p, uint64_t now, size_t *ret_index) {
        for (size_t i = 0; i < p->n; i++) {
                ProbeState *s = &p->probes[i];
                bool ok = false;

                switch (s->spec->kind) {
                case PROBE_FILE:
                        ok = access(s->spec->path, F_OK) == 0;
                        break;
                case PROBE_TCP:
                case PROBE_UNIX:
                        ok = s->fd < 0 && try_connect(s, now, p->timeout_ns) > 0;
                        break;
                case PROBE_EXEC:
                        if (s->pid == 0)
                                (void) start_exec(s, now, p->timeout_ns);
                        break;
                }
                if (ok) {
                        *ret_index = i;
                        return 1;
                }
        }
        return 0;
}

int prober_handle_timers(Prober *p, uint64_t now, size_t *ret_index) {
        if (p->stopped)
                return 0;

        for (size_t i = 0; i < p->n; i++) {
                ProbeState *s = &p->probes[i];
                if (now < s->deadline)
                        continue;
                s->deadline = UINT64_MAX;
                if (s->fd >= 0)
                        s->fd = safe_close(s->fd);
                if (s->pid > 0)
                        (void) kill(s->pid, SIGKILL); /* reaped later; it counts as a failure */
        }

        if (now >= p->next_round) {
                p->next_round = now + p->interval_ns;
                return run_round(p, now, ret_index);
        }
        return 0;
}

size_t prober_fill_pollfds(const Prober *p, struct pollfd *fds, size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < p->n && n < max; i++)
                if (p->probes[i].fd >= 0)
                        fds[n++] = (struct pollfd) { .fd = p->probes[i].fd, .events = POLLOUT };
        return n;
}

int prober_handle_pollfd(Prober *p, const struct pollfd *fd, uint64_t now, size_t *ret_index) {
        for (size_t i = 0; i < p->n; i++) {
                ProbeState *s = &p->probes[i];
                if (s->fd < 0 || s->fd != fd->fd || !(fd->revents & (POLLOUT | POLLERR | POLLHUP)))
                        continue;

                int error = 0;
                socklen_t len = sizeof(error);
                if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                s->fd = safe_close(s->fd);
                s->deadline = UINT64_MAX;
                if (error != 0)
                        return 0;
                *ret_index = i;
                return 1;
        }
        return 0;
}

int prober_child_exited(Prober *p, pid_t pid, int status, size_t *ret_index) {
        for (size_t i = 0; i < p->n; i++) {
                ProbeState *s = &p->probes[i];
                if (s->pid != pid)
                        continue;
                s->pid = 0;
                s->deadline = UINT64_MAX;
                /* A command killed at its timeout died of SIGKILL: a failure like any non-zero exit. */
                if (p->stopped || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        return 0;
                *ret_index = i;
                return 1;
        }
        return -ESRCH;
}

uint64_t prober_next_deadline(const Prober *p) {
        uint64_t d = p->next_round;
        for (size_t i = 0; i < p->n; i++)
                d = MIN(d, p->probes[i].deadline);
        return d;
}
