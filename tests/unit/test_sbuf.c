/* test_sbuf.c -- JSON string escaping, base64 and time formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
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

/* The escaper as it was before its fast paths (one byte at a time): the
 * fast one must write the same bytes and say the same about replacements. */
static int ref_json_str(sbuf *b, const unsigned char *p, size_t n) {
    int replaced = 0;
    sbuf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            sbuf_putc(b, '\\');
            sbuf_putc(b, (char)c);
            i++;
        } else if (c < 0x20) {
            sbuf_printf(b, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            sbuf_putc(b, (char)c);
            i++;
        } else {
            size_t len = utf8_seq_len(p + i, n - i);
            if (len) {
                sbuf_append(b, p + i, len);
                i += len;
            } else {
                sbuf_puts(b, "\\ufffd");
                replaced = 1;
                i++;
            }
        }
    }
    sbuf_putc(b, '"');
    return replaced;
}

static void test_json_same_as_byte_by_byte(void **state) {
    (void)state;
    /* Bytes drawn mostly plain, with every kind of special among them, at
     * every length around the 8-byte steps. */
    static const unsigned char pick[] = {'a', 'Z', ' ', '~', 0x7f, '"', '\\', 0, '\n', 0x1f,
                                         0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0x80};
    unsigned long long x = 88172645463325252ull;
    sbuf got, want;
    sbuf_init(&got);
    sbuf_init(&want);
    unsigned char in[80];
    for (int round = 0; round < 100000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = x % sizeof(in);
        int specials = (int)(x >> 58) % 4;   /* 0: none at all */
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = specials && x % (unsigned)(8 * specials) == 0 ? pick[(x >> 8) % sizeof(pick)]
                                                                 : (unsigned char)(0x20 + (x >> 16) % 0x5f);
        }
        sbuf_reset(&got);
        sbuf_reset(&want);
        sbuf_puts(&got, "x");
        sbuf_puts(&want, "x");
        int r = sbuf_json_str(&got, (const char *)in, n);
        assert_int_equal(r, ref_json_str(&want, in, n));
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, got.len);
        assert_int_equal(got.data[got.len], '\0');
    }
    sbuf_free(&got);
    sbuf_free(&want);
}

static void test_numbers_same_as_printf(void **state) {
    (void)state;
    static const long long v[] = {0, 1, 9, 10, 99, 100, 1795670000, -1, -10, -1795670000,
                                  9223372036854775807LL, -9223372036854775807LL - 1};
    char want[32];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        sbuf b;
        sbuf_init(&b);
        sbuf_put_i64(&b, v[i]);
        snprintf(want, sizeof(want), "%lld", v[i]);
        assert_string_equal(b.data, want);
        sbuf_reset(&b);
        sbuf_put_u64(&b, (unsigned long long)v[i]);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
        assert_string_equal(b.data, want);
        sbuf_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_plain_and_escapes), cmocka_unit_test(test_json_utf8),
        cmocka_unit_test(test_base64), cmocka_unit_test(test_time), cmocka_unit_test(test_growth),
        cmocka_unit_test(test_json_same_as_byte_by_byte), cmocka_unit_test(test_numbers_same_as_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
