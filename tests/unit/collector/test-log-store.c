/* SPDX-License-Identifier: MIT */
/* The boot file as the log store: entries after any seq read back in order across the sparse index's blocks,
 * from the file below the in-memory tail and from the tail above it, in chunks that resume where they stopped;
 * reads stop at what was written; a corrupt entry is reported; store_load() rebuilds the index without loading
 * the log data; a boot larger than the memory budget loses nothing with a state dir, and without one the
 * eviction is counted; a line's syslog priority reads back from memory and from the file. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector-test.h"
#include "jsonlog.h"
#include "session.h"
#include "store.h"

typedef struct World {
        char dir[64];
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext ctx;
} World;

static void world_open(World *w, bool with_store, uint64_t log_memory_bytes, uint64_t max_log_bytes) {
        RegistryConfig c = test_registry_config();
        StoreConfig sc = { .dir = w->dir, .sync = false };

        c.log_memory_bytes = log_memory_bytes;
        if (max_log_bytes > 0)
                c.boot_limits.max_log_bytes = max_log_bytes;
        memset(&w->stats, 0, sizeof(w->stats));
        assert_int_equal(registry_new(&c, &w->stats, &w->registry), 0);
        if (with_store)
                assert_int_equal(store_open(&sc, &w->stats, &w->store), 0);
        session_context_init(&w->ctx, w->registry, w->store, &w->stats);
}

static void world_close(World *w) {
        w->store = store_free(w->store);
        w->registry = registry_free(w->registry);
}

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        log_setup(LOG_TARGET_JSON, LOG_CRIT, "test");
        test_dir_make(w->dir, sizeof(w->dir), "logstore");
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        world_close(w);
        test_dir_remove(w->dir);
        free(w);
        return 0;
}

static void close_session(Session *s) {
        session_end(s, CLOSE_SHUTDOWN);
        session_free(s);
}

/* The line of record seq: about 100 bytes, numbered. */
static void line_of(uint64_t seq, char *buf, size_t n) {
        snprintf(buf, n, "line %06llu %0*d\n", (unsigned long long) seq, 88, 7);
}

/* Records first..last: a milestone every 100th (not a log entry), a LogDropped every 250th, else a line. */
static void send_records(Session *s, uint64_t first, uint64_t last) {
        Bytes in = {};
        char line[128];

        for (uint64_t seq = first; seq <= last; seq++) {
                if (seq % 100 == 0)
                        milestone_frame(&in, seq, "tick", seq);
                else if (seq % 250 == 0)
                        log_dropped_frame(&in, seq, 0, 0);
                else {
                        line_of(seq, line, sizeof(line));
                        log_frame(&in, seq, 1, line, seq);
                }
                if (in.len > 32 * 1024) {
                        assert_int_equal(session_feed(s, in.data, in.len), 0);
                        bytes_free(&in);
                }
        }
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
}

static bool is_log_seq(uint64_t seq) {
        return seq % 100 != 0;
}

/* Checks that l holds exactly the log entries after after_seq up to last, in order, with their data. */
static void check_entries(const TestLogs *l, uint64_t after_seq, uint64_t last) {
        char line[128];
        size_t i = 0;

        for (uint64_t seq = after_seq + 1; seq <= last; seq++) {
                if (!is_log_seq(seq))
                        continue;
                assert_true(i < l->n);
                const LogEntry *e = &l->v[i++].e;
                assert_int_equal(e->seq, seq);
                if (seq % 250 == 0) {
                        assert_int_equal(e->kind, LOG_ENTRY_DROPPED);
                        continue;
                }
                assert_int_equal(e->kind, LOG_ENTRY_LINES);
                line_of(seq, line, sizeof(line));
                assert_int_equal(e->len, strlen(line));
                assert_memory_equal(e->data, line, e->len);
                assert_string_equal(e->source, "workload");
                assert_int_equal(e->stream, 1);
                assert_int_equal(e->boottime_ns, seq);
        }
        assert_int_equal(i, l->n);
}

typedef struct Chunked {
        TestLogs logs;
        size_t per_call, in_call;
} Chunked;

static int add_chunked(const LogEntry *e, void *userdata) {
        Chunked *c = userdata;
        test_logs_add(e, &c->logs);
        return ++c->in_call >= c->per_call;
}

/* Reads everything after after_seq in calls of per_call entries, resuming with the cursor each time. */
static TestLogs read_chunked(Store *store, Boot *b, uint64_t after_seq, size_t per_call) {
        Chunked c = { .per_call = per_call };
        LogCursor cursor = { .seq = after_seq };
        int r;

        do {
                c.in_call = 0;
                r = log_store_read(store, b, &cursor, add_chunked, &c);
                assert_true(r >= 0);
        } while (r > 0);
        return c.logs;
}

static void test_read_back_across_blocks(void **state) {
        World *w = *state;
        enum { N = 3000 };

        /* A per-boot share of 16 KiB: memory holds the newest ~100 lines, the file all ~300 KiB. */
        world_open(w, true, 0, 16 * 1024);
        Machine *m = test_register_machine(w->registry, w->store, "vm-1", 42);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        send_records(s, 1, N);
        Boot *b = m->current;
        assert_int_equal(b->last_seq, N);
        assert_true(b->log_index.n >= 4);
        assert_true(b->logs.n_entries > 0 && b->logs.n_entries < 300);
        assert_true(b->logs.cost <= 16 * 1024);
        /* Evicted from memory, but in the file: nothing lost. */
        assert_int_equal(b->logs.evicted_records, 0);
        assert_int_equal(w->stats.dropped_records[DROP_EVICTED], 0);
        assert_int_equal(boot_log_bytes_stored(b), b->log_bytes_total);

        uint64_t tail_first;
        assert_int_equal(log_tail_first_seq(&b->logs, &tail_first), 0);
        uint64_t afters[] = {
                0, 1, 99, 100, 101, 640, 641, 1234, tail_first - 2, tail_first - 1, tail_first, tail_first + 5, N - 1, N
        };
        for (size_t k = 0; k < ELEMENTSOF(afters); k++) {
                TestLogs l = test_logs_read(w->store, b, afters[k]);
                check_entries(&l, afters[k], N);
                test_logs_free(&l);
        }
        /* In small chunks, resuming from the cursor (its file offset hint) each time. */
        size_t chunks[] = { 1, 7, 500 };
        for (size_t k = 0; k < ELEMENTSOF(chunks); k++) {
                TestLogs l = read_chunked(w->store, b, 17, chunks[k]);
                check_entries(&l, 17, N);
                test_logs_free(&l);
        }

        /* A follower at the tail reads memory only; new records keep coming in order. */
        LogCursor c = { .seq = N };
        TestLogs l = {};
        assert_int_equal(log_store_read(w->store, b, &c, test_logs_add, &l), 0);
        assert_int_equal(l.n, 0);
        send_records(s, N + 1, N + 10);
        assert_int_equal(log_store_read(w->store, b, &c, test_logs_add, &l), 0);
        check_entries(&l, N, N + 10);
        test_logs_free(&l);
        close_session(s);
}

static void test_reload_rebuilds_index(void **state) {
        World *w = *state;
        enum { N = 2000 };

        world_open(w, true, 0, 0);
        Machine *m = test_register_machine(w->registry, w->store, "vm-2", 43);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        send_records(s, 1, N);
        LogIndex before = m->current->log_index;
        LogIndexPoint points[64];
        assert_true(before.n <= ELEMENTSOF(points));
        memcpy(points, before.points, before.n * sizeof(LogIndexPoint));
        close_session(s);
        world_close(w);

        StoreLoadReport report;
        world_open(w, true, 0, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        m = registry_find(w->registry, "vm-2");
        Boot *b = m->current;
        /* Same index, no log data in memory. */
        assert_int_equal(b->log_index.n, before.n);
        assert_memory_equal(b->log_index.points, points, before.n * sizeof(LogIndexPoint));
        assert_int_equal(b->logs.n_entries, 0);
        assert_int_equal(b->logs.cost, 0);
        assert_int_equal(w->stats.log_memory.bytes, 0);
        assert_int_equal(boot_log_bytes_stored(b), b->log_bytes_total);
        TestLogs l = test_logs_read(w->store, b, 0);
        check_entries(&l, 0, N);
        test_logs_free(&l);

        /* The agent comes back: new records go to memory and to the file, readers see both in order. */
        s = test_connect(&w->ctx, m, "boot-1");
        send_records(s, N + 1, N + 300);
        assert_true(b->logs.n_entries > 0);
        l = read_chunked(w->store, b, 1500, 13);
        check_entries(&l, 1500, N + 300);
        test_logs_free(&l);
        close_session(s);
}

static void test_reads_stop_at_what_was_written(void **state) {
        World *w = *state;
        struct stat st;

        world_open(w, true, 0, 0);
        Machine *m = test_register_machine(w->registry, w->store, "vm-3", 44);
        Session *s = test_connect(&w->ctx, m, "boot-1");
        send_records(s, 1, 50);
        close_session(s);
        world_close(w);

        /* A torn entry after the last complete one (a crash mid-write): truncated on load, never read. */
        char *path;
        assert_true(asprintf(&path, "%s/machines/vm-3/boot-00000001.rec", w->dir) > 0);
        assert_int_equal(stat(path, &st), 0);
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(fd >= 0);
        static const uint8_t partial[] = { 200, 0, 0, 0, 1, 2, 3, 4, 'R', 9, 9 };
        assert_int_equal(write(fd, partial, sizeof(partial)), (ssize_t) sizeof(partial));
        close(fd);

        StoreLoadReport report;
        world_open(w, true, 0, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.torn_tails, 1);
        Boot *b = registry_find(w->registry, "vm-3")->current;
        TestLogs l = test_logs_read(w->store, b, 0);
        check_entries(&l, 0, 50);
        test_logs_free(&l);

        /* Bytes beyond what the store wrote (someone else's) are not read either. */
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, partial, sizeof(partial)), (ssize_t) sizeof(partial));
        close(fd);
        l = test_logs_read(w->store, b, 0);
        check_entries(&l, 0, 50);
        test_logs_free(&l);

        /* A corrupt entry (disk damage after loading) is reported, not served. */
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        uint8_t byte;
        assert_int_equal(pread(fd, &byte, 1, st.st_size - 3), 1);
        byte ^= 0xff;
        assert_int_equal(pwrite(fd, &byte, 1, st.st_size - 3), 1);
        close(fd);
        LogCursor c = { .seq = 45 };
        l = (TestLogs) {};
        assert_int_equal(log_store_read(w->store, b, &c, test_logs_add, &l), -EBADMSG);
        test_logs_free(&l);
        free(path);
}

static void test_boot_larger_than_budget(void **state) {
        World *w = *state;
        enum { N = 5000 };

        /* 64 KiB for all boots: a quiet machine's tail survives a flood; the flood loses nothing. */
        world_open(w, true, 64 * 1024, 0);
        Machine *quiet = test_register_machine(w->registry, w->store, "vm-quiet", 45),
                *flood = test_register_machine(w->registry, w->store, "vm-flood", 46);
        Session *sq = test_connect(&w->ctx, quiet, "boot-q"), *sf = test_connect(&w->ctx, flood, "boot-f");
        send_records(sq, 1, 20);
        send_records(sf, 1, N);
        assert_true(w->stats.log_memory.bytes <= 64 * 1024);
        assert_int_equal(w->stats.log_memory.limit, 64 * 1024);
        assert_true(w->stats.log_memory.evicted_records > 0);
        assert_int_equal(w->stats.dropped_records[DROP_EVICTED], 0);
        assert_int_equal(flood->current->logs.evicted_records, 0);
        /* The quiet tail is all still in memory. */
        assert_int_equal(quiet->current->logs.n_entries, 20);
        TestLogs l = test_logs_read(w->store, flood->current, 0);
        check_entries(&l, 0, N);
        test_logs_free(&l);
        l = test_logs_read(w->store, quiet->current, 0);
        check_entries(&l, 0, 20);
        test_logs_free(&l);
        close_session(sq);
        close_session(sf);
}

static void test_without_store_eviction_counted(void **state) {
        World *w = *state;
        enum { N = 5000 };

        world_open(w, false, 64 * 1024, 0);
        Machine *quiet = test_register_machine(w->registry, w->store, "vm-quiet", 45),
                *flood = test_register_machine(w->registry, w->store, "vm-flood", 46);
        Session *sq = test_connect(&w->ctx, quiet, "boot-q"), *sf = test_connect(&w->ctx, flood, "boot-f");
        send_records(sq, 1, 20);
        send_records(sf, 1, N);
        Boot *b = flood->current;
        assert_true(w->stats.log_memory.bytes <= 64 * 1024);
        assert_true(b->logs.evicted_records > 0);
        assert_int_equal(w->stats.dropped_records[DROP_EVICTED], b->logs.evicted_records);
        assert_int_equal(w->stats.dropped_bytes[DROP_EVICTED], b->logs.evicted_bytes);
        assert_int_equal(quiet->current->logs.n_entries, 20);
        assert_int_equal(quiet->current->logs.evicted_records, 0);
        /* What is left is the newest, in order. */
        uint64_t first;
        assert_int_equal(log_tail_first_seq(&b->logs, &first), 0);
        TestLogs l = test_logs_read(NULL, b, 0);
        check_entries(&l, first - 1, N);
        test_logs_free(&l);
        close_session(sq);
        close_session(sf);
}

/* A journal agent's session of m (protocol version 3) past its Welcome. */
static Session *connect_journal(World *w, Machine *m, const char *boot_id) {
        Tether__Envelope *out[16];
        Session *s;
        Bytes in = {};

        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        hello_journal_frame(&in, boot_id, "guest", NULL);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        free_envelopes(out, drain_out_queue(&s->out, out, 16));
        return s;
}

/* Journal lines with priorities 1 … 8 (seq % 9, 0 for every ninth: none) and a stdout line every tenth. */
static void send_journal(Session *s, uint64_t first, uint64_t last) {
        Bytes in = {};
        char line[64], cursor[32];

        for (uint64_t seq = first; seq <= last; seq++) {
                snprintf(line, sizeof(line), "entry %llu\n", (unsigned long long) seq);
                if (seq % 10 == 0)
                        log_frame(&in, seq, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, line, seq * 1000);
                else {
                        snprintf(cursor, sizeof(cursor), "s=1;i=%llu", (unsigned long long) seq);
                        journal_frame(&in, seq, "a.service", (unsigned) (seq % 9), cursor, line);
                }
        }
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
}

static void check_journal(const TestLogs *l, uint64_t first, uint64_t last) {
        assert_int_equal(l->n, last - first + 1);
        for (size_t i = 0; i < l->n; i++) {
                const LogEntry *e = &l->v[i].e;
                uint64_t seq = first + i;
                assert_int_equal(e->seq, seq);
                assert_int_equal(e->priority, seq % 10 == 0 ? 0 : seq % 9);
                assert_int_equal(
                        e->stream,
                        seq % 10 == 0 ? TETHER__LOG_STREAM__LOG_STREAM_STDOUT : TETHER__LOG_STREAM__LOG_STREAM_JOURNAL);
        }
}

/* A line's syslog priority reads back from memory (the tail keeps it) and, after a restart, from the boot file (the
 * stored record has it: the file's format is what it was); without a state directory from memory alone. */
static void test_priority_read_back(void **state) {
        World *w = *state;
        enum { N = 1500 };

        world_open(w, true, 0, 0);
        Machine *m = test_register_machine(w->registry, w->store, "vm-j", 47);
        Session *s = connect_journal(w, m, "boot-j");
        send_journal(s, 1, N);
        Boot *b = m->current;
        assert_int_equal(b->logs.n_entries, N);
        TestLogs l = test_logs_read(NULL, b, 0); /* memory only */
        check_journal(&l, 1, N);
        test_logs_free(&l);
        close_session(s);
        world_close(w);

        StoreLoadReport report;
        world_open(w, true, 0, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        m = registry_find(w->registry, "vm-j");
        b = m->current;
        assert_int_equal(b->logs.n_entries, 0);
        l = test_logs_read(w->store, b, 0); /* the file only */
        check_journal(&l, 1, N);
        test_logs_free(&l);

        /* Back again: the file below, memory above, and a reader resuming in between. */
        s = connect_journal(w, m, "boot-j");
        send_journal(s, N + 1, N + 200);
        l = read_chunked(w->store, b, 700, 17);
        check_journal(&l, 701, N + 200);
        test_logs_free(&l);
        close_session(s);
        world_close(w);

        world_open(w, false, 0, 0);
        m = test_register_machine(w->registry, NULL, "vm-j", 47);
        s = connect_journal(w, m, "boot-j");
        send_journal(s, 1, 300);
        l = test_logs_read(NULL, m->current, 0);
        check_journal(&l, 1, 300);
        test_logs_free(&l);
        close_session(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read_back_across_blocks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reload_rebuilds_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reads_stop_at_what_was_written, setup, teardown),
                cmocka_unit_test_setup_teardown(test_boot_larger_than_budget, setup, teardown),
                cmocka_unit_test_setup_teardown(test_without_store_eviction_counted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_priority_read_back, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
