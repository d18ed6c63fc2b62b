/* SPDX-License-Identifier: MIT */
/* The spool: requests written, replayed oldest first per signal, also after reopening (a restart), bounded in
 * bytes, temporary leftovers removed, unknown files ignored; requests numbered in delivery order replay in that
 * order whatever the order they were spooled in. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector-test.h"
#include "otlp-spool.h"

static void write_file(const char *dir, const char *name, const char *text) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        FILE *f = fopen(p, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void expect_oldest(OtlpSpool *s, ExportSignal sig, const char *body, uint64_t items) {
        const OtlpSpoolEntry *e = otlp_spool_oldest(s, sig);
        uint8_t *b;
        size_t len;

        assert_non_null(e);
        assert_int_equal(e->items, items);
        assert_int_equal(otlp_spool_read(s, e, &b, &len), 0);
        assert_int_equal(len, strlen(body));
        assert_memory_equal(b, body, len);
        free(b);
        assert_int_equal(otlp_spool_remove(s, e->id), 0);
}

static int push_id(OtlpSpool *s, uint64_t id, ExportSignal sig, const char *body, uint64_t items, bool gzip) {
        struct iovec iov[2] = { { (void *) body, strlen(body) / 2 }, { (void *) (body + strlen(body) / 2), 0 } };
        iov[1].iov_len = strlen(body) - iov[0].iov_len;
        return otlp_spool_push(s, id, sig, iov, 2, items, gzip, 1);
}

static int push(OtlpSpool *s, ExportSignal sig, const char *body, uint64_t items, bool gzip) {
        return push_id(s, otlp_spool_next_id(s), sig, body, items, gzip);
}

static void test_spool(void **state) {
        char dir[] = "/tmp/test-otlp-spool-XXXXXX", sub[600], cmd[700];
        OtlpSpool *s;

        assert_non_null(mkdtemp(dir));
        snprintf(sub, sizeof(sub), "%s/a/spool", dir);
        assert_int_equal(otlp_spool_open(sub, 40, &s), 0);
        assert_null(otlp_spool_oldest(s, EXPORT_SIGNAL_TRACES));
        assert_int_equal(push(s, EXPORT_SIGNAL_TRACES, "trace-1", 3, true), 0);
        assert_int_equal(push(s, EXPORT_SIGNAL_LOGS, "logs-1", 5, false), 0);
        assert_int_equal(push(s, EXPORT_SIGNAL_TRACES, "trace-2", 1, true), 0);
        assert_int_equal(otlp_spool_bytes(s), 20);
        /* 20 + 21 > 40: refused, nothing written. */
        assert_int_equal(push(s, EXPORT_SIGNAL_LOGS, "xxxxxxxxxxxxxxxxxxxxx", 1, false), -ENOSPC);
        assert_int_equal(otlp_spool_count(s, EXPORT_SIGNAL_LOGS), 1);
        otlp_spool_free(s);

        /* A restart: the files are found again, in order, with their item counts and encodings. */
        write_file(sub, ".tmp-00000000000000000099-logs-1-gzip.otlp", "torn");
        write_file(sub, "unrelated.txt", "hi");
        assert_int_equal(otlp_spool_open(sub, 40, &s), 0);
        assert_int_equal(otlp_spool_bytes(s), 20);
        assert_int_equal(otlp_spool_count(s, EXPORT_SIGNAL_TRACES), 2);
        assert_true(otlp_spool_oldest(s, EXPORT_SIGNAL_TRACES)->gzip);
        assert_false(otlp_spool_oldest(s, EXPORT_SIGNAL_LOGS)->gzip);
        expect_oldest(s, EXPORT_SIGNAL_TRACES, "trace-1", 3);
        assert_int_equal(push(s, EXPORT_SIGNAL_TRACES, "trace-3", 2, true), 0);
        expect_oldest(s, EXPORT_SIGNAL_TRACES, "trace-2", 1);
        expect_oldest(s, EXPORT_SIGNAL_TRACES, "trace-3", 2);
        expect_oldest(s, EXPORT_SIGNAL_LOGS, "logs-1", 5);
        assert_null(otlp_spool_oldest(s, EXPORT_SIGNAL_TRACES));
        assert_int_equal(otlp_spool_bytes(s), 0);
        assert_int_equal(otlp_spool_remove(s, 12345), -ENOENT);
        otlp_spool_free(s);

        /* Ids taken in delivery order, pushed out of order (a request that failed in flight goes back after
         * later ones were spooled): replayed by id. Ids are never reused, not even across a reopening. */
        assert_int_equal(otlp_spool_open(sub, 40, &s), 0);
        uint64_t a = otlp_spool_next_id(s), b = otlp_spool_next_id(s), c = otlp_spool_next_id(s);
        assert_true(a < b && b < c);
        assert_int_equal(push_id(s, c, EXPORT_SIGNAL_LOGS, "third", 1, false), 0);
        assert_int_equal(push_id(s, a, EXPORT_SIGNAL_LOGS, "first", 1, false), 0);
        assert_int_equal(push_id(s, a, EXPORT_SIGNAL_LOGS, "again", 1, false), -EEXIST);
        assert_int_equal(push_id(s, c + 1, EXPORT_SIGNAL_LOGS, "unissued", 1, false), -EEXIST);
        assert_int_equal(push_id(s, b, EXPORT_SIGNAL_LOGS, "second", 1, false), 0);
        assert_int_equal(otlp_spool_oldest(s, EXPORT_SIGNAL_LOGS)->keys, 1);
        otlp_spool_free(s);
        assert_int_equal(otlp_spool_open(sub, 40, &s), 0);
        assert_true(otlp_spool_next_id(s) > c);
        assert_int_equal(otlp_spool_oldest(s, EXPORT_SIGNAL_LOGS)->keys, UINT64_MAX); /* unknown after a restart */
        expect_oldest(s, EXPORT_SIGNAL_LOGS, "first", 1);
        expect_oldest(s, EXPORT_SIGNAL_LOGS, "second", 1);
        expect_oldest(s, EXPORT_SIGNAL_LOGS, "third", 1);
        otlp_spool_free(s);

        char tmp[700];
        snprintf(tmp, sizeof(tmp), "%s/.tmp-00000000000000000099-logs-1-gzip.otlp", sub);
        assert_int_equal(access(tmp, F_OK), -1);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spool),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
