/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "table.h"
#include "term.h"

static void test_locale(void **state) {
        assert_true(locale_is_utf8(NULL, NULL, "en_US.UTF-8"));
        assert_true(locale_is_utf8(NULL, NULL, "C.utf8"));
        assert_true(locale_is_utf8(NULL, NULL, "de_DE.UTF8@euro"));
        assert_true(locale_is_utf8("", "", "en_US.UTF-8")); /* empty is unset */
        assert_true(locale_is_utf8(NULL, "C.UTF-8", "POSIX"));
        assert_false(locale_is_utf8("C", NULL, "en_US.UTF-8")); /* LC_ALL wins */
        assert_false(locale_is_utf8(NULL, NULL, NULL));
        assert_false(locale_is_utf8(NULL, NULL, "C"));
        assert_false(locale_is_utf8(NULL, NULL, "en_US.ISO-8859-1"));
        assert_false(locale_is_utf8(NULL, NULL, "en_US.UTF-16"));
}

static void test_width(void **state) {
        /* fd -1: no terminal to ask, so anything but a sane $COLUMNS gives the default. */
        assert_int_equal(terminal_width("80", -1), 80);
        assert_int_equal(terminal_width("1", -1), 1);
        assert_int_equal(terminal_width(NULL, -1), TERMINAL_WIDTH_DEFAULT);
        assert_int_equal(terminal_width("", -1), TERMINAL_WIDTH_DEFAULT);
        assert_int_equal(terminal_width("0", -1), TERMINAL_WIDTH_DEFAULT);
        assert_int_equal(terminal_width("-5", -1), TERMINAL_WIDTH_DEFAULT);
        assert_int_equal(terminal_width("80x", -1), TERMINAL_WIDTH_DEFAULT);
        assert_int_equal(terminal_width("99999999", -1), TERMINAL_WIDTH_DEFAULT);
}

static void test_display_width(void **state) {
        assert_int_equal(display_width(""), 0);
        assert_int_equal(display_width("abc"), 3);
        assert_int_equal(display_width("12.0\u00b5s"), 6);
        assert_int_equal(display_width("\u2588\u2588\u258f"), 3);
}

static void test_sanitize(void **state) {
        char *s;

        s = terminal_sanitize("a\x1b[31mb\tc\x7f", false, false);
        assert_string_equal(s, "a\\x1b[31mb\\x09c\\x7f");
        free(s);

        s = terminal_sanitize("a\tb", true, false);
        assert_string_equal(s, "a\tb");
        free(s);

        /* C1 CSI (U+009B) acts like ESC [ on some terminals. */
        s = terminal_sanitize(
                "x\xc2\x9b"
                "31my",
                false,
                false);
        assert_string_equal(s, "x\\x9b31my");
        free(s);

        /* Invalid UTF-8 becomes U+FFFD; valid non-ASCII stays unless ASCII is asked for. */
        s = terminal_sanitize("ok\xff\xfe", false, false);
        assert_string_equal(s, "ok\ufffd\ufffd");
        free(s);
        s = terminal_sanitize("caf\u00e9 \u2588", false, false);
        assert_string_equal(s, "caf\u00e9 \u2588");
        free(s);
        s = terminal_sanitize("caf\u00e9 \u2588\xff", false, true);
        assert_string_equal(s, "caf? ??");
        free(s);

        /* Characters that reorder or hide text are shown as escapes, in both modes. */
        s = terminal_sanitize("vm-\u202etxt.exe", false, false);
        assert_string_equal(s, "vm-\\u202etxt.exe");
        free(s);
        s = terminal_sanitize("a\u2066b\u2069c\u200bd\ufeffe\u2028f\u061cg", false, true);
        assert_string_equal(s, "a\\u2066b\\u2069c\\u200bd\\ufeffe\\u2028f\\u061cg");
        free(s);
        s = terminal_sanitize("tag\U000E0041", false, false);
        assert_string_equal(s, "tag\\U000e0041");
        free(s);
        /* Visible neighbours are untouched. */
        s = terminal_sanitize("\u2010\u2030\u2070\uFEFE", false, false);
        assert_string_equal(s, "\u2010\u2030\u2070\uFEFE");
        free(s);
}

static void test_truncate(void **state) {
        char *s;

        s = truncate_to_width("abcdef", 6, false);
        assert_string_equal(s, "abcdef");
        free(s);
        s = truncate_to_width("abcdef", 4, false);
        assert_string_equal(s, "abc\u2026");
        free(s);
        s = truncate_to_width("abcdef", 4, true);
        assert_string_equal(s, "abc~");
        free(s);
        /* Cuts between code points, never inside one. */
        s = truncate_to_width("\u00e9\u00e9\u00e9\u00e9\u00e9", 3, false);
        assert_string_equal(s, "\u00e9\u00e9\u2026");
        free(s);
        s = truncate_to_width("abc", 0, false);
        assert_string_equal(s, "");
        free(s);
}

static void test_table(void **state) {
        static const char *const headers[] = { "NAME", "N", "NOTE" };
        _cleanup_(table_freep) Table *t = table_new(3, headers, false);
        _cleanup_free_ char *text = NULL;

        assert_non_null(t);
        table_set_right_aligned(t, 1, true);
        assert_int_equal(table_add_row(t, (const char *const[]) { "alpha", "1", "x" }), 0);
        assert_int_equal(table_add_row(t, (const char *const[]) { "b\u00e9", "1000", NULL }), 0);
        assert_int_equal(table_add_row(t, (const char *const[]) { "evil\x1b", "7", "y" }), 0);
        assert_int_equal(table_n_rows(t), 3);

        assert_int_equal(table_format(t, &text), 0);
        assert_string_equal(
                text,
                "NAME         N  NOTE\n"
                "alpha        1  x\n"
                "b\u00e9        1000  -\n"
                "evil\\x1b     7  y\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_locale),   cmocka_unit_test(test_width),    cmocka_unit_test(test_display_width),
                cmocka_unit_test(test_sanitize), cmocka_unit_test(test_truncate), cmocka_unit_test(test_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
