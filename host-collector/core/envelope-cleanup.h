/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#pragma once

#include "envelope.h"

static inline void envelope_freep(Tether__Envelope **e) {
        envelope_free(*e);
        *e = NULL;
}
#define _cleanup_envelope_ __attribute__((cleanup(envelope_freep)))
