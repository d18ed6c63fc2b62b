/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "time-util.h"

int registry_new(const RegistryConfig *config, Stats *stats, Registry **ret) {
        int r;

        Registry *reg = calloc(1, sizeof(Registry));
        if (!reg)
                return -ENOMEM;
        reg->config = *config;
        reg->config.node_id = NULL;
        reg->config.default_service_name = NULL;
        reg->stats = stats;

        if (!(reg->config.node_id = strdup(config->node_id ?: "")) ||
            !(reg->config.default_service_name = strdup(config->default_service_name ?: "tether")) ||
            !(reg->by_id = hashmap_new()) || !(reg->by_cid = hashmap_new()) || !(reg->by_uds = hashmap_new())) {
                registry_free(reg);
                return -ENOMEM;
        }
        r = event_log_new(config->max_events ?: 4096, config->max_event_bytes ?: (size_t) 8 << 20, &reg->events);
        if (r >= 0)
                r = log_budget_new(config->log_memory_bytes, stats ? &stats->log_memory : NULL, &reg->log_budget);
        if (r < 0) {
                registry_free(reg);
                return r;
        }
        reg->config.boot_limits.log_budget = reg->log_budget;
        reg->unwritten_budget.max_bytes = config->unwritten_memory_bytes;
        reg->config.boot_limits.unwritten_budget = &reg->unwritten_budget;
        *ret = reg;
        return 0;
}

Registry *registry_free(Registry *r) {
        if (!r)
                return NULL;
        Machine *m, *n;
        LIST_FOREACH_SAFE(machines, m, n, r->machines) {
                LIST_REMOVE(machines, r->machines, m);
                machine_free(m);
        }
        hashmap_free(r->by_id);
        hashmap_free(r->by_cid);
        hashmap_free(r->by_uds);
        event_log_free(r->events);
        log_budget_free(r->log_budget); /* after the machines: their boots' tails are charged to it */
        free(r->observers);
        free((char *) r->config.node_id);
        free((char *) r->config.default_service_name);
        free(r);
        return NULL;
}

int registry_add_observer(Registry *r, const RegistryObserver *o) {
        RegistryObserver *a = realloc(r->observers, (r->n_observers + 1) * sizeof(RegistryObserver));
        if (!a)
                return -ENOMEM;
        r->observers = a;
        r->observers[r->n_observers++] = *o;
        return 0;
}

void registry_remove_observers(Registry *r, void *userdata) {
        size_t k = 0;
        for (size_t i = 0; i < r->n_observers; i++)
                if (r->observers[i].userdata != userdata)
                        r->observers[k++] = r->observers[i];
        r->n_observers = k;
}

#define NOTIFY(r, cb, ...)                                                                              \
        do {                                                                                            \
                for (size_t _i_ = 0; _i_ < (r)->n_observers; _i_++)                                     \
                        if ((r)->observers[_i_].cb)                                                     \
                                (r)->observers[_i_].cb((r), __VA_ARGS__, (r)->observers[_i_].userdata); \
        } while (0)

int registry_add_machine(Registry *r, const MachineSpec *spec, Machine **ret, const char **ret_error) {
        MachineSpec s = *spec;
        Machine *m;
        int k;

        k = machine_spec_validate(&s, r->config.vsock_port, ret_error);
        if (k < 0)
                return k;
        if (hashmap_get(r->by_id, s.machine_id)) {
                *ret_error = "machine_id is already registered";
                return -EEXIST;
        }
        if (s.cid != 0 && registry_find_by_cid(r, s.cid)) {
                *ret_error = "cid is already registered to another machine";
                return -EEXIST;
        }
        if (s.uds_path && hashmap_get(r->by_uds, s.uds_path)) {
                *ret_error = "uds_path is already registered to another machine";
                return -EEXIST;
        }
        if (r->n_machines >= r->config.max_machines) {
                *ret_error = "too many machines registered";
                return -ENOSPC;
        }

        if (s.registered_unix_ns == 0)
                s.registered_unix_ns = now_ns(CLOCK_REALTIME);
        k = machine_new(&s, r->config.default_service_name, &m);
        if (k < 0)
                return k;
        m->registry = r;

        k = hashmap_put(r->by_id, m->id, m);
        if (k < 0)
                goto fail;
        if (m->cid_key && (k = hashmap_put(r->by_cid, m->cid_key, m)) < 0) {
                hashmap_remove(r->by_id, m->id);
                goto fail;
        }
        if (m->uds_path && (k = hashmap_put(r->by_uds, m->uds_path, m)) < 0) {
                hashmap_remove(r->by_id, m->id);
                if (m->cid_key)
                        hashmap_remove(r->by_cid, m->cid_key);
                goto fail;
        }
        LIST_APPEND(machines, r->machines, m);
        r->n_machines++;
        *ret = m;
        return 0;

fail:
        machine_free(m);
        return k;
}

static bool streq_null(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

static bool attrs_equal(const Machine *a, const Machine *b) {
        if (a->n_attrs != b->n_attrs)
                return false;
        for (size_t i = 0; i < a->n_attrs; i++)
                if (strcmp(a->attrs[i].key, b->attrs[i].key) != 0 || strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
                        return false;
        return true;
}

#define SWAP(a, b)                              \
        do {                                    \
                __typeof__(a) _swap_tmp_ = (a); \
                (a) = (b);                      \
                (b) = _swap_tmp_;               \
        } while (0)

int registry_update_machine(Registry *r, Machine *m, const MachineSpec *spec, const char **ret_error) {
        _cleanup_free_ char *old_cond = NULL, *new_cond = NULL;
        MachineSpec s = *spec;
        Machine *t = NULL, *holder;
        bool changed;
        int k;

        k = machine_spec_validate(&s, r->config.vsock_port, ret_error);
        if (k < 0)
                return k;
        if (strcmp(s.machine_id, m->id) != 0 || !streq_null(s.uds_path, m->uds_path) || s.source != m->source) {
                *ret_error = "machine_id, uds_path and source cannot change";
                return -EINVAL;
        }
        holder = s.cid != 0 ? registry_find_by_cid(r, s.cid) : NULL;
        if (holder && holder != m) {
                *ret_error = "cid is already registered to another machine";
                return -EEXIST;
        }

        s.registered_unix_ns = m->registered_unix_ns;
        k = machine_new(&s, r->config.default_service_name, &t);
        if (k < 0)
                return k;
        old_cond = ready_condition_to_string(&m->ready_condition);
        new_cond = ready_condition_to_string(&t->ready_condition);
        if (!old_cond || !new_cond) {
                machine_free(t);
                return -ENOMEM;
        }

        if (t->cid != m->cid) {
                if (t->cid_key && (k = hashmap_put(r->by_cid, t->cid_key, m)) < 0) {
                        machine_free(t);
                        return k;
                }
                if (m->cid_key)
                        hashmap_remove(r->by_cid, m->cid_key);
                SWAP(m->cid, t->cid);
                SWAP(m->cid_key, t->cid_key);
        }
        changed = m->cid != t->cid || !streq_null(m->traceparent, t->traceparent) ||
                !streq_null(m->request_id, t->request_id) || !streq_null(m->service_name, t->service_name) ||
                !streq_null(m->source_id, t->source_id) || strcmp(old_cond, new_cond) != 0 || !attrs_equal(m, t);

        SWAP(m->traceparent, t->traceparent);
        SWAP(m->has_parent, t->has_parent);
        SWAP(m->parent, t->parent);
        SWAP(m->request_id, t->request_id);
        SWAP(m->service_name, t->service_name);
        SWAP(m->source_id, t->source_id);
        SWAP(m->attrs, t->attrs);
        SWAP(m->n_attrs, t->n_attrs);
        SWAP(m->ready_condition, t->ready_condition);
        machine_free(t);
        return changed;
}

static void registry_unlink_machine(Registry *r, Machine *m) {
        hashmap_remove(r->by_id, m->id);
        if (m->cid_key)
                hashmap_remove(r->by_cid, m->cid_key);
        if (m->uds_path)
                hashmap_remove(r->by_uds, m->uds_path);
        LIST_REMOVE(machines, r->machines, m);
        r->n_machines--;
        machine_free(m);
}

void registry_remove_machine(Registry *r, Machine *m) {
        if (!m)
                return;
        registry_emit_event(r, m, "deleted", now_ns(CLOCK_REALTIME), NULL);
        NOTIFY(r, machine_removed, m);
        registry_unlink_machine(r, m);
}

void registry_announce_machine(Registry *r, Machine *m) {
        (void) registry_emit_event(r, m, "registered", m->registered_unix_ns, NULL);
}

void registry_machine_persisted(Registry *r, Machine *m) {
        NOTIFY(r, machine_persisted, m);
}

void registry_discard_machine(Registry *r, Machine *m) {
        if (m)
                registry_unlink_machine(r, m);
}

Machine *registry_find(const Registry *r, const char *machine_id) {
        return hashmap_get(r->by_id, machine_id);
}

Machine *registry_find_by_cid(const Registry *r, uint32_t cid) {
        char key[32];
        snprintf(key, sizeof(key), "cid:%u", cid);
        return hashmap_get(r->by_cid, key);
}

Machine *registry_find_by_uds(const Registry *r, const char *uds_path) {
        return hashmap_get(r->by_uds, uds_path);
}

int registry_start_boot(Registry *r, Machine *m, const char *boot_id, Boot **ret_boot, Boot **ret_evicted) {
        Boot *b, *evicted = NULL, *previous = m->current;
        int k;

        b = machine_find_boot(m, boot_id);
        if (b) {
                m->current = b;
                *ret_boot = b;
                *ret_evicted = NULL;
                return 0;
        }

        k = boot_new(
                m->next_boot_index, boot_id, m->has_parent ? m->parent.trace_id : NULL, &r->config.boot_limits, &b);
        if (k < 0)
                return k;
        k = machine_add_boot(m, b, r->config.max_boots, &evicted);
        if (k < 0) {
                boot_free(b);
                return k;
        }
        /* The host said when it started this VM (libvirt): that is where this boot starts. */
        b->host_start_unix_ns = m->pending_host_start_unix_ns;
        m->pending_host_start_unix_ns = 0;

        if (previous && !previous->exit.set)
                NOTIFY(r, boot_finished, m, previous);
        NOTIFY(r, boot_started, m, b);
        *ret_boot = b;
        *ret_evicted = evicted;
        return 1;
}

void registry_set_state(Registry *r, Machine *m, MachineState state, const char *reason) {
        MachineState old = m->state;

        if (reason || state != old)
                (void) free_and_strdup(&m->state_reason, reason);
        if (state == old)
                return;
        m->state = state;
        m->state_unix_ns = now_ns(CLOCK_REALTIME);
        NOTIFY(r, state_changed, m, old);
}

void registry_set_connected(Registry *r, Machine *m, bool connected) {
        if (m->connected == connected)
                return;
        m->connected = connected;
        NOTIFY(r, connection_changed, m);
}

int registry_emit_event(Registry *r, Machine *m, const char *transition, uint64_t time_unix_ns, json_t *details) {
        json_t *o = json_object();
        int k;

        if (!o) {
                json_decref(details);
                return -ENOMEM;
        }
        json_object_set_new(o, "machine_id", m ? json_string(m->id) : json_null());
        json_object_set_new(o, "node_id", json_string(r->config.node_id));
        json_object_set_new(o, "request_id", m && m->request_id ? json_string(m->request_id) : json_null());
        json_object_set_new(o, "transition", json_string(transition));
        json_object_set_new(o, "time_unix_ns", json_integer((json_int_t) time_unix_ns));
        if (m && m->current && strcmp(transition, "registered") != 0 && strcmp(transition, "deleted") != 0)
                json_object_set_new(o, "boot_id", json_string(m->current->boot_id));
        if (details) {
                json_object_update(o, details);
                json_decref(details);
        }

        /* Counted as it happens, whether or not the event log can keep the event. */
        int t = machine_transition_from_string(transition);
        if (t >= 0 && r->stats)
                r->stats->transitions[t]++;

        char *line = json_dumps(o, JSON_COMPACT);
        if (!line) {
                json_decref(o);
                return -ENOMEM;
        }
        uint64_t evicted = r->events->evicted;
        k = event_log_append(r->events, m ? m->id : NULL, line, NULL);
        if (r->stats) {
                r->stats->events_evicted += r->events->evicted - evicted;
                if (k == -E2BIG)
                        r->stats->events_too_large++;
        }
        if (k >= 0) {
                RegistryEvent re = { .machine = m, .transition = transition, .object = o };
                NOTIFY(r, event_added, &re);
        }
        json_decref(o);
        return k < 0 ? k : 0;
}

void registry_notify_record_stored(Registry *r, Machine *m, Boot *b, const Tether__Envelope *e, uint64_t recv_unix_ns) {
        NOTIFY(r, record_stored, m, b, e, recv_unix_ns);
}

void registry_notify_clock_fixed(Registry *r, Machine *m, Boot *b) {
        NOTIFY(r, clock_fixed, m, b);
}

void registry_notify_sample_added(Registry *r, Machine *m, const GuestSample *s) {
        NOTIFY(r, sample_added, m, s);
}

void registry_notify_boot_finished(Registry *r, Machine *m, Boot *b) {
        NOTIFY(r, boot_finished, m, b);
}
