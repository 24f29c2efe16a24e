/* simclock.c -- the simulated clock and the seeded RNG (see simclock.h). */
#include "simclock.h"

#include "amisim.h"
#include "sim.h"

static double sim_clock;        /* --max: the free-running clock */
static double origin_real = -1; /* wall-clock time the simulated clock started */
static double origin_sim;       /* the simulated time it started at */
static unsigned long long rng_state;

int simclock_started(void) {
    return origin_real >= 0;
}

void simclock_start(double real, double sim) {
    origin_real = real;
    origin_sim = sim;
    sim_clock = sim;
}

void simclock_advance(double t) {
    if (t > sim_clock) sim_clock = t;
}

double sim_now(void) {
    if (!simclock_started()) return now_real();
    if (cfg.max) return sim_clock;
    return origin_sim + (now_real() - origin_real) * cfg.speed;
}

double simclock_real_time_of(double t) {
    return origin_real + (t - origin_sim) / cfg.speed;
}

double sim_step_now(void) {
    double t = sim_now();
    if (cfg.max && simclock_started()) t = sim_clock;
    step_at(t);
    return get_ev_ts();
}

void rnd_seed(unsigned seed) {
    rng_state = seed;
}

/* splitmix64: seeded, so --seed gives the same calls every run */
double rnd(void) {
    unsigned long long z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

double uniform(double a, double b) {
    return a + (b - a) * rnd();
}
