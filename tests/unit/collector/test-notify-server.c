/* SPDX-License-Identifier: MIT */
/* The vmm.notify port's connections on a real sd-event loop (notify-server.h), through the AF_VSOCK accept path
 * with the CID the test chooses: the machine with that CID is the one a message changes, an unknown CID is
 * refused; tetherd closes each connection itself (at EOF, or after the idle window without one) and writes
 * nothing; oversized messages and connections beyond a machine's bound are refused and counted; deleting a
 * machine drops its open connections. */

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentless.h"
#include "collector-test.h"
#include "notify-server.h"
#include "time-util.h"

typedef struct World {
        TestManager t;
        sd_event *event;
        SessionContext ctx;
        NotifyServer *ns;
        Machine *vm, *other;
} World;

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        MachineSpec a = { .machine_id = "vm", .cid = 42 }, b = { .machine_id = "other", .cid = 43 };
        const char *err;

        assert_non_null(w);
        test_manager_init(&w->t, TEST_NO_STORE);
        assert_int_equal(sd_event_new(&w->event), 0);
        assert_int_equal(manager_register_machine(&w->t.manager, &a, &w->vm, &err), 0);
        assert_int_equal(manager_register_machine(&w->t.manager, &b, &w->other, &err), 0);
        session_context_init(&w->ctx, w->t.registry, NULL, &w->t.stats);
        assert_int_equal(notify_server_new(w->event, &w->ctx, 4818, &w->ns), 0);
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        w->ns = notify_server_free(w->ns);
        sd_event_unref(w->event);
        test_manager_done(&w->t);
        free(w);
        return 0;
}

/* A guest connection through the AF_VSOCK path from cid: returns the guest's end. */
static int guest_connect(World *w, uint32_t cid) {
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        notify_server_accept_vsock_peer(w->ns, fds[0], cid);
        return fds[1];
}

/* Runs the loop until the guest's end sees EOF (5 s at most): nothing may have been written to it. */
static void until_closed(World *w, int guest) {
        uint64_t deadline = now_ns(CLOCK_MONOTONIC) + 5 * NSEC_PER_SEC;
        char c;

        for (;;) {
                ssize_t k = read(guest, &c, 1);
                if (k == 0 || (k < 0 && errno == ECONNRESET))
                        break;
                assert_true(k < 0 && errno == EAGAIN); /* never a byte from tetherd */
                if (now_ns(CLOCK_MONOTONIC) > deadline)
                        fail_msg("tetherd did not close the connection");
                assert_true(sd_event_run(w->event, 1000) >= 0);
        }
        close(guest);
}

static void send_message(World *w, uint32_t cid, const char *msg, bool half_close) {
        int g = guest_connect(w, cid);
        assert_int_equal(write(g, msg, strlen(msg)), (ssize_t) strlen(msg));
        if (half_close)
                assert_int_equal(shutdown(g, SHUT_WR), 0);
        until_closed(w, g);
}

static void test_ready_through_vsock_cid(void **state) {
        World *w = *state;

        send_message(w, 42, "X_SYSTEMD_UNIT_ACTIVE=basic.target", false);
        assert_int_equal(w->t.stats.notify_closed[NOTIFY_CLOSE_IDLE], 1);
        assert_int_equal(w->vm->state, MACHINE_BOOTING);
        send_message(w, 42, "READY=1\nSTATUS=up\nX_SYSTEMD_MACHINE_ID=other", true);
        assert_int_equal(w->t.stats.notify_closed[NOTIFY_CLOSE_EOF], 1);
        assert_int_equal(w->vm->state, MACHINE_READY);
        assert_true(boot_is_agentless(w->vm->current));
        assert_string_equal(w->vm->current->ready.source, "systemd");
        assert_string_equal(w->vm->current->ready.detail, "up");
        assert_non_null(boot_find_milestone(w->vm->current, "basic.target"));
        /* The machine id the guest claims changes nothing: identity is the CID's. */
        assert_null(w->other->current);
        assert_int_equal(w->other->state, MACHINE_REGISTERED);
        assert_int_equal(w->t.stats.notify_messages, 2);
        assert_int_equal(w->t.stats.notify_connections_open, 0);
}

static void test_unknown_cid_refused(void **state) {
        World *w = *state;
        int g = guest_connect(w, 99);

        until_closed(w, g);
        assert_int_equal(w->t.stats.notify_refused[NOTIFY_REFUSE_UNKNOWN_CID], 1);
        assert_int_equal(w->t.stats.notify_connections_open, 0);
}

static void test_too_large_refused(void **state) {
        World *w = *state;
        char big[VMM_NOTIFY_MESSAGE_MAX + 100];
        int g = guest_connect(w, 42);

        memset(big, 'x', sizeof(big));
        memcpy(big, "READY=1\nSTATUS=", 15);
        assert_int_equal(write(g, big, sizeof(big)), (ssize_t) sizeof(big));
        until_closed(w, g);
        assert_int_equal(w->t.stats.notify_refused[NOTIFY_REFUSE_TOO_LARGE], 1);
        assert_int_equal(w->t.stats.notify_closed[NOTIFY_CLOSE_TOO_LARGE], 1);
        assert_null(w->vm->current);
}

static void test_machine_limit_and_delete(void **state) {
        World *w = *state;
        int held[NOTIFY_MAX_CONNECTIONS_PER_MACHINE];

        for (size_t i = 0; i < ELEMENTSOF(held); i++)
                held[i] = guest_connect(w, 42);
        assert_int_equal(w->t.stats.notify_connections_open, NOTIFY_MAX_CONNECTIONS_PER_MACHINE);
        int g = guest_connect(w, 42);
        assert_int_equal(w->t.stats.notify_refused[NOTIFY_REFUSE_MACHINE_LIMIT], 1);
        until_closed(w, g);
        /* Another machine has its own bound. */
        send_message(w, 43, "READY=1", true);
        assert_int_equal(w->other->state, MACHINE_READY);

        /* The machine goes: its connections with it, written to by nobody. */
        notify_server_unlisten_machine(w->ns, w->vm);
        assert_int_equal(w->t.stats.notify_connections_open, 0);
        assert_int_equal(w->t.stats.notify_closed[NOTIFY_CLOSE_DROPPED], NOTIFY_MAX_CONNECTIONS_PER_MACHINE);
        for (size_t i = 0; i < ELEMENTSOF(held); i++)
                until_closed(w, held[i]);
        assert_null(w->vm->current);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_ready_through_vsock_cid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_cid_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_large_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_machine_limit_and_delete, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
