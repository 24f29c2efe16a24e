/* arrivals.c -- when inbound callers come (see arrivals.h).
 *
 * The day's profile is a rate that changes in steps (one multiplier per
 * equal part of the day), so the next arrival is found by spending one
 * exponential draw across the steps: exact, and one random number per
 * caller, as the flat stream uses. */
#include "arrivals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "amisim.h"
#include "log.h"
#include "sim.h"
#include "simclock.h"

#define MAX_SLICES 96
/* A burst's callers come this close together: 220 of them then make well
 * over 6,500 events in the busiest second, however it falls on the clock. */
#define BURST_SECONDS 0.25
/* Quiet first hour, a morning peak, a lunch dip, an afternoon peak, a
 * quiet end; the mean is 1, so --rate is the day's average rate. */
#define DAY_PROFILE "0.5,1.0,1.4,1.2,0.8,1.3,1.1,0.7"

static void on_stream(timer *t, double now);
static void on_burst(timer *t, double now);
static timer stream = TIMER_INIT(on_stream);
static timer burst = TIMER_INIT(on_burst);
static double slices[MAX_SLICES];
static int nslices;
static double day_begin, day_length;
static long burst_left;

static int parse_profile(const char *s) {
    nslices = 0;
    while (*s) {
        char *end;
        double m = strtod(s, &end);
        if (end == s || m < 0 || !isfinite(m) || nslices == MAX_SLICES) return -1;
        slices[nslices++] = m;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return nslices ? 0 : -1;
}

int arrivals_init(void) {
    if (cfg.profile && !cfg.day_hours) {
        log_error("--profile shapes a --day: give --day HOURS too");
        return -1;
    }
    if (parse_profile(cfg.profile ? cfg.profile : DAY_PROFILE) < 0) {
        log_error("--profile needs comma-separated multipliers >= 0 (at most %d)", MAX_SLICES);
        return -1;
    }
    return 0;
}

/* Spends the exponential draw e across the day's steps from t on; -1 when
 * the day ends first. */
static double next_in_day(double t, double e) {
    double slice = day_length / nslices;
    int i = (int)((t - day_begin) / slice);
    for (i = i < 0 ? 0 : i; i < nslices; i++) {
        double end = day_begin + (i + 1) * slice;
        if (t >= end) continue;
        double rate = cfg.rate * slices[i];
        if (rate > 0 && t + e / rate <= end) return t + e / rate;
        e -= rate * (end - t);
        t = end;
    }
    return -1;
}

static double next_arrival(double t) {
    if (cfg.rate <= 0) return -1;
    double e = -log(1.0 - rnd());
    return cfg.day_hours ? next_in_day(t, e) : t + e / cfg.rate;
}

static int limit_reached(void) {
    return cfg.calls && inbound_arrived() >= cfg.calls;
}

static void on_stream(timer *t, double now) {
    if (limit_reached()) return;
    inbound_arrive(now);
    double next = next_arrival(now);
    if (next >= 0 && !limit_reached()) timer_arm(t, next);
}

static void on_burst(timer *t, double now) {
    if (limit_reached()) return;
    inbound_arrive(now);
    if (--burst_left > 0) timer_arm(t, now + BURST_SECONDS / (double)cfg.burst_calls);
}

void arrivals_start(double now) {
    if (!cfg.simulate) return;
    day_begin = now;
    day_length = cfg.day_hours * 3600.0;
    double first = next_arrival(now);
    if (first >= 0) timer_arm(&stream, first);
    if (cfg.burst_calls > 0) {
        burst_left = cfg.burst_calls;
        timer_arm(&burst, now + cfg.burst_at);
    }
}

int arrivals_done(void) {
    return !timer_armed(&stream) && !timer_armed(&burst);
}
