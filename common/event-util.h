/* SPDX-License-Identifier: MIT */
#pragma once

/* Fair turns on the host components' event loops (tetherd, tether-vsock).
 *
 * sd-event dispatches one source per iteration: the lowest priority value first, and within a priority the
 * source that became pending in the earliest iteration. A defer source becomes pending once and stays pending
 * for as long as it lives (dispatching or disabling it does not clear that), so once re-enabled it sorts
 * before every io source that became ready since: work that continues through a defer source takes every turn
 * until it has none left, and a thousand busy guests' defers kept the listener, the API and a quiet guest's
 * Ready waiting for seconds. A monotonic timer that is already due becomes pending anew, in the iteration that
 * finds it due, each time it is armed: work continued through it takes its turn behind what was waiting
 * before, round-robin with the io of its priority.
 *
 * In tetherd, bulk work (a guest that spent its per-wakeup budget and has more, batch export work) runs at
 * EVENT_PRIORITY_BULK, below the normal priority of everything that is quick and latency-bound (a quiet
 * guest's records, accepting, the HTTP API, sync completions that release acks): those never queue behind a
 * thousand guests' backlogs, and bulk work shares what is left in turns. */

#include <systemd/sd-event.h>

#define EVENT_PRIORITY_BULK (SD_EVENT_PRIORITY_NORMAL + 10)

/* A turn source: a monotonic timer due at once, created disabled. Enable it with SD_EVENT_ONESHOT for one more
 * turn, or SD_EVENT_ON for a turn in every round until disabled. Returns 0 or -errno. */
int event_add_turn(sd_event *e, sd_event_source **ret, sd_event_time_handler_t handler, void *userdata);
