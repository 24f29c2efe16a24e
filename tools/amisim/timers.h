/* timers.h -- every pending step of the simulation, earliest first.
 *
 * A call's next step, an operator's next move in their working day and the
 * next inbound arrival are each one timer embedded in its owner; the
 * simulated clock jumps from one due time to the next. One binary heap holds
 * them all, so finding the next step costs O(1) and arming one O(log n),
 * whatever the number of seats. */
#ifndef AMISIM_TIMERS_H
#define AMISIM_TIMERS_H

typedef struct timer timer;
struct timer {
    double due;                           /* simulated time */
    int idx;                              /* place in the heap; -1 when not armed */
    void (*fire)(timer *t, double now);   /* runs the step; may arm the timer again */
};

#define TIMER_INIT(fn) ((timer){0, -1, (fn)})

void timer_arm(timer *t, double due);
void timer_disarm(timer *t);
int timer_armed(const timer *t);
/* The earliest armed timer, or NULL. */
timer *timers_first(void);
/* Disarms the earliest timer and fires it at its due time. */
void timers_fire_first(void);
void timers_free(void);

#endif
