/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "clock.h"

#include <errno.h>
#include <string.h>

#include "time-math.h"

uint64_t clock_prober_send(ClockProber *p, uint64_t sent_monotonic_ns, uint64_t sent_realtime_ns) {
        ClockProbeSlot *slot = NULL;

        for (unsigned i = 0; i < CLOCK_PROBES_PENDING_MAX; i++) {
                if (p->slots[i].id == 0) {
                        slot = &p->slots[i];
                        break;
                }
                if (!slot || p->slots[i].sent_monotonic_ns < slot->sent_monotonic_ns)
                        slot = &p->slots[i];
        }

        if (++p->next_id == 0)
                p->next_id = 1;
        *slot = (ClockProbeSlot) {
                .id = p->next_id,
                .sent_monotonic_ns = sent_monotonic_ns,
                .sent_realtime_ns = sent_realtime_ns,
        };
        return slot->id;
}

int clock_prober_take(ClockProber *p, uint64_t id, ClockProbeSlot *ret) {
        if (id == 0)
                return -ENOENT;
        for (unsigned i = 0; i < CLOCK_PROBES_PENDING_MAX; i++)
                if (p->slots[i].id == id) {
                        *ret = p->slots[i];
                        p->slots[i] = (ClockProbeSlot) {};
                        return 0;
                }
        return -ENOENT;
}

int clock_sample_estimate(
        const ClockProbeSlot *probe, uint64_t recv_monotonic_ns, uint64_t guest_boottime_ns, ClockEstimate *ret) {
        if (recv_monotonic_ns < probe->sent_monotonic_ns)
                return -EINVAL;
        /* Beyond INT64_MAX no offset can be represented: a bogus guest clock, not a sample. */
        if (guest_boottime_ns > (uint64_t) INT64_MAX || probe->sent_realtime_ns > (uint64_t) INT64_MAX / 2)
                return -EINVAL;

        uint64_t rtt = recv_monotonic_ns - probe->sent_monotonic_ns;
        /* The guest read its clock somewhere inside the round trip; the middle is the best guess and the
         * farthest it can be off is half the round trip. */
        uint64_t host_at_sample = probe->sent_realtime_ns + rtt / 2;
        if (host_at_sample > (uint64_t) INT64_MAX)
                return -EINVAL;

        *ret = (ClockEstimate) {
                .valid = true,
                .offset_ns = (int64_t) host_at_sample - (int64_t) guest_boottime_ns,
                .error_ns = rtt / 2,
                .taken_monotonic_ns = recv_monotonic_ns,
        };
        return 0;
}

int clock_estimate_offer(ClockEstimate *kept, const ClockEstimate *candidate) {
        if (!candidate->valid)
                return 0;

        if (!kept->valid || candidate->error_ns < kept->error_ns) {
                *kept = *candidate;
                return 1;
        }

        /* Clocks drift: an old estimate, however tight, slowly stops being true. Accept a somewhat looser but
         * fresh one so the error does not silently grow beyond the recorded bound. */
        if (candidate->taken_monotonic_ns >= kept->taken_monotonic_ns &&
            candidate->taken_monotonic_ns - kept->taken_monotonic_ns > CLOCK_ESTIMATE_MAX_AGE_NS &&
            candidate->error_ns <= 2 * kept->error_ns) {
                *kept = *candidate;
                return 1;
        }

        return 0;
}

int clock_estimate_to_host(const ClockEstimate *e, uint64_t boottime_ns, uint64_t *ret_realtime_ns) {
        if (!e || !e->valid)
                return -ENODATA;

        *ret_realtime_ns = time_add_offset(boottime_ns, e->offset_ns);
        return 0;
}
