/* simclock.h -- the call centre's simulated clock and its random numbers.
 *
 * Time is simulated: the wall clock sped up --speed times, or with --max a
 * clock that jumps straight to the next step. Timestamps, Uniqueids and all
 * durations use it, so they agree with each other at any speed. Randomness
 * is seeded (--seed), so the same seed gives the same calls every run. */
#ifndef AMISIM_SIMCLOCK_H
#define AMISIM_SIMCLOCK_H

/* The simulated now; the wall clock until the clock has started. */
double sim_now(void);
/* Sets the event clock to the simulated now before an action's events. */
double sim_step_now(void);

/* The clock starts at simulated time origin_sim, wall-clock time origin_real. */
void simclock_start(double origin_real, double origin_sim);
int simclock_started(void);
/* --max: the free-running clock moves on to t (never back). */
void simclock_advance(double t);
/* Wall-clock time at which simulated time t comes (timed mode). */
double simclock_real_time_of(double t);

void rnd_seed(unsigned seed);
/* Uniform in [0, 1). */
double rnd(void);
double uniform(double a, double b);

#endif
