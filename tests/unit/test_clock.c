/* test_clock.c -- the RFC 3339 writer and the two clocks (lib/clock.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"

static void check(double t, int digits, const char *want) {
    char out[RFC3339_MAX];
    assert_string_equal(rfc3339(t, digits, out, sizeof(out)), want);
}

static void test_digits_and_rounding(void **state) {
    (void)state;
    check(1795670259.396093, 6, "2026-11-26T05:17:39.396093Z");
    check(1795670259.396093, 3, "2026-11-26T05:17:39.396Z");
    check(1795670259.396093, 0, "2026-11-26T05:17:39Z");
    /* Rounding up carries into the seconds (and on into the day). */
    check(1795670259.9999996, 6, "2026-11-26T05:17:40.000000Z");
    check(1795670259.9996, 3, "2026-11-26T05:17:40.000Z");
    check(1767225599.9999999, 6, "2026-01-01T00:00:00.000000Z");
    check(0, 3, "1970-01-01T00:00:00.000Z");
}

static void test_out_of_range_is_the_epoch(void **state) {
    (void)state;
    check(-1, 6, "1970-01-01T00:00:00.000000Z");
    check(NAN, 3, "1970-01-01T00:00:00.000Z");
    check(INFINITY, 3, "1970-01-01T00:00:00.000Z");
    check(1e13, 3, "1970-01-01T00:00:00.000Z");
    check(253402300799.0, 0, "9999-12-31T23:59:59Z");
}

static void test_short_buffer_is_cut_not_overrun(void **state) {
    (void)state;
    char out[12];
    rfc3339(1795670259.5, 6, out, sizeof(out));
    assert_string_equal(out, "2026-11-26T");
}

/* rfc3339 writes its digits by hand: it gives what the snprintf formats it
 * replaced give, over times spread across the whole range. */
static void test_same_as_printf(void **state) {
    (void)state;
    static const long scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    unsigned long long x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double t = (double)(x % 253402300800ull) + (double)(x >> 40) / (double)(1 << 24);
        if (i % 4 == 0) t = 1795670000 + (double)(x % 100000000) / 1e6;   /* today's times */
        int digits = (int)(x >> 61) % 7;
        char got[RFC3339_MAX], want[RFC3339_MAX];
        rfc3339(t, digits, got, sizeof(got));
        if (t > 253402300799.0) t = 0;
        time_t sec = (time_t)t;
        long frac = lround((t - (double)sec) * (double)scale[digits]);
        if (frac >= scale[digits]) sec++, frac -= scale[digits];
        struct tm tm;
        gmtime_r(&sec, &tm);
        int n = snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (digits) snprintf(want + n, sizeof(want) - (size_t)n, ".%0*ldZ", digits, frac);
        else snprintf(want + n, sizeof(want) - (size_t)n, "Z");
        assert_string_equal(got, want);
    }
}

static void test_clocks(void **state) {
    (void)state;
    double w = wall_now(), m = mono_now();
    assert_true(w > 1.7e9);  /* a wall time, not a duration */
    for (int i = 0; i < 1000; i++) {
        double next = mono_now();
        assert_true(next >= m);
        m = next;
    }
}

/* The one RFC 3339 reader: a day the month lacks is refused, not moved on
 * to the next month (timegm would read 2026-02-30 as March 2). */
static void test_rfc3339_parse_days_of_the_month(void **state) {
    (void)state;
    assert_true(rfc3339_parse("2026-02-28T23:59:59Z") == 1772323199.0);
    assert_true(rfc3339_parse("2028-02-29T00:00:00Z") > 0);
    assert_true(rfc3339_parse("2026-02-29T00:00:00Z") < 0);
    assert_true(rfc3339_parse("2026-02-30T12:00:00+02:00") < 0);
    assert_true(rfc3339_parse("2026-04-31T00:00:00Z") < 0);
    assert_true(rfc3339_parse("2026-12-31T23:59:60Z") > 0);   /* a leap second */
    char out[RFC3339_MAX];
    assert_true(rfc3339_parse(rfc3339(1795670259.125, 3, out, sizeof(out))) == 1795670259.125);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_parse_days_of_the_month),
        cmocka_unit_test(test_digits_and_rounding),
        cmocka_unit_test(test_out_of_range_is_the_epoch),
        cmocka_unit_test(test_short_buffer_is_cut_not_overrun),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_same_as_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
