/* test_log.c -- log_safe(): outside text escaped onto one line of valid
 * UTF-8 and cut between characters (lib/log.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "log.h"

static void check(const char *in, size_t n, size_t outsz, const char *want) {
    char out[512];
    assert_true(outsz <= sizeof(out));
    assert_ptr_equal(log_safe(out, outsz, in, n), out);
    assert_string_equal(out, want);
    assert_true(strlen(out) < outsz);
}

static void test_plain_text_is_kept(void **state) {
    (void)state;
    check("originate", 9, 128, "originate");
    check("J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\x9e", 16, 128, "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\x9e");
    check("", 0, 128, "");
    check(NULL, 0, 128, "(none)");
    assert_string_equal(log_str("a b"), "a b");
}

static void test_one_line(void **state) {
    (void)state;
    /* A forged log line, a terminal escape, a backslash that would make
     * the escapes ambiguous. */
    const char *forged = "x\n2026-12-05T07:00:00.000Z callbus-gateway error: forged";
    check(forged, strlen(forged), 128, "x\\n2026-12-05T07:00:00.000Z callbus-gateway error: forged");
    check("a\r\tb\x1b[2Jc\x7f\\", 11, 128, "a\\r\\tb\\x1b[2Jc\\x7f\\\\");
    check("a\0b", 3, 128, "a\\x00b");
    /* C1 control (U+009B, CSI), line separator, right-to-left override. */
    check("\xc2\x9b" "1m \xe2\x80\xa8 \xe2\x80\xae", 12, 128, "\\u009b1m \\u2028 \\u202e");
}

static void test_invalid_utf8_escaped(void **state) {
    (void)state;
    check("a\x80z", 3, 128, "a\\x80z");
    check("\xc0\xaf", 2, 128, "\\xc0\\xaf");                  /* overlong '/' */
    check("\xed\xa0\x80", 3, 128, "\\xed\\xa0\\x80");          /* a surrogate */
    check("ab\xe2\x82", 4, 128, "ab\\xe2\\x82");              /* cut short */
}

static void test_cut_between_characters(void **state) {
    (void)state;
    /* 39 ASCII bytes then a 2-byte character: a cut at 40 bytes (the old
     * "%.40s") would split it. */
    char in[64];
    memset(in, 'k', 39);
    memcpy(in + 39, "\xc3\xa9wxyz", 6);
    check(in, 45, 45, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\xc3\xa9...");
    check(in, 45, 44, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...");
    check(in, 45, 42, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...");
    check(in, 45, 43, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...");
    check(in, 45, 46, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\xc3\xa9wxyz");   /* fits exactly */
    /* An escape is never cut either. */
    check("abcdef\n", 7, 8, "abcd...");
    check("abcdef\n", 7, 9, "abcdef\\n");
    check("abcd", 4, 4, "...");
    check("abc", 3, 3, "");
    check("abc", 3, 1, "");
    /* Long input: bounded. */
    char big[4000];
    memset(big, '\n', sizeof(big));
    char out[LOG_SAFE_LEN];
    log_safe(out, sizeof(out), big, sizeof(big));
    assert_int_equal(strlen(out), 2 * 62 + 3);
}

/* Whatever the input, the result is valid UTF-8 jansson takes, on one line. */
static void test_result_always_valid_json_string(void **state) {
    (void)state;
    unsigned char in[300];
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 300);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (unsigned char)(seed >> 16);
        }
        char out[97];
        log_safe(out, sizeof(out) - (size_t)(round % 40), (const char *)in, n);
        json_t *j = json_string(out);
        assert_non_null(j);
        json_decref(j);
        assert_null(strchr(out, '\n'));
        assert_null(strchr(out, '\r'));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_is_kept), cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_invalid_utf8_escaped), cmocka_unit_test(test_cut_between_characters),
        cmocka_unit_test(test_result_always_valid_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
