/* SPDX-License-Identifier: MIT */
/* Clock alignment: the offset is recovered within the recorded bound under jitter and asymmetric delays, the
 * minimum-RTT sample is kept, the age rule refreshes a stale sample, and answers to probes that were never
 * sent are ignored. */

#include <errno.h>
#include <stdint.h>

#include "clock.h"
#include "collector-test.h"

#define MS UINT64_C(1000000)
#define US UINT64_C(1000)
#define SEC UINT64_C(1000000000)

/* Deterministic xorshift so failures reproduce. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}
static uint64_t rng_range(uint64_t lo, uint64_t hi) {
        return lo + rng() % (hi - lo + 1);
}

/* A simulated host and guest: host realtime = monotonic + realtime_base; the guest's boottime runs at
 * (1 + skew_ppm/1e6) times host speed and reads 0 at host realtime boot_realtime. */
typedef struct World {
        uint64_t realtime_base;
        uint64_t boot_realtime;
        double skew_ppm;
} World;

static uint64_t world_guest_boottime(const World *w, uint64_t host_mono) {
        uint64_t dt = host_mono + w->realtime_base - w->boot_realtime;
        return dt + (uint64_t) ((double) dt * w->skew_ppm / 1e6);
}

/* Sends one probe at host monotonic t with one-way delays d_out/d_back; offers the result. Returns the
 * candidate's error bound. */
static uint64_t probe_once(
        const World *w, ClockProber *p, ClockEstimate *kept, uint64_t t, uint64_t d_out, uint64_t d_back) {
        ClockProbeSlot slot;
        ClockEstimate cand;

        uint64_t id = clock_prober_send(p, t, t + w->realtime_base);
        assert_int_equal(clock_prober_take(p, id, &slot), 0);
        assert_int_equal(
                clock_sample_estimate(&slot, t + d_out + d_back, world_guest_boottime(w, t + d_out), &cand), 0);
        assert_int_equal(cand.error_ns, (d_out + d_back) / 2);
        (void) clock_estimate_offer(kept, &cand);
        return cand.error_ns;
}

static void test_offset_recovered_within_bound(void **state) {
        World w = { .realtime_base = UINT64_C(1700000000) * SEC, .skew_ppm = 0 };
        ClockProber p = {};
        ClockEstimate kept = {};
        uint64_t min_error = UINT64_MAX;

        w.boot_realtime = w.realtime_base + 42 * SEC + 123456; /* the guest booted 42 s after host mono 0 */
        for (int i = 0; i < 200; i++) {
                uint64_t t = 50 * SEC + (uint64_t) i * 10 * MS;
                /* Jitter up to 5 ms each way, asymmetric. */
                uint64_t e = probe_once(&w, &p, &kept, t, rng_range(20 * US, 5 * MS), rng_range(20 * US, 5 * MS));
                if (e < min_error)
                        min_error = e;

                /* The bound must hold for every kept estimate, not just the last. */
                int64_t true_offset = (int64_t) w.boot_realtime;
                int64_t diff = kept.offset_ns - true_offset;
                assert_true((uint64_t) (diff < 0 ? -diff : diff) <= kept.error_ns + 1);
        }
        assert_true(kept.valid);
        /* The minimum-RTT sample is the one kept. */
        assert_int_equal(kept.error_ns, min_error);

        uint64_t mapped;
        assert_int_equal(clock_estimate_to_host(&kept, 10 * SEC, &mapped), 0);
        int64_t err = (int64_t) mapped - (int64_t) (w.boot_realtime + 10 * SEC);
        assert_true((uint64_t) (err < 0 ? -err : err) <= kept.error_ns + 1);
}

static void test_min_rtt_sample_kept(void **state) {
        ClockEstimate kept = {};
        ClockEstimate a = { .valid = true, .offset_ns = 1000, .error_ns = 1000, .taken_monotonic_ns = 1 * SEC };
        ClockEstimate worse = { .valid = true, .offset_ns = 9999, .error_ns = 2000, .taken_monotonic_ns = 2 * SEC };
        ClockEstimate better = { .valid = true, .offset_ns = 1500, .error_ns = 500, .taken_monotonic_ns = 3 * SEC };
        ClockEstimate invalid = { .valid = false, .error_ns = 1 };

        assert_int_equal(clock_estimate_offer(&kept, &a), 1);
        assert_int_equal(clock_estimate_offer(&kept, &worse), 0);
        assert_int_equal(kept.offset_ns, 1000);
        assert_int_equal(clock_estimate_offer(&kept, &invalid), 0);
        assert_int_equal(clock_estimate_offer(&kept, &better), 1);
        assert_int_equal(kept.offset_ns, 1500);
        assert_int_equal(kept.error_ns, 500);
}

static void test_age_rule(void **state) {
        ClockEstimate kept = { .valid = true, .offset_ns = 1, .error_ns = 1000, .taken_monotonic_ns = 10 * SEC };
        ClockEstimate young = { .valid = true, .offset_ns = 2, .error_ns = 1500, .taken_monotonic_ns = 200 * SEC };
        ClockEstimate old_too_loose = {
                .valid = true, .offset_ns = 3, .error_ns = 2001, .taken_monotonic_ns = 400 * SEC
        };
        ClockEstimate old_within_2x = {
                .valid = true, .offset_ns = 4, .error_ns = 2000, .taken_monotonic_ns = 400 * SEC
        };

        /* Not old enough: a looser sample does not replace a tighter one. */
        assert_int_equal(clock_estimate_offer(&kept, &young), 0);
        /* Older than 5 minutes, but more than twice as loose: stays. */
        assert_int_equal(clock_estimate_offer(&kept, &old_too_loose), 0);
        assert_int_equal(kept.offset_ns, 1);
        /* Older than 5 minutes and within 2x: refreshed. */
        assert_int_equal(clock_estimate_offer(&kept, &old_within_2x), 1);
        assert_int_equal(kept.offset_ns, 4);
        assert_int_equal(kept.taken_monotonic_ns, 400 * SEC);
}

static void test_skew_is_tracked_by_refresh(void **state) {
        /* 100 ppm: over 30 minutes the guest clock drifts 180 ms. The estimate must follow (age rule) so that
         * mapping "now" stays within bound + the drift since the kept sample. */
        World w = { .realtime_base = UINT64_C(1700000000) * SEC, .skew_ppm = 100 };
        ClockProber p = {};
        ClockEstimate kept = {};
        uint64_t t = 0;

        w.boot_realtime = w.realtime_base;
        /* A very tight sample at the start that would otherwise win forever. */
        probe_once(&w, &p, &kept, 1 * SEC, 10 * US, 10 * US);
        for (t = 10 * SEC; t <= 1800 * SEC; t += 10 * SEC)
                probe_once(&w, &p, &kept, t, rng_range(10 * US, 15 * US), rng_range(10 * US, 15 * US));

        /* The kept sample is recent: refreshed at least every 5 minutes (plus one probe interval). */
        assert_true(t - kept.taken_monotonic_ns <= 300 * SEC + 20 * SEC);

        uint64_t now_mono = 1800 * SEC, mapped;
        assert_int_equal(clock_estimate_to_host(&kept, world_guest_boottime(&w, now_mono), &mapped), 0);
        int64_t err = (int64_t) mapped - (int64_t) (now_mono + w.realtime_base);
        uint64_t drift_allowance = (uint64_t) ((double) (now_mono - kept.taken_monotonic_ns) * 100e-6) + 1 * MS;
        assert_true((uint64_t) (err < 0 ? -err : err) <= kept.error_ns + drift_allowance);
        /* Without refresh the error would be ~180 ms: make sure the test can tell. */
        assert_true(drift_allowance < 50 * MS);
}

static void test_bogus_probe_ids_ignored(void **state) {
        ClockProber p = {};
        ClockProbeSlot slot;

        uint64_t id = clock_prober_send(&p, 100, 200);
        assert_int_not_equal(id, 0);
        assert_int_equal(clock_prober_take(&p, 0, &slot), -ENOENT);
        assert_int_equal(clock_prober_take(&p, id + 1000, &slot), -ENOENT);
        assert_int_equal(clock_prober_take(&p, id, &slot), 0);
        assert_int_equal(slot.sent_monotonic_ns, 100);
        assert_int_equal(slot.sent_realtime_ns, 200);
        /* Answered twice: the second answer is bogus. */
        assert_int_equal(clock_prober_take(&p, id, &slot), -ENOENT);
}

static void test_prober_forgets_oldest_when_full(void **state) {
        ClockProber p = {};
        ClockProbeSlot slot;
        uint64_t ids[CLOCK_PROBES_PENDING_MAX + 1];

        for (unsigned i = 0; i <= CLOCK_PROBES_PENDING_MAX; i++)
                ids[i] = clock_prober_send(&p, 1000 + i, 5000 + i);
        assert_int_equal(clock_prober_take(&p, ids[0], &slot), -ENOENT);
        for (unsigned i = 1; i <= CLOCK_PROBES_PENDING_MAX; i++) {
                assert_int_equal(clock_prober_take(&p, ids[i], &slot), 0);
                assert_int_equal(slot.sent_monotonic_ns, 1000 + i);
        }
}

static void test_answer_before_send_rejected(void **state) {
        ClockProbeSlot slot = { .id = 1, .sent_monotonic_ns = 1000, .sent_realtime_ns = 5000 };
        ClockEstimate e;
        assert_int_equal(clock_sample_estimate(&slot, 999, 10, &e), -EINVAL);
}

static void test_no_estimate_no_mapping(void **state) {
        ClockEstimate e = {};
        uint64_t t = 77;
        assert_int_equal(clock_estimate_to_host(&e, 5, &t), -ENODATA);
        assert_int_equal(t, 77);
}

static void test_absurd_guest_times(void **state) {
        ClockProbeSlot slot = { .id = 1, .sent_monotonic_ns = 1000, .sent_realtime_ns = 1700000000 * SEC };
        ClockEstimate e;
        uint64_t t;

        /* A guest clock beyond INT64_MAX is not a sample (no representable offset). */
        assert_int_equal(clock_sample_estimate(&slot, 2000, UINT64_MAX, &e), -EINVAL);
        assert_int_equal(clock_sample_estimate(&slot, 2000, (uint64_t) INT64_MAX + 1, &e), -EINVAL);
        /* Mapping saturates instead of wrapping. */
        e = (ClockEstimate) { .valid = true, .offset_ns = INT64_MAX, .error_ns = 1 };
        assert_int_equal(clock_estimate_to_host(&e, UINT64_MAX - 5, &t), 0);
        assert_int_equal(t, UINT64_MAX);
        e.offset_ns = INT64_MIN;
        assert_int_equal(clock_estimate_to_host(&e, 5, &t), 0);
        assert_int_equal(t, 0);
        e.offset_ns = -10;
        assert_int_equal(clock_estimate_to_host(&e, 25, &t), 0);
        assert_int_equal(t, 15);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_offset_recovered_within_bound),
                cmocka_unit_test(test_min_rtt_sample_kept),
                cmocka_unit_test(test_age_rule),
                cmocka_unit_test(test_skew_is_tracked_by_refresh),
                cmocka_unit_test(test_bogus_probe_ids_ignored),
                cmocka_unit_test(test_prober_forgets_oldest_when_full),
                cmocka_unit_test(test_answer_before_send_rejected),
                cmocka_unit_test(test_no_estimate_no_mapping),
                cmocka_unit_test(test_absurd_guest_times),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
