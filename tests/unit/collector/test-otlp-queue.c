/* SPDX-License-Identifier: MIT */
/* The export queue: bounded in bytes (a push past the bound is refused, nothing changes), batches by count and
 * size, due by count, size or age, items taken in order and encoded into one request. */

#include <errno.h>
#include <string.h>

#include "collector-test.h"
#include "otlp-queue.h"
#include "otlp_logs_service.pb-c.h"

static uint8_t *item(size_t len, uint8_t fill) {
        /* A LogRecord with a body of len - 4 bytes (field 5 { field 1 string }): decodable. */
        uint8_t *p = malloc(len);
        assert_non_null(p);
        assert_true(len >= 4 && len - 4 < 128);
        p[0] = 0x2a;
        p[1] = (uint8_t) (len - 2);
        p[2] = 0x0a;
        p[3] = (uint8_t) (len - 4);
        memset(p + 4, fill, len - 4);
        return p;
}

static void test_bounds_and_batches(void **state) {
        OtlpQueueLimits lim = { .max_bytes = 10 * (100 + OTLP_QUEUE_ITEM_OVERHEAD),
                                .batch_items = 4,
                                .batch_bytes = 1000,
                                .batch_delay_ns = 1000 };
        OtlpResource rr = { .service_name = "s", .machine_id = "m" };
        OtlpBlob *res;
        OtlpQueue *q;

        assert_int_equal(otlp_encode_resource(&rr, &res), 0);
        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        assert_false(otlp_queue_batch_due(q, 0, true));
        assert_int_equal(otlp_queue_deadline(q), UINT64_MAX);

        for (int i = 0; i < 10; i++) {
                assert_int_equal(otlp_queue_push(q, res, item(100, (uint8_t) ('a' + i)), 100, 500 + (uint64_t) i), 0);
                if (i == 0) {
                        assert_false(otlp_queue_batch_due(q, 600, false));
                        assert_true(otlp_queue_batch_due(q, 600, true));
                        assert_int_equal(otlp_queue_deadline(q), 1500);
                        assert_true(otlp_queue_batch_due(q, 1500, false));
                }
        }
        assert_true(otlp_queue_batch_due(q, 0, false)); /* 4 items are enough */
        uint8_t *extra = item(100, 'z');
        assert_int_equal(otlp_queue_push(q, res, extra, 100, 600), -ENOBUFS);
        free(extra);
        assert_int_equal(otlp_queue_items(q), 10);
        assert_int_equal(otlp_queue_bytes(q), 10 * (100 + OTLP_QUEUE_ITEM_OVERHEAD));

        uint8_t *body;
        size_t len, n;
        char expect = 'a';
        size_t sizes[3];
        for (int b = 0; b < 3; b++) {
                assert_int_equal(otlp_queue_take(q, &body, &len, &n), 0);
                sizes[b] = n;
                Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req =
                        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(NULL, len, body);
                assert_non_null(req);
                assert_int_equal(req->n_resource_logs, 1);
                Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = req->resource_logs[0]->scope_logs[0];
                assert_int_equal(sl->n_log_records, n);
                for (size_t i = 0; i < n; i++)
                        assert_int_equal(sl->log_records[i]->body->string_value[0], expect++);
                opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req, NULL);
                free(body);
        }
        assert_int_equal(sizes[0], 4);
        assert_int_equal(sizes[1], 4);
        assert_int_equal(sizes[2], 2);
        assert_int_equal(otlp_queue_items(q), 0);
        assert_int_equal(otlp_queue_bytes(q), 0);
        assert_int_equal(otlp_queue_take(q, &body, &len, &n), 0);
        assert_int_equal(n, 0);
        assert_null(body);

        /* Byte-bounded batches: 100-byte items, 250 bytes per batch → 2 per batch; one oversized item goes alone. */
        otlp_queue_free(q);
        lim.batch_bytes = 250;
        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(otlp_queue_push(q, res, item(100, 'x'), 100, 0), 0);
        assert_true(otlp_queue_batch_due(q, 0, false)); /* 300 bytes >= 250 */
        assert_int_equal(otlp_queue_take(q, &body, &len, &n), 0);
        assert_int_equal(n, 2);
        free(body);
        assert_int_equal(otlp_queue_clear(q), 1);
        otlp_queue_free(q);
        otlp_blob_unref(res);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bounds_and_batches),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
