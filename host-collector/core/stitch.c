/* SPDX-License-Identifier: MIT */
/* Room core: tetherd's model (machines, boots, sessions, clocks, store); no event loop, HTTP, curl, libvirt. */
#include "stitch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tether.pb-c.h"

const char *span_status_to_string(SpanStatus s) {
        switch (s) {
        case SPAN_STATUS_OK:
                return "ok";
        case SPAN_STATUS_ERROR:
                return "error";
        default:
                return "unset";
        }
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
        const uint8_t *p = data;
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= UINT64_C(1099511628211);
        }
        return h;
}

/* splitmix64's finalizer: spreads FNV's weak low bits over the whole id. */
static uint64_t mix64(uint64_t z) {
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

void stitch_span_id(
        const uint8_t trace_id[16], const char *boot_id, const char *key, uint64_t ordinal, uint8_t ret[8]) {
        uint64_t h = UINT64_C(14695981039346656037);
        uint8_t ord[8];

        h = fnv1a(h, trace_id, 16);
        h = fnv1a(h, boot_id, strlen(boot_id) + 1);
        h = fnv1a(h, key, strlen(key) + 1);
        for (unsigned i = 0; i < 8; i++)
                ord[i] = (uint8_t) (ordinal >> (8 * i));
        h = mix64(fnv1a(h, ord, sizeof(ord)));
        if (h == 0)
                h = 1; /* an all-zero span id is invalid */
        for (unsigned i = 0; i < 8; i++)
                ret[i] = (uint8_t) (h >> (56 - 8 * i));
}

void stitch_workload_span_id(const Boot *b, uint8_t ret[8]) {
        stitch_span_id(b->trace_id, b->boot_id, "workload.start", 0, ret);
}

#define ROOT_KEY "machine.boot"

void stitch_root_span_id(const Boot *b, uint8_t ret[8]) {
        stitch_span_id(b->trace_id, b->boot_id, ROOT_KEY, 0, ret);
}

static void span_attrs_free(SpanAttr *a, size_t n) {
        if (!a)
                return;
        for (size_t i = 0; i < n; i++) {
                free(a[i].key);
                free(a[i].value);
        }
        free(a);
}

static void span_done(Span *s) {
        free(s->name);
        free(s->status_message);
        span_attrs_free(s->attrs, s->n_attrs);
        for (size_t i = 0; i < s->n_events; i++) {
                free(s->events[i].name);
                span_attrs_free(s->events[i].attrs, s->events[i].n_attrs);
        }
        free(s->events);
}

SpanSet *span_set_free(SpanSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_spans; i++)
                span_done(&s->spans[i]);
        free(s->spans);
        free(s);
        return NULL;
}

static int attr_add(SpanAttr **a, size_t *n, const char *key, const char *value, int64_t int_value) {
        SpanAttr *x = realloc(*a, (*n + 1) * sizeof(SpanAttr));
        if (!x)
                return -ENOMEM;
        *a = x;
        SpanAttr *t = &x[*n];
        *t = (SpanAttr) { .key = strdup(key), .int_value = int_value };
        if (!t->key)
                return -ENOMEM;
        if (value && !(t->value = strdup(value))) {
                free(t->key);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

static int span_add_str(Span *s, const char *key, const char *value) {
        if (!value)
                return 0;
        return attr_add(&s->attrs, &s->n_attrs, key, value, 0);
}

static int span_add_int(Span *s, const char *key, int64_t value) {
        return attr_add(&s->attrs, &s->n_attrs, key, NULL, value);
}

static int span_add_attrs(Span *s, const Attr *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (attr_add(&s->attrs, &s->n_attrs, a[i].key, a[i].value, 0) < 0)
                        return -ENOMEM;
        return 0;
}

typedef struct Stitcher {
        const StitchContext *ctx;
        const Boot *boot;
        SpanSet *set;
        size_t capacity;
} Stitcher;

static uint64_t to_unix(const Stitcher *st, uint64_t boottime_ns) {
        return boot_to_unix_ns(st->boot, boottime_ns, st->boot->first_seen_unix_ns);
}

/* Adds a span with the attributes every span carries. end_boottime_ns UINT64_MAX = open. */
static int add_span(
        Stitcher *st,
        const char *name,
        SpanKind kind,
        const char *key,
        uint64_t ordinal,
        const char *transition,
        uint64_t start,
        uint64_t end,
        Span **ret) {
        const StitchContext *ctx = st->ctx;
        const Boot *b = st->boot;

        if (st->set->n_spans == st->capacity) {
                size_t cap = st->capacity ? st->capacity * 2 : 8;
                Span *a = realloc(st->set->spans, cap * sizeof(Span));
                if (!a)
                        return -ENOMEM;
                st->set->spans = a;
                st->capacity = cap;
        }
        Span *s = &st->set->spans[st->set->n_spans];
        *s = (Span) {
                .kind = kind,
                .start_boottime_ns = start,
                .end_boottime_ns = end,
                .open = end == UINT64_MAX,
        };
        if (!(s->name = strdup(name)))
                return -ENOMEM;
        st->set->n_spans++;

        stitch_span_id(b->trace_id, b->boot_id, key, ordinal, s->span_id);
        s->start_unix_ns = to_unix(st, start);
        s->end_unix_ns = s->open ? MAX(ctx->now_unix_ns, s->start_unix_ns) : to_unix(st, end);
        if (s->end_unix_ns < s->start_unix_ns)
                s->end_unix_ns = s->start_unix_ns;

        if (span_add_str(s, "tether.machine.id", ctx->machine_id) < 0 ||
            span_add_str(s, "tether.node.id", ctx->node_id) < 0 ||
            span_add_str(s, "tether.request.id", ctx->request_id) < 0 ||
            span_add_str(s, "tether.transition", transition) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Where the boot starts for the guest: kernel.start in a VM. An agent in a container does not claim the (host's)
 * kernel start, so there the boot starts with init.start, else with the earliest milestone. */
static uint64_t root_start(const Boot *b, const BootMilestone *kernel_start, const BootMilestone *init_start) {
        uint64_t start = UINT64_MAX;

        if (kernel_start)
                return kernel_start->boottime_ns;
        if (init_start)
                return init_start->boottime_ns;
        for (size_t i = 0; i < b->n_milestones; i++)
                start = MIN(start, b->milestones[i].boottime_ns);
        return start == UINT64_MAX ? 0 : start;
}

static int add_root(Stitcher *st, uint64_t start, uint64_t end) {
        const Boot *b = st->boot;
        Span *root;
        int r;

        r = add_span(st, "machine.boot", SPAN_KIND_ROOT, ROOT_KEY, 0, "boot", start, end, &root);
        if (r < 0)
                return r;
        if (st->ctx->parent_span_id) {
                root->has_parent = true;
                memcpy(root->parent_span_id, st->ctx->parent_span_id, 8);
        }

        if (b->ready.set)
                root->status = SPAN_STATUS_OK;
        else if (b->exit.set) {
                root->status = SPAN_STATUS_ERROR;
                if (!(root->status_message = strdup(
                              b->exit.reason && *b->exit.reason ? b->exit.reason : "exited before ready")))
                        return -ENOMEM;
        }

        if (span_add_str(root, "tether.boot.id", b->boot_id) < 0 ||
            span_add_str(root, "service.name", st->ctx->service_name) < 0 ||
            span_add_str(root, "host.name", b->hostname) < 0 ||
            span_add_str(root, "os.kernel.release", b->kernel_release) < 0 ||
            span_add_str(root, "tether.agent.version", b->agent_version) < 0)
                return -ENOMEM;
        if (b->clock.valid && span_add_int(root, "tether.clock.error_ns", (int64_t) b->clock.error_ns) < 0)
                return -ENOMEM;
        if (b->ready.set && span_add_str(root, "tether.ready.source", b->ready.source) < 0)
                return -ENOMEM;
        if (b->exit.set) {
                if (span_add_int(root, "process.exit.code", b->exit.code) < 0)
                        return -ENOMEM;
                if (b->exit.signal != 0 && span_add_int(root, "tether.exit.signal", b->exit.signal) < 0)
                        return -ENOMEM;
                if (b->exit.oom_killed && span_add_int(root, "tether.exit.oom_killed", 1) < 0)
                        return -ENOMEM;
        }

        if (b->n_milestones > 0) {
                root->events = calloc(b->n_milestones, sizeof(SpanEvent));
                if (!root->events)
                        return -ENOMEM;
                for (size_t i = 0; i < b->n_milestones; i++) {
                        const BootMilestone *m = &b->milestones[i];
                        SpanEvent *ev = &root->events[root->n_events];
                        *ev = (SpanEvent) {
                                .boottime_ns = m->boottime_ns,
                                .time_unix_ns = to_unix(st, m->boottime_ns),
                        };
                        if (!(ev->name = strdup(m->name)))
                                return -ENOMEM;
                        root->n_events++;
                        for (size_t j = 0; j < m->n_attrs; j++)
                                if (attr_add(&ev->attrs, &ev->n_attrs, m->attrs[j].key, m->attrs[j].value, 0) < 0)
                                        return -ENOMEM;
                }
        }
        return 0;
}

static int add_stage(Stitcher *st, const char *name, uint64_t start, uint64_t end, bool failed) {
        Span *s;
        int r;

        r = add_span(st, name, SPAN_KIND_STAGE, name, 0, name, start, end, &s);
        if (r < 0)
                return r;
        s->has_parent = true;
        memcpy(s->parent_span_id, st->set->spans[0].span_id, 8);
        s->status = failed ? SPAN_STATUS_ERROR : s->open ? SPAN_STATUS_UNSET : SPAN_STATUS_OK;
        return 0;
}

/* The host started the VM (libvirt) before the guest's clock starts: the root starts there, and a host.start
 * span covers the time until the guest's start (firmware, VMM setup). Its boottimes are the guest start, so that
 * it sorts first and holds no guest event. A host start that maps after the guest's start (clock error) is not
 * shown. */
static int add_host_start(Stitcher *st, uint64_t guest_start) {
        const Boot *b = st->boot;
        Span *root = &st->set->spans[0], *s;
        uint64_t guest_start_unix = root->start_unix_ns;
        int r;

        if (b->host_start_unix_ns == 0 || b->host_start_unix_ns >= guest_start_unix)
                return 0;
        root->start_unix_ns = b->host_start_unix_ns; /* earlier than before: the end stays after it */

        r = add_span(st, "host.start", SPAN_KIND_STAGE, "host.start", 0, "host.start", guest_start, guest_start, &s);
        if (r < 0)
                return r;
        root = &st->set->spans[0]; /* add_span may have moved the array */
        s->host_side = true;
        s->start_unix_ns = b->host_start_unix_ns;
        s->end_unix_ns = guest_start_unix;
        s->has_parent = true;
        memcpy(s->parent_span_id, root->span_id, 8);
        s->status = SPAN_STATUS_OK;
        return 0;
}

static int add_phases(Stitcher *st) {
        const Boot *b = st->boot;

        for (size_t i = 0; i < b->n_phases; i++) {
                const BootPhase *p = &b->phases[i];
                _cleanup_free_ char *key = NULL;
                uint64_t ordinal = 0;
                Span *s;
                int r;

                for (size_t j = 0; j < i; j++)
                        if (strcmp(b->phases[j].name, p->name) == 0)
                                ordinal++;
                if (asprintf(&key, "phase:%s", p->name) < 0) {
                        key = NULL;
                        return -ENOMEM;
                }
                r = add_span(
                        st,
                        p->name,
                        SPAN_KIND_PHASE,
                        key,
                        ordinal,
                        p->name,
                        p->start_boottime_ns,
                        p->end_boottime_ns,
                        &s);
                if (r < 0)
                        return r;
                s->has_parent = true;
                memcpy(s->parent_span_id, st->set->spans[0].span_id, 8);
                s->status = p->status == TETHER__PHASE_STATUS__PHASE_STATUS_OK ? SPAN_STATUS_OK :
                        p->status == TETHER__PHASE_STATUS__PHASE_STATUS_ERROR  ? SPAN_STATUS_ERROR :
                                                                                 SPAN_STATUS_UNSET;
                if (p->message && *p->message && !(s->status_message = strdup(p->message)))
                        return -ENOMEM;
                if (span_add_attrs(s, p->attrs, p->n_attrs) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int compare_children(const void *a, const void *b) {
        const Span *x = a, *y = b;

        if (x->start_boottime_ns != y->start_boottime_ns)
                return x->start_boottime_ns < y->start_boottime_ns ? -1 : 1;
        /* Stages before phases at the same start, then by name: a total order keeps output stable. */
        if (x->kind != y->kind)
                return x->kind < y->kind ? -1 : 1;
        return strcmp(x->name, y->name);
}

int stitch_boot(const StitchContext *ctx, const Boot *b, SpanSet **ret) {
        const BootMilestone *kernel_start = boot_find_milestone(b, BOOT_MILESTONE_KERNEL_START);
        const BootMilestone *init_start = boot_find_milestone(b, BOOT_MILESTONE_INIT_START);
        const BootMilestone *workload_exec = boot_find_milestone(b, BOOT_MILESTONE_WORKLOAD_EXEC);
        Stitcher st = { .ctx = ctx, .boot = b };
        uint64_t start = root_start(b, kernel_start, init_start), end = UINT64_MAX; /* open */
        bool failed = false;
        int r;

        if (b->ready.set)
                end = MAX(b->ready.boottime_ns, start);
        else if (b->exit.set) {
                end = MAX(b->exit.boottime_ns, start);
                failed = true;
        }

        st.set = calloc(1, sizeof(SpanSet));
        if (!st.set)
                return -ENOMEM;
        memcpy(st.set->trace_id, b->trace_id, 16);

        r = add_root(&st, start, end);
        if (r < 0)
                goto fail;
        r = add_host_start(&st, start);
        if (r < 0)
                goto fail;

        if (init_start) {
                if (kernel_start) {
                        r = add_stage(&st, "kernel", kernel_start->boottime_ns, init_start->boottime_ns, false);
                        if (r < 0)
                                goto fail;
                }
                r = add_stage(
                        &st,
                        "init",
                        init_start->boottime_ns,
                        workload_exec && workload_exec->boottime_ns >= init_start->boottime_ns ?
                                workload_exec->boottime_ns :
                                end,
                        failed && !workload_exec);
                if (r < 0)
                        goto fail;
        }
        if (workload_exec) {
                r = add_stage(&st, "workload.start", workload_exec->boottime_ns, end, failed);
                if (r < 0)
                        goto fail;
        }
        r = add_phases(&st);
        if (r < 0)
                goto fail;

        if (st.set->n_spans > 2)
                qsort(st.set->spans + 1, st.set->n_spans - 1, sizeof(Span), compare_children);
        *ret = st.set;
        return 0;

fail:
        span_set_free(st.set);
        return r;
}

static bool span_contains(const Span *s, uint64_t t) {
        return t >= s->start_boottime_ns &&
                (s->open || t < s->end_boottime_ns ||
                 (t == s->end_boottime_ns && s->start_boottime_ns == s->end_boottime_ns));
}

const Span *span_set_find_for_time(const SpanSet *s, uint64_t boottime_ns) {
        const Span *best_phase = NULL, *stage = NULL;

        if (!s || s->n_spans == 0)
                return NULL;
        for (size_t i = 1; i < s->n_spans; i++) {
                const Span *x = &s->spans[i];
                if (x->host_side || !span_contains(x, boottime_ns))
                        continue;
                if (x->kind == SPAN_KIND_PHASE) {
                        if (!best_phase || x->start_boottime_ns >= best_phase->start_boottime_ns)
                                best_phase = x;
                } else if (!stage)
                        stage = x;
        }
        return best_phase ?: stage ?: &s->spans[0];
}
