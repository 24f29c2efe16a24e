/* c2c.c -- the calls actions start or change: click-to-call, Redirect,
 * Hangup and supervisor ChanSpy.
 *
 * Click-to-call follows captures 03a/03b/03d event for event: the operator's
 * phone pair rings 2 s and auto-answers, OriginateResponse, then the
 * c2c-outbound dialplan dials Local/<number>@pstn, whose lab behaviour the
 * number decides (5552xxx answers after 3 s and hangs up after 8 s, 5553xxx
 * is busy, 5556xxx answers and stays, 5554xxx never answers, anything else is
 * not in the dialplan). A phone nobody picks up (--no-answer) rings until
 * the Originate's Timeout, then the Originate fails (main/dial.c, manager.c).
 * A Redirect to [transfer] 1NN or [answer] opNNN makes the redirected leg
 * dial that operator's phone (05a); Hangup ends a call's channels with the
 * cause given (06). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amisim.h"
#include "log.h"
#include "sim.h"
#include "simclock.h"
#include "truth.h"

#define COMPANY_CID "18005550100"
#define COMPANY_NAME "ACME Support"

/* ---- channels of a call ---- */

int call_chans(call *k, chan **out) {
    int n = 0;
    if (k->has_pstn) out[n++] = &k->p2, out[n++] = &k->p1;
    if (k->has_op) out[n++] = &k->o2, out[n++] = &k->o1;
    if (k->has_trunk) out[n++] = &k->c2, out[n++] = &k->c1;
    return n;
}

call *find_channel(const char *name, chan **which) {
    for (call *k = live; k; k = k->next) {
        chan *cs[8];
        int n = call_chans(k, cs);
        for (int i = 0; i < n; i++) {
            if (strcmp(cs[i]->name, name) == 0) {
                *which = cs[i];
                return k;
            }
        }
    }
    return NULL;
}

static chan *partner(call *k, chan *c) {
    if (c == &k->c1) return &k->c2;
    if (c == &k->c2) return &k->c1;
    if (c == &k->o1) return &k->o2;
    if (c == &k->o2) return &k->o1;
    if (c == &k->p1) return &k->p2;
    return &k->p1;
}

static void device_of(const chan *c, char *out, size_t n) {
    /* "Local/op101@phones-0000000a;1" -> "Local/op101@phones" */
    snprintf(out, n, "%s", c->name);
    char *dash = strrchr(out, '-');
    if (dash) *dash = '\0';
}

static const char *var_value(const orig_req *r, const char *name) {
    for (int i = 0; i < r->nvars; i++) {
        const char *v = r->vars[i][0];
        while (*v == '_') v++;
        if (strcmp(v, name) == 0) return r->vars[i][1];
    }
    return "";
}

/* ---- the operator's phone ---- */

static void op_take(call *k, operator_ *op) {
    k->op = op;
    k->op_other = 1;
    op->other_calls++;
}

/* The operator's phone is free again: device state and member status. */
static void op_release(call *k, double now) {
    operator_ *op = k->op;
    if (!op) return;
    if (k->op_other) {
        if (op->other_calls > 0) op->other_calls--;
    } else if (op->call == k && k->agent == op) {
        operator_free(op, now);
    } else if (op->call == k) {     /* rung, never took it */
        op->call = NULL;
        op->in_call = 0;
    }
    k->op = NULL;
    k->op_other = 0;
    device_state(op->iface, "NOT_INUSE");
    member_status_all_queues(op);
    device_state(op->iface, "NOT_INUSE");
}

static void op_pair(call *k, operator_ *op, const char *linkedid, double now) {
    char base[48];
    snprintf(base, sizeof(base), "%s@phones", op->name);
    long seq = next_local_seq();
    chan_init(&k->o1, base, seq, 1, "phones", op->name, linkedid, now);
    chan_init(&k->o2, base, seq, 2, "phones", op->name, k->o1.linkedid, now);
    k->has_op = 1;
}

/* Newchannel .. DialState RINGING of an originated phone (03a 5-24). */
static void op_ring_events(call *k, const orig_req *r) {
    chan *o1 = &k->o1, *o2 = &k->o2;
    operator_ *op = k->op;
    char data[200], dial[64];
    newchannel(o1);
    newchannel(o2);
    newexten(o1, 1, "AppDial2", "(Outgoing Line)");
    for (int i = r->nvars - 1; i >= 0; i--) {
        set_vars(o1, *var_value(r, "CC_CAMPAIGN") ? var_value(r, "CC_CAMPAIGN") : o1->campaign,
                 *var_value(r, "CC_TICKET") ? var_value(r, "CC_TICKET") : o1->ticket);
        varset(o1, r->vars[i][0], r->vars[i][1]);
    }
    snprintf(o1->conn_num, sizeof(o1->conn_num), "%s", r->cid_num);
    snprintf(o1->conn_name, sizeof(o1->conn_name), "%s", r->cid_name);
    set_callerid(o1, r->cid_num, r->cid_name);
    set_connected(o1, r->cid_num, r->cid_name);
    for (int i = 0; i < r->nvars; i++) {
        if (r->vars[i][0][0] != '_') continue;   /* only inherited ones reach ;2 */
        set_vars(o2, o1->campaign, o1->ticket);
        varset(o2, r->vars[i][0], r->vars[i][1]);
    }
    snprintf(o2->conn_num, sizeof(o2->conn_num), "%s", r->cid_num);
    snprintf(o2->conn_name, sizeof(o2->conn_name), "%s", r->cid_name);
    set_callerid(o2, r->cid_num, r->cid_name);
    set_connected(o2, r->cid_num, r->cid_name);
    local_bridge(o1, o2, "phones", op->name);
    snprintf(data, sizeof(data), "Operator phone %s rings for \"%s\" <%s>", op->name,
             r->cid_name, r->cid_num);
    newexten(o2, 1, "NoOp", data);
    phone_dialplan_data(o2);
    snprintf(dial, sizeof(dial), "%s@phones", op->name);
    dest_event("DialBegin", "call,all", NULL, o1, "DialString", dial, NULL);
    newexten(o2, phone_pri(2), "Ringing", "");
    newstate(o1, 5);
    newexten(o2, phone_pri(3), "Wait", k->ring_fails ? "60" : "2");
    dest_event("DialState", "call,all", NULL, o1, "DialStatus", "RINGING", NULL);
    device_state(op->iface, "INUSE");
    member_status_all_queues(op);
}

static void op_answer_events(call *k) {
    newexten(&k->o2, phone_pri(4), "Answer", "");
    newstate(&k->o2, 6);
    newstate(&k->o1, 6);
    dest_event("DialEnd", "call,all", NULL, &k->o1, "DialStatus", "ANSWER", NULL);
}

static void copy_request(call *k, const orig_req *r) {
    snprintf(k->actionid, sizeof(k->actionid), "%s", r->actionid);
    snprintf(k->dialstring, sizeof(k->dialstring), "%s", r->channel);
    snprintf(k->orig_app, sizeof(k->orig_app), "%s", r->app);
    snprintf(k->orig_data, sizeof(k->orig_data), "%s", r->data);
    snprintf(k->orig_channel_id, sizeof(k->orig_channel_id), "%s", r->channel_id);
    snprintf(k->number, sizeof(k->number), "%s", r->exten);
    k->nvars = r->nvars;
    memcpy(k->vars, r->vars, sizeof(k->vars));
    snprintf(k->c1.cid_num, sizeof(k->c1.cid_num), "%s", r->cid_num);    /* remembered */
    snprintf(k->c1.cid_name, sizeof(k->c1.cid_name), "%s", r->cid_name);
    snprintf(k->c1.context, sizeof(k->c1.context), "%s", r->context);
}

static void start_op_call(call *k, const orig_req *r, operator_ *op, double now) {
    op_take(k, op);
    op_pair(k, op, NULL, now);
    if (*r->channel_id) {
        snprintf(k->o1.uniqueid, sizeof(k->o1.uniqueid), "%s", r->channel_id);
        snprintf(k->o1.linkedid, sizeof(k->o1.linkedid), "%s", r->channel_id);
        snprintf(k->o2.linkedid, sizeof(k->o2.linkedid), "%s", r->channel_id);
    }
    if (*r->other_id) snprintf(k->o2.uniqueid, sizeof(k->o2.uniqueid), "%s", r->other_id);
    copy_request(k, r);
    k->ring_fails = op->no_answer;
    op_ring_events(k, r);
    /* Asterisk's Originate rings for its Timeout, 30000 ms unless given
     * (manager.c action_originate()). */
    timer_set(k, now + (!k->ring_fails ? RING_SECONDS : r->timeout > 0 ? r->timeout : 30));
}

/* ---- OriginateResponse ---- */

/* What manager.c fast_originate() reports once the dial is over. */
typedef struct orig_outcome {
    const char *actionid, *channel, *app, *data, *context, *exten, *uniqueid;
    const char *cid_num, *cid_name;
    int reason;             /* 4 answered, 3 rang out, 0 failed (pbx_dial_reason()) */
    const chan *made;       /* the channel when answered: its ChanVariable lines */
} orig_outcome;

static const char *or_unknown(const char *s) {
    return s && *s ? s : "<unknown>";
}

/* The Application variant for an Originate of an application, else Context
 * and Exten; ChanVariable(<channel>) lines only with a channel
 * (ast_manager_event_multichan()). */
static void originate_response(const orig_outcome *o) {
    ev_begin("OriginateResponse", "call,all", stamp());
    if (*o->actionid) ev_kv("ActionID", o->actionid);
    ev_kv("Response", o->made ? "Success" : "Failure");
    ev_kv("Channel", o->channel);
    ev_kv(*o->app ? "Application" : "Context", *o->app ? o->app : o->context);
    ev_kv(*o->app ? "Data" : "Exten", *o->app ? o->data : o->exten);
    ev_kvf("Reason", "%d", o->reason);
    ev_kv("Uniqueid", o->uniqueid);
    ev_kv("CallerIDNum", or_unknown(o->cid_num));
    ev_kv("CallerIDName", or_unknown(o->cid_name));
    if (o->made) {
        char key[160];
        snprintf(key, sizeof(key), "ChanVariable(%s)", o->made->name);
        ev_kvf(key, "CC_CAMPAIGN=%s", o->made->campaign);
        ev_kvf(key, "CC_TICKET=%s", o->made->ticket);
    }
    ev_send();
}

/* The operator's phone answered (Reason 4): the channel is named. */
static void originate_answered(const call *k, const chan *c) {
    orig_outcome o = {k->actionid, c->name, k->orig_app, k->orig_data, c->context, c->exten,
                      c->uniqueid, k->c1.cid_num, k->c1.cid_name, 4, c};
    originate_response(&o);
}

/* No channel is left: Channel is the dial string, Uniqueid the ChannelId
 * asked for or <unknown>. */
void originate_failed(const orig_req *r) {
    sim_step_now();
    orig_outcome o = {r->actionid, r->channel, r->app, r->data, r->context, r->exten,
                      or_unknown(r->channel_id), r->cid_num, r->cid_name, 0, NULL};
    originate_response(&o);
}

/* ---- click-to-call ---- */

static enum pstn pstn_of(const char *number) {
    if (strlen(number) != 7 || strspn(number, "0123456789") != 7) return PSTN_INVALID;
    if (strncmp(number, "5552", 4) == 0) return PSTN_ANSWER_HANGUP;
    if (strncmp(number, "5553", 4) == 0) return PSTN_BUSY;
    if (strncmp(number, "5556", 4) == 0) return PSTN_ANSWER_STAY;
    if (strncmp(number, "5554", 4) == 0) return PSTN_NOANSWER;
    return PSTN_INVALID;
}

void originate_c2c(const orig_req *r, operator_ *op) {
    double now = sim_step_now();
    call *k = call_new(K_C2C);
    k->pstn = pstn_of(r->exten);
    k->ring_limit = r->timeout > 0 && r->timeout < 20 ? r->timeout : 20;
    k->phase = PH_OP_RING;
    start_op_call(k, r, op, now);
}

/* Nobody picked the phone up within the Originate's Timeout: main/dial.c
 * handle_timeout_trip() sets cause 19 (AST_CAUSE_NO_ANSWER) on the ;1 half
 * and hangs it up, without a DialEnd; ast_unreal_hangup() passes the cause
 * on to the ;2 half, which takes it from the hangup frame (channel.c
 * __ast_read()). pbx.c pbx_dial_reason() makes cause 19 Reason 3 (ringing),
 * and fast_originate() reports Failure with the dial string, since no
 * channel is left. The ;2 half ends in its own thread. */
static void originate_rang_out(call *k, double now) {
    const char *uid = *k->orig_channel_id ? k->orig_channel_id : "<unknown>";
    hangup_request("HangupRequest", &k->o2, 19);
    hangup_cause(&k->o1, 19);
    orig_outcome o = {k->actionid, k->dialstring, k->orig_app, k->orig_data, k->c1.context,
                      k->number, uid, k->c1.cid_num, k->c1.cid_name, 3, NULL};
    originate_response(&o);
    hangup_request("SoftHangupRequest", &k->o2, 16);
    hangup_cause(&k->o2, 19);
    if (k->kind == K_C2C) truth_originated("operator_no_answer", now);
    op_release(k, now);
    call_unlink(k);
    dispatch(now);
}

static void clear_dial_vars(const chan *c) {
    static const char *names[] = {"DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME",
                                  "ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME",
                                  "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME",
                                  "PROGRESSTIME_MS"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) varset(c, names[i], "");
}

/* The c2c-outbound dialplan up to Dial() (03a 29-51). */
static void c2c_dialplan(call *k) {
    chan *o1 = &k->o1;
    char data[200];
    snprintf(o1->context, sizeof(o1->context), "%s", k->c1.context);
    snprintf(o1->exten, sizeof(o1->exten), "%s", k->number);
    snprintf(data, sizeof(data), "Click-to-call: operator \"%s\" <%s> dials customer %s",
             o1->cid_name, o1->cid_num, k->number);
    newexten(o1, 1, "NoOp", data);
    snprintf(data, sizeof(data), "__CC_CAMPAIGN=%s", o1->campaign);
    newexten(o1, 2, "Set", data);
    varset(o1, "__CC_CAMPAIGN", o1->campaign);
    snprintf(data, sizeof(data), "CDR(cc_campaign)=%s", o1->campaign);
    newexten(o1, 3, "Set", data);
    originate_answered(k, o1);
    device_state(k->op->iface, "INUSE");
    device_state(k->op->iface, "INUSE");
    newexten(o1, 4, "Set", "CALLERID(num)=" COMPANY_CID);
    snprintf(o1->cid_num, sizeof(o1->cid_num), COMPANY_CID);
    chan_event("NewCallerid", "call,all", o1, "CID-CallingPres",
               "0 (Presentation Allowed, Not Screened)", NULL);
    newexten(o1, 5, "Set", "CALLERID(name)=" COMPANY_NAME);
    snprintf(o1->cid_name, sizeof(o1->cid_name), COMPANY_NAME);
    chan_event("NewCallerid", "call,all", o1, "CID-CallingPres",
               "0 (Presentation Allowed, Not Screened)", NULL);
    snprintf(data, sizeof(data), "Local/%s@pstn,20,tT", k->number);
    newexten(o1, 6, "Dial", data);
    clear_dial_vars(o1);
}

/* The customer's Local/<number>@pstn pair, created by Dial (03a 52-64). */
static void pstn_pair(call *k, double now) {
    chan *o1 = &k->o1, *p1 = &k->p1, *p2 = &k->p2;
    char base[64], peer[64];
    snprintf(base, sizeof(base), "%s@pstn", k->number);
    long seq = next_local_seq();
    chan_init(p1, base, seq, 1, "pstn", k->number, o1->linkedid, now);
    chan_init(p2, base, seq, 2, "pstn", k->number, o1->linkedid, now);
    k->has_pstn = 1;
    snprintf(peer, sizeof(peer), "%s@pstn", k->number);
    newchannel(p1);
    newchannel(p2);
    chan *pair[2] = {p1, p2};
    for (int i = 0; i < 2; i++) {
        chan *p = pair[i];
        varset(p, "DIALEDPEERNUMBER", peer);
        set_vars(p, o1->campaign, "");
        varset(p, "__CC_CAMPAIGN", o1->campaign);
        set_vars(p, o1->campaign, o1->ticket);
        varset(p, "__CC_TICKET", o1->ticket);
        const char *num = i ? COMPANY_CID : k->number;
        const char *name = i ? COMPANY_NAME : k->c1.cid_name;
        snprintf(p->cid_num, sizeof(p->cid_num), "%s", num);
        snprintf(p->cid_name, sizeof(p->cid_name), "%s", name);
        snprintf(p->conn_num, sizeof(p->conn_num), "%s", i ? k->number : COMPANY_CID);
        snprintf(p->conn_name, sizeof(p->conn_name), "%s", i ? k->c1.cid_name : COMPANY_NAME);
        if (!i) newexten(p, 1, "AppDial", "(Outgoing Line)");
        chan_event("NewCallerid", "call,all", p, "CID-CallingPres",
                   "0 (Presentation Allowed, Not Screened)", NULL);
        chan_event("NewConnectedLine", "call,all", p, NULL);
    }
}

/* The operator's side ends after a failed Dial (03b 76-90, 03d 67-79). */
static void dial_failed_end(call *k, const char *status, int hcause, int p2_cause, double now) {
    chan *o1 = &k->o1, *o2 = &k->o2;
    char data[96], dev[96];
    varset(o1, "DIALSTATUS", status);
    snprintf(data, sizeof(data), "DIALSTATUS=%s HANGUPCAUSE=%d", status, hcause);
    newexten(o1, 7, "NoOp", data);
    newexten(o1, 8, "Hangup", "");
    hangup_request("SoftHangupRequest", o1, 16);
    hangup_request("HangupRequest", o2, 16);
    hangup_cause(o1, 16);
    if (p2_cause >= 0) hangup_cause(&k->p2, p2_cause);
    hangup_request("SoftHangupRequest", o2, 16);
    hangup_cause(o2, 16);
    device_of(&k->p1, dev, sizeof(dev));
    const char *pstate = strcmp(status, "CHANUNAVAIL") == 0 ? "INVALID" : "NOT_INUSE";
    device_state(dev, pstate);
    device_state(dev, pstate);
    op_release(k, now);
    call_unlink(k);
    dispatch(now);
}

static void pstn_ringing(call *k, const char *wait) {
    char dev[96];
    device_of(&k->p1, dev, sizeof(dev));
    newexten(&k->p2, 2, "Ringing", "");
    newstate(&k->p1, 5);
    newexten(&k->p2, 3, "Wait", wait);
    device_state(dev, "INUSE");
    varset(&k->o1, "RINGTIME", "0");
    varset(&k->o1, "RINGTIME_MS", "1");
    dest_event("DialState", "call,all", &k->o1, &k->p1, "DialStatus", "RINGING", NULL);
}

static void step_op_answer(call *k, double now) {
    op_answer_events(k);
    c2c_dialplan(k);
    pstn_pair(k, now);
    chan *p1 = &k->p1, *p2 = &k->p2;
    char data[96], dial[64];
    if (k->pstn == PSTN_INVALID) {
        truth_originated("failed", now);
        hangup_cause(p2, 0);
        hangup_cause(p1, 0);
        k->has_pstn = 0;
        dial_failed_end(k, "CHANUNAVAIL", 0, -1, now);
        return;
    }
    local_bridge(p1, p2, "pstn", k->number);
    snprintf(dial, sizeof(dial), "%s@pstn", k->number);
    dest_event("DialBegin", "call,all", &k->o1, p1, "DialString", dial, NULL);
    double after = 3;
    switch (k->pstn) {
    case PSTN_BUSY:
        snprintf(data, sizeof(data), "PSTN %s: busy", k->number);
        newexten(p2, 1, "NoOp", data);
        newexten(p2, 2, "Wait", "1");
        after = 1;
        break;
    case PSTN_ANSWER_STAY:
        snprintf(data, sizeof(data), "PSTN %s: answers, long call", k->number);
        newexten(p2, 1, "NoOp", data);
        pstn_ringing(k, "2");
        after = 2;
        break;
    case PSTN_NOANSWER:
        snprintf(data, sizeof(data), "PSTN %s: no answer", k->number);
        newexten(p2, 1, "NoOp", data);
        pstn_ringing(k, "60");
        after = k->ring_limit;
        break;
    default:
        snprintf(data, sizeof(data), "PSTN %s: answers", k->number);
        newexten(p2, 1, "NoOp", data);
        pstn_ringing(k, "3");
    }
    newexten(&k->o2, phone_pri(5), "Wait", "600");
    k->phase = PH_PSTN_RING;
    timer_set(k, now + after);
}

static void bridge_two(call *k, chan *first, chan *second) {
    random_bridge_id(k->bridge);
    bridge_event("BridgeCreate", k->bridge, 0, NULL);
    first->exten[0] = '\0';
    newexten(first, 1, "AppDial", "(Outgoing Line)");
    bridge_pair(k->bridge, first, second);
}

static void pstn_answer(call *k, double now) {
    chan *o1 = &k->o1, *p1 = &k->p1, *p2 = &k->p2;
    char dev[96], peer[64];
    device_of(p1, dev, sizeof(dev));
    snprintf(peer, sizeof(peer), "%s@pstn", k->number);
    newexten(p2, 4, "Answer", "");
    newstate(p2, 6);
    device_state(dev, "INUSE");
    newstate(p1, 6);
    device_state(dev, "INUSE");
    varset(o1, "DIALSTATUS", "ANSWER");
    varset(o1, "DIALEDPEERNAME", p1->name);
    varset(o1, "DIALEDPEERNUMBER", peer);
    dest_event("DialEnd", "call,all", o1, p1, "DialStatus", "ANSWER", NULL);
    bridge_two(k, p1, o1);
    k->cust = p1;
    k->t_answer = now;
    truth_originated("answered", now);
    if (k->pstn == PSTN_ANSWER_HANGUP) {
        newexten(p2, 5, "Wait", "8");
        k->phase = PH_PSTN_TALK;
        timer_set(k, now + 8);
    } else {
        newexten(p2, 5, "Wait", "600");
        k->phase = PH_UP;
        timer_cancel(k);
    }
}

static void pstn_busy(call *k, double now) {
    chan *o1 = &k->o1, *p1 = &k->p1, *p2 = &k->p2;
    newexten(p2, 3, "Busy", "5");
    newstate(p2, 7);
    dest_event("DialEnd", "call,all", o1, p1, "DialStatus", "BUSY", NULL);
    hangup_request("HangupRequest", p2, 0);
    hangup_request("SoftHangupRequest", p2, 16);
    hangup_cause(p1, 0);
    k->has_pstn = 0;
    truth_originated("busy", now);
    dial_failed_end(k, "BUSY", 0, 17, now);
}

static void pstn_noanswer(call *k, double now) {
    chan *o1 = &k->o1, *p1 = &k->p1, *p2 = &k->p2;
    dest_event("DialEnd", "call,all", o1, p1, "DialStatus", "NOANSWER", NULL);
    hangup_request("HangupRequest", p2, 19);
    hangup_cause(p1, 19);
    k->has_pstn = 0;
    truth_originated("no_answer", now);
    dial_failed_end(k, "NOANSWER", 19, 19, now);
}

static void step_pstn_ring(call *k, double now) {
    switch (k->pstn) {
    case PSTN_BUSY: pstn_busy(k, now); break;
    case PSTN_NOANSWER: pstn_noanswer(k, now); break;
    default: pstn_answer(k, now); break;
    }
}

/* The customer hangs up after talking (03a 92-116). */
static void step_pstn_hangup(call *k, double now) {
    chan *o1 = &k->o1, *o2 = &k->o2, *p1 = &k->p1, *p2 = &k->p2;
    char dev[96];
    long talk_ms = (long)((now - k->t_answer) * 1000), dial_ms = (long)((now - o1->created) * 1000);
    newexten(p2, 6, "Hangup", "16");
    hangup_request("SoftHangupRequest", p2, 16);
    hangup_request("HangupRequest", p1, 16);
    hangup_cause(p2, 16);
    varset(p1, "BRIDGEPEER", "");
    varset(o1, "BRIDGEPEER", "");
    p1->bridge[0] = o1->bridge[0] = '\0';
    bridge_event("BridgeLeave", k->bridge, 1, p1);
    hangup_cause(p1, 16);
    bridge_event("BridgeLeave", k->bridge, 0, o1);
    bridge_event("BridgeDestroy", k->bridge, 0, NULL);
    varsetf(o1, "ANSWEREDTIME", "%ld", talk_ms / 1000);
    varsetf(o1, "ANSWEREDTIME_MS", "%ld", talk_ms);
    varsetf(o1, "DIALEDTIME", "%ld", dial_ms / 1000);
    varsetf(o1, "DIALEDTIME_MS", "%ld", dial_ms);
    varset(o1, "DIALSTATUS", "ANSWER");
    hangup_request("SoftHangupRequest", o1, 16);
    hangup_request("HangupRequest", o2, 16);
    hangup_cause(o1, 16);
    hangup_request("SoftHangupRequest", o2, 16);
    hangup_cause(o2, 16);
    device_of(p1, dev, sizeof(dev));
    device_state(dev, "NOT_INUSE");
    device_state(dev, "NOT_INUSE");
    op_release(k, now);
    call_unlink(k);
    dispatch(now);
}

/* ---- ChanSpy ---- */

static void spy_event(const char *event, const call *s) {
    ev_begin(event, "call,all", stamp());
    ev_chan("Spyer", &s->o1);
    if (s->spyee) ev_chan("Spyee", s->spyee);
    ev_send();
}

static chan *spy_target(call *s, call **owner) {
    size_t n = strlen(s->spy_prefix);
    for (call *k = live; k; k = k->next) {
        if (k == s || k->kind == K_SPY) continue;
        chan *cs[8];
        int m = call_chans(k, cs);
        for (int i = m - 1; i >= 0; i--) {
            if (strncmp(cs[i]->name, s->spy_prefix, n) == 0) {
                *owner = k;
                return cs[i];
            }
        }
    }
    return NULL;
}

/* ChanSpy scans for a channel whose name starts with its prefix. */
static void spy_scan(call *s, double now) {
    call *owner = NULL;
    if (s->plain_app) {
        s->phase = PH_UP;
        timer_cancel(s);
        return;
    }
    chan *target = spy_target(s, &owner);
    if (!target) {
        s->phase = PH_SPY_SCAN;
        timer_set(s, now + 1.0);
        return;
    }
    s->spyee_call = owner;
    s->spyee = target;
    owner->watchers++;
    spy_event("ChanSpyStart", s);
    s->phase = PH_UP;
    timer_cancel(s);
}

/* Only a watched call is looked for among the live ones: ending a call
 * costs O(1) at a thousand seats. */
void spy_detach(call *gone) {
    if (gone->kind == K_SPY && gone->spyee_call) {
        spy_event("ChanSpyStop", gone);
        gone->spyee_call->watchers--;
        gone->spyee_call = NULL;
        gone->spyee = NULL;
    }
    for (call *s = live; s && gone->watchers > 0; s = s->next) {
        if (s->kind != K_SPY || s->spyee_call != gone) continue;
        gone->watchers--;
        spy_event("ChanSpyStop", s);
        s->spyee_call = NULL;
        s->spyee = NULL;
        s->phase = PH_SPY_SCAN;
        timer_set(s, sim_now() + 1.0);
    }
}

void originate_spy(const orig_req *r, operator_ *op) {
    double now = sim_step_now();
    call *k = call_new(K_SPY);
    const char *comma = strchr(r->data, ',');
    size_t len = comma ? (size_t)(comma - r->data) : strlen(r->data);
    if (len >= sizeof(k->spy_prefix)) len = sizeof(k->spy_prefix) - 1;
    memcpy(k->spy_prefix, r->data, len);
    k->spy_prefix[len] = '\0';
    snprintf(k->spy_opts, sizeof(k->spy_opts), "%s", comma ? comma + 1 : "");
    k->phase = PH_SPY_RING;
    start_op_call(k, r, op, now);
}

static void step_spy_answer(call *k, double now) {
    op_answer_events(k);
    originate_answered(k, &k->o1);
    snprintf(k->o1.app, sizeof(k->o1.app), "%s", k->orig_app);
    snprintf(k->o1.appdata, sizeof(k->o1.appdata), "%s", k->orig_data);
    newexten(&k->o2, phone_pri(5), "Wait", "600");
    spy_scan(k, now);
}

/* ---- Hangup ---- */

static void hangup_pair(call *k, chan *hit, int cause) {
    chan *other = partner(k, hit);
    hangup_request("SoftHangupRequest", hit, 16);
    hangup_request("HangupRequest", other, cause);
    hangup_cause(hit, cause);
    if (other->bridge[0]) {
        other->bridge[0] = '\0';
        bridge_event("BridgeLeave", k->bridge, 1, other);
    }
    hangup_cause(other, cause);
}

static void hangup_rest(call *k, chan *one, chan *two) {
    if (one->bridge[0] || two->bridge[0]) {
        chan *b = one->bridge[0] ? one : two;
        b->bridge[0] = '\0';
        bridge_event("BridgeLeave", k->bridge, 0, b);
        bridge_event("BridgeDestroy", k->bridge, 0, NULL);
    }
    hangup_request("SoftHangupRequest", one, 16);
    hangup_request("HangupRequest", two, 16);
    hangup_cause(one, 16);
    hangup_request("SoftHangupRequest", two, 16);
    hangup_cause(two, 16);
}

static void pair_gone(const chan *c) {
    char dev[96];
    device_of(c, dev, sizeof(dev));
    device_state(dev, "NOT_INUSE");
}

/* Ends every channel of k: the pair holding hit with cause, the others 16
 * (06: Hangup with Cause 21 on a PSTN leg, operator legs 16). */
static void teardown_all(call *k, chan *hit, int cause, double now) {
    chan *pairs[3][2] = {{&k->c1, &k->c2}, {&k->p1, &k->p2}, {&k->o1, &k->o2}};
    int has[3] = {k->has_trunk, k->has_pstn, k->has_op};
    if (k->kind == K_SPY) spy_detach(k);
    hangup_pair(k, hit, cause);
    for (int i = 0; i < 3; i++) {
        if (!has[i] || pairs[i][0] == hit || pairs[i][1] == hit) continue;
        hangup_rest(k, pairs[i][0], pairs[i][1]);
    }
    for (int i = 0; i < 3; i++)
        if (has[i] && pairs[i][0] != &k->o1) pair_gone(pairs[i][0]);
    if (k->has_op) op_release(k, now);
    call_unlink(k);
    dispatch(now);
}

static int is_trunk_side(call *k, chan *c) {
    return c == &k->c1 || c == &k->c2;
}

/* The operator's ringing legs go away; the caller stays where it is. */
static void drop_ringing_op(call *k, double now) {
    hangup_rest(k, &k->o1, &k->o2);
    k->has_op = 0;
    op_release(k, now);
}

void call_teardown(call *k, chan *hit, int cause) {
    double now = sim_step_now();
    if (k->kind == K_INBOUND && k->phase == PH_RINGING) {
        drop_ringing_op(k, now);
        if (!is_trunk_side(k, hit)) {       /* the operator rejected the offer */
            k->phase = PH_WAITING;
            timer_set(k, k->deadline);
            dispatch(now);
            return;
        }
        k->phase = PH_WAITING;
    }
    if (k->kind == K_INBOUND && (k->phase == PH_WAITING || k->phase == PH_RETRY)) {
        k->will_abandon = 1;
        step_give_up(k, now);
        return;
    }
    if (k->kind == K_INBOUND && k->phase == PH_TALKING && k->agent) {
        char hs[16], ts[16];
        snprintf(hs, sizeof(hs), "%ld", (long)k->t_answer - (long)k->t_join);
        snprintf(ts, sizeof(ts), "%ld", (long)now - (long)k->t_answer);
        dest_event("AgentComplete", "agent,all", &k->c2, &k->o1, "Queue", k->q->name,
                   "Interface", k->agent->iface, "MemberName", k->agent->member, "HoldTime", hs,
                   "TalkTime", ts, "Reason", is_trunk_side(k, hit) ? "caller" : "agent", NULL);
        inbound_talk_over(k, now);
    }
    teardown_all(k, hit, cause, now);
}

/* ---- Redirect ---- */

/* The redirected leg dials the operator's phone (05a 147-189). */
static void xfer_ring(call *k, operator_ *op, const char *context, const char *exten,
                      double now) {
    chan *cu = k->cust, *o1 = &k->o1, *o2 = &k->o2;
    char data[160], peer[48];
    snprintf(cu->context, sizeof(cu->context), "%s", context);
    snprintf(cu->exten, sizeof(cu->exten), "%s", exten);
    snprintf(data, sizeof(data), "Local/%s@phones,20,tT", op->name);
    newexten(cu, 1, "Dial", data);
    op_take(k, op);
    op_pair(k, op, cu->linkedid, now);
    snprintf(peer, sizeof(peer), "%s@phones", op->name);
    newchannel(o1);
    newchannel(o2);
    chan *pair[2] = {o1, o2};
    for (int i = 0; i < 2; i++) {
        varset(pair[i], "DIALEDPEERNUMBER", peer);
        set_vars(pair[i], "", cu->ticket);
        varset(pair[i], "__CC_TICKET", cu->ticket);
        set_vars(pair[i], cu->campaign, cu->ticket);
        varset(pair[i], "__CC_CAMPAIGN", cu->campaign);
        if (!i) {
            snprintf(o1->exten, sizeof(o1->exten), "%s", exten);
            set_callerid(o1, exten, "");
            set_connected(o1, cu->cid_num, cu->cid_name);
            newexten(o1, 1, "AppDial", "(Outgoing Line)");
        } else {
            set_callerid(o2, cu->cid_num, cu->cid_name);
            set_connected(o2, cu->cid_num, cu->cid_name);
        }
    }
    local_bridge(o1, o2, "phones", op->name);
    dest_event("DialBegin", "call,all", cu, o1, "DialString", peer, NULL);
    snprintf(data, sizeof(data), "Operator phone %s rings for \"%s\" <%s>", op->name,
             cu->cid_name, cu->cid_num);
    newexten(o2, 1, "NoOp", data);
    phone_dialplan_data(o2);
    newexten(o2, phone_pri(2), "Ringing", "");
    newstate(o1, 5);
    device_state(op->iface, "INUSE");
    member_status_all_queues(op);
    newexten(o2, phone_pri(3), "Wait", "2");
    varset(cu, "RINGTIME", "0");
    varset(cu, "RINGTIME_MS", "1");
    dest_event("DialState", "call,all", cu, o1, "DialStatus", "RINGING", NULL);
    k->phase = PH_XFER_RING;
    timer_set(k, now + RING_SECONDS);
}

static void step_xfer_answer(call *k, double now) {
    chan *cu = k->cust, *o1 = &k->o1, *o2 = &k->o2;
    char peer[48];
    snprintf(peer, sizeof(peer), "%s@phones", k->op->name);
    newexten(o2, phone_pri(4), "Answer", "");
    newstate(o1, 6);
    newstate(o2, 6);
    varset(cu, "DIALSTATUS", "ANSWER");
    varset(cu, "DIALEDPEERNAME", o1->name);
    varset(cu, "DIALEDPEERNUMBER", peer);
    dest_event("DialEnd", "call,all", cu, o1, "DialStatus", "ANSWER", NULL);
    bridge_two(k, o1, cu);
    newexten(o2, phone_pri(5), "Wait", "600");
    if (k->kind == K_INBOUND) {
        if (!k->t_answer) k->t_answer = now;
        k->phase = PH_TALKING;
        double end = k->resume_due > now ? k->resume_due : now + cfg.talk_min;
        if (k->patience_end > now) end = k->patience_end;
        timer_set(k, end);
    } else if (k->pstn == PSTN_ANSWER_HANGUP) {
        k->phase = PH_XFER_TALK;
        timer_set(k, k->t_answer + 8 > now ? k->t_answer + 8 : now);
    } else {
        k->phase = PH_UP;
        timer_cancel(k);
    }
}

/* The redirected leg leaves the bridge; the old operator's legs hang up. */
static void leave_old_operator(call *k, double now) {
    chan *cu = k->cust, *o1 = &k->o1;
    if (cu->bridge[0]) {
        cu->bridge[0] = '\0';
        bridge_event("BridgeLeave", k->bridge, 1, cu);
        varset(cu, "BRIDGEPEER", "");
    }
    if (o1->bridge[0]) {
        o1->bridge[0] = '\0';
        bridge_event("BridgeLeave", k->bridge, 0, o1);
        bridge_event("BridgeDestroy", k->bridge, 0, NULL);
    }
    hangup_rest(k, &k->o1, &k->o2);
    k->has_op = 0;
    op_release(k, now);
}

static operator_ *redirect_target(const char *context, const char *exten) {
    char name[40];
    if (strcmp(context, "transfer") == 0 && exten[0] == '1' && strlen(exten) == 3)
        snprintf(name, sizeof(name), "op%s", exten);
    else if (strcmp(context, "answer") == 0 || strcmp(context, "phones") == 0)
        snprintf(name, sizeof(name), "%s", exten);
    else
        return NULL;
    return operator_by_name(name);
}

static int redirectable(call *k, chan *ch) {
    if (k->kind == K_SPY) return 0;
    if (k->kind == K_INBOUND) return ch == &k->c2;
    return ch == &k->p1 && k->cust == &k->p1 &&
           (k->phase == PH_PSTN_TALK || k->phase == PH_UP || k->phase == PH_XFER_TALK);
}

const char *redirect_call(call *k, chan *ch, const char *context, const char *exten) {
    double now = sim_step_now();
    if (!redirectable(k, ch)) return "Redirect failed";
    operator_ *op = redirect_target(context, exten);
    if (!op) {
        /* No such extension: the leg runs off the dialplan and hangs up. */
        call_teardown(k, ch, 0);
        return NULL;
    }
    /* [answer] opNNN for the phone a queue call is ringing: it picks up. */
    if (k->kind == K_INBOUND && k->phase == PH_RINGING && k->op == op) {
        timer_cancel(k);
        step_agent_answer(k, now);
        return NULL;
    }
    k->resume_due = k->phase == PH_TALKING ? k->tm.due : 0;
    timer_cancel(k);
    if (k->kind == K_INBOUND && k->phase == PH_RINGING) drop_ringing_op(k, now);
    if (k->kind == K_INBOUND && (k->phase == PH_WAITING || k->phase == PH_RINGING ||
                                 k->phase == PH_RETRY)) {
        chan_event("MusicOnHoldStop", "call,all", &k->c2, NULL);
        leave_queue(k);
        truth_left(k->q, (long)now - (long)k->t_join, LEFT_REDIRECT, now);
    }
    if (k->has_op) leave_old_operator(k, now);
    k->cust = ch;
    xfer_ring(k, op, context, exten, now);
    return NULL;
}

/* ---- timers ---- */

void c2c_timer(call *k, double now) {
    switch (k->phase) {
    case PH_OP_RING: if (k->ring_fails) originate_rang_out(k, now); else step_op_answer(k, now); break;
    case PH_PSTN_RING: step_pstn_ring(k, now); break;
    case PH_PSTN_TALK: step_pstn_hangup(k, now); break;
    case PH_XFER_RING: step_xfer_answer(k, now); break;
    case PH_XFER_TALK: teardown_all(k, &k->p2, 16, now); break;
    case PH_SPY_RING: if (k->ring_fails) originate_rang_out(k, now); else step_spy_answer(k, now); break;
    case PH_SPY_SCAN: spy_scan(k, now); break;
    default: log_warn("call %ld: timer in phase %d", k->id, (int)k->phase); timer_cancel(k);
    }
}
