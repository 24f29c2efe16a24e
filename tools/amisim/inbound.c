/* inbound.c -- an inbound call's way through a queue (see sim.h).
 *
 * Each inbound call is a small state machine with one pending timer:
 *   arrive -> DID answers (1 s) -> joins the queue (0.5 s) -> waits
 *   -> rings a free operator (2 s) -> talks (--talk) -> caller hangs up
 * It leaves the queue otherwise when the caller gives up (an --abandon share
 * of callers who are never offered to an operator, or --patience running
 * out, also while a phone rings) or when the queue's maximum wait runs out
 * (--queue-timeout, also while a phone rings). An operator who does not pick
 * up (--rna, --no-answer) is rung for --ring-timeout; the queue then waits
 * --retry and rings the next one.
 *
 * The events of each step follow captures 01 (answered) and 02 (abandoned)
 * message for message: the same Local channel pairs, dialplan steps,
 * variables and snapshots. What no capture shows (ring-no-answer, timeouts)
 * follows apps/app_queue.c of Asterisk 22, cited where it is done. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "amisim.h"
#include "day.h"
#include "sim.h"
#include "simclock.h"
#include "truth.h"

#define NEVER 1e18

static long calls_arrived;

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

/* set_duration_var(): NAME in whole seconds of NAME_MS, both from one
 * duration in milliseconds. */
static void duration_vars(const chan *c, const char *name, double seconds) {
    char ms_name[32];
    long ms = (long)(seconds * 1000);
    snprintf(ms_name, sizeof(ms_name), "%s_MS", name);
    varsetf(c, name, "%ld", ms / 1000);
    varsetf(c, ms_name, "%ld", ms);
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

/* ---- arriving ---- */

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
    k->gives_up_at = NEVER;
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

void inbound_arrive(double now) {
    call *k = call_new(K_INBOUND);
    k->id = ++calls_arrived;
    k->q = &queues[(k->id - 1) % nqueues];
    k->will_abandon = rnd() * 100.0 < cfg.abandon_pct;
    char num[24], name[48], ticket[32];
    caller_of(k, num, sizeof(num), name, sizeof(name));
    snprintf(ticket, sizeof(ticket), "TCK-%ld", 1000 + k->id);
    truth_arrived(now);
    inbound_begin(k, now, num, name, ticket);
}

long inbound_arrived(void) {
    return calls_arrived;
}

call *inbound_start(queue *q, double now, const char *num, const char *name, const char *ticket) {
    call *k = call_new(K_INBOUND);
    k->q = q;
    truth_arrived(now);
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

/* When the caller leaves by themselves: an impatient --abandon caller soon,
 * an Originate's Wait when it ends, a --patience caller after that long. */
static void set_patience(call *k, double now) {
    if (k->will_abandon) k->gives_up_at = now + uniform(5, 30);
    if (k->patience_end > 0 && k->patience_end < k->gives_up_at) k->gives_up_at = k->patience_end;
    if (!k->will_abandon && cfg.patience_max > 0) {
        double p = now + uniform(cfg.patience_min, cfg.patience_max);
        if (p < k->gives_up_at) k->gives_up_at = p;
    }
}

static double earliest(double a, double b) {
    return a < b ? a : b;
}

static void step_join(call *k, double now) {
    chan *c2 = &k->c2;
    char data[64], pos[16], count[16];
    snprintf(data, sizeof(data), "%s,tT,,,%.0f", k->q->name, cfg.queue_timeout);
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
    truth_queued(k->q, now);
    k->phase = PH_WAITING;
    /* qe->expire = qe->start + timeout, both time(NULL): whole seconds. */
    k->expire = floor(now) + cfg.queue_timeout;
    set_patience(k, now);
    k->deadline = earliest(k->expire, k->gives_up_at);
    timer_set(k, k->deadline);
}

/* ---- ringing an operator ---- */

/* Whether this offer will be picked up: an operator away from the desk
 * (--no-answer) never does, others miss a --rna share. */
static int offer_fails(const operator_ *op) {
    if (op->no_answer) return 1;
    return cfg.rna_pct > 0 && rnd() * 100.0 < cfg.rna_pct;
}

/* try_calling() rings for the queue's member timeout, or only until the
 * caller's expiry when that comes first (timeoutpriority=app, the default):
 * to = (qe->expire - now) * 1000 in whole seconds. */
static void ring_limit(call *k, double now) {
    long left = (long)k->expire - (long)now;
    double ring = cfg.ring_timeout < left ? cfg.ring_timeout : (double)left;
    if (ring < 0) ring = 0;
    k->ring_ms = (long)(ring * 1000);
    timer_set(k, earliest(now + ring, k->gives_up_at));
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
    op->last_offer = now;
    k->t_ring = now;
    k->ring_fails = offer_fails(op);
    truth_rung(k->q, op, now);

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
    phone_dialplan_data(o2);
    newexten(o2, phone_pri(2), "Ringing", "");
    newstate(o1, 5);
    /* The lab's phone answers after Wait(2); one nobody picks up rings on. */
    newexten(o2, phone_pri(3), "Wait", k->ring_fails ? "60" : "2");
    device_state(op->iface, "INUSE");
    member_status_all_queues(op);
    dest_event("DialState", "call,all", c2, o1, "DialStatus", "RINGING", NULL);
    k->phase = PH_RINGING;
    if (k->ring_fails) ring_limit(k, now);
    else timer_set(k, now + RING_SECONDS);
}

/* hangupcalls() at the end of try_calling(): DialEnd CANCEL, then
 * ast_hangup() of the member's ;1 half with the cause app_queue leaves unset
 * (0); ast_unreal_hangup() (main/core_unreal.c) queues that hangup to the
 * ;2 half: HangupRequest. */
static void cancel_member(call *k) {
    dest_event("DialEnd", "call,all", &k->c2, &k->o1, "DialStatus", "CANCEL", NULL);
    hangup_request("HangupRequest", &k->o2, 0);
    hangup_cause(&k->o1, 0);
}

/* The member's ;2 half runs in its own PBX thread: it ends when it reads the
 * hangup frame, cause still 0 (as the caller's half in capture 02), and the
 * phone is free again. */
static void member_half_gone(call *k) {
    operator_ *op = k->op;
    hangup_request("SoftHangupRequest", &k->o2, 16);
    device_state(op->iface, "NOT_INUSE");
    op->call = NULL;
    op->in_call = 0;
    k->op = NULL;
    member_status_all_queues(op);
    hangup_cause(&k->o2, 0);
    device_state(op->iface, "NOT_INUSE");
    k->has_op = 0;
}

/* The ring time ran out in wait_for_answer(): rna() sends AgentRingNoAnswer
 * with RingTime in milliseconds (the time asked, "orig"), then
 * publish_dial_end_event(NOANSWER); try_calling() ends in hangupcalls(). */
static void ring_no_answer_events(call *k, double now) {
    char ms[24];
    snprintf(ms, sizeof(ms), "%ld", k->ring_ms);
    dest_event("AgentRingNoAnswer", "agent,all", &k->c2, &k->o1, "Queue", k->q->name, "Interface",
               k->op->iface, "MemberName", k->op->member, "RingTime", ms, NULL);
    dest_event("DialEnd", "call,all", &k->c2, &k->o1, "DialStatus", "NOANSWER", NULL);
    truth_ring_no_answer(k->q, k->op, now);
    cancel_member(k);
}

/* queue_exec() goes round again: wait_a_bit() for the queue's retry, then
 * try_calling() rings the next member. The expiry is looked at before the
 * wait (a ring cut short by it never gets here, see ring_limit()) and after
 * it, not during it; the caller may hang up any time. */
static void step_ring_no_answer(call *k, double now) {
    ring_no_answer_events(k, now);
    member_half_gone(k);
    k->phase = PH_RETRY;
    timer_set(k, earliest(now + cfg.retry, k->gives_up_at));
    dispatch(now);
}

static void step_retry_over(call *k, double now) {
    if (now >= k->gives_up_at || now >= k->expire) {
        step_give_up(k, now);
        return;
    }
    k->phase = PH_WAITING;
    timer_set(k, k->deadline);
    dispatch(now);
}

static void step_ring_over(call *k, double now) {
    if (!k->ring_fails) step_agent_answer(k, now);
    else if (now >= k->deadline) step_give_up(k, now);
    else step_ring_no_answer(k, now);
}

/* ---- answered ---- */

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

    newexten(o2, phone_pri(4), "Answer", "");
    newstate(o2, 6);
    device_state(op->iface, "INUSE");
    newstate(o1, 6);
    device_state(op->iface, "INUSE");
    dest_event("DialEnd", "call,all", c2, o1, "DialStatus", "ANSWER", NULL);
    chan_event("MusicOnHoldStop", "call,all", c2, NULL);
    k->q->holdtime = running_average(k->q->holdtime, hold, k->q->completed + 1);
    connect_vars(k, hold);
    leave_queue(k);
    duration_vars(c2, "QUEUEWAIT", (double)hold);
    dest_event("AgentConnect", "agent,all", c2, o1, "Queue", k->q->name, "Interface", op->iface,
               "MemberName", op->member, "HoldTime", hs, "RingTime", rs, NULL);
    truth_answered(k->q, op, hold, now);
    random_bridge_id(k->bridge);
    bridge_event("BridgeCreate", k->bridge, 0, NULL);
    bridge_pair(k->bridge, o1, c2);
    newexten(o2, phone_pri(5), "Wait", "600");
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

static void final_vars(call *k, double now) {
    duration_vars(&k->c2, "ANSWEREDTIME", now - k->t_answer);
    duration_vars(&k->c2, "DIALEDTIME", now - k->c2.created);
}

void operator_free(operator_ *op, double now) {
    op->calls_taken++;
    op->last_call = (long)now;
    op->call = NULL;
    op->in_call = 0;
    day_call_done(op, now);
}

void inbound_talk_over(call *k, double now) {
    if (k->agent) truth_talked(k->q, k->agent, now - k->t_answer, now);
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
    inbound_talk_over(k, now);
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
    final_vars(k, now);
    hangup_request("SoftHangupRequest", c2, 16);
    hangup_cause(c2, 16);
    trunk_gone(k);
    call_unlink(k);
    dispatch(now);
}

/* ---- leaving the queue unanswered ---- */

/* record_abandoned(): ABANDONED, the queue's variables (the old count), the
 * event, and only then the count goes up. */
static void record_abandoned(call *k, double now, int timeout) {
    chan *c2 = &k->c2;
    long hold = (long)now - (long)k->t_join;
    char hs[16], pos[16], orig[16];
    snprintf(hs, sizeof(hs), "%ld", hold);
    snprintf(pos, sizeof(pos), "%d", queue_position(k->q, k));
    snprintf(orig, sizeof(orig), "%d", k->orig_position);
    varset(c2, "ABANDONED", "TRUE");
    queue_vars(c2, k->q);
    chan_event("QueueCallerAbandon", "agent,all", c2, "Queue", k->q->name, "Position", pos,
               "OriginalPosition", orig, "HoldTime", hs, NULL);
    k->q->abandoned++;
    truth_left(k->q, hold, timeout ? (k->has_op ? LEFT_TIMEOUT_RINGING : LEFT_TIMEOUT)
                                   : LEFT_ABANDON, now);
}

/* queue_exec()'s "stop:" sets what is still empty; the queue's wait is
 * counted in whole seconds (time(NULL) - qe->start). */
static void stop_vars(call *k, double now) {
    duration_vars(&k->c2, "QUEUEWAIT", (double)((long)now - (long)k->t_join));
    duration_vars(&k->c2, "DIALEDTIME", now - k->c2.created);
    duration_vars(&k->c2, "ANSWEREDTIME", 0);
}

/* The caller hangs up while queued: capture 02 from HangupRequest on. If a
 * phone rings, wait_for_answer() sees the hangup first (DialEnd CANCEL) and
 * hangupcalls() cancels and hangs up the member. */
static void caller_abandons(call *k, double now) {
    chan *c1 = &k->c1, *c2 = &k->c2;
    int ringing = k->has_op;
    hangup_request("HangupRequest", c2, 0);
    if (ringing) {
        dest_event("DialEnd", "call,all", c2, &k->o1, "DialStatus", "CANCEL", NULL);
        cancel_member(k);
    }
    chan_event("MusicOnHoldStop", "call,all", c2, NULL);
    stop_vars(k, now);
    hangup_cause(c1, 0);
    record_abandoned(k, now, 0);
    if (ringing) member_half_gone(k);
    queue_vars(c2, k->q);
    trunk_gone(k);
    leave_queue(k);
    hangup_request("SoftHangupRequest", c2, 16);
    hangup_cause(c2, 0);
    trunk_gone(k);
}

/* Queue() returned; the dialplan's next step is Hangup() (as in
 * compose/asterisk/extensions.conf). The ;2 half hangs up and takes the
 * trunk's ;1 half with it, as the operator's pair does in capture 03b. */
static void dialplan_hangup(call *k) {
    chan *c1 = &k->c1, *c2 = &k->c2;
    newexten(c2, 9, "Hangup", "");
    hangup_request("SoftHangupRequest", c2, 16);
    hangup_request("HangupRequest", c1, 16);
    hangup_cause(c2, 16);
    hangup_request("SoftHangupRequest", c1, 16);
    hangup_cause(c1, 16);
    trunk_gone(k);
}

/* The maximum wait ran out (queue_exec(): "Leave if we have exceeded our
 * queuetimeout"): record_abandoned() -- QueueCallerAbandon is sent for a
 * timeout too --, "stop:" (variables, ast_moh_stop()), leave_queue() and
 * set_queue_result() QUEUESTATUS=TIMEOUT. When a phone was ringing, its
 * ring time was cut to the expiry: rna() and hangupcalls() come first, and
 * the member's ;2 half hangs up in its own thread meanwhile. */
static void queue_times_out(call *k, double now) {
    chan *c2 = &k->c2;
    int ringing = k->has_op;
    if (ringing) ring_no_answer_events(k, now);
    record_abandoned(k, now, 1);
    if (ringing) member_half_gone(k);
    stop_vars(k, now);
    chan_event("MusicOnHoldStop", "call,all", c2, NULL);
    queue_vars(c2, k->q);
    leave_queue(k);
    varset(c2, "QUEUESTATUS", "TIMEOUT");
    dialplan_hangup(k);
}

/* Still waiting (or ringing in vain) when the caller gives up or the queue's
 * maximum wait runs out, whichever came first. */
void step_give_up(call *k, double now) {
    int timeout = !k->will_abandon && now < k->gives_up_at && now >= k->expire;
    if (timeout) queue_times_out(k, now);
    else caller_abandons(k, now);
    call_unlink(k);
    dispatch(now);
}

/* ---- offering calls ---- */

/* A caller who may be rung now: not ringing already, not between two rings
 * (PH_RETRY), not one of the impatient who never are. */
static call *first_to_ring(const queue *q) {
    for (call *k = q->head; k; k = k->qnext)
        if (!k->will_abandon && !k->has_op && k->phase == PH_WAITING) return k;
    return NULL;
}

/* Rings free members for waiting callers, the longest waiting caller of
 * all queues first (operators are members of several queues: without that
 * the first queue would take them all); among a queue's members the least
 * recently busy, skipping paused and busy ones (Ringinuse is off).
 * Operators' breaks and logouts that waited for a call to end happen
 * first. */
void dispatch(double now) {
    int stuck[MAX_QUEUES] = {0};
    day_settle(now);
    for (;;) {
        call *oldest = NULL;
        for (int i = 0; i < nqueues; i++) {
            call *k = stuck[i] ? NULL : first_to_ring(&queues[i]);
            if (!k) stuck[i] = 1;
            else if (!oldest || k->t_join < oldest->t_join) oldest = k;
        }
        if (!oldest) return;
        operator_ *op = member_free_operator(oldest->q);
        if (op) step_ring(oldest, op, now);
        else stuck[oldest->q - queues] = 1;
    }
}

void inbound_timer(call *k, double now) {
    switch (k->phase) {
    case PH_DID_ANSWER: step_did_answer(k, now); break;
    case PH_JOIN: step_join(k, now); dispatch(now); break;
    case PH_WAITING: step_give_up(k, now); break;
    case PH_RINGING: step_ring_over(k, now); break;
    case PH_RETRY: step_retry_over(k, now); break;
    case PH_TALKING: step_caller_hangup(k, now); break;
    default: c2c_timer(k, now); break;
    }
}
