/* day.h -- the operators' working day (--day HOURS).
 *
 * Operators work shifts: they log in to every queue (QueueAdd) when their
 * shift starts and out (QueueRemove) when it ends; in between they take
 * breaks and lunch (QueuePause with a reason, then back) and now and then a
 * short "Not ready" after a call. Without --day every operator is a static
 * member of every queue, all the time, and none of this happens. */
#ifndef AMISIM_DAY_H
#define AMISIM_DAY_H

#include "sim.h"

/* Plans every operator's shift and breaks (after the operators exist). */
int day_init(void);
/* The simulated clock starts: shifts count from now. */
void day_start(double now);
/* Breaks and logouts that waited for a call to end happen now, for the
 * operators who are free (called before calls are offered). */
void day_settle(double now);
/* op just finished a call (it may want a moment of wrap-up). */
void day_call_done(operator_ *op, double now);
/* Every shift is over: everybody has logged out. */
int day_done(void);
void day_free(void);

#endif
