/* SPDX-License-Identifier: MIT */
/* The export queue: items written into the open batch grouped by resource, batches sealed by count, size or age,
 * finished in slices (protobuf requests, gzipped or not, that protobuf-c decodes; OTLP/JSON lines that jansson
 * parses), taken in order; bounded in bytes (a reserve past the bound is refused) and back to nothing pending
 * once released; and the spill of the exporter: when the queue is full the oldest batches go to the spool under
 * ids in delivery order, a full spool leaves them queued, and replay follows the ids. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "collector-test.h"
#include "macro.h"
#include "otlp-json.h"
#include "otlp-queue.h"
#include "otlp-spool.h"
#include "otlp_logs_service.pb-c.h"

#define MS UINT64_C(1000000)

static OtlpBlob *resource(const char *machine) {
        OtlpResource rr = { .service_name = "s", .machine_id = machine };
        OtlpBlob *res;
        assert_int_equal(otlp_encode_resource(&rr, &res), 0);
        return res;
}

/* One log line written as the exporter does: template, reserve, write, commit. */
static void push_line(OtlpQueue *q, OtlpBlob *res, uint64_t key, bool json, const char *text, uint64_t now) {
        OtlpLogLine l = { .time_unix_ns = 1, .stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT, .seq = 7 };
        OtlpLogTemplate t;
        uint8_t *p;
        size_t n = strlen(text);

        assert_int_equal(json ? otlp_log_template_json(&l, &t) : otlp_log_template_protobuf(&l, &t), 0);
        size_t size = json ? otlp_log_line_json_max(&t, n) : otlp_log_line_protobuf_size(&t, text, n, false);
        assert_int_equal(otlp_queue_reserve(q, res, key, size, now, &p), 0);
        size_t w = json ? otlp_log_line_json(&t, text, n, false, (char *) p) :
                          otlp_log_line_protobuf(&t, text, n, false, p);
        otlp_queue_commit(q, w);
}

static Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *decode(const OtlpBatch *b) {
        uint8_t *raw = b->body;
        size_t len = b->body_len;
        _cleanup_free_ uint8_t *inflated = NULL;

        if (b->gzip) {
                uLongf cap = 1 << 22;
                z_stream z = {};
                inflated = malloc(cap);
                assert_non_null(inflated);
                assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
                z.next_in = b->body;
                z.avail_in = (uInt) b->body_len;
                z.next_out = inflated;
                z.avail_out = (uInt) cap;
                assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
                len = cap - z.avail_out;
                inflateEnd(&z);
                raw = inflated;
        }
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req =
                opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(NULL, len, raw);
        assert_non_null(req);
        return req;
}

/* The batch's resources in request order, each with its item count (what the exporter counts per boot). */
static void check_groups(
        const OtlpBatch *batch, OtlpBlob *first, size_t first_items, OtlpBlob *second, size_t second_items) {
        OtlpBlob *res = NULL;
        size_t items = 0;

        assert_int_equal(otlp_batch_group(batch, 0, &res, &items), 0);
        assert_ptr_equal(res, first);
        assert_int_equal(items, first_items);
        assert_int_equal(otlp_batch_group(batch, 1, &res, &items), 0);
        assert_ptr_equal(res, second);
        assert_int_equal(items, second_items);
        assert_int_equal(otlp_batch_group(batch, 2, &res, &items), -ENOENT);
}

static void test_batches(void **state) {
        OtlpQueueLimits lim = {
                .max_bytes = 1 << 20,
                .batch_items = 4,
                .batch_bytes = 100000,
                .batch_delay_ns = 1000 * MS,
        };
        OtlpBlob *a = resource("a"), *b = resource("b");
        OtlpQueue *q;
        OtlpBatch *batch;
        size_t dropped;

        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        assert_int_equal(otlp_queue_deadline(q), UINT64_MAX);
        assert_int_equal(otlp_queue_seal(q, 0, true), 0);
        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
        assert_null(batch);

        /* a, b, a, b: one batch of four, two resources in order of first appearance; the fifth opens the next. */
        for (int i = 0; i < 5; i++) {
                char text[32];
                snprintf(text, sizeof(text), "line %d", i);
                push_line(q, i % 2 ? b : a, i % 2 ? 2 : 1, false, text, 500 + (uint64_t) i);
        }
        assert_int_equal(otlp_queue_items(q), 5);
        assert_int_equal(otlp_queue_deadline(q), 504 + 1000 * MS); /* the open batch's first item */
        assert_non_null(otlp_queue_head(q));
        assert_false(otlp_queue_head(q)->ready);
        assert_int_equal(otlp_queue_work(q, 1), 0); /* identity: one slice finishes it */
        assert_true(otlp_queue_head(q)->ready);
        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
        assert_int_equal(batch->items, 4);
        assert_int_equal(batch->keys, 3);
        assert_false(batch->gzip);
        check_groups(batch, a, 2, b, 2);
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req = decode(batch);
        assert_int_equal(req->n_resource_logs, 2);
        for (size_t r = 0; r < 2; r++) {
                Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = req->resource_logs[r]->scope_logs[0];
                assert_string_equal(sl->scope->name, OTLP_SCOPE_NAME);
                assert_int_equal(sl->n_log_records, 2);
                char want[32];
                snprintf(want, sizeof(want), "line %zu", r);
                assert_string_equal(sl->log_records[0]->body->string_value, want);
                snprintf(want, sizeof(want), "line %zu", r + 2);
                assert_string_equal(sl->log_records[1]->body->string_value, want);
        }
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req, NULL);
        otlp_queue_release(q, batch);

        /* Age: the open batch seals when its first item waited the delay. */
        assert_int_equal(otlp_queue_items(q), 1);
        assert_int_equal(otlp_queue_seal(q, 504 + 1000 * MS - 1, false), 0);
        assert_int_equal(otlp_queue_seal(q, 504 + 1000 * MS, false), 1);
        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0); /* taking finishes it */
        assert_int_equal(batch->items, 1);
        otlp_queue_release(q, batch);
        assert_int_equal(otlp_queue_items(q), 0);
        assert_int_equal(otlp_queue_pending_bytes(q), 0);
        otlp_queue_free(q);

        /* Size: a batch holds at most batch_bytes of items, and always its first. */
        lim.batch_items = 1000;
        lim.batch_bytes = 300;
        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        for (int i = 0; i < 10; i++)
                push_line(q, a, 1, false, "0123456789012345678901234567890123456789", 0);
        size_t total = 0, n_batches = 0;
        (void) otlp_queue_seal(q, 0, true);
        while (otlp_queue_take(q, &batch, &dropped) == 0 && batch) {
                assert_true(batch->items >= 1 && batch->items < 10);
                total += batch->items;
                n_batches++;
                otlp_queue_release(q, batch);
        }
        assert_int_equal(total, 10);
        assert_true(n_batches >= 3);
        otlp_queue_free(q);
        otlp_blob_unref(a);
        otlp_blob_unref(b);
}

/* gzip in slices: a small budget takes several dispatches; the body inflates to the request. */
static void test_gzip_slices(void **state) {
        OtlpQueueLimits lim = {
                .max_bytes = 8 << 20,
                .batch_items = 100000,
                .batch_bytes = 4 << 20,
                .batch_delay_ns = MS,
                .gzip = true,
        };
        OtlpBlob *a = resource("a");
        OtlpQueue *q;
        OtlpBatch *batch;
        size_t dropped;
        char text[128];

        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        for (int i = 0; i < 20000; i++) {
                snprintf(text, sizeof(text), "line %012d with some text %d", i, i * 7919);
                push_line(q, a, 1, false, text, 0);
        }
        assert_int_equal(otlp_queue_seal(q, 0, true), 1);
        int slices = 0, r;
        while ((r = otlp_queue_work(q, 64 * 1024)) > 0)
                slices++;
        assert_int_equal(r, 0);
        assert_true(slices > 5);
        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
        assert_true(batch->gzip);
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req = decode(batch);
        Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = req->resource_logs[0]->scope_logs[0];
        assert_int_equal(sl->n_log_records, 20000);
        snprintf(text, sizeof(text), "line %012d with some text %d", 19999, 19999 * 7919);
        assert_string_equal(sl->log_records[19999]->body->string_value, text);
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req, NULL);
        otlp_queue_release(q, batch);
        assert_int_equal(otlp_queue_pending_bytes(q), 0);
        otlp_queue_free(q);
        otlp_blob_unref(a);
}

/* OTLP/JSON: the pieces of a batch make one line that parses, with every record under its resource. */
static void test_json_batch(void **state) {
        OtlpQueueLimits lim = {
                .max_bytes = 1 << 20,
                .batch_items = 100,
                .batch_bytes = 1 << 20,
                .batch_delay_ns = MS,
                .format = OTLP_FORMAT_JSON,
        };
        OtlpBlob *a = resource("a"), *b = resource("b");
        OtlpQueue *q;
        OtlpBatch *batch;
        size_t dropped;

        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        push_line(q, a, 1, true, "one \"quoted\"", 0);
        push_line(q, b, 2, true, "two", 0);
        push_line(q, a, 1, true, "three\x01", 0);
        (void) otlp_queue_seal(q, 0, true);
        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
        assert_true(batch->ready);
        check_groups(batch, a, 2, b, 1);
        size_t len = 0;
        char line[8192];
        for (size_t i = 0; i < batch->n_iov; i++) {
                memcpy(line + len, batch->iov[i].iov_base, batch->iov[i].iov_len);
                len += batch->iov[i].iov_len;
        }
        assert_int_equal(len, batch->body_len);
        assert_true(len > 0 && line[len - 1] == '\n');
        line[len] = '\0';
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o)
                fail_msg("%s: %s", err.text, line);
        json_t *rl = json_object_get(o, "resourceLogs");
        assert_int_equal(json_array_size(rl), 2);
        json_t *recs = json_object_get(
                json_array_get(json_object_get(json_array_get(rl, 0), "scopeLogs"), 0), "logRecords");
        assert_int_equal(json_array_size(recs), 2);
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(json_array_get(recs, 1), "body"), "stringValue")),
                "three\x01");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(
                                json_array_get(json_object_get(json_array_get(rl, 0), "scopeLogs"), 0), "scope"),
                        "name")),
                OTLP_SCOPE_NAME);
        json_decref(o);
        otlp_queue_release(q, batch);
        otlp_queue_free(q);
        otlp_blob_unref(a);
        otlp_blob_unref(b);
}

/* The items of a JSON line, parsed. */
static json_t *json_line_records(const OtlpBatch *batch) {
        char line[8192];
        size_t len = 0;
        for (size_t i = 0; i < batch->n_iov; i++) {
                assert_true(len + batch->iov[i].iov_len < sizeof(line));
                memcpy(line + len, batch->iov[i].iov_base, batch->iov[i].iov_len);
                len += batch->iov[i].iov_len;
        }
        line[len] = '\0';
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o)
                fail_msg("%s: %s", err.text, line);
        json_t *recs = json_incref(json_object_get(
                json_array_get(json_object_get(json_array_get(json_object_get(o, "resourceLogs"), 0), "scopeLogs"), 0),
                "logRecords"));
        json_decref(o);
        return recs;
}

/* Runs of JSON items: room for several after one reserve, within the batch's count and bytes; item bytes counted
 * without the separators; the run follows single items with a separator; protobuf queues have none. */
static void test_json_runs(void **state) {
        OtlpQueueLimits lim = {
                .max_bytes = 1 << 20,
                .batch_items = 5,
                .batch_bytes = 4096,
                .batch_delay_ns = MS,
                .format = OTLP_FORMAT_JSON,
        };
        OtlpBlob *a = resource("a");
        OtlpQueue *q;
        OtlpBatch *batch;
        uint8_t *p;
        size_t room, items, dropped;

        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        assert_int_equal(otlp_queue_reserve_items(q, a, 1, 100, 0, &p, &room, &items), 0);
        assert_int_equal(items, 5);
        assert_true(room >= 100 && room <= 4096);
        memcpy(p, "{\"a\":1},{\"a\":2}", 15);
        otlp_queue_commit_items(q, 15, 2);
        assert_int_equal(otlp_queue_items(q), 2);
        assert_int_equal(otlp_queue_pending_bytes(q), 14); /* two items of 7, not the separator */
        assert_int_equal(otlp_queue_reserve(q, a, 1, 7, 0, &p), 0);
        memcpy(p, "{\"a\":3}", 7);
        otlp_queue_commit(q, 7);
        assert_int_equal(otlp_queue_reserve_items(q, a, 1, 7, 0, &p, &room, &items), 0);
        assert_int_equal(items, 2);
        assert_true(room >= 7 && room <= 4096 - 21);
        memcpy(p, "{\"a\":4},{\"a\":5}", 15);
        otlp_queue_commit_items(q, 15, 2);
        assert_int_equal(otlp_queue_pending_bytes(q), 35);
        /* Five items: the next reserve seals the batch first. */
        assert_null(otlp_queue_head(q));
        assert_int_equal(otlp_queue_reserve_items(q, a, 1, 3000, 0, &p, &room, &items), 0);
        assert_non_null(otlp_queue_head(q));
        assert_int_equal(items, 5);
        assert_true(room >= 3000 && room <= 4096);
        memcpy(p, "{\"a\":6}", 7);
        otlp_queue_commit_items(q, 7, 1);
        /* More than the batch's bytes left: sealed again, the item alone in a new batch. */
        assert_int_equal(otlp_queue_reserve_items(q, a, 1, 4090, 0, &p, &room, &items), 0);
        assert_true(room >= 4090 && room <= 4096);
        memcpy(p, "{\"a\":7}", 7);
        otlp_queue_commit_items(q, 7, 1);
        (void) otlp_queue_seal(q, 0, true);

        const int want[][5] = { { 1, 2, 3, 4, 5 }, { 6 }, { 7 } };
        const size_t want_n[] = { 5, 1, 1 };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
                assert_non_null(batch);
                assert_int_equal(batch->items, want_n[i]);
                json_t *recs = json_line_records(batch);
                assert_int_equal(json_array_size(recs), want_n[i]);
                for (size_t j = 0; j < want_n[i]; j++)
                        assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, j), "a")), want[i][j]);
                json_decref(recs);
                otlp_queue_release(q, batch);
        }
        assert_int_equal(otlp_queue_pending_bytes(q), 0);
        otlp_queue_free(q);

        lim.format = OTLP_FORMAT_PROTOBUF;
        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        assert_int_equal(otlp_queue_reserve_items(q, a, 1, 10, 0, &p, &room, &items), -EINVAL);
        otlp_queue_free(q);
        otlp_blob_unref(a);
}

/* The bound counts every buffer; a reserve past it is refused; releasing gives the room back. */
static void test_bound(void **state) {
        OtlpQueueLimits lim = {
                .max_bytes = 64 * 1024,
                .batch_items = 10000,
                .batch_bytes = 8 * 1024,
                .batch_delay_ns = MS,
        };
        OtlpBlob *a = resource("a");
        OtlpQueue *q;
        OtlpBatch *batch;
        uint8_t *p;
        size_t dropped, n = 0;
        char text[200];

        memset(text, 'x', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        for (;; n++) {
                OtlpLogLine l = { .stream = 1 };
                OtlpLogTemplate t;
                assert_int_equal(otlp_log_template_protobuf(&l, &t), 0);
                size_t size = otlp_log_line_protobuf_size(&t, text, strlen(text), false);
                int r = otlp_queue_reserve(q, a, 1, size, 0, &p);
                if (r == -ENOBUFS)
                        break;
                assert_int_equal(r, 0);
                otlp_queue_commit(q, otlp_log_line_protobuf(&t, text, strlen(text), false, p));
                assert_true(otlp_queue_bytes(q) <= lim.max_bytes);
        }
        assert_true(n > 100);
        assert_true(otlp_queue_bytes(q) <= lim.max_bytes);
        /* Taken out, a batch still counts; released, it does not. */
        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
        assert_non_null(batch);
        assert_int_equal(otlp_queue_reserve(q, a, 1, 8000, 0, &p), -ENOBUFS);
        otlp_queue_release(q, batch);
        assert_int_equal(otlp_queue_reserve(q, a, 1, 100, 0, &p), 0);
        memset(p, 0, 100);
        otlp_queue_commit(q, 100);
        assert_true(otlp_queue_clear(q) > 0);
        assert_int_equal(otlp_queue_pending_bytes(q), 0);
        otlp_queue_free(q);
        otlp_blob_unref(a);
}

/* What the exporter does when the queue is full and a spool is configured: the oldest batch is taken to the spool
 * under the next id; when the spool is full it goes back to the queue's head. Replay by id keeps the order. */
static void test_spill_to_spool(void **state) {
        char dir[] = "/tmp/test-otlp-spill-XXXXXX", cmd[128];
        OtlpQueueLimits lim = {
                .max_bytes = 64 * 1024,
                .batch_items = 10,
                .batch_bytes = 1 << 20,
                .batch_delay_ns = MS,
        };
        OtlpBlob *a = resource("a");
        OtlpQueue *q;
        OtlpSpool *s;
        OtlpBatch *batch;
        uint64_t spilled_items = 0, pushed = 0, refused = 0;
        size_t dropped;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(otlp_spool_open(dir, 20 * 1024, &s), 0);
        assert_int_equal(otlp_queue_new(EXPORT_SIGNAL_LOGS, &lim, &q), 0);
        for (int i = 0; i < 2000; i++) {
                char text[64];
                uint8_t *p;
                snprintf(text, sizeof(text), "line %06d", i);
                OtlpLogLine l = { .stream = 1, .seq = (uint64_t) i };
                OtlpLogTemplate t;
                assert_int_equal(otlp_log_template_protobuf(&l, &t), 0);
                size_t size = otlp_log_line_protobuf_size(&t, text, strlen(text), false);
                int r;
                while ((r = otlp_queue_reserve(q, a, 1, size, 0, &p)) == -ENOBUFS) {
                        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
                        if (!batch) {
                                (void) otlp_queue_seal(q, 0, true);
                                continue;
                        }
                        batch->id = otlp_spool_next_id(s);
                        struct iovec iov = { batch->body, batch->body_len };
                        r = otlp_spool_push(s, batch->id, EXPORT_SIGNAL_LOGS, &iov, 1, batch->items, false, 1);
                        if (r == -ENOSPC) {
                                otlp_queue_untake(q, batch);
                                break;
                        }
                        assert_int_equal(r, 0);
                        spilled_items += batch->items;
                        otlp_queue_release(q, batch);
                }
                if (r == -ENOSPC || r == -ENOBUFS) {
                        refused++;
                        continue;
                }
                assert_int_equal(r, 0);
                otlp_queue_commit(q, otlp_log_line_protobuf(&t, text, strlen(text), false, p));
                pushed++;
        }
        assert_true(spilled_items > 0);
        assert_true(refused > 0); /* the spool filled up: only then are items refused */
        assert_true(otlp_spool_bytes(s) <= 20 * 1024);

        /* Delivery: the spool first (by id), then the queue; every line that got in comes out once, in order. */
        uint64_t next_seq = 0, delivered = 0;
        const OtlpSpoolEntry *e;
        for (;;) {
                uint8_t *body;
                size_t len;
                OtlpBatch fake = { .gzip = false };
                bool from_spool = (e = otlp_spool_oldest(s, EXPORT_SIGNAL_LOGS)) != NULL;
                uint64_t id = 0;
                if (from_spool) {
                        id = e->id;
                        assert_int_equal(otlp_spool_read(s, e, &body, &len), 0);
                        fake.body = body;
                        fake.body_len = len;
                        batch = &fake;
                } else {
                        (void) otlp_queue_seal(q, 0, true);
                        assert_int_equal(otlp_queue_take(q, &batch, &dropped), 0);
                        if (!batch)
                                break;
                }
                Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req = decode(batch);
                Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = req->resource_logs[0]->scope_logs[0];
                for (size_t i = 0; i < sl->n_log_records; i++) {
                        int64_t seq = sl->log_records[i]->attributes[1]->value->int_value;
                        assert_true((uint64_t) seq >= next_seq);
                        next_seq = (uint64_t) seq + 1;
                        delivered++;
                }
                opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req, NULL);
                if (from_spool) {
                        free(body);
                        assert_int_equal(otlp_spool_remove(s, id), 0);
                } else
                        otlp_queue_release(q, batch);
        }
        assert_int_equal(delivered, pushed);
        assert_int_equal(pushed + refused, 2000);
        otlp_queue_free(q);
        otlp_spool_free(s);
        otlp_blob_unref(a);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_batches),        cmocka_unit_test(test_gzip_slices),
                cmocka_unit_test(test_json_batch),     cmocka_unit_test(test_bound),
                cmocka_unit_test(test_spill_to_spool), cmocka_unit_test(test_json_runs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
