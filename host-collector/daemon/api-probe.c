/* SPDX-License-Identifier: MIT */
/* Room daemon: tetherd's loop, listeners and agent connections; ties core, api, otlp, libvirt. */
#include "api-probe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "time-util.h"

struct ApiProbe {
        sd_event *event;
        struct sockaddr_storage addr;
        socklen_t addrlen;
        uint64_t interval_ns;
        uint64_t last_answer_ns;
        sd_event_source *timer;
        int fd; /* the probe in flight, -1 if none */
        sd_event_source *io;
        char head[16];
        size_t head_len;
};

static void probe_close(ApiProbe *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->fd = safe_close(p->fd);
        p->head_len = 0;
}

static int on_probe_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static const char request[] = "GET /healthz HTTP/1.1\r\nHost: tetherd\r\nConnection: close\r\n\r\n";
        ApiProbe *p = userdata;

        if (revents & EPOLLOUT) {
                /* Connected (a Unix socket usually is at once): the request fits any socket buffer. */
                ssize_t n = send(fd, request, sizeof(request) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n != (ssize_t) sizeof(request) - 1) {
                        probe_close(p);
                        return 0;
                }
                (void) sd_event_source_set_io_events(s, EPOLLIN);
                return 0;
        }
        ssize_t n = recv(fd, p->head + p->head_len, sizeof(p->head) - p->head_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n > 0) {
                p->head_len += (size_t) n;
                if (p->head_len < 9)
                        return 0; /* "HTTP/1.1 " */
                if (memcmp(p->head, "HTTP/1.", 7) == 0)
                        p->last_answer_ns = now_ns(CLOCK_MONOTONIC);
        }
        probe_close(p);
        return 0;
}

static void probe_start(ApiProbe *p) {
        probe_close(p); /* one still in flight after an interval failed */
        _cleanup_close_ int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        /* A full backlog (EAGAIN on a Unix socket) is no answer either. */
        if (connect(fd, (struct sockaddr *) &p->addr, p->addrlen) < 0 && errno != EINPROGRESS)
                return;
        if (sd_event_add_io(p->event, &p->io, fd, EPOLLOUT, on_probe_io, p) < 0)
                return;
        p->fd = TAKE_FD(fd);
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ApiProbe *p = userdata;

        probe_start(p);
        (void) sd_event_source_set_time_relative(s, p->interval_ns / NSEC_PER_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

int api_probe_new(sd_event *e, const struct sockaddr *addr, socklen_t addrlen, uint64_t interval_ns, ApiProbe **ret) {
        int r;

        if (addrlen > sizeof(struct sockaddr_storage) || interval_ns == 0)
                return -EINVAL;
        ApiProbe *p = calloc(1, sizeof(ApiProbe));
        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(e);
        memcpy(&p->addr, addr, addrlen);
        p->addrlen = addrlen;
        p->interval_ns = interval_ns;
        p->fd = -1;
        p->last_answer_ns = now_ns(CLOCK_MONOTONIC);
        r = sd_event_add_time_relative(
                e, &p->timer, CLOCK_MONOTONIC, interval_ns / NSEC_PER_USEC, 0, on_probe_timer, p);
        if (r < 0) {
                api_probe_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

ApiProbe *api_probe_free(ApiProbe *p) {
        if (!p)
                return NULL;
        probe_close(p);
        sd_event_source_disable_unref(p->timer);
        sd_event_unref(p->event);
        free(p);
        return NULL;
}

uint64_t api_probe_last_answer_ns(const ApiProbe *p) {
        return p->last_answer_ns;
}
