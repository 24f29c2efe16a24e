/* test_gateway_view.c -- the gateway's per-operator view: routing, per-role
 * projection, snapshots, resume, duplicates, bad input, bounded memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "view.h"

#define EPOCH "gw-1795670000"

/* Every message delivered, per recipient stream. */
typedef struct rec {
    json_t *op101, *op102, *site, *other;
} rec;

static void rec_init(rec *r) {
    r->op101 = json_array();
    r->op102 = json_array();
    r->site = json_array();
    r->other = json_array();
}

static void rec_clear(rec *r) {
    json_decref(r->op101);
    json_decref(r->op102);
    json_decref(r->site);
    json_decref(r->other);
    rec_init(r);
}

static void rec_free(rec *r) {
    json_decref(r->op101);
    json_decref(r->op102);
    json_decref(r->site);
    json_decref(r->other);
}

static void on_delivery(void *ctx, const char *op, json_t *msg) {
    rec *r = ctx;
    json_t *to = !op ? r->site : strcmp(op, "op101") == 0 ? r->op101
               : strcmp(op, "op102") == 0 ? r->op102 : r->other;
    json_array_append(to, msg);
}

static int seq;

/* Apply one CloudEvent as the agent writes it; returns view_apply's result. */
static int feed(view *v, rec *r, const char *type, const char *subject, const char *data) {
    char id[64], t[40];
    seq++;
    snprintf(id, sizeof(id), "riga:agent1:1795670000:%d", seq);
    snprintf(t, sizeof(t), "2026-11-26T05:%02d:%02d.000000Z", (seq / 60) % 60, seq % 60);
    json_t *d = json_loads(data, 0, NULL);
    assert_non_null(d);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "specversion",
                           "1.0", "id", id, "source", "callbus://riga/agent/agent1", "type", type,
                           "time", t, "subject", subject, "datacontenttype", "application/json",
                           "epoch", (json_int_t)1795670000, "seq", (json_int_t)seq, "data", d);
    char *s = json_dumps(ev, 0);
    json_decref(ev);
    int n = view_apply(v, s, strlen(s), r ? on_delivery : NULL, r);
    free(s);
    return n;
}

#define CALLER_A "{\"number\":\"5551001\",\"name\":\"Alice Customer\"}"
#define CALLER_B "{\"number\":\"5551002\",\"name\":\"Bob Customer\"}"

static void logins(view *v, rec *r) {
    feed(v, r, "callbus.operator.logged_in", "op101",
         "{\"operator_id\":\"op101\",\"interface\":\"PJSIP/op101\",\"member_name\":\"Operator 101\","
         "\"queue\":\"support\",\"device_status\":1}");
    feed(v, r, "callbus.operator.logged_in", "op102",
         "{\"operator_id\":\"op102\",\"interface\":\"PJSIP/op102\",\"member_name\":\"Operator 102\","
         "\"queue\":\"sales\",\"device_status\":1}");
    feed(v, r, "callbus.operator.ready", "op101",
         "{\"operator_id\":\"op101\",\"interface\":\"PJSIP/op101\",\"device_status\":1}");
    feed(v, r, "callbus.operator.ready", "op102",
         "{\"operator_id\":\"op102\",\"interface\":\"PJSIP/op102\",\"device_status\":1}");
}

/* One inbound queue call up to the answer. */
static void call_until_answer(view *v, rec *r, const char *id, const char *caller,
                              const char *queue, const char *op) {
    char d[512];
    snprintf(d, sizeof(d), "{\"call_id\":\"%s\",\"caller\":%s,\"direction\":\"inbound\","
             "\"channel\":\"PJSIP/trunk-00000001\",\"context\":\"from-trunk\",\"exten\":\"100\"}",
             id, caller);
    feed(v, r, "callbus.call.started", id, d);
    snprintf(d, sizeof(d), "{\"call_id\":\"%s\",\"caller\":%s,\"queue\":\"%s\",\"position\":1}",
             id, caller, queue);
    feed(v, r, "callbus.call.queued", id, d);
    snprintf(d, sizeof(d), "{\"call_id\":\"%s\",\"caller\":%s,\"queue\":\"%s\",\"operator_id\":"
             "\"%s\",\"interface\":\"PJSIP/%s\",\"member_name\":\"Operator\"}",
             id, caller, queue, op, op);
    feed(v, r, "callbus.call.offered", id, d);
    snprintf(d, sizeof(d), "{\"call_id\":\"%s\",\"caller\":%s,\"queue\":\"%s\",\"operator_id\":"
             "\"%s\",\"wait_s\":2.493,\"ring_s\":2.903}", id, caller, queue, op);
    feed(v, r, "callbus.call.answered", id, d);
}

static void call_end(view *v, rec *r, const char *id, const char *caller, const char *queue,
                     const char *op) {
    char d[1024];
    snprintf(d, sizeof(d),
             "{\"call_id\":\"%s\",\"caller\":%s,\"queue\":\"%s\",\"operator_id\":\"%s\","
             "\"direction\":\"inbound\",\"disposition\":\"answered\",\"hangup_cause\":16,"
             "\"hangup_cause_text\":\"Normal Clearing\",\"duration_s\":97.412,\"talk_s\":92.018,"
             "\"wait_s\":2,\"answered_by\":\"%s\",\"operators\":[\"%s\"],"
             "\"started_at\":\"2026-11-26T05:17:39.512301Z\",\"answered_at\":"
             "\"2026-11-26T05:17:42.907184Z\",\"ended_at\":\"2026-11-26T05:19:16.924301Z\","
             "\"reason\":\"normal\"}", id, caller, queue, op, op, op);
    feed(v, r, "callbus.call.ended", id, d);
}

static void results(view *v, rec *r) {
    feed(v, r, "callbus.result", "gw:op101:1",
         "{\"command_id\":\"gw:op101:1\",\"command_type\":\"callbus.command.pause\","
         "\"status\":\"succeeded\",\"sender\":\"gateway:op101\"}");
    feed(v, r, "callbus.result", "central:crm1:1",
         "{\"command_id\":\"central:crm1:1\",\"command_type\":\"callbus.command.originate\","
         "\"status\":\"accepted\",\"sender\":\"crm:jdoe\"}");
}

/* The whole day: two operators, a call each, a pause, results. */
static int scenario(view *v, rec *r) {
    int before = seq;
    logins(v, r);
    call_until_answer(v, r, "1795670259.0", CALLER_A, "support", "op101");
    call_until_answer(v, r, "1795670260.1", CALLER_B, "sales", "op102");
    call_end(v, r, "1795670259.0", CALLER_A, "support", "op101");
    call_end(v, r, "1795670260.1", CALLER_B, "sales", "op102");
    feed(v, r, "callbus.operator.paused", "op101",
         "{\"operator_id\":\"op101\",\"interface\":\"PJSIP/op101\",\"queue\":\"support\","
         "\"reason\":\"lunch\",\"device_status\":1}");
    results(v, r);
    return seq - before;
}

static const char *ev_type(const json_t *msg) {
    return json_string_value(json_object_get(json_object_get(msg, "event"), "type"));
}

static const char *ev_data(const json_t *msg, const char *key) {
    json_t *d = json_object_get(json_object_get(msg, "event"), "data");
    return json_string_value(json_object_get(d, key));
}

static int has_key_anywhere(const json_t *j, const char *key) {
    const char *k;
    json_t *e;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, e)
            if (strcmp(k, key) == 0 || has_key_anywhere(e, key)) return 1;
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, e) if (has_key_anywhere(e, key)) return 1;
    }
    return 0;
}

static void assert_positions(const json_t *msgs, uint64_t first) {
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        assert_string_equal(json_string_value(json_object_get(m, "type")), "event");
        assert_string_equal(json_string_value(json_object_get(m, "epoch")), EPOCH);
        assert_int_equal(json_integer_value(json_object_get(m, "pos")), first + i);
    }
}

static void assert_types(const json_t *msgs, const char **want, size_t n) {
    assert_int_equal(json_array_size(msgs), n);
    for (size_t i = 0; i < n; i++) assert_string_equal(ev_type(json_array_get(msgs, i)), want[i]);
}

static void test_each_operator_gets_only_their_own(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    scenario(v, &r);
    const char *want101[] = {"callbus.operator.logged_in", "callbus.operator.ready",
                             "callbus.call.offered", "callbus.call.answered",
                             "callbus.call.ended", "callbus.operator.paused", "callbus.result"};
    const char *want102[] = {"callbus.operator.logged_in", "callbus.operator.ready",
                             "callbus.call.offered", "callbus.call.answered",
                             "callbus.call.ended"};
    assert_types(r.op101, want101, 7);
    assert_types(r.op102, want102, 5);
    assert_int_equal(json_array_size(r.other), 0);
    assert_positions(r.op101, 1);
    assert_positions(r.op102, 1);
    size_t i;
    json_t *m;
    json_array_foreach(r.op101, i, m) {
        const char *call = ev_data(m, "call_id");
        if (call) assert_string_equal(call, "1795670259.0");
        const char *op = ev_data(m, "operator_id");
        if (op) assert_string_equal(op, "op101");
    }
    json_array_foreach(r.op102, i, m) {
        const char *call = ev_data(m, "call_id");
        if (call) assert_string_equal(call, "1795670260.1");
        const char *op = ev_data(m, "operator_id");
        if (op) assert_string_equal(op, "op102");
    }
    /* The result of op101's command, not the CRM's. */
    assert_string_equal(ev_data(json_array_get(r.op101, 6), "command_id"), "gw:op101:1");
    rec_free(&r);
    view_free(v);
}

static void test_operators_never_see_queues(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    logins(v, &r);
    call_until_answer(v, &r, "1795670259.0", CALLER_A, "support", "op101");
    json_t *snaps[] = {view_snapshot(v, "op101", VIEW_OPERATOR),
                       view_snapshot(v, "op102", VIEW_OPERATOR), NULL, NULL};
    call_end(v, &r, "1795670259.0", CALLER_A, "support", "op101");
    snaps[2] = view_snapshot(v, "op101", VIEW_OPERATOR);
    snaps[3] = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 0);
    for (int i = 0; i < 4; i++) {
        assert_false(has_key_anywhere(snaps[i], "queue"));
        assert_false(has_key_anywhere(snaps[i], "queues"));
        json_decref(snaps[i]);
    }
    assert_true(json_array_size(r.op101) > 0);
    assert_false(has_key_anywhere(r.op101, "queue"));
    assert_false(has_key_anywhere(r.op102, "queue"));
    /* ... while the same events on the site stream keep them. */
    assert_true(has_key_anywhere(r.site, "queue"));
    rec_free(&r);
    view_free(v);
}

static void test_supervisor_sees_the_site(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    int start = seq;
    logins(v, &r);
    call_until_answer(v, &r, "1795670259.0", CALLER_A, "support", "op101");
    call_until_answer(v, &r, "1795670260.1", CALLER_B, "sales", "op102");
    json_t *snap = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    assert_string_equal(json_string_value(json_object_get(snap, "role")), "supervisor");
    json_t *calls = json_object_get(snap, "calls");
    assert_int_equal(json_array_size(calls), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 0), "queue")),
                        "support");
    assert_string_equal(json_string_value(json_object_get(json_array_get(calls, 1), "queue")),
                        "sales");
    json_t *ops = json_object_get(snap, "operators");
    assert_int_equal(json_array_size(ops), 2);
    json_t *q = json_object_get(json_array_get(ops, 0), "queues");
    assert_string_equal(json_string_value(json_object_get(json_array_get(q, 0), "queue")),
                        "support");
    json_decref(snap);
    call_end(v, &r, "1795670259.0", CALLER_A, "support", "op101");
    call_end(v, &r, "1795670260.1", CALLER_B, "sales", "op102");
    results(v, &r);
    /* Every event, in order, numbered 1..n, with its queue. */
    assert_int_equal(json_array_size(r.site), (size_t)(seq - start));
    assert_positions(r.site, 1);
    assert_string_equal(ev_type(json_array_get(r.site, 5)), "callbus.call.queued");
    assert_string_equal(ev_data(json_array_get(r.site, 5), "queue"), "support");
    assert_string_equal(ev_data(json_array_get(r.site, json_array_size(r.site) - 1), "sender"),
                        "crm:jdoe");
    snap = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    assert_int_equal(json_array_size(json_object_get(snap, "calls")), 0);
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), json_array_size(r.site));
    json_decref(snap);
    rec_free(&r);
    view_free(v);
}

static json_t *op_state_of(json_t *snap) {
    return json_object_get(snap, "operator");
}

static void test_snapshot_mid_call(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    logins(v, &r);
    feed(v, &r, "callbus.call.started", "1795670259.0",
         "{\"call_id\":\"1795670259.0\",\"caller\":" CALLER_A ",\"direction\":\"inbound\"}");
    feed(v, &r, "callbus.call.queued", "1795670259.0",
         "{\"call_id\":\"1795670259.0\",\"caller\":" CALLER_A ",\"queue\":\"support\",\"position\":1}");
    feed(v, &r, "callbus.call.offered", "1795670259.0",
         "{\"call_id\":\"1795670259.0\",\"caller\":" CALLER_A ",\"queue\":\"support\","
         "\"operator_id\":\"op101\"}");
    feed(v, &r, "callbus.operator.ringing", "op101", "{\"operator_id\":\"op101\",\"device_status\":6}");

    json_t *snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    assert_string_equal(json_string_value(json_object_get(snap, "type")), "snapshot");
    assert_string_equal(json_string_value(json_object_get(snap, "epoch")), EPOCH);
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), json_array_size(r.op101));
    json_t *st = op_state_of(snap);
    assert_true(json_is_true(json_object_get(st, "logged_in")));
    assert_false(json_is_true(json_object_get(st, "paused")));
    assert_string_equal(json_string_value(json_object_get(st, "device")), "ringing");
    json_t *offered = json_object_get(st, "offered");
    assert_string_equal(json_string_value(json_object_get(offered, "call_id")), "1795670259.0");
    assert_string_equal(json_string_value(json_object_get(json_object_get(offered, "caller"), "number")),
                        "5551001");
    assert_non_null(json_string_value(json_object_get(offered, "since")));
    assert_true(json_is_null(json_object_get(st, "call")));
    assert_int_equal(json_array_size(json_object_get(snap, "calls")), 1);
    json_decref(snap);

    /* op102 was not offered it: not theirs. */
    snap = view_snapshot(v, "op102", VIEW_OPERATOR);
    assert_true(json_is_null(json_object_get(op_state_of(snap), "offered")));
    assert_int_equal(json_array_size(json_object_get(snap, "calls")), 0);
    json_decref(snap);

    feed(v, &r, "callbus.call.answered", "1795670259.0",
         "{\"call_id\":\"1795670259.0\",\"caller\":" CALLER_A ",\"queue\":\"support\","
         "\"operator_id\":\"op101\",\"wait_s\":2.4}");
    feed(v, &r, "callbus.operator.busy", "op101", "{\"operator_id\":\"op101\",\"device_status\":2}");
    snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    st = op_state_of(snap);
    assert_true(json_is_null(json_object_get(st, "offered")));
    json_t *call = json_object_get(st, "call");
    assert_string_equal(json_string_value(json_object_get(call, "call_id")), "1795670259.0");
    assert_string_equal(json_string_value(json_object_get(call, "direction")), "inbound");
    assert_string_equal(json_string_value(json_object_get(json_object_get(call, "caller"), "number")),
                        "5551001");
    assert_non_null(json_string_value(json_object_get(call, "answered_at")));
    assert_string_equal(json_string_value(json_object_get(st, "device")), "busy");
    json_decref(snap);

    call_end(v, &r, "1795670259.0", CALLER_A, "support", "op101");
    feed(v, &r, "callbus.operator.paused", "op101",
         "{\"operator_id\":\"op101\",\"queue\":\"support\",\"reason\":\"lunch\"}");
    snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    st = op_state_of(snap);
    assert_true(json_is_null(json_object_get(st, "call")));
    assert_true(json_is_true(json_object_get(st, "paused")));
    assert_string_equal(json_string_value(json_object_get(st, "pause_reason")), "lunch");
    json_t *recent = json_array_get(json_object_get(st, "recent"), 0);
    assert_string_equal(json_string_value(json_object_get(recent, "call_id")), "1795670259.0");
    assert_string_equal(json_string_value(json_object_get(recent, "disposition")), "answered");
    assert_true(json_real_value(json_object_get(recent, "duration_s")) > 97.0);
    assert_true(json_real_value(json_object_get(recent, "talk_s")) > 92.0);
    assert_int_equal(json_array_size(json_object_get(snap, "calls")), 0);
    json_decref(snap);

    feed(v, &r, "callbus.operator.ready", "op101",
         "{\"operator_id\":\"op101\",\"queue\":\"support\"}");
    snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    assert_false(json_is_true(json_object_get(op_state_of(snap), "paused")));
    assert_true(json_is_null(json_object_get(op_state_of(snap), "pause_reason")));
    json_decref(snap);

    /* Somebody the view never heard of gets an empty state at position 0. */
    snap = view_snapshot(v, "op999", VIEW_OPERATOR);
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), 0);
    assert_false(json_is_true(json_object_get(op_state_of(snap), "logged_in")));
    json_decref(snap);
    rec_free(&r);
    view_free(v);
}

static void test_resume_returns_exactly_what_was_missed(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    logins(v, &r);
    json_t *snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    uint64_t pos = (uint64_t)json_integer_value(json_object_get(snap, "pos"));
    json_decref(snap);
    json_t *sup = view_snapshot(v, NULL, VIEW_SUPERVISOR);
    uint64_t sup_pos = (uint64_t)json_integer_value(json_object_get(sup, "pos"));
    json_decref(sup);
    rec_clear(&r);   /* the client is away from here */
    call_until_answer(v, &r, "1795670259.0", CALLER_A, "support", "op101");
    call_until_answer(v, &r, "1795670260.1", CALLER_B, "sales", "op102");
    call_end(v, &r, "1795670259.0", CALLER_A, "support", "op101");

    json_t *res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, pos);
    assert_string_equal(json_string_value(json_object_get(res, "type")), "resume");
    assert_true(json_is_true(json_object_get(res, "recovered")));
    assert_true(json_array_size(r.op101) == 3);
    assert_true(json_equal(json_object_get(res, "events"), r.op101));
    assert_positions(json_object_get(res, "events"), pos + 1);
    json_decref(res);

    /* Up to date: nothing missed. */
    res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, pos + 3);
    assert_int_equal(json_array_size(json_object_get(res, "events")), 0);
    json_decref(res);

    /* From the middle. */
    res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, pos + 1);
    assert_int_equal(json_array_size(json_object_get(res, "events")), 2);
    assert_true(json_equal(json_array_get(json_object_get(res, "events"), 0),
                           json_array_get(r.op101, 1)));
    json_decref(res);

    res = view_resume(v, NULL, VIEW_SUPERVISOR, EPOCH, sup_pos);
    assert_true(json_equal(json_object_get(res, "events"), r.site));
    json_decref(res);
    rec_free(&r);
    view_free(v);
}

static void assert_not_recovered(json_t *res, const char *reason) {
    assert_string_equal(json_string_value(json_object_get(res, "type")), "snapshot");
    assert_true(json_is_false(json_object_get(res, "recovered")));
    assert_string_equal(json_string_value(json_object_get(res, "reason")), reason);
    assert_non_null(json_object_get(res, "operator"));
    json_decref(res);
}

static void test_resume_too_old_or_other_epoch(void **state) {
    (void)state;
    view *v = view_new(3, EPOCH);
    scenario(v, NULL);   /* op101 has 7 messages, 3 kept */
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 0), "too old");
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 3), "too old");
    json_t *res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 4);
    assert_int_equal(json_array_size(json_object_get(res, "events")), 3);
    json_decref(res);
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, "gw-1795000000", 6),
                         "epoch changed");
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, NULL, 6), "epoch changed");
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 99), "unknown position");
    assert_not_recovered(view_resume(v, NULL, VIEW_SUPERVISOR, EPOCH, 1), "too old");
    /* The snapshot that replaces a failed resume is projected too. */
    res = view_resume(v, "op101", VIEW_OPERATOR, "old", 1);
    assert_false(has_key_anywhere(res, "queue"));
    json_decref(res);
    view_free(v);

    /* No history at all: only an up-to-date client resumes. */
    v = view_new(0, EPOCH);
    scenario(v, NULL);
    res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 7);
    assert_int_equal(json_array_size(json_object_get(res, "events")), 0);
    json_decref(res);
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 6), "too old");
    view_free(v);
}

static void test_duplicates_ignored(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    logins(v, &r);
    const char *ev =
        "{\"specversion\":\"1.0\",\"id\":\"riga:agent1:1795670000:900\",\"type\":"
        "\"callbus.call.offered\",\"time\":\"2026-11-26T05:17:40.004518Z\",\"subject\":\"9.9\","
        "\"data\":{\"call_id\":\"9.9\",\"caller\":" CALLER_A ",\"queue\":\"support\","
        "\"operator_id\":\"op101\"}}";
    assert_int_equal(view_apply(v, ev, strlen(ev), on_delivery, &r), 2);
    size_t n101 = json_array_size(r.op101), nsite = json_array_size(r.site);
    assert_int_equal(view_apply(v, ev, strlen(ev), on_delivery, &r), 0);
    assert_int_equal(view_apply(v, ev, strlen(ev), on_delivery, &r), 0);
    assert_int_equal(json_array_size(r.op101), n101);
    assert_int_equal(json_array_size(r.site), nsite);
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.active_calls, 1);
    rec_free(&r);
    view_free(v);
}

static void test_bad_input_ignored(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    const char *bad[] = {
        "", "{", "not json", "[]", "null", "42", "{\"id\":\"x\"}",
        "{\"id\":\"x\",\"type\":\"callbus.call.started\"}",
        "{\"id\":\"x\",\"type\":\"callbus.call.started\",\"data\":[1]}",
        "{\"id\":5,\"type\":\"callbus.call.started\",\"data\":{}}",
        "{\"id\":\"x\",\"type\":7,\"data\":{}}",
        "{\"id\":\"x\",\"type\":\"callbus.call.started\",\"data\":{\"call_id\":\"1.1\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(view_apply(v, bad[i], strlen(bad[i]), on_delivery, &r), -1);
    const char nul[] = "{\"id\":\"x\0\",\"type\":\"callbus.result\",\"data\":{}}";
    assert_int_equal(view_apply(v, nul, sizeof(nul) - 1, on_delivery, &r), -1);
    const char *unknown[] = {
        "{\"id\":\"u1\",\"type\":\"callbus.ami.event\",\"data\":{\"kind\":\"event\"}}",
        "{\"id\":\"u2\",\"type\":\"callbus.call.teleported\",\"data\":{\"call_id\":\"1.1\"}}",
        "{\"id\":\"u3\",\"type\":\"callbus.operator.dancing\",\"data\":{\"operator_id\":\"op101\"}}",
        "{\"id\":\"u4\",\"type\":\"com.example.other\",\"data\":{}}",
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_int_equal(view_apply(v, unknown[i], strlen(unknown[i]), on_delivery, &r), 0);
    assert_int_equal(json_array_size(r.site) + json_array_size(r.op101) + json_array_size(r.other), 0);
    /* Known types with odd data: only supervisors see them, nothing breaks. */
    const char *odd[] = {
        "{\"id\":\"o1\",\"type\":\"callbus.call.answered\",\"data\":{\"operator_id\":\"op101\"}}",
        "{\"id\":\"o2\",\"type\":\"callbus.call.ended\",\"data\":{\"call_id\":\"never.seen\","
        "\"caller\":\"oops\",\"duration_s\":\"x\"}}",
        "{\"id\":\"o3\",\"type\":\"callbus.operator.paused\",\"data\":{\"operator_id\":3}}",
        "{\"id\":\"o4\",\"type\":\"callbus.result\",\"data\":{\"sender\":\"gateway:\"}}",
        "{\"id\":\"o5\",\"type\":\"callbus.call.offered\",\"data\":{\"call_id\":\"2.2\","
        "\"operators\":[1,null]}}",
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        assert_int_equal(view_apply(v, odd[i], strlen(odd[i]), on_delivery, &r), 1);
    assert_int_equal(json_array_size(r.site), 5);
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.ignored, 17);
    assert_int_equal(st.operators, 0);
    rec_free(&r);
    view_free(v);
}

static void test_transfer_and_ringall(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    rec r;
    rec_init(&r);
    logins(v, &r);
    /* Ring-all: offered to both, op101 answers; op102's offer goes away. */
    const char *id = "1795670300.5";
    feed(v, &r, "callbus.call.started", id, "{\"call_id\":\"1795670300.5\",\"caller\":" CALLER_A "}");
    feed(v, &r, "callbus.call.offered", id,
         "{\"call_id\":\"1795670300.5\",\"queue\":\"support\",\"operator_id\":\"op101\"}");
    feed(v, &r, "callbus.call.offered", id,
         "{\"call_id\":\"1795670300.5\",\"queue\":\"support\",\"operator_id\":\"op102\"}");
    feed(v, &r, "callbus.call.answered", id,
         "{\"call_id\":\"1795670300.5\",\"queue\":\"support\",\"operator_id\":\"op101\"}");
    json_t *snap = view_snapshot(v, "op102", VIEW_OPERATOR);
    assert_true(json_is_null(json_object_get(op_state_of(snap), "offered")));
    json_decref(snap);
    assert_string_equal(ev_type(json_array_get(r.op102, json_array_size(r.op102) - 1)),
                        "callbus.call.answered");
    /* Blind transfer to op102: op101's call is over, op102 follows the call. */
    feed(v, &r, "callbus.call.transferred", id,
         "{\"call_id\":\"1795670300.5\",\"operator_id\":\"op101\",\"kind\":\"blind\","
         "\"from_operator_id\":\"op101\",\"to_operator_id\":\"op102\",\"to\":\"102@phones\"}");
    feed(v, &r, "callbus.call.answered", id,
         "{\"call_id\":\"1795670300.5\",\"queue\":\"support\",\"operator_id\":\"op102\"}");
    snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    assert_true(json_is_null(json_object_get(op_state_of(snap), "call")));
    json_decref(snap);
    snap = view_snapshot(v, "op102", VIEW_OPERATOR);
    json_t *call = json_object_get(op_state_of(snap), "call");
    assert_string_equal(json_string_value(json_object_get(call, "call_id")), id);
    assert_string_equal(json_string_value(json_object_get(json_object_get(call, "caller"), "number")),
                        "5551001");
    json_decref(snap);
    feed(v, &r, "callbus.call.ended", id,
         "{\"call_id\":\"1795670300.5\",\"queue\":\"support\",\"disposition\":\"answered\","
         "\"answered_by\":\"op101\",\"operators\":[\"op101\",\"op102\"]}");
    assert_string_equal(ev_type(json_array_get(r.op102, json_array_size(r.op102) - 1)),
                        "callbus.call.ended");
    assert_string_equal(ev_type(json_array_get(r.op101, json_array_size(r.op101) - 1)),
                        "callbus.call.ended");
    snap = view_snapshot(v, "op102", VIEW_OPERATOR);
    assert_true(json_is_null(json_object_get(op_state_of(snap), "call")));
    assert_int_equal(json_array_size(json_object_get(op_state_of(snap), "recent")), 1);
    json_decref(snap);
    /* Click-to-call: the operator's phone starts it, it is theirs at once. */
    feed(v, &r, "callbus.call.started", "1795670400.12",
         "{\"call_id\":\"1795670400.12\",\"operator_id\":\"op102\",\"direction\":\"outbound\","
         "\"exten\":\"5551009\"}");
    snap = view_snapshot(v, "op102", VIEW_OPERATOR);
    call = json_object_get(op_state_of(snap), "call");
    assert_string_equal(json_string_value(json_object_get(call, "direction")), "outbound");
    assert_string_equal(json_string_value(json_object_get(json_object_get(call, "caller"), "number")),
                        "5551009");
    assert_true(json_is_null(json_object_get(call, "answered_at")));
    json_decref(snap);
    /* The customer answers: still op102's call, now with answered_at. */
    feed(v, &r, "callbus.call.answered", "1795670400.12",
         "{\"call_id\":\"1795670400.12\",\"party\":\"5551009\"}");
    snap = view_snapshot(v, "op102", VIEW_OPERATOR);
    call = json_object_get(op_state_of(snap), "call");
    assert_string_equal(json_string_value(json_object_get(call, "call_id")), "1795670400.12");
    assert_non_null(json_string_value(json_object_get(call, "answered_at")));
    json_decref(snap);
    assert_string_equal(ev_type(json_array_get(r.op102, json_array_size(r.op102) - 1)),
                        "callbus.call.answered");
    rec_free(&r);
    view_free(v);
}

static void test_memory_bounded(void **state) {
    (void)state;
    view *v = view_new(50, EPOCH);
    logins(v, NULL);
    char id[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "1795671000.%d", i);
        const char *op = i % 2 ? "op102" : "op101";
        call_until_answer(v, NULL, id, i % 2 ? CALLER_B : CALLER_A, i % 2 ? "sales" : "support", op);
        call_end(v, NULL, id, i % 2 ? CALLER_B : CALLER_A, i % 2 ? "sales" : "support", op);
    }
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.operators, 2);
    assert_int_equal(st.active_calls, 0);
    assert_int_equal(st.streams, 3);
    assert_int_equal(st.history, 3 * 50);
    assert_int_equal(st.dedupe_ids, VIEW_DEDUPE_WINDOW);
    json_t *snap = view_snapshot(v, "op101", VIEW_OPERATOR);
    assert_int_equal(json_array_size(json_object_get(op_state_of(snap), "recent")), VIEW_RECENT_CALLS);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(op_state_of(snap), "recent"), 0), "call_id")),
                        "1795671000.9998");
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), 2 + 3 * 5000);
    json_decref(snap);
    view_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_operator_gets_only_their_own),
        cmocka_unit_test(test_operators_never_see_queues),
        cmocka_unit_test(test_supervisor_sees_the_site),
        cmocka_unit_test(test_snapshot_mid_call),
        cmocka_unit_test(test_resume_returns_exactly_what_was_missed),
        cmocka_unit_test(test_resume_too_old_or_other_epoch),
        cmocka_unit_test(test_duplicates_ignored),
        cmocka_unit_test(test_bad_input_ignored),
        cmocka_unit_test(test_transfer_and_ringall),
        cmocka_unit_test(test_memory_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
