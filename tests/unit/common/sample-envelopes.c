/* SPDX-License-Identifier: MIT */
#include "sample-envelopes.h"

#include <errno.h>
#include <string.h>

#include "envelope.h"

const Tether__Envelope__MsgCase sample_msg_cases[SAMPLE_MSG_CASES_COUNT] = {
        TETHER__ENVELOPE__MSG_HELLO,           TETHER__ENVELOPE__MSG_WELCOME, TETHER__ENVELOPE__MSG_CLOCK_PROBE,
        TETHER__ENVELOPE__MSG_CLOCK_SAMPLE,    TETHER__ENVELOPE__MSG_ACK,     TETHER__ENVELOPE__MSG_MILESTONE,
        TETHER__ENVELOPE__MSG_PHASE,           TETHER__ENVELOPE__MSG_LOG,     TETHER__ENVELOPE__MSG_LOG_DROPPED,
        TETHER__ENVELOPE__MSG_READY,           TETHER__ENVELOPE__MSG_EXIT,    TETHER__ENVELOPE__MSG_HEARTBEAT,
        TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE,
};

const char *sample_msg_case_name(Tether__Envelope__MsgCase msg_case) {
        /* The oneof cases are the field numbers, so the generated descriptor knows the names. */
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
                &tether__envelope__descriptor, (unsigned) msg_case);
        if (!f || f->id == 1) /* field 1 is seq, not a message */
                return NULL;
        return f->name;
}

static void sample_attributes(SampleEnvelope *s) {
        tether__attribute__init(&s->attributes[0]);
        s->attributes[0].key = "pid";
        s->attributes[0].value = "1";
        tether__attribute__init(&s->attributes[1]);
        s->attributes[1].key = "comm";
        s->attributes[1].value = "workload-\xc3\xbc"; /* multi-byte UTF-8 on purpose */
        s->attribute_ptrs[0] = &s->attributes[0];
        s->attribute_ptrs[1] = &s->attributes[1];
}

int sample_envelope_init(SampleEnvelope *s, Tether__Envelope__MsgCase msg_case, uint64_t seq) {
        static const char log_data[] = "hello from the workload\nsecond line \xe2\x9c\x93\n";

        memset(s, 0, sizeof(*s));
        tether__envelope__init(&s->envelope);
        s->envelope.msg_case = msg_case;

        switch (msg_case) {
        case TETHER__ENVELOPE__MSG_HELLO:
                tether__hello__init(&s->hello);
                s->hello.protocol_version = TETHER_PROTOCOL_VERSION;
                s->hello.agent_version = "0.1.0";
                s->hello.boot_id = "9f6c1a0e-2f2b-4c55-9d53-6b1f0d1e2a3b";
                s->hello.kernel_release = "6.1.0-27-cloud-amd64";
                s->hello.mode = TETHER__AGENT_MODE__AGENT_MODE_INIT;
                memset(s->token, 0xA5, sizeof(s->token));
                s->hello.resume_token = (ProtobufCBinaryData) { .len = sizeof(s->token), .data = s->token };
                s->hello.boottime_ns = UINT64_C(812000000);
                s->hello.hostname = "vm-42";
                s->hello.first_seq = 1;
                s->hello.last_seq = 17;
                s->envelope.hello = &s->hello;
                break;
        case TETHER__ENVELOPE__MSG_WELCOME:
                tether__welcome__init(&s->welcome);
                tether__limits__init(&s->limits);
                s->limits.max_frame_bytes = 65536;
                s->limits.max_attributes = 32;
                s->limits.max_string_bytes = 1024;
                s->limits.heartbeat_interval_ms = 5000;
                memset(s->token, 0x5A, sizeof(s->token));
                s->welcome.protocol_version = TETHER_PROTOCOL_VERSION;
                s->welcome.session_id = (ProtobufCBinaryData) { .len = sizeof(s->token), .data = s->token };
                s->welcome.acked_seq = 12;
                s->welcome.limits = &s->limits;
                s->welcome.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
                s->welcome.machine_id = "vm-42";
                s->envelope.welcome = &s->welcome;
                break;
        case TETHER__ENVELOPE__MSG_CLOCK_PROBE:
                tether__clock_probe__init(&s->clock_probe);
                s->clock_probe.probe_id = 3;
                s->envelope.clock_probe = &s->clock_probe;
                break;
        case TETHER__ENVELOPE__MSG_CLOCK_SAMPLE:
                tether__clock_sample__init(&s->clock_sample);
                s->clock_sample.probe_id = 3;
                s->clock_sample.boottime_ns = UINT64_C(900000123);
                s->clock_sample.monotonic_ns = UINT64_C(900000100);
                s->envelope.clock_sample = &s->clock_sample;
                break;
        case TETHER__ENVELOPE__MSG_ACK:
                tether__ack__init(&s->ack);
                s->ack.seq = 12;
                s->envelope.ack = &s->ack;
                break;
        case TETHER__ENVELOPE__MSG_MILESTONE:
                tether__milestone__init(&s->milestone);
                sample_attributes(s);
                s->milestone.name = "oom.kill";
                s->milestone.boottime_ns = UINT64_C(1500000000);
                s->milestone.n_attributes = 2;
                s->milestone.attributes = s->attribute_ptrs;
                s->envelope.milestone = &s->milestone;
                break;
        case TETHER__ENVELOPE__MSG_PHASE:
                tether__phase__init(&s->phase);
                sample_attributes(s);
                s->phase.name = "mounts";
                s->phase.start_boottime_ns = UINT64_C(100000000);
                s->phase.end_boottime_ns = UINT64_C(250000000);
                s->phase.status = TETHER__PHASE_STATUS__PHASE_STATUS_OK;
                s->phase.n_attributes = 2;
                s->phase.attributes = s->attribute_ptrs;
                s->phase.message = "mounted /proc /sys /dev";
                s->envelope.phase = &s->phase;
                break;
        case TETHER__ENVELOPE__MSG_LOG:
                tether__log__init(&s->log);
                s->log.stream = TETHER__LOG_STREAM__LOG_STREAM_STDOUT;
                s->log.source = "workload";
                s->log.boottime_ns = UINT64_C(2000000000);
                s->log.data = (ProtobufCBinaryData) { .len = sizeof(log_data) - 1, .data = (uint8_t *) log_data };
                s->envelope.log = &s->log;
                break;
        case TETHER__ENVELOPE__MSG_LOG_DROPPED:
                tether__log_dropped__init(&s->log_dropped);
                s->log_dropped.records = 3;
                s->log_dropped.bytes = 4096;
                s->log_dropped.first_seq = 20;
                s->log_dropped.last_seq = 22;
                s->envelope.log_dropped = &s->log_dropped;
                break;
        case TETHER__ENVELOPE__MSG_READY:
                tether__ready__init(&s->ready);
                s->ready.source = "probe:tcp";
                s->ready.detail = "127.0.0.1:8080";
                s->ready.boottime_ns = UINT64_C(2500000000);
                s->envelope.ready = &s->ready;
                break;
        case TETHER__ENVELOPE__MSG_EXIT:
                tether__exit__init(&s->exit);
                s->exit.code = 137;
                s->exit.signal = 9;
                s->exit.oom_killed = 1;
                s->exit.boottime_ns = UINT64_C(9000000000);
                s->exit.reason = "killed by SIGKILL";
                s->envelope.exit = &s->exit;
                break;
        case TETHER__ENVELOPE__MSG_HEARTBEAT:
                tether__heartbeat__init(&s->heartbeat);
                s->heartbeat.boottime_ns = UINT64_C(7000000000);
                s->envelope.heartbeat = &s->heartbeat;
                break;
        case TETHER__ENVELOPE__MSG_RESOURCE_SAMPLE: {
                /* 2 CPUs 10 s after boot, 1 GiB with 600 MiB available, every source present. */
                static const uint64_t cpu[8] = { 4e9, 1e8, 2e9, 12e9, 3e8, 1e7, 2e7, 0 };
                static const uint64_t mem[5] = { 1 << 30, 600 << 20, 500 << 20, 256 << 20, 200 << 20 };
                static const uint32_t load[3] = { 150, 75, 5 };
                tether__resource_sample__init(&s->resource_sample);
                memcpy(s->cpu_ns, cpu, sizeof(cpu));
                memcpy(s->memory_bytes, mem, sizeof(mem));
                memcpy(s->load_centi, load, sizeof(load));
                for (size_t i = 0; i < 3; i++) {
                        s->psi[i][0] = 125 * (i + 1);
                        s->psi[i][1] = i == 0 ? 0 : 50;
                        s->psi[i][2] = UINT64_C(2000000) * (i + 1);
                        s->psi[i][3] = i == 0 ? 0 : UINT64_C(1000000);
                }
                s->cgroup_memory[0] = 300 << 20;
                s->cgroup_memory[1] = 400 << 20;
                s->cgroup_memory[2] = 1;
                s->cgroup_memory[3] = 1;
                s->resource_sample = (Tether__ResourceSample) {
                        .base = s->resource_sample.base,
                        .boottime_ns = UINT64_C(10000000000),
                        .cpus = 2,
                        .n_cpu_ns = 8,
                        .cpu_ns = s->cpu_ns,
                        .n_memory_bytes = 5,
                        .memory_bytes = s->memory_bytes,
                        .n_load_centi = 3,
                        .load_centi = s->load_centi,
                        .n_psi_cpu = 4,
                        .psi_cpu = s->psi[0],
                        .n_psi_memory = 4,
                        .psi_memory = s->psi[1],
                        .n_psi_io = 4,
                        .psi_io = s->psi[2],
                        .n_cgroup_memory = 4,
                        .cgroup_memory = s->cgroup_memory,
                };
                s->envelope.resource_sample = &s->resource_sample;
                break;
        }
        default:
                return -EINVAL;
        }

        s->envelope.seq = envelope_is_record(&s->envelope) ? seq : 0;
        return 0;
}
