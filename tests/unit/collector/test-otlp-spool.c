/* SPDX-License-Identifier: MIT */
/* The spool: requests written, replayed oldest first per signal, also after reopening (a restart), bounded in
 * bytes, temporary leftovers removed, unknown files ignored. */

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

static void test_spool(void **state) {
        char dir[] = "/tmp/test-otlp-spool-XXXXXX", sub[600], cmd[700];
        OtlpSpool *s;

        assert_non_null(mkdtemp(dir));
        snprintf(sub, sizeof(sub), "%s/a/spool", dir);
        assert_int_equal(otlp_spool_open(sub, 40, &s), 0);
        assert_null(otlp_spool_oldest(s, EXPORT_SIGNAL_TRACES));
        assert_int_equal(otlp_spool_push(s, EXPORT_SIGNAL_TRACES, (const uint8_t *) "trace-1", 7, 3, true), 0);
        assert_int_equal(otlp_spool_push(s, EXPORT_SIGNAL_LOGS, (const uint8_t *) "logs-1", 6, 5, false), 0);
        assert_int_equal(otlp_spool_push(s, EXPORT_SIGNAL_TRACES, (const uint8_t *) "trace-2", 7, 1, true), 0);
        assert_int_equal(otlp_spool_bytes(s), 20);
        /* 20 + 21 > 40: refused, nothing written. */
        assert_int_equal(
                otlp_spool_push(s, EXPORT_SIGNAL_LOGS, (const uint8_t *) "xxxxxxxxxxxxxxxxxxxxx", 21, 1, false),
                -ENOSPC);
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
        assert_int_equal(otlp_spool_push(s, EXPORT_SIGNAL_TRACES, (const uint8_t *) "trace-3", 7, 2, true), 0);
        expect_oldest(s, EXPORT_SIGNAL_TRACES, "trace-2", 1);
        expect_oldest(s, EXPORT_SIGNAL_TRACES, "trace-3", 2);
        expect_oldest(s, EXPORT_SIGNAL_LOGS, "logs-1", 5);
        assert_null(otlp_spool_oldest(s, EXPORT_SIGNAL_TRACES));
        assert_int_equal(otlp_spool_bytes(s), 0);
        assert_int_equal(otlp_spool_remove(s, 12345), -ENOENT);
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
