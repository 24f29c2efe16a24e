/* callmodel.c -- the call model (callmodel.h) and its call table: AMI channel
 * events -> callbus.call.* events; operators.c is its operator half.
 *
 * A call is a Linkedid. Its channels are keyed by Uniqueid (channel names
 * repeat after an Asterisk restart). We follow channels, dials, bridges and
 * queue events, and when the last channel of a Linkedid hangs up we emit
 * `ended` with the call-centre view of it (docs/messages.md) and forget the
 * call, so memory stays bounded by the calls in progress.
 *
 * Rules, chosen from the captures in tests/fixtures/ami-samples:
 * - direction: outbound when the first channel belongs to an operator
 *   (click-to-call originates the operator's phone first), else inbound.
 * - answered: AgentConnect for queue calls; otherwise the first DialEnd
 *   ANSWER of a real dial (one with a source Channel: the originate's own
 *   dial only has Dest* fields) while not waiting in a queue; as a last
 *   resort the first two-party bridge between an operator and a customer.
 * - talk: time with exactly two channels in a bridge, summed.
 * - transfer by Redirect: the customer leaves one operator's bridge and is
 *   bridged to another operator without a Blind/AttendedTransfer event.
 * - hangup_cause: the first non-zero cause of a customer (non-operator)
 *   channel; else the Q.850 cause of the last failed dial (BUSY 17,
 *   NOANSWER 19, CONGESTION 34); else, for a call without customer
 *   channels, the first non-zero cause of any channel; else 0 (unknown).
 * - disposition: answered (answered or any talk), abandoned (was queued),
 *   busy / no_answer / failed from the last DIALSTATUS (DialEnd or VarSet:
 *   an invalid number gives only VarSet DIALSTATUS=CHANUNAVAIL), else from
 *   the hangup cause (17 busy, 18 or 19 no_answer: a click-to-call whose
 *   operator never picks up has no DialEnd at all, main/dial.c
 *   handle_timeout_trip() only hangs the phone up with cause 19), else
 *   unknown. The CDR's disposition is never used.
 * - abandon or timeout: QueueCallerAbandon comes for both; app_queue.c
 *   tells a timeout only later, with VarSet QUEUESTATUS=TIMEOUT on the same
 *   channel. Until then only the caller's own channel moving on (dialplan,
 *   hangup, a dial, a bridge) settles it as an abandon: events of the
 *   call's other channels do not, because an operator's Local ;2 half that
 *   was ringing hangs up in its own thread, in the middle of that sequence.
 * - wait_s: the queue's own HoldTime (AgentConnect, QueueCallerAbandon),
 *   whole seconds as queue_log and wallboards report it.
 * - caller: the first channel's caller id; `started` is emitted at the
 *   first Newchannel, before NewCallerid, so it may not carry it yet. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include "callmodel.h"
#include "causes.h"
#include "clock.h"

typedef struct cm_call cm_call;

typedef struct cm_chan {
    char *uniqueid;
    char *name, *context, *exten;
    char *operator_id;  /* set once known */
    char *bridge;
    cm_call *call;
    struct cm_chan *next_in_call;
    double dial_begin;
    int hungup, listed;
    UT_hash_handle hh;
} cm_chan;

struct cm_call {
    char *id;
    cm_chan *chans;
    char *first_uniqueid;
    int live;
    double started, answered_at;
    int answered, in_queue, was_queued, transfer_pending;
    const char *direction;
    char *queue;
    char *queue_uniqueid;  /* the caller's channel in Queue(): what answer/transfer redirect */
    int position;
    char *caller_num, *caller_name;
    char *party;  /* outbound: the number that answered */
    char *answered_by, *cur_operator;
    json_t *operators;
    double talk;
    int wait_s, has_wait;
    char *dialstatus, *orig_dialstatus;
    int cust_cause, any_cause, has_customer;
    /* QueueCallerAbandon is sent before QUEUESTATUS tells a timeout from an
     * abandon, so the abandoned event waits for the next event of the call. */
    int abandon_pending;
    double abandon_time;
    int abandon_hold, abandon_pos;
    char *abandon_uniqueid;
    UT_hash_handle hh;
};

typedef struct cm_bridge {
    char *id;
    char **members;  /* Uniqueids */
    size_t n, cap;
    double seg_start;
    UT_hash_handle hh;
} cm_bridge;

struct callmodel {
    cm_emit_fn emit;
    void *ctx;
    cm_ops *ops;
    cm_call *calls;
    cm_chan *chans;
    cm_bridge *bridges;
    int resyncing;
    /* CoreShowChannel items of channels we did not know, adopted at resync
     * end when "now" is known. */
    ami_msg *unknown;
    size_t n_unknown, cap_unknown;
};

/* ---- helpers shared with operators.c ---- */

/* Asterisk's Timestamp ("1795670259.396093": digits, a dot, digits, and
 * nothing after) without strtod, which was ~3 % of the agent's time per
 * event. With the digits as an integer M <= 2^53 and k <= 22 fraction
 * digits, M / 10^k is one division of two exact doubles, so correctly
 * rounded: the double strtod gives (Clinger's fast path). 0 when the text
 * is anything else, for strtod to read. */
static int plain_decimal(const char *s, double *out) {
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
    uint64_t m = 0;
    int digits = 0, frac = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++, digits++) m = m * 10 + (uint64_t)(*p - '0');
    if (p == s) return 0;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, digits++, frac++) m = m * 10 + (uint64_t)(*p - '0');
    if (*p || digits > 17 || m > (1ull << 53)) return 0;
    *out = (double)m / pow10[frac];
    return 1;
}

double cm_event_time(const ami_msg *m, double now) {
    const char *ts = ami_get(m, "Timestamp");
    if (!ts || !*ts) return now;
    double fast;
    if (plain_decimal(ts, &fast)) return fast;
    char *end;
    double t = strtod(ts, &end);
    return (end == ts || !isfinite(t)) ? now : t;
}

double cm_round_ms(double seconds) {
    return round(seconds * 1000.0) / 1000.0;
}

static int int_of(const char *s, int def) {
    if (!s || !*s) return def;
    char *end;
    long v = strtol(s, &end, 10);
    return end == s ? def : (int)v;
}

static int known_value(const char *s) {
    return s && *s && strcmp(s, "<unknown>") != 0;
}

static void set_str(char **dst, const char *src) {
    if (!src) return;
    if (*dst && strcmp(*dst, src) == 0) return;
    char *copy = strdup(src);
    if (!copy) return;
    free(*dst);
    *dst = copy;
}

/* ---- tables ---- */

static void chan_free(cm_chan *ch) {
    free(ch->uniqueid);
    free(ch->name);
    free(ch->context);
    free(ch->exten);
    free(ch->operator_id);
    free(ch->bridge);
    free(ch);
}

static void call_free(callmodel *cm, cm_call *call) {
    cm_chan *ch = call->chans;
    while (ch) {
        cm_chan *next = ch->next_in_call;
        HASH_DEL(cm->chans, ch);
        chan_free(ch);
        ch = next;
    }
    HASH_DEL(cm->calls, call);
    free(call->id);
    free(call->first_uniqueid);
    free(call->queue);
    free(call->queue_uniqueid);
    free(call->caller_num);
    free(call->caller_name);
    free(call->party);
    free(call->answered_by);
    free(call->cur_operator);
    json_decref(call->operators);
    free(call->dialstatus);
    free(call->orig_dialstatus);
    free(call->abandon_uniqueid);
    free(call);
}

static void bridge_free(callmodel *cm, cm_bridge *b) {
    HASH_DEL(cm->bridges, b);
    for (size_t i = 0; i < b->n; i++) free(b->members[i]);
    free(b->members);
    free(b->id);
    free(b);
}

callmodel *callmodel_new(const identity_map *ids, cm_emit_fn emit, void *ctx) {
    if (!emit) return NULL;
    callmodel *cm = calloc(1, sizeof(*cm));
    if (!cm) return NULL;
    cm->emit = emit;
    cm->ctx = ctx;
    cm->ops = cm_ops_new(ids, emit, ctx);
    if (!cm->ops) {
        free(cm);
        return NULL;
    }
    return cm;
}

static void unknown_free(callmodel *cm) {
    for (size_t i = 0; i < cm->n_unknown; i++) ami_msg_free(&cm->unknown[i]);
    free(cm->unknown);
    cm->unknown = NULL;
    cm->n_unknown = cm->cap_unknown = 0;
}

void callmodel_free(callmodel *cm) {
    if (!cm) return;
    unknown_free(cm);
    cm_call *call, *ctmp;
    HASH_ITER(hh, cm->calls, call, ctmp) call_free(cm, call);
    cm_bridge *b, *btmp;
    HASH_ITER(hh, cm->bridges, b, btmp) bridge_free(cm, b);
    cm_ops_free(cm->ops);
    free(cm);
}

size_t callmodel_active_calls(const callmodel *cm) {
    return cm ? HASH_COUNT(cm->calls) : 0;
}

static cm_call *call_find(callmodel *cm, const char *id) {
    cm_call *call = NULL;
    if (id && *id) HASH_FIND_STR(cm->calls, id, call);
    return call;
}

static cm_chan *chan_find(callmodel *cm, const char *uniqueid) {
    cm_chan *ch = NULL;
    if (uniqueid && *uniqueid) HASH_FIND_STR(cm->chans, uniqueid, ch);
    return ch;
}

static cm_chan *chan_add(callmodel *cm, cm_call *call, const char *uniqueid, const char *name) {
    cm_chan *ch = calloc(1, sizeof(*ch));
    if (!ch || !(ch->uniqueid = strdup(uniqueid))) {
        free(ch);
        return NULL;
    }
    ch->name = name ? strdup(name) : NULL;
    ch->call = call;
    ch->next_in_call = call->chans;
    call->chans = ch;
    call->live++;
    ch->listed = cm->resyncing;
    HASH_ADD_KEYPTR(hh, cm->chans, ch->uniqueid, strlen(ch->uniqueid), ch);
    return ch;
}

/* Operator owning a channel, learnt lazily: queue members may become known
 * after their channel was created. */
static const char *chan_operator(callmodel *cm, cm_chan *ch) {
    if (!ch) return NULL;
    if (ch->operator_id) return ch->operator_id;
    const char *op = cm_ops_operator_of_channel(cm->ops, ch->name);
    if (op) ch->operator_id = strdup(op);
    return ch->operator_id;
}

/* The channel an event is about, with its dialplan position refreshed.
 * A channel whose Newchannel we missed joins its Linkedid's call if known. */
static cm_chan *event_chan(callmodel *cm, const ami_msg *m) {
    const char *uid = ami_get(m, "Uniqueid");
    cm_chan *ch = chan_find(cm, uid);
    if (!ch) {
        cm_call *call = call_find(cm, ami_get(m, "Linkedid"));
        if (!call || !uid || !*uid) return NULL;
        ch = chan_add(cm, call, uid, ami_get(m, "Channel"));
        if (!ch) return NULL;
    }
    if (ch->hungup) return ch;
    const char *ctx = ami_get(m, "Context"), *exten = ami_get(m, "Exten");
    if (ctx && *ctx) set_str(&ch->context, ctx);
    if (exten && *exten) set_str(&ch->exten, exten);
    return ch;
}

/* ---- emission ---- */

static json_t *call_data(cm_call *call, const char *operator_id) {
    json_t *d = json_object();
    json_object_set_new(d, "call_id", json_string(call->id));
    if (operator_id) json_object_set_new(d, "operator_id", json_string(operator_id));
    if (call->queue) json_object_set_new(d, "queue", json_string(call->queue));
    if (call->caller_num) {
        json_t *c = json_object();
        json_object_set_new(c, "number", json_string(call->caller_num));
        if (call->caller_name) json_object_set_new(c, "name", json_string(call->caller_name));
        json_object_set_new(d, "caller", c);
    }
    return d;
}

static void emit_call(callmodel *cm, cm_call *call, const char *what, double time, json_t *data) {
    char type[64];
    snprintf(type, sizeof(type), "callbus.call.%s", what);
    cm->emit(cm->ctx, CM_TOPIC_CALLS, type, call->id, time, data);
}

static void add_operator(cm_call *call, const char *op) {
    size_t i;
    json_t *v;
    json_array_foreach(call->operators, i, v)
        if (strcmp(json_string_value(v), op) == 0) return;
    json_array_append_new(call->operators, json_string(op));
}

static void flush_abandon(callmodel *cm, cm_call *call, const char *reason) {
    if (!call->abandon_pending) return;
    call->abandon_pending = 0;
    json_t *d = call_data(call, NULL);
    json_object_set_new(d, "wait_s", json_integer(call->abandon_hold));
    if (call->abandon_pos >= 0) json_object_set_new(d, "position", json_integer(call->abandon_pos));
    json_object_set_new(d, "reason", json_string(reason));
    emit_call(cm, call, "abandoned", call->abandon_time, d);
}

/* The channel that left the queue moved on without QUEUESTATUS=TIMEOUT. */
static void caller_moved_on(callmodel *cm, cm_chan *ch) {
    cm_call *call = ch->call;
    if (call->abandon_pending && call->abandon_uniqueid && strcmp(call->abandon_uniqueid, ch->uniqueid) == 0)
        flush_abandon(cm, call, "abandon");
}

static void answer(callmodel *cm, cm_call *call, const char *op, int wait, double ring,
                   const char *party, double time) {
    call->answered = 1;
    call->answered_at = time;
    call->in_queue = 0;
    if (op) {
        set_str(&call->answered_by, op);
        set_str(&call->cur_operator, op);
        add_operator(call, op);
    }
    json_t *d = call_data(call, op);
    if (wait >= 0) json_object_set_new(d, "wait_s", json_integer(wait));
    if (ring >= 0) json_object_set_new(d, "ring_s", json_real(cm_round_ms(ring)));
    if (party) {
        set_str(&call->party, party);
        json_object_set_new(d, "party", json_string(party));
    }
    emit_call(cm, call, "answered", time, d);
}

static int cause_of_dialstatus(const char *status) {
    if (!status) return 0;
    if (strcmp(status, "BUSY") == 0) return 17;
    if (strcmp(status, "NOANSWER") == 0) return 19;
    if (strcmp(status, "CONGESTION") == 0) return 34;
    return 0;
}

static const char *disposition_of_dialstatus(const char *status) {
    if (!status || !*status) return NULL;
    if (strcmp(status, "BUSY") == 0) return "busy";
    if (strcmp(status, "NOANSWER") == 0 || strcmp(status, "CANCEL") == 0) return "no_answer";
    if (strcmp(status, "CHANUNAVAIL") == 0 || strcmp(status, "CONGESTION") == 0 ||
        strcmp(status, "INVALIDARGS") == 0 || strcmp(status, "DONTCALL") == 0 ||
        strcmp(status, "TORTURE") == 0) return "failed";
    return NULL;
}

static const char *disposition_of_cause(int cause) {
    if (cause == 17) return "busy";
    if (cause == 18 || cause == 19) return "no_answer";
    return NULL;
}

static int hangup_cause(const cm_call *call) {
    if (call->cust_cause) return call->cust_cause;
    int c = cause_of_dialstatus(call->dialstatus);
    if (c) return c;
    return call->has_customer ? 0 : call->any_cause;
}

static const char *disposition(const cm_call *call) {
    if (call->answered || call->talk > 0) return "answered";
    if (call->was_queued) return "abandoned";
    const char *d = disposition_of_dialstatus(call->dialstatus);
    if (!d) d = disposition_of_dialstatus(call->orig_dialstatus);
    if (!d) d = disposition_of_cause(hangup_cause(call));
    return d ? d : "unknown";
}

static void end_call(callmodel *cm, cm_call *call, double time, const char *reason) {
    flush_abandon(cm, call, "abandon");
    char buf[40];
    int cause = hangup_cause(call);
    json_t *d = call_data(call, call->cur_operator ? call->cur_operator : call->answered_by);
    json_object_set_new(d, "direction", json_string(call->direction));
    json_object_set_new(d, "disposition", json_string(disposition(call)));
    json_object_set_new(d, "hangup_cause", json_integer(cause));
    json_object_set_new(d, "hangup_cause_text", json_string(cause_text(cause)));
    json_object_set_new(d, "duration_s", json_real(cm_round_ms(time - call->started)));
    json_object_set_new(d, "talk_s", json_real(cm_round_ms(call->talk)));
    if (call->has_wait) json_object_set_new(d, "wait_s", json_integer(call->wait_s));
    if (call->answered_by) json_object_set_new(d, "answered_by", json_string(call->answered_by));
    if (call->party) json_object_set_new(d, "party", json_string(call->party));
    json_object_set_new(d, "operators", json_incref(call->operators));
    json_object_set_new(d, "started_at", json_string(rfc3339(call->started, 6, buf, sizeof(buf))));
    if (call->answered)
        json_object_set_new(d, "answered_at", json_string(rfc3339(call->answered_at, 6, buf, sizeof(buf))));
    json_object_set_new(d, "ended_at", json_string(rfc3339(time, 6, buf, sizeof(buf))));
    json_object_set_new(d, "reason", json_string(reason));
    emit_call(cm, call, "ended", time, d);
    call_free(cm, call);
}

/* ---- bridges and talk time ---- */

static cm_bridge *bridge_get(callmodel *cm, const char *id, int create) {
    cm_bridge *b = NULL;
    if (!id || !*id) return NULL;
    HASH_FIND_STR(cm->bridges, id, b);
    if (b || !create) return b;
    b = calloc(1, sizeof(*b));
    if (!b || !(b->id = strdup(id))) {
        free(b);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, cm->bridges, b->id, strlen(b->id), b);
    return b;
}

/* A two-party segment ends: its time is talk time of the calls involved. */
static void segment_end(callmodel *cm, cm_bridge *b, double time) {
    cm_call *seen = NULL;
    for (size_t i = 0; i < b->n; i++) {
        cm_chan *ch = chan_find(cm, b->members[i]);
        if (!ch || ch->call == seen) continue;
        seen = ch->call;
        ch->call->talk += time - b->seg_start;
    }
}

/* Two parties talk: who is the operator, who the customer, and did the
 * customer change operator without a transfer event (a Redirect)? */
static void segment_start(callmodel *cm, cm_bridge *b, double time) {
    b->seg_start = time;
    cm_chan *x = chan_find(cm, b->members[0]), *y = chan_find(cm, b->members[1]);
    if (!x || !y) return;
    const char *opx = chan_operator(cm, x), *opy = chan_operator(cm, y);
    if (!opx == !opy) return;  /* two operators, or two customers */
    const char *op = opx ? opx : opy;
    cm_chan *cust = opx ? y : x;
    cm_call *call = cust->call;
    if (!call->answered) answer(cm, call, op, -1, -1, NULL, time);
    if (call->cur_operator && strcmp(call->cur_operator, op) != 0 && !call->transfer_pending) {
        json_t *d = call_data(call, op);
        json_object_set_new(d, "kind", json_string("redirect"));
        json_object_set_new(d, "from_operator_id", json_string(call->cur_operator));
        json_object_set_new(d, "to_operator_id", json_string(op));
        if (cust->exten && cust->context) {
            char to[256];
            snprintf(to, sizeof(to), "%s@%s", cust->exten, cust->context);
            json_object_set_new(d, "to", json_string(to));
        }
        emit_call(cm, call, "transferred", time, d);
    }
    call->transfer_pending = 0;
    set_str(&call->cur_operator, op);
    add_operator(call, op);
}

static void bridge_enter(callmodel *cm, cm_chan *ch, const char *bridge_id, double time) {
    cm_bridge *b = bridge_get(cm, bridge_id, 1);
    if (!b) return;
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->members[i], ch->uniqueid) == 0) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        char **m = realloc(b->members, cap * sizeof(*m));
        if (!m) return;
        b->members = m;
        b->cap = cap;
    }
    char *uid = strdup(ch->uniqueid);
    if (!uid) return;
    if (b->n == 2) segment_end(cm, b, time);
    b->members[b->n++] = uid;
    set_str(&ch->bridge, bridge_id);
    if (b->n == 2) segment_start(cm, b, time);
}

static void bridge_leave(callmodel *cm, cm_chan *ch, double time) {
    cm_bridge *b = bridge_get(cm, ch->bridge, 0);
    free(ch->bridge);
    ch->bridge = NULL;
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->members[i], ch->uniqueid) != 0) continue;
        if (b->n == 2) segment_end(cm, b, time);
        free(b->members[i]);
        b->members[i] = b->members[--b->n];
        if (b->n == 2) segment_start(cm, b, time);
        break;
    }
    if (b->n == 0) bridge_free(cm, b);
}

/* ---- event handlers ---- */

static void on_newchannel(callmodel *cm, const ami_msg *m, double t) {
    const char *uid = ami_get(m, "Uniqueid"), *linkedid = ami_get(m, "Linkedid");
    if (!uid || !*uid || chan_find(cm, uid)) return;
    if (!linkedid || !*linkedid) linkedid = uid;
    cm_call *call = call_find(cm, linkedid);
    int is_new = !call;
    if (is_new) {
        call = calloc(1, sizeof(*call));
        if (!call || !(call->id = strdup(linkedid)) || !(call->operators = json_array())) {
            if (call) free(call->id);
            free(call);
            return;
        }
        call->started = t;
        call->position = -1;
        call->direction = "inbound";
        call->first_uniqueid = strdup(uid);
        HASH_ADD_KEYPTR(hh, cm->calls, call->id, strlen(call->id), call);
    }
    cm_chan *ch = chan_add(cm, call, uid, ami_get(m, "Channel"));
    if (!ch) return;
    set_str(&ch->context, ami_get(m, "Context"));
    set_str(&ch->exten, ami_get(m, "Exten"));
    if (!is_new) return;
    const char *op = chan_operator(cm, ch);
    call->direction = op ? "outbound" : "inbound";
    if (!op && known_value(ami_get(m, "CallerIDNum"))) {
        set_str(&call->caller_num, ami_get(m, "CallerIDNum"));
        if (known_value(ami_get(m, "CallerIDName"))) set_str(&call->caller_name, ami_get(m, "CallerIDName"));
    }
    json_t *d = call_data(call, op);
    json_object_set_new(d, "direction", json_string(call->direction));
    if (ch->name) json_object_set_new(d, "channel", json_string(ch->name));
    if (ch->context) json_object_set_new(d, "context", json_string(ch->context));
    if (ch->exten) json_object_set_new(d, "exten", json_string(ch->exten));
    emit_call(cm, call, "started", t, d);
}

/* Caller id of an inbound call arrives just after its first channel. */
static void on_callerid(callmodel *cm, const ami_msg *m, double t) {
    (void)t;
    cm_chan *ch = event_chan(cm, m);
    if (!ch || strcmp(ch->call->direction, "inbound") != 0) return;
    if (!ch->call->first_uniqueid || strcmp(ch->uniqueid, ch->call->first_uniqueid) != 0) return;
    const char *num = ami_get(m, "CallerIDNum"), *name = ami_get(m, "CallerIDName");
    if (known_value(num)) set_str(&ch->call->caller_num, num);
    if (known_value(name)) set_str(&ch->call->caller_name, name);
}

static void on_hangup(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    if (!ch || ch->hungup) return;
    cm_call *call = ch->call;
    caller_moved_on(cm, ch);
    if (ch->bridge) bridge_leave(cm, ch, t);
    ch->hungup = 1;
    call->live--;
    int cause = int_of(ami_get(m, "Cause"), 0);
    if (cause && !call->any_cause) call->any_cause = cause;
    if (!chan_operator(cm, ch)) {
        call->has_customer = 1;
        if (cause && !call->cust_cause) call->cust_cause = cause;
    }
    if (call->live <= 0) end_call(cm, call, t, "normal");
}

static void on_dialbegin(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *dest = chan_find(cm, ami_get(m, "DestUniqueid"));
    if (dest) dest->dial_begin = t;
    cm_chan *src = ami_get(m, "Uniqueid") ? event_chan(cm, m) : NULL;
    if (src) caller_moved_on(cm, src);
}

static void on_dialend(callmodel *cm, const ami_msg *m, double t) {
    const char *status = ami_get(m, "DialStatus");
    cm_chan *dest = chan_find(cm, ami_get(m, "DestUniqueid"));
    cm_chan *src = ami_get(m, "Uniqueid") ? event_chan(cm, m) : NULL;
    if (!src) {
        /* The originate's own dial (only Dest* fields): the operator's phone
         * for click-to-call, the simulated trunk for inbound. */
        if (dest && status) set_str(&dest->call->orig_dialstatus, status);
        return;
    }
    cm_call *call = src->call;
    if (status && *status) set_str(&call->dialstatus, status);
    if (!status || strcmp(status, "ANSWER") != 0 || call->answered || call->in_queue) return;
    const char *op = chan_operator(cm, dest);
    const char *party = NULL;
    if (!op) {
        op = chan_operator(cm, src);
        party = dest && dest->exten ? dest->exten : ami_get(m, "DestExten");
    }
    double ring = dest && dest->dial_begin > 0 ? t - dest->dial_begin : -1;
    answer(cm, call, op, -1, ring, party, t);
}

static void on_varset(callmodel *cm, const ami_msg *m, double t) {
    (void)t;
    const char *var = ami_get(m, "Variable"), *val = ami_get(m, "Value");
    if (!var || !val) return;
    if (strcmp(var, "DIALSTATUS") != 0 && strcmp(var, "QUEUESTATUS") != 0) return;
    cm_chan *ch = event_chan(cm, m);
    if (!ch) return;
    if (strcmp(var, "DIALSTATUS") == 0) {
        if (*val) set_str(&ch->call->dialstatus, val);
        return;
    }
    cm_call *call = ch->call;
    if (call->abandon_pending && call->abandon_uniqueid && strcmp(call->abandon_uniqueid, ch->uniqueid) == 0)
        flush_abandon(cm, call, strcmp(val, "TIMEOUT") == 0 ? "timeout" : "abandon");
}

static void on_touch(callmodel *cm, const ami_msg *m, double t) {
    (void)t;
    event_chan(cm, m);
}

/* Dialplan moved on: a pending abandon was a plain abandon. */
static void on_progress(callmodel *cm, const ami_msg *m, double t) {
    (void)t;
    cm_chan *ch = event_chan(cm, m);
    if (ch) caller_moved_on(cm, ch);
}

static void on_queue_join(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    if (!ch) return;
    cm_call *call = ch->call;
    caller_moved_on(cm, ch);
    set_str(&call->queue, ami_get(m, "Queue"));
    set_str(&call->queue_uniqueid, ch->uniqueid);
    call->position = int_of(ami_get(m, "Position"), -1);
    call->in_queue = call->was_queued = 1;
    if (!call->caller_num && strcmp(call->direction, "inbound") == 0 && known_value(ami_get(m, "CallerIDNum"))) {
        set_str(&call->caller_num, ami_get(m, "CallerIDNum"));
        if (known_value(ami_get(m, "CallerIDName"))) set_str(&call->caller_name, ami_get(m, "CallerIDName"));
    }
    json_t *d = call_data(call, NULL);
    if (call->position >= 0) json_object_set_new(d, "position", json_integer(call->position));
    emit_call(cm, call, "queued", t, d);
}

static void on_queue_leave(callmodel *cm, const ami_msg *m, double t) {
    (void)t;
    cm_chan *ch = event_chan(cm, m);
    if (ch) ch->call->in_queue = 0;
}

static void on_queue_abandon(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    if (!ch) return;
    cm_call *call = ch->call;
    flush_abandon(cm, call, "abandon");
    set_str(&call->queue, ami_get(m, "Queue"));
    call->in_queue = 0;
    call->was_queued = 1;
    call->abandon_pending = 1;
    call->abandon_time = t;
    call->abandon_hold = int_of(ami_get(m, "HoldTime"), 0);
    call->abandon_pos = int_of(ami_get(m, "Position"), -1);
    set_str(&call->abandon_uniqueid, ch->uniqueid);
    call->wait_s = call->abandon_hold;
    call->has_wait = 1;
}

/* The queue's member channel belongs to the member's operator whatever its
 * name looks like. */
static const char *mark_agent_channel(callmodel *cm, const ami_msg *m) {
    const char *op = cm_ops_learn(cm->ops, ami_get(m, "Interface"), ami_get(m, "MemberName"));
    cm_chan *dest = chan_find(cm, ami_get(m, "DestUniqueid"));
    if (dest && op) set_str(&dest->operator_id, op);
    return op;
}

static void on_agent_called(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    const char *op = mark_agent_channel(cm, m);
    if (!ch || !op) return;
    caller_moved_on(cm, ch);
    json_t *d = call_data(ch->call, op);
    const char *iface = ami_get(m, "Interface"), *name = ami_get(m, "MemberName");
    if (iface) json_object_set_new(d, "interface", json_string(iface));
    if (name) json_object_set_new(d, "member_name", json_string(name));
    emit_call(cm, ch->call, "offered", t, d);
}

static void on_agent_connect(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    const char *op = mark_agent_channel(cm, m);
    if (!ch) return;
    cm_call *call = ch->call;
    int hold = int_of(ami_get(m, "HoldTime"), -1);
    if (hold >= 0) {
        call->wait_s = hold;
        call->has_wait = 1;
    }
    if (call->answered) return;
    const char *rt = ami_get(m, "RingTime");
    answer(cm, call, op, hold, rt ? (double)int_of(rt, 0) : -1, NULL, t);
}

static void on_bridge_enter(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    if (!ch || ch->hungup) return;
    caller_moved_on(cm, ch);
    const char *id = ami_get(m, "BridgeUniqueid");
    if (ch->bridge && (!id || strcmp(ch->bridge, id) != 0)) bridge_leave(cm, ch, t);
    bridge_enter(cm, ch, id, t);
}

static void on_bridge_leave(callmodel *cm, const ami_msg *m, double t) {
    cm_chan *ch = event_chan(cm, m);
    if (ch && ch->bridge) bridge_leave(cm, ch, t);
}

static void on_hold(callmodel *cm, const ami_msg *m, double t, const char *what) {
    cm_chan *ch = event_chan(cm, m);
    if (!ch) return;
    json_t *d = call_data(ch->call, chan_operator(cm, ch));
    if (ch->name) json_object_set_new(d, "channel", json_string(ch->name));
    emit_call(cm, ch->call, what, t, d);
}

static void on_hold_on(callmodel *cm, const ami_msg *m, double t) { on_hold(cm, m, t, "held"); }
static void on_hold_off(callmodel *cm, const ami_msg *m, double t) { on_hold(cm, m, t, "unheld"); }

static void emit_transfer(callmodel *cm, const char *kind, cm_chan *transferee, cm_chan *transferer,
                          cm_chan *target, const char *to, double t) {
    cm_call *call = transferee ? transferee->call : transferer ? transferer->call : NULL;
    if (!call) return;
    const char *from = chan_operator(cm, transferer), *to_op = chan_operator(cm, target);
    if (!from) from = call->cur_operator;
    json_t *d = call_data(call, from);
    json_object_set_new(d, "kind", json_string(kind));
    if (from) json_object_set_new(d, "from_operator_id", json_string(from));
    if (to_op) json_object_set_new(d, "to_operator_id", json_string(to_op));
    if (to) json_object_set_new(d, "to", json_string(to));
    emit_call(cm, call, "transferred", t, d);
    call->transfer_pending = 1;
}

static int transfer_failed(const ami_msg *m) {
    const char *result = ami_get(m, "Result");
    return result && strcasecmp(result, "Success") != 0;
}

static void on_blind_transfer(callmodel *cm, const ami_msg *m, double t) {
    if (transfer_failed(m)) return;
    char to[256] = "";
    const char *exten = ami_get(m, "Extension"), *ctx = ami_get(m, "Context");
    if (exten) snprintf(to, sizeof(to), "%s%s%s", exten, ctx ? "@" : "", ctx ? ctx : "");
    emit_transfer(cm, "blind", chan_find(cm, ami_get(m, "TransfereeUniqueid")),
                  chan_find(cm, ami_get(m, "TransfererUniqueid")), NULL, exten ? to : NULL, t);
}

static void on_attended_transfer(callmodel *cm, const ami_msg *m, double t) {
    if (transfer_failed(m)) return;
    cm_chan *target = chan_find(cm, ami_get(m, "TransferTargetUniqueid"));
    emit_transfer(cm, "attended", chan_find(cm, ami_get(m, "TransfereeUniqueid")),
                  chan_find(cm, ami_get(m, "OrigTransfererUniqueid")), target,
                  target && target->exten ? target->exten : NULL, t);
}

typedef void (*handler_fn)(callmodel *cm, const ami_msg *m, double t);

static const struct {
    const char *event;
    handler_fn fn;
} handlers[] = {
    {"Newchannel", on_newchannel},
    {"NewCallerid", on_callerid},
    {"Newstate", on_touch},
    {"Newexten", on_progress},
    {"VarSet", on_varset},
    {"HangupRequest", on_progress},
    {"SoftHangupRequest", on_progress},
    {"Hangup", on_hangup},
    {"DialBegin", on_dialbegin},
    {"DialEnd", on_dialend},
    {"QueueCallerJoin", on_queue_join},
    {"QueueCallerLeave", on_queue_leave},
    {"QueueCallerAbandon", on_queue_abandon},
    {"AgentCalled", on_agent_called},
    {"AgentConnect", on_agent_connect},
    {"BridgeEnter", on_bridge_enter},
    {"BridgeLeave", on_bridge_leave},
    {"Hold", on_hold_on},
    {"Unhold", on_hold_off},
    {"BlindTransfer", on_blind_transfer},
    {"AttendedTransfer", on_attended_transfer},
};

void callmodel_on_event(callmodel *cm, const ami_msg *m, double now) {
    if (!cm || !m) return;
    const char *event = ami_get(m, "Event");
    if (!event) return;
    double t = cm_event_time(m, now);
    cm_ops_on_event(cm->ops, event, m, t);
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        if (strcasecmp(event, handlers[i].event) == 0) {
            handlers[i].fn(cm, m, t);
            return;
        }
    }
}

/* ---- resync ---- */

void callmodel_resync_begin(callmodel *cm) {
    if (!cm) return;
    cm->resyncing = 1;
    unknown_free(cm);
    cm_chan *ch, *tmp;
    HASH_ITER(hh, cm->chans, ch, tmp) ch->listed = 0;
    cm_ops_resync_begin(cm->ops);
}

/* "HH:MM:SS" of CoreShowChannel's Duration, in seconds. */
static double duration_of(const char *s) {
    int h = 0, mi = 0, se = 0;
    if (!s || sscanf(s, "%d:%d:%d", &h, &mi, &se) != 3) return 0;
    return h * 3600.0 + mi * 60.0 + se;
}

/* A channel we did not know: the call started while we were away. */
static void adopt_channel(callmodel *cm, const ami_msg *item, double now) {
    const char *uid = ami_get(item, "Uniqueid");
    if (!uid || !*uid) return;
    on_newchannel(cm, item, now - duration_of(ami_get(item, "Duration")));
    cm_chan *ch = chan_find(cm, uid);
    if (!ch) return;
    ch->listed = 1;
    const char *bridge = ami_get(item, "BridgeId");
    if (bridge && *bridge) bridge_enter(cm, ch, bridge, now);
}

static void keep_unknown(callmodel *cm, const ami_msg *item) {
    const char *uid = ami_get(item, "Uniqueid");
    if (!uid || !*uid) return;
    if (cm->n_unknown == cm->cap_unknown) {
        size_t cap = cm->cap_unknown ? cm->cap_unknown * 2 : 16;
        ami_msg *u = realloc(cm->unknown, cap * sizeof(*u));
        if (!u) return;
        cm->unknown = u;
        cm->cap_unknown = cap;
    }
    ami_msg *copy = &cm->unknown[cm->n_unknown++];
    ami_msg_init(copy);
    for (size_t i = 0; i < item->count; i++) {
        const ami_header *h = &item->headers[i];
        ami_msg_add(copy, h->key, strlen(h->key), h->value, strlen(h->value));
    }
}

void callmodel_resync_item(callmodel *cm, const ami_msg *item) {
    if (!cm || !item || !cm->resyncing) return;
    const char *event = ami_get(item, "Event");
    if (!event) return;
    if (strcasecmp(event, "CoreShowChannel") == 0) {
        cm_chan *ch = chan_find(cm, ami_get(item, "Uniqueid"));
        if (ch) ch->listed = 1;
        else keep_unknown(cm, item);
    } else if (strcasecmp(event, "QueueEntry") == 0) {
        cm_chan *ch = chan_find(cm, ami_get(item, "Uniqueid"));
        if (ch && !ch->call->was_queued) {
            set_str(&ch->call->queue, ami_get(item, "Queue"));
            ch->call->in_queue = ch->call->was_queued = 1;
        }
    } else {
        cm_ops_resync_item(cm->ops, item);
    }
}

/* Channels not listed hung up while we were away; a call left with none
 * ended then, at a time we cannot know: now, with the reason saying so. */
void callmodel_resync_end(callmodel *cm, const char *reason, double now) {
    if (!cm || !cm->resyncing) return;
    cm->resyncing = 0;
    if (!reason) reason = "ended_while_link_down";
    /* Channels that appeared while we were away; one may have been created
     * live during the resync already. */
    for (size_t i = 0; i < cm->n_unknown; i++)
        if (!chan_find(cm, ami_get(&cm->unknown[i], "Uniqueid"))) adopt_channel(cm, &cm->unknown[i], now);
    unknown_free(cm);
    cm_call *call, *ctmp;
    HASH_ITER(hh, cm->calls, call, ctmp) {
        for (cm_chan *ch = call->chans; ch; ch = ch->next_in_call) {
            if (ch->listed || ch->hungup) continue;
            if (ch->bridge) bridge_leave(cm, ch, now);
            ch->hungup = 1;
            call->live--;
        }
        if (call->live <= 0) end_call(cm, call, now, reason);
    }
    cm_ops_resync_end(cm->ops, now);
}

/* ---- Queries for the command executor ---- */

/* The customer's live channel: the one waiting in (or taken from) the
 * queue, else the first live channel that is not an operator's. */
static const char *customer_channel(callmodel *cm, cm_call *call) {
    cm_chan *q = call->queue_uniqueid ? chan_find(cm, call->queue_uniqueid) : NULL;
    if (q && !q->hungup) return q->name;
    for (cm_chan *ch = call->chans; ch; ch = ch->next_in_call)
        if (!ch->hungup && !chan_operator(cm, ch)) return ch->name;
    return NULL;
}

int callmodel_call_view(callmodel *cm, const char *call_id, cm_call_view *out) {
    memset(out, 0, sizeof(*out));
    cm_call *call = call_id ? call_find(cm, call_id) : NULL;
    if (!call || !call->live) return 0;
    out->queue = call->queue;
    out->in_queue = call->in_queue;
    out->answered = call->answered;
    out->operator_id = call->cur_operator ? call->cur_operator : call->answered_by;
    out->customer_channel = customer_channel(cm, call);
    return 1;
}
