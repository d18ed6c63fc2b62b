/* SPDX-License-Identifier: MIT */
/* In-memory log tails and their shared budget: entries packed in blocks read back in order across blocks, the
 * per-tail bound, the budget evicting from the tail that holds the most (a flood cannot evict a quiet boot's
 * tail), what is counted as lost (not persisted) and what is not, interning bounded against a hostile set of
 * sources; and the sparse file index (lookup, thinning). */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "collector-test.h"
#include "log-index.h"
#include "log-tail.h"
#include "macro.h"

static LogEntry line_entry(uint64_t seq, const char *text, const char *source) {
        return (LogEntry) {
                .seq = seq,
                .boottime_ns = seq * 1000,
                .recv_unix_ns = seq * 2000,
                .kind = LOG_ENTRY_LINES,
                .stream = 1,
                .source = source,
                .data = (const uint8_t *) text,
                .len = strlen(text),
        };
}

static void append_line(LogTail *t, uint64_t seq, const char *text, const char *source, bool persisted) {
        LogEntry e = line_entry(seq, text, source);
        LogTailEvictions lost = {};
        assert_int_equal(log_tail_append(t, &e, persisted, &lost), 0);
}

/* Every held entry in order: seqs must be first, first + step, ... */
static size_t check_run(const LogTail *t, uint64_t first, uint64_t step) {
        LogTailPos pos;
        LogEntry e;
        size_t n = 0;

        log_tail_find_after(t, 0, &pos);
        while (log_tail_next(t, &pos, &e)) {
                assert_int_equal(e.seq, first + n * step);
                n++;
        }
        assert_int_equal(n, t->n_entries);
        return n;
}

static void test_round_trip_across_blocks(void **state) {
        LogTail t;
        char text[64];

        assert_int_equal(log_tail_init(&t, UINT64_MAX, NULL), 0);
        for (uint64_t seq = 1; seq <= 1000; seq++) {
                snprintf(text, sizeof(text), "line %llu\n", (unsigned long long) seq);
                append_line(&t, seq, text, seq % 2 ? "workload" : NULL, false);
        }
        LogEntry d = { .seq = 1001,
                       .kind = LOG_ENTRY_DROPPED,
                       .dropped_records = 7,
                       .dropped_bytes = 70,
                       .dropped_first_seq = 3,
                       .dropped_last_seq = 9 };
        LogTailEvictions lost = {};
        assert_int_equal(log_tail_append(&t, &d, false, &lost), 0);
        assert_true(t.n_blocks > 10);
        assert_int_equal(check_run(&t, 1, 1), 1001);

        /* Lookup by seq lands in the middle of a block as well as at block starts. */
        for (uint64_t after = 0; after <= 1001; after += 37) {
                LogTailPos pos;
                LogEntry e;
                log_tail_find_after(&t, after, &pos);
                if (after >= 1001) {
                        assert_false(log_tail_next(&t, &pos, &e));
                        continue;
                }
                assert_true(log_tail_next(&t, &pos, &e));
                assert_int_equal(e.seq, after + 1);
                if (e.kind == LOG_ENTRY_LINES) {
                        snprintf(text, sizeof(text), "line %llu\n", (unsigned long long) e.seq);
                        assert_int_equal(e.len, strlen(text));
                        assert_memory_equal(e.data, text, e.len);
                        assert_int_equal(e.boottime_ns, e.seq * 1000);
                        assert_int_equal(e.recv_unix_ns, e.seq * 2000);
                        if (e.seq % 2)
                                assert_string_equal(e.source, "workload");
                        else
                                assert_null(e.source);
                }
        }
        LogTailPos pos;
        LogEntry e;
        log_tail_find_after(&t, 1000, &pos);
        assert_true(log_tail_next(&t, &pos, &e));
        assert_int_equal(e.kind, LOG_ENTRY_DROPPED);
        assert_int_equal(e.dropped_records, 7);
        assert_int_equal(e.dropped_bytes, 70);
        assert_int_equal(e.dropped_first_seq, 3);
        assert_int_equal(e.dropped_last_seq, 9);
        assert_int_equal(e.len, 0);
        uint64_t first;
        assert_int_equal(log_tail_first_seq(&t, &first), 0);
        assert_int_equal(first, 1);
        log_tail_done(&t);
        assert_int_equal(log_tail_first_seq(&t, &first), -ENOENT);
}

/* Each entry keeps its Log.priority (0: none, 1 … 8) in its header, also across blocks and while its persisted flag
 * changes; a priority beyond 8 bits' half is refused. */
static void test_priority_round_trip(void **state) {
        LogTail t;
        LogTailPos pos;
        LogEntry e;
        LogTailEvictions lost = {};
        char text[64];

        assert_int_equal(log_tail_init(&t, UINT64_MAX, NULL), 0);
        for (uint64_t seq = 1; seq <= 900; seq++) {
                snprintf(text, sizeof(text), "journal line %llu\n", (unsigned long long) seq);
                e = line_entry(seq, text, "a.service");
                e.priority = (unsigned) (seq % 9);
                assert_int_equal(log_tail_append(&t, &e, seq % 2, &lost), 0);
        }
        e = line_entry(901, "x\n", NULL);
        e.priority = 16;
        assert_int_equal(log_tail_append(&t, &e, false, &lost), -EINVAL);
        assert_true(t.n_blocks > 10);
        log_tail_set_persisted(&t, 100, 700, true);
        log_tail_set_persisted(&t, 200, 300, false);

        log_tail_find_after(&t, 0, &pos);
        for (uint64_t seq = 1; seq <= 900; seq++) {
                assert_true(log_tail_next(&t, &pos, &e));
                assert_int_equal(e.seq, seq);
                assert_int_equal(e.priority, seq % 9);
                assert_string_equal(e.source, "a.service");
                snprintf(text, sizeof(text), "journal line %llu\n", (unsigned long long) seq);
                assert_int_equal(e.len, strlen(text));
                assert_memory_equal(e.data, text, e.len);
        }
        assert_false(log_tail_next(&t, &pos, &e));

        /* The flag is still the persisted one: evicting 200 … 300 (not persisted) is a loss, 301 … 700 is not. */
        t.max_cost = 0;
        LogEntry last = line_entry(1000, "", NULL);
        last.priority = 4;
        lost = (LogTailEvictions) {};
        assert_int_equal(log_tail_append(&t, &last, true, &lost), 0);
        assert_int_equal(t.n_entries, 0);
        /* Not persisted: odd seqs below 100 and above 700, and all of 200 … 300. */
        uint64_t expect = 0;
        for (uint64_t seq = 1; seq <= 900; seq++)
                if ((seq >= 200 && seq <= 300) || ((seq < 100 || seq > 700) && seq % 2 == 0))
                        expect++;
        assert_int_equal(lost.records, expect);
        log_tail_done(&t);
}

static void test_own_bound_counts_lost_only(void **state) {
        LogTail t;
        LogTailEvictions lost = {};

        /* Room for 10 entries of "ab\n". */
        assert_int_equal(log_tail_init(&t, 10 * (LOG_ENTRY_OVERHEAD + 3), NULL), 0);
        for (uint64_t seq = 1; seq <= 30; seq++) {
                LogEntry e = line_entry(seq, "ab\n", "workload");
                /* The first 10 are also in the boot file, the rest in memory only. */
                assert_int_equal(log_tail_append(&t, &e, seq <= 10, &lost), 0);
        }
        assert_int_equal(t.n_entries, 10);
        assert_int_equal(t.cost, 10 * (LOG_ENTRY_OVERHEAD + 3));
        assert_int_equal(t.data_bytes, 30);
        check_run(&t, 21, 1);
        /* 1..10 were persisted: evicting them lost nothing. 11..20 are gone. */
        assert_int_equal(lost.records, 10);
        assert_int_equal(lost.bytes, 30);
        assert_int_equal(t.evicted_records, 10);
        assert_int_equal(t.evicted_bytes, 30);
        assert_int_equal(t.evicted_last_seq, 20);

        /* An entry larger than the bound evicts everything, itself included. */
        char big[2048];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        append_line(&t, 31, big, NULL, false);
        assert_int_equal(t.n_entries, 0);
        assert_int_equal(t.cost, 0);
        assert_int_equal(t.n_blocks, 0);
        assert_int_equal(t.evicted_records, 21);
        assert_int_equal(t.evicted_last_seq, 31);
        log_tail_done(&t);
}

static void test_budget_takes_from_the_largest(void **state) {
        LogMemoryStats stats = {};
        LogBudget *budget;
        LogTail quiet, flood, medium;
        uint64_t entry = LOG_ENTRY_OVERHEAD + 4; /* "abc\n" */

        assert_int_equal(log_budget_new(100 * entry, &stats, &budget), 0);
        assert_int_equal(stats.limit, 100 * entry);
        assert_int_equal(log_tail_init(&quiet, UINT64_MAX, budget), 0);
        assert_int_equal(log_tail_init(&flood, UINT64_MAX, budget), 0);
        assert_int_equal(log_tail_init(&medium, UINT64_MAX, budget), 0);

        /* quiet: 10 lines; medium: 30; then flood writes 10,000. */
        for (uint64_t seq = 1; seq <= 10; seq++)
                append_line(&quiet, seq, "abc\n", "workload", false);
        for (uint64_t seq = 1; seq <= 30; seq++)
                append_line(&medium, seq, "abc\n", "workload", false);
        for (uint64_t seq = 1; seq <= 10000; seq++)
                append_line(&flood, seq, "abc\n", "workload", seq % 2 == 0);

        assert_true(budget->cost <= budget->limit);
        assert_int_equal(stats.bytes, budget->cost);
        /* The quiet and the medium tail are untouched; the flood keeps what is left. */
        assert_int_equal(check_run(&quiet, 1, 1), 10);
        assert_int_equal(check_run(&medium, 1, 1), 30);
        assert_int_equal(flood.n_entries, 60);
        check_run(&flood, 10000 - 59, 1);
        assert_int_equal(stats.evicted_records, 10000 - 60);
        assert_int_equal(stats.evicted_bytes, (10000 - 60) * 4);
        /* Half of the evicted ones were in the file: only the others are lost. */
        assert_int_equal(flood.evicted_records, (10000 - 60) / 2);
        assert_int_equal(quiet.evicted_records + medium.evicted_records, 0);

        /* A second flood competes with the first: both end up with fair shares, the quiet one still whole. */
        LogTail flood2;
        assert_int_equal(log_tail_init(&flood2, UINT64_MAX, budget), 0);
        for (uint64_t seq = 1; seq <= 1000; seq++)
                append_line(&flood2, seq, "abc\n", "workload", true);
        assert_true(budget->cost <= budget->limit);
        assert_int_equal(quiet.n_entries, 10);
        assert_true(flood.n_entries >= 29 && flood.n_entries <= 31);
        assert_true(flood2.n_entries >= 29 && flood2.n_entries <= 31);
        assert_true(medium.n_entries >= 29);
        assert_int_equal(flood2.evicted_records, 0); /* all persisted */

        /* Freeing a tail gives its share back. */
        log_tail_done(&flood);
        assert_int_equal(budget->cost, quiet.cost + medium.cost + flood2.cost);
        assert_int_equal(stats.bytes, budget->cost);
        log_tail_done(&flood2);
        log_tail_done(&medium);
        log_tail_done(&quiet);
        assert_int_equal(budget->cost, 0);
        assert_int_equal(budget->n_heap, 0);
        log_budget_free(budget);
}

static void test_budget_heap_many_tails(void **state) {
        enum { N = 200 };
        LogBudget *budget;
        LogTail *tails = calloc(N, sizeof(LogTail));

        assert_non_null(tails);
        assert_int_equal(log_budget_new(64 * 1024, NULL, &budget), 0);
        for (size_t i = 0; i < N; i++)
                assert_int_equal(log_tail_init(&tails[i], 8 * 1024, budget), 0);
        /* Uneven writers in an interleaved order. */
        for (uint64_t seq = 1; seq <= 400; seq++)
                for (size_t i = 0; i < N; i++)
                        if (seq % (i % 7 + 1) == 0)
                                append_line(&tails[i], seq, "0123456789\n", "svc", false);
        assert_true(budget->cost <= budget->limit);
        uint64_t sum = 0, max = 0, min = UINT64_MAX;
        for (size_t i = 0; i < N; i++) {
                sum += tails[i].cost;
                max = MAX(max, tails[i].cost);
                min = MIN(min, tails[i].cost);
                assert_true(tails[i].n_entries > 0);
        }
        assert_int_equal(sum, budget->cost);
        /* Fair: no tail holds more than one entry above any other. */
        assert_true(max - min <= LOG_ENTRY_OVERHEAD + 11);
        /* Remove every other tail (heap removal from the middle), the rest still adds up. */
        for (size_t i = 0; i < N; i += 2)
                log_tail_done(&tails[i]);
        sum = 0;
        for (size_t i = 1; i < N; i += 2)
                sum += tails[i].cost;
        assert_int_equal(sum, budget->cost);
        for (size_t i = 1; i < N; i += 2) {
                append_line(&tails[i], 1000, "x\n", NULL, false);
                assert_true(budget->cost <= budget->limit);
        }
        for (size_t i = 1; i < N; i += 2)
                log_tail_done(&tails[i]);
        assert_int_equal(budget->cost, 0);
        log_budget_free(budget);
        free(tails);
}

static void test_hostile_sources_bounded(void **state) {
        LogTail t;
        char source[LOG_TAIL_SOURCE_INTERN_MAX + 64];

        assert_int_equal(log_tail_init(&t, UINT64_MAX, NULL), 0);
        /* A guest naming every line differently: the table stops growing, the names are all kept. */
        for (uint64_t seq = 1; seq <= 5000; seq++) {
                snprintf(source, sizeof(source), "source-%llu", (unsigned long long) seq);
                append_line(&t, seq, "x\n", source, false);
        }
        assert_true(t.n_sources <= LOG_TAIL_SOURCES_MAX);
        assert_true(t.source_bytes <= LOG_TAIL_SOURCE_BYTES_MAX);
        /* Over-long names are never interned. */
        memset(source, 'L', sizeof(source) - 1);
        source[sizeof(source) - 1] = '\0';
        size_t n_sources = t.n_sources;
        append_line(&t, 5001, "y\n", source, false);
        assert_int_equal(t.n_sources, n_sources);

        LogTailPos pos;
        LogEntry e;
        char want[64];
        log_tail_find_after(&t, 0, &pos);
        for (uint64_t seq = 1; seq <= 5000; seq++) {
                assert_true(log_tail_next(&t, &pos, &e));
                snprintf(want, sizeof(want), "source-%llu", (unsigned long long) seq);
                assert_string_equal(e.source, want);
                assert_memory_equal(e.data, "x\n", 2);
        }
        assert_true(log_tail_next(&t, &pos, &e));
        assert_string_equal(e.source, source);
        assert_false(log_tail_next(&t, &pos, &e));

        /* Inline names are charged with their entry; interned ones are not. */
        LogTail u;
        assert_int_equal(log_tail_init(&u, UINT64_MAX, NULL), 0);
        append_line(&u, 1, "x\n", "workload", false);
        assert_int_equal(u.cost, LOG_ENTRY_OVERHEAD + 2);
        append_line(&u, 2, "x\n", source, false);
        assert_int_equal(u.cost, 2 * (LOG_ENTRY_OVERHEAD + 2) + strlen(source));
        log_tail_done(&u);
        log_tail_done(&t);
}

static void test_index_lookup_and_thinning(void **state) {
        LogIndex x = {};
        uint64_t offset;

        assert_int_equal(log_index_lookup(&x, 0, &offset), -ENOENT);
        /* Records of 1 KiB: a point every 64 records. */
        for (uint64_t seq = 1; seq <= 1000; seq++)
                assert_int_equal(log_index_add(&x, seq, 8 + (seq - 1) * 1024), 0);
        assert_int_equal(x.n, (1000 + 63) / 64);
        assert_int_equal(log_index_lookup(&x, 0, &offset), 0);
        assert_int_equal(offset, 8);
        assert_int_equal(log_index_lookup(&x, 64, &offset), 0);
        assert_int_equal(offset, 8);
        assert_int_equal(log_index_lookup(&x, 65, &offset), 0);
        assert_int_equal(offset, 8 + 64 * 1024);
        assert_int_equal(log_index_lookup(&x, 5000, &offset), 0);
        assert_int_equal(offset, x.points[x.n - 1].offset);

        /* A huge file: the index stays bounded, lookups still start at or before the wanted record. */
        LogIndex y = {};
        uint64_t n = 4 * LOG_INDEX_POINTS_MAX * 64;
        for (uint64_t seq = 1; seq <= n; seq++)
                assert_int_equal(log_index_add(&y, seq * 2, seq * 1024), 0);
        assert_true(y.n <= LOG_INDEX_POINTS_MAX);
        assert_true(y.n >= LOG_INDEX_POINTS_MAX / 2);
        for (uint64_t after = 0; after < 2 * n; after += 4099) {
                assert_int_equal(log_index_lookup(&y, after, &offset), 0);
                uint64_t want = MAX(after / 2 + 1, 1) * 1024; /* offset of the first seq > after */
                assert_true(offset <= want);
                assert_true(want - offset <= y.block + 1024);
        }
        log_index_done(&y);
        log_index_done(&x);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip_across_blocks),   cmocka_unit_test(test_priority_round_trip),
                cmocka_unit_test(test_own_bound_counts_lost_only), cmocka_unit_test(test_budget_takes_from_the_largest),
                cmocka_unit_test(test_budget_heap_many_tails),     cmocka_unit_test(test_hostile_sources_bounded),
                cmocka_unit_test(test_index_lookup_and_thinning),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
