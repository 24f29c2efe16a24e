/* callcenter.c -- the simulated call centre (see callcenter.h).
 *
 * Each inbound call is a small state machine with one pending timer:
 *   arrive -> DID answers (1 s) -> joins the queue (0.5 s) -> waits
 *   -> rings a free operator (2 s) -> talks (--talk) -> caller hangs up
 * or, while waiting, abandons (a --abandon share of callers, never offered
 * to an operator) or times out after the queue's 120 s. The events of each
 * step follow captures 01 (answered) and 02 (abandoned) message for message:
 * the same Local channel pairs, dialplan steps, variables and snapshots.
 *
 * Time is simulated: the wall clock sped up --speed times, or with --max a
 * clock that jumps straight to the next step. Timestamps, Uniqueids and all
 * durations use that clock, so they agree with each other at any speed. */
#include "callcenter.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amisim.h"
#include "events.h"
#include "log.h"
#include "server.h"
#include "sim.h"

static int enabled;
operator_ *ops;
int nops;
queue queues[MAX_QUEUES];
int nqueues;
call *live;
static call **heap;
static int heap_len, heap_cap;
static long calls_started;
static double next_arrival;
static double sim_clock;        /* --max: the free-running clock */
static double origin_real = -1; /* when the simulated clock started */
static unsigned long long rng_state;

/* ---- clock, randomness ---- */

int callcenter_enabled(void) {
    return enabled;
}

static int started(void) {
    return origin_real >= 0;
}

double sim_now(void) {
    if (!started()) return now_real();
    if (cfg.max) return sim_clock;
    return origin_real + (now_real() - origin_real) * cfg.speed;
}

static double real_time_of(double t) {
    return origin_real + (t - origin_real) / cfg.speed;
}

/* splitmix64: seeded, so --seed gives the same calls every run */
double rnd(void) {
    unsigned long long z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static double uniform(double a, double b) {
    return a + (b - a) * rnd();
}

/* ---- timers: a binary heap of calls keyed by due time ---- */

static void heap_swap(int i, int j) {
    call *t = heap[i];
    heap[i] = heap[j];
    heap[j] = t;
    heap[i]->heap_idx = i;
    heap[j]->heap_idx = j;
}

static void heap_up(int i) {
    while (i > 0 && heap[(i - 1) / 2]->due > heap[i]->due) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->due < heap[m]->due) m = l;
        if (r < heap_len && heap[r]->due < heap[m]->due) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}

void timer_cancel(call *c) {
    int i = c->heap_idx;
    if (i < 0) return;
    heap_len--;
    if (i != heap_len) {
        heap[i] = heap[heap_len];
        heap[i]->heap_idx = i;
        heap_down(i);
        heap_up(i);
    }
    c->heap_idx = -1;
}

void timer_set(call *c, double due) {
    timer_cancel(c);
    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 256;
        heap = realloc(heap, (size_t)heap_cap * sizeof(*heap));
        if (!heap) abort();
    }
    c->due = due;
    c->heap_idx = heap_len;
    heap[heap_len++] = c;
    heap_up(c->heap_idx);
}

/* ---- queue and member state ---- */

void queue_vars(const chan *c, const queue *q) {
    varset(c, "QUEUENAME", q->name);
    varset(c, "QUEUEMAX", "0");
    varset(c, "QUEUESTRATEGY", "rrmemory");
    varsetf(c, "QUEUECALLS", "%d", q->waiting);
    varsetf(c, "QUEUEHOLDTIME", "%ld", q->holdtime);
    varsetf(c, "QUEUETALKTIME", "%ld", q->talktime);
    varsetf(c, "QUEUECOMPLETED", "%ld", q->completed);
    varsetf(c, "QUEUEABANDONED", "%ld", q->abandoned);
    varset(c, "QUEUESRVLEVEL", "0");
    varset(c, "QUEUESRVLEVELPERF", "0.0");
}

static void member_vars(const chan *c, const operator_ *op) {
    varset(c, "MEMBERINTERFACE", op->iface);
    varset(c, "MEMBERNAME", op->member);
    varsetf(c, "MEMBERCALLS", "%ld", op->calls_taken);
    varsetf(c, "MEMBERLASTCALL", "%ld", op->last_call);
    varset(c, "MEMBERPENALTY", "0");
    varset(c, "MEMBERDYNAMIC", "0");
    varset(c, "MEMBERREALTIME", "0");
}

/* Asterisk keeps a running average weighted 3:1 towards the past. */
static long running_average(long old, long sample, long count) {
    return count <= 1 ? sample : (3 * old + sample) / 4;
}

static void queue_append(queue *q, call *k) {
    k->qprev = q->tail;
    k->qnext = NULL;
    if (q->tail) q->tail->qnext = k; else q->head = k;
    q->tail = k;
    q->waiting++;
}

static int queue_position(const queue *q, const call *k) {
    int pos = 1;
    for (const call *x = q->head; x && x != k; x = x->qnext) pos++;
    return pos;
}

static void queue_remove(queue *q, call *k) {
    if (k->qprev) k->qprev->qnext = k->qnext; else q->head = k->qnext;
    if (k->qnext) k->qnext->qprev = k->qprev; else q->tail = k->qprev;
    k->qprev = k->qnext = NULL;
    q->waiting--;
}

static void queue_device_state(const queue *q, const char *state) {
    char dev[64];
    snprintf(dev, sizeof(dev), "Queue:%s", q->name);
    device_state(dev, state);
}

/* ---- channels ---- */

void call_unlink(call *k) {
    spy_detach(k);
    if (k->prev) k->prev->next = k->next; else live = k->next;
    if (k->next) k->next->prev = k->prev;
    timer_cancel(k);
    free(k);
}

static void call_link(call *k) {
    k->next = live;
    if (live) live->prev = k;
    live = k;
}

call *call_new(int kind) {
    static long next_id = 1000000;
    call *k = calloc(1, sizeof(*k));
    if (!k) abort();
    k->kind = kind;
    k->id = ++next_id;
    k->heap_idx = -1;
    call_link(k);
    return k;
}

/* ---- the call's steps ---- */

/* Customer's number and name, fixed per call id so runs are reproducible. */
static void caller_of(const call *k, char *num, size_t nn, char *name, size_t nm) {
    snprintf(num, nn, "555%04ld", 1000 + k->id % 9000);
    snprintf(name, nm, "Customer %ld", k->id);
}

static void inbound_dialplan(call *k, const char *campaign, const char *ticket) {
    chan *c2 = &k->c2;
    char data[200];
    snprintf(data, sizeof(data), "Inbound DID %s from \"%s\" <%s>", k->q->did, c2->cid_name,
             c2->cid_num);
    newexten(c2, 1, "NoOp", data);
    snprintf(data, sizeof(data), "__CC_CAMPAIGN=%s", campaign);
    newexten(c2, 2, "Set", data);
    set_vars(c2, campaign, ticket);
    varset(c2, "__CC_CAMPAIGN", campaign);
    snprintf(data, sizeof(data), "__CC_TICKET=%s", ticket);
    newexten(c2, 3, "Set", data);
    varset(c2, "__CC_TICKET", ticket);
    snprintf(data, sizeof(data), "CDR(cc_campaign)=%s", campaign);
    newexten(c2, 4, "Set", data);
    newexten(c2, 5, "Ringing", "");
}

static void inbound_begin(call *k, double now, const char *num, const char *name,
                          const char *ticket) {
    char base[64], campaign[48];
    snprintf(campaign, sizeof(campaign), "inbound-%s", k->q->name);
    snprintf(base, sizeof(base), "%s@from-trunk", k->q->did);
    long seq = next_local_seq();
    chan *c1 = &k->c1, *c2 = &k->c2;
    chan_init(c1, base, seq, 1, "from-trunk", k->q->did, NULL, now);
    chan_init(c2, base, seq, 2, "from-trunk", k->q->did, c1->uniqueid, now);
    k->has_trunk = 1;
    k->cust = c2;
    snprintf(c1->app, sizeof(c1->app), "AppDial2");
    snprintf(c1->appdata, sizeof(c1->appdata), "(Outgoing Line)");

    newchannel(c1);
    newchannel(c2);
    newexten(c1, 1, "AppDial2", "(Outgoing Line)");
    set_vars(c1, "", ticket);
    varset(c1, "CC_TICKET", ticket);
    set_callerid(c1, num, name);
    set_connected(c1, num, name);
    set_vars(c2, "", ticket);
    varset(c2, "CC_TICKET", ticket);
    set_callerid(c2, num, name);
    set_connected(c2, num, name);
    local_bridge(c1, c2, "from-trunk", k->q->did);
    dest_event("DialBegin", "call,all", NULL, c1, "DialString", base, NULL);
    inbound_dialplan(k, campaign, ticket);
    newstate(c1, 5);
    device_state(base, "INUSE");
    dest_event("DialState", "call,all", NULL, c1, "DialStatus", "RINGING", NULL);
    newexten(c2, 6, "Wait", "1");
    k->phase = PH_DID_ANSWER;
    timer_set(k, now + 1.0);
}

static void step_arrive(double now) {
    call *k = call_new(K_INBOUND);
    k->id = ++calls_started;
    k->q = &queues[(k->id - 1) % nqueues];
    k->will_abandon = rnd() * 100.0 < cfg.abandon_pct;
    char num[24], name[48], ticket[32];
    caller_of(k, num, sizeof(num), name, sizeof(name));
    snprintf(ticket, sizeof(ticket), "TCK-%ld", 1000 + k->id);
    inbound_begin(k, now, num, name, ticket);
}

call *inbound_start(queue *q, double now, const char *num, const char *name, const char *ticket) {
    call *k = call_new(K_INBOUND);
    k->q = q;
    inbound_begin(k, now, num, name, ticket);
    return k;
}

static void step_did_answer(call *k, double now) {
    char base[64];
    snprintf(base, sizeof(base), "%s@from-trunk", k->q->did);
    newexten(&k->c2, 7, "Answer", "");
    newstate(&k->c2, 6);
    newstate(&k->c1, 6);
    dest_event("DialEnd", "call,all", NULL, &k->c1, "DialStatus", "ANSWER", NULL);
    device_state(base, "INUSE");
    device_state(base, "INUSE");
    k->phase = PH_JOIN;
    timer_set(k, now + 0.5);
}

static void step_join(call *k, double now) {
    chan *c2 = &k->c2;
    char data[64], pos[16], count[16];
    snprintf(data, sizeof(data), "%s,tT,,,120", k->q->name);
    newexten(c2, 8, "Queue", data);
    static const char *cleared[] = {"ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME",
                                    "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS"};
    for (int i = 0; i < 6; i++) varset(c2, cleared[i], "");
    if (k->q->waiting == 0) queue_device_state(k->q, "RINGING");
    queue_append(k->q, k);
    k->t_join = now;
    k->orig_position = k->q->waiting;
    snprintf(pos, sizeof(pos), "%d", k->orig_position);
    snprintf(count, sizeof(count), "%d", k->q->waiting);
    chan_event("QueueCallerJoin", "agent,all", c2, "Queue", k->q->name, "Position", pos, "Count",
               count, NULL);
    chan_event("MusicOnHoldStart", "call,all", c2, "Class", "default", NULL);
    k->phase = PH_WAITING;
    k->deadline = k->will_abandon ? now + uniform(5, 30) : now + QUEUE_TIMEOUT;
    if (k->patience_end > 0 && k->patience_end < k->deadline) k->deadline = k->patience_end;
    timer_set(k, k->deadline);
}

static void step_ring(call *k, operator_ *op, double now) {
    chan *c2 = &k->c2, *o1 = &k->o1, *o2 = &k->o2;
    char base[48], data[160], dial[64];
    snprintf(base, sizeof(base), "%s@phones", op->name);
    long seq = next_local_seq();
    chan_init(o1, base, seq, 1, "phones", op->name, c2->linkedid, now);
    chan_init(o2, base, seq, 2, "phones", op->name, c2->linkedid, now);
    k->has_op = 1;
    k->op = op;
    op->call = k;
    k->t_ring = now;

    newchannel(o1);
    newchannel(o2);
    newexten(o1, 1, "AppQueue", "(Outgoing Line)");
    set_callerid(o1, c2->cid_num, c2->cid_name);
    set_connected(o1, c2->cid_num, c2->cid_name);
    set_vars(o1, "", c2->ticket);
    varset(o1, "__CC_TICKET", c2->ticket);
    set_vars(o1, c2->campaign, c2->ticket);
    varset(o1, "__CC_CAMPAIGN", c2->campaign);
    snprintf(o1->exten, sizeof(o1->exten), "%s", k->q->did);
    newexten(o1, 1, "AppQueue", "(Outgoing Line)");
    varset(o1, "DIALEDPEERNUMBER", base);
    varset(o2, "DIALEDPEERNUMBER", base);
    set_vars(o2, "", c2->ticket);
    varset(o2, "__CC_TICKET", c2->ticket);
    set_vars(o2, c2->campaign, c2->ticket);
    varset(o2, "__CC_CAMPAIGN", c2->campaign);
    set_callerid(o2, c2->cid_num, c2->cid_name);
    set_connected(o2, c2->cid_num, c2->cid_name);
    local_bridge(o1, o2, "phones", op->name);
    dest_event("AgentCalled", "agent,all", c2, o1, "Queue", k->q->name, "Interface", op->iface,
               "MemberName", op->member, NULL);
    snprintf(dial, sizeof(dial), "Local/%s", base);
    dest_event("DialBegin", "call,all", c2, o1, "DialString", dial, NULL);
    snprintf(data, sizeof(data), "Operator phone %s rings for \"%s\" <%s>", op->name, c2->cid_name,
             c2->cid_num);
    newexten(o2, 1, "NoOp", data);
    newexten(o2, 2, "Ringing", "");
    newstate(o1, 5);
    newexten(o2, 3, "Wait", "2");
    device_state(op->iface, "INUSE");
    member_status_all_queues(op);
    dest_event("DialState", "call,all", c2, o1, "DialStatus", "RINGING", NULL);
    k->phase = PH_RINGING;
    timer_set(k, now + RING_SECONDS);
}

static void connect_vars(call *k, long hold) {
    operator_ *op = k->op;
    member_vars(&k->c2, op);
    member_vars(&k->o1, op);
    varsetf(&k->c2, "QEHOLDTIME", "%ld", hold);
    varsetf(&k->c2, "QEORIGINALPOS", "%d", k->orig_position);
    varsetf(&k->o1, "QEHOLDTIME", "%ld", hold);
    varsetf(&k->o1, "QEORIGINALPOS", "%d", k->orig_position);
    queue_vars(&k->c2, k->q);
    queue_vars(&k->o1, k->q);
}

void leave_queue(call *k) {
    char pos[16], count[16];
    snprintf(pos, sizeof(pos), "%d", queue_position(k->q, k));
    queue_remove(k->q, k);
    snprintf(count, sizeof(count), "%d", k->q->waiting);
    if (k->q->waiting == 0) queue_device_state(k->q, "NOT_INUSE");
    chan_event("QueueCallerLeave", "agent,all", &k->c2, "Queue", k->q->name, "Position", pos,
               "Count", count, NULL);
    varset(&k->c2, "QUEUEPOSITION", pos);
}

void random_bridge_id(char out[40]) {
    unsigned long long a = (unsigned long long)(rnd() * 4294967296.0);
    unsigned long long b = (unsigned long long)(rnd() * 281474976710656.0);
    unsigned c = (unsigned)(rnd() * 65536), d = (unsigned)(rnd() * 4096), e = (unsigned)(rnd() * 16384);
    snprintf(out, 40, "%08llx-%04x-4%03x-%04x-%012llx", a & 0xffffffffULL, c & 0xffff,
             d & 0xfff, (0x8000 | e) & 0xffff, b & 0xffffffffffffULL);
}

void step_agent_answer(call *k, double now) {
    chan *c2 = &k->c2, *o1 = &k->o1, *o2 = &k->o2;
    operator_ *op = k->op;
    long hold = (long)now - (long)k->t_join;
    long ring = (long)now - (long)k->t_ring;
    char hs[16], rs[16];
    snprintf(hs, sizeof(hs), "%ld", hold);
    snprintf(rs, sizeof(rs), "%ld", ring);

    newexten(o2, 4, "Answer", "");
    newstate(o2, 6);
    device_state(op->iface, "INUSE");
    newstate(o1, 6);
    device_state(op->iface, "INUSE");
    dest_event("DialEnd", "call,all", c2, o1, "DialStatus", "ANSWER", NULL);
    chan_event("MusicOnHoldStop", "call,all", c2, NULL);
    k->q->holdtime = running_average(k->q->holdtime, hold, k->q->completed + 1);
    connect_vars(k, hold);
    leave_queue(k);
    varsetf(c2, "QUEUEWAIT", "%ld", hold);
    varsetf(c2, "QUEUEWAIT_MS", "%ld", hold * 1000);
    dest_event("AgentConnect", "agent,all", c2, o1, "Queue", k->q->name, "Interface", op->iface,
               "MemberName", op->member, "HoldTime", hs, "RingTime", rs, NULL);
    random_bridge_id(k->bridge);
    bridge_event("BridgeCreate", k->bridge, 0, NULL);
    snprintf(o1->bridge, sizeof(o1->bridge), "%s", k->bridge);
    bridge_event("BridgeEnter", k->bridge, 1, o1);
    snprintf(c2->bridge, sizeof(c2->bridge), "%s", k->bridge);
    bridge_event("BridgeEnter", k->bridge, 2, c2);
    varset(o1, "BRIDGEPEER", c2->name);
    varset(c2, "BRIDGEPEER", o1->name);
    newexten(o2, 5, "Wait", "600");
    op->in_call = 1;
    k->t_answer = now;
    k->phase = PH_TALKING;
    k->agent = op;
    k->cust = c2;
    double end = now + uniform(cfg.talk_min, cfg.talk_max);
    if (k->patience_end > 0) end = k->patience_end > now ? k->patience_end : now;
    timer_set(k, end);
}

static void trunk_gone(call *k) {
    char base[64];
    snprintf(base, sizeof(base), "%s@from-trunk", k->q->did);
    device_state(base, "NOT_INUSE");
}

static void final_vars(call *k, double now, long talk) {
    chan *c2 = &k->c2;
    varsetf(c2, "ANSWEREDTIME", "%ld", talk);
    varsetf(c2, "ANSWEREDTIME_MS", "%ld", (long)((now - k->t_answer) * 1000));
    varsetf(c2, "DIALEDTIME", "%ld", (long)now - (long)c2->created);
    varsetf(c2, "DIALEDTIME_MS", "%ld", (long)((now - c2->created) * 1000));
}

void operator_free(operator_ *op, double now) {
    op->calls_taken++;
    op->last_call = (long)now;
    op->call = NULL;
    op->in_call = 0;
}

/* The caller hangs up: capture 01 from HangupRequest to the last Hangup. */
void step_caller_hangup(call *k, double now) {
    chan *c1 = &k->c1, *c2 = &k->c2, *o1 = &k->o1, *o2 = &k->o2;
    operator_ *op = k->op;
    long hold = (long)k->t_answer - (long)k->t_join;
    long talk = (long)now - (long)k->t_answer;
    char hs[16], ts[16];
    snprintf(hs, sizeof(hs), "%ld", hold);
    snprintf(ts, sizeof(ts), "%ld", talk);

    hangup_request("HangupRequest", c2, 0);
    /* After a Redirect the member who answered first is still the agent. */
    if (k->agent)
        dest_event("AgentComplete", "agent,all", c2, o1, "Queue", k->q->name, "Interface",
                   k->agent->iface, "MemberName", k->agent->member, "HoldTime", hs, "TalkTime",
                   ts, "Reason", "caller", NULL);
    varset(c2, "BRIDGEPEER", "");
    hangup_cause(c1, 0);
    varset(o1, "BRIDGEPEER", "");
    trunk_gone(k);
    c2->bridge[0] = o1->bridge[0] = '\0';
    bridge_event("BridgeLeave", k->bridge, 1, c2);
    bridge_event("BridgeLeave", k->bridge, 0, o1);
    bridge_event("BridgeDestroy", k->bridge, 0, NULL);
    hangup_request("HangupRequest", o2, 16);
    hangup_cause(o1, 16);
    hangup_request("SoftHangupRequest", o2, 16);
    device_state(op->iface, "NOT_INUSE");
    if (k->op_other) {          /* a phone a Redirect brought in */
        if (op->other_calls) op->other_calls--;
        op->in_call = 0;
    } else {
        operator_free(op, now);
    }
    member_status_all_queues(op);
    hangup_cause(o2, 16);
    device_state(op->iface, "NOT_INUSE");
    if (k->agent) {
        k->q->completed++;
        k->q->talktime = running_average(k->q->talktime, talk, k->q->completed);
    }
    queue_vars(c2, k->q);
    final_vars(k, now, talk);
    hangup_request("SoftHangupRequest", c2, 16);
    hangup_cause(c2, 16);
    trunk_gone(k);
    call_unlink(k);
    dispatch(now);
}

/* Still waiting at the deadline: abandon (capture 02) or queue timeout. */
void step_give_up(call *k, double now) {
    chan *c1 = &k->c1, *c2 = &k->c2;
    long hold = (long)now - (long)k->t_join;
    char hs[16], pos[16], orig[16];
    int timeout = !k->will_abandon && !(k->patience_end > 0 && now >= k->patience_end - 1e-6);
    snprintf(hs, sizeof(hs), "%ld", hold);
    snprintf(pos, sizeof(pos), "%d", queue_position(k->q, k));
    snprintf(orig, sizeof(orig), "%d", k->orig_position);

    if (!timeout) hangup_request("HangupRequest", c2, 0);
    chan_event("MusicOnHoldStop", "call,all", c2, NULL);
    varsetf(c2, "QUEUEWAIT", "%ld", hold);
    varsetf(c2, "QUEUEWAIT_MS", "%ld", hold * 1000);
    varsetf(c2, "DIALEDTIME", "%ld", (long)now - (long)c2->created);
    varsetf(c2, "DIALEDTIME_MS", "%ld", (long)((now - c2->created) * 1000));
    varset(c2, "ANSWEREDTIME", "0");
    varset(c2, "ANSWEREDTIME_MS", "0");
    if (timeout) varset(c2, "QUEUESTATUS", "TIMEOUT");
    hangup_cause(c1, 0);
    varset(c2, "ABANDONED", "TRUE");
    queue_vars(c2, k->q);
    chan_event("QueueCallerAbandon", "agent,all", c2, "Queue", k->q->name, "Position", pos,
               "OriginalPosition", orig, "HoldTime", hs, NULL);
    k->q->abandoned++;
    queue_vars(c2, k->q);
    trunk_gone(k);
    leave_queue(k);
    hangup_request("SoftHangupRequest", c2, 16);
    hangup_cause(c2, timeout ? 16 : 0);
    trunk_gone(k);
    call_unlink(k);
}

/* Offers waiting callers to the queue's free members, least recently busy
 * first; a paused or busy member is skipped (Ringinuse is off). */
void dispatch(double now) {
    for (int i = 0; i < nqueues; i++) {
        call *k = queues[i].head;
        while (k) {
            call *next = k->qnext;
            if (!k->will_abandon && !k->has_op) {
                operator_ *op = member_free_operator(&queues[i]);
                if (!op) break;
                step_ring(k, op, now);
            }
            k = next;
        }
    }
}

static void run_timer(call *k, double now) {
    switch (k->phase) {
    case PH_DID_ANSWER: step_did_answer(k, now); break;
    case PH_JOIN: step_join(k, now); dispatch(now); break;
    case PH_WAITING: step_give_up(k, now); break;
    case PH_RINGING: step_agent_answer(k, now); break;
    case PH_TALKING: step_caller_hangup(k, now); break;
    default: c2c_timer(k, now); break;
    }
}

/* ---- driving ---- */

static int more_arrivals(void) {
    if (!cfg.simulate) return 0;
    return cfg.calls == 0 || calls_started < cfg.calls;
}

static double next_step_time(void) {
    double t = more_arrivals() ? next_arrival : -1;
    if (heap_len && (t < 0 || heap[0]->due < t)) t = heap[0]->due;
    return t;
}

static void start_clock(double now) {
    origin_real = now;
    sim_clock = now;
    set_ev_ts(now);
    next_arrival = now + (cfg.simulate && cfg.rate > 0 ? -log(1.0 - rnd()) / cfg.rate : 1e18);
    for (int i = 0; i < nops; i++) ops[i].login_time = (long)now;
    for (int i = 0; i < nqueues; i++)
        for (int j = 0; j < queues[i].nm; j++)
            if (!queues[i].m[j].dynamic) queues[i].m[j].login_time = (long)now;
}

/* --calls N: once the last call is over, amisim ends -- at once with
 * --exit-after, else after --linger seconds, during which a client that
 * reconnects can still resync (and see that every call has ended). */
static double all_done_at = -1;

static void finish_now(void) {
    static int finishing;
    if (finishing) return;
    finishing = 1;
    log_info("simulate: all %ld calls done, exiting", calls_started);
    int n = 0;
    for (client *c = server_clients(); c; c = c->next) {
        if (c->dead) continue;
        c->exit_when_closed = 1;
        client_finish(c);
        n++;
    }
    if (!n) server_request_exit();
}

static void maybe_finish(double now) {
    if (cfg.calls == 0 || more_arrivals() || live) return;
    if (all_done_at < 0) {
        all_done_at = now;
        if (!cfg.exit_after && cfg.linger >= 0)
            log_info("simulate: all %ld calls done, exiting in %.0f s", calls_started, cfg.linger);
    }
    if (cfg.exit_after || (cfg.linger >= 0 && now >= all_done_at + cfg.linger)) finish_now();
}

void callcenter_run(double now) {
    if (!enabled) return;
    /* With --max nobody would see the calls before a client is there; the
     * timed simulation runs from the start, like a real PBX. */
    if (!started()) {
        if (cfg.max && !server_receivers()) return;
        start_clock(now);
    }
    double limit = sim_now();
    for (int steps = 0; steps < 2048; steps++) {
        if (!server_receivers_have_room() || (cfg.max && !server_receivers())) return;
        double t = next_step_time();
        if (t < 0) {
            maybe_finish(now);
            return;
        }
        if (!cfg.max && t > limit) return;
        if (t > sim_clock) sim_clock = t;
        step_at(t);
        if (more_arrivals() && t == next_arrival) {
            step_arrive(t);
            next_arrival = t + (cfg.rate > 0 ? -log(1.0 - rnd()) / cfg.rate : 1e18);
        } else {
            run_timer(heap[0], t);
        }
    }
}

double callcenter_next_due(double now) {
    if (!enabled) return -1;
    if (!started()) return cfg.max ? -1 : now;
    if (!server_receivers_have_room()) return -1;
    double t = next_step_time();
    if (t < 0) {
        if (all_done_at >= 0 && !cfg.exit_after && cfg.linger >= 0) return all_done_at + cfg.linger;
        return cfg.calls && !live && all_done_at < 0 ? now : -1;
    }
    if (cfg.max) return server_receivers() ? now : -1;
    return real_time_of(t);
}

/* ---- state for list actions ---- */

static void put_duration(sbuf *b, double secs) {
    long s = secs > 0 ? (long)secs : 0;
    put_kvf(b, "Duration", "%02ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

static void put_core_show_channel(sbuf *b, const char *actionid, const chan *c, double now) {
    put_kv(b, "Event", "CoreShowChannel");
    if (*actionid) put_kv(b, "ActionID", actionid);
    put_chan(b, "", c);
    put_kv(b, "Application", c->app);
    put_kv(b, "ApplicationData", c->appdata);
    put_duration(b, now - c->created);
    put_kv(b, "BridgeId", c->bridge);
    sbuf_append(b, "\r\n", 2);
}

int callcenter_list_channels(sbuf *b, const char *actionid) {
    int n = 0;
    double now = sim_now();
    for (call *k = live; k; k = k->next) {
        chan *cs[8];
        int m = call_chans(k, cs);
        for (int i = 0; i < m; i++) put_core_show_channel(b, actionid, cs[i], now);
        n += m;
    }
    return n;
}

static void put_actionid(sbuf *b, const char *actionid) {
    if (*actionid) put_kv(b, "ActionID", actionid);
    sbuf_append(b, "\r\n", 2);
}

static void put_queue_params(sbuf *b, const queue *q, const char *actionid) {
    put_kv(b, "Event", "QueueParams");
    put_kv(b, "Queue", q->name);
    put_kv(b, "Max", "0");
    put_kv(b, "Strategy", "rrmemory");
    put_kvf(b, "Calls", "%d", q->waiting);
    put_kvf(b, "Holdtime", "%ld", q->holdtime);
    put_kvf(b, "TalkTime", "%ld", q->talktime);
    put_kvf(b, "Completed", "%ld", q->completed);
    put_kvf(b, "Abandoned", "%ld", q->abandoned);
    put_kv(b, "ServiceLevel", "0");
    put_kv(b, "ServicelevelPerf", "0.0");
    put_kv(b, "ServicelevelPerf2", "0.0");
    put_kv(b, "Weight", "0");
    put_actionid(b, actionid);
}

static void put_queue_member(sbuf *b, const queue *q, const member *m, const char *actionid) {
    const operator_ *op = m->op;
    put_kv(b, "Event", "QueueMember");
    put_kv(b, "Queue", q->name);
    put_kv(b, "Name", m->name);
    put_kv(b, "Location", m->iface);
    put_kv(b, "StateInterface", m->state_iface);
    put_kv(b, "Membership", m->dynamic ? "dynamic" : "static");
    put_kvf(b, "Penalty", "%d", m->penalty);
    put_kvf(b, "CallsTaken", "%ld", op ? op->calls_taken : 0);
    put_kvf(b, "LastCall", "%ld", op ? op->last_call : 0);
    put_kvf(b, "LastPause", "%ld", m->last_pause);
    put_kvf(b, "LoginTime", "%ld", m->login_time);
    put_kvf(b, "InCall", "%d", op ? op->in_call : 0);
    put_kvf(b, "Status", "%d", op ? member_status(op) : 1);
    put_kvf(b, "Paused", "%d", m->paused);
    put_kv(b, "PausedReason", m->reason);
    put_kv(b, "Wrapuptime", "0");
    put_actionid(b, actionid);
}

static void put_queue_entry(sbuf *b, const queue *q, const call *k, int pos, const char *actionid) {
    const chan *c = &k->c2;
    put_kv(b, "Event", "QueueEntry");
    put_kv(b, "Queue", q->name);
    put_kvf(b, "Position", "%d", pos);
    put_kv(b, "Channel", c->name);
    put_kv(b, "Uniqueid", c->uniqueid);
    put_kv(b, "CallerIDNum", c->cid_num);
    put_kv(b, "CallerIDName", c->cid_name);
    put_kv(b, "ConnectedLineNum", c->conn_num);
    put_kv(b, "ConnectedLineName", c->conn_name);
    put_kvf(b, "Wait", "%ld", (long)(sim_now() - k->t_join));
    put_kv(b, "Priority", "0");
    put_actionid(b, actionid);
}

static int member_matches(const member *m, const char *member) {
    return !*member || strcmp(member, m->iface) == 0 || strcmp(member, m->name) == 0;
}

int callcenter_list_queue_status(sbuf *b, const char *actionid, const char *queue_name,
                                 const char *member) {
    int n = 0;
    for (int i = 0; i < nqueues; i++) {
        const queue *q = &queues[i];
        if (*queue_name && strcmp(queue_name, q->name) != 0) continue;
        put_queue_params(b, q, actionid);
        n++;
        for (int j = 0; j < q->nm; j++) {
            if (!member_matches(&q->m[j], member)) continue;
            put_queue_member(b, q, &q->m[j], actionid);
            n++;
        }
        int pos = 1;
        for (const call *k = q->head; k; k = k->qnext, pos++) {
            put_queue_entry(b, q, k, pos, actionid);
            n++;
        }
    }
    return n;
}

int callcenter_list_queue_summary(sbuf *b, const char *actionid, const char *queue_name) {
    int n = 0;
    for (int i = 0; i < nqueues; i++) {
        const queue *q = &queues[i];
        if (*queue_name && strcmp(queue_name, q->name) != 0) continue;
        int available = 0;
        for (int j = 0; j < q->nm; j++) {
            const operator_ *op = q->m[j].op;
            available += !q->m[j].paused && (!op || (!op->call && !op->other_calls));
        }
        long longest = q->head ? (long)(sim_now() - q->head->t_join) : 0;
        put_kv(b, "Event", "QueueSummary");
        put_kv(b, "Queue", q->name);
        put_kvf(b, "LoggedIn", "%d", q->nm);
        put_kvf(b, "Available", "%d", available);
        put_kvf(b, "Callers", "%d", q->waiting);
        put_kvf(b, "HoldTime", "%ld", q->holdtime);
        put_kvf(b, "TalkTime", "%ld", q->talktime);
        put_kvf(b, "LongestHoldTime", "%ld", longest);
        put_actionid(b, actionid);
        n++;
    }
    return n;
}

/* ---- setup ---- */

/* "support,sales:dynamic": a queue marked dynamic starts without members
 * (QueueAdd fills it); the others have every operator as a static member. */
static int parse_queues(void) {
    const char *p = cfg.queues;
    while (*p && nqueues < MAX_QUEUES) {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        size_t nlen = colon ? (size_t)(colon - p) : len;
        if (nlen == 0 || nlen >= sizeof(queues[0].name)) return -1;
        queue *q = &queues[nqueues];
        memcpy(q->name, p, nlen);
        q->name[nlen] = '\0';
        q->dynamic_only = colon && strncmp(colon + 1, "dynamic", len - nlen - 1) == 0;
        /* DID 800 -> first queue, 802 -> second, as in the lab's dialplan. */
        snprintf(q->did, sizeof(q->did), "%d", 800 + 2 * nqueues);
        nqueues++;
        p += len;
        if (*p == ',') p++;
    }
    return nqueues ? 0 : -1;
}

static void make_operators(void) {
    ops = calloc((size_t)cfg.operators, sizeof(*ops));
    if (!ops) abort();
    nops = cfg.operators;
    for (int i = 0; i < nops; i++) {
        operator_ *op = &ops[i];
        op->num = 101 + i;
        snprintf(op->name, sizeof(op->name), "op%d", op->num);
        snprintf(op->member, sizeof(op->member), "Operator %d", op->num);
        snprintf(op->iface, sizeof(op->iface), "Local/%s@phones", op->name);
        op->login_time = (long)boot_time;
    }
}

/* The state exists in every mode so actions always get real answers; calls
 * run unless a capture is replayed (its bytes must stay its own), and
 * inbound calls arrive only with --simulate. */
int callcenter_init(void) {
    if (parse_queues() < 0 || cfg.operators < 1) {
        log_error("--queues needs NAME[,NAME[:dynamic]] and --operators >= 1");
        return -1;
    }
    make_operators();
    for (int i = 0; i < nqueues; i++)
        if (!queues[i].dynamic_only) members_add_static(&queues[i]);
    rng_state = cfg.seed;
    if (cfg.replay_file) return 0;
    enabled = 1;
    if (!cfg.simulate) return 0;
    log_info("simulate: %d operators, queues %s, %.3f calls/s, talk %.0f-%.0f s, abandon %.0f%%",
             nops, cfg.queues, cfg.rate, cfg.talk_min, cfg.talk_max, cfg.abandon_pct);
    return 0;
}

operator_ *operator_by_name(const char *name) {
    for (int i = 0; i < nops; i++)
        if (strcmp(ops[i].name, name) == 0) return &ops[i];
    return NULL;
}

queue *queue_by_name(const char *name) {
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].name, name) == 0) return &queues[i];
    return NULL;
}

queue *queue_by_did(const char *did) {
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].did, did) == 0) return &queues[i];
    return NULL;
}

double sim_step_now(void) {
    double t = sim_now();
    if (cfg.max && started()) t = sim_clock;
    step_at(t);
    return get_ev_ts();
}

void callcenter_free(void) {
    while (live) call_unlink(live);
    members_free();
    free(heap);
    free(ops);
    heap = NULL;
    ops = NULL;
}
