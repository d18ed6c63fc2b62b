/* SPDX-License-Identifier: MIT */
/* Writes seed corpora into the corpus directory given (tests/fuzz/corpus):
 *   frame-envelope/  one valid frame of every message type, a whole boot's stream, the largest legal frame, and
 *                    the classic refusals;
 *   store-replay/    state directories: boot files as tetherd writes them, torn, corrupt, evicted, stray files,
 *                    conflicting registrations;
 *   api/             requests to every endpoint, valid and not;
 *   libvirt-xml/     domain XML as libvirt writes it, with and without tether metadata, and the refusals;
 *   otlp-response/   backend answers: statuses, partial_success bodies, Retry-After values and dates.
 * Seeds are named seed-*, so rerunning replaces them and leaves inputs the fuzzer found alone. (render's seeds
 * are fuzz-session's inputs: the input format is the same.) Run with: ninja -C BUILD fuzz-corpus */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "frame.h"
#include "macro.h"
#include "sample-envelopes.h"

/* Input prefix of fuzz-frame-envelope: byte 0 picks the reader's payload bound, byte 1 seeds the chunk sizes. */
typedef struct Seed {
        uint8_t *data;
        size_t len;
} Seed;

/* In the generators: r = expr, and on failure to their finish label. */
#define TRY(expr)                    \
        do {                         \
                r = (expr);          \
                if (r < 0)           \
                        goto finish; \
        } while (0)

static int seed_append(Seed *s, const void *p, size_t n) {
        uint8_t *d = realloc(s->data, s->len + n);
        if (!d)
                return -ENOMEM;
        memcpy(d + s->len, p, n);
        s->data = d;
        s->len += n;
        return 0;
}

static int seed_start(Seed *s, uint8_t bound, uint8_t chunking) {
        const uint8_t prefix[2] = { bound, chunking };
        free(s->data);
        *s = (Seed) {};
        return seed_append(s, prefix, sizeof(prefix));
}

static int seed_append_envelope(Seed *s, const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;
        int r;

        r = envelope_pack_frame(e, &frame, &len);
        if (r < 0)
                return r;
        return seed_append(s, frame, len);
}

static int seed_append_sample(Seed *s, Tether__Envelope__MsgCase msg_case, uint64_t seq) {
        SampleEnvelope sample;
        int r;

        r = sample_envelope_init(&sample, msg_case, seq);
        if (r < 0)
                return r;
        return seed_append_envelope(s, &sample.envelope);
}

/* A frame whose payload is given raw (header computed). */
static int seed_append_raw_frame(Seed *s, const void *payload, uint32_t len) {
        uint8_t header[TETHER_FRAME_HEADER_SIZE];
        int r;

        frame_header_put(header, len);
        r = seed_append(s, header, sizeof(header));
        if (r < 0)
                return r;
        return seed_append(s, payload, len);
}

static int seed_write(const char *dir, const char *name, const Seed *s) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        size_t done = 0;

        if (asprintf(&path, "%s/seed-%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        while (done < s->len) {
                ssize_t k = write(fd, s->data + done, s->len - done);
                if (k < 0)
                        return -errno;
                done += (size_t) k;
        }
        return 0;
}

static int generate_frame_envelope(const char *dir) {
        static const uint8_t unknown_message[] = { 0xf2, 0x01, 0x02, 0x08, 0x01 }; /* field 30 {1: 1} */
        static const uint8_t bad_utf8_milestone[] = { 0x08, 0x01, 0x7a, 0x04, 0x0a, 0x02, 0xc0, 0x80 };
        static const uint8_t truncated[] = { 0x08, 0xff };
        static const Tether__Envelope__MsgCase boot[] = {
                TETHER__ENVELOPE__MSG_HELLO, TETHER__ENVELOPE__MSG_CLOCK_SAMPLE, TETHER__ENVELOPE__MSG_MILESTONE,
                TETHER__ENVELOPE__MSG_PHASE, TETHER__ENVELOPE__MSG_LOG,          TETHER__ENVELOPE__MSG_LOG_DROPPED,
                TETHER__ENVELOPE__MSG_READY, TETHER__ENVELOPE__MSG_HEARTBEAT,    TETHER__ENVELOPE__MSG_EXIT,
        };
        _cleanup_free_ uint8_t *big = NULL;
        Seed s = {};
        int r;


        for (size_t i = 0; i < SAMPLE_MSG_CASES_COUNT; i++) {
                TRY(seed_start(&s, 0, 0));
                TRY(seed_append_sample(&s, sample_msg_cases[i], 1));
                TRY(seed_write(dir, sample_msg_case_name(sample_msg_cases[i]), &s));
        }

        /* A boot as the agent sends it, read in short chunks: through the default bound and a 300-byte one. */
        for (uint8_t bound = 0; bound <= 2; bound += 2) {
                uint64_t seq = 1;
                TRY(seed_start(&s, bound, 1));
                for (size_t i = 0; i < ELEMENTSOF(boot); i++)
                        TRY(seed_append_sample(&s, boot[i], seq++));
                TRY(seed_write(dir, bound == 0 ? "boot-stream" : "boot-stream-small-buffer", &s));
        }

        /* Frames of exactly 16 bytes fill the smallest buffer to the last byte. */
        TRY(seed_start(&s, 1, 3));
        for (uint64_t id = 1; id <= 3; id++) {
                Tether__Envelope e = TETHER__ENVELOPE__INIT;
                Tether__ClockSample sample = TETHER__CLOCK_SAMPLE__INIT;
                sample.probe_id = id;
                sample.boottime_ns = UINT64_C(1) << 30; /* 5-byte varints: 16 bytes in all */
                sample.monotonic_ns = UINT64_C(1) << 30;
                e.msg_case = TETHER__ENVELOPE__MSG_CLOCK_SAMPLE;
                e.clock_sample = &sample;
                if (tether__envelope__get_packed_size(&e) != 16) {
                        r = -EBADMSG;
                        goto finish;
                }
                TRY(seed_append_envelope(&s, &e));
        }
        TRY(seed_write(dir, "full-small-buffer", &s));

        /* The largest legal frame: a Log padded to exactly TETHER_FRAME_MAX (refused later: data > 16 KiB). */
        {
                SampleEnvelope sample;
                big = calloc(1, TETHER_FRAME_MAX);
                if (!big) {
                        r = -ENOMEM;
                        goto finish;
                }
                TRY(sample_envelope_init(&sample, TETHER__ENVELOPE__MSG_LOG, 1));
                sample.log.data = (ProtobufCBinaryData) { .len = TETHER_FRAME_MAX - 64, .data = big };
                while (tether__envelope__get_packed_size(&sample.envelope) < TETHER_FRAME_MAX)
                        sample.log.data.len++;
                TRY(seed_start(&s, 0, 5));
                TRY(seed_append_envelope(&s, &sample.envelope));
                TRY(seed_write(dir, "max-frame", &s));
        }

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_sample(&s, TETHER__ENVELOPE__MSG_HELLO, 0));
        TRY(seed_append(&s, "\0\0\0\0", 4));
        TRY(seed_write(dir, "frame-empty", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append(&s, "\x01\x00\x01\x00", 4)); /* 65537 */
        TRY(seed_write(dir, "frame-too-large", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_raw_frame(&s, unknown_message, sizeof(unknown_message)));
        TRY(seed_write(dir, "unknown-message", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_raw_frame(&s, bad_utf8_milestone, sizeof(bad_utf8_milestone)));
        TRY(seed_write(dir, "invalid-utf8", &s));

        TRY(seed_start(&s, 0, 0));
        TRY(seed_append_raw_frame(&s, truncated, sizeof(truncated)));
        TRY(seed_write(dir, "decode-failed", &s));

        /* A record without seq after a valid one. */
        TRY(seed_start(&s, 0, 2));
        TRY(seed_append_sample(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1));
        TRY(seed_append_sample(&s, TETHER__ENVELOPE__MSG_MILESTONE, 0));
        TRY(seed_write(dir, "seq-missing", &s));
        r = 0;
finish:
        free(s.data);
        return r;
}

/* ---- store-replay: byte 0 flags, then operations: opcode, u16le length, bytes (see fuzz-store-replay.c) ---- */

static int seed_op(Seed *s, char op, const void *p, size_t n) {
        uint8_t h[3] = { (uint8_t) op, (uint8_t) n, (uint8_t) (n >> 8) };
        int r = seed_append(s, h, sizeof(h));
        return r < 0 ? r : seed_append(s, p, n);
}

static int seed_boot_file(Seed *s, uint64_t index) {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
                le[i] = (uint8_t) (index >> (8 * i));
        return seed_op(s, 'F', le, sizeof(le));
}

/* An entry's body: type, u64le receive time, payload; bad: with a wrong CRC ('X'). */
static int seed_entry(Seed *s, char type, uint64_t recv, const void *p, size_t n, bool bad) {
        _cleanup_free_ uint8_t *body = malloc(9 + n);
        if (!body)
                return -ENOMEM;
        body[0] = (uint8_t) type;
        for (int i = 0; i < 8; i++)
                body[1 + i] = (uint8_t) (recv >> (8 * i));
        if (n > 0)
                memcpy(body + 9, p, n);
        return seed_op(s, bad ? 'X' : 'E', body, 9 + n);
}

static int seed_envelope_entry(Seed *s, char type, uint64_t recv, const Tether__Envelope *e, bool bad) {
        size_t n = tether__envelope__get_packed_size(e);
        _cleanup_free_ uint8_t *p = malloc(n + 1);
        if (!p)
                return -ENOMEM;
        tether__envelope__pack(e, p);
        return seed_entry(s, type, recv, p, n, bad);
}

static int seed_boot_entry(Seed *s, const char *boot_id, uint64_t index) {
        _cleanup_free_ char *json = NULL;
        if (asprintf(
                    &json,
                    "{\"boot_id\":\"%s\",\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\",\"index\":%" PRIu64
                    ",\"created_unix_ns\":1700000002000000000}",
                    boot_id,
                    index) < 0)
                return -ENOMEM;
        return seed_entry(s, 'B', UINT64_C(1700000002000000000), json, strlen(json), false);
}

/* A record as tetherd stores it (seq given). */
static int seed_record(Seed *s, Tether__Envelope__MsgCase msg_case, uint64_t seq, bool bad) {
        SampleEnvelope sample;
        int r = sample_envelope_init(&sample, msg_case, seq);
        if (r < 0)
                return r;
        if (msg_case == TETHER__ENVELOPE__MSG_LOG_DROPPED)
                sample.log_dropped.first_seq = sample.log_dropped.last_seq = 0;
        return seed_envelope_entry(s, 'R', UINT64_C(1700000003000000000) + seq, &sample.envelope, bad);
}

static int seed_hello(Seed *s, const char *boot_id) {
        SampleEnvelope sample;
        int r = sample_envelope_init(&sample, TETHER__ENVELOPE__MSG_HELLO, 0);
        if (r < 0)
                return r;
        if (boot_id)
                sample.hello.boot_id = (char *) boot_id;
        return seed_envelope_entry(s, 'H', UINT64_C(1700000002000000000), &sample.envelope, false);
}

/* A whole boot file as tetherd writes it, for the sample Hello's boot id (the reconnecting agent's). */
static int seed_whole_boot(Seed *s, uint64_t index, const char *boot_id) {
        static const Tether__Envelope__MsgCase records[] = {
                TETHER__ENVELOPE__MSG_MILESTONE,   TETHER__ENVELOPE__MSG_PHASE, TETHER__ENVELOPE__MSG_LOG,
                TETHER__ENVELOPE__MSG_LOG_DROPPED, TETHER__ENVELOPE__MSG_READY, TETHER__ENVELOPE__MSG_EXIT,
        };
        static const char clock[] = "{\"offset_ns\":1699999999000000000,\"error_ns\":20000}";
        static const uint8_t instance[] = { 6, 0, 0, 0, 0, 0, 0, 0, 'a', 'g', 'e', 'n', 't', '-', '2' };
        int r;

        if ((r = seed_boot_file(s, index)) < 0 || (r = seed_boot_entry(s, boot_id, index)) < 0 ||
            (r = seed_hello(s, boot_id)) < 0 ||
            (r = seed_entry(s, 'C', UINT64_C(1700000002500000000), clock, strlen(clock), false)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(records); i++)
                if ((r = seed_record(s, records[i], i + 1, false)) < 0)
                        return r;
        if ((r = seed_entry(s, 'I', UINT64_C(1700000004000000000), instance, sizeof(instance), false)) < 0)
                return r;
        return seed_record(s, TETHER__ENVELOPE__MSG_LOG, 7, false);
}

#define SAMPLE_BOOT_ID "9f6c1a0e-2f2b-4c55-9d53-6b1f0d1e2a3b"

static int generate_store_replay(const char *dir) {
        static const char conflict[] = "{\"machine_id\":\"guest\",\"cid\":4}";
        static const char mismatch[] = "{\"machine_id\":\"other\",\"cid\":5}";
        static const char bad_utf8_source[] = { 'w', (char) 0xc0, (char) 0x80, 0 };
        Seed s = {};
        uint8_t flags;
        int r;

#define START(f)                                 \
        do {                                     \
                flags = (f);                     \
                free(s.data);                    \
                s = (Seed) {};                   \
                TRY(seed_append(&s, &flags, 1)); \
        } while (0)

        START(0);
        TRY(seed_write(dir, "empty", &s));

        START(0);
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "boot", &s));

        /* The boot's agent reconnects: resumes it (seqs 1..3 again: duplicates), then starts another. */
        START(1);
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "boot-reconnect", &s));

        START(1);
        TRY(seed_whole_boot(&s, 1, "other-boot"));
        TRY(seed_whole_boot(&s, 2, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "two-boots-reconnect", &s));

        /* A crash in the middle of a write: a header cut short, then a body cut short. */
        START(0);
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_op(&s, 'W', "\x40\x00\x00", 3));
        TRY(seed_write(dir, "torn-header", &s));

        START(1);
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_op(&s, 'W', "\x40\x00\x00\x00\x01\x02\x03\x04R\x00", 10));
        TRY(seed_write(dir, "torn-body-reconnect", &s));

        START(0);
        TRY(seed_boot_file(&s, 1));
        TRY(seed_boot_entry(&s, SAMPLE_BOOT_ID, 1));
        TRY(seed_record(&s, TETHER__ENVELOPE__MSG_MILESTONE, 1, false));
        TRY(seed_record(&s, TETHER__ENVELOPE__MSG_LOG, 2, true));
        TRY(seed_record(&s, TETHER__ENVELOPE__MSG_LOG, 3, false));
        TRY(seed_write(dir, "bad-crc", &s));

        /* Valid CRCs around what tetherd never writes: garbage, an invalid record, an unknown type. */
        START(0);
        TRY(seed_boot_file(&s, 1));
        TRY(seed_boot_entry(&s, SAMPLE_BOOT_ID, 1));
        TRY(seed_record(&s, TETHER__ENVELOPE__MSG_LOG, 1, false));
        TRY(seed_entry(&s, 'R', 5, "\x08\xff", 2, false));
        TRY(seed_entry(&s, 'Z', 5, "?", 1, false));
        TRY(seed_entry(&s, 'C', 5, "{\"offset_ns\":\"x\"}", 16, false));
        TRY(seed_entry(&s, 'I', 5, "\x01", 1, false));
        {
                SampleEnvelope sample;
                TRY(sample_envelope_init(&sample, TETHER__ENVELOPE__MSG_LOG, 2));
                sample.log.source = (char *) bad_utf8_source;
                TRY(seed_envelope_entry(&s, 'R', 6, &sample.envelope, false));
        }
        TRY(seed_record(&s, TETHER__ENVELOPE__MSG_LOG, 3, false));
        TRY(seed_write(dir, "invalid-entries", &s));

        /* More boots than max_boots (1): the older ones are evicted, their files deleted. */
        START(2);
        TRY(seed_whole_boot(&s, 1, "boot-one"));
        TRY(seed_whole_boot(&s, 2, "boot-two"));
        TRY(seed_whole_boot(&s, 5, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "evicted", &s));

        START(1);
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_whole_boot(&s, 2, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "duplicate-boot-id", &s));

        START(0);
        TRY(seed_boot_file(&s, 1));
        TRY(seed_hello(&s, NULL));
        TRY(seed_boot_entry(&s, SAMPLE_BOOT_ID, 1));
        TRY(seed_write(dir, "first-entry-not-boot", &s));

        /* Files that are not boot files, and names that are almost. */
        START(0);
        TRY(seed_op(&s, 'N', "boot-2.rec", 10));
        TRY(seed_whole_boot(&s, 3, "boot-three"));
        TRY(seed_op(&s, 'N', "boot-00000004.rec", 17));
        TRY(seed_op(&s, 'W', "TETHERB0", 8));
        TRY(seed_op(&s, 'N', "notes.txt", 9));
        TRY(seed_op(&s, 'W', "hello", 5));
        TRY(seed_op(&s, 'N', "boot-+5.rec", 11));
        TRY(seed_write(dir, "stray-files", &s));

        START(0);
        TRY(seed_op(&s, 'J', conflict, strlen(conflict)));
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "machine-json-conflict", &s));

        START(1);
        TRY(seed_op(&s, 'J', mismatch, strlen(mismatch)));
        TRY(seed_whole_boot(&s, 1, SAMPLE_BOOT_ID));
        TRY(seed_write(dir, "machine-json-mismatch", &s));

        START(4);
        TRY(seed_boot_file(&s, 1));
        TRY(seed_boot_entry(&s, SAMPLE_BOOT_ID, 1));
        for (uint64_t seq = 1; seq <= 40; seq++)
                TRY(seed_record(&s, TETHER__ENVELOPE__MSG_LOG, seq, false));
        TRY(seed_write(dir, "many-logs-small-memory", &s));
        r = 0;
#undef START
finish:
        free(s.data);
        return r;
}

/* ---- api: requests separated by "\n%%\n", each "METHOD TARGET" then its body (see fuzz-api.c) ---- */

static int generate_api(const char *dir) {
        static const struct {
                const char *name, *text;
        } seeds[] = {
                { "healthz", "GET /healthz" },
                { "stats", "GET /v1/stats" },
                { "metrics", "GET /metrics" },
                { "list", "GET /v1/machines" },
                { "machine", "GET /v1/machines/guest" },
                { "machine-head", "HEAD /v1/machines/guest" },
                { "machine-encoded", "GET /v1/machines/gu%65st" },
                { "machine-nul", "GET /v1/machines/guest%00x/logs" },
                { "machine-dotdot", "GET /v1/machines/..%2Fbystander" },
                { "machine-slash", "GET /v1/machines/guest/logs/x" },
                { "machine-unknown", "GET /v1/machines/nobody/spans" },
                { "machine-put", "PUT /v1/machines/guest\n{}" },
                { "no-endpoint", "GET /v1/nothing?x=1" },
                { "logs", "GET /v1/machines/guest/logs?stream=stdout,stderr&since_seq=2&boot=current" },
                { "logs-bad-stream", "GET /v1/machines/guest/logs?stream=stdout,,nope" },
                { "logs-boot-index", "GET /v1/machines/bystander/logs?boot=1&since_seq=18446744073709551615" },
                { "logs-priority", "GET /v1/machines/guest/logs?priority=err..7&stream=journal,stdout" },
                { "logs-priority-bad", "GET /v1/machines/guest/logs?follow=1&priority=3..%00" },
                { "logs-follow-delete", "GET /v1/machines/guest/logs?follow=1\n%%\nDELETE /v1/machines/guest" },
                { "spans", "GET /v1/machines/guest/spans?boot=guest-boot" },
                { "spans-no-boot", "GET /v1/machines/guest/spans?boot=7" },
                { "ready", "GET /v1/machines/guest/ready?timeout=0" },
                { "ready-wait", "GET /v1/machines/guest/ready?timeout=1.5&since=18446744073709551615" },
                { "ready-bad-timeout", "GET /v1/machines/guest/ready?timeout=nan" },
                { "events", "GET /v1/events?machine_id=guest" },
                { "events-follow", "GET /v1/events?follow=true&machine_id=bystander" },
                { "events-bad-id", "GET /v1/events?machine_id=a+b" },
                { "register",
                  "POST /v1/machines\n{\"machine_id\":\"new\",\"cid\":9,\"attributes\":{\"k\":\"v\"},"
                  "\"ready_condition\":\"milestone:m\"}\n%%\nGET /v1/machines/new/logs\n%%\nGET "
                  "/v1/machines/new/ready\n%%\nDELETE /v1/machines/new" },
                { "register-taken", "POST /v1/machines\n{\"machine_id\":\"guest\",\"cid\":3}" },
                { "register-cid-taken", "POST /v1/machines\n{\"machine_id\":\"x\",\"cid\":4}" },
                { "register-bad-json", "POST /v1/machines\n{\"machine_id\":" },
                { "register-uds", "POST /v1/machines\n{\"machine_id\":\"u\",\"uds_path\":\"/run/x/vm\"}" },
                { "delete-then-get",
                  "DELETE /v1/machines/bystander\n%%\nGET /v1/machines/bystander\n%%\nGET /v1/machines" },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(seeds); i++) {
                Seed s = { .data = (uint8_t *) seeds[i].text, .len = strlen(seeds[i].text) };
                r = seed_write(dir, seeds[i].name, &s);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- libvirt-xml: the domain XML (see fuzz-libvirt-xml.c) ---- */

#define LIBVIRT_UUID "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
#define LIBVIRT_NS "https://tether.dev/xmlns/libvirt/1"
/* A domain as `virsh dumpxml` shows it, around the devices and metadata given. */
#define LIBVIRT_DOMAIN(devices, metadata)                                  \
        "<domain type='kvm' id='3'>\n"                                     \
        "  <name>vm-42</name>\n"                                           \
        "  <uuid>" LIBVIRT_UUID                                            \
        "</uuid>\n"                                                        \
        "  <metadata>" metadata                                            \
        "</metadata>\n"                                                    \
        "  <memory unit='KiB'>1048576</memory>\n"                          \
        "  <vcpu placement='static'>2</vcpu>\n"                            \
        "  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\n" \
        "  <devices>\n"                                                    \
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n" devices   \
        "  </devices>\n"                                                   \
        "</domain>\n"
#define LIBVIRT_VSOCK(cid) "    <vsock model='virtio'><cid auto='no' address='" cid "'/></vsock>\n"
#define LIBVIRT_MACHINE(attrs) "<tether:machine xmlns:tether='" LIBVIRT_NS "' " attrs "/>"

static int generate_libvirt_xml(const char *dir) {
        static const struct {
                const char *name, *text;
        } seeds[] = {
                { "vsock", LIBVIRT_DOMAIN(LIBVIRT_VSOCK("42"), "") },
                { "vsock-auto", LIBVIRT_DOMAIN("    <vsock model='virtio'><cid auto='yes'/></vsock>\n", "") },
                { "plain", LIBVIRT_DOMAIN("    <disk type='file' device='disk'/>\n", "") },
                { "metadata-full",
                  LIBVIRT_DOMAIN(
                          LIBVIRT_VSOCK("42"),
                          LIBVIRT_MACHINE("id='vm-42' request-id='req-1' service='api' ready='source:sd_notify' "
                                          "traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'")) },
                { "metadata-uds", LIBVIRT_DOMAIN("", LIBVIRT_MACHINE("id='vm-42' uds-path='/run/vm-42/vsock.sock'")) },
                { "metadata-cid", LIBVIRT_DOMAIN("", LIBVIRT_MACHINE("cid='7' ready='milestone:db-up'")) },
                { "metadata-cid-and-uds",
                  LIBVIRT_DOMAIN(LIBVIRT_VSOCK("42"), LIBVIRT_MACHINE("cid='7' uds-path='/run/x.sock'")) },
                { "metadata-bad-cid", LIBVIRT_DOMAIN(LIBVIRT_VSOCK("2"), LIBVIRT_MACHINE("cid='4294967295'")) },
                { "metadata-invalid-values",
                  LIBVIRT_DOMAIN(
                          LIBVIRT_VSOCK("42"),
                          LIBVIRT_MACHINE("id='../../etc' traceparent='nope' ready='sometimes' "
                                          "uds-path='/run//x/'")) },
                { "metadata-other-namespace",
                  LIBVIRT_DOMAIN(
                          LIBVIRT_VSOCK("42"),
                          "<other:machine xmlns:other='https://example.com/other' id='x'/>"
                          "<machine id='y'/>") },
                { "uppercase-uuid",
                  "<domain><uuid>4DEA22B3-1D52-D8F3-2516-782E98AB3FA0</uuid><name>caf\xc3\xa9 &amp; "
                  "&#x1F600;<![CDATA[<x>]]></name><devices><vsock/></devices></domain>" },
                { "entities",
                  "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY a 'aaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>"
                  "<!ENTITY ext SYSTEM 'file:///etc/passwd'>]>\n<domain><uuid>" LIBVIRT_UUID
                  "</uuid><name>&b;&ext;</name><metadata>" LIBVIRT_MACHINE("request-id='&b;'") "</metadata></domain>" },
                { "not-a-domain", "<network><name>default</name><uuid>" LIBVIRT_UUID "</uuid></network>" },
                { "namespaced-root", "<x:domain xmlns:x='urn:x'><uuid>" LIBVIRT_UUID "</uuid></x:domain>" },
                { "no-uuid", "<domain><name>x</name><uuid>not-a-uuid</uuid></domain>" },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(seeds); i++) {
                Seed s = { .data = (uint8_t *) seeds[i].text, .len = strlen(seeds[i].text) };
                r = seed_write(dir, seeds[i].name, &s);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- otlp-response: a 29-byte header, the Retry-After value, the body (see fuzz-otlp-response.c) ---- */

typedef struct OtlpAnswer {
        const char *name;
        uint8_t date_mode;
        uint16_t status;
        uint64_t now_s;
        int64_t date_s;
        uint8_t attempt;
        uint32_t random;
        uint32_t max_ms;
        const char *retry_after; /* NULL: none */
        const char *body;        /* protobuf; NULL: empty */
        size_t body_len;
} OtlpAnswer;

static int seed_append_le(Seed *s, uint64_t v, size_t n) {
        uint8_t le[8];
        for (size_t i = 0; i < n; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        return seed_append(s, le, n);
}

static int seed_otlp_answer(const char *dir, const OtlpAnswer *a) {
        Seed s = {};
        int r;

        TRY(seed_append(&s, &a->date_mode, 1));
        TRY(seed_append_le(&s, a->status, 2));
        TRY(seed_append_le(&s, a->now_s * UINT64_C(1000000000), 8));
        TRY(seed_append_le(&s, (uint64_t) a->date_s, 8));
        TRY(seed_append(&s, &a->attempt, 1));
        TRY(seed_append_le(&s, a->random, 4));
        TRY(seed_append_le(&s, a->max_ms - 1, 4));
        TRY(seed_append_le(&s, a->retry_after ? strlen(a->retry_after) + 1 : 0, 1));
        if (a->retry_after)
                TRY(seed_append(&s, a->retry_after, strlen(a->retry_after)));
        if (a->body)
                TRY(seed_append(&s, a->body, a->body_len));
        TRY(seed_write(dir, a->name, &s));
finish:
        free(s.data);
        return r;
}

/* partial_success (field 1) holding rejected (field 1, varint) and error_message (field 2). */
#define PARTIAL(rejected, message) "\x0a" rejected message
static const char partial_3[] = PARTIAL(
        "\x0d\x08\x03",
        "\x12\x09"
        "bad spans");
static const char partial_negative[] = PARTIAL("\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "");
static const char partial_max[] = PARTIAL("\x0a\x08\xff\xff\xff\xff\xff\xff\xff\xff\x7f", "");
static const char partial_empty[] = "\x0a\x00";
static const char truncated[] = "\x0a\x05\x08";
static const char unknown_field[] = "\x1a\x03xyz\x0a\x02\x08\x01";
static const char bad_utf8_message[] = PARTIAL("\x06\x08\x01", "\x12\x02\xc0\x80");

static int generate_otlp_response(const char *dir) {
        /* Sun, 06 Nov 1994 08:49:37 GMT, and now 7 s before it. */
        const uint64_t date = 784111777, now = date - 7;
        const OtlpAnswer answers[] = {
                { .name = "ok", .status = 200, .now_s = now, .max_ms = 5000 },
#define BODY(b) .body = b, .body_len = sizeof(b) - 1
                { .name = "partial", .status = 200, .now_s = now, .max_ms = 5000, BODY(partial_3) },
                { .name = "partial-negative", .status = 200, .now_s = now, .max_ms = 5000, BODY(partial_negative) },
                { .name = "partial-max", .status = 202, .now_s = now, .max_ms = 5000, BODY(partial_max) },
                { .name = "partial-empty", .status = 200, .now_s = now, .max_ms = 5000, BODY(partial_empty) },
                { .name = "partial-truncated", .status = 200, .now_s = now, .max_ms = 5000, BODY(truncated) },
                { .name = "partial-unknown-field", .status = 200, .now_s = now, .max_ms = 5000, BODY(unknown_field) },
                { .name = "partial-bad-utf8", .status = 200, .now_s = now, .max_ms = 5000, BODY(bad_utf8_message) },
#undef BODY
                { .name = "retry-after-and-partial",
                  .status = 429,
                  .now_s = now,
                  .max_ms = 5000,
                  .retry_after = "2",
                  .body = partial_3,
                  .body_len = sizeof(partial_3) - 1 },
                { .name = "reject-400", .status = 400, .now_s = now, .max_ms = 5000, .body = "{}", .body_len = 2 },
                { .name = "no-answer", .status = 0, .now_s = now, .attempt = 5, .random = 0x80000000, .max_ms = 5000 },
                { .name = "retry-after-120", .status = 429, .now_s = now, .max_ms = 5000, .retry_after = "120" },
                { .name = "retry-after-blanks", .status = 503, .now_s = now, .max_ms = 5000, .retry_after = " 0 \r" },
                { .name = "retry-after-huge",
                  .status = 503,
                  .now_s = now,
                  .attempt = 40,
                  .random = UINT32_MAX,
                  .max_ms = 3600000,
                  .retry_after = "99999999999999999999999" },
                { .name = "retry-after-imf",
                  .status = 503,
                  .now_s = now,
                  .max_ms = 5000,
                  .retry_after = "Sun, 06 Nov 1994 08:49:37 GMT" },
                { .name = "retry-after-rfc850",
                  .status = 502,
                  .now_s = now,
                  .max_ms = 5000,
                  .retry_after = "Sunday, 06-Nov-94 08:49:37 GMT" },
                { .name = "retry-after-asctime",
                  .status = 504,
                  .now_s = now,
                  .max_ms = 5000,
                  .retry_after = "Sun Nov  6 08:49:37 1994" },
                { .name = "retry-after-junk", .status = 429, .now_s = now, .max_ms = 1, .retry_after = "12abc" },
                { .name = "retry-after-word", .status = 429, .now_s = now, .max_ms = 1, .retry_after = "soon" },
                { .name = "retry-after-empty", .status = 429, .now_s = now, .max_ms = 1, .retry_after = "" },
                /* Dates the target formats itself: absolute, and relative to now (ahead, behind, beyond 1 h). */
                { .name = "date-imf", .date_mode = 1, .status = 503, .now_s = now, .date_s = date, .max_ms = 5000 },
                { .name = "date-rfc850-ahead",
                  .date_mode = 0x82,
                  .status = 503,
                  .now_s = 1796000000,
                  .date_s = 30,
                  .max_ms = 5000 },
                { .name = "date-asctime-behind",
                  .date_mode = 0x83,
                  .status = 429,
                  .now_s = 1796000000,
                  .date_s = -30,
                  .max_ms = 5000 },
                { .name = "date-imf-beyond-cap",
                  .date_mode = 0x81,
                  .status = 429,
                  .now_s = 1796000000,
                  .date_s = 86400,
                  .max_ms = 5000 },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(answers); i++) {
                r = seed_otlp_answer(dir, &answers[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*generate)(const char *dir);
        } corpora[] = {
                { "frame-envelope", generate_frame_envelope },
                { "store-replay", generate_store_replay },
                { "api", generate_api },
                { "libvirt-xml", generate_libvirt_xml },
                { "otlp-response", generate_otlp_response },
        };
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS-DIRECTORY\n", argv[0]);
                return EXIT_FAILURE;
        }
        for (size_t i = 0; i < ELEMENTSOF(corpora); i++) {
                _cleanup_free_ char *dir = NULL;
                if (asprintf(&dir, "%s/%s", argv[1], corpora[i].name) < 0)
                        return EXIT_FAILURE;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        fprintf(stderr, "gen-corpus: failed to create %s: %m\n", dir);
                        return EXIT_FAILURE;
                }
                r = corpora[i].generate(dir);
                if (r < 0) {
                        fprintf(stderr, "gen-corpus: failed to write seeds to %s: %s\n", dir, strerror(-r));
                        return EXIT_FAILURE;
                }
        }
        return EXIT_SUCCESS;
}
