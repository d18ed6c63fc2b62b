/* SPDX-License-Identifier: MIT */
/* The machine manager against a fake transport that records its calls and can fail: registration (with and
 * without a state directory, durable at once or after the syncer), the --uds-root rule, a failed listen mapped to
 * the error the API answers with, a registration that fails to reach the disk removed again (at once, or after
 * the sync), updates, deletion and disconnection. */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector-test.h"
#include "macro.h"
#include "manager.h"

typedef struct World {
        TestManager t;
        unsigned removed, persisted; /* machine_removed and machine_persisted observers */
} World;

static void on_removed(Registry *r, Machine *m, void *userdata) {
        ((World *) userdata)->removed++;
}

static void on_persisted(Registry *r, Machine *m, void *userdata) {
        ((World *) userdata)->persisted++;
}

static World *world_new(TestStore store) {
        World *w = calloc(1, sizeof(World));
        assert_non_null(w);
        test_manager_init(&w->t, store);
        RegistryObserver o = { .machine_removed = on_removed, .machine_persisted = on_persisted, .userdata = w };
        assert_int_equal(registry_add_observer(w->t.registry, &o), 0);
        return w;
}

static void world_free(World *w) {
        test_manager_done(&w->t);
        free(w);
}

static int do_register(World *w, const char *id, uint32_t cid, const char *uds, Machine **ret, const char **ret_error) {
        MachineSpec spec = { .machine_id = id, .cid = cid, .uds_path = uds };
        *ret_error = NULL;
        return manager_register_machine(&w->t.manager, &spec, ret, ret_error);
}

/* Where a machine's registration lives in the state directory. */
static void machine_file(const World *w, const char *id, char *buf, size_t size) {
        snprintf(buf, size, "%s/machines/%s/machine.json", w->t.dir, id);
}

static void test_register_announces(void **state) {
        World *w = world_new(TEST_NO_STORE);
        const char *err;
        Machine *a, *b;

        /* A CID machine has no socket of its own: nothing to listen on. */
        assert_int_equal(do_register(w, "vm-a", 42, NULL, &a, &err), 0);
        assert_ptr_equal(registry_find(w->t.registry, "vm-a"), a);
        assert_int_equal(w->t.transport.listens, 0);
        assert_int_equal(test_count_events(w->t.registry, "registered"), 1);

        assert_int_equal(do_register(w, "vm-b", 0, "/run/vms/b/v.sock", &b, &err), 0);
        assert_int_equal(w->t.transport.listens, 1);
        assert_string_equal(w->t.transport.listened, "/run/vms/b/v.sock");
        assert_ptr_equal(registry_find_by_uds(w->t.registry, "/run/vms/b/v.sock"), b);
        assert_int_equal(test_count_events(w->t.registry, "registered"), 2);

        /* The registry's refusals come through as they are, and nothing is set up for them. */
        assert_int_equal(do_register(w, "vm-a", 43, NULL, &a, &err), -EEXIST);
        assert_non_null(err);
        assert_int_equal(do_register(w, "vm-c", 0, "/run/vms/b/v.sock", &a, &err), -EEXIST);
        assert_non_null(err);
        assert_int_equal(do_register(w, "vm/d", 44, NULL, &a, &err), -EINVAL);
        assert_non_null(err);
        assert_int_equal(w->t.transport.listens, 1);
        assert_int_equal(w->t.transport.disconnects + w->t.transport.unlistens, 0);
        assert_int_equal(w->t.registry->n_machines, 2);
        assert_int_equal(test_count_events(w->t.registry, "registered"), 2);
        world_free(w);
}

/* --uds-root: a socket path must lie strictly below one of the roots ("/" allows any); without roots, or without
 * a socket path, anything goes. */
static void test_uds_root(void **state) {
        static char *roots[] = { (char *) "/run/vms", (char *) "/srv/fc", NULL };
        static char *root_all[] = { (char *) "/", NULL };
        static const struct {
                char **roots;
                const char *uds_path; /* NULL: a CID machine */
                bool allowed;
        } cases[] = {
                { roots, "/run/vms/a.sock", true },
                { roots, "/run/vms/x/y/a.sock", true },
                { roots, "/srv/fc/a.sock", true },
                { roots, "/run/vmsx/a.sock", false }, /* a prefix of the name is not a parent directory */
                { roots, "/run/a.sock", false },
                { roots, "/etc/passwd", false },
                { roots, NULL, true },
                { root_all, "/etc/passwd", true },
                { NULL, "/etc/passwd", true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                World *w = world_new(TEST_NO_STORE);
                const char *err;
                Machine *m = NULL;

                w->t.manager.uds_roots = cases[i].roots;
                int r = do_register(w, "vm-1", cases[i].uds_path ? 0 : 42, cases[i].uds_path, &m, &err);
                if (cases[i].allowed) {
                        assert_int_equal(r, 0);
                        assert_non_null(registry_find(w->t.registry, "vm-1"));
                        assert_int_equal(w->t.transport.listens, cases[i].uds_path ? 1 : 0);
                } else {
                        assert_int_equal(r, -EINVAL);
                        assert_string_equal(err, "uds_path is not below any of tetherd's --uds-root directories");
                        assert_null(registry_find(w->t.registry, "vm-1"));
                        assert_int_equal(w->t.transport.listens, 0);
                        assert_int_equal(test_count_events(w->t.registry, "registered"), 0);
                }
                world_free(w);
        }
}

/* A listen that fails leaves nothing behind; its errno becomes what the API answers with: -EINVAL is 400, -EEXIST
 * 409 (like a path another machine has), anything else 500 with its own text. */
static void test_listen_failure(void **state) {
        static const struct {
                int listen_error;
                int result;
                const char *error;
        } cases[] = {
                { -EEXIST, -EINVAL, "the machine's socket path exists and is not a socket" },
                { -EADDRINUSE, -EEXIST, "another process listens on the machine's socket path" },
                { -ELOOP, -EINVAL, "the machine's socket path goes through a symbolic link" },
                { -ENAMETOOLONG, -ENAMETOOLONG, "the machine's socket path is too long" },
                { -EACCES, -EACCES, "permission denied creating the machine's socket" },
                { -EPERM, -EPERM, "permission denied creating the machine's socket" },
                { -ENOENT, -ENOENT, "cannot create the machine's socket directory" },
                { -ENOTDIR, -EINVAL, "cannot create the machine's socket directory" },
                { -EIO, -EIO, "failed to set up the machine" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                World *w = world_new(TEST_STORE_SYNC);
                const char *err;
                char path[160];
                Machine *m;

                w->t.transport.listen_result = cases[i].listen_error;
                assert_int_equal(do_register(w, "vm-1", 0, "/run/vms/v.sock", &m, &err), cases[i].result);
                assert_string_equal(err, cases[i].error);
                assert_int_equal(w->t.transport.listens, 1);
                /* Never announced, never written: no event, no observer, no file, nothing to release. */
                assert_null(registry_find(w->t.registry, "vm-1"));
                assert_null(registry_find_by_uds(w->t.registry, "/run/vms/v.sock"));
                assert_int_equal(test_count_events(w->t.registry, "registered"), 0);
                assert_int_equal(w->removed, 0);
                assert_int_equal(w->t.transport.unlistens + w->t.transport.disconnects, 0);
                machine_file(w, "vm-1", path, sizeof(path));
                assert_int_equal(access(path, F_OK), -1);

                /* The id and the path are free again. */
                w->t.transport.listen_result = 0;
                assert_int_equal(do_register(w, "vm-1", 0, "/run/vms/v.sock", &m, &err), 1);
                world_free(w);
        }
}

/* Durable at once without a state directory or with --no-sync (0), after the syncer otherwise (1, and
 * machine_persisted follows); announced at once either way. */
static void test_register_persists(void **state) {
        static const struct {
                TestStore store;
                int result;
        } cases[] = {
                { TEST_NO_STORE, 0 },
                { TEST_STORE_NO_SYNC, 0 },
                { TEST_STORE_SYNC, 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                World *w = world_new(cases[i].store);
                const char *err;
                char path[160];
                Machine *m;

                assert_int_equal(do_register(w, "vm-1", 42, NULL, &m, &err), cases[i].result);
                assert_int_equal(test_count_events(w->t.registry, "registered"), 1);
                if (cases[i].result == 1) {
                        assert_false(m->persisted);
                        assert_int_equal(w->persisted, 0);
                        while (w->persisted == 0)
                                test_dispatch_syncs(w->t.store);
                        assert_int_equal(w->persisted, 1);
                }
                if (w->t.store) {
                        assert_true(m->persisted);
                        machine_file(w, "vm-1", path, sizeof(path));
                        assert_int_equal(access(path, F_OK), 0);
                }
                assert_int_equal(w->removed, 0);
                world_free(w);
        }
}

/* vm-1 (on /run/vms/v.sock) is gone, with what it had set up: its agent's connection closed as a deleted
 * machine's, its socket released. */
static void assert_released(const World *w) {
        assert_null(registry_find(w->t.registry, "vm-1"));
        assert_null(registry_find_by_uds(w->t.registry, "/run/vms/v.sock"));
        assert_int_equal(w->t.transport.disconnects, 1);
        assert_int_equal(w->t.transport.reason, CLOSE_DELETED);
        assert_int_equal(w->t.transport.unlistens, 1);
        assert_string_equal(w->t.transport.released, "vm-1");
        assert_false(w->t.transport.listening);
}

/* A file where the machine's directory goes: its registration cannot even be written. */
static void block_machine_dir(const World *w, const char *id) {
        char path[160];
        snprintf(path, sizeof(path), "%s/machines/%s", w->t.dir, id);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
}

/* A save that fails at once: the socket it listened on is closed again and the machine was never there. */
static void test_persist_fails_at_once(void **state) {
        World *w = world_new(TEST_STORE_SYNC);
        const char *err;
        Machine *m;

        block_machine_dir(w, "vm-1");
        assert_int_equal(do_register(w, "vm-1", 0, "/run/vms/v.sock", &m, &err), -ENOTDIR);
        assert_string_equal(err, "failed to persist the registration");
        assert_int_equal(w->t.transport.listens, 1);
        assert_released(w);
        assert_int_equal(test_count_events(w->t.registry, "registered"), 0);
        assert_int_equal(test_count_events(w->t.registry, "deleted"), 0);
        assert_int_equal(w->removed, 0);
        world_free(w);
}

/* A save that fails after the sync (the rename: a non-empty directory is in the way): the machine was announced
 * already, so it is deleted as a deleted machine is, with its socket and connection. */
static void test_persist_fails_later(void **state) {
        World *w = world_new(TEST_STORE_SYNC);
        const char *err;
        char path[200];
        Machine *m;

        snprintf(path, sizeof(path), "%s/machines/vm-1", w->t.dir);
        assert_int_equal(mkdir(path, 0700), 0);
        machine_file(w, "vm-1", path, sizeof(path));
        assert_int_equal(mkdir(path, 0700), 0);
        strcat(path, "/in-the-way");
        assert_int_equal(mkdir(path, 0700), 0);

        assert_int_equal(do_register(w, "vm-1", 0, "/run/vms/v.sock", &m, &err), 1);
        assert_int_equal(test_count_events(w->t.registry, "registered"), 1);
        assert_true(w->t.transport.listening);
        while (w->removed == 0)
                test_dispatch_syncs(w->t.store);

        assert_released(w);
        assert_int_equal(w->persisted, 0);
        assert_int_equal(test_count_events(w->t.registry, "deleted"), 1);
        world_free(w);
}

static void test_update(void **state) {
        World *w = world_new(TEST_STORE_SYNC);
        const char *err;
        char path[160];
        Machine *m;

        assert_int_equal(do_register(w, "vm-1", 42, NULL, &m, &err), 1);
        while (!m->persisted)
                test_dispatch_syncs(w->t.store);

        /* The same registration again changes nothing and writes nothing. */
        MachineSpec same = { .machine_id = "vm-1", .cid = 42 };
        assert_int_equal(manager_update_machine(&w->t.manager, m, &same, &err), 0);
        assert_null(m->store_save);

        /* A new CID: re-indexed and saved, the machine does not wait for the disk. */
        MachineSpec moved = { .machine_id = "vm-1", .cid = 43, .request_id = "req-2" };
        assert_int_equal(manager_update_machine(&w->t.manager, m, &moved, &err), 1);
        assert_ptr_equal(registry_find_by_cid(w->t.registry, 43), m);
        assert_null(registry_find_by_cid(w->t.registry, 42));
        assert_non_null(m->store_save);
        while (m->store_save)
                test_dispatch_syncs(w->t.store);
        machine_file(w, "vm-1", path, sizeof(path));
        json_auto_t *j = json_load_file(path, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "cid")), 43);
        assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-2");

        /* Refused: the machine is as it was, and nothing is set up or released. */
        MachineSpec other_path = { .machine_id = "vm-1", .uds_path = "/run/vms/v.sock" };
        assert_int_equal(manager_update_machine(&w->t.manager, m, &other_path, &err), -EINVAL);
        assert_non_null(err);
        assert_int_equal(m->cid, 43);
        assert_int_equal(w->t.transport.listens + w->t.transport.unlistens + w->t.transport.disconnects, 0);
        assert_int_equal(test_count_events(w->t.registry, "registered"), 1);
        world_free(w);
}

static void test_delete(void **state) {
        World *w = world_new(TEST_STORE_SYNC);
        const char *err;
        char path[160];
        Machine *m;

        assert_int_equal(do_register(w, "vm-1", 0, "/run/vms/v.sock", &m, &err), 1);
        while (!m->persisted)
                test_dispatch_syncs(w->t.store);
        assert_true(w->t.transport.listening);

        manager_delete_machine(&w->t.manager, m);
        assert_released(w);
        assert_int_equal(w->removed, 1);
        assert_int_equal(test_count_events(w->t.registry, "deleted"), 1);
        snprintf(path, sizeof(path), "%s/machines/vm-1", w->t.dir);
        assert_int_equal(access(path, F_OK), -1);
        world_free(w);
}

/* The VM stopped: its agent's connection goes, the machine and its socket stay. */
static void test_disconnect(void **state) {
        World *w = world_new(TEST_NO_STORE);
        const char *err;
        Machine *m;

        assert_int_equal(do_register(w, "vm-1", 0, "/run/vms/v.sock", &m, &err), 0);
        manager_disconnect_machine(&w->t.manager, m, CLOSE_VM_STOPPED);
        assert_int_equal(w->t.transport.disconnects, 1);
        assert_int_equal(w->t.transport.reason, CLOSE_VM_STOPPED);
        assert_int_equal(w->t.transport.unlistens, 0);
        assert_true(w->t.transport.listening);
        assert_ptr_equal(registry_find(w->t.registry, "vm-1"), m);
        assert_int_equal(test_count_events(w->t.registry, "deleted"), 0);
        world_free(w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_register_announces),
                cmocka_unit_test(test_uds_root),
                cmocka_unit_test(test_listen_failure),
                cmocka_unit_test(test_register_persists),
                cmocka_unit_test(test_persist_fails_at_once),
                cmocka_unit_test(test_persist_fails_later),
                cmocka_unit_test(test_update),
                cmocka_unit_test(test_delete),
                cmocka_unit_test(test_disconnect),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
