/* truth.h -- the ground truth: what the simulation did, counted as a
 * supervisor's wallboard counts it, so a test can hold the agent's call and
 * operator events (and anything computed from them) against it.
 *
 * Written into the stats file (--stats-file) as "truth": per queue, per
 * operator, and the same again per local date in the site's time zone
 * (--tz), each moment counted on the date it happened at. */
#ifndef AMISIM_TRUTH_H
#define AMISIM_TRUTH_H

#include <jansson.h>

#include "sim.h"

/* How a caller left a queue without being answered. */
enum left_how { LEFT_ABANDON, LEFT_TIMEOUT, LEFT_TIMEOUT_RINGING, LEFT_REDIRECT };

void truth_init(void);
/* The simulated clock starts (the stats name the day's start). */
void truth_start(double now);
void truth_arrived(double t);
void truth_queued(const queue *q, double t);
void truth_rung(const queue *q, const operator_ *op, double t);
void truth_ring_no_answer(const queue *q, const operator_ *op, double t);
/* hold: the queue's HoldTime, whole seconds as AgentConnect reports it. */
void truth_answered(const queue *q, const operator_ *op, long hold, double t);
void truth_talked(const queue *q, const operator_ *op, double talk, double t);
void truth_left(const queue *q, long hold, enum left_how how, double t);
void truth_login(const operator_ *op, double t);
void truth_logout(const operator_ *op, double t);
void truth_paused(const operator_ *op, const char *reason, double t);
void truth_unpaused(const operator_ *op, double t);
/* A click-to-call ended: "answered", "busy", "no_answer", "failed", "operator_no_answer". */
void truth_originated(const char *outcome, double t);
json_t *truth_json(void);
void truth_free(void);

#endif
