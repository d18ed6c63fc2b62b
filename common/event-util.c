/* SPDX-License-Identifier: MIT */
#include "event-util.h"

#include <errno.h>

int event_add_turn(sd_event *e, sd_event_source **ret, sd_event_time_handler_t handler, void *userdata) {
        sd_event_source *s = NULL;
        int r;

        if (!e || !ret || !handler)
                return -EINVAL;
        /* Due at 1 µs of CLOCK_MONOTONIC, i.e. always; an accuracy of 1 µs, since 0 would mean sd-event's
         * default slack of 250 ms for the timerfd that wakes the loop when nothing else is pending. */
        r = sd_event_add_time(e, &s, CLOCK_MONOTONIC, 1, 1, handler, userdata);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (r < 0) {
                sd_event_source_unref(s);
                return r;
        }
        *ret = s;
        return 0;
}
