/* clock.c -- wall and monotonic clocks, RFC 3339 times (see clock.h). */
#include "clock.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wall_now(void) { return seconds(CLOCK_REALTIME); }
double mono_now(void) { return seconds(CLOCK_MONOTONIC); }

/* v in exactly n digits, zero-padded (v < 10^n here). */
static void put_digits(char **o, long v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        (*o)[i] = (char)('0' + v % 10);
        v /= 10;
    }
    *o += n;
}

const char *rfc3339(double t, int digits, char *out, size_t outlen) {
    static const long scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (digits < 0) digits = 0;
    if (digits > 6) digits = 6;
    if (!isfinite(t) || t < 0 || t > 253402300799.0) t = 0;
    time_t sec = (time_t)t;
    long frac = lround((t - (double)sec) * (double)scale[digits]);
    if (frac >= scale[digits]) {
        sec++;
        frac -= scale[digits];
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* Written digit by digit: snprintf's set-up was a visible share of the
     * agent's time per event (two calls for each CloudEvent's time). */
    char tmp[RFC3339_MAX], *o = tmp;
    /* Four digits: t is at most the last whole second of 9999. */
    put_digits(&o, tm.tm_year + 1900, 4);
    *o++ = '-';
    put_digits(&o, tm.tm_mon + 1, 2);
    *o++ = '-';
    put_digits(&o, tm.tm_mday, 2);
    *o++ = 'T';
    put_digits(&o, tm.tm_hour, 2);
    *o++ = ':';
    put_digits(&o, tm.tm_min, 2);
    *o++ = ':';
    put_digits(&o, tm.tm_sec, 2);
    if (digits) {
        *o++ = '.';
        put_digits(&o, frac, digits);
    }
    *o++ = 'Z';
    size_t n = (size_t)(o - tmp);
    if (outlen == 0) return out;
    if (n >= outlen) n = outlen - 1;   /* cut short, as snprintf would */
    memcpy(out, tmp, n);
    out[n] = '\0';
    return out;
}

/* n digits at p (never reading past a NUL, which is not a digit). */
static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* Strict RFC 3339: every field its exact number of digits, the fraction
 * digits only (strtod would take an exponent), the offset exactly "HH:MM";
 * each character is looked at only after the ones before it matched, so a
 * short string is never read past its end. */
double rfc3339_parse(const char *s) {
    struct tm tm = {0};
    if (!s || !digits(s, 4, &tm.tm_year) || s[4] != '-' || !digits(s + 5, 2, &tm.tm_mon) || s[7] != '-' ||
        !digits(s + 8, 2, &tm.tm_mday) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &tm.tm_hour) ||
        s[13] != ':' || !digits(s + 14, 2, &tm.tm_min) || s[16] != ':' || !digits(s + 17, 2, &tm.tm_sec))
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + 19;
    long long num = 0, den = 1;   /* the fraction, to nanoseconds */
    if (*p == '.') {
        if (!isdigit((unsigned char)p[1])) return -1;
        for (p++; isdigit((unsigned char)*p); p++)
            if (den < 1000000000) num = num * 10 + (*p - '0'), den *= 10;
    }
    double offset = 0;
    int hh, mm;
    if (*p == 'Z' || *p == 'z') p++;
    else if (*p == '+' || *p == '-') {
        if (!digits(p + 1, 2, &hh) || p[3] != ':' || !digits(p + 4, 2, &mm) || hh > 23 || mm > 59) return -1;
        offset = (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else return -1;
    if (*p) return -1;
    int mday = tm.tm_mday, leap_second = tm.tm_sec == 60;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    /* timegm moves 2026-02-30 to March 2: a day the month lacks is refused. */
    struct tm back;
    if (!gmtime_r(&t, &back) || (back.tm_mday != mday && !leap_second)) return -1;
    return (double)t + (double)num / (double)den - offset;
}
