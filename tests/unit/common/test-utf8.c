/* SPDX-License-Identifier: MIT */
/* Strict UTF-8 validation and sanitising, checked by example and against an independent reference decoder. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "utf8.h"

#define REPLACEMENT "\xef\xbf\xbd"

typedef struct Sample {
        const char *s;
        size_t n;
} Sample;

#define SAMPLE(lit) \
        { lit, sizeof(lit) - 1 }

static void test_valid(void **state) {
        static const Sample valid[] = {
                SAMPLE(""),
                SAMPLE("plain ascii ~\x7f"),
                SAMPLE("\xc2\x80"),          /* U+0080, smallest 2-byte */
                SAMPLE("\xc3\xa9t\xc3\xa9"), /* été */
                SAMPLE("\xdf\xbf"),          /* U+07FF */
                SAMPLE("\xe0\xa0\x80"),      /* U+0800, smallest 3-byte */
                SAMPLE("\xe2\x82\xac"),      /* € */
                SAMPLE("\xed\x9f\xbf"),      /* U+D7FF, just below the surrogates */
                SAMPLE("\xee\x80\x80"),      /* U+E000, just above */
                SAMPLE("\xef\xbf\xbf"),      /* U+FFFF */
                SAMPLE("\xf0\x90\x80\x80"),  /* U+10000, smallest 4-byte */
                SAMPLE("\xf0\x9d\x84\x9e"),  /* 𝄞 */
                SAMPLE("\xf4\x8f\xbf\xbf"),  /* U+10FFFF, the last code point */
        };

        for (size_t i = 0; i < ELEMENTSOF(valid); i++)
                assert_true(utf8_is_valid(valid[i].s, valid[i].n));
}

static void test_invalid(void **state) {
        static const Sample invalid[] = {
                SAMPLE("\xc0\x80"),                 /* overlong NUL */
                SAMPLE("\xc1\xbf"),                 /* overlong U+007F */
                SAMPLE("\xe0\x80\x80"),             /* overlong 3-byte */
                SAMPLE("\xe0\x9f\xbf"),             /* overlong U+07FF */
                SAMPLE("\xf0\x80\x80\x80"),         /* overlong 4-byte */
                SAMPLE("\xf0\x8f\xbf\xbf"),         /* overlong U+FFFF */
                SAMPLE("\xed\xa0\x80"),             /* U+D800, first surrogate */
                SAMPLE("\xed\xbf\xbf"),             /* U+DFFF, last surrogate */
                SAMPLE("\xed\xa0\xbd\xed\xb2\xa9"), /* CESU-8 surrogate pair */
                SAMPLE("\xf4\x90\x80\x80"),         /* U+110000 */
                SAMPLE("\xf5\x80\x80\x80"),         /* lead byte beyond U+10FFFF */
                SAMPLE("\xf8\x88\x80\x80\x80"),     /* 5-byte form */
                SAMPLE("\xfe"),
                SAMPLE("\xff"),
                SAMPLE("\x80"), /* lone continuation byte */
                SAMPLE("a\xbf"),
                SAMPLE("\xc3"), /* truncated at the end */
                SAMPLE("\xe2\x82"),
                SAMPLE("\xf0\x9d\x84"),
                SAMPLE("\xe2\x82z"), /* truncated in the middle */
                SAMPLE("\xf0\x9dyz"),
                SAMPLE("\xc3\xc3\xa9"), /* a lead byte where a continuation belongs */
                SAMPLE("a\0b"),         /* NUL */
                SAMPLE("\0"),
        };

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                if (utf8_is_valid(invalid[i].s, invalid[i].n))
                        fail_msg("sample %zu accepted", i);
        }
}

/* The length bounds what is read: a sequence cut by n is invalid even if the bytes after n would finish it. */
static void test_length_respected(void **state) {
        assert_true(utf8_is_valid("\xc3\xa9", 2));
        assert_false(utf8_is_valid("\xc3\xa9", 1));
        assert_true(utf8_is_valid("\xf0\x9d\x84\x9e", 4));
        assert_false(utf8_is_valid("\xf0\x9d\x84\x9e", 3));
        assert_true(utf8_is_valid("\xe2\x82\xac", 3));
        assert_false(utf8_is_valid("\xe2\x82\xac", 2));
        assert_false(utf8_is_valid("\xe2\x82\xac", 1));
        assert_true(utf8_is_valid("ab\0cd", 2));
        assert_true(utf8_is_valid(NULL, 0));
}

/* Independent decoder following RFC 3629 section 4 literally: decode by the bit pattern, then reject what
 * the RFC rules out (overlong forms, surrogates, above U+10FFFF) and NUL. */
static bool reference_valid(const uint8_t *s, size_t n) {
        size_t i = 0;

        while (i < n) {
                uint32_t cp;
                size_t len;

                if (s[i] < 0x80)
                        len = 1, cp = s[i];
                else if ((s[i] & 0xE0) == 0xC0)
                        len = 2, cp = s[i] & 0x1F;
                else if ((s[i] & 0xF0) == 0xE0)
                        len = 3, cp = s[i] & 0x0F;
                else if ((s[i] & 0xF8) == 0xF0)
                        len = 4, cp = s[i] & 0x07;
                else
                        return false;
                if (i + len > n)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xC0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3F);
                }
                static const uint32_t min_for_len[] = { 0, 0, 0x80, 0x800, 0x10000 };
                if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
                        return false;
                i += len;
        }
        return true;
}

static void check_against_reference(const uint8_t *s, size_t n) {
        if (utf8_is_valid((const char *) s, n) != reference_valid(s, n))
                fail_msg(
                        "disagreement on %zu bytes %02x %02x %02x %02x",
                        n,
                        s[0],
                        n > 1 ? s[1] : 0,
                        n > 2 ? s[2] : 0,
                        n > 3 ? s[3] : 0);
}

/* Every 1- and 2-byte string, every 3-byte string with a multi-byte lead, and the 4-byte leads with every
 * second byte and boundary values for the rest. */
static void test_against_reference(void **state) {
        static const uint8_t tails[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
        uint8_t b[4];

        for (unsigned a = 0; a < 256; a++) {
                b[0] = (uint8_t) a;
                check_against_reference(b, 1);
                for (unsigned c = 0; c < 256; c++) {
                        b[1] = (uint8_t) c;
                        check_against_reference(b, 2);
                }
        }
        for (unsigned a = 0xC0; a < 0x100; a++)
                for (unsigned c = 0; c < 256; c++)
                        for (unsigned d = 0; d < 256; d++) {
                                b[0] = (uint8_t) a, b[1] = (uint8_t) c, b[2] = (uint8_t) d;
                                check_against_reference(b, 3);
                        }
        for (unsigned a = 0xF0; a < 0x100; a++)
                for (unsigned c = 0; c < 256; c++)
                        for (size_t i = 0; i < ELEMENTSOF(tails); i++)
                                for (size_t j = 0; j < ELEMENTSOF(tails); j++) {
                                        b[0] = (uint8_t) a, b[1] = (uint8_t) c, b[2] = tails[i], b[3] = tails[j];
                                        check_against_reference(b, 4);
                                }
}

static void check_sanitize(const char *in, size_t n, const char *expected, size_t expected_replaced) {
        size_t replaced = SIZE_MAX;
        _cleanup_free_ char *out = utf8_sanitize(in, n, &replaced);

        assert_non_null(out);
        assert_string_equal(out, expected);
        assert_int_equal(replaced, expected_replaced);
        assert_true(utf8_is_valid(out, strlen(out)));
}

#define CHECK_SANITIZE(in, expected, replaced) check_sanitize(in, sizeof(in) - 1, expected, replaced)

/* Each invalid byte becomes one U+FFFD; every valid byte around it survives unchanged. */
static void test_sanitize(void **state) {
        CHECK_SANITIZE("", "", 0);
        CHECK_SANITIZE("valid \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e", "valid \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e", 0);
        CHECK_SANITIZE("a\xffz", "a" REPLACEMENT "z", 1);
        CHECK_SANITIZE("a\0b", "a" REPLACEMENT "b", 1);
        CHECK_SANITIZE("\xc0\x80", REPLACEMENT REPLACEMENT, 2);
        CHECK_SANITIZE("\xed\xa0\x80x", REPLACEMENT REPLACEMENT REPLACEMENT "x", 3);
        CHECK_SANITIZE("\xe2\x82z\xe2\x82\xac", REPLACEMENT REPLACEMENT "z\xe2\x82\xac", 2);
        CHECK_SANITIZE("ok\xf0\x9d\x84", "ok" REPLACEMENT REPLACEMENT REPLACEMENT, 3);
        CHECK_SANITIZE("\xc3\xc3\xa9", REPLACEMENT "\xc3\xa9", 1);
        CHECK_SANITIZE("\xf4\x90\x80\x80", REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT, 4);
}

static void test_sanitize_optional_count(void **state) {
        _cleanup_free_ char *out = utf8_sanitize("x\x80", 2, NULL);

        assert_non_null(out);
        assert_string_equal(out, "x" REPLACEMENT);
}

/* Sanitising every byte value alone agrees with validation: unchanged iff valid. */
static void test_sanitize_each_byte(void **state) {
        for (unsigned a = 0; a < 256; a++) {
                char in = (char) a;
                size_t replaced;
                _cleanup_free_ char *out = utf8_sanitize(&in, 1, &replaced);

                assert_non_null(out);
                if (utf8_is_valid(&in, 1)) {
                        assert_int_equal(replaced, 0);
                        assert_int_equal(strlen(out), 1);
                        assert_int_equal((unsigned char) out[0], a);
                } else {
                        assert_int_equal(replaced, 1);
                        assert_string_equal(out, REPLACEMENT);
                }
        }
}

/* Cut on a character boundary: a character that does not fit goes whole. */
static void test_truncate(void **state) {
        static const struct {
                const char *in;
                size_t max;
                const char *out;
        } cases[] = {
                { "abc", 5, "abc" },
                { "abc", 3, "abc" },
                { "abc", 2, "ab" },
                { "abc", 0, "" },
                { "a\xc3\xa9", 2, "a" },
                { "a\xc3\xa9", 3, "a\xc3\xa9" },
                { "\xe2\x82\xac\xe2\x82\xac", 5, "\xe2\x82\xac" },
                { "\xf0\x9d\x84\x9e", 3, "" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = strdup(cases[i].in);

                assert_non_null(s);
                utf8_truncate(s, cases[i].max);
                assert_string_equal(s, cases[i].out);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_length_respected),
                cmocka_unit_test(test_against_reference),
                cmocka_unit_test(test_sanitize),
                cmocka_unit_test(test_sanitize_optional_count),
                cmocka_unit_test(test_sanitize_each_byte),
                cmocka_unit_test(test_truncate),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
