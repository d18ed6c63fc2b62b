/* SPDX-License-Identifier: MIT */
/* unwritten.c: copies of what a boot file misses, bounded per boot and node-wide by bytes. */
#include <errno.h>

#include "collector-test.h"
#include "unwritten.h"

static void test_kept_in_order_and_dropped(void **state) {
        UnwrittenBudget budget = { .max_bytes = UNWRITTEN_NODE_MAX_BYTES };
        Unwritten u;

        unwritten_init(&u, &budget);
        assert_true(unwritten_is_empty(&u));
        assert_int_equal(unwritten_add(&u, 'R', 1, "one", 3), 0);
        assert_int_equal(unwritten_add(&u, 'C', 2, "", 0), 0);
        assert_int_equal(unwritten_add(&u, 'R', 3, "three", 5), 0);
        assert_int_equal(u.n, 3);
        assert_int_equal(u.bytes, 8 + 3 * UNWRITTEN_ENTRY_OVERHEAD);
        assert_int_equal(budget.bytes, u.bytes);

        const UnwrittenEntry *e = u.first;
        assert_int_equal(e->type, 'R');
        assert_int_equal(e->recv_unix_ns, 1);
        assert_memory_equal(e->payload, "one", 3);
        e = e->next;
        assert_int_equal(e->type, 'C');
        assert_int_equal(e->len, 0);
        e = e->next;
        assert_memory_equal(e->payload, "three", 5);
        assert_null(e->next);

        unwritten_drop_first(&u, 2);
        assert_int_equal(u.n, 1);
        assert_ptr_equal(u.first, u.last);
        assert_int_equal(u.bytes, 5 + UNWRITTEN_ENTRY_OVERHEAD);
        assert_int_equal(budget.bytes, u.bytes);
        unwritten_drop_first(&u, 5);
        assert_true(unwritten_is_empty(&u));
        assert_null(u.last);
        assert_int_equal(budget.bytes, 0);
        unwritten_clear(&u);
}

/* Over the boot's bound: the list is emptied, and takes nothing more until cleared (the file is written in
 * order: what follows a missing entry cannot be written without it). */
static void test_boot_bound_gives_up(void **state) {
        static char big[64 << 10];
        UnwrittenBudget budget = { .max_bytes = UINT64_MAX };
        Unwritten u;
        int r = 0;
        size_t kept = 0;

        unwritten_init(&u, &budget);
        while ((r = unwritten_add(&u, 'R', 0, big, sizeof(big))) == 0)
                kept++;
        assert_int_equal(r, -ENOBUFS);
        assert_int_equal(kept, UNWRITTEN_BOOT_MAX_BYTES / (sizeof(big) + UNWRITTEN_ENTRY_OVERHEAD));
        assert_true(u.incomplete);
        assert_true(unwritten_is_empty(&u));
        assert_int_equal(budget.bytes, 0);
        assert_int_equal(unwritten_add(&u, 'R', 0, "x", 1), -ENOBUFS);
        unwritten_clear(&u);
        assert_false(u.incomplete);
        assert_int_equal(unwritten_add(&u, 'R', 0, "x", 1), 0);
        unwritten_clear(&u);
        assert_int_equal(budget.bytes, 0);
}

/* The node-wide bound is shared: one boot's copies leave less room for another's. */
static void test_node_budget_shared(void **state) {
        UnwrittenBudget budget = { .max_bytes = 2 * (100 + UNWRITTEN_ENTRY_OVERHEAD) };
        static char data[100];
        Unwritten a, b;

        unwritten_init(&a, &budget);
        unwritten_init(&b, &budget);
        assert_int_equal(unwritten_add(&a, 'R', 0, data, sizeof(data)), 0);
        assert_int_equal(unwritten_add(&b, 'R', 0, data, sizeof(data)), 0);
        assert_int_equal(unwritten_add(&b, 'R', 0, data, sizeof(data)), -ENOBUFS);
        assert_true(b.incomplete);
        assert_false(a.incomplete);
        assert_int_equal(budget.bytes, 100 + UNWRITTEN_ENTRY_OVERHEAD);
        unwritten_give_up(&a);
        assert_int_equal(budget.bytes, 0);
        /* No budget at all (--unwritten-memory-bytes 0): nothing is kept. */
        UnwrittenBudget none = { .max_bytes = 0 };
        Unwritten c;
        unwritten_init(&c, &none);
        assert_int_equal(unwritten_add(&c, 'R', 0, data, 1), -ENOBUFS);
        unwritten_clear(&a);
        unwritten_clear(&b);
        unwritten_clear(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kept_in_order_and_dropped),
                cmocka_unit_test(test_boot_bound_gives_up),
                cmocka_unit_test(test_node_budget_shared),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
