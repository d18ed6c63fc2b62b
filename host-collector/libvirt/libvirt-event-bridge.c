/* SPDX-License-Identifier: MIT */
/* Room libvirt: the libvirt watcher; registers and retires machines through core's manager. */
#include "libvirt-event-bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "list.h"
#include "macro.h"
#include "time-util.h"

typedef struct BridgeItem BridgeItem;
struct BridgeItem {
        LIST_FIELDS(BridgeItem, items);
        int id;
        bool timeout; /* else a handle */
        bool removed; /* waiting for its free function to run */
        sd_event_source *source;
        int fd;       /* handles: the fd watched (libvirt's, or a dup of it) */
        int dup_fd;   /* -1, or the dup we made because the fd was already in the loop */
        int interval; /* timeouts: ms, -1 disabled */
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timeout_cb;
        void *opaque;
        virFreeCallback ff;
};

static struct {
        sd_event *event;
        LIST_HEAD(BridgeItem, items);
        sd_event_source *defer; /* runs the free functions of removed items */
        int next_id;
        unsigned handles, timeouts;
} bridge;

static BridgeItem *find_item(int id, bool timeout) {
        for (BridgeItem *i = bridge.items; i; i = i->items_next)
                if (i->id == id && i->timeout == timeout && !i->removed)
                        return i;
        return NULL;
}

static uint32_t to_epoll(int events) {
        uint32_t e = 0;
        if (events & VIR_EVENT_HANDLE_READABLE)
                e |= EPOLLIN;
        if (events & VIR_EVENT_HANDLE_WRITABLE)
                e |= EPOLLOUT;
        return e;
}

static int from_epoll(uint32_t e) {
        int events = 0;
        if (e & EPOLLIN)
                events |= VIR_EVENT_HANDLE_READABLE;
        if (e & EPOLLOUT)
                events |= VIR_EVENT_HANDLE_WRITABLE;
        if (e & EPOLLERR)
                events |= VIR_EVENT_HANDLE_ERROR;
        if (e & EPOLLHUP)
                events |= VIR_EVENT_HANDLE_HANGUP;
        return events;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        BridgeItem *i = userdata;

        /* libvirt identifies the handle by its own fd, not by our dup. The callback may remove this very item:
         * it stays allocated until the defer source runs, so nothing here touches freed memory. */
        i->handle_cb(i->id, i->fd, from_epoll(revents), i->opaque);
        return 0;
}

static void arm_timeout(BridgeItem *i) {
        if (i->interval < 0) {
                (void) sd_event_source_set_enabled(i->source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(
                i->source, now_ns(CLOCK_MONOTONIC) / NSEC_PER_USEC + (uint64_t) i->interval * USEC_PER_MSEC);
        (void) sd_event_source_set_enabled(i->source, SD_EVENT_ON);
}

static int on_time(sd_event_source *s, uint64_t usec, void *userdata) {
        BridgeItem *i = userdata;

        /* Periodic: re-armed before the callback, which may update or remove it. */
        arm_timeout(i);
        i->timeout_cb(i->id, i->opaque);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        BridgeItem *i, *n;

        LIST_FOREACH_SAFE(items, i, n, bridge.items) {
                if (!i->removed)
                        continue;
                LIST_REMOVE(items, bridge.items, i);
                if (i->ff)
                        i->ff(i->opaque);
                free(i);
        }
        /* A oneshot source is off while it runs: a free function that removed another item re-enabled it, and
         * that must stand. */
        return 0;
}

static int item_remove(BridgeItem *i) {
        /* The source goes now (libvirt may close the fd right after this call); the free function runs later
         * from the defer source, outside libvirt's call. */
        i->source = sd_event_source_disable_unref(i->source);
        i->dup_fd = safe_close(i->dup_fd);
        i->removed = true;
        if (i->timeout)
                bridge.timeouts--;
        else
                bridge.handles--;
        return sd_event_source_set_enabled(bridge.defer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff) {
        BridgeItem *i = calloc(1, sizeof(BridgeItem));
        int r;

        if (!i)
                return -1;
        *i = (BridgeItem) {
                .id = ++bridge.next_id, .fd = fd, .dup_fd = -1, .handle_cb = cb, .opaque = opaque, .ff = ff
        };
        r = sd_event_add_io(bridge.event, &i->source, fd, to_epoll(events), on_io, i);
        if (r == -EEXIST) {
                /* The fd is watched already (by libvirt under another id, or by tetherd): epoll takes a dup. */
                i->dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                r = i->dup_fd < 0 ? -errno :
                                    sd_event_add_io(bridge.event, &i->source, i->dup_fd, to_epoll(events), on_io, i);
        }
        if (r < 0) {
                safe_close(i->dup_fd);
                free(i);
                return -1;
        }
        if (events == 0)
                (void) sd_event_source_set_enabled(i->source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(i->source, "libvirt-handle");
        LIST_PREPEND(items, bridge.items, i);
        bridge.handles++;
        return i->id;
}

static void update_handle(int watch, int events) {
        BridgeItem *i = find_item(watch, false);

        if (!i)
                return;
        if (events == 0) {
                (void) sd_event_source_set_enabled(i->source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_io_events(i->source, to_epoll(events));
        (void) sd_event_source_set_enabled(i->source, SD_EVENT_ON);
}

static int remove_handle(int watch) {
        BridgeItem *i = find_item(watch, false);
        return i ? item_remove(i) : -1;
}

static int add_timeout(int interval, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff) {
        BridgeItem *i = calloc(1, sizeof(BridgeItem));
        int r;

        if (!i)
                return -1;
        *i = (BridgeItem) {
                .id = ++bridge.next_id,
                .timeout = true,
                .fd = -1,
                .dup_fd = -1,
                .interval = interval,
                .timeout_cb = cb,
                .opaque = opaque,
                .ff = ff,
        };
        /* Microsecond accuracy: libvirt's keepalive and event dispatch timers are short. */
        r = sd_event_add_time(bridge.event, &i->source, CLOCK_MONOTONIC, 0, 1, on_time, i);
        if (r < 0) {
                free(i);
                return -1;
        }
        (void) sd_event_source_set_description(i->source, "libvirt-timeout");
        arm_timeout(i);
        LIST_PREPEND(items, bridge.items, i);
        bridge.timeouts++;
        return i->id;
}

static void update_timeout(int timer, int interval) {
        BridgeItem *i = find_item(timer, true);

        if (!i)
                return;
        i->interval = interval;
        arm_timeout(i);
}

static int remove_timeout(int timer) {
        BridgeItem *i = find_item(timer, true);
        return i ? item_remove(i) : -1;
}

static void quiet_error(void *userdata, virErrorPtr error) {
        /* libvirt prints every error on stderr by default; tetherd logs what it decides itself. */
}

int libvirt_event_bridge_register(sd_event *e) {
        int r;

        if (bridge.event)
                return bridge.event == e ? 0 : -EBUSY;

        r = sd_event_add_defer(e, &bridge.defer, on_defer, NULL);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(bridge.defer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(bridge.defer, "libvirt-free");
        /* Both kept for the life of the process, as libvirt keeps the implementation. */
        bridge.event = sd_event_ref(e);

        virSetErrorFunc(NULL, quiet_error);
        virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout, remove_timeout);
        return 0;
}

unsigned libvirt_event_bridge_handles(void) {
        return bridge.handles;
}

unsigned libvirt_event_bridge_timeouts(void) {
        return bridge.timeouts;
}
