/* day.c -- the operators' working day (see day.h).
 *
 * A third of the operators work all day, a third the early shift (to 5/8 of
 * the day), a third the late one (from 3/8), each logging in within the
 * first 1/32 of the day after their shift starts and out up to 1/32 after
 * it ends. Within a shift an operator takes a 10-15 minute "Break" about
 * every quarter of the day, the all-day ones a 20-30 minute "Lunch" in the
 * middle instead, and after 5 % of calls a 30-90 s "Not ready" for wrap-up.
 * Times are fractions of the day (those figures are for 8 hours), so a
 * short test day has the shape of a real one; wrap-up stays 30-90 s.
 *
 * A break or a logout that comes due during a call waits for its end, as
 * an operator would; a break due at the end of another one follows it
 * without the operator becoming ready in between (QueuePause with the new
 * reason). Logging in and out and pausing are what QueueAdd, QueueRemove
 * and QueuePause do (members.c, capture 04). */
#include "day.h"

#include <stddef.h>
#include <stdlib.h>

#include "amisim.h"
#include "log.h"
#include "simclock.h"
#include "truth.h"

#define MAX_BREAKS 4
#define WRAP_UP_PCT 5.0

enum shift_state { OFF, WORKING, PAUSED, GONE };

typedef struct shift {
    timer tm;
    operator_ *op;
    enum shift_state state;
    double login_at, logout_at;
    double break_at[MAX_BREAKS], break_len[MAX_BREAKS];
    const char *break_reason[MAX_BREAKS];
    int nbreaks, next_break;
    double pause_end;
    int waiting;            /* a break or the logout waits for the call to end */
    int wrap_up;            /* wants a "Not ready" once the call is over */
    int listed;             /* in the pending list */
} shift;

static shift *shifts;
static shift **pending;
static int npending, ngone;

static shift *shift_of(const operator_ *op) {
    return &shifts[op - ops];
}

static int busy(const operator_ *op) {
    return op->call || op->other_calls;
}

/* ---- what the operator does (as their phone's or CRM's actions would) ---- */

static void login(shift *s, double now) {
    for (int i = 0; i < nqueues; i++)
        if (!member_find(&queues[i], s->op->iface))
            member_add(&queues[i], s->op->iface, s->op->member, s->op->iface, 0, 0, "");
    s->state = WORKING;
    truth_login(s->op, now);
}

static void logout(shift *s, double now) {
    for (int i = 0; i < nqueues; i++) {
        member *m = member_find(&queues[i], s->op->iface);
        if (m) member_remove(&queues[i], m);
    }
    if (s->state == PAUSED) truth_unpaused(s->op, now);
    s->state = GONE;
    ngone++;
    truth_logout(s->op, now);
}

/* QueuePause without a Queue: every queue the operator is in. */
static void set_paused(shift *s, int paused, const char *reason) {
    for (int i = 0; i < nqueues; i++) {
        member *m = member_find(&queues[i], s->op->iface);
        if (m) member_set_paused(&queues[i], m, paused, reason);
    }
}

static void pause_for(shift *s, const char *reason, double length, double now) {
    if (s->state == PAUSED) truth_unpaused(s->op, now);
    set_paused(s, 1, reason);
    s->state = PAUSED;
    s->pause_end = now + length;
    truth_paused(s->op, reason, now);
}

static void resume(shift *s, double now) {
    set_paused(s, 0, "");
    s->state = WORKING;
    truth_unpaused(s->op, now);
}

/* ---- the plan ---- */

static int break_due(const shift *s, double now) {
    return s->next_break < s->nbreaks && s->break_at[s->next_break] <= now &&
           s->break_at[s->next_break] < s->logout_at;
}

static void take_break(shift *s, double now) {
    int b = s->next_break++;
    pause_for(s, s->break_reason[b], s->break_len[b], now);
}

static double next_move_at(const shift *s) {
    if (s->next_break < s->nbreaks && s->break_at[s->next_break] < s->logout_at)
        return s->break_at[s->next_break];
    return s->logout_at;
}

static void arm_next(shift *s) {
    switch (s->state) {
    case OFF: timer_arm(&s->tm, s->login_at); break;
    case WORKING: timer_arm(&s->tm, next_move_at(s)); break;
    case PAUSED: timer_arm(&s->tm, s->pause_end); break;
    case GONE: break;
    }
}

static void add_pending(shift *s) {
    if (s->listed) return;
    s->listed = 1;
    pending[npending++] = s;
}

/* Working, free, and a break or the end of the shift is due. */
static void move(shift *s, double now) {
    if (break_due(s, now)) take_break(s, now);
    else logout(s, now);
}

static void end_pause(shift *s, double now) {
    if (break_due(s, now)) take_break(s, now);
    else if (now >= s->logout_at) logout(s, now);
    else resume(s, now);
}

static void on_shift(timer *t, double now) {
    shift *s = (shift *)((char *)t - offsetof(shift, tm));
    if (s->state == OFF) {
        login(s, now);
    } else if (s->state == PAUSED) {
        end_pause(s, now);
    } else if (busy(s->op)) {
        s->waiting = 1;
        add_pending(s);
        return;
    } else {
        move(s, now);
    }
    arm_next(s);
}

static void settle(shift *s, double now) {
    if (s->waiting && s->state == WORKING) move(s, now);
    else if (s->wrap_up && s->state == WORKING) pause_for(s, "Not ready", uniform(30, 90), now);
    s->waiting = s->wrap_up = 0;
    arm_next(s);
}

void day_settle(double now) {
    int kept = 0;
    for (int i = 0; i < npending; i++) {
        shift *s = pending[i];
        if (busy(s->op)) {
            pending[kept++] = s;
            continue;
        }
        s->listed = 0;
        settle(s, now);
    }
    npending = kept;
}

void day_call_done(operator_ *op, double now) {
    (void)now;
    if (!shifts) return;
    shift *s = shift_of(op);
    if (s->state != WORKING || rnd() * 100.0 >= WRAP_UP_PCT) return;
    s->wrap_up = 1;
    add_pending(s);
}

/* ---- planning a day ---- */

/* Breaks about every quarter of the day from the shift's start, not in its
 * last 1/16; the one nearest the middle of an all-day shift is lunch. */
static void plan_breaks(shift *s, double start, double end, double day, int all_day) {
    for (double at = start + day / 4; at < end - day / 16 && s->nbreaks < MAX_BREAKS; at += day / 4) {
        int lunch = all_day && at > day * 0.4 && at < day * 0.6;
        int b = s->nbreaks++;
        s->break_at[b] = at + uniform(-day / 32, day / 32);
        s->break_reason[b] = lunch ? "Lunch" : "Break";
        s->break_len[b] = lunch ? uniform(day / 24, day / 16) : uniform(day / 48, day / 32);
    }
}

/* Offsets from the start of the day; day_start() makes them times. */
static void plan_shift(shift *s, int i, double day) {
    int group = i % 3;                   /* all day, early, late */
    double start = group == 2 ? day * 3 / 8 : 0;
    double end = group == 1 ? day * 5 / 8 : day;
    s->login_at = start + uniform(0, day / 32);
    s->logout_at = end + uniform(0, day / 32);
    plan_breaks(s, s->login_at, end, day, group == 0);
}

int day_init(void) {
    if (cfg.day_hours <= 0) return 0;
    shifts = calloc((size_t)nops, sizeof(*shifts));
    pending = calloc((size_t)nops, sizeof(*pending));
    if (!shifts || !pending) abort();
    double day = cfg.day_hours * 3600.0;
    for (int i = 0; i < nops; i++) {
        shifts[i].tm = TIMER_INIT(on_shift);
        shifts[i].op = &ops[i];
        plan_shift(&shifts[i], i, day);
    }
    log_info("day: %.2f h, %d operators in three shifts", cfg.day_hours, nops);
    return 0;
}

void day_start(double now) {
    for (int i = 0; shifts && i < nops; i++) {
        shift *s = &shifts[i];
        s->login_at += now;
        s->logout_at += now;
        for (int b = 0; b < s->nbreaks; b++) s->break_at[b] += now;
        arm_next(s);
    }
}

int day_done(void) {
    return !shifts || ngone == nops;
}

void day_free(void) {
    free(shifts);
    free(pending);
    shifts = NULL;
    pending = NULL;
}
