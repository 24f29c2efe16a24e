/* test_callmodel.c -- the call model against the real Asterisk captures.
 *
 * Every capture in tests/fixtures/ami-samples is replayed event by event
 * (captures.h) and the derived events are checked against the table "What
 * each capture must yield" of the README. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>
#include <jansson.h>
#include "ami.h"
#include "identity.h"
#include "callmodel.h"
#include "captures.h"

/* ---- collecting emitted events ---- */

typedef struct sink {
    json_t *events;  /* [{topic,type,key,time,data}] */
} sink;

static void collect(void *ctx, cm_topic topic, const char *type, const char *key, double time, json_t *data) {
    sink *s = ctx;
    json_t *e = json_object();
    json_object_set_new(e, "topic", json_string(topic == CM_TOPIC_CALLS ? "calls" : "operators"));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "key", json_string(key));
    json_object_set_new(e, "time", json_real(time));
    json_object_set_new(e, "data", data);
    json_array_append_new(s->events, e);
}

static size_t count_type(sink *s, const char *type, const char *key) {
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(s->events, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "type")), type) != 0) continue;
        if (key && strcmp(json_string_value(json_object_get(e, "key")), key) != 0) continue;
        n++;
    }
    return n;
}

/* nth (0-based) event of type for key (NULL: any key). */
static json_t *nth_event(sink *s, const char *type, const char *key, size_t nth) {
    size_t i;
    json_t *e;
    json_array_foreach(s->events, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "type")), type) != 0) continue;
        if (key && strcmp(json_string_value(json_object_get(e, "key")), key) != 0) continue;
        if (nth-- == 0) return e;
    }
    return NULL;
}

static json_t *data_of(sink *s, const char *type, const char *key) {
    json_t *e = nth_event(s, type, key, 0);
    assert_non_null(e);
    return json_object_get(e, "data");
}

static const char *str(json_t *d, const char *k) {
    json_t *v = json_object_get(d, k);
    assert_non_null(v);
    return json_string_value(v);
}

static double num(json_t *d, const char *k) {
    json_t *v = json_object_get(d, k);
    assert_non_null(v);
    return json_number_value(v);
}

#define assert_ms(actual, expected) assert_true(fabs((actual) - (expected)) < 0.0005)

typedef struct fixture {
    sink s;
    callmodel *cm;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    fx->s.events = json_array();
    fx->cm = callmodel_new(NULL, collect, &fx->s);
    capture_connect_resync(fx->cm, 1795670000.0);
    json_array_clear(fx->s.events);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    callmodel_free(fx->cm);
    json_decref(fx->s.events);
    free(fx);
    return 0;
}

/* Exactly one started and one ended per call id, and nothing left active. */
static json_t *one_call(fixture *fx, const char *id) {
    assert_int_equal(count_type(&fx->s, "callbus.call.started", id), 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", id), 1);
    return data_of(&fx->s, "callbus.call.ended", id);
}

static void assert_operators(json_t *ended, const char *first, const char *second) {
    json_t *ops = json_object_get(ended, "operators");
    assert_int_equal(json_array_size(ops), second ? 2 : 1);
    assert_string_equal(json_string_value(json_array_get(ops, 0)), first);
    if (second) assert_string_equal(json_string_value(json_array_get(ops, 1)), second);
}

/* ---- the captures ---- */

static void test_01_inbound_answered(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, -1);
    const char *id = "1795670259.0";
    assert_int_equal(count_type(&fx->s, "callbus.call.started", NULL), 1);
    json_t *started = data_of(&fx->s, "callbus.call.started", id);
    assert_string_equal(str(started, "direction"), "inbound");
    json_t *queued = data_of(&fx->s, "callbus.call.queued", id);
    assert_string_equal(str(queued, "queue"), "support");
    assert_string_equal(str(data_of(&fx->s, "callbus.call.offered", id), "operator_id"), "op101");
    json_t *ans = data_of(&fx->s, "callbus.call.answered", id);
    assert_string_equal(str(ans, "operator_id"), "op101");
    assert_int_equal((int)num(ans, "wait_s"), 2);
    assert_int_equal((int)num(ans, "ring_s"), 2);
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "answered_by"), "op101");
    assert_string_equal(str(end, "queue"), "support");
    assert_string_equal(str(end, "reason"), "normal");
    assert_string_equal(str(json_object_get(end, "caller"), "number"), "5551001");
    assert_int_equal((int)num(end, "wait_s"), 2);
    assert_ms(num(end, "talk_s"), 9.503);
    assert_ms(num(end, "duration_s"), 13.017);
    assert_int_equal((int)num(end, "hangup_cause"), 16);
    assert_string_equal(str(end, "started_at"), "2026-11-26T05:17:39.396093Z");
    assert_string_equal(str(end, "ended_at"), "2026-11-26T05:17:52.413507Z");
    assert_operators(end, "op101", NULL);
    /* op101: rung by the queue, busy, then idle again. */
    assert_int_equal(count_type(&fx->s, "callbus.operator.ringing", "op101"), 1);
    assert_int_equal(count_type(&fx->s, "callbus.operator.busy", "op101"), 1);
    assert_int_equal(count_type(&fx->s, "callbus.operator.ready", "op101"), 1);
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

static void test_02_paused_abandoned(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "02-inbound-queue-paused-abandon", 0, -1);
    const char *ops[] = {"op101", "op102", "op103"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(count_type(&fx->s, "callbus.operator.paused", ops[i]), 1);
        json_t *p = data_of(&fx->s, "callbus.operator.paused", ops[i]);
        assert_string_equal(str(p, "reason"), "Team meeting");
        assert_string_equal(str(p, "queue"), "support");
        assert_int_equal(count_type(&fx->s, "callbus.operator.ready", ops[i]), 1);
    }
    assert_int_equal(count_type(&fx->s, "callbus.operator.paused", NULL), 3);
    const char *id = "1795670300.10";
    assert_int_equal(count_type(&fx->s, "callbus.call.offered", NULL), 0);
    assert_int_equal(count_type(&fx->s, "callbus.call.answered", NULL), 0);
    json_t *ab = data_of(&fx->s, "callbus.call.abandoned", id);
    assert_int_equal((int)num(ab, "wait_s"), 7);
    assert_string_equal(str(ab, "reason"), "abandon");
    assert_string_equal(str(ab, "queue"), "support");
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "abandoned");
    assert_ms(num(end, "talk_s"), 0);
    assert_ms(num(end, "duration_s"), 9.008);
    assert_int_equal((int)num(end, "hangup_cause"), 0);
    assert_int_equal((int)num(end, "wait_s"), 7);
    assert_null(json_object_get(end, "answered_by"));
}

static void test_03a_c2c_answered(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "03a-c2c-answered", 0, -1);
    const char *id = "c2c-2001-op";
    json_t *started = data_of(&fx->s, "callbus.call.started", id);
    assert_string_equal(str(started, "direction"), "outbound");
    assert_string_equal(str(started, "operator_id"), "op101");
    json_t *ans_ev = nth_event(&fx->s, "callbus.call.answered", id, 0);
    assert_non_null(ans_ev);
    json_t *ans = json_object_get(ans_ev, "data");
    assert_string_equal(str(ans, "operator_id"), "op101");
    assert_string_equal(str(ans, "party"), "5552001");
    double t0 = num(nth_event(&fx->s, "callbus.call.started", id, 0), "time");
    assert_true(fabs(num(ans_ev, "time") - t0 - 5.01) < 0.005);
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "direction"), "outbound");
    assert_string_equal(str(end, "answered_by"), "op101");
    assert_string_equal(str(end, "party"), "5552001");
    assert_ms(num(end, "talk_s"), 8.509);
    assert_ms(num(end, "duration_s"), 13.523);
    assert_int_equal((int)num(end, "hangup_cause"), 16);
    assert_null(json_object_get(end, "wait_s"));
}

static void test_03b_c2c_busy(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "03b-c2c-busy", 0, -1);
    const char *id = "1795670334.16";
    assert_string_equal(str(data_of(&fx->s, "callbus.call.started", id), "direction"), "outbound");
    assert_int_equal(count_type(&fx->s, "callbus.call.answered", NULL), 0);
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "busy");
    assert_ms(num(end, "talk_s"), 0);
    assert_ms(num(end, "duration_s"), 3.010);
    assert_int_equal((int)num(end, "hangup_cause"), 17);
    assert_string_equal(str(end, "hangup_cause_text"), "User busy");
}

static void test_03d_c2c_invalid(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "03d-c2c-invalid-number", 0, -1);
    const char *id = "1795670370.24";
    assert_int_equal(count_type(&fx->s, "callbus.call.answered", NULL), 0);
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "failed");
    assert_ms(num(end, "talk_s"), 0);
    assert_ms(num(end, "duration_s"), 2.006);
    assert_int_equal((int)num(end, "hangup_cause"), 0);
}

static void expect_op(fixture *fx, size_t nth, const char *type, const char *op, const char *queue, const char *reason) {
    json_t *e = nth_event(&fx->s, type, op, nth);
    assert_non_null(e);
    json_t *d = json_object_get(e, "data");
    if (queue) assert_string_equal(str(d, "queue"), queue);
    if (reason) assert_string_equal(str(d, "reason"), reason);
}

static void test_04_member_management(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "04-queue-member-management", 0, -1);
    expect_op(fx, 0, "callbus.operator.logged_in", "op104", "sales", NULL);
    expect_op(fx, 0, "callbus.operator.logged_in", "op105", "sales", NULL);
    expect_op(fx, 0, "callbus.operator.paused", "op105", "sales", "Not ready");
    expect_op(fx, 0, "callbus.operator.paused", "op104", "sales", "Lunch");
    expect_op(fx, 0, "callbus.operator.logged_out", "op104", "sales", NULL);
    expect_op(fx, 0, "callbus.operator.logged_out", "op105", "sales", NULL);
    assert_int_equal(count_type(&fx->s, "callbus.operator.logged_in", NULL), 2);
    assert_int_equal(count_type(&fx->s, "callbus.operator.logged_out", NULL), 2);
    assert_int_equal(count_type(&fx->s, "callbus.operator.paused", NULL), 2);
    assert_string_equal(str(data_of(&fx->s, "callbus.operator.logged_in", "op104"), "member_name"), "Operator 104");
    /* Unpaused in sales: ready (per queue) for both. */
    assert_non_null(nth_event(&fx->s, "callbus.operator.ready", "op105", 0));
    assert_true(count_type(&fx->s, "callbus.operator.ready", "op104") >= 2);
    assert_int_equal(count_type(&fx->s, "callbus.operator.busy", "op104"), 1);
    const char *id = "1795670410.38";
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "answered_by"), "op104");
    assert_string_equal(str(end, "queue"), "sales");
    assert_int_equal((int)num(end, "wait_s"), 2);
    assert_ms(num(end, "talk_s"), 7.504);
    assert_ms(num(end, "duration_s"), 10.014);
}

static void test_05a_redirect(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "05a-redirect", 0, -1);
    const char *id = "1795670426.42";
    assert_string_equal(str(data_of(&fx->s, "callbus.call.answered", id), "operator_id"), "op102");
    assert_int_equal(count_type(&fx->s, "callbus.call.answered", id), 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.transferred", id), 1);
    json_t *tr = data_of(&fx->s, "callbus.call.transferred", id);
    assert_string_equal(str(tr, "kind"), "redirect");
    assert_string_equal(str(tr, "from_operator_id"), "op102");
    assert_string_equal(str(tr, "to_operator_id"), "op103");
    assert_string_equal(str(tr, "to"), "103@transfer");
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "answered_by"), "op102");
    assert_string_equal(str(end, "operator_id"), "op103");
    assert_operators(end, "op102", "op103");
    assert_int_equal((int)num(end, "wait_s"), 2);
    assert_ms(num(end, "talk_s"), 4.007 + 16.501);
    assert_ms(num(end, "duration_s"), 26.023);
    assert_int_equal((int)num(end, "hangup_cause"), 16);
}

static void test_06_two_calls(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "06-hangup-and-info-actions", 0, -1);
    assert_int_equal(count_type(&fx->s, "callbus.call.started", NULL), 2);
    json_t *a = one_call(fx, "1795670498.62");
    assert_string_equal(str(a, "disposition"), "answered");
    assert_string_equal(str(a, "answered_by"), "op102");
    assert_ms(num(a, "talk_s"), 5.029);
    assert_ms(num(a, "duration_s"), 9.040);
    assert_int_equal((int)num(a, "hangup_cause"), 16);
    json_t *b = one_call(fx, "1795670502.66");
    assert_string_equal(str(b, "answered_by"), "op103");
    assert_ms(num(b, "talk_s"), 3.021);
    assert_ms(num(b, "duration_s"), 7.030);
    assert_int_equal((int)num(b, "hangup_cause"), 21);
    assert_string_equal(str(b, "hangup_cause_text"), "Call Rejected");
}

static void test_09a_restart_gracefully(void **state) {
    fixture *fx = *state;
    double last = capture_replay(fx->cm, "09a-restart-gracefully", 0, -1);
    const char *id = "1795670658.818";
    json_t *ev = nth_event(&fx->s, "callbus.call.ended", id, 0);
    assert_non_null(ev);
    assert_true(num(ev, "time") < 1795670673.847968);  /* before Shutdown */
    json_t *end = one_call(fx, id);
    assert_string_equal(str(end, "reason"), "normal");
    assert_string_equal(str(end, "disposition"), "answered");
    assert_ms(num(end, "talk_s"), 8.509);
    assert_ms(num(end, "duration_s"), 13.520);
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
    /* The reconnect: FullyBooted Uptime 0, resync with nothing up. */
    size_t before = json_array_size(fx->s.events);
    capture_replay(fx->cm, "09a-restart-gracefully.reconnect", 0, -1);
    callmodel_resync_begin(fx->cm);
    callmodel_resync_end(fx->cm, "asterisk_restarted", last + 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 1);
    assert_int_equal(json_array_size(fx->s.events), before);
}

static void test_10a_cdr_cel(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "10a-cdr-cel-inbound-answered", 0, -1);
    assert_int_equal(count_type(&fx->s, "callbus.call.started", NULL), 1);
    json_t *end = one_call(fx, "1795670601.792");
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "answered_by"), "op103");
    assert_ms(num(end, "talk_s"), 9.502);
    assert_ms(num(end, "duration_s"), 13.016);
    assert_int_equal((int)num(end, "hangup_cause"), 16);
}

/* ---- cases the captures lack, scripted from Asterisk 22's source ----
 *
 * Each event carries the headers the model reads (a channel snapshot's
 * Channel, Uniqueid and Linkedid, the Dest* ones of two-channel events, and
 * the event's own fields), in the order Asterisk sends them. The lab's
 * Local channels are used: the operator's phone is a ;1/;2 pair whose ;2
 * half runs in its own PBX thread, which is why its hangup can land between
 * two events of the caller's thread. */

typedef struct chan_ref {
    const char *name, *uniqueid, *linkedid;
} chan_ref;

static void add_chan(ami_msg *m, const char *prefix, const chan_ref *c) {
    char key[64];
    snprintf(key, sizeof(key), "%sChannel", prefix);
    capture_add(m, key, c->name);
    snprintf(key, sizeof(key), "%sUniqueid", prefix);
    capture_add(m, key, c->uniqueid);
    snprintf(key, sizeof(key), "%sLinkedid", prefix);
    capture_add(m, key, c->linkedid);
}

/* Event at time t about channel c (and dest d when not NULL), then
 * NULL-terminated key, value pairs. */
static void feed(callmodel *cm, double t, const char *event, const chan_ref *c, const chan_ref *d, ...) {
    ami_msg m;
    char ts[32];
    ami_msg_init(&m);
    capture_add(&m, "Event", event);
    snprintf(ts, sizeof(ts), "%.6f", t);
    capture_add(&m, "Timestamp", ts);
    if (c) add_chan(&m, "", c);
    if (d) add_chan(&m, "Dest", d);
    va_list ap;
    va_start(ap, d);
    const char *k;
    while ((k = va_arg(ap, const char *))) capture_add(&m, k, va_arg(ap, const char *));
    va_end(ap);
    callmodel_on_event(cm, &m, t);
    ami_msg_free(&m);
}

#define T0 1795671000.0
static const chan_ref trunk1 = {"Local/800@from-trunk-00000040;1", "1795671000.100", "1795671000.100"};
static const chan_ref trunk2 = {"Local/800@from-trunk-00000040;2", "1795671000.101", "1795671000.100"};
static const chan_ref ring1 = {"Local/op101@phones-00000041;1", "1795671001.102", "1795671000.100"};
static const chan_ref ring2 = {"Local/op101@phones-00000041;2", "1795671001.103", "1795671000.100"};
static const chan_ref next1 = {"Local/op102@phones-00000042;1", "1795671021.104", "1795671000.100"};
static const chan_ref next2 = {"Local/op102@phones-00000042;2", "1795671021.105", "1795671000.100"};
#define QCALL "1795671000.100"

/* The trunk pair appears and its ;2 half joins queue support. */
static void queue_caller_joins(callmodel *cm) {
    feed(cm, T0, "Newchannel", &trunk1, NULL, "CallerIDNum", "5551009", NULL);
    feed(cm, T0, "Newchannel", &trunk2, NULL, NULL);
    feed(cm, T0 + 1.5, "QueueCallerJoin", &trunk2, NULL, "Queue", "support", "Position", "1", "Count", "1", NULL);
}

/* try_calling -> ring_one: the member's Local pair, AgentCalled, DialBegin. */
static void member_rings(callmodel *cm, double t, const chan_ref *o1, const chan_ref *o2,
                         const char *iface, const char *member) {
    feed(cm, t, "Newchannel", o1, NULL, NULL);
    feed(cm, t, "Newchannel", o2, NULL, NULL);
    feed(cm, t, "AgentCalled", &trunk2, o1, "Queue", "support", "Interface", iface, "MemberName", member, NULL);
    feed(cm, t, "DialBegin", &trunk2, o1, "DialString", iface + 6, NULL);
    feed(cm, t, "DialState", &trunk2, o1, "DialStatus", "RINGING", NULL);
}

/* app_queue.c wait_for_answer(): the ring time ran out -> rna() sends
 * AgentRingNoAnswer (RingTime in ms) and publish_dial_end_event NOANSWER;
 * try_calling() then ends in hangupcalls(): DialEnd CANCEL and ast_hangup()
 * of the ;1 half, whose hangup cause app_queue leaves unset (0);
 * ast_unreal_hangup() queues the hangup to the ;2 half (HangupRequest). */
static void ring_no_answer(callmodel *cm, double t, const chan_ref *o1, const chan_ref *o2,
                           const char *iface, const char *member, const char *ring_ms) {
    feed(cm, t, "AgentRingNoAnswer", &trunk2, o1, "Queue", "support", "Interface", iface,
         "MemberName", member, "RingTime", ring_ms, NULL);
    feed(cm, t, "DialEnd", &trunk2, o1, "DialStatus", "NOANSWER", NULL);
    feed(cm, t, "DialEnd", &trunk2, o1, "DialStatus", "CANCEL", NULL);
    feed(cm, t, "HangupRequest", o2, NULL, "Cause", "0", NULL);
    feed(cm, t, "Hangup", o1, NULL, "Cause", "0", "Cause-txt", "Unknown", NULL);
}

/* The ;2 half's own PBX thread ends (capture 02's pattern for a channel
 * whose cause was never set). */
static void member_half_gone(callmodel *cm, double t, const chan_ref *o2) {
    feed(cm, t, "SoftHangupRequest", o2, NULL, "Cause", "16", NULL);
    feed(cm, t, "Hangup", o2, NULL, "Cause", "0", "Cause-txt", "Unknown", NULL);
}

/* queue_exec(): the expiry check -> record_abandoned() (ABANDONED, then
 * QueueCallerAbandon), then "stop:" (QUEUEWAIT.., MusicOnHoldStop),
 * leave_queue() and set_queue_result() QUEUESTATUS=TIMEOUT; the member's ;2
 * half hangs up meanwhile, in its own thread. */
static void test_timeout_while_ringing(void **state) {
    fixture *fx = *state;
    queue_caller_joins(fx->cm);
    member_rings(fx->cm, T0 + 105.0, &ring1, &ring2, "Local/op101@phones", "Operator 101");
    ring_no_answer(fx->cm, T0 + 121.5, &ring1, &ring2, "Local/op101@phones", "Operator 101", "16500");
    feed(fx->cm, T0 + 121.5, "VarSet", &trunk2, NULL, "Variable", "ABANDONED", "Value", "TRUE", NULL);
    feed(fx->cm, T0 + 121.5, "QueueCallerAbandon", &trunk2, NULL, "Queue", "support", "Position", "1",
         "OriginalPosition", "1", "HoldTime", "120", NULL);
    member_half_gone(fx->cm, T0 + 121.501, &ring2);
    feed(fx->cm, T0 + 121.502, "VarSet", &trunk2, NULL, "Variable", "QUEUEWAIT", "Value", "120", NULL);
    feed(fx->cm, T0 + 121.502, "MusicOnHoldStop", &trunk2, NULL, NULL);
    feed(fx->cm, T0 + 121.502, "QueueCallerLeave", &trunk2, NULL, "Queue", "support", "Position", "1", "Count", "0", NULL);
    feed(fx->cm, T0 + 121.502, "VarSet", &trunk2, NULL, "Variable", "QUEUEPOSITION", "Value", "1", NULL);
    feed(fx->cm, T0 + 121.502, "VarSet", &trunk2, NULL, "Variable", "QUEUESTATUS", "Value", "TIMEOUT", NULL);
    feed(fx->cm, T0 + 121.503, "Newexten", &trunk2, NULL, "Application", "Hangup", "AppData", "", NULL);
    feed(fx->cm, T0 + 121.503, "SoftHangupRequest", &trunk2, NULL, "Cause", "16", NULL);
    feed(fx->cm, T0 + 121.503, "HangupRequest", &trunk1, NULL, "Cause", "16", NULL);
    feed(fx->cm, T0 + 121.503, "Hangup", &trunk2, NULL, "Cause", "16", "Cause-txt", "Normal Clearing", NULL);
    feed(fx->cm, T0 + 121.504, "Hangup", &trunk1, NULL, "Cause", "16", "Cause-txt", "Normal Clearing", NULL);
    assert_int_equal(count_type(&fx->s, "callbus.call.offered", QCALL), 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.answered", QCALL), 0);
    assert_int_equal(count_type(&fx->s, "callbus.call.abandoned", QCALL), 1);
    json_t *ab = data_of(&fx->s, "callbus.call.abandoned", QCALL);
    assert_string_equal(str(ab, "reason"), "timeout");
    assert_int_equal((int)num(ab, "wait_s"), 120);
    json_t *end = one_call(fx, QCALL);
    assert_string_equal(str(end, "disposition"), "abandoned");
    assert_int_equal((int)num(end, "wait_s"), 120);
    assert_null(json_object_get(end, "answered_by"));
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

/* The caller hangs up while a member rings: wait_for_answer() sees the
 * hangup (DialEnd CANCEL), hangupcalls() cancels again and hangs the member
 * up, then "stop:" -> record_abandoned(); no QUEUESTATUS (reason unknown). */
static void test_abandon_while_ringing(void **state) {
    fixture *fx = *state;
    queue_caller_joins(fx->cm);
    member_rings(fx->cm, T0 + 1.5, &ring1, &ring2, "Local/op101@phones", "Operator 101");
    feed(fx->cm, T0 + 9.0, "HangupRequest", &trunk2, NULL, "Cause", "0", NULL);
    feed(fx->cm, T0 + 9.0, "DialEnd", &trunk2, &ring1, "DialStatus", "CANCEL", NULL);
    feed(fx->cm, T0 + 9.0, "DialEnd", &trunk2, &ring1, "DialStatus", "CANCEL", NULL);
    feed(fx->cm, T0 + 9.0, "HangupRequest", &ring2, NULL, "Cause", "0", NULL);
    feed(fx->cm, T0 + 9.0, "Hangup", &ring1, NULL, "Cause", "0", "Cause-txt", "Unknown", NULL);
    feed(fx->cm, T0 + 9.001, "MusicOnHoldStop", &trunk2, NULL, NULL);
    feed(fx->cm, T0 + 9.001, "Hangup", &trunk1, NULL, "Cause", "0", "Cause-txt", "Unknown", NULL);
    feed(fx->cm, T0 + 9.001, "VarSet", &trunk2, NULL, "Variable", "ABANDONED", "Value", "TRUE", NULL);
    feed(fx->cm, T0 + 9.001, "QueueCallerAbandon", &trunk2, NULL, "Queue", "support", "Position", "1",
         "OriginalPosition", "1", "HoldTime", "7", NULL);
    member_half_gone(fx->cm, T0 + 9.002, &ring2);
    feed(fx->cm, T0 + 9.002, "QueueCallerLeave", &trunk2, NULL, "Queue", "support", "Position", "1", "Count", "0", NULL);
    feed(fx->cm, T0 + 9.003, "SoftHangupRequest", &trunk2, NULL, "Cause", "16", NULL);
    feed(fx->cm, T0 + 9.003, "Hangup", &trunk2, NULL, "Cause", "0", "Cause-txt", "Unknown", NULL);
    json_t *ab = data_of(&fx->s, "callbus.call.abandoned", QCALL);
    assert_string_equal(str(ab, "reason"), "abandon");
    assert_int_equal((int)num(ab, "wait_s"), 7);
    json_t *end = one_call(fx, QCALL);
    assert_string_equal(str(end, "disposition"), "abandoned");
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

/* Ring-no-answer, then queue_exec() rings the next member, who answers. */
static void test_ring_no_answer_then_next_operator(void **state) {
    fixture *fx = *state;
    queue_caller_joins(fx->cm);
    member_rings(fx->cm, T0 + 1.5, &ring1, &ring2, "Local/op101@phones", "Operator 101");
    ring_no_answer(fx->cm, T0 + 16.5, &ring1, &ring2, "Local/op101@phones", "Operator 101", "15000");
    member_half_gone(fx->cm, T0 + 16.501, &ring2);
    member_rings(fx->cm, T0 + 21.5, &next1, &next2, "Local/op102@phones", "Operator 102");
    feed(fx->cm, T0 + 23.5, "DialEnd", &trunk2, &next1, "DialStatus", "ANSWER", NULL);
    feed(fx->cm, T0 + 23.5, "QueueCallerLeave", &trunk2, NULL, "Queue", "support", "Position", "1", "Count", "0", NULL);
    feed(fx->cm, T0 + 23.5, "AgentConnect", &trunk2, &next1, "Queue", "support", "Interface", "Local/op102@phones",
         "MemberName", "Operator 102", "HoldTime", "22", "RingTime", "2", NULL);
    feed(fx->cm, T0 + 23.5, "BridgeEnter", &next1, NULL, "BridgeUniqueid", "b-rna", NULL);
    feed(fx->cm, T0 + 23.5, "BridgeEnter", &trunk2, NULL, "BridgeUniqueid", "b-rna", NULL);
    feed(fx->cm, T0 + 53.5, "Hangup", &trunk1, NULL, "Cause", "0", NULL);
    feed(fx->cm, T0 + 53.5, "BridgeLeave", &trunk2, NULL, "BridgeUniqueid", "b-rna", NULL);
    feed(fx->cm, T0 + 53.5, "BridgeLeave", &next1, NULL, "BridgeUniqueid", "b-rna", NULL);
    feed(fx->cm, T0 + 53.5, "Hangup", &next1, NULL, "Cause", "16", NULL);
    feed(fx->cm, T0 + 53.5, "Hangup", &next2, NULL, "Cause", "16", NULL);
    feed(fx->cm, T0 + 53.5, "Hangup", &trunk2, NULL, "Cause", "16", NULL);
    assert_int_equal(count_type(&fx->s, "callbus.call.offered", QCALL), 2);
    json_t *first = nth_event(&fx->s, "callbus.call.offered", QCALL, 0);
    assert_string_equal(str(json_object_get(first, "data"), "operator_id"), "op101");
    assert_int_equal(count_type(&fx->s, "callbus.call.abandoned", QCALL), 0);
    json_t *end = one_call(fx, QCALL);
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "answered_by"), "op102");
    assert_operators(end, "op102", NULL);
    assert_int_equal((int)num(end, "wait_s"), 22);
    assert_ms(num(end, "talk_s"), 30.0);
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

/* Click-to-call whose operator never picks up: main/dial.c
 * handle_timeout_trip() sets cause 19 (AST_CAUSE_NO_ANSWER) on the ;1 half
 * and hangs it up without a DialEnd; pbx.c pbx_dial_reason() turns that
 * into Reason 3, and manager.c fast_originate() sends OriginateResponse
 * Failure naming the dial string; the ;2 half takes cause 19 from the
 * hangup frame (channel.c __ast_read). */
static void test_c2c_operator_no_answer(void **state) {
    fixture *fx = *state;
    const chan_ref o1 = {"Local/op101@phones-00000050;1", "c2c-na-1", "c2c-na-1"};
    const chan_ref o2 = {"Local/op101@phones-00000050;2", "c2c-na-2", "c2c-na-1"};
    feed(fx->cm, T0, "Newchannel", &o1, NULL, "Context", "phones", "Exten", "op101", NULL);
    feed(fx->cm, T0, "Newchannel", &o2, NULL, "Context", "phones", "Exten", "op101", NULL);
    feed(fx->cm, T0, "DialBegin", NULL, &o1, "DialString", "op101@phones", NULL);
    feed(fx->cm, T0, "Newexten", &o2, NULL, "Application", "Ringing", "AppData", "", NULL);
    feed(fx->cm, T0, "Newstate", &o1, NULL, "ChannelState", "5", NULL);
    feed(fx->cm, T0, "DialState", NULL, &o1, "DialStatus", "RINGING", NULL);
    feed(fx->cm, T0 + 30.0, "HangupRequest", &o2, NULL, "Cause", "19", NULL);
    feed(fx->cm, T0 + 30.0, "Hangup", &o1, NULL, "Cause", "19", "Cause-txt", "User alerting, no answer", NULL);
    feed(fx->cm, T0 + 30.0, "OriginateResponse", NULL, NULL, "ActionID", "cmd/x", "Response", "Failure",
         "Channel", "Local/op101@phones", "Context", "c2c-outbound", "Exten", "5552001", "Reason", "3",
         "Uniqueid", "c2c-na-1", "CallerIDNum", "<unknown>", "CallerIDName", "<unknown>", NULL);
    feed(fx->cm, T0 + 30.001, "SoftHangupRequest", &o2, NULL, "Cause", "16", NULL);
    feed(fx->cm, T0 + 30.001, "Hangup", &o2, NULL, "Cause", "19", "Cause-txt", "User alerting, no answer", NULL);
    json_t *end = one_call(fx, "c2c-na-1");
    assert_string_equal(str(end, "direction"), "outbound");
    assert_string_equal(str(end, "disposition"), "no_answer");
    assert_int_equal((int)num(end, "hangup_cause"), 19);
    assert_ms(num(end, "talk_s"), 0);
    assert_null(json_object_get(end, "answered_by"));
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

/* ---- resync ---- */

/* seq 132 of capture 01 is the caller's BridgeLeave: before it the call is
 * still talking (only the customer's ;1 half has hung up). */
#define C01_TALKING 132

static void test_resync_ends_unlisted_call(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, C01_TALKING);
    assert_int_equal(callmodel_active_calls(fx->cm), 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 0);
    double now = 1795670290.5;
    callmodel_resync_begin(fx->cm);
    callmodel_resync_end(fx->cm, "ended_while_link_down", now);
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
    json_t *ev = nth_event(&fx->s, "callbus.call.ended", "1795670259.0", 0);
    assert_non_null(ev);
    assert_ms(num(ev, "time"), now);
    json_t *end = json_object_get(ev, "data");
    assert_string_equal(str(end, "reason"), "ended_while_link_down");
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "ended_at"), "2026-11-26T05:18:10.500000Z");
    assert_ms(num(end, "duration_s"), now - 1795670259.396093);
    assert_ms(num(end, "talk_s"), now - 1795670262.907575);
    assert_int_equal((int)num(end, "hangup_cause"), 0);
    /* The rest of the capture refers to a forgotten call: no second end. */
    capture_replay(fx->cm, "01-inbound-queue-answered", C01_TALKING, -1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 1);
}

static void show_channel(callmodel *cm, const char *channel, const char *uniqueid, const char *linkedid,
                         const char *duration, const char *bridge) {
    ami_msg m;
    ami_msg_init(&m);
    capture_add(&m, "Event", "CoreShowChannel");
    capture_add(&m, "ActionID", "resync-2");
    capture_add(&m, "Channel", channel);
    capture_add(&m, "Context", "from-trunk");
    capture_add(&m, "Exten", "800");
    capture_add(&m, "CallerIDNum", "5551001");
    capture_add(&m, "Uniqueid", uniqueid);
    capture_add(&m, "Linkedid", linkedid);
    capture_add(&m, "Duration", duration);
    capture_add(&m, "BridgeId", bridge);
    callmodel_resync_item(cm, &m);
    ami_msg_free(&m);
}

static void test_resync_keeps_listed_call(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, C01_TALKING);
    callmodel_resync_begin(fx->cm);
    show_channel(fx->cm, "Local/800@from-trunk-00000000;2", "1795670259.1", "1795670259.0", "00:00:31", "");
    callmodel_resync_end(fx->cm, "ended_while_link_down", 1795670290.5);
    assert_int_equal(callmodel_active_calls(fx->cm), 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 0);
    /* The listed channel's hangup now ends the call normally. */
    capture_replay(fx->cm, "01-inbound-queue-answered", C01_TALKING, -1);
    json_t *end = one_call(fx, "1795670259.0");
    assert_string_equal(str(end, "reason"), "normal");
    assert_ms(num(end, "duration_s"), 13.017);
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

static void test_resync_adopts_unknown_call(void **state) {
    fixture *fx = *state;
    callmodel_resync_begin(fx->cm);
    show_channel(fx->cm, "Local/800@from-trunk-00000000;2", "1795670259.1", "1795670259.0", "00:00:10", "b1");
    callmodel_resync_end(fx->cm, "ended_while_link_down", 1795670300.0);
    assert_int_equal(callmodel_active_calls(fx->cm), 1);
    json_t *ev = nth_event(&fx->s, "callbus.call.started", "1795670259.0", 0);
    assert_non_null(ev);
    assert_ms(num(ev, "time"), 1795670290.0);
    ami_msg m;
    ami_msg_init(&m);
    capture_add(&m, "Event", "Hangup");
    capture_add(&m, "Timestamp", "1795670301.000000");
    capture_add(&m, "Channel", "Local/800@from-trunk-00000000;2");
    capture_add(&m, "Uniqueid", "1795670259.1");
    capture_add(&m, "Linkedid", "1795670259.0");
    capture_add(&m, "Cause", "16");
    callmodel_on_event(fx->cm, &m, 1795670301.0);
    ami_msg_free(&m);
    json_t *end = one_call(fx, "1795670259.0");
    assert_ms(num(end, "duration_s"), 11.0);
    assert_int_equal(callmodel_active_calls(fx->cm), 0);
}

static void test_resync_members(void **state) {
    fixture *fx = *state;
    /* op103 left support while we were away, op104 joined sales paused. */
    callmodel_resync_begin(fx->cm);
    capture_member_item(fx->cm, "support", "Operator 101", "Local/op101@phones");
    capture_member_item(fx->cm, "support", "Operator 102", "Local/op102@phones");
    capture_member_item(fx->cm, "support-rna", "Operator 198 (away)", "Local/op198@phones");
    capture_member_item(fx->cm, "support-rna", "Operator 102", "Local/op102@phones");
    ami_msg m;
    ami_msg_init(&m);
    capture_add(&m, "Event", "QueueMember");
    capture_add(&m, "Queue", "sales");
    capture_add(&m, "Name", "Operator 104");
    capture_add(&m, "Location", "Local/op104@phones");
    capture_add(&m, "Status", "1");
    capture_add(&m, "Paused", "1");
    capture_add(&m, "PausedReason", "Lunch");
    callmodel_resync_item(fx->cm, &m);
    ami_msg_free(&m);
    callmodel_resync_end(fx->cm, "ended_while_link_down", 1795670400.0);
    expect_op(fx, 0, "callbus.operator.logged_out", "op103", "support", NULL);
    expect_op(fx, 0, "callbus.operator.logged_in", "op104", "sales", NULL);
    expect_op(fx, 0, "callbus.operator.paused", "op104", "sales", "Lunch");
    assert_int_equal(count_type(&fx->s, "callbus.operator.logged_in", NULL), 1);
    assert_int_equal(count_type(&fx->s, "callbus.operator.logged_out", NULL), 1);
    assert_int_equal(count_type(&fx->s, "callbus.operator.paused", NULL), 1);
    assert_int_equal(json_array_size(fx->s.events), 3);
}

/* A static member's QueueMemberStatus that comes before the QueueStatus
 * reply of the connect: the call model learns the membership silently, and
 * the resync still announces it, once. */
static void test_static_member_seen_before_the_resync_is_announced(void **state) {
    (void)state;
    sink s = { json_array() };
    callmodel *cm = callmodel_new(NULL, collect, &s);
    callmodel_resync_begin(cm);
    capture_replay(cm, "01-inbound-queue-answered", 0, -1);
    assert_int_equal(count_type(&s, "callbus.operator.logged_in", NULL), 0);
    capture_member_item(cm, "support", "Operator 101", "Local/op101@phones");
    callmodel_resync_end(cm, "ended_while_link_down", 1795670300.0);
    assert_int_equal(count_type(&s, "callbus.operator.logged_in", "op101"), 1);
    assert_string_equal(str(data_of(&s, "callbus.operator.logged_in", "op101"), "queue"), "support");
    callmodel_resync_begin(cm);
    capture_member_item(cm, "support", "Operator 101", "Local/op101@phones");
    callmodel_resync_end(cm, "ended_while_link_down", 1795670400.0);
    assert_int_equal(count_type(&s, "callbus.operator.logged_in", "op101"), 1);
    callmodel_free(cm);
    json_decref(s.events);
}

/* ---- identity ---- */

static void test_identity(void **state) {
    (void)state;
    struct { const char *chan, *iface; } cases[] = {
        {"Local/op101@phones-00000001;1", "Local/op101@phones"},
        {"Local/op101@phones-00000001;2", "Local/op101@phones"},
        {"PJSIP/1001-0000002a", "PJSIP/1001"},
        {"SIP/my-phone-0000000b", "SIP/my-phone"},
        {"PJSIP/alice", "PJSIP/alice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *iface = identity_interface_of_channel(cases[i].chan);
        assert_string_equal(iface, cases[i].iface);
        free(iface);
    }
    assert_null(identity_interface_of_channel(NULL));
    assert_null(identity_interface_of_channel(""));
    identity_map *map = identity_map_new();
    assert_int_equal(identity_map_add(map, "PJSIP/1001", "alice", "Alice"), 0);
    assert_int_equal(identity_map_add(map, "PJSIP/1001", "alice2", NULL), 0);
    assert_int_equal(identity_map_add(map, NULL, "x", NULL), -1);
    char *id = identity_operator_of_interface(map, "PJSIP/1001");
    assert_string_equal(id, "alice2");
    free(id);
    id = identity_operator_of_interface(map, "Local/op101@phones");
    assert_string_equal(id, "op101");
    free(id);
    id = identity_operator_of_interface(NULL, "SIP/1001");
    assert_string_equal(id, "1001");
    free(id);
    assert_null(identity_operator_of_interface(map, NULL));
    identity_map_free(map);
}

/* The explicit map makes a channel an operator's before any queue event. */
static void test_identity_map_direction(void **state) {
    (void)state;
    sink s = { json_array() };
    identity_map *map = identity_map_new();
    identity_map_add(map, "Local/op101@phones", "alice", "Alice");
    callmodel *cm = callmodel_new(map, collect, &s);
    capture_replay(cm, "03a-c2c-answered", 0, -1);
    json_t *started = data_of(&s, "callbus.call.started", "c2c-2001-op");
    assert_string_equal(str(started, "direction"), "outbound");
    assert_string_equal(str(started, "operator_id"), "alice");
    assert_string_equal(str(data_of(&s, "callbus.call.ended", "c2c-2001-op"), "answered_by"), "alice");
    callmodel_free(cm);
    identity_map_free(map);
    json_decref(s.events);
}

/* ---- robustness ---- */

static void discard(void *ctx, cm_topic topic, const char *type, const char *key, double time, json_t *data) {
    (void)topic;
    (void)time;
    size_t *n = ctx;
    assert_non_null(type);
    assert_non_null(key);
    (*n)++;
    json_decref(data);
}

/* Shuffled events, dropped and garbled headers, resyncs at random: the
 * model must neither crash nor leak (run under ASan and valgrind). */
static void test_fuzz_order_and_missing_headers(void **state) {
    (void)state;
    json_t *all = capture_all_headers();
    size_t n = json_array_size(all);
    assert_true(n > 1000);
    unsigned seed = 12345;
    size_t emitted = 0;
    for (int round = 0; round < 20; round++) {
        callmodel *cm = callmodel_new(NULL, discard, &emitted);
        for (size_t k = 0; k < n; k++) {
            size_t pick = round == 0 ? k : (size_t)rand_r(&seed) % n;
            json_t *headers = json_array_get(all, pick);
            ami_msg m;
            ami_msg_init(&m);
            size_t i;
            json_t *pair;
            json_array_foreach(headers, i, pair) {
                int r = rand_r(&seed) % 20;
                if (round > 0 && r == 0) continue;  /* drop */
                const char *key = json_string_value(json_array_get(pair, 0));
                const char *val = json_string_value(json_array_get(pair, 1));
                if (round > 0 && r == 1) val = "";
                if (round > 0 && r == 2) val = "1795670259.0";
                ami_msg_add(&m, key, strlen(key), val, strlen(val));
            }
            if (round > 0 && rand_r(&seed) % 500 == 0) callmodel_resync_begin(cm);
            if (rand_r(&seed) % 3 == 0) callmodel_resync_item(cm, &m);
            else callmodel_on_event(cm, &m, 1795670000.0 + (double)k);
            if (round > 0 && rand_r(&seed) % 400 == 0)
                callmodel_resync_end(cm, "ended_while_link_down", 1795670000.0 + (double)k);
            ami_msg_free(&m);
        }
        callmodel_resync_begin(cm);
        callmodel_resync_end(cm, "asterisk_restarted", 1795679999.0);
        assert_int_equal(callmodel_active_calls(cm), 0);
        callmodel_free(cm);
    }
    assert_true(emitted > 0);
    /* NULLs and empty messages. */
    callmodel_on_event(NULL, NULL, 0);
    callmodel *cm = callmodel_new(NULL, discard, &emitted);
    ami_msg empty;
    ami_msg_init(&empty);
    callmodel_on_event(cm, &empty, 0);
    callmodel_resync_item(cm, &empty);
    callmodel_resync_end(cm, NULL, 0);
    callmodel_free(cm);
    json_decref(all);
}

static double time_of(const char *ts) {
    ami_msg m;
    ami_msg_init(&m);
    ami_msg_add(&m, "Timestamp", 9, ts, strlen(ts));
    double t = cm_event_time(&m, -7);
    ami_msg_free(&m);
    return t;
}

/* cm_event_time reads plain decimals itself: the very double strtod gives,
 * for Asterisk's timestamps and for any other digits, and strtod's answer
 * for everything else. */
static void test_event_time_same_as_strtod(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ull;
    char ts[64];
    for (int i = 0; i < 300000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int frac = (int)(x >> 59) % 10, whole = 1 + (int)(x >> 54) % 12;
        snprintf(ts, sizeof(ts), "%.*llu%s%.*llu", whole, (unsigned long long)(x % 1000000000000ull),
                 frac ? "." : "", frac, (unsigned long long)((x >> 20) % 1000000000ull));
        if (i % 3 == 0)
            snprintf(ts, sizeof(ts), "17%08llu.%06llu", (unsigned long long)(x % 100000000ull),
                     (unsigned long long)((x >> 30) % 1000000ull));
        double t = time_of(ts);
        assert_true(t == strtod(ts, NULL));
    }
    static const char *odd[] = {"1.", "007.50", "12345678901234567.8", "9007199254740993", "1795670259.3960930000",
                                "1e3", " 12.5", "-3.5", "12.5x", "0x10", ".5", "1795670259,396093"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) assert_true(time_of(odd[i]) == strtod(odd[i], NULL));
    assert_true(time_of("") == -7);
    assert_true(time_of("x") == -7);
    assert_true(time_of("inf") == -7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_time_same_as_strtod),
        cmocka_unit_test_setup_teardown(test_01_inbound_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_02_paused_abandoned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_03a_c2c_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_03b_c2c_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_03d_c2c_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_04_member_management, setup, teardown),
        cmocka_unit_test_setup_teardown(test_05a_redirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_06_two_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_09a_restart_gracefully, setup, teardown),
        cmocka_unit_test_setup_teardown(test_10a_cdr_cel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_while_ringing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon_while_ringing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_no_answer_then_next_operator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_c2c_operator_no_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_ends_unlisted_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_keeps_listed_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_adopts_unknown_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_members, setup, teardown),
        cmocka_unit_test(test_static_member_seen_before_the_resync_is_announced),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_identity_map_direction),
        cmocka_unit_test(test_fuzz_order_and_missing_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
