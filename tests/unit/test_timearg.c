/* test_timearg.c -- the --from/--to times of `callbus replay` and `check`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "timearg.h"

#define NOW 1795670259000LL  /* 2026-11-26T05:17:39Z */

static int64_t ok(const char *s) {
    char err[256];
    int64_t ms = 0;
    if (timearg_parse(s, NOW, &ms, err, sizeof(err)) < 0) fail_msg("%s: %s", s, err);
    return ms;
}

static void bad(const char *s, const char *why) {
    char err[256] = "";
    int64_t ms;
    assert_int_equal(timearg_parse(s, NOW, &ms, err, sizeof(err)), -1);
    if (!strstr(err, why)) fail_msg("%s: error \"%s\" lacks \"%s\"", s, err, why);
}

static void test_absolute(void **state) {
    (void)state;
    assert_int_equal(ok("2026-11-26T05:17:39Z"), NOW);
    assert_int_equal(ok("2026-11-26T05:17:39.250Z"), NOW + 250);
    assert_int_equal(ok("2026-11-26T08:17:39+03:00"), NOW);
    assert_int_equal(ok("2026-11-26T02:17:39-0300"), NOW);
    assert_int_equal(ok("2026-11-26 05:17Z"), NOW - 39000);
    assert_int_equal(ok("2026-11-26"), NOW - (5 * 3600 + 17 * 60 + 39) * 1000LL);
}

static void test_relative(void **state) {
    (void)state;
    assert_int_equal(ok("now"), NOW);
    assert_int_equal(ok("-2h"), NOW - 7200000);
    assert_int_equal(ok("-30m"), NOW - 1800000);
    assert_int_equal(ok("-90s"), NOW - 90000);
    assert_int_equal(ok("-1d"), NOW - 86400000);
    assert_int_equal(ok("-1500ms"), NOW - 1500);
    assert_int_equal(ok("-1.5h"), NOW - 5400000);
}

static void test_refused(void **state) {
    (void)state;
    bad("2026-11-26T05:17:39", "no zone");
    bad("2026-02-30T05:00:00Z", "bad time");
    bad("2026-13-01T00:00:00Z", "bad time");
    bad("2026-11-26T25:00:00Z", "bad time");
    bad("yesterday", "bad time");
    bad("-2 hours", "bad relative time");
    bad("-h", "bad relative time");
    bad("", "empty");
    bad("2026-11-26T05:00:00+3", "bad time");
}

static void test_format(void **state) {
    (void)state;
    char b[40];
    timearg_format(NOW + 7, b, sizeof(b));
    assert_string_equal(b, "2026-11-26T05:17:39.007Z");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute),
        cmocka_unit_test(test_relative),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
