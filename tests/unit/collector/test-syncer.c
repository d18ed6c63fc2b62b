/* SPDX-License-Identifier: MIT */
/* The sync pipeline: fdatasync on the syncer's threads, completions through its eventfd; a session's Ack only
 * after the sync covering its records completed, in order, coalesced while one is in flight; one write() per
 * wakeup; write and sync failures counted. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collector-test.h"
#include "file-repair.h"
#include "jsonlog.h"
#include "session.h"
#include "store.h"
#include "syncer.h"

#define MS UINT64_C(1000000)

/* ---- the syncer alone ---- */

typedef struct Completion {
        int calls;
        int error;
        int order[8];
        int n;
} Completion;

static void on_done(SyncJob *job, int error, void *userdata) {
        Completion *c = userdata;
        c->calls++;
        c->error = error;
}

static void wait_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
}

/* Dispatches until n jobs completed. */
static void dispatch_n(Syncer *s, unsigned n) {
        while (n > 0) {
                wait_readable(syncer_fd(s));
                unsigned k = syncer_dispatch(s);
                assert_true(k <= n);
                n -= k;
        }
}

static void test_syncer_completes(void **state) {
        char dir[64], path[128];
        Syncer *s;
        Completion a = {}, b = {}, cancelled = {};
        SyncJob *jb, *jc;

        test_dir_make(dir, sizeof(dir), "syncer");
        snprintf(path, sizeof(path), "%s/f", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(fd >= 0 && dfd >= 0);
        assert_int_equal(write(fd, "x", 1), 1);

        assert_int_equal(syncer_new(0, &s), -EINVAL);
        assert_int_equal(syncer_new(2, &s), 0);
        assert_int_equal(syncer_submit(s, fd, -1, on_done, &a, NULL), 0);
        assert_int_equal(syncer_submit(s, fd, dfd, on_done, &b, &jb), 0);
        assert_int_equal(syncer_submit(s, fd, -1, on_done, &cancelled, &jc), 0);
        /* The caller's fds may go at once: the jobs hold their own. */
        close(fd);
        close(dfd);
        syncer_cancel(jc);
        assert_int_equal(syncer_in_flight(s), 3);
        dispatch_n(s, 3);
        assert_int_equal(syncer_in_flight(s), 0);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.error, 0);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.error, 0);
        assert_int_equal(cancelled.calls, 0);
        (void) jb;
        s = syncer_free(s);
        assert_null(s);
        test_dir_remove(dir);
}

static void test_syncer_reports_errors(void **state) {
        int p[2];
        Syncer *s;
        Completion c = {};

        /* fdatasync() of a pipe fails with EINVAL: the error reaches the handler. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(syncer_new(1, &s), 0);
        assert_int_equal(syncer_submit(s, p[1], -1, on_done, &c, NULL), 0);
        dispatch_n(s, 1);
        assert_int_equal(c.calls, 1);
        assert_int_equal(c.error, -EINVAL);
        assert_int_equal(syncer_submit(s, -1, -1, on_done, &c, NULL), -EBADF);
        syncer_free(s);
        close(p[0]);
        close(p[1]);
}

static void test_syncer_free_waits(void **state) {
        char dir[64], path[128];
        Syncer *s;
        Completion c = {};

        /* Freed with jobs queued: they are synced (not dispatched), nothing leaks (ASan). */
        test_dir_make(dir, sizeof(dir), "syncer-free");
        snprintf(path, sizeof(path), "%s/f", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(syncer_new(3, &s), 0);
        for (int i = 0; i < 32; i++)
                assert_int_equal(syncer_submit(s, fd, -1, on_done, &c, NULL), 0);
        syncer_free(s);
        assert_int_equal(c.calls, 0);
        close(fd);
        test_dir_remove(dir);
}

/* ---- sessions acking through the store's threads ---- */

typedef struct World {
        char dir[64];
        Stats stats;
        Registry *registry;
        Store *store;
        SessionContext ctx;
        Machine *machine;
        Session *session;
        int acks_handed; /* on_ack calls */
        int ack_result;
} World;

static void on_ack(Session *s, int r, void *userdata) {
        World *w = userdata;
        w->acks_handed++;
        w->ack_result = r;
}

static int setup(void **state) {
        World *w = calloc(1, sizeof(World));
        RegistryConfig c = test_registry_config();
        StoreConfig sc = { .dir = w->dir, .sync = true, .sync_threads = 2 };
        MachineSpec spec = { .machine_id = "vm-1", .cid = 42, .ready_condition = "any" };
        const char *err;

        c.unwritten_memory_bytes = UNWRITTEN_NODE_MAX_BYTES;
        log_setup(LOG_TARGET_JSON, LOG_CRIT, "test");
        test_dir_make(w->dir, sizeof(w->dir), "sync");
        assert_int_equal(registry_new(&c, &w->stats, &w->registry), 0);
        assert_int_equal(store_open(&sc, &w->stats, &w->store), 0);
        assert_true(store_sync_fd(w->store) >= 0);
        session_context_init(&w->ctx, w->registry, w->store, &w->stats);
        assert_int_equal(registry_add_machine(w->registry, &spec, &w->machine, &err), 0);
        test_save_machine(w->store, w->machine);
        assert_int_equal(session_new(&w->ctx, w->machine, &w->session), 0);
        w->session->on_ack = on_ack;
        w->session->on_ack_userdata = w;
        *state = w;
        return 0;
}

static int teardown(void **state) {
        World *w = *state;
        if (w->session) {
                session_end(w->session, CLOSE_EOF);
                session_free(w->session);
        }
        w->store = store_free(w->store);
        w->registry = registry_free(w->registry);
        test_dir_remove(w->dir);
        free(w);
        return 0;
}

static void feed(World *w, Bytes *in) {
        assert_int_equal(session_feed(w->session, in->data, in->len), 0);
        bytes_free(in);
}

/* The Acks queued so far, in order; returns how many (their seqs in seqs). Other messages are skipped. */
static size_t take_acks(World *w, uint64_t *seqs, size_t max) {
        Tether__Envelope *out[64];
        size_t n = drain_out_queue(&w->session->out, out, 64), k = 0;
        for (size_t i = 0; i < n; i++)
                if (out[i]->msg_case == TETHER__ENVELOPE__MSG_ACK && k < max)
                        seqs[k++] = out[i]->ack->seq;
        free_envelopes(out, n);
        return k;
}

static uint64_t file_size(World *w) {
        char path[160];
        struct stat st;
        snprintf(path, sizeof(path), "%s/machines/vm-1/boot-00000001.rec", w->dir);
        assert_int_equal(stat(path, &st), 0);
        return (uint64_t) st.st_size;
}

static void test_ack_after_sync(void **state) {
        World *w = *state;
        Bytes in = {};
        uint64_t acks[8];

        hello_frame(&in, "boot-1", "guest");
        feed(w, &in);
        assert_int_equal(take_acks(w, acks, 8), 0); /* the Welcome */

        for (uint64_t i = 1; i <= 10; i++)
                log_frame(&in, i, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "a line\n", i * MS);
        uint64_t before = file_size(w);
        feed(w, &in);
        /* Stored in memory, buffered for the file: nothing written before the wakeup ends. */
        assert_int_equal(w->machine->current->last_seq, 10);
        assert_int_equal(file_size(w), before);
        session_flush_writes(w->session);
        assert_true(file_size(w) > before);

        /* The ack waits for the sync on the threads. */
        assert_int_equal(session_request_ack(w->session), 0);
        assert_int_equal(take_acks(w, acks, 8), 0);
        assert_int_equal(w->acks_handed, 0);
        uint64_t syncs = w->stats.syncs;
        test_dispatch_syncs(w->store);
        assert_int_equal(w->acks_handed, 1);
        assert_int_equal(w->ack_result, 1);
        assert_true(w->stats.syncs > syncs);
        assert_int_equal(take_acks(w, acks, 8), 1);
        assert_int_equal(acks[0], 10);
        /* Nothing arrived since: no ack is due. */
        assert_int_equal(session_request_ack(w->session), 0);
        assert_int_equal(take_acks(w, acks, 8), 0);
}

static void test_ack_coalesced_in_order(void **state) {
        World *w = *state;
        Bytes in = {};
        uint64_t acks[8];
        size_t n = 0;

        hello_frame(&in, "boot-1", "guest");
        feed(w, &in);
        (void) take_acks(w, acks, 8);

        for (uint64_t i = 1; i <= 5; i++)
                log_frame(&in, i, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "first\n", i * MS);
        feed(w, &in);
        session_flush_writes(w->session);
        assert_int_equal(session_request_ack(w->session), 0);

        /* More records while the first sync is in flight: their request is coalesced into one later sync. */
        for (uint64_t i = 6; i <= 9; i++)
                log_frame(&in, i, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "second\n", i * MS);
        feed(w, &in);
        session_flush_writes(w->session);
        assert_int_equal(session_request_ack(w->session), 0);

        /* Acks arrive in order and never claim more than a completed sync covered. */
        while (n == 0 || acks[n - 1] < 9) {
                test_dispatch_syncs(w->store);
                size_t k = take_acks(w, acks + n, 8 - n);
                for (size_t i = 0; i < k; i++) {
                        assert_true(acks[n + i] == 5 || acks[n + i] == 9);
                        if (n + i > 0)
                                assert_true(acks[n + i] > acks[n + i - 1]);
                }
                n += k;
                assert_true(n <= 2);
        }
        assert_int_equal(acks[n - 1], 9);
        assert_int_equal(w->stats.persist_errors, 0);
}

static void test_ready_acked_urgently_and_welcome_durable(void **state) {
        World *w = *state;
        Bytes in = {};
        uint64_t acks[8];

        hello_frame(&in, "boot-1", "guest");
        log_frame(&in, 1, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "x\n", 1 * MS);
        ready_frame(&in, 2, "notify", 2 * MS);
        feed(w, &in);
        /* Ready is known from memory at once; its ack is urgent but still waits for the disk. */
        assert_true(w->machine->current->ready.set);
        assert_true(w->session->ack_urgent);
        session_flush_writes(w->session);
        assert_int_equal(session_request_ack(w->session), 0);
        assert_int_equal(take_acks(w, acks, 8), 0);

        /* A second connection now: Welcome.acked_seq only claims what is durable (0: the sync is in flight, or
         * 2 if it already completed), never more. */
        session_end(w->session, CLOSE_REPLACED);
        w->session = session_free(w->session);
        assert_int_equal(session_new(&w->ctx, w->machine, &w->session), 0);
        hello_frame(&in, "boot-1", "guest");
        feed(w, &in);
        Tether__Envelope *out[4];
        size_t n = drain_out_queue(&w->session->out, out, 4);
        assert_int_equal(n, 1);
        assert_int_equal(out[0]->msg_case, TETHER__ENVELOPE__MSG_WELCOME);
        uint64_t welcome = out[0]->welcome->acked_seq;
        free_envelopes(out, n);
        assert_true(welcome == 0 || welcome == 2);
        /* The first session's handler is gone: its completion acks nobody (ASan would catch a stale pointer). */
        while (store_durable_mark(w->store, w->machine->current, 0) < 2)
                test_dispatch_syncs(w->store);
        assert_int_equal(w->acks_handed, 0);
}

/* The Welcome's acked_seq after a reconnect of the same agent instance. */
static uint64_t reconnect(World *w) {
        Bytes in = {};
        Tether__Envelope *out[64];
        uint64_t acked = UINT64_MAX;

        session_end(w->session, CLOSE_RESYNC);
        session_free(w->session);
        assert_int_equal(session_new(&w->ctx, w->machine, &w->session), 0);
        w->session->on_ack = on_ack;
        w->session->on_ack_userdata = w;
        hello_frame(&in, "boot-1", "guest");
        feed(w, &in);
        size_t n = drain_out_queue(&w->session->out, out, 64);
        for (size_t i = 0; i < n; i++)
                if (out[i]->msg_case == TETHER__ENVELOPE__MSG_WELCOME)
                        acked = out[i]->welcome->acked_seq;
        free_envelopes(out, n);
        assert_int_not_equal(acked, UINT64_MAX);
        return acked;
}

/* A boot file whose write fails (EFBIG) after the Hello: 3 records lost from the file's batch, a 4th behind the
 * hole. Returns the file's size before them. */
static uint64_t fail_writes(World *w) {
        Bytes in = {};
        struct rlimit old, lim;
        uint64_t acks[8];

        hello_frame(&in, "boot-1", "guest");
        feed(w, &in);
        (void) take_acks(w, acks, 8);
        session_flush_writes(w->session);
        uint64_t size = file_size(w);
        Boot *b = w->machine->current;

        /* The file may not grow: the batch's write fails (EFBIG), the file is rolled back to its last whole entry
         * and has a hole from seq 1. Nothing is dropped: none of it is acked, the agent keeps it. */
        for (uint64_t i = 1; i <= 3; i++)
                log_frame(&in, i, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "lost on disk\n", i * MS);
        feed(w, &in);
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, SIG_IGN);
        lim = old;
        lim.rlim_cur = size;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        session_flush_writes(w->session);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(w->stats.dropped_records[DROP_PERSIST_FAILED], 0);
        assert_true(w->stats.persist_errors >= 1);
        assert_int_equal(file_size(w), size);
        assert_int_equal(b->unpersisted_seq, 1);
        /* The log index does not point past the rolled-back file. */
        assert_true(b->log_index.n == 0 || b->log_index.points[b->log_index.n - 1].offset < size);

        /* A later record waits behind the hole: applied in memory (readiness and logs are answered from there),
         * kept out of the file so that it stays in seq order, not acked. */
        log_frame(&in, 4, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "after the hole\n", 4 * MS);
        feed(w, &in);
        session_flush_writes(w->session);
        assert_int_equal(b->last_seq, 4);
        assert_int_equal(file_size(w), size);
        if (session_request_ack(w->session) == 0)
                test_dispatch_syncs(w->store);
        size_t n = take_acks(w, acks, 8);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(acks[i], 0);
        return size;
}

/* What a restarted tetherd reads back of vm-1's current boot: its last seq and how many records it has. */
static void assert_reloaded(World *w, uint64_t last_seq, uint64_t records) {
        Registry *reg = NULL;
        RegistryConfig c = test_registry_config();
        Store *st = NULL;
        Stats stats = {};
        StoreLoadReport report = {};
        StoreConfig sc = { .dir = w->dir, .sync = false };
        if (w->session) {
                session_end(w->session, CLOSE_EOF);
                w->session = session_free(w->session);
        }
        w->store = store_free(w->store);
        assert_int_equal(registry_new(&c, &stats, &reg), 0);
        assert_int_equal(store_open(&sc, &stats, &st), 0);
        assert_int_equal(store_load(st, reg, &report), 0);
        Machine *m = registry_find(reg, "vm-1");
        assert_non_null(m);
        assert_int_equal(m->current->last_seq, last_seq);
        assert_int_equal(m->current->records, records);
        assert_int_equal(report.records, records);
        store_free(st);
        registry_free(reg);
}

/* The copies the boot kept of what the file missed are written by the repair: no resend, and all is acked. */
static void test_write_failure_written_back(void **state) {
        World *w = *state;
        uint64_t acks[8];

        uint64_t size = fail_writes(w);
        Boot *b = w->machine->current;
        assert_int_equal(b->unwritten.n, 4);
        assert_false(b->unwritten.incomplete);

        /* The repair waits for its retry time, then writes them: the connection stays. */
        assert_false(session_wants_resync(w->session));
        assert_int_equal(b->unpersisted_seq, 1);
        b->persist_retry_ns = 0;
        assert_false(session_wants_resync(w->session));
        assert_int_equal(b->unpersisted_seq, 0);
        assert_true(unwritten_is_empty(&b->unwritten));
        assert_int_equal(w->registry->unwritten_budget.bytes, 0);
        assert_true(file_size(w) > size);
        assert_int_equal(w->stats.records_repersisted, 4);
        assert_true(w->session->ack_pending);
        if (session_request_ack(w->session) == 0)
                test_dispatch_syncs(w->store);
        size_t n = take_acks(w, acks, 8);
        assert_true(n >= 1);
        assert_int_equal(acks[n - 1], 4);
        /* The log lines are read back from the file now, at the offsets the repair wrote them. */
        assert_true(b->log_index.n >= 1 && b->log_index.points[b->log_index.n - 1].offset >= size);
        assert_reloaded(w, 4, 4);
}

/* More than tetherd keeps in memory went missing: the repair has the agent reconnect and resend from the hole. */
static void test_write_failure_resent(void **state) {
        World *w = *state;
        Bytes in = {};
        uint64_t acks[8];

        /* A node-wide bound of copies that the first lost record exceeds. */
        w->registry->unwritten_budget.max_bytes = 16;
        uint64_t size = fail_writes(w);
        Boot *b = w->machine->current;
        assert_true(b->unwritten.incomplete);
        assert_int_equal(b->unwritten.n, 0);

        /* The repair waits for its retry time, then asks for a reconnect; the Welcome asks for a resend from the
         * hole, and the resent records go into the file, in order. */
        assert_false(session_wants_resync(w->session));
        b->persist_retry_ns = 0;
        assert_true(session_wants_resync(w->session));
        assert_int_equal(reconnect(w), 0);
        for (uint64_t i = 1; i <= 4; i++)
                log_frame(
                        &in,
                        i,
                        TETHER__LOG_STREAM__LOG_STREAM_STDOUT,
                        i < 4 ? "lost on disk\n" : "after the hole\n",
                        i * MS);
        feed(w, &in);
        session_flush_writes(w->session);
        assert_true(file_size(w) > size);
        assert_int_equal(b->unpersisted_seq, 0);
        assert_false(b->unwritten.incomplete);
        assert_int_equal(w->stats.records_repersisted, 4);
        assert_int_equal(w->stats.records_duplicate, 0);
        assert_int_equal(b->last_seq, 4);
        assert_int_equal(b->records, 4); /* applied once */
        if (session_request_ack(w->session) == 0)
                test_dispatch_syncs(w->store);
        size_t n = take_acks(w, acks, 8);
        assert_true(n >= 1);
        assert_int_equal(acks[n - 1], 4);
        assert_reloaded(w, 4, 4);
}

/* The agent went away before the file could be written again: the repair (server.c's timer) needs no agent. */
static void test_write_failure_agent_gone(void **state) {
        World *w = *state;
        uint64_t records = 0;

        (void) fail_writes(w);
        Boot *b = w->machine->current;
        session_end(w->session, CLOSE_EOF);
        w->session = session_free(w->session);
        assert_int_equal(b->unpersisted_seq, 1);
        assert_int_equal(file_repair(w->store, &w->stats, w->machine, b, &records), 0);
        assert_int_equal(records, 4);
        assert_int_equal(b->unpersisted_seq, 0);
        assert_int_equal(w->stats.records_repersisted, 4);
        assert_reloaded(w, 4, 4);
}

/* A boot that began when its file could not be created: acked only once the file exists and holds its records. */
static void test_boot_begun_without_file(void **state) {
        World *w = *state;
        Bytes in = {};
        uint64_t acks[8];
        char dir[200];

        /* A directory where the boot file goes: it cannot be created (EISDIR, for root too). */
        snprintf(dir, sizeof(dir), "%s/machines/vm-1/boot-00000001.rec", w->dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        hello_frame(&in, "boot-1", "guest");
        for (uint64_t i = 1; i <= 2; i++)
                log_frame(&in, i, TETHER__LOG_STREAM__LOG_STREAM_STDOUT, "no file yet\n", i * MS);
        feed(w, &in);
        session_flush_writes(w->session);
        assert_null(w->machine->current->store_file);
        assert_int_equal(w->machine->current->unpersisted_seq, 1);
        assert_int_equal(w->machine->current->unwritten.n, 2);
        if (session_request_ack(w->session) == 0)
                test_dispatch_syncs(w->store);
        size_t n = take_acks(w, acks, 8);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(acks[i], 0);
        assert_int_equal(w->stats.dropped_records[DROP_PERSIST_FAILED], 0);

        /* Still in the way: the repair fails. */
        w->machine->current->persist_retry_ns = 0;
        assert_false(session_wants_resync(w->session));
        assert_null(w->machine->current->store_file);
        assert_int_equal(w->machine->current->unpersisted_seq, 1);

        /* Gone: the repair creates the file and writes the records into it. */
        assert_int_equal(rmdir(dir), 0);
        w->machine->current->persist_retry_ns = 0;
        assert_false(session_wants_resync(w->session));
        assert_non_null(w->machine->current->store_file);
        assert_int_equal(w->machine->current->unpersisted_seq, 0);
        if (session_request_ack(w->session) == 0)
                test_dispatch_syncs(w->store);
        n = take_acks(w, acks, 8);
        assert_true(n >= 1);
        assert_int_equal(acks[n - 1], 2);
        assert_int_equal(w->stats.records_repersisted, 2);
        assert_reloaded(w, 2, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_syncer_completes),
                cmocka_unit_test(test_syncer_reports_errors),
                cmocka_unit_test(test_syncer_free_waits),
                cmocka_unit_test_setup_teardown(test_ack_after_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ack_coalesced_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ready_acked_urgently_and_welcome_durable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_failure_written_back, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_failure_resent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_failure_agent_gone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_boot_begun_without_file, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
