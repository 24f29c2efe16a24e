/* clock.c -- wall and monotonic clocks, RFC 3339 times (see clock.h). */
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static double seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wall_now(void) { return seconds(CLOCK_REALTIME); }
double mono_now(void) { return seconds(CLOCK_MONOTONIC); }

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
    int n = snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n < 0 || (size_t)n >= outlen) return out;
    if (digits) snprintf(out + n, outlen - (size_t)n, ".%0*ldZ", digits, frac);
    else snprintf(out + n, outlen - (size_t)n, "Z");
    return out;
}
