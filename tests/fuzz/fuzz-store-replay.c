/* SPDX-License-Identifier: MIT */
/* A crafted state directory through tetherd's replay at start (store_load(): machine.json, the boot files and
 * every entry in them, torn tails, eviction beyond max_boots) into a registry, then every renderer of what it
 * loaded (fuzz-checks.h: API JSON, spans, log lines read back from the boot files, OTLP). Two machines are in the
 * directory: "bystander", always the same valid files, and "guest", whose boot files (and optionally
 * machine.json) the input writes. Whatever guest's files hold, bystander loads and renders exactly as it does
 * alone; guest's state stays within its bounds; a second load of the directory (a second restart) finds no torn
 * tail and gives back the same state. Optionally guest's agent then reconnects twice (resuming a loaded boot if its
 * boot id matches, then starting a new one), appending to the files the load left, and a reload must give back
 * what that session stored.
 *
 * Input: byte 0 holds flags (bit 0: the reconnecting agent; bit 1: max_boots 1 instead of 3; bit 2: a small
 * in-memory log bound). Then operations, each an opcode byte, a u16le length and that many bytes (fewer at the end
 * of the input), on guest's directory:
 *   'F' starts the boot file boot-<u64le index>.rec (zero-padded to 8 digits, as tetherd names them), magic
 *       included;
 *   'N' starts a file with the name given (bytes other than [A-Za-z0-9._+-] become '_');
 *   'E' appends an entry whose body (type, u64le receive time, payload) is given: length and CRC are computed;
 *   'X' appends the same with a wrong CRC;
 *   'W' appends raw bytes;
 *   'J' replaces guest's machine.json.
 * Entries and bytes before the first file go to boot-00000001.rec. */

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "envelope.h"
#include "fuzz-checks.h"
#include "fuzz-util.h"
#include "fuzz.h"
#include "jsonlog.h"
#include "machine-json.h"
#include "macro.h"
#include "registry.h"
#include "render.h"
#include "sample-envelopes.h"
#include "session.h"
#include "store.h"

#define NODE_ID "fuzz-node"
#define GUEST "guest"
#define BYSTANDER "bystander"
#define REGISTERED_UNIX_NS INT64_C(1700000000000000000)
#define MAX_FILES 16u

typedef struct Buf {
        uint8_t *data;
        size_t len;
} Buf;

static void buf_append(Buf *b, const void *p, size_t n) {
        if (n == 0)
                return;
        b->data = realloc(b->data, b->len + n);
        FUZZ_ASSERT(b->data);
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void put_le(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

/* A boot file entry around body (type, receive time, payload), as store.c writes it. */
static void buf_append_entry(Buf *b, const uint8_t *body, size_t len, bool bad_crc) {
        uint8_t h[STORE_ENTRY_HEADER_SIZE];

        put_le(h, len, 4);
        put_le(h + 4, store_crc32(body, len) ^ (bad_crc ? 1u : 0u), 4);
        buf_append(b, h, sizeof(h));
        buf_append(b, body, len);
}

static void buf_append_typed(Buf *b, uint8_t type, uint64_t recv, const void *payload, size_t len) {
        Buf body = {};
        uint8_t h[STORE_ENTRY_BODY_HEADER_SIZE];

        h[0] = type;
        put_le(h + 1, recv, 8);
        buf_append(&body, h, sizeof(h));
        buf_append(&body, payload, len);
        buf_append_entry(b, body.data, body.len, false);
        free(body.data);
}

static void buf_append_envelope_entry(Buf *b, uint8_t type, uint64_t recv, const Tether__Envelope *e) {
        size_t len = tether__envelope__get_packed_size(e);
        uint8_t *p = malloc(len + 1);

        FUZZ_ASSERT(p);
        tether__envelope__pack(e, p);
        buf_append_typed(b, type, recv, p, len);
        free(p);
}

static void buf_append_frame(Buf *b, const Tether__Envelope *e) {
        _cleanup_free_ uint8_t *frame = NULL;
        size_t len;

        FUZZ_ASSERT(envelope_pack_frame(e, &frame, &len) >= 0);
        buf_append(b, frame, len);
}

/* ---- what every input shares, made once ---- */

static char *guest_json, *bystander_json;
static Buf bystander_boot;
static Buf reconnect_resume, reconnect_new;
static json_t *bystander_baseline; /* bystander rendered, loaded alone */

static char *registration_json(const char *id, uint32_t cid) {
        RegistryConfig rc = { .node_id = NODE_ID,
                              .max_machines = 1,
                              .max_boots = 1,
                              .max_events = 8,
                              .vsock_port = 4817,
                              .boot_limits = BOOT_LIMITS_DEFAULT };
        static const char *const keys[] = { "team" }, *const values[] = { "fuzz" };
        MachineSpec spec = {
                .machine_id = id,
                .cid = cid,
                .traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                .request_id = "req-1",
                .attr_keys = keys,
                .attr_values = values,
                .n_attrs = 1,
                .registered_unix_ns = REGISTERED_UNIX_NS,
        };
        Stats stats = {};
        Registry *reg;
        Machine *m;
        const char *err;

        FUZZ_ASSERT(registry_new(&rc, &stats, &reg) >= 0);
        FUZZ_ASSERT(registry_add_machine(reg, &spec, &m, &err) >= 0);
        json_t *o = machine_registration_to_json(m);
        FUZZ_ASSERT(o);
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        FUZZ_ASSERT(text);
        json_decref(o);
        registry_free(reg);
        return text;
}

/* A boot as tetherd writes it: the boot entry, a Hello, records, a fixed clock. */
static void make_bystander_boot(Buf *b) {
        static const Tether__Envelope__MsgCase records[] = {
                TETHER__ENVELOPE__MSG_MILESTONE,   TETHER__ENVELOPE__MSG_PHASE, TETHER__ENVELOPE__MSG_LOG,
                TETHER__ENVELOPE__MSG_LOG_DROPPED, TETHER__ENVELOPE__MSG_READY,
        };
        static const char boot[] =
                "{\"boot_id\":\"bystander-boot\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"index\":1,"
                "\"created_unix_ns\":1700000001000000000}";
        static const char clock[] = "{\"offset_ns\":1700000000500000000,\"error_ns\":1000,\"fixed\":true}";
        uint64_t recv = UINT64_C(1700000001000000000);
        SampleEnvelope s;

        buf_append(b, STORE_BOOT_MAGIC, strlen(STORE_BOOT_MAGIC));
        buf_append_typed(b, STORE_ENTRY_BOOT, recv, boot, strlen(boot));
        FUZZ_ASSERT(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0) >= 0);
        s.hello.boot_id = "bystander-boot";
        buf_append_envelope_entry(b, STORE_ENTRY_HELLO, recv, &s.envelope);
        buf_append_typed(b, STORE_ENTRY_CLOCK, recv, clock, strlen(clock));
        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                FUZZ_ASSERT(sample_envelope_init(&s, records[i], 30 + i) >= 0);
                buf_append_envelope_entry(b, STORE_ENTRY_RECORD, recv + i, &s.envelope);
        }
}

/* The agent of a loaded boot reconnecting (the sample Hello's boot id, which seeds give their boot files). */
static void make_reconnect(Buf *b, const char *boot_id, uint64_t seq) {
        static const Tether__Envelope__MsgCase records[] = {
                TETHER__ENVELOPE__MSG_MILESTONE,
                TETHER__ENVELOPE__MSG_LOG,
                TETHER__ENVELOPE__MSG_READY,
        };
        SampleEnvelope s;

        FUZZ_ASSERT(sample_envelope_init(&s, TETHER__ENVELOPE__MSG_HELLO, 0) >= 0);
        if (boot_id)
                s.hello.boot_id = (char *) boot_id;
        buf_append_frame(b, &s.envelope);
        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                FUZZ_ASSERT(sample_envelope_init(&s, records[i], seq + i) >= 0);
                buf_append_frame(b, &s.envelope);
        }
}

/* ---- the state directory ---- */

typedef struct GuestFiles {
        char *names[MAX_FILES];
        Buf contents[MAX_FILES];
        size_t n;
        char *machine_json;
        size_t machine_json_len;
} GuestFiles;

static Buf *files_start(GuestFiles *g, char *name) {
        FUZZ_ASSERT(name);
        for (size_t i = 0; i < g->n; i++)
                if (strcmp(g->names[i], name) == 0) {
                        /* The same name again: start it over. */
                        free(name);
                        g->contents[i].len = 0;
                        return &g->contents[i];
                }
        if (g->n == MAX_FILES) {
                free(name);
                return NULL;
        }
        g->names[g->n] = name;
        g->contents[g->n] = (Buf) {};
        return &g->contents[g->n++];
}

static char *boot_file_name(uint64_t index) {
        char *name;
        if (asprintf(&name, "boot-%08" PRIu64 ".rec", index) < 0)
                return NULL;
        return name;
}

static void files_parse(GuestFiles *g, const uint8_t *p, size_t n) {
        Buf *cur = NULL;

        while (n >= 3) {
                uint8_t op = p[0];
                size_t len = MIN((size_t) p[1] | (size_t) p[2] << 8, n - 3);
                const uint8_t *arg = p + 3;
                p += 3 + len;
                n -= 3 + len;

                if (op == 'F' || op == 'N') {
                        if (op == 'F') {
                                uint8_t le[8] = {};
                                memcpy(le, arg, MIN(len, sizeof(le)));
                                uint64_t index = 0;
                                for (int i = 7; i >= 0; i--)
                                        index = index << 8 | le[i];
                                cur = files_start(g, boot_file_name(index));
                                if (cur)
                                        buf_append(cur, STORE_BOOT_MAGIC, strlen(STORE_BOOT_MAGIC));
                        } else {
                                char *name = malloc(MIN(len, (size_t) 64) + 2);
                                size_t k = 0;
                                FUZZ_ASSERT(name);
                                for (size_t i = 0; i < MIN(len, (size_t) 64); i++) {
                                        char c = (char) arg[i];
                                        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                                (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
                                        name[k++] = ok ? c : '_';
                                }
                                name[k] = '\0';
                                /* Not "", ".", "..", or the registration's name. */
                                if (k == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
                                    strcmp(name, "machine.json") == 0)
                                        name[k++] = '_', name[k] = '\0';
                                cur = files_start(g, name);
                        }
                        continue;
                }
                if (op == 'J') {
                        free(g->machine_json);
                        g->machine_json = malloc(len + 1);
                        FUZZ_ASSERT(g->machine_json);
                        memcpy(g->machine_json, arg, len);
                        g->machine_json_len = len;
                        continue;
                }
                if (op != 'E' && op != 'X' && op != 'W')
                        continue;
                if (!cur) {
                        cur = files_start(g, boot_file_name(1));
                        if (!cur)
                                continue;
                        buf_append(cur, STORE_BOOT_MAGIC, strlen(STORE_BOOT_MAGIC));
                }
                if (op == 'W')
                        buf_append(cur, arg, len);
                else
                        buf_append_entry(cur, arg, len, op == 'X');
        }
}

static void files_done(GuestFiles *g) {
        for (size_t i = 0; i < g->n; i++) {
                free(g->names[i]);
                free(g->contents[i].data);
        }
        free(g->machine_json);
}

static void write_machine(const char *state, const char *id, const char *json, size_t json_len) {
        _cleanup_free_ char *dir = NULL, *path = NULL;

        FUZZ_ASSERT(asprintf(&dir, "%s/machines/%s", state, id) >= 0);
        FUZZ_ASSERT(mkdir(dir, 0750) >= 0 || errno == EEXIST);
        FUZZ_ASSERT(asprintf(&path, "%s/machine.json", dir) >= 0);
        FUZZ_ASSERT(fuzz_write_file(path, json, json_len) >= 0);
}

static void write_file(const char *state, const char *id, const char *name, const Buf *b) {
        _cleanup_free_ char *path = NULL;

        FUZZ_ASSERT(asprintf(&path, "%s/machines/%s/%s", state, id, name) >= 0);
        FUZZ_ASSERT(fuzz_write_file(path, b->data, b->len) >= 0);
}

static void write_state(const char *state, const GuestFiles *g) {
        _cleanup_free_ char *machines = NULL;

        FUZZ_ASSERT(asprintf(&machines, "%s/machines", state) >= 0);
        FUZZ_ASSERT(mkdir(state, 0750) >= 0 || errno == EEXIST);
        FUZZ_ASSERT(mkdir(machines, 0750) >= 0 || errno == EEXIST);
        write_machine(state, BYSTANDER, bystander_json, strlen(bystander_json));
        write_file(state, BYSTANDER, "boot-00000001.rec", &bystander_boot);
        if (!g)
                return;
        if (g->machine_json)
                write_machine(state, GUEST, g->machine_json, g->machine_json_len);
        else
                write_machine(state, GUEST, guest_json, strlen(guest_json));
        for (size_t i = 0; i < g->n; i++)
                write_file(state, GUEST, g->names[i], &g->contents[i]);
}

/* ---- loading and checking ---- */

typedef struct Loaded {
        Stats stats;
        Store *store;
        Registry *registry;
        StoreLoadReport report;
} Loaded;

static void load(Loaded *l, const char *state, uint8_t flags) {
        RegistryConfig rc = {
                .node_id = NODE_ID,
                .default_service_name = "fuzz",
                .max_machines = 4,
                .max_boots = (flags & 2) ? 1 : 3,
                .max_events = 64,
                .vsock_port = 4817,
                .boot_limits = BOOT_LIMITS_DEFAULT,
        };
        if (flags & 4)
                rc.boot_limits.max_log_bytes = 2048;
        StoreConfig sc = { .dir = state, .sync = false };

        *l = (Loaded) {};
        FUZZ_ASSERT(store_open(&sc, &l->stats, &l->store) >= 0);
        FUZZ_ASSERT(registry_new(&rc, &l->stats, &l->registry) >= 0);
        FUZZ_ASSERT(store_load(l->store, l->registry, &l->report) >= 0);
        /* Boots load in index order: the newest is current. */
        for (Machine *m = l->registry->machines; m; m = m->machines_next)
                FUZZ_ASSERT(m->n_boots == 0 || m->boots[m->n_boots - 1] == m->current);
}

static void unload(Loaded *l) {
        l->store = store_free(l->store);
        l->registry = registry_free(l->registry);
}

/* Everything rendered about a machine: the machine, and each boot. */
static json_t *render_all(const Machine *m) {
        json_t *boots = json_array();
        FUZZ_ASSERT(boots);
        for (size_t i = 0; i < m->n_boots; i++)
                FUZZ_ASSERT(json_array_append_new(boots, fuzz_check_rendered(render_boot(m, m->boots[i]))) >= 0);
        json_t *o = json_pack("{s:o, s:o}", "machine", fuzz_check_rendered(render_machine(m, NODE_ID)), "boots", boots);
        FUZZ_ASSERT(o);
        return o;
}

/* A machine's state is within its bounds, whatever its files said. */
static void check_bounds(const Machine *m, const RegistryConfig *rc) {
        FUZZ_ASSERT(m->n_boots <= MAX(rc->max_boots, (size_t) 1));
        FUZZ_ASSERT(!m->current == (m->n_boots == 0));
        /* One of its boots: the newest after a load, the one its agent resumed after a reconnect (an older one if
         * the agent says an older boot id). */
        bool current_found = !m->current;
        for (size_t i = 0; i < m->n_boots; i++)
                current_found = current_found || m->boots[i] == m->current;
        FUZZ_ASSERT(current_found);
        for (size_t i = 0; i < m->n_boots; i++) {
                const Boot *b = m->boots[i];
                /* A new boot gets an index no boot has: its file must not be one of theirs. */
                FUZZ_ASSERT(b->index < m->next_boot_index);
                for (size_t j = 0; j < i; j++) {
                        FUZZ_ASSERT(m->boots[j]->index != b->index);
                        FUZZ_ASSERT(strcmp(m->boots[j]->boot_id, b->boot_id) != 0);
                }
                FUZZ_ASSERT(b->n_milestones <= rc->boot_limits.max_milestones);
                FUZZ_ASSERT(b->n_phases <= rc->boot_limits.max_phases);
                FUZZ_ASSERT(b->annotation_bytes <= rc->boot_limits.max_annotation_bytes);
                FUZZ_ASSERT(b->n_instances <= BOOT_INSTANCES_MAX && b->n_gaps <= BOOT_GAPS_MAX);
                FUZZ_ASSERT(b->records <= b->last_seq);
        }
}

/* Renders every machine (deep: every way there is, bystander too if deep_bystander; else the API's JSON only);
 * bystander must be exactly as when loaded alone. */
static void check_loaded(Loaded *l, bool deep, bool deep_bystander) {
        Machine *by = registry_find(l->registry, BYSTANDER);

        FUZZ_ASSERT(by && l->registry->n_machines == l->report.machines);
        json_t *o = render_all(by);
        FUZZ_ASSERT(json_equal(o, bystander_baseline));
        json_decref(o);

        for (Machine *m = l->registry->machines; m; m = m->machines_next) {
                check_bounds(m, &l->registry->config);
                for (size_t i = 0; deep && (m != by || deep_bystander) && i < m->n_boots; i++) {
                        /* The load truncated whatever fails its CRC: reading it back cannot fail. */
                        FUZZ_ASSERT(check_boot(l->store, m, m->boots[i]) >= 0);
                }
        }
}

typedef struct BootSummary {
        uint64_t index, last_seq, records;
        char *boot_id;
} BootSummary;

static size_t summarize(const Machine *m, BootSummary *ret) {
        for (size_t i = 0; i < m->n_boots; i++)
                ret[i] = (BootSummary) {
                        .index = m->boots[i]->index,
                        .last_seq = m->boots[i]->last_seq,
                        .records = m->boots[i]->records,
                        .boot_id = strdup(m->boots[i]->boot_id),
                };
        return m->n_boots;
}

/* guest's agent reconnects: resumes a boot (if one has the sample's boot id), then starts a new one. */
static void reconnect(Loaded *l, Machine *guest) {
        SessionContext ctx;
        const Buf *streams[] = { &reconnect_resume, &reconnect_new };

        session_context_init(&ctx, l->registry, l->store, &l->stats);
        for (size_t i = 0; i < ELEMENTSOF(streams); i++) {
                Session *s;
                FUZZ_ASSERT(session_new(&ctx, guest, &s) >= 0);
                int r = session_feed(s, streams[i]->data, streams[i]->len);
                FUZZ_ASSERT(r >= 0 || r == -EPROTO);
                session_flush_writes(s);
                (void) session_flush_ack(s);
                session_end(s, r < 0 ? CLOSE_PROTOCOL_ERROR : CLOSE_EOF);
                session_free(s);
                check_bounds(guest, &l->registry->config);
        }
}

static void setup(void) {
        Loaded l;

        log_setup(LOG_TARGET_JSON, LOG_CRIT, "fuzz");
        guest_json = registration_json(GUEST, 3);
        bystander_json = registration_json(BYSTANDER, 4);
        make_bystander_boot(&bystander_boot);
        make_reconnect(&reconnect_resume, NULL, 1);
        make_reconnect(&reconnect_new, "fuzz-next-boot", 1);

        _cleanup_free_ char *state = NULL;
        FUZZ_ASSERT(asprintf(&state, "%s/state", fuzz_scratch_dir()) >= 0);
        write_state(state, NULL);
        load(&l, state, 0);
        Machine *by = registry_find(l.registry, BYSTANDER);
        FUZZ_ASSERT(by && by->n_boots == 1 && by->current->records == 5);
        bystander_baseline = render_all(by);
        check_loaded(&l, true, true);
        unload(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool set_up = false;
        _cleanup_free_ char *state = NULL;
        GuestFiles g = {};
        BootSummary live[8];
        size_t n_live = 0;
        Loaded l;

        if (size < 1)
                return 0;
        if (!set_up) {
                setup();
                set_up = true;
        }
        uint8_t flags = data[0];
        FUZZ_ASSERT(asprintf(&state, "%s/state", fuzz_scratch_dir()) >= 0);
        files_parse(&g, data + 1, size - 1);
        write_state(state, &g);
        files_done(&g);

        /* tetherd starts. */
        load(&l, state, flags);
        FUZZ_ASSERT(l.report.machines + l.report.machines_skipped == 2);
        FUZZ_ASSERT(l.registry->events->n == 0); /* loading announces nothing */
        check_loaded(&l, true, false);
        Machine *guest = registry_find(l.registry, GUEST);
        json_t *first = guest ? render_all(guest) : NULL;
        bool reconnected = (flags & 1) && guest;
        if (reconnected) {
                reconnect(&l, guest);
                n_live = summarize(guest, live);
                FUZZ_ASSERT(n_live <= ELEMENTSOF(live));
                check_loaded(&l, true, true);
        }
        unload(&l);

        /* And again: what the first start truncated, evicted or appended loads cleanly, to the same state. */
        load(&l, state, flags);
        FUZZ_ASSERT(l.report.torn_tails == 0);
        check_loaded(&l, false, false);
        Machine *again = registry_find(l.registry, GUEST);
        FUZZ_ASSERT(!again == !guest);
        if (guest && !reconnected) {
                json_t *second = render_all(again);
                FUZZ_ASSERT(json_equal(first, second));
                json_decref(second);
        }
        if (reconnected) {
                /* What the session stored is what the restart has. */
                FUZZ_ASSERT(again->n_boots == n_live);
                for (size_t i = 0; i < n_live; i++) {
                        const Boot *b = machine_find_boot_by_index(again, live[i].index);
                        FUZZ_ASSERT(b && strcmp(b->boot_id, live[i].boot_id) == 0);
                        FUZZ_ASSERT(b->last_seq == live[i].last_seq && b->records == live[i].records);
                }
        }
        for (size_t i = 0; i < n_live; i++)
                free(live[i].boot_id);
        json_decref(first);
        unload(&l);
        return 0;
}
