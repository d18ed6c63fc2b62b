/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "agentless.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "macro.h"
#include "time-util.h"
#include "traceparent.h"

/* The agent instance every agentless session says it is: the same one each message, so that a boot's seq space
 * stays one (boot.h, BootInstance) and its instance table does not grow. */
static const uint8_t agentless_instance[16] = { 't', 'e', 't', 'h', 'e', 'r', ':', 'v',
                                                'm', 'm', 'n', 'o', 't', 'i', 'f', 'y' };

#define AGENTLESS_MAX_ATTRS 8u

bool boot_is_agentless(const Boot *b) {
        return b && b->boot_id && strncmp(b->boot_id, AGENTLESS_BOOT_ID_PREFIX, strlen(AGENTLESS_BOOT_ID_PREFIX)) == 0;
}

/* An agent is connected, or the boot an agent reported is still going (not exited, the VM not started again). */
static bool agent_boot_current(const Machine *m) {
        const Boot *b = m->current;

        return m->connected || (b && !boot_is_agentless(b) && !b->exit.set && m->pending_host_start_unix_ns == 0);
}

/* Whether the boot's last word on a unit is that it became active: its milestone `name` came after any
 * `inactive:name`. */
static bool boot_unit_active(const Boot *b, const char *name) {
        for (size_t i = b->n_milestones; i > 0; i--) {
                const char *m = b->milestones[i - 1].name;
                if (strcmp(m, name) == 0)
                        return true;
                if (strncmp(m, AGENTLESS_INACTIVE_PREFIX, strlen(AGENTLESS_INACTIVE_PREFIX)) == 0 &&
                    strcmp(m + strlen(AGENTLESS_INACTIVE_PREFIX), name) == 0)
                        return false;
        }
        return false;
}

static bool agentless_wants_new_boot(const Machine *m, const VmmNotify *n) {
        const Boot *b = m->current;

        if (!boot_is_agentless(b) || b->exit.set || m->pending_host_start_unix_ns != 0)
                return true;
        if (!b->ready.set)
                /* Before ready a unit can be reached twice in one boot (the initrd's sysinit.target, then the
                 * root's, after switch-root). */
                return false;
        if (n->ready)
                return true;
        /* PID 1 says its machine id and hostname once, as it starts (never from an initrd): after ready that is
         * a guest that started again without a shutdown message. */
        if (n->hostname || n->machine_id)
                return true;
        /* So is a unit reached again while it is still active; a target stopped and started again (systemctl
         * stop/start, isolate) said it went inactive in between and stays in the boot. Once the boot's
         * milestones hit their bound that can no longer be told: only the two signs above count. */
        if (b->milestones_dropped > 0)
                return false;
        for (size_t i = 0; i < n->n_units; i++)
                if (n->units[i].active && boot_unit_active(b, n->units[i].name))
                        return true;
        return false;
}

static int agentless_feed(Session *s, const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;
        int r;

        r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r == -EMSGSIZE ? -EPROTO : r;
        return session_feed(s, frame, len);
}

typedef struct Attrs {
        Tether__Attribute a[AGENTLESS_MAX_ATTRS];
        Tether__Attribute *p[AGENTLESS_MAX_ATTRS];
        size_t n;
} Attrs;

static void attrs_add(Attrs *at, const char *key, const char *value) {
        if (!value || at->n >= AGENTLESS_MAX_ATTRS)
                return;
        at->a[at->n] = (Tether__Attribute) TETHER__ATTRIBUTE__INIT;
        at->a[at->n].key = (char *) key;
        at->a[at->n].value = (char *) value;
        at->p[at->n] = &at->a[at->n];
        at->n++;
}

/* The guest time of now on an agentless boot: since its first message (its Hello said boottime 1). */
static uint64_t agentless_boottime(const Boot *b) {
        uint64_t now = now_ns(CLOCK_REALTIME);

        if (!b->hello_offset_valid || b->hello_offset_ns <= 0 || now <= (uint64_t) b->hello_offset_ns)
                return 1;
        return now - (uint64_t) b->hello_offset_ns;
}

/* Feeds a record with the next wire seq: right after what the boot holds. */
static int agentless_record(Session *s, Tether__Envelope *e) {
        e->seq = s->boot->last_seq + 1 - s->seq_offset;
        return agentless_feed(s, e);
}

static int agentless_milestone(Session *s, const char *name, const Attrs *common, const Attrs *extra) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Milestone ms = TETHER__MILESTONE__INIT;
        Tether__Attribute *p[2 * AGENTLESS_MAX_ATTRS];
        size_t n = 0;

        for (size_t i = 0; i < common->n; i++)
                p[n++] = common->p[i];
        for (size_t i = 0; extra && i < extra->n; i++)
                p[n++] = extra->p[i];
        ms.name = (char *) name;
        ms.boottime_ns = agentless_boottime(s->boot);
        ms.n_attributes = n;
        ms.attributes = p;
        e.msg_case = TETHER__ENVELOPE__MSG_MILESTONE;
        e.milestone = &ms;
        return agentless_record(s, &e);
}

static int agentless_ready(Session *s, const VmmNotify *n, const Attrs *common) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Ready ready = TETHER__READY__INIT;
        int r;

        r = agentless_milestone(s, "systemd.ready", common, NULL);
        if (r < 0)
                return r;
        ready.source = (char *) AGENTLESS_READY_SOURCE;
        ready.detail = n->status ?: (char *) "READY=1";
        ready.boottime_ns = agentless_boottime(s->boot);
        e.msg_case = TETHER__ENVELOPE__MSG_READY;
        e.ready = &ready;
        return agentless_record(s, &e);
}

static int agentless_shutdown(Session *s, const VmmNotify *n, const Attrs *common) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Exit ex = TETHER__EXIT__INIT;
        _cleanup_free_ char *reason = NULL;
        Attrs extra = {};
        char code[16];
        int r;

        snprintf(code, sizeof(code), "%" PRIi32, n->exit_status);
        attrs_add(&extra, "systemd.shutdown", n->shutdown);
        attrs_add(&extra, "systemd.exit_status", n->exit_status_set ? code : NULL);
        attrs_add(&extra, "systemd.reboot_parameter", n->reboot_parameter);
        r = agentless_milestone(s, "systemd.shutdown", common, &extra);
        if (r < 0)
                return r;
        if (asprintf(&reason, "systemd: %s", n->shutdown ?: "exit") < 0)
                return -ENOMEM;
        ex.code = n->exit_status;
        ex.reason = reason;
        ex.boottime_ns = agentless_boottime(s->boot);
        e.msg_case = TETHER__ENVELOPE__MSG_EXIT;
        e.exit = &ex;
        return agentless_record(s, &e);
}

static int agentless_records(Session *s, const VmmNotify *n) {
        Attrs common = {};
        int r;

        attrs_add(&common, "systemd.status", n->status);
        attrs_add(&common, "host.name", n->hostname);
        attrs_add(&common, "systemd.machine_id", n->machine_id);

        for (size_t i = 0; i < n->n_units; i++) {
                _cleanup_free_ char *name = NULL;
                if (!n->units[i].active && asprintf(&name, AGENTLESS_INACTIVE_PREFIX "%s", n->units[i].name) < 0)
                        return -ENOMEM;
                r = agentless_milestone(s, name ?: n->units[i].name, &common, NULL);
                if (r < 0)
                        return r;
        }
        if (n->ready) {
                r = agentless_ready(s, n, &common);
                if (r < 0)
                        return r;
        }
        if (n->exit_status_set || n->shutdown) {
                r = agentless_shutdown(s, n, &common);
                if (r < 0)
                        return r;
        }
        if (n->n_units == 0 && !n->ready && !n->exit_status_set && !n->shutdown)
                return agentless_milestone(s, "systemd.notify", &common, NULL);
        return 0;
}

static json_t *vmm_notify_to_json(const VmmNotify *n) {
        json_t *units = json_array();
        for (size_t i = 0; units && i < n->n_units; i++)
                json_array_append_new(
                        units, json_pack("{s:s, s:b}", "name", n->units[i].name, "active", n->units[i].active));
        return json_pack(
                "{s:b, s:s?, s:s?, s:s?, s:o, s:o, s:s?, s:s?}",
                "ready",
                n->ready,
                "status",
                n->status,
                "hostname",
                n->hostname,
                "systemd_machine_id", /* informational, and not the event's machine_id: the transport's */
                n->machine_id,
                "units",
                units ?: json_null(),
                "exit_status",
                n->exit_status_set ? json_integer(n->exit_status) : json_null(),
                "shutdown",
                n->shutdown,
                "reboot_parameter",
                n->reboot_parameter);
}

int agentless_apply(const SessionContext *ctx, Machine *m, const VmmNotify *n) {
        Tether__Envelope e = TETHER__ENVELOPE__INIT;
        Tether__Hello h = TETHER__HELLO__INIT;
        char boot_id[sizeof(AGENTLESS_BOOT_ID_PREFIX) + 32];
        Session *s = NULL;
        bool fresh;
        int r;

        if (agent_boot_current(m)) {
                /* The agent's boots are the agent's: what systemd says goes beside them, as an event. */
                registry_emit_event(ctx->registry, m, "systemd_notify", now_ns(CLOCK_REALTIME), vmm_notify_to_json(n));
                return 1;
        }

        fresh = agentless_wants_new_boot(m, n);
        if (fresh) {
                uint8_t id[16];
                r = random_id(id, sizeof(id));
                if (r < 0)
                        return r;
                memcpy(boot_id, AGENTLESS_BOOT_ID_PREFIX, strlen(AGENTLESS_BOOT_ID_PREFIX));
                hex_encode(id, sizeof(id), boot_id + strlen(AGENTLESS_BOOT_ID_PREFIX));
        } else
                snprintf(boot_id, sizeof(boot_id), "%s", m->current->boot_id);

        h.protocol_version = TETHER_PROTOCOL_VERSION;
        h.boot_id = boot_id;
        h.agent_version = (char *) "systemd (vmm.notify)";
        h.hostname = n->hostname ?: (!fresh ? m->current->hostname : NULL);
        h.boottime_ns = fresh ? 1 : 0; /* the guest clock of an agentless boot starts at its first message */
        h.agent_instance.data = (uint8_t *) agentless_instance;
        h.agent_instance.len = sizeof(agentless_instance);
        e.msg_case = TETHER__ENVELOPE__MSG_HELLO;
        e.hello = &h;

        r = session_new(ctx, m, &s);
        if (r < 0)
                return r;
        s->local = true;
        r = agentless_feed(s, &e);
        if (r >= 0)
                r = agentless_records(s, n);
        session_flush_writes(s);
        /* CLOSE_EOF: for a local session only the boot's tail work and its sync follow. */
        session_end(s, CLOSE_EOF);
        session_free(s);
        return r < 0 ? r : 0;
}
