/* SPDX-License-Identifier: MIT */
/* Room cli: the tether command line, a client of tetherd's HTTP API only. */
#include "waterfall.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "macro.h"
#include "str-util.h"
#include "term.h"

#define NAME_MIN_WIDTH 6U
#define INDENT_MAX_DEPTH 10U
/* Nesting deeper than this (only a broken or hostile trace has it) is shown flat instead of recursing on. */
#define TREE_MAX_DEPTH 64U

/* U+2588 FULL BLOCK, then U+258F..U+2589: left one-eighth .. seven-eighths blocks. */
static const char *const full_block = "\u2588";
static const char *const eighths[8] = {
        NULL, "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589",
};

typedef struct Span {
        char *name; /* sanitized */
        const char *span_id;
        const char *parent_span_id;
        uint64_t start;
        uint64_t end;
        bool open; /* no end time yet: drawn to the end of the timeline */
        bool error;
        const json_t *json;
        size_t depth;
        int parent; /* index, -1 for a root */
        bool visited;
} Span;

typedef struct Event {
        char *name; /* sanitized */
        uint64_t time;
        size_t index;
} Event;

/* Integer nanoseconds, or a decimal string of them (JSON producers that fear 64-bit integers). */
static bool json_get_u64(const json_t *obj, const char *key, uint64_t *ret) {
        const json_t *v = json_object_get(obj, key);

        if (json_is_integer(v)) {
                if (json_integer_value(v) < 0)
                        return false;
                *ret = (uint64_t) json_integer_value(v);
                return true;
        }
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                char *end;
                if (!*s || *s < '0' || *s > '9')
                        return false;
                errno = 0;
                unsigned long long n = strtoull(s, &end, 10);
                if (errno != 0 || *end != '\0')
                        return false;
                *ret = n;
                return true;
        }
        return false;
}

static const char *json_get_string(const json_t *obj, const char *key) {
        const json_t *v = json_object_get(obj, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

int waterfall_bar(uint64_t start, uint64_t end, uint64_t total, unsigned width, bool ascii, char **ret) {
        /* Each cell holds at most one 3-byte glyph. */
        char *buf = malloc((size_t) width * 3 + 1);
        if (!buf)
                return -ENOMEM;

        size_t first = 0, full = 0, eighth = 0;
        if (width > 0 && total > 0 && end > start) {
                uint64_t cells8 = (uint64_t) width * 8;
                end = MIN(end, total);
                start = MIN(start, end);

                /* Blocks can only be partial on their right side: the start goes to the nearest cell boundary
                 * (off by at most half a cell), the length is kept to an eighth of a cell. */
                uint64_t start8 = (uint64_t) (((unsigned __int128) start * cells8 + total / 2) / total);
                uint64_t len8 = (uint64_t) (((unsigned __int128) (end - start) * cells8 + total / 2) / total);
                len8 = MAX(len8, (uint64_t) 1); /* the thinnest mark: a real span is never invisible */
                first = (start8 + 4) / 8;
                if (first * 8 + len8 > cells8) {
                        /* Rounding pushed the end past the axis: move left rather than cut the bar. */
                        len8 = MIN(len8, cells8);
                        first = (cells8 - len8) / 8;
                }

                if (ascii) {
                        full = MAX((len8 + 4) / 8, (uint64_t) 1);
                        full = MIN(full, (size_t) width - first);
                } else {
                        full = len8 / 8;
                        eighth = len8 % 8;
                }
        }

        char *p = buf;
        size_t cell = 0;
        for (; cell < first; cell++)
                *p++ = ' ';
        for (size_t i = 0; i < full; i++, cell++)
                p = stpcpy(p, ascii ? "#" : full_block);
        if (eighth) {
                p = stpcpy(p, eighths[eighth]);
                cell++;
        }
        for (; cell < width; cell++)
                *p++ = ' ';
        *p = '\0';

        *ret = buf;
        return 0;
}

static int find_span(const Span *spans, size_t n, const char *id) {
        if (!id || !*id)
                return -1;
        for (size_t i = 0; i < n; i++)
                if (spans[i].span_id && strcmp(spans[i].span_id, id) == 0)
                        return (int) i;
        return -1;
}

/* Appends i and its descendants (children ordered by start) to order. Spans already placed are skipped, which
 * also breaks parent cycles; below TREE_MAX_DEPTH children are left for the caller to place as roots. */
static void place_subtree(
        Span *spans, size_t n, const size_t *by_start, size_t i, size_t depth, size_t *order, size_t *n_order) {
        spans[i].visited = true;
        spans[i].depth = depth;
        order[(*n_order)++] = i;
        if (depth >= TREE_MAX_DEPTH)
                return;

        for (size_t k = 0; k < n; k++) {
                size_t j = by_start[k];
                if (!spans[j].visited && spans[j].parent == (int) i)
                        place_subtree(spans, n, by_start, j, depth + 1, order, n_order);
        }
}

static int compare_by_start(const void *a, const void *b, void *userdata) {
        const Span *spans = userdata;
        size_t i = *(const size_t *) a, j = *(const size_t *) b;

        if (spans[i].start != spans[j].start)
                return spans[i].start < spans[j].start ? -1 : 1;
        return i < j ? -1 : i > j;
}

static int compare_events(const void *a, const void *b) {
        const Event *x = a, *y = b;

        if (x->time != y->time)
                return x->time < y->time ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/* Writes parts joined by sep (blank space), breaking the line instead of writing sep where the next part
 * would cross width; continuation lines start with indent spaces. */
static void write_wrapped(FILE *f, char *const *parts, size_t n, const char *sep, size_t indent, unsigned width) {
        size_t col = 0, sep_width = display_width(sep);

        for (size_t i = 0; i < n; i++) {
                size_t w = display_width(parts[i]);
                if (i > 0) {
                        if (col + sep_width + w > width && col > indent) {
                                fprintf(f, "\n%*s", (int) indent, "");
                                col = indent;
                        } else {
                                fputs(sep, f);
                                col += sep_width;
                        }
                }
                fputs(parts[i], f);
                col += w;
        }
        fputc('\n', f);
}

typedef struct EventList {
        Event *events;
        size_t n_events;
        char **parts;
        size_t n_parts;
} EventList;

static void event_list_done(EventList *l) {
        for (size_t i = 0; i < l->n_events; i++)
                free(l->events[i].name);
        for (size_t i = 0; i < l->n_parts; i++)
                free(l->parts[i]);
        free(l->events);
        free(l->parts);
}

/* "events: init.start +412.0ms, mounts.done +430.0ms, ...": the root's span events (the boot milestones) by
 * time, with offsets from the start of the trace. */
static int render_events(const Span *root, uint64_t t0, const WaterfallOptions *o, FILE *f) {
        const json_t *jevents = json_object_get(root->json, "events");
        size_t n = json_is_array(jevents) ? json_array_size(jevents) : 0;
        if (n == 0)
                return 0;

        _cleanup_(event_list_done) EventList l = {
                .events = calloc(n, sizeof(Event)),
                .parts = calloc(n + 1, sizeof(char *)),
        };
        if (!l.events || !l.parts)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                const json_t *e = json_array_get(jevents, i);
                const char *name = json_get_string(e, "name");
                uint64_t t;

                if (!name || !json_get_u64(e, "time_unix_ns", &t))
                        continue;
                char *safe = terminal_sanitize(name, false, o->ascii);
                if (!safe)
                        return -ENOMEM;
                l.events[l.n_events++] = (Event) { .name = safe, .time = t, .index = i };
        }
        if (l.n_events == 0)
                return 0;
        qsort(l.events, l.n_events, sizeof(Event), compare_events);

        l.parts[l.n_parts] = strdup("events:");
        if (!l.parts[l.n_parts])
                return -ENOMEM;
        l.n_parts++;

        for (size_t i = 0; i < l.n_events; i++) {
                const Event *e = &l.events[i];
                char d[DURATION_MAX];
                int64_t rel = e->time >= t0 ? (int64_t) MIN(e->time - t0, (uint64_t) INT64_MAX) :
                                              -(int64_t) MIN(t0 - e->time, (uint64_t) INT64_MAX);

                l.parts[l.n_parts] = str_printf(
                        "%s %s%s", e->name, format_offset(rel, true, o->ascii, d), i + 1 < l.n_events ? "," : "");
                if (!l.parts[l.n_parts])
                        return -ENOMEM;
                l.n_parts++;
        }

        write_wrapped(f, l.parts, l.n_parts, " ", 8, o->width);
        return 0;
}

static void spans_free(Span *spans, size_t n) {
        for (size_t i = 0; spans && i < n; i++)
                free(spans[i].name);
        free(spans);
}

static char *pad_right(const char *s, size_t width, bool ascii) {
        _cleanup_free_ char *cut = truncate_to_width(s, width, ascii);
        if (!cut)
                return NULL;

        size_t w = display_width(cut);
        char *out = malloc(strlen(cut) + (width - w) + 1);
        if (!out)
                return NULL;
        sprintf(out, "%s%*s", cut, (int) (width - w), "");
        return out;
}

static int render(Span *spans, size_t n, const WaterfallOptions *o, const char *trace_id, FILE *f) {
        _cleanup_free_ size_t *by_start = calloc(MAX(n, (size_t) 1), sizeof(size_t));
        _cleanup_free_ size_t *order = calloc(MAX(n, (size_t) 1), sizeof(size_t));
        if (!by_start || !order)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                by_start[i] = i;
                spans[i].parent = find_span(spans, n, spans[i].parent_span_id);
                if (spans[i].parent == (int) i)
                        spans[i].parent = -1;
        }
        qsort_r(by_start, n, sizeof(size_t), compare_by_start, spans);

        /* Roots in document order (the API puts the boot span first); then anything stuck in a parent cycle. */
        size_t n_order = 0;
        for (size_t i = 0; i < n; i++)
                if (spans[i].parent < 0 && !spans[i].visited)
                        place_subtree(spans, n, by_start, i, 0, order, &n_order);
        for (size_t k = 0; k < n; k++)
                if (!spans[by_start[k]].visited)
                        place_subtree(spans, n, by_start, by_start[k], 0, order, &n_order);

        uint64_t t0 = UINT64_MAX, t_end = 0;
        for (size_t i = 0; i < n; i++) {
                t0 = MIN(t0, spans[i].start);
                t_end = MAX(t_end, spans[i].open ? spans[i].start : spans[i].end);
        }
        if (n == 0)
                t0 = 0;
        for (size_t i = 0; i < n; i++)
                if (spans[i].open)
                        spans[i].end = t_end;
        uint64_t total = t_end - t0;

        const Span *root = n > 0 ? &spans[order[0]] : NULL;

        /* Header: trace id, machine, boot, clock error bound. */
        char *header[4];
        size_t n_header = 0;
        _cleanup_free_ char *h_trace = NULL, *h_machine = NULL, *h_boot = NULL, *h_clock = NULL;
        h_trace = str_printf("trace %s", trace_id);
        if (!h_trace)
                return -ENOMEM;
        header[n_header++] = h_trace;
        if (o->machine_id) {
                _cleanup_free_ char *machine = terminal_sanitize(o->machine_id, false, o->ascii);
                h_machine = machine ? str_printf("machine %s", machine) : NULL;
                if (!h_machine)
                        return -ENOMEM;
                header[n_header++] = h_machine;
        }
        if (o->boot_id) {
                /* The guest names its boot: sanitize, and eight characters are enough to tell boots apart. */
                _cleanup_free_ char *boot = terminal_sanitize(o->boot_id, false, o->ascii);
                _cleanup_free_ char *short_boot = boot ? truncate_to_width(boot, 9, o->ascii) : NULL;
                h_boot = short_boot ? str_printf("boot %s", short_boot) : NULL;
                if (!h_boot)
                        return -ENOMEM;
                header[n_header++] = h_boot;
        }
        uint64_t clock_error;
        bool have_clock = o->clock_error_ns >= 0;
        clock_error = have_clock ? (uint64_t) o->clock_error_ns : 0;
        if (!have_clock && root)
                have_clock = json_get_u64(
                        json_object_get(root->json, "attributes"), "tether.clock.error_ns", &clock_error);
        if (have_clock) {
                char d[DURATION_MAX];
                h_clock = str_printf(
                        "clock %s%s", o->ascii ? "+/-" : "\u00b1", format_duration(clock_error, o->ascii, d));
                if (!h_clock)
                        return -ENOMEM;
                header[n_header++] = h_clock;
        }
        write_wrapped(f, header, n_header, "  ", 2, o->width);

        if (n == 0) {
                fputs("(no spans yet)\n", f);
                return 0;
        }

        /* Column widths. */
        bool any_error = false;
        size_t w_name = display_width("span"), w_off = strlen("offset"), w_dur = strlen("duration");
        for (size_t i = 0; i < n; i++) {
                char d[DURATION_MAX];
                size_t indent = 2 * MIN(spans[i].depth, (size_t) INDENT_MAX_DEPTH);
                w_name = MAX(w_name, indent + display_width(spans[i].name));
                w_off = MAX(w_off, display_width(format_duration(spans[i].start - t0, o->ascii, d)));
                w_dur = MAX(
                        w_dur,
                        display_width(format_duration(spans[i].end - spans[i].start, o->ascii, d)) +
                                (spans[i].open ? 1 : 0));
                any_error = any_error || spans[i].error;
        }
        w_name = MIN(w_name, MAX((size_t) 12, (size_t) o->width * 2 / 5));

        size_t status_w = any_error ? 2 : 0;
        size_t fixed = w_name + 2 + w_off + 2 + w_dur + 2 + 2 + status_w;
        if (fixed + WATERFALL_MIN_BAR > o->width) {
                size_t deficit = fixed + WATERFALL_MIN_BAR - o->width;
                size_t shrunk = w_name > deficit ? w_name - deficit : 0;
                shrunk = MAX(shrunk, (size_t) NAME_MIN_WIDTH);
                fixed -= w_name - MIN(w_name, shrunk);
                w_name = MIN(w_name, shrunk);
        }
        unsigned bar_w = o->width > fixed ? (unsigned) (o->width - fixed) : 0;
        bar_w = MAX(bar_w, WATERFALL_MIN_BAR);

        /* Axis: "0" at the left edge, the trace length at the right. */
        char total_s[DURATION_MAX];
        format_duration(total, o->ascii, total_s);
        size_t total_w = display_width(total_s);
        _cleanup_free_ char *name_head = pad_right("span", w_name, o->ascii);
        if (!name_head)
                return -ENOMEM;
        fprintf(f, "%s  %*s  %*s  |", name_head, (int) w_off, "offset", (int) w_dur, "duration");
        if (bar_w >= total_w + 2)
                fprintf(f, "0%*s%s", (int) (bar_w - 1 - total_w), "", total_s);
        else
                fprintf(f, "%*s", (int) bar_w, "");
        fputs("|\n", f);

        for (size_t k = 0; k < n; k++) {
                const Span *s = &spans[order[k]];
                char off[DURATION_MAX], dur[DURATION_MAX + 1];
                size_t indent = 2 * MIN(s->depth, (size_t) INDENT_MAX_DEPTH);

                _cleanup_free_ char *label = NULL, *cell = NULL, *bar = NULL;
                label = str_printf("%*s%s", (int) indent, "", s->name);
                cell = label ? pad_right(label, w_name, o->ascii) : NULL;
                if (!cell)
                        return -ENOMEM;

                format_duration(s->start - t0, o->ascii, off);
                format_duration(s->end - s->start, o->ascii, dur);
                if (s->open)
                        strcat(dur, "+");

                int r = waterfall_bar(s->start - t0, s->end - t0, total, bar_w, o->ascii, &bar);
                if (r < 0)
                        return r;

                /* printf pads by bytes: pad by hand for the multi-byte "µs". */
                fprintf(f,
                        "%s  %*s%s  %*s%s  |%s|",
                        cell,
                        (int) (w_off - display_width(off)),
                        "",
                        off,
                        (int) (w_dur - display_width(dur)),
                        "",
                        dur,
                        bar);
                if (s->error)
                        fputs(o->ascii ? " !" : " \u2717", f);
                fputc('\n', f);
        }

        return render_events(root, t0, o, f);
}

int waterfall_render(const json_t *doc, const WaterfallOptions *o, char **ret) {
        const json_t *jspans = json_object_get(doc, "spans");
        if (!json_is_array(jspans))
                return -EINVAL;

        size_t n = json_array_size(jspans);
        Span *spans = calloc(MAX(n, (size_t) 1), sizeof(Span));
        if (!spans)
                return -ENOMEM;

        int r = 0;
        for (size_t i = 0; i < n; i++) {
                const json_t *js = json_array_get(jspans, i);
                const char *name = json_get_string(js, "name");
                Span *s = &spans[i];

                if (!name || !json_get_u64(js, "start_unix_ns", &s->start)) {
                        spans_free(spans, i);
                        return -EINVAL;
                }
                s->name = terminal_sanitize(name, false, o->ascii);
                if (!s->name) {
                        spans_free(spans, i);
                        return -ENOMEM;
                }
                s->json = js;
                s->span_id = json_get_string(js, "span_id");
                s->parent_span_id = json_get_string(js, "parent_span_id");
                s->open = !json_get_u64(js, "end_unix_ns", &s->end) || s->end == 0;
                if (!s->open && s->end < s->start)
                        s->end = s->start; /* a span that ends before it starts: show it as an instant */
                const char *status = json_get_string(js, "status");
                s->error = status && strcmp(status, "error") == 0;
        }

        const char *trace_id = json_get_string(doc, "trace_id");
        _cleanup_free_ char *trace_id_safe = terminal_sanitize(trace_id ? trace_id : "-", false, o->ascii);
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = trace_id_safe ? open_memstream(&buf, &size) : NULL;
        if (!f) {
                spans_free(spans, n);
                return -ENOMEM;
        }

        r = render(spans, n, o, trace_id_safe, f);
        spans_free(spans, n);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;

        *ret = TAKE_PTR(buf);
        return 0;
}
