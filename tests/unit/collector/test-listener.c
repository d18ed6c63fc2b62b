/* SPDX-License-Identifier: MIT */
/* The listener: accepted sockets are non-blocking and close-on-exec; while held nothing is accepted and the
 * connections wait in the backlog, in the order they came; a hold from inside the accept handler stops that
 * wakeup's accepting after the connection in hand. */

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector-test.h"
#include "listener.h"
#include "socket-util.h"

typedef struct Accepted {
        int fds[16];
        int n;
        bool hold_after_each; /* hold from inside the handler */
} Accepted;

static void on_accept(Listener *l, int fd, const struct sockaddr *peer, socklen_t peer_len, void *userdata) {
        Accepted *a = userdata;
        assert_true(a->n < 16);
        a->fds[a->n++] = fd;
        if (a->hold_after_each)
                listener_hold(l, true);
}

/* Runs the loop until it has nothing left to do right now. */
static void run_pending(sd_event *e) {
        while (sd_event_run(e, 0) > 0)
                ;
}

/* Which client an accepted socket belongs to: each client wrote its index as one byte. */
static int client_of(int fd) {
        char b;
        assert_int_equal(read(fd, &b, 1), 1);
        return b;
}

static void test_hold(void **state) {
        char dir[64], path[128];
        sd_event *e = NULL;
        Listener *l = NULL;
        Accepted a = { 0 };
        int clients[4];

        test_dir_make(dir, sizeof(dir), "listener");
        snprintf(path, sizeof(path), "%s/api.sock", dir);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(listener_new_unix(e, path, (uid_t) -1, on_accept, NULL, &a, &l), 0);

        listener_hold(l, true);
        for (int i = 0; i < 4; i++) {
                clients[i] = unix_stream_connect(path);
                assert_true(clients[i] >= 0);
                char b = (char) i;
                assert_int_equal(write(clients[i], &b, 1), 1);
        }
        run_pending(e);
        assert_int_equal(a.n, 0); /* held: all four wait in the backlog */

        /* Released, with a hold from the handler: one connection per release, the oldest first. */
        a.hold_after_each = true;
        listener_hold(l, false);
        run_pending(e);
        assert_int_equal(a.n, 1);
        assert_int_equal(client_of(a.fds[0]), 0);
        int flags = fcntl(a.fds[0], F_GETFL);
        assert_true(flags & O_NONBLOCK);
        assert_true(fcntl(a.fds[0], F_GETFD) & FD_CLOEXEC);

        listener_hold(l, false);
        run_pending(e);
        assert_int_equal(a.n, 2);
        assert_int_equal(client_of(a.fds[1]), 1);

        /* Released for good: the rest in order, in one go. */
        a.hold_after_each = false;
        listener_hold(l, false);
        run_pending(e);
        assert_int_equal(a.n, 4);
        assert_int_equal(client_of(a.fds[2]), 2);
        assert_int_equal(client_of(a.fds[3]), 3);

        for (int i = 0; i < 4; i++) {
                close(clients[i]);
                close(a.fds[i]);
        }
        listener_free(l);
        assert_int_equal(access(path, F_OK), -1); /* our socket file goes with the listener */
        sd_event_unref(e);
        test_dir_remove(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hold),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
