/* state.c -- the live state of one site (see state.h).
 *
 * State is kept in C structs and written as JSON only when a record is
 * handed out, once per loop turn however many events changed it: the
 * reducer runs for every derived event, the writer for every changed key.
 * Operators hold pointers to calls (offered, in progress) and calls hold
 * pointers to operators and queues; operators and queues live as long as
 * the state, and a call that ends is released from every operator it
 * concerned (its owners) before it leaves.
 *
 * Rules (docs/messages.md says them for consumers):
 * - operator state, first that holds: logged_out (no queue and no call),
 *   unavailable (device), on_call (a call in progress or device busy),
 *   ringing (a call offered or device ringing), paused, ready.
 * - handled: calls the operator answered (queue or outbound); talk_s: the
 *   talk time of those calls; missed: offers that ended without the
 *   operator answering (answered elsewhere, abandoned, ended, or the phone
 *   stopped ringing).
 * - queue offered: callers who entered it; answered (by the queue: the
 *   answer has the queue's wait_s) / abandoned / timed_out: who left it that
 *   way (one taken out by a Redirect is none of them); waits are the queue's
 *   wait_s; the
 *   service level is answered_within_sl / (answered + abandoned +
 *   timed_out); avg_wait_s is over all those callers, avg_talk_s over the
 *   calls answered from the queue that ended. */
#include "state.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "alloc.h"
#include "clock.h"
#include "sbuf.h"

typedef enum { OP_LOGGED_OUT, OP_UNAVAILABLE, OP_ON_CALL, OP_RINGING, OP_PAUSED, OP_READY,
               OP_STATES } op_state;
static const char *op_state_names[OP_STATES] = {"logged_out", "unavailable", "on_call",
                                                "ringing", "paused", "ready"};

typedef enum { DEV_UNKNOWN, DEV_READY, DEV_RINGING, DEV_BUSY, DEV_UNAVAILABLE, DEVICES } device;
static const char *device_names[DEVICES] = {"unknown", "ready", "ringing", "busy", "unavailable"};

typedef enum { CALL_STARTED, CALL_QUEUED, CALL_RINGING, CALL_CONNECTED, CALL_HELD,
               CALL_STATES } call_state;
static const char *call_state_names[CALL_STATES] = {"started", "queued", "ringing", "connected",
                                                    "held"};

static const char *kind_types[STATE_KINDS] = {"callbus.state.call", "callbus.state.operator",
                                              "callbus.queue.stats"};

/* A record waiting to be handed out; embedded in calls, operators, queues. */
typedef struct dirty {
    struct dirty *next;
    double time;          /* of the last change */
    unsigned char kind;   /* state_kind */
    unsigned char queued;
} dirty;

typedef struct st_op st_op;
typedef struct st_queue st_queue;

typedef struct opv {
    st_op **v;
    size_t n, cap;
} opv;

typedef struct st_call {
    char *id;
    call_state state;
    const char *direction;      /* "inbound", "outbound" or NULL */
    char *caller_num, *caller_name;
    char *party;                /* outbound: the number that answered */
    st_queue *queue;            /* the queue it entered last */
    int position;               /* -1: none */
    st_op *operator;            /* who has the call now */
    opv offered_to, operators;
    opv owners;                 /* every operator the call concerns */
    double started_at, queued_at, answered_at;   /* 0: not yet */
    st_queue *answered_from;    /* answered while waiting in this queue */
    st_queue *waiting_in;       /* in its waiting list now */
    struct st_call *wprev, *wnext;
    int held, unconfirmed, ended;
    dirty d;
    UT_hash_handle hh;
} st_call;

typedef struct st_member {
    st_queue *q;
    int paused, confirmed;
    char *reason;
} st_member;

typedef struct st_recent {
    char *call_id, *party_num, *party_name, *queue, *disposition;
    const char *direction;
    double duration_s, talk_s, ended_at;   /* NAN: unknown */
} st_recent;

struct st_op {
    char *id, *member_name, *interface;
    st_member *queues;
    size_t nq, capq;
    int paused_all;             /* a queue-less pause said so */
    char *pause_reason;
    device dev;
    st_call *offered;
    double offered_since;
    st_call *call;
    double call_since;          /* answered_at of its part of the call; 0: not answered */
    char *restored_offered, *restored_call;   /* call ids, until restore_end */
    char restored_date[16];     /* of the counters, until restore_end */
    st_recent recent[STATE_RECENT_CALLS];
    size_t recent_head, recent_n;
    sbuf recent_json;           /* the recent calls as written, until they change */
    int recent_stale;
    op_state state;
    double state_since;
    long handled, missed;
    double talk_s;
    dirty d;
    UT_hash_handle hh;
};

struct st_queue {
    char *name;
    st_call *wait_head, *wait_tail;
    long waiting;
    long offered, answered, abandoned, timed_out, within_sl, talked;
    double wait_total, talk_total;
    long members, by_state[OP_STATES];
    char restored_date[16];
    dirty d;
    UT_hash_handle hh;
};

struct state {
    char timezone[64];
    int sl;
    char date[16];              /* the local day the counters belong to */
    double day_end;             /* its end; 0: no day yet */
    st_call *calls;
    st_op *ops;
    st_queue *queues;
    dirty *dirty_head, *dirty_tail;
    size_t dirty_n;
    sbuf out;
};

#define CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- small helpers ---- */

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static double jnum(const json_t *o, const char *key, double def) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

static void set_str(char **dst, const char *src) {
    if (!src) return;
    if (*dst && strcmp(*dst, src) == 0) return;
    free(*dst);
    *dst = xstrdup(src);
}

static void clear_str(char **dst) {
    free(*dst);
    *dst = NULL;
}

static const char *direction_of(const char *s) {
    if (!s) return NULL;
    if (strcmp(s, "inbound") == 0) return "inbound";
    if (strcmp(s, "outbound") == 0) return "outbound";
    return NULL;
}

static int opv_find(const opv *a, const st_op *op) {
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i] == op) return (int)i;
    return -1;
}

static void opv_add(opv *a, st_op *op) {
    if (!op || opv_find(a, op) >= 0) return;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = op;
}

static void opv_del(opv *a, const st_op *op) {
    int i = opv_find(a, op);
    if (i < 0) return;
    memmove(a->v + i, a->v + i + 1, (a->n - (size_t)i - 1) * sizeof(*a->v));
    a->n--;
}

/* ---- changed records ---- */

static void mark(state *s, dirty *d, double time) {
    if (time > d->time || !d->queued) d->time = time;
    if (d->queued) return;
    d->queued = 1;
    d->next = NULL;
    if (s->dirty_tail) s->dirty_tail->next = d;
    else s->dirty_head = d;
    s->dirty_tail = d;
    s->dirty_n++;
}

static void mark_all_queues(state *s, double time) {
    for (st_queue *q = s->queues; q; q = q->hh.next) mark(s, &q->d, time);
}

/* ---- the day ---- */

/* The local date of t and the instant the next local day starts. A
 * midnight the clocks jump over starts the day at the first instant that
 * has the new date. */
static double day_of(double t, char *date, size_t len) {
    time_t secs = (time_t)floor(t);
    struct tm tm;
    localtime_r(&secs, &tm);
    strftime(date, len, "%Y-%m-%d", &tm);
    struct tm next = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = tm.tm_mday + 1,
                      .tm_isdst = -1};
    time_t end = mktime(&next);
    char d2[16];
    for (int i = 0; i < 4 * 26; i++) {
        struct tm e;
        localtime_r(&end, &e);
        strftime(d2, sizeof(d2), "%Y-%m-%d", &e);
        if (strcmp(d2, date) != 0) break;
        end += 900;   /* zone offsets are whole quarter hours */
    }
    return end > secs ? (double)end : t + 86400;
}

static void reset_counters(state *s, double time) {
    for (st_queue *q = s->queues; q; q = q->hh.next) {
        q->offered = q->answered = q->abandoned = q->timed_out = q->within_sl = q->talked = 0;
        q->wait_total = q->talk_total = 0;
        mark(s, &q->d, time);
    }
    for (st_op *op = s->ops; op; op = op->hh.next) {
        op->handled = op->missed = 0;
        op->talk_s = 0;
        mark(s, &op->d, time);
    }
}

static void roll_day(state *s, double time) {
    if (time < s->day_end) return;
    int had_day = s->day_end > 0;
    s->day_end = day_of(time, s->date, sizeof(s->date));
    if (had_day) reset_counters(s, time);
}

/* ---- tables ---- */

static st_op *op_find(state *s, const char *id) {
    st_op *op = NULL;
    if (id && *id) HASH_FIND_STR(s->ops, id, op);
    return op;
}

static st_op *op_get(state *s, const char *id, double time) {
    if (!id || !*id) return NULL;
    st_op *op = op_find(s, id);
    if (op) return op;
    op = xcalloc(1, sizeof(*op));
    op->id = xstrdup(id);
    op->state = OP_LOGGED_OUT;
    op->state_since = time;
    op->d.kind = STATE_OPERATORS;
    sbuf_init(&op->recent_json);
    op->recent_stale = 1;
    HASH_ADD_KEYPTR(hh, s->ops, op->id, strlen(op->id), op);
    return op;
}

static st_queue *queue_get(state *s, const char *name) {
    if (!name || !*name) return NULL;
    st_queue *q = NULL;
    HASH_FIND_STR(s->queues, name, q);
    if (q) return q;
    q = xcalloc(1, sizeof(*q));
    q->name = xstrdup(name);
    q->d.kind = STATE_QUEUES;
    HASH_ADD_KEYPTR(hh, s->queues, q->name, strlen(q->name), q);
    return q;
}

static st_call *call_find(state *s, const char *id) {
    st_call *c = NULL;
    if (id && *id) HASH_FIND_STR(s->calls, id, c);
    return c;
}

static st_call *call_get(state *s, const char *id) {
    st_call *c = call_find(s, id);
    if (c || !id || !*id) return c;
    c = xcalloc(1, sizeof(*c));
    c->id = xstrdup(id);
    c->position = -1;
    c->d.kind = STATE_CALLS;
    HASH_ADD_KEYPTR(hh, s->calls, c->id, strlen(c->id), c);
    return c;
}

static void call_free(st_call *c) {
    free(c->id);
    free(c->caller_num);
    free(c->caller_name);
    free(c->party);
    free(c->offered_to.v);
    free(c->operators.v);
    free(c->owners.v);
    free(c);
}

static void recent_clear(st_recent *r) {
    free(r->call_id);
    free(r->party_num);
    free(r->party_name);
    free(r->queue);
    free(r->disposition);
    memset(r, 0, sizeof(*r));
}

static void op_free(st_op *op) {
    free(op->id);
    free(op->member_name);
    free(op->interface);
    for (size_t i = 0; i < op->nq; i++) free(op->queues[i].reason);
    free(op->queues);
    free(op->pause_reason);
    free(op->restored_offered);
    free(op->restored_call);
    for (size_t i = 0; i < STATE_RECENT_CALLS; i++) recent_clear(&op->recent[i]);
    sbuf_free(&op->recent_json);
    free(op);
}

/* ---- queue waiting lists ---- */

static void wait_leave(state *s, st_call *c, double time) {
    st_queue *q = c->waiting_in;
    if (!q) return;
    if (c->wprev) c->wprev->wnext = c->wnext;
    else q->wait_head = c->wnext;
    if (c->wnext) c->wnext->wprev = c->wprev;
    else q->wait_tail = c->wprev;
    c->wprev = c->wnext = NULL;
    c->waiting_in = NULL;
    q->waiting--;
    mark(s, &q->d, time);
}

static void wait_join(state *s, st_call *c, st_queue *q, double time) {
    wait_leave(s, c, time);
    c->waiting_in = q;
    c->wprev = q->wait_tail;
    if (q->wait_tail) q->wait_tail->wnext = c;
    else q->wait_head = c;
    q->wait_tail = c;
    q->waiting++;
    mark(s, &q->d, time);
}

/* ---- operators ---- */

static st_member *member_find(st_op *op, const st_queue *q) {
    for (size_t i = 0; i < op->nq; i++)
        if (op->queues[i].q == q) return &op->queues[i];
    return NULL;
}

static int op_paused(const st_op *op) {
    if (op->paused_all) return 1;
    if (op->nq == 0) return 0;
    for (size_t i = 0; i < op->nq; i++)
        if (!op->queues[i].paused) return 0;
    return 1;
}

static op_state op_compute(const st_op *op) {
    if (op->nq == 0 && !op->call) return OP_LOGGED_OUT;
    if (op->dev == DEV_UNAVAILABLE) return OP_UNAVAILABLE;
    if (op->call) return OP_ON_CALL;
    /* An offer outranks the device: a Local queue member's device reads
     * in use while it is only being rung (the Local channel exists). */
    if (op->offered) return OP_RINGING;
    if (op->dev == DEV_BUSY) return OP_ON_CALL;
    if (op->dev == DEV_RINGING) return OP_RINGING;
    if (op_paused(op)) return OP_PAUSED;
    return OP_READY;
}

/* The operator changed: its record is due, and its state (with the count
 * of its queues' members by state) follows. */
static void op_touch(state *s, st_op *op, double time) {
    mark(s, &op->d, time);
    op_state now = op_compute(op);
    if (now == op->state) return;
    for (size_t i = 0; i < op->nq; i++) {
        st_queue *q = op->queues[i].q;
        q->by_state[op->state]--;
        q->by_state[now]++;
        mark(s, &q->d, time);
    }
    op->state = now;
    op->state_since = time;
}

static st_member *member_add(state *s, st_op *op, st_queue *q, double time) {
    st_member *m = member_find(op, q);
    if (m) return m;
    if (op->nq == op->capq) {
        op->capq = op->capq ? op->capq * 2 : 2;
        op->queues = xrealloc(op->queues, op->capq * sizeof(*op->queues));
    }
    m = &op->queues[op->nq++];
    *m = (st_member){.q = q, .confirmed = 1};
    q->members++;
    q->by_state[op->state]++;
    mark(s, &q->d, time);
    return m;
}

static void member_del(state *s, st_op *op, size_t i, double time) {
    st_queue *q = op->queues[i].q;
    q->members--;
    q->by_state[op->state]--;
    mark(s, &q->d, time);
    free(op->queues[i].reason);
    op->queues[i] = op->queues[--op->nq];
}

/* The operator's phone stopped ringing for the call it was offered. */
static void offer_end(state *s, st_op *op, int missed, double time) {
    st_call *c = op->offered;
    if (!c) return;
    op->offered = NULL;
    op->offered_since = 0;
    opv_del(&c->offered_to, op);
    if (missed) op->missed++;
    mark(s, &c->d, time);
    op_touch(s, op, time);
}

/* Ends every offer of the call. A restored call may name in offered_to an
 * operator whose own record says no offer or another call (records are
 * written apart, and hostile ones exist): dropped from the list, else the
 * loop would never end (offer_end only removes the operator's own offer). */
static void offers_end(state *s, st_call *c, int missed, double time) {
    while (c->offered_to.n) {
        st_op *op = c->offered_to.v[0];
        if (op->offered == c) offer_end(s, op, missed, time);
        else opv_del(&c->offered_to, op);
    }
}


static void call_slot_end(state *s, st_op *op, const st_call *c, double time) {
    if (!op || op->call != c) return;
    op->call = NULL;
    op->call_since = 0;
    op_touch(s, op, time);
}

static void set_pause(st_op *op, st_member *m, int paused, const char *reason) {
    if (m) {
        m->paused = paused;
        clear_str(&m->reason);
        if (paused && reason && *reason) m->reason = xstrdup(reason);
    }
    /* A per-queue ready means the operator takes calls again. */
    if (!paused || !m) op->paused_all = paused && !m;
    if (paused) {
        clear_str(&op->pause_reason);
        if (reason && *reason) op->pause_reason = xstrdup(reason);
    }
}

/* The device is idle again: a call still offered rang out. */
static void device_idle(state *s, st_op *op, device dev, double time) {
    op->dev = dev;
    offer_end(s, op, 1, time);
}

static void on_operator(state *s, const char *t, const char *key, double time, const json_t *d) {
    const char *id = jstr(d, "operator_id");
    st_op *op = op_get(s, id ? id : key, time);
    if (!op) return;
    set_str(&op->member_name, jstr(d, "member_name"));
    set_str(&op->interface, jstr(d, "interface"));
    st_queue *q = queue_get(s, jstr(d, "queue"));
    st_member *m = q ? member_find(op, q) : NULL;
    if (m) m->confirmed = 1;
    if (strcmp(t, "logged_in") == 0) {
        if (q) member_add(s, op, q, time);
    } else if (strcmp(t, "logged_out") == 0) {
        for (size_t i = op->nq; i-- > 0;)
            if (!q || op->queues[i].q == q) member_del(s, op, i, time);
    } else if (strcmp(t, "paused") == 0) {
        if (q && !m) m = member_add(s, op, q, time);
        set_pause(op, m, 1, jstr(d, "reason"));
        /* Paused everywhere is announced when the device is idle. */
        if (!q) device_idle(s, op, DEV_READY, time);
    } else if (strcmp(t, "ready") == 0) {
        if (q && !m) m = member_add(s, op, q, time);
        set_pause(op, m, 0, NULL);
        device_idle(s, op, DEV_READY, time);
    } else if (strcmp(t, "unavailable") == 0) {
        device_idle(s, op, DEV_UNAVAILABLE, time);
    } else if (strcmp(t, "ringing") == 0) {
        op->dev = DEV_RINGING;
    } else if (strcmp(t, "busy") == 0) {
        op->dev = DEV_BUSY;
    } else {
        return;
    }
    op_touch(s, op, time);
}

/* ---- calls ---- */

static void merge_caller(st_call *c, const json_t *d) {
    json_t *caller = json_object_get(d, "caller");
    if (!json_is_object(caller)) return;
    set_str(&c->caller_num, jstr(caller, "number"));
    set_str(&c->caller_name, jstr(caller, "name"));
}

static void call_touch(state *s, st_call *c, double time) {
    c->unconfirmed = 0;
    mark(s, &c->d, time);
}

/* The queue's answer (AgentConnect: the answer carries the queue's wait_s)
 * is counted once, when the caller leaves waiting. A caller answered after
 * being taken out of the queue otherwise (a Redirect: the answer command, a
 * transfer) leaves it neither answered nor abandoned, as app_queue counts. */
static void count_answer(state *s, st_call *c, const json_t *d, double time) {
    st_queue *q = c->waiting_in;
    json_t *wait = json_object_get(d, "wait_s");
    if (!q) return;
    wait_leave(s, c, time);
    if (!json_is_number(wait)) return;
    q->answered++;
    q->wait_total += json_number_value(wait);
    if (json_number_value(wait) <= s->sl) q->within_sl++;
    c->answered_from = q;
}

static void on_started(state *s, st_call *c, const json_t *d, double time) {
    if (!c->started_at) c->started_at = time;
    if (!c->direction) c->direction = direction_of(jstr(d, "direction"));
    /* Click-to-call: the operator's own phone starts the call. */
    st_op *op = op_get(s, jstr(d, "operator_id"), time);
    if (!op) return;
    opv_add(&c->owners, op);
    if (!c->operator) c->operator = op;
    if (!op->call) {
        op->call = c;
        op->call_since = 0;
        op_touch(s, op, time);
    }
}

static void on_queued(state *s, st_call *c, const json_t *d, double time) {
    st_queue *q = queue_get(s, jstr(d, "queue"));
    if (!q) return;
    c->queue = q;
    c->position = (int)jnum(d, "position", -1);
    c->queued_at = time;
    c->state = CALL_QUEUED;
    q->offered++;
    wait_join(s, c, q, time);
}

static void on_offered(state *s, st_call *c, const json_t *d, double time) {
    st_op *op = op_get(s, jstr(d, "operator_id"), time);
    if (!op) return;
    if (c->state == CALL_STARTED || c->state == CALL_QUEUED) c->state = CALL_RINGING;
    if (op->offered && op->offered != c) offer_end(s, op, 1, time);
    opv_add(&c->offered_to, op);
    opv_add(&c->owners, op);
    if (op->offered != c) {
        op->offered = c;
        op->offered_since = time;
    }
    op_touch(s, op, time);
}

static void on_answered(state *s, st_call *c, const json_t *d, double time) {
    count_answer(s, c, d, time);
    st_op *op = op_get(s, jstr(d, "operator_id"), time);
    if (op && op->offered == c) offer_end(s, op, 0, time);
    offers_end(s, c, 1, time);
    if (!c->answered_at) c->answered_at = time;
    c->state = c->held ? CALL_HELD : CALL_CONNECTED;
    c->position = -1;
    set_str(&c->party, jstr(d, "party"));
    if (!op) return;
    c->operator = op;
    opv_add(&c->operators, op);
    opv_add(&c->owners, op);
    op->call = c;
    op->call_since = time;
    op->handled++;
    op_touch(s, op, time);
}

static void on_held(state *s, st_call *c, int held, double time) {
    c->held = held;
    if (c->state == CALL_CONNECTED || c->state == CALL_HELD)
        c->state = held ? CALL_HELD : CALL_CONNECTED;
    for (size_t i = 0; i < c->owners.n; i++)
        if (c->owners.v[i]->call == c) mark(s, &c->owners.v[i]->d, time);
}

static void on_transferred(state *s, st_call *c, const json_t *d, double time) {
    call_slot_end(s, op_find(s, jstr(d, "from_operator_id")), c, time);
    st_op *to = op_get(s, jstr(d, "to_operator_id"), time);
    c->operator = to;
    if (!to) return;
    opv_add(&c->operators, to);
    opv_add(&c->owners, to);
    to->call = c;
    to->call_since = time;
    op_touch(s, to, time);
}

static void on_abandoned(state *s, st_call *c, const json_t *d, double time) {
    st_queue *q = queue_get(s, jstr(d, "queue"));
    if (!q) q = c->queue;
    if (q) {
        const char *reason = jstr(d, "reason");
        if (reason && strcmp(reason, "timeout") == 0) q->timed_out++;
        else q->abandoned++;
        q->wait_total += jnum(d, "wait_s", c->queued_at ? time - c->queued_at : 0);
        mark(s, &q->d, time);
    }
    wait_leave(s, c, time);
    offers_end(s, c, 1, time);
    for (size_t i = 0; i < c->owners.n; i++) call_slot_end(s, c->owners.v[i], c, time);
    c->state = CALL_STARTED;
    c->position = -1;
    c->operator = NULL;
}

/* The newest first; the oldest goes when the ring is full. An operator who
 * was only rung for a call a colleague answered sees it as not answered by
 * them (no_answer, no talk time): the colleague's conversation is not theirs. */
static void recent_add(st_op *op, const char *call_id, const st_call *c, const json_t *d, int rung_only) {
    op->recent_head = (op->recent_head + STATE_RECENT_CALLS - 1) % STATE_RECENT_CALLS;
    st_recent *r = &op->recent[op->recent_head];
    recent_clear(r);
    if (op->recent_n < STATE_RECENT_CALLS) op->recent_n++;
    op->recent_stale = 1;
    r->call_id = xstrdup(call_id);
    r->direction = direction_of(jstr(d, "direction"));
    if (!r->direction && c) r->direction = c->direction;
    json_t *caller = json_object_get(d, "caller");
    const char *party = jstr(d, "party");
    if (r->direction && strcmp(r->direction, "outbound") == 0) {
        set_str(&r->party_num, party);
    } else if (json_is_object(caller)) {
        set_str(&r->party_num, jstr(caller, "number"));
        set_str(&r->party_name, jstr(caller, "name"));
    } else if (c) {
        set_str(&r->party_num, c->caller_num);
        set_str(&r->party_name, c->caller_name);
    }
    const char *queue = jstr(d, "queue");
    set_str(&r->queue, queue ? queue : c && c->queue ? c->queue->name : NULL);
    const char *disposition = jstr(d, "disposition");
    int colleagues_call = rung_only && disposition && strcmp(disposition, "answered") == 0;
    set_str(&r->disposition, colleagues_call ? "no_answer" : disposition);
    r->duration_s = jnum(d, "duration_s", NAN);
    r->talk_s = colleagues_call ? NAN : jnum(d, "talk_s", NAN);
    const char *ended_at = jstr(d, "ended_at");
    r->ended_at = ended_at ? rfc3339_parse(ended_at) : NAN;
}

/* Everyone the end event names concerns the call as well. */
static void owners_of_end(state *s, opv *to, const json_t *d, double time) {
    static const char *keys[] = {"operator_id", "answered_by"};
    for (size_t i = 0; i < 2; i++) opv_add(to, op_get(s, jstr(d, keys[i]), time));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "operators"), i, e)
        opv_add(to, op_get(s, json_string_value(e), time));
}

static void call_leave(state *s, st_call *c, double time) {
    HASH_DEL(s->calls, c);
    c->ended = 1;
    mark(s, &c->d, time);
}

static void on_ended(state *s, const char *id, st_call *c, const json_t *d, double time) {
    opv owners = {0}, had = {0};   /* had: the operators who had the call, not only rung */
    if (c) {
        for (size_t i = 0; i < c->owners.n; i++) opv_add(&owners, c->owners.v[i]);
        for (size_t i = 0; i < c->operators.n; i++) opv_add(&had, c->operators.v[i]);
        wait_leave(s, c, time);
        offers_end(s, c, 1, time);
    }
    owners_of_end(s, &had, d, time);
    for (size_t i = 0; i < had.n; i++) opv_add(&owners, had.v[i]);
    double talk = jnum(d, "talk_s", 0);
    if (c && c->answered_from) {
        c->answered_from->talked++;
        c->answered_from->talk_total += talk;
        mark(s, &c->answered_from->d, time);
    }
    st_op *by = op_find(s, jstr(d, "answered_by"));
    if (by) by->talk_s += talk;
    for (size_t i = 0; i < owners.n; i++) {
        recent_add(owners.v[i], id, c, d, opv_find(&had, owners.v[i]) < 0);
        if (c) call_slot_end(s, owners.v[i], c, time);
        op_touch(s, owners.v[i], time);
    }
    free(owners.v);
    free(had.v);
    if (!c) c = call_get(s, id);   /* unknown: its key still gets a tombstone */
    if (c) call_leave(s, c, time);
}

static void on_call(state *s, const char *t, const char *key, double time, const json_t *d) {
    const char *id = jstr(d, "call_id");
    if (!id || !*id) id = key;
    if (!id || !*id) return;
    if (strcmp(t, "ended") == 0) {
        on_ended(s, id, call_find(s, id), d, time);
        return;
    }
    st_call *c = call_get(s, id);
    merge_caller(c, d);
    if (!c->direction) c->direction = direction_of(jstr(d, "direction"));
    if (strcmp(t, "started") == 0) on_started(s, c, d, time);
    else if (strcmp(t, "queued") == 0) on_queued(s, c, d, time);
    else if (strcmp(t, "offered") == 0) on_offered(s, c, d, time);
    else if (strcmp(t, "answered") == 0) on_answered(s, c, d, time);
    else if (strcmp(t, "held") == 0) on_held(s, c, 1, time);
    else if (strcmp(t, "unheld") == 0) on_held(s, c, 0, time);
    else if (strcmp(t, "transferred") == 0) on_transferred(s, c, d, time);
    else if (strcmp(t, "abandoned") == 0) on_abandoned(s, c, d, time);
    call_touch(s, c, time);
    /* Everyone with the call in their record shows what changed. */
    for (size_t i = 0; i < c->owners.n; i++) {
        st_op *op = c->owners.v[i];
        if (op->call == c || op->offered == c) mark(s, &op->d, time);
    }
}

void state_apply(state *s, const char *type, const char *key, double time, const json_t *data) {
    if (!s || !type || !json_is_object(data) || !isfinite(time)) return;
    roll_day(s, time);
    if (strncmp(type, "callbus.call.", 13) == 0) on_call(s, type + 13, key, time, data);
    else if (strncmp(type, "callbus.operator.", 17) == 0) on_operator(s, type + 17, key, time, data);
}

void state_tick(state *s, double now) {
    roll_day(s, now);
    mark_all_queues(s, now);
}

/* ---- writing records ---- */

static void put_str(sbuf *b, const char *s) {
    if (s) sbuf_json_str(b, s, strlen(s));
    else sbuf_puts(b, "null");
}

/* ,"key": with the key a string literal: no formatting on the way. */
#define PUT_KEY(b, key) sbuf_append((b), ",\"" key "\":", sizeof(",\"" key "\":") - 1)

/* At most `decimals` decimals, without trailing zeros. */
static void put_num(sbuf *b, double v, int decimals) {
    if (!isfinite(v)) {
        sbuf_puts(b, "null");
        return;
    }
    char tmp[64];
    int n = snprintf(tmp, sizeof(tmp), "%.*f", decimals, v);
    if (decimals > 0) {
        while (n > 0 && tmp[n - 1] == '0') n--;
        if (n > 0 && tmp[n - 1] == '.') n--;
    }
    if (n == 2 && tmp[0] == '-' && tmp[1] == '0') {
        tmp[0] = '0';
        n = 1;
    }
    sbuf_append(b, tmp, (size_t)n);
}

static void put_time(sbuf *b, double t) {
    if (t > 0 && isfinite(t)) sbuf_json_time(b, t);
    else sbuf_puts(b, "null");
}

static void put_ops(sbuf *b, const opv *a) {
    sbuf_putc(b, '[');
    for (size_t i = 0; i < a->n; i++) {
        if (i) sbuf_putc(b, ',');
        put_str(b, a->v[i]->id);
    }
    sbuf_putc(b, ']');
}

static void put_party(sbuf *b, const char *num, const char *name) {
    if (!num && !name) {
        sbuf_puts(b, "null");
        return;
    }
    sbuf_puts(b, "{\"number\":");
    put_str(b, num);
    if (name) {
        sbuf_puts(b, ",\"name\":");
        put_str(b, name);
    }
    sbuf_putc(b, '}');
}

/* Who is on the other end: the caller of an inbound call, the number the
 * operator called for an outbound one. */
static void put_other_party(sbuf *b, const st_call *c) {
    if (c->direction && strcmp(c->direction, "outbound") == 0) put_party(b, c->party, NULL);
    else put_party(b, c->caller_num, c->caller_name);
}

static const char *queue_name(const st_queue *q) { return q ? q->name : NULL; }

static void write_call(sbuf *b, const st_call *c) {
    sbuf_puts(b, "{\"call_id\":");
    put_str(b, c->id);
    PUT_KEY(b, "state");
    put_str(b, call_state_names[c->state]);
    PUT_KEY(b, "direction");
    put_str(b, c->direction);
    PUT_KEY(b, "caller");
    put_party(b, c->caller_num, c->caller_name);
    PUT_KEY(b, "party");
    put_str(b, c->party);
    PUT_KEY(b, "queue");
    put_str(b, queue_name(c->queue));
    PUT_KEY(b, "position");
    if (c->position >= 0 && c->waiting_in) sbuf_printf(b, "%d", c->position);
    else sbuf_puts(b, "null");
    PUT_KEY(b, "operator_id");
    put_str(b, c->operator ? c->operator->id : NULL);
    PUT_KEY(b, "offered_to");
    put_ops(b, &c->offered_to);
    PUT_KEY(b, "operators");
    put_ops(b, &c->operators);
    PUT_KEY(b, "started_at");
    put_time(b, c->started_at);
    PUT_KEY(b, "queued_at");
    put_time(b, c->queued_at);
    PUT_KEY(b, "answered_at");
    put_time(b, c->answered_at);
    sbuf_putc(b, '}');
}

/* null, or the opening of an operator's view of a call: id and other party. */
static int put_call_head(sbuf *b, const st_call *c) {
    if (!c) {
        sbuf_puts(b, "null");
        return 0;
    }
    sbuf_puts(b, "{\"call_id\":");
    put_str(b, c->id);
    PUT_KEY(b, "caller");
    put_other_party(b, c);
    return 1;
}

static void write_offered(sbuf *b, const st_op *op) {
    if (!put_call_head(b, op->offered)) return;
    PUT_KEY(b, "queue");
    put_str(b, queue_name(op->offered->queue));
    PUT_KEY(b, "since");
    put_time(b, op->offered_since);
    sbuf_putc(b, '}');
}

static void write_in_progress(sbuf *b, const st_op *op) {
    const st_call *c = op->call;
    if (!put_call_head(b, c)) return;
    PUT_KEY(b, "direction");
    put_str(b, c->direction);
    PUT_KEY(b, "queue");
    put_str(b, queue_name(c->queue));
    PUT_KEY(b, "answered_at");
    put_time(b, op->call_since);
    sbuf_printf(b, ",\"held\":%s}", c->held ? "true" : "false");
}

/* Recent calls change when a call ends, the rest of the record far more
 * often: they are written once per change and copied into every record. */
static void write_recent(sbuf *out, st_op *op) {
    sbuf *b = &op->recent_json;
    if (!op->recent_stale) {
        sbuf_append(out, b->data, b->len);
        return;
    }
    sbuf_reset(b);
    sbuf_putc(b, '[');
    for (size_t i = 0; i < op->recent_n; i++) {
        const st_recent *r = &op->recent[(op->recent_head + i) % STATE_RECENT_CALLS];
        if (i) sbuf_putc(b, ',');
        sbuf_puts(b, "{\"call_id\":");
        put_str(b, r->call_id);
        PUT_KEY(b, "caller");
        put_party(b, r->party_num, r->party_name);
        PUT_KEY(b, "direction");
        put_str(b, r->direction);
        PUT_KEY(b, "queue");
        put_str(b, r->queue);
        PUT_KEY(b, "disposition");
        put_str(b, r->disposition);
        PUT_KEY(b, "duration_s");
        put_num(b, r->duration_s, 3);
        PUT_KEY(b, "talk_s");
        put_num(b, r->talk_s, 3);
        PUT_KEY(b, "ended_at");
        put_time(b, r->ended_at);
        sbuf_putc(b, '}');
    }
    sbuf_putc(b, ']');
    op->recent_stale = 0;
    sbuf_append(out, b->data, b->len);
}

static void write_queues_of(sbuf *b, const st_op *op) {
    sbuf_putc(b, '[');
    for (size_t i = 0; i < op->nq; i++) {
        const st_member *m = &op->queues[i];
        if (i) sbuf_putc(b, ',');
        sbuf_puts(b, "{\"queue\":");
        put_str(b, m->q->name);
        sbuf_printf(b, ",\"paused\":%s,\"reason\":", m->paused ? "true" : "false");
        put_str(b, m->paused ? m->reason : NULL);
        sbuf_putc(b, '}');
    }
    sbuf_putc(b, ']');
}

static void write_op(const state *s, sbuf *b, st_op *op) {
    int paused = op_paused(op);
    sbuf_puts(b, "{\"operator_id\":");
    put_str(b, op->id);
    PUT_KEY(b, "member_name");
    put_str(b, op->member_name);
    PUT_KEY(b, "interface");
    put_str(b, op->interface);
    sbuf_printf(b, ",\"logged_in\":%s,\"queues\":", op->nq ? "true" : "false");
    write_queues_of(b, op);
    PUT_KEY(b, "state");
    put_str(b, op_state_names[op->state]);
    PUT_KEY(b, "state_since");
    put_time(b, op->state_since);
    sbuf_printf(b, ",\"paused\":%s,\"pause_reason\":", paused ? "true" : "false");
    put_str(b, paused ? op->pause_reason : NULL);
    PUT_KEY(b, "device");
    put_str(b, device_names[op->dev]);
    PUT_KEY(b, "offered");
    write_offered(b, op);
    PUT_KEY(b, "call");
    write_in_progress(b, op);
    PUT_KEY(b, "recent");
    write_recent(b, op);
    sbuf_puts(b, ",\"today\":{\"date\":");
    put_str(b, s->date);
    sbuf_printf(b, ",\"handled\":%ld,\"talk_s\":", op->handled);
    put_num(b, op->talk_s, 3);
    sbuf_printf(b, ",\"missed\":%ld}}", op->missed);
}

static void put_avg(sbuf *b, double total, long n, int decimals) {
    if (n > 0) put_num(b, total / (double)n, decimals);
    else sbuf_puts(b, "null");
}

static void write_queue(const state *s, sbuf *b, const st_queue *q, double time) {
    sbuf_puts(b, "{\"queue\":");
    put_str(b, q->name);
    PUT_KEY(b, "date");
    put_str(b, s->date);
    PUT_KEY(b, "timezone");
    put_str(b, s->timezone);
    sbuf_printf(b, ",\"waiting\":%ld,\"oldest_waiting_since\":", q->waiting);
    double oldest = q->wait_head ? q->wait_head->queued_at : 0;
    put_time(b, oldest);
    double longest = oldest > 0 && time > oldest ? floor(time - oldest) : 0;
    sbuf_printf(b, ",\"longest_wait_s\":%.0f", longest);
    sbuf_printf(b, ",\"offered\":%ld,\"answered\":%ld,\"abandoned\":%ld,\"timed_out\":%ld",
                q->offered, q->answered, q->abandoned, q->timed_out);
    sbuf_printf(b, ",\"answered_within_sl\":%ld,\"sl_threshold_s\":%d,\"service_level\":",
                q->within_sl, s->sl);
    put_avg(b, (double)q->within_sl, q->answered + q->abandoned + q->timed_out, 3);
    PUT_KEY(b, "avg_wait_s");
    put_avg(b, q->wait_total, q->answered + q->abandoned + q->timed_out, 1);
    PUT_KEY(b, "avg_talk_s");
    put_avg(b, q->talk_total, q->talked, 1);
    PUT_KEY(b, "wait_s_total");
    put_num(b, q->wait_total, 3);
    PUT_KEY(b, "talk_s_total");
    put_num(b, q->talk_total, 3);
    sbuf_printf(b, ",\"talked\":%ld,\"operators\":{\"logged_in\":%ld", q->talked, q->members);
    for (int st = OP_UNAVAILABLE; st < OP_STATES; st++)
        sbuf_printf(b, ",\"%s\":%ld", op_state_names[st], q->by_state[st]);
    sbuf_puts(b, "}}");
}

static void hand_out(state *s, dirty *d, state_record_fn fn, void *ctx) {
    sbuf_reset(&s->out);
    if (d->kind == STATE_CALLS) {
        st_call *c = CONTAINER(d, st_call, d);
        if (c->ended) {
            fn(ctx, STATE_CALLS, c->id, d->time, NULL, 0);
            call_free(c);
            return;
        }
        write_call(&s->out, c);
        fn(ctx, STATE_CALLS, c->id, d->time, s->out.data, s->out.len);
    } else if (d->kind == STATE_OPERATORS) {
        st_op *op = CONTAINER(d, st_op, d);
        write_op(s, &s->out, op);
        fn(ctx, STATE_OPERATORS, op->id, d->time, s->out.data, s->out.len);
    } else {
        st_queue *q = CONTAINER(d, st_queue, d);
        write_queue(s, &s->out, q, d->time);
        fn(ctx, STATE_QUEUES, q->name, d->time, s->out.data, s->out.len);
    }
}

size_t state_flush(state *s, state_record_fn fn, void *ctx) {
    dirty *d = s->dirty_head;
    s->dirty_head = s->dirty_tail = NULL;
    s->dirty_n = 0;
    size_t n = 0;
    while (d) {
        dirty *next = d->next;
        d->next = NULL;
        d->queued = 0;
        hand_out(s, d, fn, ctx);
        d = next;
        n++;
    }
    return n;
}

/* Ended calls waiting for their tombstone are only in the list. */
static void forget_marks(state *s) {
    dirty *d = s->dirty_head;
    s->dirty_head = s->dirty_tail = NULL;
    s->dirty_n = 0;
    while (d) {
        dirty *next = d->next;
        d->next = NULL;
        d->queued = 0;
        if (d->kind == STATE_CALLS && CONTAINER(d, st_call, d)->ended) call_free(CONTAINER(d, st_call, d));
        d = next;
    }
}

/* ---- recovery ---- */

static int index_of(const char *const *names, int n, const char *s) {
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

/* An RFC 3339 time, 0 for null or anything else. */
static double jtime(const json_t *o, const char *key) {
    const char *s = jstr(o, key);
    double t = s ? rfc3339_parse(s) : -1;
    return t > 0 ? t : 0;
}

static void restore_ops(state *s, opv *to, const json_t *arr) {
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) opv_add(to, op_get(s, json_string_value(e), 0));
}

static void call_drop(state *s, st_call *c) {
    HASH_DEL(s->calls, c);
    call_free(c);
}

static int restore_call(state *s, const char *key, const json_t *d) {
    st_call *old = call_find(s, key);
    if (old) call_drop(s, old);
    if (!d) return 0;
    int st = index_of(call_state_names, CALL_STATES, jstr(d, "state"));
    const char *id = jstr(d, "call_id");
    if (st < 0 || !id || strcmp(id, key) != 0) return -1;
    st_call *c = call_get(s, key);
    c->state = (call_state)st;
    c->held = st == CALL_HELD;
    c->direction = direction_of(jstr(d, "direction"));
    merge_caller(c, d);
    set_str(&c->party, jstr(d, "party"));
    c->queue = queue_get(s, jstr(d, "queue"));
    c->position = (int)jnum(d, "position", -1);
    c->operator = op_get(s, jstr(d, "operator_id"), 0);
    restore_ops(s, &c->offered_to, json_object_get(d, "offered_to"));
    restore_ops(s, &c->operators, json_object_get(d, "operators"));
    c->started_at = jtime(d, "started_at");
    c->queued_at = jtime(d, "queued_at");
    c->answered_at = jtime(d, "answered_at");
    if (c->queue && c->answered_at) c->answered_from = c->queue;
    c->unconfirmed = 1;
    return 0;
}

static void restore_members(state *s, st_op *op, const json_t *arr) {
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        st_queue *q = queue_get(s, jstr(e, "queue"));
        if (!q || member_find(op, q)) continue;
        st_member *m = member_add(s, op, q, 0);
        m->confirmed = 0;
        m->paused = json_is_true(json_object_get(e, "paused"));
        set_str(&m->reason, jstr(e, "reason"));
    }
}

static void restore_recent(st_op *op, const json_t *arr) {
    size_t n = json_array_size(arr);
    if (n > STATE_RECENT_CALLS) n = STATE_RECENT_CALLS;
    for (size_t i = n; i-- > 0;) {   /* oldest first: recent_add puts each in front */
        const json_t *e = json_array_get(arr, i);
        const char *call_id = jstr(e, "call_id");
        if (!json_is_object(e) || !call_id) continue;
        json_t *d = json_deep_copy(e);
        json_t *caller = json_object_get(e, "caller");
        if (json_is_object(caller) && jstr(e, "direction") && strcmp(jstr(e, "direction"), "outbound") == 0)
            json_object_set(d, "party", json_object_get(caller, "number"));
        recent_add(op, call_id, NULL, d, 0);
        json_decref(d);
    }
}

static int restore_op(state *s, const char *key, const json_t *d) {
    const char *id = jstr(d, "operator_id");
    int st = index_of(op_state_names, OP_STATES, jstr(d, "state"));
    if (!id || strcmp(id, key) != 0 || st < 0) return -1;
    st_op *op = op_get(s, key, 0);
    while (op->nq) member_del(s, op, op->nq - 1, 0);
    set_str(&op->member_name, jstr(d, "member_name"));
    set_str(&op->interface, jstr(d, "interface"));
    restore_members(s, op, json_object_get(d, "queues"));
    clear_str(&op->pause_reason);
    set_str(&op->pause_reason, jstr(d, "pause_reason"));
    op->paused_all = json_is_true(json_object_get(d, "paused")) && !op_paused(op);
    int dev = index_of(device_names, DEVICES, jstr(d, "device"));
    op->dev = dev < 0 ? DEV_UNKNOWN : (device)dev;
    op->state = (op_state)st;
    op->state_since = jtime(d, "state_since");
    json_t *offered = json_object_get(d, "offered"), *call = json_object_get(d, "call");
    clear_str(&op->restored_offered);
    clear_str(&op->restored_call);
    set_str(&op->restored_offered, jstr(offered, "call_id"));
    op->offered_since = jtime(offered, "since");
    set_str(&op->restored_call, jstr(call, "call_id"));
    op->call_since = jtime(call, "answered_at");
    for (size_t i = 0; i < STATE_RECENT_CALLS; i++) recent_clear(&op->recent[i]);
    op->recent_n = op->recent_head = 0;
    op->recent_stale = 1;
    restore_recent(op, json_object_get(d, "recent"));
    json_t *today = json_object_get(d, "today");
    snprintf(op->restored_date, sizeof(op->restored_date), "%s", jstr(today, "date") ? jstr(today, "date") : "");
    op->handled = (long)jnum(today, "handled", 0);
    op->missed = (long)jnum(today, "missed", 0);
    op->talk_s = jnum(today, "talk_s", 0);
    return 0;
}

static int restore_queue(state *s, const char *key, const json_t *d) {
    const char *name = jstr(d, "queue");
    if (!name || strcmp(name, key) != 0) return -1;
    st_queue *q = queue_get(s, key);
    snprintf(q->restored_date, sizeof(q->restored_date), "%s", jstr(d, "date") ? jstr(d, "date") : "");
    q->offered = (long)jnum(d, "offered", 0);
    q->answered = (long)jnum(d, "answered", 0);
    q->abandoned = (long)jnum(d, "abandoned", 0);
    q->timed_out = (long)jnum(d, "timed_out", 0);
    q->within_sl = (long)jnum(d, "answered_within_sl", 0);
    q->talked = (long)jnum(d, "talked", 0);
    q->wait_total = jnum(d, "wait_s_total", 0);
    q->talk_total = jnum(d, "talk_s_total", 0);
    return 0;
}

int state_restore(state *s, state_kind kind, const char *key, const json_t *data) {
    if (!s || !key || !*key || (data && !json_is_object(data))) return -1;
    if (kind == STATE_CALLS) return restore_call(s, key, data);
    if (!data) return 0;   /* only calls end */
    if (kind == STATE_OPERATORS) return restore_op(s, key, data);
    if (kind == STATE_QUEUES) return restore_queue(s, key, data);
    return -1;
}

static st_call *resolve(state *s, char **id) {
    st_call *c = call_find(s, *id);
    clear_str(id);
    return c;
}

/* Operators' calls from their ids; the calls' owners from both sides. */
static void relink(state *s) {
    for (st_call *c = s->calls; c; c = c->hh.next) {
        for (size_t i = 0; i < c->offered_to.n; i++) opv_add(&c->owners, c->offered_to.v[i]);
        for (size_t i = 0; i < c->operators.n; i++) opv_add(&c->owners, c->operators.v[i]);
        if (c->operator) opv_add(&c->owners, c->operator);
    }
    for (st_op *op = s->ops; op; op = op->hh.next) {
        if (op->restored_offered) op->offered = resolve(s, &op->restored_offered);
        if (op->restored_call) op->call = resolve(s, &op->restored_call);
        if (op->offered) {
            opv_add(&op->offered->owners, op);
            opv_add(&op->offered->offered_to, op);
        } else op->offered_since = 0;
        if (op->call) opv_add(&op->call->owners, op);
        else op->call_since = 0;
    }
}

static int by_queued_at(const void *a, const void *b) {
    double x = (*(st_call *const *)a)->queued_at, y = (*(st_call *const *)b)->queued_at;
    return x < y ? -1 : x > y;
}

static void rebuild_waiting(state *s, double now) {
    size_t n = 0, cap = HASH_COUNT(s->calls);
    st_call **w = xcalloc(cap ? cap : 1, sizeof(*w));
    for (st_call *c = s->calls; c; c = c->hh.next)
        if (c->queue && (c->state == CALL_QUEUED || c->state == CALL_RINGING)) w[n++] = c;
    qsort(w, n, sizeof(*w), by_queued_at);
    for (size_t i = 0; i < n; i++) {
        if (!w[i]->queued_at) w[i]->queued_at = now;
        wait_join(s, w[i], w[i]->queue, now);
    }
    free(w);
}

static void recount_members(state *s) {
    for (st_queue *q = s->queues; q; q = q->hh.next) {
        q->members = 0;
        memset(q->by_state, 0, sizeof(q->by_state));
    }
    for (st_op *op = s->ops; op; op = op->hh.next)
        for (size_t i = 0; i < op->nq; i++) {
            op->queues[i].q->members++;
            op->queues[i].q->by_state[op->state]++;
        }
}

void state_restore_end(state *s, double now) {
    s->day_end = 0;
    roll_day(s, now);
    relink(s);
    rebuild_waiting(s, now);
    recount_members(s);
    forget_marks(s);
    /* What the records said is on the topics already; only what differs
     * now is due again. */
    for (st_queue *q = s->queues; q; q = q->hh.next)
        if (strcmp(q->restored_date, s->date) != 0) {
            q->offered = q->answered = q->abandoned = q->timed_out = q->within_sl = q->talked = 0;
            q->wait_total = q->talk_total = 0;
            mark(s, &q->d, now);
        }
    for (st_op *op = s->ops; op; op = op->hh.next) {
        if (strcmp(op->restored_date, s->date) != 0) {
            op->handled = op->missed = 0;
            op->talk_s = 0;
            mark(s, &op->d, now);
        }
        if (op_compute(op) != op->state) op_touch(s, op, now);
    }
}

/* A recovered call that ended while we were away: it leaves every record
 * it is in, counted nowhere. */
static void end_unconfirmed(state *s, st_call *c, double now) {
    wait_leave(s, c, now);
    offers_end(s, c, 0, now);
    for (size_t i = 0; i < c->owners.n; i++) {
        st_op *op = c->owners.v[i];
        if (op->offered == c) offer_end(s, op, 0, now);
        call_slot_end(s, op, c, now);
    }
    call_leave(s, c, now);
}

size_t state_reconcile(state *s, double now, int members_listed) {
    size_t ended = 0;
    st_call *c, *tmp;
    HASH_ITER(hh, s->calls, c, tmp) {
        if (!c->unconfirmed) continue;
        end_unconfirmed(s, c, now);
        ended++;
    }
    if (!members_listed) return ended;
    for (st_op *op = s->ops; op; op = op->hh.next) {
        int gone = 0;
        for (size_t i = op->nq; i-- > 0;)
            if (!op->queues[i].confirmed) {
                member_del(s, op, i, now);
                gone = 1;
            }
        if (gone) op_touch(s, op, now);
    }
    return ended;
}

/* ---- lifecycle ---- */

const char *state_kind_type(state_kind k) {
    return k < STATE_KINDS ? kind_types[k] : NULL;
}

state *state_new(const state_settings *set) {
    state *s = xcalloc(1, sizeof(*s));
    snprintf(s->timezone, sizeof(s->timezone), "%s",
             set && set->timezone && *set->timezone ? set->timezone : "UTC");
    s->sl = set ? set->service_level_s : 20;
    setenv("TZ", s->timezone, 1);
    tzset();
    sbuf_init(&s->out);
    return s;
}

void state_free(state *s) {
    if (!s) return;
    forget_marks(s);
    st_call *c, *ctmp;
    HASH_ITER(hh, s->calls, c, ctmp) {
        HASH_DEL(s->calls, c);
        call_free(c);
    }
    st_op *op, *otmp;
    HASH_ITER(hh, s->ops, op, otmp) {
        HASH_DEL(s->ops, op);
        op_free(op);
    }
    st_queue *q, *qtmp;
    HASH_ITER(hh, s->queues, q, qtmp) {
        HASH_DEL(s->queues, q);
        free(q->name);
        free(q);
    }
    sbuf_free(&s->out);
    free(s);
}

void state_get_stats(const state *s, state_stats *out) {
    out->calls = HASH_COUNT(s->calls);
    out->operators = HASH_COUNT(s->ops);
    out->queues = HASH_COUNT(s->queues);
    out->dirty = s->dirty_n;
}
