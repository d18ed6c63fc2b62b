/* SPDX-License-Identifier: MIT */
/* Turn sources: work continued through one takes its turn behind what became ready before it, round-robin with
 * io of its priority; at bulk priority it waits for every normal-priority source. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "event-util.h"
#include "macro.h"

typedef struct Trace {
        char order[64];
        size_t n;
        unsigned turns_left;
        sd_event_source *turn;
} Trace;

static void note(Trace *t, char c) {
        if (t->n + 1 < sizeof(t->order))
                t->order[t->n++] = c;
}

/* Readable all along (nothing reads it): level-triggered, pending again in every iteration. */
static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        note(userdata, 'i');
        return 0;
}

/* Busy work that continues in a later turn, as a flooding guest's connection does. */
static int on_turn(sd_event_source *s, uint64_t usec, void *userdata) {
        Trace *t = userdata;

        note(t, 't');
        if (--t->turns_left > 0)
                assert_int_equal(sd_event_source_set_enabled(s, SD_EVENT_ONESHOT), 0);
        return 0;
}

static void run(sd_event *e, unsigned iterations) {
        for (unsigned i = 0; i < iterations; i++)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
}

static void test_add_turn_einval(void **state) {
        sd_event *e = NULL;
        sd_event_source *s = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(event_add_turn(NULL, &s, on_turn, NULL), -EINVAL);
        assert_int_equal(event_add_turn(e, NULL, on_turn, NULL), -EINVAL);
        assert_int_equal(event_add_turn(e, &s, NULL, NULL), -EINVAL);
        assert_null(s);
        sd_event_unref(e);
}

/* Created disabled: nothing runs until it is enabled. */
static void test_turn_created_disabled(void **state) {
        sd_event *e = NULL;
        Trace t = { .turns_left = 1 };
        int enabled = -1;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(event_add_turn(e, &t.turn, on_turn, &t), 0);
        assert_int_equal(sd_event_source_get_enabled(t.turn, &enabled), 0);
        assert_int_equal(enabled, SD_EVENT_OFF);
        assert_int_equal(sd_event_run(e, 0), 0);
        assert_int_equal(t.n, 0);

        assert_int_equal(sd_event_source_set_enabled(t.turn, SD_EVENT_ONESHOT), 0);
        run(e, 1);
        assert_string_equal(t.order, "t");
        sd_event_source_disable_unref(t.turn);
        sd_event_unref(e);
}

/* A loop with an io source that stays ready (a socket with unread data) and a turn source, both noting into t. */
typedef struct Loop {
        sd_event *e;
        sd_event_source *io;
        int fds[2];
} Loop;

static void loop_open(Loop *l, Trace *t) {
        assert_int_equal(sd_event_new(&l->e), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, l->fds), 0);
        assert_int_equal(write(l->fds[1], "x", 1), 1);
        assert_int_equal(sd_event_add_io(l->e, &l->io, l->fds[0], EPOLLIN, on_io, t), 0);
        assert_int_equal(event_add_turn(l->e, &t->turn, on_turn, t), 0);
}

static void loop_close(Loop *l, Trace *t) {
        sd_event_source_disable_unref(l->io);
        sd_event_source_disable_unref(t->turn);
        close(l->fds[0]);
        close(l->fds[1]);
        sd_event_unref(l->e);
}

/* A source that keeps continuing through its turn source alternates with a ready io source of the same
 * priority instead of taking every iteration. */
static void test_turns_alternate_with_io(void **state) {
        Trace t = { .turns_left = 4 };
        Loop l = {};

        loop_open(&l, &t);
        assert_int_equal(sd_event_source_set_enabled(t.turn, SD_EVENT_ONESHOT), 0);

        run(l.e, 8);
        /* Both became pending in the first iteration (which of them goes first is sd-event's choice); from then
         * on they take turns. */
        assert_int_equal(t.n, 8);
        for (size_t i = 1; i < t.n; i++)
                assert_true(t.order[i] != t.order[i - 1]);
        loop_close(&l, &t);
}

/* At bulk priority a turn waits while a normal-priority source is ready, and runs as soon as none is. */
static void test_bulk_waits_for_normal(void **state) {
        Trace t = { .turns_left = 1 };
        Loop l = {};

        loop_open(&l, &t);
        assert_int_equal(sd_event_source_set_priority(t.turn, EVENT_PRIORITY_BULK), 0);
        assert_int_equal(sd_event_source_set_enabled(t.turn, SD_EVENT_ONESHOT), 0);

        run(l.e, 4);
        assert_string_equal(t.order, "iiii");
        assert_int_equal(sd_event_source_set_enabled(l.io, SD_EVENT_OFF), 0);
        run(l.e, 1);
        assert_string_equal(t.order, "iiiit");
        loop_close(&l, &t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_add_turn_einval),
                cmocka_unit_test(test_turn_created_disabled),
                cmocka_unit_test(test_turns_alternate_with_io),
                cmocka_unit_test(test_bulk_waits_for_normal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
