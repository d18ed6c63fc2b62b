/* SPDX-License-Identifier: MIT */
/* The API's boot view: kernel start and kernel-to-ready only when the agent reported kernel.start (a VM), and
 * init-to-ready whenever init.start is known (a container too). */

#include <string.h>

#include "boot.h"
#include "collector-test.h"
#include "render.h"

#define MS UINT64_C(1000000)
#define OFFSET (UINT64_C(1700000000000000000))

static Boot *ready_boot(bool with_kernel_start) {
        BootApplyResult res;
        Tether__Envelope *e;
        const uint8_t *p;
        FrameReader r;
        Bytes f = {};
        size_t len;
        Boot *b;

        assert_int_equal(boot_new(1, "boot-a", NULL, NULL, &b), 0);
        b->clock = (ClockEstimate) { .valid = true, .offset_ns = (int64_t) OFFSET, .error_ns = 10 };
        if (with_kernel_start)
                milestone_frame(&f, 1, "kernel.start", 0);
        milestone_frame(&f, 2, "init.start", 5000 * MS);
        ready_frame(&f, 3, "sd_notify", 5250 * MS);

        assert_int_equal(frame_reader_init(&r, 0), 0);
        frame_reader_feed(&r, f.data, f.len);
        while (frame_reader_next(&r, &p, &len) == 1) {
                assert_int_equal(envelope_unpack(p, len, &e), 0);
                assert_int_equal(boot_apply_record(b, NULL, e, OFFSET, &res), 0);
                envelope_free(e);
        }
        frame_reader_done(&r);
        bytes_free(&f);
        return b;
}

static int64_t member_int(const json_t *o, const char *key) {
        const json_t *v = json_object_get(o, key);
        assert_true(json_is_integer(v));
        return (int64_t) json_integer_value(v);
}

static void test_vm_boot(void **state) {
        Machine m = { .registered_unix_ns = OFFSET };
        Boot *b = ready_boot(true);

        json_t *o = render_boot(&m, b);
        assert_non_null(o);
        assert_int_equal(member_int(o, "kernel_start_unix_ns"), (int64_t) OFFSET);
        const json_t *ready = json_object_get(o, "ready");
        assert_int_equal(member_int(ready, "kernel_to_ready_ns"), (int64_t) (5250 * MS));
        assert_int_equal(member_int(ready, "init_to_ready_ns"), (int64_t) (250 * MS));
        json_decref(o);
        boot_free(b);
}

static void test_container_boot(void **state) {
        Machine m = { .registered_unix_ns = OFFSET };
        Boot *b = ready_boot(false);

        json_t *o = render_boot(&m, b);
        assert_non_null(o);
        /* boottime 0 is the host kernel's start here: not this boot's. */
        assert_true(json_is_null(json_object_get(o, "kernel_start_unix_ns")));
        const json_t *ready = json_object_get(o, "ready");
        assert_true(json_is_object(ready));
        assert_true(json_is_null(json_object_get(ready, "kernel_to_ready_ns")));
        assert_int_equal(member_int(ready, "init_to_ready_ns"), (int64_t) (250 * MS));
        assert_int_equal(member_int(ready, "ready_unix_ns"), (int64_t) (OFFSET + 5250 * MS));
        json_decref(o);
        boot_free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vm_boot),
                cmocka_unit_test(test_container_boot),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
