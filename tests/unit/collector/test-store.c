/* SPDX-License-Identifier: MIT */
/* Persistence: records written through a session survive a "restart" (a fresh registry and store loading the
 * state directory) with the right acked_seq, content, clock, trace and span ids; a torn tail is truncated;
 * deleting machines and evicting boots removes their files; the on-disk bound is counted; registrations reach
 * the disk through the syncer, one at a time per machine, newest last. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector-test.h"
#include "jsonlog.h"
#include "session.h"
#include "stitch.h"
#include "store.h"
#include "time-util.h"

#define MS UINT64_C(1000000)

typedef struct World {
        char dir[64];
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext ctx;
} World;

static void world_open(World *w, size_t max_boots, uint64_t max_boot_bytes) {
        RegistryConfig c = {
                .node_id = "node-a",
                .max_machines = 16,
                .max_boots = max_boots,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        StoreConfig sc = { .dir = w->dir, .max_boot_bytes = max_boot_bytes, .sync = true };

        memset(&w->stats, 0, sizeof(w->stats));
        assert_int_equal(registry_new(&c, &w->stats, &w->registry), 0);
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
        test_dir_make(w->dir, sizeof(w->dir), "store");
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

static Machine *register_machine(World *w, const char *id, uint32_t cid) {
        MachineSpec spec = { .machine_id = id, .cid = cid, .request_id = "req-1", .ready_condition = "any" };
        const char *err;
        Machine *m;
        assert_int_equal(registry_add_machine(w->registry, &spec, &m, &err), 0);
        test_save_machine(w->store, m);
        return m;
}

static Session *connect_and_feed(World *w, Machine *m, Bytes *in, uint64_t *ret_welcome_acked) {
        Session *s;
        Tether__Envelope *out[64];

        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        assert_int_equal(session_feed(s, in->data, in->len), 0);
        bytes_free(in);
        size_t n = drain_out_queue(&s->out, out, 64);
        assert_true(n >= 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_WELCOME);
        if (ret_welcome_acked)
                *ret_welcome_acked = out[0]->welcome->acked_seq;
        free_envelopes(out, n);
        return s;
}

static char *boot_file_path(World *w, const char *machine, uint64_t index) {
        char *p;
        assert_true(asprintf(&p, "%s/machines/%s/boot-%08llu.rec", w->dir, machine, (unsigned long long) index) > 0);
        return p;
}

static void test_round_trip(void **state) {
        World *w = *state;
        Bytes in = {};
        uint64_t acked;
        uint8_t ids_before[8][8];
        size_t n_spans_before;

        world_open(w, 4, 0);
        Machine *m = register_machine(w, "vm-1", 42);

        hello_frame(&in, "boot-1", "guest");
        milestone_frame(&in, 1, "init.start", 100 * MS);
        milestone_frame(&in, 2, "workload.exec", 300 * MS);
        phase_frame(&in, 3, "mount", 120 * MS, 200 * MS);
        log_frame(&in, 4, 1, "hello\nworld\n", 400 * MS);
        log_frame(&in, 5, 2, "bad byte \xff here\n", 410 * MS);
        Session *s = connect_and_feed(w, m, &in, &acked);
        assert_int_equal(acked, 0);

        /* A clock sample (a good one: it fixes the boot's mapping), persisted as the boot's estimate. */
        uint64_t mono = now_ns(CLOCK_MONOTONIC);
        assert_int_equal(session_send_clock_probe(s, mono, now_ns(CLOCK_REALTIME)), 0);
        Tether__Envelope *out[4];
        assert_int_equal(drain_out_queue(&s->out, out, 4), 1);
        clock_sample_frame(&in, out[0]->clock_probe->probe_id, 950 * MS);
        free_envelopes(out, 1);
        ready_frame(&in, 6, "sd_notify", 960 * MS);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        ClockEstimate clock = m->current->clock;
        assert_true(clock.valid);
        assert_true(m->current->clock_fixed);

        assert_int_equal(session_flush_ack(s), 1);
        assert_true(w->stats.syncs >= 1);
        uint8_t trace[16];
        memcpy(trace, m->current->trace_id, 16);

        StitchContext ctx = { .machine_id = "vm-1", .node_id = "node-a", .now_unix_ns = now_ns(CLOCK_REALTIME) };
        SpanSet *set;
        assert_int_equal(stitch_boot(&ctx, m->current, &set), 0);
        n_spans_before = set->n_spans;
        assert_true(n_spans_before <= 8);
        for (size_t i = 0; i < set->n_spans; i++)
                memcpy(ids_before[i], set->spans[i].span_id, 8);
        span_set_free(set);

        session_end(s, CLOSE_SHUTDOWN);
        session_free(s);
        world_close(w);

        /* "Restart". */
        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.machines, 1);
        assert_int_equal(report.boots, 1);
        assert_int_equal(report.records, 6);
        assert_int_equal(report.torn_tails, 0);

        m = registry_find(w->registry, "vm-1");
        assert_non_null(m);
        assert_ptr_equal(registry_find_by_cid(w->registry, 42), m);
        assert_string_equal(m->request_id, "req-1");
        assert_int_equal(m->state, MACHINE_READY);
        assert_true(m->agent_seen);
        assert_false(m->connected);
        Boot *b = m->current;
        assert_non_null(b);
        assert_string_equal(b->boot_id, "boot-1");
        assert_string_equal(b->hostname, "guest");
        assert_int_equal(b->last_seq, 6);
        assert_int_equal(b->n_milestones, 2);
        assert_int_equal(b->n_phases, 1);
        /* The log lines are read back from the file, not held in memory. */
        assert_int_equal(b->logs.n_entries, 0);
        TestLogs logs = test_logs_read(w->store, b, 0);
        assert_int_equal(logs.n, 2);
        assert_int_equal(logs.v[0].e.len, strlen("hello\nworld\n"));
        assert_memory_equal(logs.v[0].e.data, "hello\nworld\n", 12);
        assert_memory_equal(logs.v[1].e.data, "bad byte \xff here\n", 16);
        assert_string_equal(logs.v[0].e.source, "workload");
        test_logs_free(&logs);
        assert_true(b->ready.set);
        assert_string_equal(b->ready.source, "sd_notify");
        assert_true(b->clock.valid);
        assert_int_equal(b->clock.offset_ns, clock.offset_ns);
        assert_int_equal(b->clock.error_ns, clock.error_ns);
        assert_memory_equal(b->trace_id, trace, 16);

        /* Same spans, same ids. */
        assert_int_equal(stitch_boot(&ctx, b, &set), 0);
        assert_int_equal(set->n_spans, n_spans_before);
        for (size_t i = 0; i < set->n_spans; i++)
                assert_memory_equal(set->spans[i].span_id, ids_before[i], 8);
        span_set_free(set);

        /* The agent reconnects: Welcome.acked_seq says what is stored; its replay is deduplicated. */
        hello_frame(&in, "boot-1", "guest");
        s = connect_and_feed(w, m, &in, &acked);
        assert_int_equal(acked, 6);
        log_frame(&in, 6, 1, "dup\n", 1);
        log_frame(&in, 7, 1, "new\n", 1000 * MS);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        assert_int_equal(b->last_seq, 7);
        logs = test_logs_read(w->store, b, 0);
        assert_int_equal(logs.n, 3);
        test_logs_free(&logs);
        session_end(s, CLOSE_SHUTDOWN);
        session_free(s);
        world_close(w);

        /* And again: the record written after the first restart is there exactly once. */
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        b = registry_find(w->registry, "vm-1")->current;
        assert_int_equal(b->last_seq, 7);
        logs = test_logs_read(w->store, b, 0);
        assert_int_equal(logs.n, 3);
        test_logs_free(&logs);
        assert_int_equal(b->records, 7);
}

static void test_torn_tail_truncated(void **state) {
        World *w = *state;
        Bytes in = {};
        struct stat st;

        world_open(w, 4, 0);
        Machine *m = register_machine(w, "vm-2", 43);
        hello_frame(&in, "boot-1", "guest");
        for (uint64_t seq = 1; seq <= 3; seq++)
                log_frame(&in, seq, 1, "line\n", seq);
        Session *s = connect_and_feed(w, m, &in, NULL);
        session_end(s, CLOSE_SHUTDOWN);
        session_free(s);
        world_close(w);

        _cleanup_free_ char *path = boot_file_path(w, "vm-2", 1);
        assert_int_equal(stat(path, &st), 0);
        off_t good = st.st_size;

        /* A crash in the middle of an append: a header promising more bytes than follow. */
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(fd >= 0);
        static const uint8_t partial[] = { 100, 0, 0, 0, 1, 2, 3, 4, 'R', 9, 9 };
        assert_int_equal(write(fd, partial, sizeof(partial)), (ssize_t) sizeof(partial));
        close(fd);

        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.torn_tails, 1);
        assert_int_equal(registry_find(w->registry, "vm-2")->current->last_seq, 3);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, good);

        /* A corrupted (bad CRC) last entry is dropped the same way. */
        world_close(w);
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        uint8_t byte;
        assert_int_equal(pread(fd, &byte, 1, good - 1), 1);
        byte ^= 0xff;
        assert_int_equal(pwrite(fd, &byte, 1, good - 1), 1);
        close(fd);
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.torn_tails, 1);
        assert_int_equal(registry_find(w->registry, "vm-2")->current->last_seq, 2);
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        size_t n = 0;
        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void test_boot_eviction_and_delete_remove_files(void **state) {
        World *w = *state;
        Bytes in = {};
        char mdir[128];

        world_open(w, 2, 0);
        Machine *m = register_machine(w, "vm-3", 44);
        snprintf(mdir, sizeof(mdir), "%s/machines/vm-3", w->dir);
        for (int i = 1; i <= 3; i++) {
                char boot_id[16];
                snprintf(boot_id, sizeof(boot_id), "boot-%d", i);
                hello_frame(&in, boot_id, "guest");
                log_frame(&in, 1, 1, "x\n", 1);
                Session *s = connect_and_feed(w, m, &in, NULL);
                session_end(s, CLOSE_EOF);
                session_free(s);
        }
        /* machine.json + the two newest boots. */
        assert_int_equal(count_entries(mdir), 3);
        _cleanup_free_ char *first = boot_file_path(w, "vm-3", 1), *third = boot_file_path(w, "vm-3", 3);
        assert_int_equal(access(first, F_OK), -1);
        assert_int_equal(access(third, F_OK), 0);

        assert_int_equal(store_remove_machine(w->store, m), 0);
        registry_remove_machine(w->registry, m);
        assert_int_equal(access(mdir, F_OK), -1);

        /* Nothing comes back after a restart. */
        world_close(w);
        StoreLoadReport report;
        world_open(w, 2, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.machines, 0);
        assert_null(registry_find(w->registry, "vm-3"));
}

/* An agent that resumes an older boot makes it current; a restart keeps it so (not the newest index). */
static void test_resumed_boot_current_after_restart(void **state) {
        World *w = *state;
        Bytes in = {};

        world_open(w, 4, 0);
        Machine *m = register_machine(w, "vm-4", 45);
        const char *order[] = { "boot-a", "boot-b", "boot-a" };
        for (size_t i = 0; i < 3; i++) {
                hello_frame(&in, order[i], "guest");
                Session *s = connect_and_feed(w, m, &in, NULL);
                session_end(s, CLOSE_EOF);
                session_free(s);
        }
        assert_int_equal(m->n_boots, 2);
        assert_string_equal(m->current->boot_id, "boot-a");
        assert_int_equal(m->current->index, 1);

        world_close(w);
        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        m = registry_find(w->registry, "vm-4");
        assert_non_null(m);
        assert_int_equal(m->n_boots, 2);
        assert_string_equal(m->current->boot_id, "boot-a");

        /* And the newest boot when it said Hello last. */
        hello_frame(&in, "boot-b", "guest");
        Session *s = connect_and_feed(w, m, &in, NULL);
        session_end(s, CLOSE_EOF);
        session_free(s);
        world_close(w);
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        m = registry_find(w->registry, "vm-4");
        assert_string_equal(m->current->boot_id, "boot-b");
}

static void test_disk_bound_counted(void **state) {
        World *w = *state;
        Bytes in = {};
        char line[1001];

        memset(line, 'y', 999);
        line[999] = '\n';
        line[1000] = '\0';
        world_open(w, 4, 8192);
        Machine *m = register_machine(w, "vm-4", 45);
        hello_frame(&in, "boot-1", "guest");
        for (uint64_t seq = 1; seq <= 20; seq++)
                log_frame(&in, seq, 1, line, seq);
        Session *s = connect_and_feed(w, m, &in, NULL);
        /* Still stored in memory and acked, but what did not fit on disk is counted. */
        assert_int_equal(m->current->last_seq, 20);
        assert_true(w->stats.dropped_records[DROP_DISK_LIMIT] > 0);
        uint64_t on_disk = 20 - w->stats.dropped_records[DROP_DISK_LIMIT];
        session_end(s, CLOSE_SHUTDOWN);
        session_free(s);

        _cleanup_free_ char *path = boot_file_path(w, "vm-4", 1);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size <= 8192);
        world_close(w);

        StoreLoadReport report;
        world_open(w, 4, 8192);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(registry_find(w->registry, "vm-4")->current->last_seq, on_disk);
}

static void test_invalid_machine_file_skipped(void **state) {
        World *w = *state;
        char path[256];

        world_open(w, 4, 0);
        register_machine(w, "vm-ok", 46);
        world_close(w);

        snprintf(path, sizeof(path), "%s/machines/vm-bad", w->dir);
        assert_int_equal(mkdir(path, 0750), 0);
        snprintf(path, sizeof(path), "%s/machines/vm-bad/machine.json", w->dir);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs("{\"machine_id\": \"vm-bad\", \"cid\": \"not a number\"}", f);
        fclose(f);

        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.machines, 1);
        assert_int_equal(report.machines_skipped, 1);
        assert_non_null(registry_find(w->registry, "vm-ok"));
        assert_null(registry_find(w->registry, "vm-bad"));
}

typedef struct Saved {
        int calls;
        int error;
} Saved;

static void on_saved(Store *store, Machine *m, int error, void *userdata) {
        Saved *sv = userdata;
        sv->calls++;
        sv->error = error;
}

static bool machine_file_exists(World *w, const char *id, bool tmp) {
        char path[256];
        snprintf(path, sizeof(path), "%s/machines/%s/%smachine.json%s", w->dir, id, tmp ? "." : "", tmp ? ".tmp" : "");
        return access(path, F_OK) == 0;
}

static void dispatch_until(World *w, const Saved *sv, int calls) {
        while (sv->calls < calls)
                test_dispatch_syncs(w->store);
}

/* A registration is written here and synced by the syncer's threads: machine.json appears (renamed into place)
 * only once the temporary file is durable, and the handler hears of it after the directory's sync. */
static void test_save_machine_off_the_loop(void **state) {
        World *w = *state;
        MachineSpec spec = { .machine_id = "vm-s", .cid = 50, .request_id = "req-1" };
        const char *err;
        Machine *m;
        Saved sv = {};

        world_open(w, 4, 0);
        assert_int_equal(registry_add_machine(w->registry, &spec, &m, &err), 0);
        assert_int_equal(store_save_machine(w->store, m, on_saved, &sv), 1);
        assert_false(m->persisted);
        assert_true(machine_file_exists(w, "vm-s", true));
        assert_false(machine_file_exists(w, "vm-s", false));
        assert_int_equal(sv.calls, 0);

        dispatch_until(w, &sv, 1);
        assert_int_equal(sv.error, 0);
        assert_true(m->persisted);
        assert_null(m->store_save);
        assert_true(machine_file_exists(w, "vm-s", false));
        assert_false(machine_file_exists(w, "vm-s", true));
        world_close(w);

        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        assert_int_equal(report.machines, 1);
        assert_int_equal(registry_find(w->registry, "vm-s")->cid, 50);
}

/* A second save while the first is on its way follows it with the machine as it is then: both hear once it is
 * durable, and the file holds the newer registration. */
static void test_save_machine_twice_newest_wins(void **state) {
        World *w = *state;
        MachineSpec spec = { .machine_id = "vm-t", .cid = 51, .request_id = "req-1" };
        MachineSpec update = { .machine_id = "vm-t", .cid = 52, .request_id = "req-2" };
        const char *err;
        Machine *m;
        Saved first = {}, second = {};

        world_open(w, 4, 0);
        assert_int_equal(registry_add_machine(w->registry, &spec, &m, &err), 0);
        assert_int_equal(store_save_machine(w->store, m, on_saved, &first), 1);
        assert_int_equal(registry_update_machine(w->registry, m, &update, &err), 1);
        assert_int_equal(store_save_machine(w->store, m, on_saved, &second), 1);

        dispatch_until(w, &second, 1);
        assert_int_equal(first.calls, 1);
        assert_int_equal(first.error, 0);
        assert_int_equal(second.error, 0);
        assert_null(m->store_save);
        world_close(w);

        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        Machine *loaded = registry_find(w->registry, "vm-t");
        assert_non_null(loaded);
        assert_int_equal(loaded->cid, 52);
        assert_string_equal(loaded->request_id, "req-2");
}

/* Deleting a machine whose registration is on its way: the waiter hears -ECANCELED at once, nothing is left on
 * disk, and the sync's late completion is ignored. */
static void test_remove_machine_while_saving(void **state) {
        World *w = *state;
        MachineSpec spec = { .machine_id = "vm-r", .cid = 53 };
        const char *err;
        char path[256];
        Machine *m;
        Saved sv = {};

        world_open(w, 4, 0);
        assert_int_equal(registry_add_machine(w->registry, &spec, &m, &err), 0);
        assert_int_equal(store_save_machine(w->store, m, on_saved, &sv), 1);
        assert_int_equal(store_remove_machine(w->store, m), 0);
        assert_int_equal(sv.calls, 1);
        assert_int_equal(sv.error, -ECANCELED);
        assert_null(m->store_save);
        snprintf(path, sizeof(path), "%s/machines/vm-r", w->dir);
        assert_int_equal(access(path, F_OK), -1);

        /* The cancelled sync (and the directory's, for the removal) complete later without a call. */
        struct pollfd p = { .fd = store_sync_fd(w->store), .events = POLLIN };
        while (poll(&p, 1, 200) == 1)
                store_dispatch_syncs(w->store);
        assert_int_equal(sv.calls, 1);
        registry_discard_machine(w->registry, m);
}

/* A store that does not sync (--no-sync) writes the registration in place at once: nothing to wait for. */
static void test_save_machine_without_sync(void **state) {
        World *w = *state;
        MachineSpec spec = { .machine_id = "vm-n", .cid = 54 };
        StoreConfig sc = { .dir = w->dir, .sync = false };
        const char *err;
        Machine *m;
        Saved sv = {};

        world_open(w, 4, 0);
        w->store = store_free(w->store);
        assert_int_equal(store_open(&sc, &w->stats, &w->store), 0);
        assert_int_equal(registry_add_machine(w->registry, &spec, &m, &err), 0);
        assert_int_equal(store_save_machine(w->store, m, on_saved, &sv), 0);
        assert_int_equal(sv.calls, 0);
        assert_true(m->persisted);
        assert_true(machine_file_exists(w, "vm-n", false));
        assert_false(machine_file_exists(w, "vm-n", true));
}

/* The journal cursor survives a restart of tetherd: reading the boot file back restores the newest one, and the
 * Welcome of the next connection (a restarted agent) names it. */
static void test_journal_cursor_after_restart(void **state) {
        World *w = *state;
        Bytes in = {};
        Tether__Envelope *out[8];

        world_open(w, 4, 0);
        Machine *m = register_machine(w, "vm-j", 47);
        hello_journal_frame(&in, "boot-j", "guest", NULL);
        journal_frame(&in, 1, "a.service", 5, "s=1;i=1", "one\n");
        journal_frame(&in, 2, "a.service", 5, "s=1;i=2", "two\n");
        log_frame(&in, 3, 1, "plain\n", 3 * MS);
        Session *s = connect_and_feed(w, m, &in, NULL);
        assert_int_equal(session_flush_ack(s), 1);
        session_end(s, CLOSE_EOF);
        session_free(s);
        world_close(w);

        StoreLoadReport report;
        world_open(w, 4, 0);
        assert_int_equal(store_load(w->store, w->registry, &report), 0);
        m = registry_find(w->registry, "vm-j");
        assert_non_null(m);
        assert_string_equal(m->current->journal_cursor, "s=1;i=2");

        hello_journal_frame(&in, "boot-j", "guest", "restarted-agent");
        assert_int_equal(session_new(&w->ctx, m, &s), 0);
        assert_int_equal(session_feed(s, in.data, in.len), 0);
        bytes_free(&in);
        size_t n = drain_out_queue(&s->out, out, 8);
        assert_true(n >= 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_WELCOME);
        assert_string_equal(out[0]->welcome->journal_cursor, "s=1;i=2");
        free_envelopes(out, n);
        session_end(s, CLOSE_EOF);
        session_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_journal_cursor_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_torn_tail_truncated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_boot_eviction_and_delete_remove_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resumed_boot_current_after_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_disk_bound_counted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_machine_file_skipped, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_machine_off_the_loop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_machine_twice_newest_wins, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove_machine_while_saving, setup, teardown),
                cmocka_unit_test_setup_teardown(test_save_machine_without_sync, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
