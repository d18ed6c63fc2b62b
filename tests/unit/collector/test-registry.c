/* SPDX-License-Identifier: MIT */
/* Registry: identity by CID or Unix socket path only, duplicates refused, validation, bounds, boot eviction and
 * the event ring. */

#include <errno.h>
#include <string.h>

#include "collector-test.h"
#include "machine-json.h"
#include "macro.h"
#include "registry.h"

static Stats stats;

static Registry *new_registry(size_t max_machines, size_t max_boots) {
        RegistryConfig c = {
                .node_id = "node-a",
                .default_service_name = "svc",
                .max_machines = max_machines,
                .max_boots = max_boots,
                .max_events = 8,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        Registry *r;
        memset(&stats, 0, sizeof(stats));
        assert_int_equal(registry_new(&c, &stats, &r), 0);
        return r;
}

static int add(Registry *r, const char *id, uint32_t cid, const char *uds, Machine **ret) {
        MachineSpec s = { .machine_id = id, .cid = cid, .uds_path = uds };
        const char *err = NULL;
        Machine *m;
        int k = registry_add_machine(r, &s, &m, &err);
        if (k < 0)
                assert_non_null(err);
        else if (ret)
                *ret = m;
        return k;
}

static void test_identity_by_transport(void **state) {
        Registry *r = new_registry(16, 4);
        Machine *a, *b;

        assert_int_equal(add(r, "vm-a", 42, NULL, &a), 0);
        assert_int_equal(add(r, "vm-b", 0, "/run/fc/vm-b/v.sock", &b), 0);
        assert_ptr_equal(registry_find_by_cid(r, 42), a);
        assert_null(registry_find_by_cid(r, 43));
        assert_null(registry_find_by_cid(r, 0));
        assert_ptr_equal(registry_find_by_uds(r, "/run/fc/vm-b/v.sock"), b);
        assert_null(registry_find_by_uds(r, "/run/fc/vm-a/v.sock"));
        assert_ptr_equal(registry_find(r, "vm-a"), a);
        assert_string_equal(a->service_name, "svc");
        assert_int_equal(a->state, MACHINE_REGISTERED);
        assert_int_equal(r->n_machines, 2);
        registry_free(r);
}

/* One socket path, one spelling: aliases of a registered path cannot be registered beside it. */
static void test_uds_path_canonical(void **state) {
        Registry *r = new_registry(16, 4);
        static const char *const aliases[] = {
                "//run/fc/v.sock",     "/run//fc/v.sock", "/run/./fc/v.sock",
                "/run/x/../fc/v.sock", "/run/fc/v.sock/", "/run/fc/.",
                "/run/fc/..",          "run/fc/v.sock",   "/",
                "/./run/fc/v.sock",
        };

        assert_int_equal(add(r, "vm-a", 0, "/run/fc/v.sock", NULL), 0);
        for (size_t i = 0; i < ELEMENTSOF(aliases); i++)
                assert_int_equal(add(r, "vm-b", 0, aliases[i], NULL), -EINVAL);
        assert_int_equal(add(r, "vm-b", 0, "/run/fc/v.sock", NULL), -EEXIST);
        /* Names with dots are still names. */
        assert_int_equal(add(r, "vm-c", 0, "/run/fc/.v.sock", NULL), 0);
        assert_int_equal(add(r, "vm-d", 0, "/run/fc/...", NULL), 0);
        assert_int_equal(r->n_machines, 3);
        registry_free(r);
}

static void test_duplicates_refused(void **state) {
        Registry *r = new_registry(16, 4);

        assert_int_equal(add(r, "vm-a", 42, NULL, NULL), 0);
        assert_int_equal(add(r, "vm-c", 0, "/tmp/c.sock", NULL), 0);
        assert_int_equal(add(r, "vm-a", 43, NULL, NULL), -EEXIST);         /* id */
        assert_int_equal(add(r, "vm-b", 42, NULL, NULL), -EEXIST);         /* CID */
        assert_int_equal(add(r, "vm-d", 0, "/tmp/c.sock", NULL), -EEXIST); /* socket */
        assert_int_equal(r->n_machines, 2);
        /* Refused registrations changed nothing. */
        assert_null(registry_find(r, "vm-b"));
        assert_null(registry_find_by_cid(r, 43));
        registry_free(r);
}

static void test_validation(void **state) {
        Registry *r = new_registry(16, 4);
        char long_id[140];

        memset(long_id, 'x', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        assert_int_equal(add(r, "vm-a", 42, "/tmp/a.sock", NULL), -EINVAL); /* both */
        assert_int_equal(add(r, "vm-a", 0, NULL, NULL), -EINVAL);           /* neither */
        assert_int_equal(add(r, "vm-a", 2, NULL, NULL), -EINVAL);           /* the host CID */
        assert_int_equal(add(r, "vm a", 42, NULL, NULL), -EINVAL);
        assert_int_equal(add(r, "vm/a", 42, NULL, NULL), -EINVAL);
        assert_int_equal(add(r, "..", 42, NULL, NULL), -EINVAL);
        assert_int_equal(add(r, "", 42, NULL, NULL), -EINVAL);
        assert_int_equal(add(r, long_id, 42, NULL, NULL), -EINVAL);
        assert_int_equal(add(r, "vm-a", 0, "relative.sock", NULL), -EINVAL);

        MachineSpec s = { .machine_id = "vm-a", .cid = 42, .traceparent = "00-zz-00-01" };
        const char *err = NULL;
        Machine *m;
        assert_int_equal(registry_add_machine(r, &s, &m, &err), -EINVAL);
        assert_non_null(strstr(err, "traceparent"));
        s.traceparent = NULL;
        s.ready_condition = "whenever";
        assert_int_equal(registry_add_machine(r, &s, &m, &err), -EINVAL);
        s.ready_condition = "milestone:app.up";
        assert_int_equal(registry_add_machine(r, &s, &m, &err), 0);
        assert_int_equal(m->ready_condition.type, READY_CONDITION_MILESTONE);
        assert_string_equal(m->ready_condition.arg, "app.up");
        assert_int_equal(r->n_machines, 1);
        registry_free(r);
}

static void test_max_machines(void **state) {
        Registry *r = new_registry(2, 4);

        assert_int_equal(add(r, "vm-1", 10, NULL, NULL), 0);
        assert_int_equal(add(r, "vm-2", 11, NULL, NULL), 0);
        assert_int_equal(add(r, "vm-3", 12, NULL, NULL), -ENOSPC);
        registry_remove_machine(r, registry_find(r, "vm-1"));
        assert_null(registry_find_by_cid(r, 10));
        assert_int_equal(add(r, "vm-3", 12, NULL, NULL), 0);
        /* The freed CID can be taken again. */
        registry_remove_machine(r, registry_find(r, "vm-2"));
        assert_int_equal(add(r, "vm-4", 10, NULL, NULL), 0);
        registry_free(r);
}

static void test_boot_eviction(void **state) {
        Registry *r = new_registry(4, 2);
        Machine *m;
        Boot *b1, *b2, *b3, *again, *evicted;

        assert_int_equal(add(r, "vm-1", 10, NULL, &m), 0);
        assert_int_equal(registry_start_boot(r, m, "boot-1", &b1, &evicted), 1);
        assert_null(evicted);
        assert_int_equal(registry_start_boot(r, m, "boot-2", &b2, &evicted), 1);
        assert_null(evicted);
        assert_int_equal(b2->index, b1->index + 1);
        assert_memory_not_equal(b1->trace_id, b2->trace_id, 16);
        /* The same boot id continues its boot. */
        assert_int_equal(registry_start_boot(r, m, "boot-2", &again, &evicted), 0);
        assert_ptr_equal(again, b2);
        assert_int_equal(registry_start_boot(r, m, "boot-3", &b3, &evicted), 1);
        assert_ptr_equal(evicted, b1);
        boot_free(evicted);
        assert_int_equal(m->n_boots, 2);
        assert_ptr_equal(m->current, b3);
        assert_null(machine_find_boot(m, "boot-1"));
        registry_free(r);
}

static void test_traceparent_trace_id(void **state) {
        Registry *r = new_registry(4, 4);
        MachineSpec s = { .machine_id = "vm-t",
                          .cid = 50,
                          .traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };
        const char *err;
        Machine *m;
        Boot *b, *ev;

        assert_int_equal(registry_add_machine(r, &s, &m, &err), 0);
        assert_int_equal(registry_start_boot(r, m, "boot-1", &b, &ev), 1);
        assert_memory_equal(b->trace_id, m->parent.trace_id, 16);
        assert_int_equal(b->trace_id[0], 0x4b);
        registry_free(r);
}

static void test_events_ring(void **state) {
        Registry *r = new_registry(4, 4);
        Machine *m;

        assert_int_equal(add(r, "vm-1", 10, NULL, &m), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(registry_emit_event(r, m, "milestone", 1000 + i, json_pack("{s:i}", "i", i)), 0);
        /* Bounded: the ring keeps the newest 8. */
        assert_int_equal(r->events->n, 8);
        const Event *first = event_log_at(r->events, 0);
        assert_int_equal(first->id, 3);
        assert_string_equal(first->machine_id, "vm-1");
        json_t *o = json_loads(first->json, 0, NULL);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "transition")), "milestone");
        assert_string_equal(json_string_value(json_object_get(o, "node_id")), "node-a");
        assert_int_equal(json_integer_value(json_object_get(o, "i")), 2);
        json_decref(o);
        assert_int_equal(event_log_find_after(r->events, 5), 3);
        assert_int_equal(event_log_find_after(r->events, 100), 8);
        registry_free(r);
}

static void test_spec_from_json(void **state) {
        MachineSpecJson spec;
        const char *err = NULL;
        json_t *o = json_loads(
                "{\"machine_id\": \"vm-j\", \"uds_path\": \"/run/x/v.sock\", \"attributes\": "
                "{\"team\": \"a\", \"tier\": \"b\"}, \"ready_condition\": \"source:exec\", "
                "\"unknown_key\": 1}",
                0,
                NULL);
        assert_non_null(o);
        assert_int_equal(machine_spec_from_json(o, &spec, &err), 0);
        assert_string_equal(spec.spec.machine_id, "vm-j");
        assert_int_equal(spec.spec.cid, 0);
        assert_string_equal(spec.spec.uds_path, "/run/x/v.sock");
        assert_int_equal(spec.spec.n_attrs, 2);
        assert_string_equal(spec.spec.ready_condition, "source:exec");

        Registry *r = new_registry(4, 4);
        Machine *m;
        assert_int_equal(registry_add_machine(r, &spec.spec, &m, &err), 0);
        json_decref(o);
        /* machine.json round trip. */
        o = machine_registration_to_json(m);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(json_object_get(o, "attributes"), "tier")), "b");
        assert_string_equal(json_string_value(json_object_get(o, "ready_condition")), "source:exec");
        assert_int_equal(json_integer_value(json_object_get(o, "registered_unix_ns")), m->registered_unix_ns);
        json_decref(o);
        registry_free(r);

        static const char *const bad[] = {
                "[]",
                "{\"cid\": 4}",
                "{\"machine_id\": 7, \"cid\": 4}",
                "{\"machine_id\": \"x\", \"cid\": \"4\"}",
                "{\"machine_id\": \"x\", \"cid\": -1}",
                "{\"machine_id\": \"x\", \"cid\": 4, \"attributes\": {\"k\": 1}}",
                "{\"machine_id\": \"x\", \"cid\": 4, \"attributes\": []}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                o = json_loads(bad[i], 0, NULL);
                assert_non_null(o);
                err = NULL;
                assert_int_equal(machine_spec_from_json(o, &spec, &err), -EINVAL);
                assert_non_null(err);
                json_decref(o);
        }
}

static void test_update_machine(void **state) {
        Registry *r = new_registry(16, 4);
        const char *k[1] = { "libvirt.domain.name" }, *v[1] = { "web" }, *err = NULL;
        MachineSpec s = {
                .machine_id = "lv-1",
                .source = MACHINE_SOURCE_LIBVIRT,
                .source_id = "uuid-1",
                .attr_keys = k,
                .attr_values = v,
                .n_attrs = 1,
        };
        Machine *m, *other;
        Boot *b, *evicted;

        /* A libvirt machine may hold no CID (its domain is not running); an API one may not. */
        assert_int_equal(registry_add_machine(r, &s, &m, &err), 0);
        assert_int_equal(m->cid, 0);
        assert_int_equal(m->source, MACHINE_SOURCE_LIBVIRT);
        assert_string_equal(m->source_id, "uuid-1");
        MachineSpec api = { .machine_id = "api-1" };
        assert_int_equal(registry_add_machine(r, &api, &other, &err), -EINVAL);
        assert_int_equal(add(r, "api-1", 50, NULL, &other), 0);

        /* Nothing changed: 0. */
        assert_int_equal(registry_update_machine(r, m, &s, &err), 0);
        /* CID and metadata: re-indexed, 1. */
        s.cid = 42;
        s.request_id = "req-2";
        s.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        s.ready_condition = "source:sd_notify";
        assert_int_equal(registry_update_machine(r, m, &s, &err), 1);
        assert_ptr_equal(registry_find_by_cid(r, 42), m);
        assert_string_equal(m->request_id, "req-2");
        assert_true(m->has_parent);
        assert_int_equal(m->ready_condition.type, READY_CONDITION_SOURCE);
        /* The CID of another machine: refused, unchanged. */
        s.cid = 50;
        s.request_id = "req-3";
        assert_int_equal(registry_update_machine(r, m, &s, &err), -EEXIST);
        assert_int_equal(m->cid, 42);
        assert_string_equal(m->request_id, "req-2");
        assert_ptr_equal(registry_find_by_cid(r, 50), other);
        /* Identity cannot change; invalid specs are refused. */
        s.cid = 0;
        s.machine_id = "lv-2";
        assert_int_equal(registry_update_machine(r, m, &s, &err), -EINVAL);
        s.machine_id = "lv-1";
        s.traceparent = "garbage";
        assert_int_equal(registry_update_machine(r, m, &s, &err), -EINVAL);
        s.traceparent = NULL;
        /* CID dropped: the index forgets it. */
        assert_int_equal(registry_update_machine(r, m, &s, &err), 1);
        assert_null(registry_find_by_cid(r, 42));
        assert_false(m->has_parent);

        /* The pending host start goes to the next new boot only. */
        m->pending_host_start_unix_ns = 777;
        assert_int_equal(registry_start_boot(r, m, "b1", &b, &evicted), 1);
        assert_int_equal(b->host_start_unix_ns, 777);
        assert_int_equal(m->pending_host_start_unix_ns, 0);
        assert_int_equal(registry_start_boot(r, m, "b1", &b, &evicted), 0);
        assert_int_equal(b->host_start_unix_ns, 777);
        registry_free(r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_update_machine),     cmocka_unit_test(test_identity_by_transport),
                cmocka_unit_test(test_uds_path_canonical), cmocka_unit_test(test_duplicates_refused),
                cmocka_unit_test(test_validation),         cmocka_unit_test(test_max_machines),
                cmocka_unit_test(test_boot_eviction),      cmocka_unit_test(test_traceparent_trace_id),
                cmocka_unit_test(test_events_ring),        cmocka_unit_test(test_spec_from_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
