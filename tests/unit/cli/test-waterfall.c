/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "macro.h"
#include "term.h"
#include "waterfall.h"

static json_t *load_fixture(const char *name) {
        char path[4096];
        json_error_t error;

        snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, name);
        json_t *j = json_load_file(path, 0, &error);
        if (!j)
                fail_msg("cannot load %s: %s at line %d", path, error.text, error.line);
        return j;
}

static char *render(const char *fixture, unsigned width, bool ascii) {
        json_auto_t *doc = load_fixture(fixture);
        WaterfallOptions o = {
                .width = width,
                .ascii = ascii,
                .machine_id = "vm-42",
                .boot_id = "3f2c0a1b-9d8e-4c7f-a6b5-112233445566",
                .clock_error_ns = -1,
        };
        char *text = NULL;

        assert_int_equal(waterfall_render(doc, &o, &text), 0);
        assert_non_null(text);
        return text;
}

/* The row whose label (after indentation) is name, or starts with name when prefix: returns a copy of the line
 * and its indentation. */
static char *find_row_full(const char *text, const char *name, bool prefix, size_t *ret_indent) {
        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                size_t indent = strspn(line, " ");
                size_t n = strlen(name);

                if (strchr(line, '|') && (size_t) (strchr(line, '|') - line) < len && len > indent + n &&
                    strncmp(line + indent, name, n) == 0 && (prefix || line[indent + n] == ' ')) {
                        if (ret_indent)
                                *ret_indent = indent;
                        return strndup(line, len);
                }
                line += len + (line[len] == '\n');
        }
        fail_msg("no row for %s in:\n%s", name, text);
        return NULL;
}

static char *find_row(const char *text, const char *name, size_t *ret_indent) {
        return find_row_full(text, name, false, ret_indent);
}

/* |a - b| <= tolerance */
static void assert_near(double a, double b, double tolerance) {
        if (a < b - tolerance - 1e-9 || a > b + tolerance + 1e-9)
                fail_msg("%f is not within %f of %f", a, tolerance, b);
}

/* The bar of a row: the text between its first and last '|'. */
static char *bar_of(const char *row) {
        const char *a = strchr(row, '|'), *b = strrchr(row, '|');
        assert_non_null(a);
        assert_true(b > a);
        return strndup(a + 1, (size_t) (b - a - 1));
}

/* The offset and duration columns of a row: the last two words before the bar. */
static void assert_row_times(const char *row, const char *offset, const char *duration) {
        const char *bar = strchr(row, '|');
        assert_non_null(bar);
        _cleanup_free_ char *head = strndup(row, (size_t) (bar - row));
        char *words[16];
        size_t n = 0;

        for (char *w = strtok(head, " "); w && n < ELEMENTSOF(words); w = strtok(NULL, " "))
                words[n++] = w;
        assert_true(n >= 3);
        assert_string_equal(words[n - 2], offset);
        assert_string_equal(words[n - 1], duration);
}

typedef struct BarShape {
        size_t cells;    /* display cells of the bar */
        size_t eighths;  /* covered, in eighths of a cell */
        size_t first;    /* first covered cell, or cells if none */
        size_t partials; /* eighth-block glyphs */
        size_t full;     /* full cells ('█' or '#') */
} BarShape;

static BarShape shape_of(const char *bar) {
        static const char *const partial[] = { "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589" };
        BarShape s = {};
        bool seen = false;

        for (const char *p = bar; *p;) {
                size_t covered = 0, len = 1;
                if (*p == '#' || strncmp(p, "\u2588", 3) == 0) {
                        covered = 8;
                        len = *p == '#' ? 1 : 3;
                        s.full++;
                } else if (*p == ' ')
                        covered = 0;
                else {
                        bool found = false;
                        for (size_t i = 0; i < ELEMENTSOF(partial); i++)
                                if (strncmp(p, partial[i], 3) == 0) {
                                        covered = i + 1;
                                        len = 3;
                                        found = true;
                                }
                        if (!found)
                                fail_msg("unexpected glyph in bar '%s'", bar);
                        s.partials++;
                }
                if (covered && !seen) {
                        s.first = s.cells;
                        seen = true;
                }
                s.eighths += covered;
                s.cells++;
                p += len;
        }
        if (!seen)
                s.first = s.cells;
        return s;
}

static void test_header_and_events(void **state) {
        _cleanup_free_ char *text = render("boot.json", 120, false);

        /* First line: trace id, machine, short boot id, clock bound from the root's tether.clock.error_ns. */
        const char *header =
                "trace 4bf92f3577b34da6a3ce929d0e0e4736  machine vm-42  boot 3f2c0a1b\u2026  "
                "clock \u00b1120.0\u00b5s\n";
        assert_true(strncmp(text, header, strlen(header)) == 0);

        /* Events by time (the fixture lists mounts.done first), offsets from the trace start. */
        assert_non_null(
                strstr(text,
                       "events: init.start +412.0ms, mounts.done +430.0ms, workload.exec +443.0ms, "
                       "ready +1.210s\n"));

        /* Axis from 0 to the trace length. */
        assert_non_null(strstr(text, "|0 "));
        assert_non_null(strstr(text, " 1.210s|\n"));
}

static void test_offsets_and_durations(void **state) {
        _cleanup_free_ char *text = render("boot.json", 120, false);
        _cleanup_free_ char *root = find_row(text, "machine.boot", NULL);
        _cleanup_free_ char *kernel = find_row(text, "kernel", NULL);
        _cleanup_free_ char *init = find_row(text, "init", NULL);
        _cleanup_free_ char *workload = find_row(text, "workload.start", NULL);
        _cleanup_free_ char *migrate = find_row(text, "db.migrate", NULL);

        assert_row_times(root, "0s", "1.210s");
        assert_row_times(kernel, "0s", "412.0ms");
        assert_row_times(init, "412.0ms", "31.00ms");
        assert_row_times(workload, "443.0ms", "767.0ms");
        assert_row_times(migrate, "500.0ms", "200.0ms");
}

static void test_nesting_and_order(void **state) {
        _cleanup_free_ char *text = render("boot.json", 120, false);
        size_t i_root, i_kernel, i_init, i_workload, i_migrate;
        _cleanup_free_ char *r1 = find_row(text, "machine.boot", &i_root);
        _cleanup_free_ char *r2 = find_row(text, "kernel", &i_kernel);
        _cleanup_free_ char *r3 = find_row(text, "init", &i_init);
        _cleanup_free_ char *r4 = find_row(text, "workload.start", &i_workload);
        _cleanup_free_ char *r5 = find_row(text, "db.migrate", &i_migrate);

        assert_int_equal(i_root, 0);
        assert_int_equal(i_kernel, 2);
        assert_int_equal(i_init, 2);
        assert_int_equal(i_workload, 2);
        assert_int_equal(i_migrate, 4); /* a child of workload.start */

        /* Tree order: db.migrate comes right after its parent although the document lists it before init. */
        const char *p_root = strstr(text, r1), *p_kernel = strstr(text, r2), *p_init = strstr(text, r3);
        const char *p_workload = strstr(text, r4), *p_migrate = strstr(text, r5);
        assert_true(p_root < p_kernel);
        assert_true(p_kernel < p_init);
        assert_true(p_init < p_workload);
        assert_true(p_workload < p_migrate);

        /* The failed span is marked. */
        assert_non_null(strstr(r5, "| \u2717"));
        assert_null(strstr(r4, "\u2717"));
}

static void test_bars_proportional(void **state) {
        _cleanup_free_ char *text = render("boot.json", 140, false);
        const struct {
                const char *name;
                double start, end; /* seconds */
        } expect[] = {
                { "machine.boot", 0, 1.210 },       { "kernel", 0, 0.412 },     { "init", 0.412, 0.443 },
                { "workload.start", 0.443, 1.210 }, { "db.migrate", 0.5, 0.7 },
        };
        size_t width = 0;

        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                _cleanup_free_ char *row = find_row(text, expect[i].name, NULL);
                _cleanup_free_ char *bar = bar_of(row);
                BarShape s = shape_of(bar);

                if (width == 0)
                        width = s.cells;
                assert_int_equal(s.cells, width); /* every bar on the same axis */
                assert_true(width >= 60);         /* most of a 140-column line */

                /* The length is exact to an eighth of a cell; the start is the nearest cell boundary. */
                double len8 = (expect[i].end - expect[i].start) / 1.210 * (double) width * 8;
                double start_cell = expect[i].start / 1.210 * (double) width;
                assert_near((double) s.eighths, len8, 0.5);
                assert_near((double) s.first, start_cell, 0.5);
        }

        _cleanup_free_ char *root = find_row(text, "machine.boot", NULL);
        _cleanup_free_ char *root_bar = bar_of(root);
        BarShape rs = shape_of(root_bar);
        assert_int_equal(rs.full, width); /* the root spans the whole axis */
        assert_int_equal(rs.partials, 0);
}

static void test_bar_partials(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;

        /* 3/16 of two cells: three eighths of the first cell. */
        assert_int_equal(waterfall_bar(0, 3, 16, 2, false, &a), 0);
        assert_string_equal(a, "\u258d ");

        /* Whole timeline: all full blocks. */
        assert_int_equal(waterfall_bar(0, 10, 10, 4, false, &b), 0);
        assert_string_equal(b, "\u2588\u2588\u2588\u2588");

        /* Second half, then 1 cell and 5/8 from the start of cell 1. */
        assert_int_equal(waterfall_bar(5, 10, 10, 4, false, &c), 0);
        assert_string_equal(c, "  \u2588\u2588");
        assert_int_equal(waterfall_bar(8, 21, 32, 4, false, &d), 0);
        assert_string_equal(d, " \u2588\u258b ");

        /* ASCII rounds to whole cells. */
        assert_int_equal(waterfall_bar(8, 21, 32, 4, true, &e), 0);
        assert_string_equal(e, " ## ");
}

static void test_minimum_mark(void **state) {
        _cleanup_free_ char *text = render("tiny-span.json", 100, false);
        _cleanup_free_ char *row = find_row(text, "blink", NULL);
        _cleanup_free_ char *bar = bar_of(row);
        BarShape s = shape_of(bar);

        /* 1 ns of a 10 s trace is far below an eighth of a cell, yet visible: one thin mark in the middle. */
        assert_int_equal(s.eighths, 1);
        assert_int_equal(s.partials, 1);
        assert_near((double) s.first, (double) s.cells / 2, 0.5);
        assert_row_times(row, "5.000s", "1ns");

        /* A zero-length span has nothing to draw. */
        _cleanup_free_ char *instant = find_row(text, "instant", NULL);
        _cleanup_free_ char *instant_bar = bar_of(instant);
        assert_int_equal(shape_of(instant_bar).eighths, 0);

        _cleanup_free_ char *mark = NULL, *ascii_mark = NULL, *at_end = NULL;
        assert_int_equal(waterfall_bar(5, 6, UINT64_C(1000000000), 10, false, &mark), 0);
        assert_string_equal(mark, "\u258f         ");
        assert_int_equal(waterfall_bar(5, 6, UINT64_C(1000000000), 10, true, &ascii_mark), 0);
        assert_string_equal(ascii_mark, "#         ");
        /* Starting at the very end still leaves a mark inside the bar. */
        assert_int_equal(waterfall_bar(999999999, 1000000000, UINT64_C(1000000000), 10, false, &at_end), 0);
        assert_string_equal(at_end, "         \u258f");
}

static void test_open_span(void **state) {
        _cleanup_free_ char *text = render("tiny-span.json", 100, false);
        _cleanup_free_ char *row = find_row(text, "still.running", NULL);
        _cleanup_free_ char *bar = bar_of(row);
        BarShape s = shape_of(bar);

        /* No end yet: drawn to the end of the trace, duration marked with '+'. */
        assert_row_times(row, "8.000s", "2.000s+");
        assert_near((double) s.eighths, (double) s.cells * 8 * 0.2, 0.5);
        assert_near((double) s.first, (double) s.cells * 0.8, 0.5);
        assert_true(s.first * 8 + s.eighths <= s.cells * 8);
}

static void test_ascii(void **state) {
        _cleanup_free_ char *text = render("boot.json", 120, true);

        for (const unsigned char *p = (const unsigned char *) text; *p; p++)
                if (*p >= 0x80)
                        fail_msg("non-ASCII byte 0x%02x in ASCII output:\n%s", *p, text);

        _cleanup_free_ char *root = find_row(text, "machine.boot", NULL);
        _cleanup_free_ char *bar = bar_of(root);
        BarShape s = shape_of(bar);
        assert_int_equal(s.full, s.cells);
        assert_non_null(strchr(bar, '#'));
        assert_non_null(strstr(text, "clock +/-120.0us"));
        assert_non_null(strstr(text, "boot 3f2c0a1b~"));

        _cleanup_free_ char *tiny = render("tiny-span.json", 100, true);
        _cleanup_free_ char *blink = find_row(tiny, "blink", NULL);
        _cleanup_free_ char *blink_bar = bar_of(blink);
        assert_int_equal(shape_of(blink_bar).full, 1); /* the minimum mark in ASCII is one '#' */
}

static void test_narrow_terminal(void **state) {
        _cleanup_free_ char *text = render("boot.json", 45, false);

        /* Every line fits, bars keep at least the minimum width, long names are cut with an ellipsis. */
        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                _cleanup_free_ char *l = strndup(line, len);
                if (display_width(l) > 45)
                        fail_msg("line wider than 45 columns: '%s'", l);
                line += len + (line[len] == '\n');
        }
        _cleanup_free_ char *root = find_row_full(text, "machine.b\u2026", true, NULL);
        _cleanup_free_ char *bar = bar_of(root);
        assert_true(shape_of(bar).cells >= WATERFALL_MIN_BAR);
        assert_int_equal(shape_of(bar).full, shape_of(bar).cells);
        assert_non_null(strstr(text, "\n    db.mi\u2026 ")); /* db.migrate, depth 2, cut */

        /* Narrower than anything sensible: still renders, bars keep their minimum. */
        _cleanup_free_ char *tiny = render("boot.json", 20, false);
        _cleanup_free_ char *tiny_root = find_row_full(tiny, "machi", true, NULL);
        _cleanup_free_ char *tiny_bar = bar_of(tiny_root);
        assert_int_equal(shape_of(tiny_bar).cells, WATERFALL_MIN_BAR);
}

static void test_hostile_names(void **state) {
        json_auto_t *doc = json_pack(
                "{s:s, s:[{s:s, s:s, s:I, s:I}]}",
                "trace_id",
                "t\x1b[2Jx",
                "spans",
                "name",
                "evil\x1b]0;pwned\x07name",
                "span_id",
                "01",
                "start_unix_ns",
                (json_int_t) 10,
                "end_unix_ns",
                (json_int_t) 20);
        WaterfallOptions o = { .width = 80, .boot_id = "\x1b[31mred", .clock_error_ns = 0 };
        _cleanup_free_ char *text = NULL;

        assert_non_null(doc);
        assert_int_equal(waterfall_render(doc, &o, &text), 0);
        assert_null(strchr(text, '\x1b'));
        assert_null(strchr(text, '\x07'));
        assert_non_null(strstr(text, "evil\\x1b]0;pwned\\x07name"));
}

static void test_invalid_documents(void **state) {
        WaterfallOptions o = { .width = 80, .clock_error_ns = -1 };
        char *text = NULL;

        json_auto_t *no_spans = json_pack("{s:s}", "trace_id", "x");
        assert_int_equal(waterfall_render(no_spans, &o, &text), -EINVAL);

        json_auto_t *no_name = json_pack("{s:[{s:I}]}", "spans", "start_unix_ns", (json_int_t) 1);
        assert_int_equal(waterfall_render(no_name, &o, &text), -EINVAL);

        json_auto_t *no_start = json_pack("{s:[{s:s}]}", "spans", "name", "x");
        assert_int_equal(waterfall_render(no_start, &o, &text), -EINVAL);
        assert_null(text);

        json_auto_t *empty = json_pack("{s:s, s:[]}", "trace_id", "abc", "spans");
        assert_int_equal(waterfall_render(empty, &o, &text), 0);
        assert_string_equal(text, "trace abc\n(no spans yet)\n");
        free(text);
}

static void test_parent_cycle(void **state) {
        /* Spans that name each other as parents must not loop forever or vanish. */
        json_auto_t *doc = json_pack(
                "{s:s, s:[{s:s, s:s, s:s, s:I, s:I}, {s:s, s:s, s:s, s:I, s:I}]}",
                "trace_id",
                "c",
                "spans",
                "name",
                "a",
                "span_id",
                "1",
                "parent_span_id",
                "2",
                "start_unix_ns",
                (json_int_t) 0,
                "end_unix_ns",
                (json_int_t) 10,
                "name",
                "b",
                "span_id",
                "2",
                "parent_span_id",
                "1",
                "start_unix_ns",
                (json_int_t) 5,
                "end_unix_ns",
                (json_int_t) 10);
        WaterfallOptions o = { .width = 80, .clock_error_ns = -1 };
        _cleanup_free_ char *text = NULL;

        assert_non_null(doc);
        assert_int_equal(waterfall_render(doc, &o, &text), 0);
        _cleanup_free_ char *a = find_row(text, "a", NULL);
        _cleanup_free_ char *b = find_row(text, "b", NULL);
        assert_non_null(a);
        assert_non_null(b);
}

static void test_deep_chain(void **state) {
        /* A chain of 5000 spans each the parent of the next: rendered without exhausting the stack, every span
         * shown once. */
        json_auto_t *spans = json_array();
        for (int i = 0; i < 5000; i++) {
                char id[32], parent[32], name[32];
                snprintf(id, sizeof(id), "%016x", i + 1);
                snprintf(parent, sizeof(parent), "%016x", i);
                snprintf(name, sizeof(name), "s%d", i);
                json_array_append_new(
                        spans,
                        json_pack(
                                "{s:s, s:s, s:s, s:I, s:I}",
                                "name",
                                name,
                                "span_id",
                                id,
                                "parent_span_id",
                                parent,
                                "start_unix_ns",
                                (json_int_t) i,
                                "end_unix_ns",
                                (json_int_t) 10000));
        }
        json_auto_t *doc = json_pack("{s:s, s:O}", "trace_id", "deep", "spans", spans);
        WaterfallOptions o = { .width = 100, .clock_error_ns = -1 };
        _cleanup_free_ char *text = NULL;

        assert_int_equal(waterfall_render(doc, &o, &text), 0);
        size_t rows = 0;
        for (const char *p = text; (p = strstr(p, "|\n")); p += 2)
                rows++;
        assert_int_equal(rows, 5000 + 1); /* spans plus the axis row */
        _cleanup_free_ char *last = find_row(text, "s4999", NULL);
        assert_non_null(last);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_and_events), cmocka_unit_test(test_offsets_and_durations),
                cmocka_unit_test(test_nesting_and_order), cmocka_unit_test(test_bars_proportional),
                cmocka_unit_test(test_bar_partials),      cmocka_unit_test(test_minimum_mark),
                cmocka_unit_test(test_open_span),         cmocka_unit_test(test_ascii),
                cmocka_unit_test(test_narrow_terminal),   cmocka_unit_test(test_hostile_names),
                cmocka_unit_test(test_invalid_documents), cmocka_unit_test(test_parent_cycle),
                cmocka_unit_test(test_deep_chain),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
