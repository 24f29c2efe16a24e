/* test_callmodel.c -- the call model against the real Asterisk captures.
 *
 * Every capture in tests/fixtures/ami-samples is replayed event by event
 * (messages are built from the recorded header pairs with ami_msg_add, so
 * these tests do not depend on the parser) and the derived events are
 * checked against the table "What each capture must yield" of the README.
 * Before a capture we replay what the agent does on connect: a resync with
 * the QueueStatus members of the lab (support: op101-op103, support-rna:
 * op198, op102), because click-to-call direction needs to know operators
 * before their first channel appears. */
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

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif
#define SAMPLES FIXTURES "/ami-samples/"

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

/* ---- feeding ---- */

static void msg_from_headers(ami_msg *m, json_t *headers) {
    ami_msg_init(m);
    size_t i;
    json_t *pair;
    json_array_foreach(headers, i, pair) {
        const char *k = json_string_value(json_array_get(pair, 0));
        const char *v = json_string_value(json_array_get(pair, 1));
        ami_msg_add(m, k, strlen(k), v, strlen(v));
    }
}

static void add(ami_msg *m, const char *k, const char *v) {
    ami_msg_add(m, k, strlen(k), v, strlen(v));
}

/* Replay a capture; stop_before_seq < 0 replays everything. Returns the
 * last recv_ts seen. */
static double replay(callmodel *cm, const char *name, long from_seq, long stop_before_seq) {
    char path[512];
    snprintf(path, sizeof(path), SAMPLES "%s.events.jsonl", name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    double last = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        long seq = (long)json_integer_value(json_object_get(o, "seq"));
        json_t *headers = json_object_get(o, "headers");
        if (seq >= from_seq && (stop_before_seq < 0 || seq < stop_before_seq) && headers) {
            ami_msg m;
            msg_from_headers(&m, headers);
            last = json_number_value(json_object_get(o, "recv_ts"));
            callmodel_on_event(cm, &m, last);
            ami_msg_free(&m);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return last;
}

static void member_item(callmodel *cm, const char *queue, const char *name, const char *location) {
    ami_msg m;
    ami_msg_init(&m);
    add(&m, "Event", "QueueMember");
    add(&m, "Queue", queue);
    add(&m, "Name", name);
    add(&m, "Location", location);
    add(&m, "StateInterface", location);
    add(&m, "Membership", "static");
    add(&m, "InCall", "0");
    add(&m, "Status", "1");
    add(&m, "Paused", "0");
    add(&m, "PausedReason", "");
    add(&m, "ActionID", "resync-1");
    callmodel_resync_item(cm, &m);
    ami_msg_free(&m);
}

/* What the agent does right after login, as QueueStatus showed in 04. */
static void connect_resync(callmodel *cm, double now) {
    callmodel_resync_begin(cm);
    member_item(cm, "support", "Operator 101", "Local/op101@phones");
    member_item(cm, "support", "Operator 102", "Local/op102@phones");
    member_item(cm, "support", "Operator 103", "Local/op103@phones");
    member_item(cm, "support-rna", "Operator 198 (away)", "Local/op198@phones");
    member_item(cm, "support-rna", "Operator 102", "Local/op102@phones");
    callmodel_resync_end(cm, "ended_while_link_down", now);
}

typedef struct fixture {
    sink s;
    callmodel *cm;
} fixture;

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    fx->s.events = json_array();
    fx->cm = callmodel_new(NULL, collect, &fx->s);
    connect_resync(fx->cm, 1795670000.0);
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
    replay(fx->cm, "01-inbound-queue-answered", 0, -1);
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
    replay(fx->cm, "02-inbound-queue-paused-abandon", 0, -1);
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
    replay(fx->cm, "03a-c2c-answered", 0, -1);
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
    replay(fx->cm, "03b-c2c-busy", 0, -1);
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
    replay(fx->cm, "03d-c2c-invalid-number", 0, -1);
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
    replay(fx->cm, "04-queue-member-management", 0, -1);
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
    replay(fx->cm, "05a-redirect", 0, -1);
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
    replay(fx->cm, "06-hangup-and-info-actions", 0, -1);
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
    double last = replay(fx->cm, "09a-restart-gracefully", 0, -1);
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
    replay(fx->cm, "09a-restart-gracefully.reconnect", 0, -1);
    callmodel_resync_begin(fx->cm);
    callmodel_resync_end(fx->cm, "asterisk_restarted", last + 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 1);
    assert_int_equal(json_array_size(fx->s.events), before);
}

static void test_10a_cdr_cel(void **state) {
    fixture *fx = *state;
    replay(fx->cm, "10a-cdr-cel-inbound-answered", 0, -1);
    assert_int_equal(count_type(&fx->s, "callbus.call.started", NULL), 1);
    json_t *end = one_call(fx, "1795670601.792");
    assert_string_equal(str(end, "disposition"), "answered");
    assert_string_equal(str(end, "answered_by"), "op103");
    assert_ms(num(end, "talk_s"), 9.502);
    assert_ms(num(end, "duration_s"), 13.016);
    assert_int_equal((int)num(end, "hangup_cause"), 16);
}

/* ---- resync ---- */

/* seq 132 of capture 01 is the caller's BridgeLeave: before it the call is
 * still talking (only the customer's ;1 half has hung up). */
#define C01_TALKING 132

static void test_resync_ends_unlisted_call(void **state) {
    fixture *fx = *state;
    replay(fx->cm, "01-inbound-queue-answered", 0, C01_TALKING);
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
    replay(fx->cm, "01-inbound-queue-answered", C01_TALKING, -1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 1);
}

static void show_channel(callmodel *cm, const char *channel, const char *uniqueid, const char *linkedid,
                         const char *duration, const char *bridge) {
    ami_msg m;
    ami_msg_init(&m);
    add(&m, "Event", "CoreShowChannel");
    add(&m, "ActionID", "resync-2");
    add(&m, "Channel", channel);
    add(&m, "Context", "from-trunk");
    add(&m, "Exten", "800");
    add(&m, "CallerIDNum", "5551001");
    add(&m, "Uniqueid", uniqueid);
    add(&m, "Linkedid", linkedid);
    add(&m, "Duration", duration);
    add(&m, "BridgeId", bridge);
    callmodel_resync_item(cm, &m);
    ami_msg_free(&m);
}

static void test_resync_keeps_listed_call(void **state) {
    fixture *fx = *state;
    replay(fx->cm, "01-inbound-queue-answered", 0, C01_TALKING);
    callmodel_resync_begin(fx->cm);
    show_channel(fx->cm, "Local/800@from-trunk-00000000;2", "1795670259.1", "1795670259.0", "00:00:31", "");
    callmodel_resync_end(fx->cm, "ended_while_link_down", 1795670290.5);
    assert_int_equal(callmodel_active_calls(fx->cm), 1);
    assert_int_equal(count_type(&fx->s, "callbus.call.ended", NULL), 0);
    /* The listed channel's hangup now ends the call normally. */
    replay(fx->cm, "01-inbound-queue-answered", C01_TALKING, -1);
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
    add(&m, "Event", "Hangup");
    add(&m, "Timestamp", "1795670301.000000");
    add(&m, "Channel", "Local/800@from-trunk-00000000;2");
    add(&m, "Uniqueid", "1795670259.1");
    add(&m, "Linkedid", "1795670259.0");
    add(&m, "Cause", "16");
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
    member_item(fx->cm, "support", "Operator 101", "Local/op101@phones");
    member_item(fx->cm, "support", "Operator 102", "Local/op102@phones");
    member_item(fx->cm, "support-rna", "Operator 198 (away)", "Local/op198@phones");
    member_item(fx->cm, "support-rna", "Operator 102", "Local/op102@phones");
    ami_msg m;
    ami_msg_init(&m);
    add(&m, "Event", "QueueMember");
    add(&m, "Queue", "sales");
    add(&m, "Name", "Operator 104");
    add(&m, "Location", "Local/op104@phones");
    add(&m, "Status", "1");
    add(&m, "Paused", "1");
    add(&m, "PausedReason", "Lunch");
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
    replay(cm, "03a-c2c-answered", 0, -1);
    json_t *started = data_of(&s, "callbus.call.started", "c2c-2001-op");
    assert_string_equal(str(started, "direction"), "outbound");
    assert_string_equal(str(started, "operator_id"), "alice");
    assert_string_equal(str(data_of(&s, "callbus.call.ended", "c2c-2001-op"), "answered_by"), "alice");
    callmodel_free(cm);
    identity_map_free(map);
    json_decref(s.events);
}

/* ---- robustness ---- */

static const char *captures[] = {
    "01-inbound-queue-answered", "02-inbound-queue-paused-abandon", "03a-c2c-answered",
    "03b-c2c-busy", "03d-c2c-invalid-number", "04-queue-member-management", "05a-redirect",
    "06-hangup-and-info-actions", "09a-restart-gracefully", "10a-cdr-cel-inbound-answered",
};

static json_t *all_header_lists(void) {
    json_t *all = json_array();
    for (size_t c = 0; c < sizeof(captures) / sizeof(captures[0]); c++) {
        char path[512];
        snprintf(path, sizeof(path), SAMPLES "%s.events.jsonl", captures[c]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            json_t *o = json_loads(line, 0, NULL);
            json_t *h = json_object_get(o, "headers");
            if (h) json_array_append(all, h);
            json_decref(o);
        }
        free(line);
        fclose(f);
    }
    return all;
}

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
    json_t *all = all_header_lists();
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

int main(void) {
    const struct CMUnitTest tests[] = {
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
        cmocka_unit_test_setup_teardown(test_resync_ends_unlisted_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_keeps_listed_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_adopts_unknown_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_members, setup, teardown),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_identity_map_direction),
        cmocka_unit_test(test_fuzz_order_and_missing_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
