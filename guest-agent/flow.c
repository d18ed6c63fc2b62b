/* SPDX-License-Identifier: MIT */
#include "flow.h"

void flow_init(Flow *f, bool block, uint64_t max_bytes, uint64_t reserve, uint64_t stall_ns, uint64_t now) {
        uint64_t keep = reserve + max_bytes / 8;
        uint64_t pause = max_bytes > keep ? max_bytes - keep : 0;

        *f = (Flow) {
                .block = block,
                .pause_bytes = pause,
                .resume_bytes = pause - MIN(pause / 4, (uint64_t) FLOW_RESUME_BYTES_MAX),
                .stall_ns = stall_ns,
                .state = FLOW_READING,
                /* Before the first connection the host is absent, not stalled: early output waits for it too. */
                .progress_ns = now,
        };
}

uint64_t flow_fill(uint64_t bytes, uint64_t sent_log_bytes, bool connected) {
        /* Without a connection, what was sent on the last one may never have arrived: it is resent after the
         * next Welcome, so it must stay. */
        if (!connected)
                return bytes;
        return bytes - MIN(sent_log_bytes, bytes);
}

static uint64_t stall_deadline(const Flow *f) {
        uint64_t since = MAX(f->progress_ns, f->paused_since);
        return since > UINT64_MAX - f->stall_ns ? UINT64_MAX : since + f->stall_ns;
}

bool flow_paused(Flow *f, uint64_t fill, uint64_t now) {
        if (!f->block)
                return false;

        switch (f->state) {
        case FLOW_READING:
                if (fill <= f->pause_bytes)
                        return false;
                f->state = FLOW_PAUSED;
                f->paused_since = now;
                f->pauses++;
                break;
        case FLOW_PAUSED:
                if (fill <= f->resume_bytes) {
                        f->state = FLOW_READING;
                        return false;
                }
                break;
        case FLOW_STALLED:
                return false; /* until flow_progress() or flow_welcome() */
        }

        if (now >= stall_deadline(f)) {
                f->state = FLOW_STALLED;
                f->stalls++;
                return false;
        }
        return true;
}

void flow_progress(Flow *f, uint64_t t) {
        f->progress_ns = MAX(f->progress_ns, t);
        if (f->state == FLOW_STALLED)
                f->state = FLOW_READING; /* the next flow_paused() pauses again if the buffer is still full */
}

void flow_welcome(Flow *f, uint64_t t) {
        /* Only after a stall: a host that keeps reconnecting without ever freeing anything must not extend a pause
         * forever. */
        if (f->state == FLOW_STALLED)
                flow_progress(f, t);
}

uint64_t flow_next_deadline(const Flow *f) {
        return f->state == FLOW_PAUSED ? stall_deadline(f) : UINT64_MAX;
}
