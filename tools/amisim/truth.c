/* truth.c -- the ground truth of the simulation (see truth.h).
 *
 * Counted the way the queue itself counts (app_queue.c), so a wallboard
 * fed by the agent must come to the same numbers:
 * - offered: callers who joined the queue (QueueCallerJoin);
 * - answered, with the sum of their waits (AgentConnect's HoldTime, whole
 *   seconds) and those answered within the service level, HoldTime <=
 *   --sl-threshold (update_queue()'s callcompletedinsl);
 * - abandoned, timed out (and of those, while a phone rang), each with
 *   the wait (QueueCallerAbandon's HoldTime); redirected out of the queue
 *   (Redirect of a waiting caller: neither answered nor abandoned);
 * - talk: bridged time of answered calls, counted when they end;
 * - per operator: rung (AgentCalled), ring-no-answer (AgentRingNoAnswer),
 *   answered, calls completed, talk, logins, logouts, pauses by reason and
 *   time paused.
 * Every count goes to the whole run and to the local date (site time zone)
 * of the moment it happened: a call answered at 23:59:59 is yesterday's. */
#include "truth.h"

#include <stdlib.h>
#include <string.h>

#include "amisim.h"
#include "simclock.h"
#include "siteclock.h"

#define MAX_REASONS 8

typedef struct queue_tally {
    long offered, answered, answered_in_sl, abandoned, timed_out, timed_out_ringing, redirected;
    long wait_answered_s, wait_abandoned_s, wait_timed_out_s, max_wait_s;
    long completed;
    double talk_s;
} queue_tally;

typedef struct op_tally {
    long rung, ring_no_answer, answered, completed, logins, logouts;
    double talk_s, paused_s;
    long pauses[MAX_REASONS];
} op_tally;

typedef struct period {
    char date[16];          /* "" for the whole run */
    long arrived;
    long c2c_answered, c2c_busy, c2c_no_answer, c2c_failed, c2c_operator_no_answer;
    queue_tally *queues;
    op_tally *ops;
} period;

static period total;
static period *days;
static int ndays;
static double *pause_started;
static const char *reasons[MAX_REASONS];
static int nreasons;
static double started_at = -1;

static void period_init(period *p, const char *date) {
    memset(p, 0, sizeof(*p));
    snprintf(p->date, sizeof(p->date), "%s", date);
    p->queues = calloc((size_t)nqueues, sizeof(*p->queues));
    p->ops = calloc((size_t)nops, sizeof(*p->ops));
    if (!p->queues || !p->ops) abort();
}

void truth_init(void) {
    period_init(&total, "");
    pause_started = calloc((size_t)nops, sizeof(*pause_started));
    if (!pause_started) abort();
}

void truth_start(double now) {
    started_at = now;
}

/* The day's period for t, made on first use (days are few). */
static period *day_of(double t) {
    char date[16];
    siteclock_date(t, date, sizeof(date));
    for (int i = 0; i < ndays; i++)
        if (strcmp(days[i].date, date) == 0) return &days[i];
    days = realloc(days, (size_t)(ndays + 1) * sizeof(*days));
    if (!days) abort();
    period_init(&days[ndays], date);
    return &days[ndays++];
}

/* Applies fn to the whole run and to t's date. */
#define BOTH(t, p, stmt)                        \
    do {                                        \
        period *p = &total;                     \
        stmt;                                   \
        p = day_of(t);                          \
        stmt;                                   \
    } while (0)

#define QT(p, q) (&(p)->queues[(q) - queues])
#define OT(p, op) (&(p)->ops[(op) - ops])

void truth_arrived(double t) {
    BOTH(t, p, p->arrived++);
}

void truth_queued(const queue *q, double t) {
    BOTH(t, p, QT(p, q)->offered++);
}

void truth_rung(const queue *q, const operator_ *op, double t) {
    (void)q;
    BOTH(t, p, OT(p, op)->rung++);
}

void truth_ring_no_answer(const queue *q, const operator_ *op, double t) {
    (void)q;
    BOTH(t, p, OT(p, op)->ring_no_answer++);
}

static void note_wait(queue_tally *qt, long hold) {
    if (hold > qt->max_wait_s) qt->max_wait_s = hold;
}

void truth_answered(const queue *q, const operator_ *op, long hold, double t) {
    int in_sl = hold <= (long)cfg.sl_threshold;
    BOTH(t, p, {
        queue_tally *qt = QT(p, q);
        qt->answered++;
        qt->answered_in_sl += in_sl;
        qt->wait_answered_s += hold;
        note_wait(qt, hold);
        OT(p, op)->answered++;
    });
}

void truth_talked(const queue *q, const operator_ *op, double talk, double t) {
    BOTH(t, p, {
        QT(p, q)->completed++;
        QT(p, q)->talk_s += talk;
        OT(p, op)->completed++;
        OT(p, op)->talk_s += talk;
    });
}

static void count_left(queue_tally *qt, long hold, enum left_how how) {
    note_wait(qt, hold);
    switch (how) {
    case LEFT_ABANDON: qt->abandoned++; qt->wait_abandoned_s += hold; break;
    case LEFT_TIMEOUT_RINGING: qt->timed_out_ringing++; /* fall through */
    case LEFT_TIMEOUT: qt->timed_out++; qt->wait_timed_out_s += hold; break;
    case LEFT_REDIRECT: qt->redirected++; break;
    }
}

void truth_left(const queue *q, long hold, enum left_how how, double t) {
    BOTH(t, p, count_left(QT(p, q), hold, how));
}

void truth_login(const operator_ *op, double t) {
    BOTH(t, p, OT(p, op)->logins++);
}

void truth_logout(const operator_ *op, double t) {
    BOTH(t, p, OT(p, op)->logouts++);
}

static int reason_index(const char *reason) {
    for (int i = 0; i < nreasons; i++)
        if (strcmp(reasons[i], reason) == 0) return i;
    if (nreasons == MAX_REASONS) return MAX_REASONS - 1;
    reasons[nreasons] = reason;     /* day.c's string constants */
    return nreasons++;
}

void truth_paused(const operator_ *op, const char *reason, double t) {
    int r = reason_index(reason);
    pause_started[op - ops] = t;
    BOTH(t, p, OT(p, op)->pauses[r]++);
}

/* Paused time goes to the date the pause ends on. */
void truth_unpaused(const operator_ *op, double t) {
    double paused = t - pause_started[op - ops];
    BOTH(t, p, OT(p, op)->paused_s += paused);
}

void truth_originated(const char *outcome, double t) {
    BOTH(t, p, {
        if (strcmp(outcome, "answered") == 0) p->c2c_answered++;
        else if (strcmp(outcome, "busy") == 0) p->c2c_busy++;
        else if (strcmp(outcome, "no_answer") == 0) p->c2c_no_answer++;
        else if (strcmp(outcome, "operator_no_answer") == 0) p->c2c_operator_no_answer++;
        else p->c2c_failed++;
    });
}

/* ---- JSON ---- */

static json_t *queue_json(const queue_tally *t) {
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
                     "offered", (json_int_t)t->offered, "answered", (json_int_t)t->answered,
                     "answered_within_sl", (json_int_t)t->answered_in_sl,
                     "abandoned", (json_int_t)t->abandoned, "timed_out", (json_int_t)t->timed_out,
                     "timed_out_while_ringing", (json_int_t)t->timed_out_ringing,
                     "redirected", (json_int_t)t->redirected,
                     "wait_answered_s_sum", (json_int_t)t->wait_answered_s,
                     "wait_abandoned_s_sum", (json_int_t)t->wait_abandoned_s,
                     "wait_timed_out_s_sum", (json_int_t)t->wait_timed_out_s,
                     "max_wait_s", (json_int_t)t->max_wait_s, "completed", (json_int_t)t->completed,
                     "talk_s_sum", t->talk_s);
}

static json_t *pauses_json(const op_tally *t) {
    json_t *o = json_object();
    for (int i = 0; i < nreasons; i++)
        if (t->pauses[i]) json_object_set_new(o, reasons[i], json_integer(t->pauses[i]));
    return o;
}

static json_t *op_json(const op_tally *t) {
    return json_pack("{s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:o, s:f}", "rung", (json_int_t)t->rung,
                     "ring_no_answer", (json_int_t)t->ring_no_answer,
                     "answered", (json_int_t)t->answered, "completed", (json_int_t)t->completed,
                     "talk_s_sum", t->talk_s, "logins", (json_int_t)t->logins,
                     "logouts", (json_int_t)t->logouts, "pauses", pauses_json(t),
                     "paused_s_sum", t->paused_s);
}

static json_t *period_json(const period *p) {
    json_t *qs = json_object(), *os = json_object();
    for (int i = 0; i < nqueues; i++) json_object_set_new(qs, queues[i].name, queue_json(&p->queues[i]));
    for (int i = 0; i < nops; i++) json_object_set_new(os, ops[i].name, op_json(&p->ops[i]));
    json_t *c2c = json_pack("{s:I, s:I, s:I, s:I, s:I}", "answered", (json_int_t)p->c2c_answered,
                            "busy", (json_int_t)p->c2c_busy, "no_answer", (json_int_t)p->c2c_no_answer,
                            "failed", (json_int_t)p->c2c_failed,
                            "operator_no_answer", (json_int_t)p->c2c_operator_no_answer);
    return json_pack("{s:I, s:o, s:o, s:o}", "arrived", (json_int_t)p->arrived, "queues", qs,
                     "operators", os, "click_to_call", c2c);
}

/* Inbound calls not over yet, by where they are. */
static json_t *live_json(void) {
    long arriving = 0, waiting = 0, ringing = 0, talking = 0, other = 0;
    for (const call *k = live; k; k = k->next) {
        if (k->kind != K_INBOUND) other++;
        else if (k->phase == PH_DID_ANSWER || k->phase == PH_JOIN) arriving++;
        else if (k->phase == PH_WAITING || k->phase == PH_RETRY) waiting++;
        else if (k->phase == PH_RINGING) ringing++;
        else talking++;
    }
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "arriving", (json_int_t)arriving,
                     "waiting", (json_int_t)waiting, "ringing", (json_int_t)ringing,
                     "talking", (json_int_t)talking, "other", (json_int_t)other);
}

/* ---- the moment's state, as a wallboard shows it ---- */

/* Callers in each queue now and the longest current wait (the one who
 * joined first), into the whole run's queue objects. */
static void queues_now(json_t *qs, double now) {
    for (int i = 0; i < nqueues; i++) {
        const queue *q = &queues[i];
        json_t *o = json_object_get(qs, q->name);
        json_object_set_new(o, "waiting_now", json_integer(q->waiting));
        json_object_set_new(o, "longest_wait_now_s", json_real(q->head ? now - q->head->t_join : 0));
    }
}

/* What the agent's operators.c makes of the same facts: ringing or busy
 * first, then paused (in every queue it is in), ready, or logged out (in
 * no queue). */
static const char *op_state(const operator_ *op, int queues_in, int queues_paused) {
    if (op->call && op->call->phase == PH_RINGING && !op->in_call) return "ringing";
    if (op->call || op->in_call || op->other_calls) return "busy";
    if (!queues_in) return "logged_out";
    return queues_paused == queues_in ? "paused" : "ready";
}

static void operators_now(json_t *os, json_t *by_state) {
    int *in = calloc((size_t)nops, sizeof(int)), *paused = calloc((size_t)nops, sizeof(int));
    const char **reason = calloc((size_t)nops, sizeof(*reason));
    if (!in || !paused || !reason) abort();
    for (int i = 0; i < nqueues; i++)
        for (int j = 0; j < queues[i].nm; j++) {
            const member *m = &queues[i].m[j];
            if (!m->op) continue;
            in[m->op - ops]++;
            if (m->paused) paused[m->op - ops]++, reason[m->op - ops] = m->reason;
        }
    for (int i = 0; i < nops; i++) {
        const char *state = op_state(&ops[i], in[i], paused[i]);
        json_t *o = json_object_get(os, ops[i].name);
        json_object_set_new(o, "state_now", json_string(state));
        if (strcmp(state, "paused") == 0) json_object_set_new(o, "pause_reason_now", json_string(reason[i]));
        json_object_set_new(by_state, state, json_integer(json_integer_value(json_object_get(by_state, state)) + 1));
    }
    free(in);
    free(paused);
    free(reason);
}

json_t *truth_json(void) {
    char at[40] = "";
    if (started_at >= 0) siteclock_iso(started_at, at, sizeof(at));
    json_t *root = period_json(&total);
    json_t *by_day = json_object();
    for (int i = 0; i < ndays; i++) json_object_set_new(by_day, days[i].date, period_json(&days[i]));
    json_object_set_new(root, "days", by_day);
    json_object_set_new(root, "live", live_json());
    json_t *by_state = json_object();
    queues_now(json_object_get(root, "queues"), sim_now());
    operators_now(json_object_get(root, "operators"), by_state);
    json_object_set_new(root, "operators_by_state_now", by_state);
    json_object_set_new(root, "sl_threshold_s", json_real(cfg.sl_threshold));
    json_object_set_new(root, "time_zone", json_string(siteclock_zone()));
    json_object_set_new(root, "started_at", started_at >= 0 ? json_string(at) : json_null());
    return root;
}

static void period_free(period *p) {
    free(p->queues);
    free(p->ops);
}

void truth_free(void) {
    period_free(&total);
    for (int i = 0; i < ndays; i++) period_free(&days[i]);
    free(days);
    free(pause_started);
    days = NULL;
    pause_started = NULL;
    ndays = 0;
}
