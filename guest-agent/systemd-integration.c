/* SPDX-License-Identifier: MIT */
#include "systemd-integration.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

#include "agent-log.h"
#include "format.h"
#include "macro.h"
#include "record.h"
#include "strv.h"
#include "systemd-boot.h"
#include "systemd-journal.h"
#include "systemd-units.h"
#include "time-util.h"

#define SYSTEMD_SERVICE "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_UNIT_PATH "/org/freedesktop/systemd1/unit"
#define MANAGER_IFACE "org.freedesktop.systemd1.Manager"
#define UNIT_IFACE "org.freedesktop.systemd1.Unit"
#define PRIVATE_BUS "unix:path=/run/systemd/private"
#define BUS_RECONNECT_NS (1 * NSEC_PER_SEC)
#define BUS_MESSAGES_PER_DISPATCH 256u
#define JOURNAL_ENTRIES_PER_DISPATCH 256u
/* The journal is read only while the replay buffer keeps this much room: it is the journal that waits for the host
 * (losing nothing), not the buffer that evicts; the room left is for the agent's other records. */
#define JOURNAL_RESERVE (32u * 1024u)
#define JOURNAL_FIELD_MAX 256u

typedef struct Systemd {
        const AgentConfig *config;
        AgentHost *host;
        sd_bus *bus;
        uint64_t reconnect_at; /* UINT64_MAX: connected (or connecting) */
        UnitTracker *units;
        unsigned phases_done; /* a bit per SystemdBootPhaseId */
        bool finished;        /* the startup-finished milestone was recorded */
        bool over_logged;

        sd_journal *journal; /* NULL: not forwarded */
        JournalResume resume;
        bool seeked;       /* positioned by resume, the first entry not read yet */
        bool journal_more; /* stopped by the per-dispatch budget: more to read at once */
        bool journal_error_logged;
        bool journal_version_logged;
        char *journal_buf; /* MESSAGE + '\n' */
        uint64_t journal_entries, journal_truncated;
} Systemd;

/* systemd's timestamps are CLOCK_MONOTONIC µs; records are CLOCK_BOOTTIME ns: the difference is the time spent
 * suspended. In whole milliseconds: the two clock reads are some ns apart, and a restarted agent must turn the same
 * timestamps into the same times (tetherd keeps a repeated phase once). */
static uint64_t boot_offset_ns(void) {
        uint64_t b = now_ns(CLOCK_BOOTTIME), m = now_ns(CLOCK_MONOTONIC);
        uint64_t d = b > m ? b - m : 0;
        return (d + NSEC_PER_MSEC / 2) / NSEC_PER_MSEC * NSEC_PER_MSEC;
}

static bool is_ready_unit(const Systemd *s, const char *name) {
        for (char **u = s->config->ready_units; u && *u; u++)
                if (strcmp(*u, name) == 0)
                        return true;
        return false;
}

/* Reads an a{sv} of properties, handing each to handle(name, message positioned at the variant). Properties it
 * does not take (handle returns 0) are skipped. */
static int read_properties(
        sd_bus_message *m, int (*handle)(const char *name, sd_bus_message *m, void *userdata), void *userdata) {
        int r;

        if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;
                if ((r = sd_bus_message_read(m, "s", &name)) < 0)
                        return r;
                if ((r = handle(name, m, userdata)) < 0)
                        return r;
                if (r == 0 && (r = sd_bus_message_skip(m, "v")) < 0)
                        return r;
                if ((r = sd_bus_message_exit_container(m)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_variant(sd_bus_message *m, char type, void *ret) {
        char sig[2] = { type, '\0' };
        int r;

        if ((r = sd_bus_message_enter_container(m, 'v', sig)) < 0)
                return r;
        if ((r = sd_bus_message_read_basic(m, type, ret)) < 0)
                return r;
        if ((r = sd_bus_message_exit_container(m)) < 0)
                return r;
        return 1;
}

/* ---- boot phases ---- */

static int take_manager_property(const char *name, sd_bus_message *m, void *userdata) {
        SystemdBootTimes *t = userdata;
        static const struct {
                const char *name;
                size_t offset;
        } fields[] = {
                { "FirmwareTimestampMonotonic", offsetof(SystemdBootTimes, firmware_us) },
                { "LoaderTimestampMonotonic", offsetof(SystemdBootTimes, loader_us) },
                { "KernelTimestampMonotonic", offsetof(SystemdBootTimes, kernel_us) },
                { "InitRDTimestampMonotonic", offsetof(SystemdBootTimes, initrd_us) },
                { "UserspaceTimestampMonotonic", offsetof(SystemdBootTimes, userspace_us) },
                { "FinishTimestampMonotonic", offsetof(SystemdBootTimes, finish_us) },
                { "SecurityStartTimestampMonotonic", offsetof(SystemdBootTimes, security_start_us) },
                { "SecurityFinishTimestampMonotonic", offsetof(SystemdBootTimes, security_finish_us) },
                { "GeneratorsStartTimestampMonotonic", offsetof(SystemdBootTimes, generators_start_us) },
                { "GeneratorsFinishTimestampMonotonic", offsetof(SystemdBootTimes, generators_finish_us) },
                { "UnitsLoadStartTimestampMonotonic", offsetof(SystemdBootTimes, units_load_start_us) },
                { "UnitsLoadFinishTimestampMonotonic", offsetof(SystemdBootTimes, units_load_finish_us) },
        };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (strcmp(name, fields[i].name) == 0)
                        return read_variant(m, 't', (uint8_t *) t + fields[i].offset);
        return 0;
}

static void record_boot(Systemd *s, const SystemdBootTimes *t) {
        uint64_t offset = boot_offset_ns();
        SystemdBootPhase phases[_SYSTEMD_PHASE_MAX];
        size_t n = systemd_boot_phases(t, offset, s->phases_done, phases);

        for (size_t i = 0; i < n; i++) {
                char firmware[24], loader[24];
                const char *attrs[5] = {};
                size_t k = 0;
                if (phases[i].id == SYSTEMD_PHASE_KERNEL) {
                        format(firmware, sizeof(firmware), "%" PRIu64, systemd_boot_firmware_ns(t));
                        format(loader, sizeof(loader), "%" PRIu64, systemd_boot_loader_ns(t));
                        attrs[k++] = "firmware_ns";
                        attrs[k++] = firmware;
                        attrs[k++] = "loader_ns";
                        attrs[k++] = loader;
                }
                s->host->record_error(
                        s->host,
                        record_phase(
                                s->host->replay,
                                phases[i].name,
                                phases[i].start_ns,
                                phases[i].end_ns,
                                false,
                                NULL,
                                (const char *const *) attrs),
                        "a boot phase");
                s->phases_done |= 1u << phases[i].id;
        }

        if (t->finish_us > 0 && !s->finished) {
                s->finished = true;
                char total[24];
                format(total, sizeof(total), "%" PRIu64, (t->finish_us - t->kernel_us) * NSEC_PER_USEC);
                s->host->record_error(
                        s->host,
                        record_milestone(
                                s->host->replay,
                                "systemd.startup-finished",
                                t->finish_us * NSEC_PER_USEC + offset,
                                (const char *const[]) { "total_ns", total, NULL }),
                        "the startup-finished milestone");
                log_info("systemd: startup finished after %" PRIu64 " ms", (t->finish_us - t->kernel_us) / 1000);
                /* At systemd's moment, not when the agent learnt it: a restarted agent says the same again. */
                if (s->config->ready_boot_finished)
                        s->host->set_ready(s->host, "systemd", "boot-finished", t->finish_us * NSEC_PER_USEC + offset);
        }
}

static int on_manager_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Systemd *s = userdata;
        SystemdBootTimes t = {};
        int r;

        if (sd_bus_message_is_method_error(m, NULL)) {
                log_warning("systemd: Failed to read the boot timestamps: %s", sd_bus_message_get_error(m)->message);
                return 0;
        }
        if ((r = read_properties(m, take_manager_property, &t)) < 0) {
                log_warning_errno(r, "systemd: Failed to parse the boot timestamps: %m");
                return 0;
        }
        record_boot(s, &t);
        return 0;
}

static int fetch_manager_properties(Systemd *s) {
        return sd_bus_call_method_async(
                s->bus,
                NULL,
                SYSTEMD_SERVICE,
                SYSTEMD_PATH,
                "org.freedesktop.DBus.Properties",
                "GetAll",
                on_manager_properties,
                s,
                "s",
                MANAGER_IFACE);
}

/* No polling: StartupFinished says when FinishTimestamp is set; the properties are read again then. */
static int on_startup_finished(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Systemd *s = userdata;
        int r = fetch_manager_properties(s);
        if (r < 0)
                log_warning_errno(r, "systemd: Failed to ask for the boot timestamps: %m");
        return 0;
}

/* ---- units ---- */

typedef struct UnitProps {
        char active_state[32];
        char sub_state[64];
        uint64_t inactive_exit_us, active_enter_us, inactive_enter_us;
} UnitProps;

static int take_unit_property(const char *name, sd_bus_message *m, void *userdata) {
        UnitProps *p = userdata;
        const char *str;
        int r;

        if (strcmp(name, "ActiveState") == 0 || strcmp(name, "SubState") == 0) {
                if ((r = read_variant(m, 's', &str)) < 0)
                        return r;
                bool active = name[0] == 'A';
                format(active ? p->active_state : p->sub_state,
                       active ? sizeof(p->active_state) : sizeof(p->sub_state),
                       "%s",
                       str);
                return 1;
        }
        if (strcmp(name, "InactiveExitTimestampMonotonic") == 0)
                return read_variant(m, 't', &p->inactive_exit_us);
        if (strcmp(name, "ActiveEnterTimestampMonotonic") == 0)
                return read_variant(m, 't', &p->active_enter_us);
        if (strcmp(name, "InactiveEnterTimestampMonotonic") == 0)
                return read_variant(m, 't', &p->inactive_enter_us);
        return 0;
}

/* An event of the tracker (r: what it returned) as a unit:NAME phase. */
static void record_unit_event(Systemd *s, const char *name, int r, const UnitEvent *ev, const char *sub_state) {
        if (r == -ENOSPC) {
                if (!s->over_logged) {
                        s->over_logged = true;
                        log_info(
                                "systemd: more than %" PRIu32 " units to report (systemd_units_max); counting the rest",
                                s->config->systemd_units_max);
                }
                return;
        }
        if (r < 0) {
                s->host->record_error(s->host, r, "a unit");
                return;
        }
        if (r == 0)
                return;

        uint64_t offset = boot_offset_ns();
        bool failed = ev->kind != UNIT_EVENT_ACTIVATED;
        _cleanup_free_ char *phase = format_alloc("unit:%s", name);
        _cleanup_free_ char *message = ev->kind == UNIT_EVENT_FAILED ?
                format_alloc("%s failed (%s)", name, sub_state && *sub_state ? sub_state : "failed") :
                ev->kind == UNIT_EVENT_JOB_FAILED ? format_alloc("%s not started: a unit it requires failed", name) :
                                                    NULL;
        if (!phase || (failed && !message)) {
                s->host->record_error(s->host, -ENOMEM, "a unit");
                return;
        }
        s->host->record_error(
                s->host,
                record_phase(
                        s->host->replay,
                        phase,
                        ev->start_us * NSEC_PER_USEC + offset,
                        ev->end_us * NSEC_PER_USEC + offset,
                        failed,
                        message,
                        (const char *const[]) { "unit", name, NULL }),
                "a unit phase");
        if (!failed)
                return;
        /* Also an event of the boot (the root span's), where a failure is seen without looking for its span. */
        s->host->record_error(
                s->host,
                record_milestone(
                        s->host->replay,
                        "unit.failed",
                        ev->end_us * NSEC_PER_USEC + offset,
                        (const char *const[]) { "unit", name, "message", message, NULL }),
                "a unit.failed milestone");
        log_info("systemd: %s", message);
}

static void handle_unit(Systemd *s, const char *name, const UnitProps *p) {
        if (unit_state_is_active(p->active_state) && is_ready_unit(s, name)) {
                char detail[CONFIG_MAX_UNIT_NAME + 16];
                size_t len = strlen(name);
                bool target = len > 7 && strcmp(name + len - 7, ".target") == 0;
                format(detail, sizeof(detail), "%s:%s", target ? "target" : "unit", name);
                /* When it became active (a restarted agent says the same again), else when it was seen so. */
                uint64_t t = p->active_enter_us > 0 ? p->active_enter_us * NSEC_PER_USEC + boot_offset_ns() :
                                                      now_ns(CLOCK_BOOTTIME);
                s->host->set_ready(s->host, "systemd", detail, t);
        }

        UnitSnapshot snap = {
                .name = name,
                .active_state = p->active_state,
                .inactive_exit_us = p->inactive_exit_us,
                .active_enter_us = p->active_enter_us,
                .inactive_enter_us = p->inactive_enter_us,
        };
        UnitEvent ev;
        int r = unit_tracker_update(s->units, &snap, &ev);
        record_unit_event(s, name, r, &ev, p->sub_state);
}

/* JobRemoved(id, job, unit, result): a start job that failed because a dependency did leaves the unit inactive,
 * with no property change to tell it. Other results show in the unit's state. */
static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Systemd *s = userdata;
        const char *unit, *result;
        uint32_t id;
        UnitEvent ev;

        if (sd_bus_message_read(m, "uoss", &id, NULL, &unit, &result) < 0)
                return 0;
        int r = unit_tracker_job_removed(s->units, unit, result, now_ns(CLOCK_MONOTONIC) / NSEC_PER_USEC, &ev);
        record_unit_event(s, unit, r, &ev, NULL);
        return 0;
}

typedef struct UnitCall {
        Systemd *s;
        char name[];
} UnitCall;

static int on_unit_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        UnitCall *c = userdata;
        UnitProps p = {};
        int r;

        if (sd_bus_message_is_method_error(m, NULL)) {
                log_debug("systemd: Failed to read %s's state: %s", c->name, sd_bus_message_get_error(m)->message);
                return 0;
        }
        if ((r = read_properties(m, take_unit_property, &p)) < 0) {
                log_warning_errno(r, "systemd: Failed to parse %s's state: %m", c->name);
                return 0;
        }
        handle_unit(c->s, c->name, &p);
        return 0;
}

static int fetch_unit(Systemd *s, const char *name, const char *path) {
        size_t len = strlen(name);
        _cleanup_free_ UnitCall *c = malloc(sizeof(UnitCall) + len + 1);
        int r;

        if (!c)
                return -ENOMEM;
        c->s = s;
        memcpy(c->name, name, len + 1);
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        r = sd_bus_call_method_async(
                s->bus,
                &slot,
                SYSTEMD_SERVICE,
                path,
                "org.freedesktop.DBus.Properties",
                "GetAll",
                on_unit_properties,
                c,
                "s",
                UNIT_IFACE);
        if (r < 0)
                return r;
        /* The call's userdata goes with the slot: after the reply, or when the connection is closed first. */
        (void) sd_bus_slot_set_destroy_callback(slot, free);
        (void) sd_bus_slot_set_floating(slot, 1);
        TAKE_PTR(c);
        return 0;
}

static bool unit_wanted(Systemd *s, const char *name) {
        return is_ready_unit(s, name) || unit_tracker_wants(s->units, name);
}

/* Every Unit property change carries the properties that emit changes, ActiveState and the timestamps among
 * them: the signal itself is the snapshot. */
static int on_unit_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Systemd *s = userdata;
        _cleanup_free_ char *name = NULL;
        const char *iface;
        UnitProps p = {};
        int r;

        if (sd_bus_path_decode(sd_bus_message_get_path(m), SYSTEMD_UNIT_PATH, &name) <= 0 || !name ||
            !unit_wanted(s, name))
                return 0;
        if ((r = sd_bus_message_read(m, "s", &iface)) < 0 || strcmp(iface, UNIT_IFACE) != 0)
                return 0;
        if ((r = read_properties(m, take_unit_property, &p)) < 0) {
                log_debug_errno(r, "systemd: Failed to parse a change of %s: %m", name);
                return 0;
        }
        /* Only the transitions that can make an event: activating and the like carry nothing to report. */
        if (unit_state_is_active(p.active_state) || strcmp(p.active_state, "failed") == 0)
                handle_unit(s, name, &p);
        return 0;
}

/* The units that became active (or failed) before the agent started: the boot transaction so far. */
static int on_list_units(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Systemd *s = userdata;
        const char *name, *active, *path;
        int r;

        if (sd_bus_message_is_method_error(m, NULL)) {
                log_warning("systemd: Failed to list the units: %s", sd_bus_message_get_error(m)->message);
                return 0;
        }
        if ((r = sd_bus_message_enter_container(m, 'a', "(ssssssouso)")) < 0)
                goto fail;
        while ((r = sd_bus_message_read(
                        m, "(ssssssouso)", &name, NULL, NULL, &active, NULL, NULL, &path, NULL, NULL, NULL)) > 0) {
                if (!unit_state_is_active(active) && strcmp(active, "failed") != 0)
                        continue;
                if (!unit_wanted(s, name))
                        continue;
                if ((r = fetch_unit(s, name, path)) < 0)
                        goto fail;
        }
        if (r < 0)
                goto fail;
        return 0;
fail:
        log_warning_errno(r, "systemd: Failed to go through the units: %m");
        return 0;
}

/* ---- the journal ---- */

static int journal_open(Systemd *s) {
        _cleanup_(sd_journal_closep) sd_journal *j = NULL;
        char match[sizeof("_BOOT_ID=") + SD_ID128_STRING_MAX];
        sd_id128_t boot;
        int r;

        if ((r = sd_id128_get_boot(&boot)) < 0)
                return r;
        if ((r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY)) < 0)
                return r;
        format(match, sizeof(match), "_BOOT_ID=%s", sd_id128_to_string(boot, (char[SD_ID128_STRING_MAX]) {}));
        if ((r = sd_journal_add_match(j, match, 0)) < 0)
                return r;
        /* Fields beyond a Log's data are cut by the journal itself. */
        if ((r = sd_journal_set_data_threshold(j, RECORD_MAX_LOG_DATA + sizeof("MESSAGE="))) < 0)
                return r;
        if (!(s->journal_buf = malloc(RECORD_MAX_LOG_DATA)))
                return -ENOMEM;
        s->journal = TAKE_PTR(j);
        return 0;
}

/* The value of FIELD of the current entry (NUL-terminated, cut at JOURNAL_FIELD_MAX), or NULL. */
static const char *journal_field(sd_journal *j, const char *field, char buf[static JOURNAL_FIELD_MAX + 1]) {
        const void *d;
        size_t len, skip = strlen(field) + 1;

        if (sd_journal_get_data(j, field, &d, &len) < 0 || len < skip)
                return NULL;
        len = MIN(len - skip, (size_t) JOURNAL_FIELD_MAX);
        memcpy(buf, (const char *) d + skip, len);
        buf[len] = '\0';
        return buf;
}

static void journal_forward(Systemd *s, uint64_t offset) {
        char unit[JOURNAL_FIELD_MAX + 1], user_unit[JOURNAL_FIELD_MAX + 1], ident[JOURNAL_FIELD_MAX + 1],
                comm[JOURNAL_FIELD_MAX + 1], transport[JOURNAL_FIELD_MAX + 1], prio[JOURNAL_FIELD_MAX + 1];
        _cleanup_free_ char *cursor = NULL;
        const void *d;
        size_t len;
        uint64_t usec;

        if (sd_journal_get_data(s->journal, "MESSAGE", &d, &len) < 0 || len < 8)
                return; /* nothing to show */
        len -= 8;
        if (len > RECORD_MAX_LOG_DATA - 1) {
                len = RECORD_MAX_LOG_DATA - 1;
                s->journal_truncated++;
        }
        memcpy(s->journal_buf, (const char *) d + 8, len);
        s->journal_buf[len++] = '\n';

        JournalOrigin o = {
                .unit = journal_field(s->journal, "_SYSTEMD_UNIT", unit),
                .user_unit = journal_field(s->journal, "_SYSTEMD_USER_UNIT", user_unit),
                .identifier = journal_field(s->journal, "SYSLOG_IDENTIFIER", ident),
                .comm = journal_field(s->journal, "_COMM", comm),
                .transport = journal_field(s->journal, "_TRANSPORT", transport),
        };
        const char *p = journal_field(s->journal, "PRIORITY", prio);
        /* Entries of this boot carry its monotonic clock; the boot clock is that plus the time suspended. */
        uint64_t t = sd_journal_get_monotonic_usec(s->journal, &usec, NULL) >= 0 ? usec * NSEC_PER_USEC + offset :
                                                                                   now_ns(CLOCK_BOOTTIME);
        if (sd_journal_get_cursor(s->journal, &cursor) < 0)
                cursor = NULL;
        s->host->record_error(
                s->host,
                record_journal(
                        s->host->replay,
                        journal_source(&o),
                        t,
                        journal_priority(p, p ? strlen(p) : 0),
                        cursor ?: "",
                        s->journal_buf,
                        len),
                "a journal entry");
        s->journal_entries++;
}

static bool journal_room(const Systemd *s) {
        return replay_bytes(s->host->replay) + JOURNAL_RESERVE <= s->config->replay_bytes;
}

static void journal_failed(Systemd *s, int r, const char *what) {
        if (!s->journal_error_logged)
                log_warning_errno(r, "systemd: Failed to %s the journal: %m", what);
        s->journal_error_logged = true;
}

static void journal_read(Systemd *s) {
        uint64_t offset = boot_offset_ns();
        int r;

        s->journal_more = false;
        if (s->resume.start == JOURNAL_WAIT)
                return;
        if (!s->seeked && s->resume.start != JOURNAL_READING) {
                r = s->resume.start == JOURNAL_AFTER_CURSOR ? sd_journal_seek_cursor(s->journal, s->resume.cursor) :
                                                              sd_journal_seek_head(s->journal);
                if (r < 0) {
                        /* A cursor this journal cannot parse: from the boot's start (some entries twice). */
                        journal_failed(s, r, "seek in");
                        (void) sd_journal_seek_head(s->journal);
                        s->resume.start = JOURNAL_FROM_HEAD;
                }
                s->seeked = true;
        }

        for (unsigned i = 0; i < JOURNAL_ENTRIES_PER_DISPATCH; i++) {
                if (!journal_room(s))
                        return; /* the host's acks make room; the loop calls again after each */
                r = sd_journal_next(s->journal);
                if (r < 0) {
                        journal_failed(s, r, "read");
                        return;
                }
                if (r == 0)
                        return; /* at the end: the journal's fd says when there is more */
                if (s->resume.start != JOURNAL_READING) {
                        bool on_cursor = s->resume.start == JOURNAL_AFTER_CURSOR &&
                                sd_journal_test_cursor(s->journal, s->resume.cursor) > 0;
                        if (journal_resume_first_entry(&s->resume, on_cursor))
                                continue;
                }
                journal_forward(s, offset);
        }
        s->journal_more = true;
}

static void systemd_welcome(void *p, uint32_t version, const char *journal_cursor) {
        Systemd *s = p;

        if (!s->journal)
                return;
        /* An older tetherd would refuse the records (and the agent resend them forever): wait for one that speaks
         * the journal. */
        if (version < TETHER_PROTOCOL_VERSION_JOURNAL) {
                if (!s->journal_version_logged)
                        log_warning(
                                "systemd: tetherd speaks protocol version %" PRIu32
                                ", the journal needs %u: not forwarding it",
                                version,
                                TETHER_PROTOCOL_VERSION_JOURNAL);
                s->journal_version_logged = true;
                return;
        }
        if (journal_resume_welcome(&s->resume, journal_cursor) < 0) {
                journal_failed(s, -ENOMEM, "resume");
                return;
        }
        s->journal_more = true; /* start (or go on) at the next dispatch */
}

/* ---- the connection ---- */

static int bus_open(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        /* PID 1's own socket: there long before dbus-daemon, and it sends every signal to it, subscribed or not. */
        if ((r = sd_bus_new(&bus)) < 0)
                return r;
        if ((r = sd_bus_set_address(bus, PRIVATE_BUS)) < 0)
                return r;
        r = sd_bus_start(bus);
        if (r >= 0) {
                *ret = TAKE_PTR(bus);
                return 0;
        }
        log_debug_errno(r, "systemd: Failed to connect to %s: %m; trying the system bus", PRIVATE_BUS);
        return sd_bus_open_system(ret);
}

static int bus_connect(Systemd *s) {
        int r;

        if ((r = bus_open(&s->bus)) < 0)
                return r;
        /* No sender in the matches: on the private bus messages carry none. */
        if ((r = sd_bus_match_signal_async(
                     s->bus,
                     NULL,
                     NULL,
                     SYSTEMD_PATH,
                     MANAGER_IFACE,
                     "StartupFinished",
                     on_startup_finished,
                     NULL,
                     s)) < 0)
                return r;
        if ((r = sd_bus_match_signal_async(
                     s->bus, NULL, NULL, SYSTEMD_PATH, MANAGER_IFACE, "JobRemoved", on_job_removed, NULL, s)) < 0)
                return r;
        if ((r = sd_bus_add_match_async(
                     s->bus,
                     NULL,
                     "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                     "path_namespace='" SYSTEMD_UNIT_PATH "',arg0='" UNIT_IFACE "'",
                     on_unit_changed,
                     NULL,
                     s)) < 0)
                return r;
        /* Signals to the system bus go out only while someone is subscribed. */
        if ((r = sd_bus_call_method_async(
                     s->bus, NULL, SYSTEMD_SERVICE, SYSTEMD_PATH, MANAGER_IFACE, "Subscribe", NULL, NULL, "")) < 0)
                return r;
        if ((r = fetch_manager_properties(s)) < 0)
                return r;
        return sd_bus_call_method_async(
                s->bus, NULL, SYSTEMD_SERVICE, SYSTEMD_PATH, MANAGER_IFACE, "ListUnits", on_list_units, s, "");
}

static void bus_lost(Systemd *s, int r, uint64_t now) {
        log_info_errno(r, "systemd: lost the bus connection: %m; connecting again");
        s->bus = sd_bus_flush_close_unref(s->bus);
        s->reconnect_at = now + BUS_RECONNECT_NS;
}

static void bus_reconnect(Systemd *s, uint64_t now) {
        int r;

        s->reconnect_at = UINT64_MAX;
        if ((r = bus_connect(s)) < 0) {
                log_debug_errno(r, "systemd: Failed to connect: %m");
                s->bus = sd_bus_flush_close_unref(s->bus);
                s->reconnect_at = now + BUS_RECONNECT_NS;
        }
}

static void systemd_free(void *p) {
        Systemd *s = p;
        if (!s)
                return;
        sd_bus_flush_close_unref(s->bus);
        unit_tracker_free(s->units);
        sd_journal_close(s->journal);
        journal_resume_done(&s->resume);
        free(s->journal_buf);
        free(s);
}

static int systemd_start(const AgentConfig *config, AgentHost *host, void **ret) {
        Systemd *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->config = config;
        s->host = host;
        s->reconnect_at = UINT64_MAX;
        if ((r = unit_tracker_new(config->systemd_units, config->systemd_units_max, &s->units)) < 0)
                goto fail;
        if (config->journal && (r = journal_open(s)) < 0)
                log_warning_errno(r, "systemd: Failed to open the journal: %m; not forwarding it");
        /* No PID 1 to talk to yet (or no bus): the agent runs on and tries again. */
        if ((r = bus_connect(s)) < 0) {
                log_info_errno(r, "systemd: Failed to connect to PID 1: %m; trying again every second");
                s->bus = sd_bus_flush_close_unref(s->bus);
                s->reconnect_at = now_ns(CLOCK_BOOTTIME) + BUS_RECONNECT_NS;
        }
        *ret = s;
        return 0;
fail:
        systemd_free(s);
        return r;
}

static size_t systemd_fill_pollfds(void *p, struct pollfd *fds, size_t max) {
        Systemd *s = p;
        size_t n = 0;

        if (s->bus && n < max) {
                int fd = sd_bus_get_fd(s->bus), events = sd_bus_get_events(s->bus);
                if (fd >= 0 && events >= 0)
                        fds[n++] = (struct pollfd) { .fd = fd, .events = (short) events };
        }
        if (s->journal && s->resume.start != JOURNAL_WAIT && n < max) {
                int fd = sd_journal_get_fd(s->journal), events = sd_journal_get_events(s->journal);
                if (fd >= 0 && events >= 0)
                        fds[n++] = (struct pollfd) { .fd = fd, .events = (short) events };
        }
        return n;
}

static uint64_t systemd_next_deadline(void *p) {
        Systemd *s = p;
        uint64_t d = s->reconnect_at, usec;

        if (s->bus && sd_bus_get_timeout(s->bus, &usec) >= 0 && usec != UINT64_MAX) {
                /* sd-bus's deadlines are CLOCK_MONOTONIC µs; 0: something to process now. */
                uint64_t t = usec == 0 ? 0 : usec * NSEC_PER_USEC + boot_offset_ns();
                d = MIN(d, t);
        }
        if (s->journal && s->journal_more && journal_room(s))
                d = 0;
        if (s->journal && s->resume.start != JOURNAL_WAIT && sd_journal_get_timeout(s->journal, &usec) >= 0 &&
            usec != UINT64_MAX)
                d = MIN(d, usec * NSEC_PER_USEC + boot_offset_ns());
        return d;
}

static void systemd_dispatch(void *p, uint64_t now) {
        Systemd *s = p;
        int r;

        if (!s->bus && now >= s->reconnect_at)
                bus_reconnect(s, now);
        for (unsigned i = 0; s->bus && i < BUS_MESSAGES_PER_DISPATCH; i++) {
                r = sd_bus_process(s->bus, NULL);
                if (r < 0) {
                        bus_lost(s, r, now);
                        break;
                }
                if (r == 0)
                        break;
        }
        if (s->journal && s->resume.start != JOURNAL_WAIT) {
                /* Resets the fd's readiness and notices rotated or new files. */
                (void) sd_journal_process(s->journal);
                journal_read(s);
        }
}

static const AgentPluginOps systemd_plugin = {
        .name = "the systemd integration",
        .start = systemd_start,
        .free = systemd_free,
        .fill_pollfds = systemd_fill_pollfds,
        .dispatch = systemd_dispatch,
        .next_deadline = systemd_next_deadline,
        .welcome = systemd_welcome,
};

const AgentPluginOps *const agent_plugin = &systemd_plugin;
