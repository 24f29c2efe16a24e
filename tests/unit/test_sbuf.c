/* test_sbuf.c -- JSON string escaping, base64 and time formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "sbuf.h"

static void check_json(const char *in, size_t n, const char *want, int want_replaced) {
    sbuf b;
    sbuf_init(&b);
    int replaced = sbuf_json_str(&b, in, n);
    assert_string_equal(b.data, want);
    assert_int_equal(replaced, want_replaced);
    sbuf_free(&b);
}

static void test_json_plain_and_escapes(void **state) {
    (void)state;
    check_json("Newchannel", 10, "\"Newchannel\"", 0);
    check_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"", 0);
    check_json("x\r\ny\t", 5, "\"x\\u000d\\u000ay\\u0009\"", 0);
    check_json("", 0, "\"\"", 0);
}

static void test_json_utf8(void **state) {
    (void)state;
    check_json("J\xc3\xbcrgen \xe2\x82\xac", 11, "\"J\xc3\xbcrgen \xe2\x82\xac\"", 0);
    /* Invalid: lone continuation byte, overlong form, truncated sequence. */
    check_json("a\x80z", 3, "\"a\\ufffdz\"", 1);
    check_json("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"", 1);
    check_json("\xe2\x82", 2, "\"\\ufffd\\ufffd\"", 1);
    /* NUL inside the value is kept as an escape, not a terminator. */
    check_json("a\0b", 3, "\"a\\u0000b\"", 0);
}

static void test_base64(void **state) {
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        sbuf b;
        sbuf_init(&b);
        sbuf_base64(&b, (const unsigned char *)in[i], strlen(in[i]));
        assert_string_equal(b.len ? b.data : "", out[i]);
        sbuf_free(&b);
    }
}

static void test_time(void **state) {
    (void)state;
    sbuf b;
    sbuf_init(&b);
    sbuf_json_time(&b, 1795670259.396093);
    assert_string_equal(b.data, "\"2026-11-26T05:17:39.396093Z\"");
    sbuf_reset(&b);
    sbuf_json_time(&b, 1795670259.9999996);
    assert_string_equal(b.data, "\"2026-11-26T05:17:40.000000Z\"");
    sbuf_free(&b);
}

static void test_growth(void **state) {
    (void)state;
    sbuf b;
    sbuf_init(&b);
    for (int i = 0; i < 10000; i++) sbuf_printf(&b, "%d,", i);
    assert_true(b.len > 40000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data, "0,1,2,", 6);
    sbuf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_plain_and_escapes), cmocka_unit_test(test_json_utf8),
        cmocka_unit_test(test_base64), cmocka_unit_test(test_time), cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
