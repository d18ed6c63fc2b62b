/* SPDX-License-Identifier: MIT */
#pragma once

/* Valid example envelopes of every message type, shared by the unit tests and the fuzz seed corpus
 * generator so both exercise the same realistic messages. */

#include <stddef.h>
#include <stdint.h>

#include "tether.pb-c.h"

#define SAMPLE_MSG_CASES_COUNT 13

/* Every message of tether.Envelope's oneof, in field-number order. */
extern const Tether__Envelope__MsgCase sample_msg_cases[SAMPLE_MSG_CASES_COUNT];

/* The envelope points into the other members: keep the struct in place while the envelope is used. */
typedef struct SampleEnvelope {
        Tether__Envelope envelope;
        Tether__Hello hello;
        Tether__Welcome welcome;
        Tether__Limits limits;
        Tether__ClockProbe clock_probe;
        Tether__ClockSample clock_sample;
        Tether__Ack ack;
        Tether__Milestone milestone;
        Tether__Phase phase;
        Tether__Log log;
        Tether__LogDropped log_dropped;
        Tether__Ready ready;
        Tether__Exit exit;
        Tether__Heartbeat heartbeat;
        Tether__ResourceSample resource_sample;
        uint64_t cpu_ns[8], memory_bytes[5], psi[3][4], cgroup_memory[4];
        uint32_t load_centi[3];
        Tether__Attribute attributes[2];
        Tether__Attribute *attribute_ptrs[2];
        uint8_t token[16];
} SampleEnvelope;

/* Fills s with a valid envelope carrying msg_case. Records get seq (pass >= 1), every other message seq 0.
 * Returns 0, or -EINVAL when msg_case names no message. */
int sample_envelope_init(SampleEnvelope *s, Tether__Envelope__MsgCase msg_case, uint64_t seq);

/* Short stable name of a message type ("hello", "log_dropped", ...), or NULL. */
const char *sample_msg_case_name(Tether__Envelope__MsgCase msg_case);
