/* SPDX-License-Identifier: MIT */
/* fake-systemd: the part of PID 1's D-Bus API that tether-agent-systemd uses, on the bus of
 * $DBUS_SYSTEM_BUS_ADDRESS (a private dbus-daemon of the test), driven by lines on stdin:
 *
 *   set PROPERTY VALUE                 a Manager timestamp (…TimestampMonotonic, µs), no signal
 *   unit NAME STATE SUB EXIT ENTER INACTIVE   a unit's ActiveState, SubState and InactiveExit, ActiveEnter,
 *                                      InactiveEnter timestamps (µs), then its PropertiesChanged signal
 *   finish US                          FinishTimestampMonotonic = US, then the StartupFinished signal
 *   job NAME RESULT                    the JobRemoved signal of a job of unit NAME
 *
 * Each line is answered with "ok" on stdout once the signals are on their way; "ready" says the name is owned.
 * Test tool only. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#define MAX_UNITS 32

typedef struct Manager {
        uint64_t firmware, loader, kernel, initrd, userspace, finish;
        uint64_t security_start, security_finish, generators_start, generators_finish, units_load_start,
                units_load_finish;
} Manager;

typedef struct Unit {
        char *name;
        char *path;
        char *active_state;
        char *sub_state;
        uint64_t inactive_exit, active_enter, inactive_enter;
} Unit;

static Manager manager;
static Unit units[MAX_UNITS];
static size_t n_units;

#define TS(name, field) SD_BUS_PROPERTY(name, "t", NULL, offsetof(Manager, field), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

static int method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "");
}

static int method_list_units(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssssssouso)");
        for (size_t i = 0; r >= 0 && i < n_units; i++)
                r = sd_bus_message_append(
                        reply,
                        "(ssssssouso)",
                        units[i].name,
                        "",
                        "loaded",
                        units[i].active_state,
                        units[i].sub_state,
                        "",
                        units[i].path,
                        (uint32_t) 0,
                        "",
                        "/");
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        TS("FirmwareTimestampMonotonic", firmware),
        TS("LoaderTimestampMonotonic", loader),
        TS("KernelTimestampMonotonic", kernel),
        TS("InitRDTimestampMonotonic", initrd),
        TS("UserspaceTimestampMonotonic", userspace),
        TS("FinishTimestampMonotonic", finish),
        TS("SecurityStartTimestampMonotonic", security_start),
        TS("SecurityFinishTimestampMonotonic", security_finish),
        TS("GeneratorsStartTimestampMonotonic", generators_start),
        TS("GeneratorsFinishTimestampMonotonic", generators_finish),
        TS("UnitsLoadStartTimestampMonotonic", units_load_start),
        TS("UnitsLoadFinishTimestampMonotonic", units_load_finish),
        SD_BUS_METHOD("Subscribe", "", "", method_subscribe, 0),
        SD_BUS_METHOD("ListUnits", "", "a(ssssssouso)", method_list_units, 0),
        SD_BUS_SIGNAL("StartupFinished", "tttttt", 0),
        SD_BUS_SIGNAL("JobRemoved", "uoss", 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable unit_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", NULL, offsetof(Unit, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ActiveState", "s", NULL, offsetof(Unit, active_state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SubState", "s", NULL, offsetof(Unit, sub_state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "InactiveExitTimestampMonotonic",
                "t",
                NULL,
                offsetof(Unit, inactive_exit),
                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "ActiveEnterTimestampMonotonic",
                "t",
                NULL,
                offsetof(Unit, active_enter),
                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "InactiveEnterTimestampMonotonic",
                "t",
                NULL,
                offsetof(Unit, inactive_enter),
                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static int find_unit(
        sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret, sd_bus_error *e) {
        for (size_t i = 0; i < n_units; i++)
                if (strcmp(units[i].path, path) == 0) {
                        *ret = &units[i];
                        return 1;
                }
        return 0;
}

static int set_manager(const char *key, uint64_t v) {
        static const struct {
                const char *name;
                size_t offset;
        } f[] = {
                { "FirmwareTimestampMonotonic", offsetof(Manager, firmware) },
                { "LoaderTimestampMonotonic", offsetof(Manager, loader) },
                { "KernelTimestampMonotonic", offsetof(Manager, kernel) },
                { "InitRDTimestampMonotonic", offsetof(Manager, initrd) },
                { "UserspaceTimestampMonotonic", offsetof(Manager, userspace) },
                { "FinishTimestampMonotonic", offsetof(Manager, finish) },
                { "SecurityStartTimestampMonotonic", offsetof(Manager, security_start) },
                { "SecurityFinishTimestampMonotonic", offsetof(Manager, security_finish) },
                { "GeneratorsStartTimestampMonotonic", offsetof(Manager, generators_start) },
                { "GeneratorsFinishTimestampMonotonic", offsetof(Manager, generators_finish) },
                { "UnitsLoadStartTimestampMonotonic", offsetof(Manager, units_load_start) },
                { "UnitsLoadFinishTimestampMonotonic", offsetof(Manager, units_load_finish) },
        };
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
                if (strcmp(key, f[i].name) == 0) {
                        *(uint64_t *) ((uint8_t *) &manager + f[i].offset) = v;
                        return 0;
                }
        return -EINVAL;
}

static int command(sd_bus *bus, char *line) {
        char a[256], b[64], c[64];
        unsigned long long x, y, z;
        int r;

        if (sscanf(line, "set %255s %llu", a, &x) == 2)
                return set_manager(a, x);
        if (sscanf(line, "finish %llu", &x) == 1) {
                manager.finish = x;
                return sd_bus_emit_signal(
                        bus,
                        "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager",
                        "StartupFinished",
                        "tttttt",
                        (uint64_t) 0,
                        (uint64_t) 0,
                        (uint64_t) 0,
                        (uint64_t) 0,
                        (uint64_t) 0,
                        (uint64_t) x);
        }
        if (sscanf(line, "job %255s %63s", a, b) == 2)
                return sd_bus_emit_signal(
                        bus,
                        "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager",
                        "JobRemoved",
                        "uoss",
                        (uint32_t) 7,
                        "/org/freedesktop/systemd1/job/7",
                        a,
                        b);
        if (sscanf(line, "unit %255s %63s %63s %llu %llu %llu", a, b, c, &x, &y, &z) == 6) {
                Unit *u = NULL;
                for (size_t i = 0; i < n_units; i++)
                        if (strcmp(units[i].name, a) == 0)
                                u = &units[i];
                if (!u) {
                        if (n_units >= MAX_UNITS)
                                return -ENOSPC;
                        u = &units[n_units++];
                        u->name = strdup(a);
                        if ((r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", a, &u->path)) < 0)
                                return r;
                } else {
                        free(u->active_state);
                        free(u->sub_state);
                }
                u->active_state = strdup(b);
                u->sub_state = strdup(c);
                u->inactive_exit = x;
                u->active_enter = y;
                u->inactive_enter = z;
                return sd_bus_emit_properties_changed(
                        bus,
                        u->path,
                        "org.freedesktop.systemd1.Unit",
                        "ActiveState",
                        "SubState",
                        "InactiveExitTimestampMonotonic",
                        "ActiveEnterTimestampMonotonic",
                        "InactiveEnterTimestampMonotonic",
                        NULL);
        }
        return -EINVAL;
}

int main(void) {
        sd_bus *bus = NULL;
        char buf[4096];
        size_t have = 0;
        int r;

        if ((r = sd_bus_open_system(&bus)) < 0 ||
            (r = sd_bus_add_object_vtable(
                     bus,
                     NULL,
                     "/org/freedesktop/systemd1",
                     "org.freedesktop.systemd1.Manager",
                     manager_vtable,
                     &manager)) < 0 ||
            (r = sd_bus_add_fallback_vtable(
                     bus,
                     NULL,
                     "/org/freedesktop/systemd1/unit",
                     "org.freedesktop.systemd1.Unit",
                     unit_vtable,
                     find_unit,
                     NULL)) < 0 ||
            (r = sd_bus_request_name(bus, "org.freedesktop.systemd1", 0)) < 0) {
                fprintf(stderr, "fake-systemd: setup failed: %s\n", strerror(-r));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);

        for (;;) {
                while ((r = sd_bus_process(bus, NULL)) > 0)
                        ;
                if (r < 0) {
                        fprintf(stderr, "fake-systemd: bus: %s\n", strerror(-r));
                        return 1;
                }
                (void) sd_bus_flush(bus);
                struct pollfd p[2] = { { .fd = sd_bus_get_fd(bus), .events = (short) sd_bus_get_events(bus) },
                                       { .fd = 0, .events = POLLIN } };
                if (poll(p, 2, -1) < 0)
                        continue;
                if (p[1].revents) {
                        ssize_t k = read(0, buf + have, sizeof(buf) - have - 1);
                        if (k <= 0)
                                return 0;
                        have += (size_t) k;
                        buf[have] = '\0';
                        char *nl;
                        while ((nl = strchr(buf, '\n'))) {
                                *nl = '\0';
                                r = command(bus, buf);
                                (void) sd_bus_flush(bus);
                                printf(r < 0 ? "error %s\n" : "ok\n", strerror(-r));
                                fflush(stdout);
                                have -= (size_t) (nl + 1 - buf);
                                memmove(buf, nl + 1, have + 1);
                        }
                }
        }
}
