/* SPDX-License-Identifier: MIT */
/* The event log: bounded by count and by bytes, in id order, and fair: whoever holds the most gives up its
 * oldest events, so that one machine's flood never evicts a quiet machine's events. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collector-test.h"
#include "events.h"

static char *line(const char *machine, unsigned i, size_t pad) {
        char *s = malloc(pad + 64);
        assert_non_null(s);
        int n = snprintf(s, 64, "{\"m\":\"%s\",\"i\":%u,\"p\":\"", machine ?: "-", i);
        memset(s + n, 'x', pad);
        strcpy(s + n + pad, "\"}");
        return s;
}

static void append(EventLog *l, const char *machine, unsigned i, size_t pad) {
        assert_int_equal(event_log_append(l, machine, line(machine, i, pad), NULL), 0);
}

static void assert_ids_ascending(const EventLog *l) {
        for (size_t i = 1; i < l->n; i++)
                assert_true(event_log_at(l, i - 1)->id < event_log_at(l, i)->id);
}

static void test_count_bound_evicts_the_largest(void **state) {
        EventLog *l;

        assert_int_equal(event_log_new(64, 1 << 20, &l), 0);
        for (unsigned i = 0; i < 5; i++)
                append(l, "quiet", i, 10);
        append(l, NULL, 0, 10); /* a node event */
        for (unsigned i = 0; i < 10000; i++)
                append(l, "flood", i, 10);
        /* Evictions go an eighth of the holder's events at a time: between 7/8 full and full. */
        assert_true(l->n <= 64 && l->n >= 64 - 64 / 8);
        assert_int_equal(event_log_count(l, "quiet"), 5);
        assert_int_equal(event_log_count(l, NULL), 1);
        assert_int_equal(event_log_count(l, "flood"), l->n - 6);
        assert_int_equal(l->evicted, 10000 - event_log_count(l, "flood"));
        assert_ids_ascending(l);
        /* The flood's newest events are the ones kept. */
        assert_non_null(strstr(event_log_at(l, l->n - 1)->json, "\"i\":9999"));
        event_log_free(l);
}

static void test_byte_bound(void **state) {
        EventLog *l;
        size_t max = 64 * 1024;

        assert_int_equal(event_log_new(4096, max, &l), 0);
        for (unsigned i = 0; i < 3; i++)
                append(l, "quiet", i, 100);
        size_t quiet_bytes = event_log_bytes(l, "quiet");
        /* Big events, 4 KiB each: the byte bound, not the count, is what holds them. */
        for (unsigned i = 0; i < 1000; i++)
                append(l, "flood", i, 4096);
        assert_true(l->bytes <= max);
        assert_int_equal(event_log_count(l, "quiet"), 3);
        assert_int_equal(event_log_bytes(l, "quiet"), quiet_bytes);
        assert_true(event_log_count(l, "flood") >= 10);
        assert_true(event_log_count(l, "flood") <= max / 4096);
        assert_ids_ascending(l);

        /* One event above an eighth of the bytes is refused; the log is unchanged. */
        size_t n = l->n, bytes = l->bytes;
        assert_int_equal(event_log_append(l, "flood", line("flood", 0, max / 8), NULL), -E2BIG);
        assert_int_equal(l->n, n);
        assert_int_equal(l->bytes, bytes);
        event_log_free(l);
}

static void test_find_after_and_owners(void **state) {
        EventLog *l;
        const Event *e;

        assert_int_equal(event_log_new(8, 1 << 20, &l), 0);
        for (unsigned i = 0; i < 8; i++)
                append(l, i % 2 ? "a" : "b", i, 1);
        assert_int_equal(event_log_find_after(l, 0), 0);
        assert_int_equal(event_log_find_after(l, 3), 3);
        assert_int_equal(event_log_find_after(l, 8), 8);
        /* b and a hold as much: the next one evicts one of the oldest of one of them, ids stay in order. */
        assert_int_equal(event_log_append(l, "c", line("c", 0, 1), &e), 0);
        assert_int_equal(e->id, 9);
        assert_int_equal(l->n, 8);
        assert_int_equal(event_log_count(l, "a") + event_log_count(l, "b"), 7);
        assert_ids_ascending(l);
        size_t i = event_log_find_after(l, 1);
        assert_true(i < l->n && event_log_at(l, i)->id > 1);
        /* The flood of c takes what a and b do not hold, and no more than either keeps. */
        for (unsigned k = 0; k < 16; k++)
                append(l, "c", k, 1);
        assert_true(event_log_count(l, "a") >= 1 && event_log_count(l, "b") >= 1);
        assert_true(event_log_count(l, "c") >= event_log_count(l, "a"));
        assert_true(event_log_count(l, "c") >= event_log_count(l, "b"));
        assert_ids_ascending(l);
        event_log_free(l);

        /* An owner whose events are all evicted is forgotten. */
        assert_int_equal(event_log_new(4, 1 << 20, &l), 0);
        append(l, "big", 0, 2000);
        for (unsigned k = 0; k < 4; k++)
                append(l, "small", k, 1);
        assert_int_equal(event_log_count(l, "big"), 0);
        assert_int_equal(event_log_count(l, "small"), 4);
        assert_non_null(l->owners);
        assert_null(l->owners->owners_next);
        event_log_free(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_count_bound_evicts_the_largest),
                cmocka_unit_test(test_byte_bound),
                cmocka_unit_test(test_find_after_and_owners),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
