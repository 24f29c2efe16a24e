/* members.c -- queue membership: who is in which queue, paused or not.
 *
 * Membership is dynamic, as app_queue's is: QueueAdd and QueueRemove change
 * it at run time, QueuePause and QueuePenalty change a member, and each
 * change is announced with the events and device states Asterisk 22 sends
 * (capture 04). Static members (every operator in every queue, unless the
 * queue was given as NAME:dynamic) cannot be removed, as in queues.conf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"
#include "simclock.h"

member *member_find(queue *q, const char *iface) {
    for (int i = 0; i < q->nm; i++)
        if (strcasecmp(q->m[i].iface, iface) == 0) return &q->m[i];
    return NULL;
}

int member_status(const operator_ *op) {
    return op->call || op->other_calls ? 2 : 1;   /* AST_DEVICE_INUSE : NOT_INUSE */
}

static int status_of(const member *m) {
    return m->op ? member_status(m->op) : 1;
}

/* QueueMemberStatus, QueueMemberAdded, ...Pause, ...Penalty, ...Removed all
 * carry the same body. */
void member_event(const char *event, const queue *q, const member *m) {
    const operator_ *op = m->op;
    ev_begin(event, "agent,all", stamp());
    ev_kv("Queue", q->name);
    ev_kv("MemberName", m->name);
    ev_kv("Interface", m->iface);
    ev_kv("StateInterface", m->state_iface);
    ev_kv("Membership", m->dynamic ? "dynamic" : "static");
    ev_kvf("Penalty", "%d", m->penalty);
    ev_kvf("CallsTaken", "%ld", op ? op->calls_taken : 0);
    ev_kvf("LastCall", "%ld", op ? op->last_call : 0);
    ev_kvf("LastPause", "%ld", m->last_pause);
    ev_kvf("LoginTime", "%ld", m->login_time);
    ev_kvf("InCall", "%d", op ? op->in_call : 0);
    ev_kvf("Status", "%d", status_of(m));
    ev_kvf("Paused", "%d", m->paused);
    ev_kv("PausedReason", m->reason);
    ev_kv("Ringinuse", "0");
    ev_kv("Wrapuptime", "0");
    ev_send();
}

void member_status_all_queues(const operator_ *op) {
    for (int i = 0; i < nqueues; i++)
        for (int j = 0; j < queues[i].nm; j++)
            if (queues[i].m[j].op == op) member_event("QueueMemberStatus", &queues[i], &queues[i].m[j]);
}

static int queue_has_available(const queue *q) {
    for (int i = 0; i < q->nm; i++)
        if (!q->m[i].paused) return 1;
    return 0;
}

/* Queue:<name>_avail is announced only when it changes. */
static void avail_update(queue *q) {
    int avail = queue_has_available(q);
    if (avail == q->avail) return;
    q->avail = avail;
    char dev[64];
    snprintf(dev, sizeof(dev), "Queue:%s_avail", q->name);
    device_state(dev, avail ? "NOT_INUSE" : "INUSE");
}

static void pause_state(const queue *q, const member *m) {
    char dev[160];
    snprintf(dev, sizeof(dev), "Queue:%s_pause_%s", q->name, m->iface);
    device_state(dev, m->paused ? "INUSE" : "NOT_INUSE");
}

static operator_ *operator_of_iface(const char *iface) {
    for (int i = 0; i < nops; i++)
        if (strcasecmp(ops[i].iface, iface) == 0) return &ops[i];
    return NULL;
}

static member *member_append(queue *q) {
    if (q->nm == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->m = realloc(q->m, (size_t)q->cap * sizeof(*q->m));
        if (!q->m) abort();
    }
    member *m = &q->m[q->nm++];
    memset(m, 0, sizeof(*m));
    return m;
}

void members_add_static(queue *q) {
    for (int i = 0; i < nops; i++) {
        member *m = member_append(q);
        snprintf(m->iface, sizeof(m->iface), "%s", ops[i].iface);
        snprintf(m->state_iface, sizeof(m->state_iface), "%s", ops[i].iface);
        snprintf(m->name, sizeof(m->name), "%s", ops[i].member);
        m->op = &ops[i];
        m->login_time = ops[i].login_time;
    }
    q->avail = queue_has_available(q);
}

member *member_add(queue *q, const char *iface, const char *name, const char *state_iface,
                   int penalty, int paused, const char *reason) {
    member *m = member_append(q);
    long now = (long)sim_now();
    snprintf(m->iface, sizeof(m->iface), "%s", iface);
    snprintf(m->name, sizeof(m->name), "%s", *name ? name : iface);
    snprintf(m->state_iface, sizeof(m->state_iface), "%s", *state_iface ? state_iface : iface);
    m->op = operator_of_iface(iface);
    m->dynamic = 1;
    m->penalty = penalty;
    m->paused = paused;
    snprintf(m->reason, sizeof(m->reason), "%s", paused ? reason : "");
    m->last_pause = paused ? now : 0;
    m->login_time = now;
    pause_state(q, m);
    member_event("QueueMemberAdded", q, m);
    avail_update(q);
    return m;
}

void member_remove(queue *q, member *m) {
    member_event("QueueMemberRemoved", q, m);
    size_t i = (size_t)(m - q->m);
    memmove(&q->m[i], &q->m[i + 1], (size_t)(q->nm - (int)i - 1) * sizeof(*m));
    q->nm--;
    avail_update(q);
}

void member_set_paused(queue *q, member *m, int paused, const char *reason) {
    m->paused = paused;
    snprintf(m->reason, sizeof(m->reason), "%s", paused ? reason : "");
    if (paused) m->last_pause = (long)sim_now();
    pause_state(q, m);
    avail_update(q);
    member_event("QueueMemberPause", q, m);
}

/* When op was last busy or last rung in vain: a member who just let a call
 * ring out comes after the others, as rrmemory moves on past them. */
static double last_busy(const operator_ *op) {
    return op->last_offer > (double)op->last_call ? op->last_offer : (double)op->last_call;
}

/* Ringinuse is off: a member whose phone is busy is not offered a call. */
operator_ *member_free_operator(queue *q) {
    operator_ *best = NULL;
    int best_penalty = 0;
    for (int i = 0; i < q->nm; i++) {
        member *m = &q->m[i];
        operator_ *op = m->op;
        if (!op || m->paused || op->call || op->other_calls) continue;
        if (!best || m->penalty < best_penalty ||
            (m->penalty == best_penalty && last_busy(op) < last_busy(best))) {
            best = op;
            best_penalty = m->penalty;
        }
    }
    return best;
}

void members_free(void) {
    for (int i = 0; i < nqueues; i++) {
        free(queues[i].m);
        queues[i].m = NULL;
        queues[i].nm = queues[i].cap = 0;
    }
}
