/* SPDX-License-Identifier: MIT */
/* Stitching: the span tree of a boot, parent ids with and without a registered traceparent, log line span
 * attribution, missing milestones, and span ids that do not change when the same boot is stitched again. */

#include <errno.h>
#include <string.h>

#include "boot.h"
#include "collector-test.h"
#include "stitch.h"
#include "traceparent.h"

#define MS UINT64_C(1000000)
#define OFFSET (UINT64_C(1700000000000000000))

static void apply(Boot *b, const ReadyCondition *cond, const Bytes *frame) {
        FrameReader r;
        const uint8_t *p;
        size_t len;
        Tether__Envelope *e;
        BootApplyResult res;

        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, frame->data, frame->len);
        while (frame_reader_next(&r, &p, &len) == 1) {
                assert_int_equal(envelope_unpack(p, len, &e), 0);
                assert_int_equal(boot_apply_record(b, cond, e, OFFSET, &res), 0);
                envelope_free(e);
        }
        frame_reader_done(&r);
}

/* kernel.start 0, init.start 100 ms, mount phase 120-200 ms, workload.exec 300 ms, ready at 900 ms. */
static Boot *full_boot(const uint8_t *trace_id) {
        Boot *b;
        Bytes f = {};

        assert_int_equal(boot_new(1, "boot-a", trace_id, NULL, &b), 0);
        b->clock = (ClockEstimate) { .valid = true, .offset_ns = (int64_t) OFFSET, .error_ns = 1234 };
        milestone_frame(&f, 1, "kernel.start", 0);
        milestone_frame(&f, 2, "init.start", 100 * MS);
        phase_frame(&f, 3, "mount", 120 * MS, 200 * MS);
        milestone_frame(&f, 4, "workload.exec", 300 * MS);
        ready_frame(&f, 5, "sd_notify", 900 * MS);
        apply(b, NULL, &f);
        bytes_free(&f);
        return b;
}

static const Span *find_span(const SpanSet *s, const char *name) {
        for (size_t i = 0; i < s->n_spans; i++)
                if (strcmp(s->spans[i].name, name) == 0)
                        return &s->spans[i];
        return NULL;
}

static const char *span_attr(const Span *s, const char *key) {
        for (size_t i = 0; i < s->n_attrs; i++)
                if (strcmp(s->attrs[i].key, key) == 0)
                        return s->attrs[i].value ? s->attrs[i].value : "(int)";
        return NULL;
}

static const StitchContext ctx = {
        .machine_id = "vm-1",
        .node_id = "node-a",
        .request_id = "req-9",
        .service_name = "svc",
        .now_unix_ns = OFFSET + 5000 * MS,
};

static void test_span_tree(void **state) {
        Boot *b = full_boot(NULL);
        SpanSet *s;

        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 5);
        assert_memory_equal(s->trace_id, b->trace_id, 16);

        const Span *root = &s->spans[0];
        assert_string_equal(root->name, "machine.boot");
        assert_false(root->has_parent);
        assert_int_equal(root->start_unix_ns, OFFSET);
        assert_int_equal(root->end_unix_ns, OFFSET + 900 * MS);
        assert_int_equal(root->status, SPAN_STATUS_OK);
        assert_false(root->open);
        assert_int_equal(root->n_events, 3);
        assert_string_equal(root->events[1].name, "init.start");
        assert_int_equal(root->events[1].time_unix_ns, OFFSET + 100 * MS);

        /* Children ordered by start: kernel 0, init 100, mount 120, workload.start 300. */
        assert_string_equal(s->spans[1].name, "kernel");
        assert_string_equal(s->spans[2].name, "init");
        assert_string_equal(s->spans[3].name, "mount");
        assert_string_equal(s->spans[4].name, "workload.start");
        for (size_t i = 1; i < s->n_spans; i++) {
                assert_true(s->spans[i].has_parent);
                assert_memory_equal(s->spans[i].parent_span_id, root->span_id, 8);
                for (size_t j = 0; j < i; j++)
                        assert_memory_not_equal(s->spans[i].span_id, s->spans[j].span_id, 8);
        }

        const Span *kernel = find_span(s, "kernel"), *init = find_span(s, "init"), *wl = find_span(s, "workload.start");
        assert_int_equal(kernel->start_unix_ns, OFFSET);
        assert_int_equal(kernel->end_unix_ns, OFFSET + 100 * MS);
        assert_int_equal(init->start_unix_ns, OFFSET + 100 * MS);
        assert_int_equal(init->end_unix_ns, OFFSET + 300 * MS);
        assert_int_equal(wl->start_unix_ns, OFFSET + 300 * MS);
        assert_int_equal(wl->end_unix_ns, OFFSET + 900 * MS);

        /* Attributes every span carries. */
        for (size_t i = 0; i < s->n_spans; i++) {
                assert_string_equal(span_attr(&s->spans[i], "tether.machine.id"), "vm-1");
                assert_string_equal(span_attr(&s->spans[i], "tether.node.id"), "node-a");
                assert_string_equal(span_attr(&s->spans[i], "tether.request.id"), "req-9");
                assert_non_null(span_attr(&s->spans[i], "tether.transition"));
        }
        assert_string_equal(span_attr(root, "tether.transition"), "boot");
        assert_string_equal(span_attr(kernel, "tether.transition"), "kernel");
        assert_string_equal(span_attr(wl, "tether.transition"), "workload.start");
        assert_non_null(span_attr(root, "tether.clock.error_ns"));
        for (size_t i = 0; i < root->n_attrs; i++)
                if (strcmp(root->attrs[i].key, "tether.clock.error_ns") == 0)
                        assert_int_equal(root->attrs[i].int_value, 1234);

        span_set_free(s);
        boot_free(b);
}

static void test_ids_stable_and_match_welcome(void **state) {
        Boot *b = full_boot(NULL);
        SpanSet *s1, *s2;
        uint8_t workload[8];

        assert_int_equal(stitch_boot(&ctx, b, &s1), 0);
        assert_int_equal(stitch_boot(&ctx, b, &s2), 0);
        assert_int_equal(s1->n_spans, s2->n_spans);
        for (size_t i = 0; i < s1->n_spans; i++)
                assert_memory_equal(s1->spans[i].span_id, s2->spans[i].span_id, 8);

        /* Welcome.traceparent names the workload.start span before it exists. */
        stitch_workload_span_id(b, workload);
        assert_memory_equal(find_span(s1, "workload.start")->span_id, workload, 8);
        /* Lifecycle events in the OTLP export are parented to the root by its id alone. */
        uint8_t root[8];
        stitch_root_span_id(b, root);
        assert_memory_equal(find_span(s1, "machine.boot")->span_id, root, 8);

        /* Another boot in the same trace gets other ids. */
        uint8_t other[8];
        stitch_span_id(b->trace_id, "boot-b", "workload.start", 0, other);
        assert_memory_not_equal(other, workload, 8);

        span_set_free(s1);
        span_set_free(s2);
        boot_free(b);
}

static void test_registered_traceparent(void **state) {
        TraceParent tp;
        SpanSet *s;

        assert_int_equal(traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &tp), 0);
        Boot *b = full_boot(tp.trace_id);
        StitchContext c = ctx;
        c.parent_span_id = tp.span_id;

        assert_int_equal(stitch_boot(&c, b, &s), 0);
        assert_memory_equal(s->trace_id, tp.trace_id, 16);
        assert_true(s->spans[0].has_parent);
        assert_memory_equal(s->spans[0].parent_span_id, tp.span_id, 8);
        for (size_t i = 1; i < s->n_spans; i++)
                assert_memory_equal(s->spans[i].parent_span_id, s->spans[0].span_id, 8);
        span_set_free(s);
        boot_free(b);
}

static void test_log_attribution(void **state) {
        Boot *b = full_boot(NULL);
        SpanSet *s;

        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_string_equal(span_set_find_for_time(s, 50 * MS)->name, "kernel");
        /* A phase is more specific than the stage it overlaps. */
        assert_string_equal(span_set_find_for_time(s, 150 * MS)->name, "mount");
        assert_string_equal(span_set_find_for_time(s, 250 * MS)->name, "init");
        assert_string_equal(span_set_find_for_time(s, 500 * MS)->name, "workload.start");
        /* After ready nothing but the boot itself. */
        assert_string_equal(span_set_find_for_time(s, 2000 * MS)->name, "machine.boot");
        /* Boundaries: a span's end belongs to the next one. */
        assert_string_equal(span_set_find_for_time(s, 100 * MS)->name, "init");
        assert_string_equal(span_set_find_for_time(s, 300 * MS)->name, "workload.start");
        span_set_free(s);
        boot_free(b);
}

static void test_missing_milestones_and_open_boot(void **state) {
        Boot *b;
        Bytes f = {};
        SpanSet *s;

        /* Only a workload.exec: no kernel/init spans, an open workload.start and root. */
        assert_int_equal(boot_new(2, "boot-c", NULL, NULL, &b), 0);
        b->clock = (ClockEstimate) { .valid = true, .offset_ns = (int64_t) OFFSET, .error_ns = 10 };
        milestone_frame(&f, 1, "workload.exec", 300 * MS);
        log_frame(&f, 2, 1, "x\n", 400 * MS);
        apply(b, NULL, &f);
        bytes_free(&f);

        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 2);
        assert_null(find_span(s, "kernel"));
        assert_null(find_span(s, "init"));
        const Span *wl = find_span(s, "workload.start");
        assert_non_null(wl);
        assert_true(wl->open);
        assert_true(s->spans[0].open);
        assert_int_equal(s->spans[0].status, SPAN_STATUS_UNSET);
        assert_int_equal(s->spans[0].end_unix_ns, ctx.now_unix_ns);
        assert_string_equal(span_set_find_for_time(s, 10 * 1000 * MS)->name, "workload.start");
        span_set_free(s);

        /* An exit before ready ends the root with an error. */
        exit_frame(&f, 3, 1, 0, 700 * MS);
        apply(b, NULL, &f);
        bytes_free(&f);
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->spans[0].status, SPAN_STATUS_ERROR);
        assert_int_equal(s->spans[0].end_unix_ns, OFFSET + 700 * MS);
        assert_int_equal(find_span(s, "workload.start")->status, SPAN_STATUS_ERROR);
        assert_false(s->spans[0].open);
        span_set_free(s);
        boot_free(b);
}

static void test_no_milestones_at_all(void **state) {
        Boot *b;
        SpanSet *s;

        assert_int_equal(boot_new(3, "boot-d", NULL, NULL, &b), 0);
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 1);
        assert_string_equal(span_set_find_for_time(s, 123)->name, "machine.boot");
        span_set_free(s);
        boot_free(b);
}

static void test_repeated_phase_names(void **state) {
        Boot *b;
        Bytes f = {};
        SpanSet *s;

        assert_int_equal(boot_new(4, "boot-e", NULL, NULL, &b), 0);
        phase_frame(&f, 1, "fsck", 10 * MS, 20 * MS);
        phase_frame(&f, 2, "fsck", 30 * MS, 40 * MS);
        apply(b, NULL, &f);
        bytes_free(&f);
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 3);
        assert_memory_not_equal(s->spans[1].span_id, s->spans[2].span_id, 8);
        assert_int_equal(s->spans[1].start_boottime_ns, 10 * MS);
        span_set_free(s);
        boot_free(b);
}

/* An agent in a container sends no kernel.start (boottime 0 is the host kernel's start there): the boot starts at
 * init.start, and there is no kernel span. */
static void test_container_boot_starts_at_init(void **state) {
        Boot *b;
        Bytes f = {};
        SpanSet *s;

        assert_int_equal(boot_new(5, "boot-f", NULL, NULL, &b), 0);
        b->clock = (ClockEstimate) { .valid = true, .offset_ns = (int64_t) OFFSET, .error_ns = 10 };
        /* Hours after the host's kernel started. */
        milestone_frame(&f, 1, "init.start", 7200000 * MS);
        milestone_frame(&f, 2, "workload.exec", 7200100 * MS);
        log_frame(&f, 3, 1, "x\n", 7200050 * MS);
        ready_frame(&f, 4, "sd_notify", 7200400 * MS);
        apply(b, NULL, &f);
        bytes_free(&f);

        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 3);
        const Span *root = &s->spans[0];
        assert_string_equal(root->name, "machine.boot");
        assert_int_equal(root->start_boottime_ns, 7200000 * MS);
        assert_int_equal(root->start_unix_ns, OFFSET + 7200000 * MS);
        assert_int_equal(root->end_unix_ns, OFFSET + 7200400 * MS);
        assert_null(find_span(s, "kernel"));
        assert_string_equal(s->spans[1].name, "init");
        assert_int_equal(s->spans[1].start_unix_ns, OFFSET + 7200000 * MS);
        assert_int_equal(s->spans[1].end_unix_ns, OFFSET + 7200100 * MS);
        assert_string_equal(s->spans[2].name, "workload.start");
        /* Before the boot's start there is only the root to attribute to. */
        assert_string_equal(span_set_find_for_time(s, 50 * MS)->name, "machine.boot");
        assert_string_equal(span_set_find_for_time(s, 7200050 * MS)->name, "init");
        span_set_free(s);
        boot_free(b);

        /* Without init.start either: the earliest milestone. */
        assert_int_equal(boot_new(6, "boot-g", NULL, NULL, &b), 0);
        b->clock = (ClockEstimate) { .valid = true, .offset_ns = (int64_t) OFFSET, .error_ns = 10 };
        milestone_frame(&f, 1, "app.loaded", 900 * MS);
        milestone_frame(&f, 2, "app.configured", 800 * MS);
        apply(b, NULL, &f);
        bytes_free(&f);
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 1);
        assert_int_equal(s->spans[0].start_unix_ns, OFFSET + 800 * MS);
        assert_true(s->spans[0].open);
        span_set_free(s);
        boot_free(b);
}

static void test_host_start(void **state) {
        Boot *b = full_boot(NULL);
        SpanSet *s;

        /* libvirt started the VM 250 ms before the guest kernel: the root starts there, host.start covers the gap,
         * first among the children, and holds no guest event. */
        b->host_start_unix_ns = OFFSET - 250 * MS;
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 6);
        const Span *root = &s->spans[0], *host = &s->spans[1], *kernel = find_span(s, "kernel");
        assert_string_equal(host->name, "host.start");
        assert_true(host->host_side);
        assert_int_equal(root->start_unix_ns, OFFSET - 250 * MS);
        assert_int_equal(root->end_unix_ns, OFFSET + 900 * MS);
        assert_int_equal(host->start_unix_ns, OFFSET - 250 * MS);
        assert_int_equal(host->end_unix_ns, OFFSET);
        assert_int_equal(kernel->start_unix_ns, OFFSET);
        assert_memory_equal(host->parent_span_id, root->span_id, 8);
        assert_string_equal(span_attr(host, "tether.transition"), "host.start");
        assert_ptr_equal(span_set_find_for_time(s, 0), kernel);
        uint64_t d;
        assert_int_equal(boot_host_start_to_ready_ns(b, &d), 0);
        assert_int_equal(d, 1150 * MS);
        span_set_free(s);

        /* A host start that maps after the guest's start (clock error) is not shown. */
        b->host_start_unix_ns = OFFSET + 10 * MS;
        assert_int_equal(stitch_boot(&ctx, b, &s), 0);
        assert_int_equal(s->n_spans, 5);
        assert_null(find_span(s, "host.start"));
        assert_int_equal(s->spans[0].start_unix_ns, OFFSET);
        span_set_free(s);

        b->host_start_unix_ns = 0;
        assert_int_equal(boot_host_start_to_ready_ns(b, &d), -ENODATA);
        boot_free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_span_tree),
                cmocka_unit_test(test_ids_stable_and_match_welcome),
                cmocka_unit_test(test_registered_traceparent),
                cmocka_unit_test(test_log_attribution),
                cmocka_unit_test(test_missing_milestones_and_open_boot),
                cmocka_unit_test(test_no_milestones_at_all),
                cmocka_unit_test(test_repeated_phase_names),
                cmocka_unit_test(test_container_boot_starts_at_init),
                cmocka_unit_test(test_host_start),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
