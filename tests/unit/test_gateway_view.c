/* test_gateway_view.c -- the gateway's view of the site's state records:
 * routing, per-role projection (an operator never sees queue names or other
 * operators), snapshots in parts and their bounds at 1,000 operators,
 * resume, tombstones, unchanged records, results, bad input, bounded
 * memory. Records are written as docs/messages.md ("State topics") shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "view.h"

#define EPOCH "gw-1795670000"
#define T0 "2026-12-04T09:12:03.120000Z"

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

static void rec_free(rec *r) {
    json_decref(r->op101);
    json_decref(r->op102);
    json_decref(r->site);
    json_decref(r->other);
}

static void on_delivery(void *ctx, const char *op, json_t *msg) {
    rec *r = ctx;
    json_t *to = !op ? r->site : strcmp(op, "op101") == 0 ? r->op101 : strcmp(op, "op102") == 0 ? r->op102 : r->other;
    json_array_append(to, msg);
}

/* Most tests: a view keeping 100 messages per stream, and what it delivered. */
typedef struct fixture {
    view *v;
    rec r;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    f->v = view_new(100, EPOCH);
    rec_init(&f->r);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    rec_free(&f->r);
    view_free(f->v);
    free(f);
    return 0;
}

static int seq;

static const char *const types[] = {"callbus.state.operator", "callbus.state.call", "callbus.queue.stats",
                                    "callbus.result"};
static const char *const topic_names[] = {"state.operators", "state.calls", "state.queues", "results"};

/* One record as the agent writes it (data is stolen); key NULL: none.
 * Returns view_apply's result. */
static int put(view *v, rec *r, view_topic t, const char *key, json_t *data) {
    char id[96];
    seq++;
    snprintf(id, sizeof(id), "riga:agent1:%s:1795670000:%d", topic_names[t], seq);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:o}", "specversion", "1.0", "id", id, "source",
                           "callbus://riga/agent/agent1", "type", types[t], "time", T0, "subject", key,
                           "datacontenttype", "application/json", "data", data);
    char *s = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    int n = view_apply(v, t, key, key ? strlen(key) : 0, s, strlen(s), r ? on_delivery : NULL, r);
    free(s);
    return n;
}

static int tomb(view *v, rec *r, view_topic t, const char *key) {
    return view_apply(v, t, key, strlen(key), NULL, 0, r ? on_delivery : NULL, r);
}

static json_t *caller(const char *number) { return json_pack("{s:s, s:s}", "number", number, "name", "Customer"); }

/* callbus.state.operator, ready in one queue. */
static json_t *operator_rec(const char *id, const char *queue) {
    char iface[64];
    snprintf(iface, sizeof(iface), "PJSIP/%s", id);
    return json_pack("{s:s, s:s, s:s, s:b, s:[{s:s, s:b, s:n}], s:s, s:s, s:b, s:n, s:s, s:n, s:n, s:[],"
                     " s:{s:s, s:i, s:f, s:i}}",
                     "operator_id", id, "member_name", "Operator", "interface", iface, "logged_in", 1, "queues",
                     "queue", queue, "paused", 0, "reason", "state", "ready", "state_since", T0, "paused", 0,
                     "pause_reason", "device", "ready", "offered", "call", "recent", "today", "date", "2026-12-04",
                     "handled", 0, "talk_s", 0.0, "missed", 0);
}

static json_t *offered(const char *call_id, const char *queue) {
    return json_pack("{s:s, s:o, s:s, s:s}", "call_id", call_id, "caller", caller("5551001"), "queue", queue,
                     "since", T0);
}

static json_t *in_call(const char *call_id, const char *queue) {
    return json_pack("{s:s, s:o, s:s, s:s, s:s, s:b}", "call_id", call_id, "caller", caller("5551001"), "direction",
                     "inbound", "queue", queue, "answered_at", T0, "held", 0);
}

static json_t *recent_entry(const char *call_id, const char *queue) {
    return json_pack("{s:s, s:o, s:s, s:s, s:s, s:f, s:f, s:s}", "call_id", call_id, "caller", caller("5551001"),
                     "direction", "inbound", "queue", queue, "disposition", "answered", "duration_s", 97.4, "talk_s",
                     92.0, "ended_at", T0);
}

/* op101 ringing for call 1.1 in "support", with a recent call. */
static json_t *op101_ringing(void) {
    json_t *o = operator_rec("op101", "support");
    json_object_set_new(o, "state", json_string("ringing"));
    json_object_set_new(o, "device", json_string("ringing"));
    json_object_set_new(o, "offered", offered("1.1", "support"));
    json_object_set_new(o, "recent", json_pack("[o]", recent_entry("0.9", "support")));
    return o;
}

static json_t *call_rec(const char *id, const char *state, const char *queue, const char *op) {
    return json_pack("{s:s, s:s, s:s, s:o, s:n, s:s, s:i, s:s?, s:[s], s:[], s:s, s:s, s:n}", "call_id", id, "state",
                     state, "direction", "inbound", "caller", caller("5551001"), "party", "queue", queue, "position",
                     1, "operator_id", op, "offered_to", "op101", "operators", "started_at", T0, "queued_at", T0,
                     "answered_at");
}

static json_t *queue_rec(const char *q, int waiting) {
    return json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:i, s:f, s:i,"
                     " s:{s:i, s:i, s:i, s:i, s:i, s:i}}",
                     "queue", q, "date", "2026-12-04", "timezone", "Europe/Tallinn", "waiting", waiting,
                     "oldest_waiting_since", T0, "longest_wait_s", 41, "offered", 812, "answered", 760, "abandoned",
                     31, "timed_out", 12, "answered_within_sl", 702, "sl_threshold_s", 20, "service_level", 0.871,
                     "avg_wait_s", 9.2, "avg_talk_s", 74.1, "wait_s_total", 6992, "talk_s_total", 53000.3, "talked",
                     715, "operators", "logged_in", 40, "ready", 12, "paused", 5, "ringing", 3, "on_call", 19,
                     "unavailable", 1);
}

static json_t *result(const char *cmd, const char *sender) {
    return json_pack("{s:s, s:s, s:s, s:s}", "command_id", cmd, "command_type", "pause", "status", "succeeded",
                     "sender", sender);
}

/* Two operators in different queues, a call, a queue, results. */
static void site(view *v, rec *r) {
    put(v, r, VIEW_TOPIC_OPERATORS, "op101", op101_ringing());
    put(v, r, VIEW_TOPIC_OPERATORS, "op102", operator_rec("op102", "sales"));
    put(v, r, VIEW_TOPIC_CALLS, "1.1", call_rec("1.1", "ringing", "support", NULL));
    put(v, r, VIEW_TOPIC_QUEUES, "support", queue_rec("support", 1));
    put(v, r, VIEW_TOPIC_RESULTS, "gw-1", result("gw-1", "gateway:op101"));
    put(v, r, VIEW_TOPIC_RESULTS, "crm-1", result("crm-1", "crm:jdoe"));
}

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static int has_key_anywhere(const json_t *j, const char *key) {
    const char *k;
    json_t *e;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, e) if (strcmp(k, key) == 0 || has_key_anywhere(e, key)) return 1;
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, e) if (has_key_anywhere(e, key)) return 1;
    }
    return 0;
}

static void assert_no_queue_names(const json_t *j) {
    assert_false(has_key_anywhere(j, "queue"));
    assert_false(has_key_anywhere(j, "queues"));
    assert_false(has_key_anywhere(j, "offered_to"));
}

static void assert_positions(const json_t *msgs, uint64_t first) {
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        assert_string_equal(jstr(m, "epoch"), EPOCH);
        assert_int_equal(json_integer_value(json_object_get(m, "pos")), first + i);
    }
}

static json_t *last(const json_t *msgs) { return json_array_get(msgs, json_array_size(msgs) - 1); }

/* The one message of an operator's snapshot. */
static json_t *op_snapshot(view *v, const char *id) {
    json_t *parts = view_snapshot(v, id, VIEW_OPERATOR);
    assert_int_equal(json_array_size(parts), 1);
    json_t *m = json_incref(json_array_get(parts, 0));
    json_decref(parts);
    return m;
}

static void test_each_operator_gets_only_their_own(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    site(v, r);
    /* op101: their record, then the result of their command; nothing else. */
    assert_int_equal(json_array_size(r->op101), 2);
    json_t *u = json_array_get(r->op101, 0);
    assert_string_equal(jstr(u, "type"), "update");
    assert_string_equal(jstr(u, "kind"), "operator");
    assert_string_equal(jstr(u, "id"), "op101");
    assert_string_equal(jstr(u, "time"), T0);
    assert_string_equal(jstr(json_object_get(u, "state"), "operator_id"), "op101");
    json_t *ev = json_array_get(r->op101, 1);
    assert_string_equal(jstr(ev, "type"), "event");
    assert_string_equal(jstr(json_object_get(ev, "event"), "type"), "callbus.result");
    assert_string_equal(jstr(json_object_get(json_object_get(ev, "event"), "data"), "command_id"), "gw-1");
    assert_positions(r->op101, 1);
    assert_int_equal(json_array_size(r->op102), 1);
    assert_string_equal(jstr(json_array_get(r->op102, 0), "id"), "op102");
    assert_int_equal(json_array_size(r->other), 0);
    /* The snapshot holds their own record only. */
    json_t *snap = op_snapshot(v, "op102");
    assert_string_equal(jstr(snap, "role"), "operator");
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), 1);
    assert_string_equal(jstr(json_object_get(snap, "operator"), "operator_id"), "op102");
    assert_null(json_object_get(snap, "operators"));
    assert_null(json_object_get(snap, "calls"));
    assert_null(json_object_get(snap, "queues"));
    char *txt = json_dumps(snap, 0);
    assert_null(strstr(txt, "op101"));
    assert_null(strstr(txt, "1.1"));
    free(txt);
    json_decref(snap);
    /* Commands are checked against the operator's own record. */
    const json_t *own = view_operator(v, "op101");
    assert_string_equal(jstr(json_object_get(own, "offered"), "call_id"), "1.1");
    assert_null(view_operator(v, "op999"));
}

static void test_operators_never_see_queues(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    site(v, r);
    json_t *o = op101_ringing();
    json_object_set_new(o, "state", json_string("on_call"));
    json_object_set_new(o, "offered", json_null());
    json_object_set_new(o, "call", in_call("1.1", "support"));
    put(v, r, VIEW_TOPIC_OPERATORS, "op101", o);
    put(v, r, VIEW_TOPIC_CALLS, "1.1", call_rec("1.1", "connected", "support", "op101"));
    assert_int_equal(json_array_size(r->op101), 3);
    assert_no_queue_names(r->op101);
    assert_no_queue_names(r->op102);
    /* What the operator keeps: the call, the caller, the recent calls. */
    json_t *st = json_object_get(last(r->op101), "state");
    assert_string_equal(jstr(json_object_get(st, "call"), "call_id"), "1.1");
    assert_string_equal(jstr(json_object_get(json_object_get(st, "call"), "caller"), "number"), "5551001");
    assert_int_equal(json_array_size(json_object_get(st, "recent")), 1);
    json_t *snap = op_snapshot(v, "op101");
    assert_no_queue_names(snap);
    assert_string_equal(jstr(json_object_get(json_object_get(snap, "operator"), "call"), "call_id"), "1.1");
    json_decref(snap);
    /* The snapshot that replaces a failed resume is projected too. */
    json_t *res = view_resume(v, "op101", VIEW_OPERATOR, "old", 1);
    assert_no_queue_names(res);
    json_decref(res);
    /* The kept record is untouched: supervisors still see the queues. */
    assert_true(has_key_anywhere(view_operator(v, "op101"), "queue"));
    assert_true(has_key_anywhere(last(r->site), "offered_to"));
}

static void test_supervisor_sees_the_site(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    site(v, r);
    /* Operators, the call, the queue and both results, in order. */
    const char *kinds[] = {"operator", "operator", "call", "queue"};
    assert_int_equal(json_array_size(r->site), 6);
    for (size_t i = 0; i < 4; i++) assert_string_equal(jstr(json_array_get(r->site, i), "kind"), kinds[i]);
    assert_string_equal(jstr(json_array_get(r->site, 4), "type"), "event");
    assert_string_equal(jstr(json_array_get(r->site, 5), "type"), "event");
    assert_positions(r->site, 1);
    /* Queue names for supervisors; other operators' recent calls are left out. */
    json_t *op = json_object_get(json_array_get(r->site, 0), "state");
    assert_true(has_key_anywhere(op, "queue"));
    assert_null(json_object_get(op, "recent"));
    assert_string_equal(jstr(json_object_get(json_array_get(r->site, 2), "state"), "queue"), "support");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(r->site, 3), "state"),
                                                        "waiting")),
                     1);
    /* The snapshot: one part at this size, with the supervisor's own record
     * whole, every queue, operator and call. */
    put(v, r, VIEW_TOPIC_OPERATORS, "sup1", operator_rec("sup1", "support"));
    json_t *parts = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    assert_int_equal(json_array_size(parts), 1);
    json_t *p = json_array_get(parts, 0);
    assert_string_equal(jstr(p, "role"), "supervisor");
    assert_int_equal(json_integer_value(json_object_get(p, "part")), 1);
    assert_int_equal(json_integer_value(json_object_get(p, "parts")), 1);
    assert_int_equal(json_integer_value(json_object_get(p, "pos")), 7);
    assert_string_equal(jstr(json_object_get(p, "operator"), "operator_id"), "sup1");
    assert_non_null(json_object_get(json_object_get(p, "operator"), "recent"));
    assert_int_equal(json_array_size(json_object_get(p, "queues")), 1);
    assert_int_equal(json_array_size(json_object_get(p, "operators")), 3);
    assert_int_equal(json_array_size(json_object_get(p, "calls")), 1);
    assert_true(has_key_anywhere(json_object_get(p, "calls"), "offered_to"));
    assert_false(has_key_anywhere(json_object_get(p, "operators"), "recent"));
    json_decref(parts);
}

static void test_tombstones(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    site(v, r);
    size_t nsite = json_array_size(r->site);
    /* The call ended: supervisors are told, the snapshot forgets it. */
    assert_int_equal(tomb(v, r, VIEW_TOPIC_CALLS, "1.1"), 1);
    json_t *u = last(r->site);
    assert_string_equal(jstr(u, "kind"), "call");
    assert_string_equal(jstr(u, "id"), "1.1");
    assert_true(json_is_null(json_object_get(u, "state")));
    assert_int_equal(json_integer_value(json_object_get(u, "pos")), nsite + 1);
    assert_int_equal(tomb(v, r, VIEW_TOPIC_CALLS, "1.1"), 0);
    assert_int_equal(tomb(v, r, VIEW_TOPIC_QUEUES, "nowhere"), 0);
    json_t *parts = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    assert_int_equal(json_array_size(json_object_get(json_array_get(parts, 0), "calls")), 0);
    json_decref(parts);
    /* An operator removed: a null update on both streams, a blank record in
     * the snapshot, and the stream keeps counting. */
    assert_int_equal(tomb(v, r, VIEW_TOPIC_OPERATORS, "op101"), 2);
    assert_true(json_is_null(json_object_get(last(r->op101), "state")));
    assert_true(json_is_null(json_object_get(last(r->site), "state")));
    assert_int_equal(json_integer_value(json_object_get(last(r->op101), "pos")), 3);
    json_t *snap = op_snapshot(v, "op101");
    assert_string_equal(jstr(json_object_get(snap, "operator"), "state"), "logged_out");
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), 3);
    assert_no_queue_names(snap);
    json_decref(snap);
    assert_int_equal(put(v, r, VIEW_TOPIC_OPERATORS, "op101", operator_rec("op101", "support")), 2);
    assert_int_equal(json_integer_value(json_object_get(last(r->op101), "pos")), 4);
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.operators, 2);
    assert_int_equal(st.active_calls, 0);
    assert_int_equal(st.queues, 1);
}

static void test_unchanged_records_are_not_sent_again(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    site(v, r);
    size_t n101 = json_array_size(r->op101), nsite = json_array_size(r->site);
    /* The same records again (a re-publication, a duplicate): nothing. */
    assert_int_equal(put(v, r, VIEW_TOPIC_OPERATORS, "op101", op101_ringing()), 0);
    assert_int_equal(put(v, r, VIEW_TOPIC_QUEUES, "support", queue_rec("support", 1)), 0);
    assert_int_equal(json_array_size(r->op101), n101);
    assert_int_equal(json_array_size(r->site), nsite);
    /* A change only supervisors can see (another queue): the site only. */
    json_t *o = op101_ringing();
    json_array_append_new(json_object_get(o, "queues"), json_pack("{s:s, s:b, s:n}", "queue", "sales", "paused", 0,
                                                                  "reason"));
    assert_int_equal(put(v, r, VIEW_TOPIC_OPERATORS, "op101", o), 1);
    assert_int_equal(json_array_size(r->op101), n101);
    assert_int_equal(json_array_size(r->site), nsite + 1);
    /* A change of recent calls only: the operator only. */
    o = json_deep_copy(view_operator(v, "op101"));
    json_array_append_new(json_object_get(o, "recent"), recent_entry("0.8", "sales"));
    assert_int_equal(put(v, r, VIEW_TOPIC_OPERATORS, "op101", o), 1);
    assert_int_equal(json_array_size(r->op101), n101 + 1);
    assert_int_equal(json_array_size(r->site), nsite + 1);
    /* A queue's longest wait moved: supervisors hear of it. */
    json_t *q = queue_rec("support", 1);
    json_object_set_new(q, "longest_wait_s", json_integer(51));
    assert_int_equal(put(v, r, VIEW_TOPIC_QUEUES, "support", q), 1);
}

static void test_resume_returns_exactly_what_was_missed(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    site(v, r);
    json_t *snap = op_snapshot(v, "op101");
    uint64_t at = (uint64_t)json_integer_value(json_object_get(snap, "pos"));
    json_decref(snap);
    json_t *sup = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    uint64_t sat = (uint64_t)json_integer_value(json_object_get(json_array_get(sup, 0), "pos"));
    json_decref(sup);
    size_t n101 = json_array_size(r->op101), nsite = json_array_size(r->site);
    /* Missed meanwhile: op101 answers, the call connects, a result. */
    json_t *o = op101_ringing();
    json_object_set_new(o, "state", json_string("on_call"));
    json_object_set_new(o, "offered", json_null());
    json_object_set_new(o, "call", in_call("1.1", "support"));
    put(v, r, VIEW_TOPIC_OPERATORS, "op101", o);
    put(v, r, VIEW_TOPIC_CALLS, "1.1", call_rec("1.1", "connected", "support", "op101"));
    put(v, r, VIEW_TOPIC_RESULTS, "gw-2", result("gw-2", "gateway:op101"));
    put(v, r, VIEW_TOPIC_OPERATORS, "op102", operator_rec("op102", "support"));
    json_t *res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, at);
    assert_int_equal(json_array_size(res), 1);
    json_t *m = json_array_get(res, 0);
    assert_string_equal(jstr(m, "type"), "resume");
    assert_true(json_is_true(json_object_get(m, "recovered")));
    json_t *events = json_object_get(m, "events");
    assert_int_equal(json_array_size(events), 2);
    for (size_t i = 0; i < 2; i++) assert_true(json_equal(json_array_get(events, i), json_array_get(r->op101, n101 + i)));
    assert_positions(events, at + 1);
    assert_int_equal(json_integer_value(json_object_get(m, "pos")), at + 2);
    json_decref(res);
    /* The supervisor missed four: the operator, the call, the result, op102. */
    res = view_resume(v, "sup1", VIEW_SUPERVISOR, EPOCH, sat);
    events = json_object_get(json_array_get(res, 0), "events");
    assert_int_equal(json_array_size(events), 4);
    for (size_t i = 0; i < 4; i++) assert_true(json_equal(json_array_get(events, i), json_array_get(r->site, nsite + i)));
    json_decref(res);
    /* Up to date: an empty resume. */
    res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, at + 2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 0), "events")), 0);
    json_decref(res);
}

static void assert_not_recovered(json_t *res, const char *why) {
    assert_true(json_array_size(res) >= 1);
    size_t i;
    json_t *p;
    json_array_foreach(res, i, p) {
        assert_string_equal(jstr(p, "type"), "snapshot");
        assert_true(json_is_false(json_object_get(p, "recovered")));
        assert_string_equal(jstr(p, "reason"), why);
    }
    json_decref(res);
}

static void test_resume_too_old_or_other_epoch(void **state) {
    (void)state;
    view *v = view_new(3, EPOCH);
    site(v, NULL);   /* loaded: nothing numbered */
    rec r;
    rec_init(&r);
    for (int i = 0; i < 5; i++) {
        json_t *q = queue_rec("support", i + 2);
        put(v, &r, VIEW_TOPIC_QUEUES, "support", q);
        put(v, &r, VIEW_TOPIC_RESULTS, NULL, result(i ? "x" : "y", "gateway:op101"));
    }
    /* op101 is at 5 (five results), the site at 10; 3 kept per stream. */
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, "gw-1795669999", 2), "epoch changed");
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 6), "unknown position");
    assert_not_recovered(view_resume(v, "sup1", VIEW_SUPERVISOR, EPOCH, 6), "too old");
    assert_not_recovered(view_resume(v, "sup1", VIEW_SUPERVISOR, NULL, 6), "epoch changed");
    json_t *res = view_resume(v, "sup1", VIEW_SUPERVISOR, EPOCH, 7);
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 0), "events")), 3);
    json_decref(res);
    view_free(v);

    /* No history at all: only an up-to-date client resumes. */
    v = view_new(0, EPOCH);
    site(v, &r);
    res = view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(res, 0), "events")), 0);
    json_decref(res);
    assert_not_recovered(view_resume(v, "op101", VIEW_OPERATOR, EPOCH, 1), "too old");
    rec_free(&r);
    view_free(v);
}

static void test_loading_numbers_nothing(void **state) {
    (void)state;
    view *v = view_new(100, EPOCH);
    site(v, NULL);
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.operators, 2);
    assert_int_equal(st.active_calls, 1);
    assert_int_equal(st.queues, 1);
    assert_int_equal(st.history, 0);
    json_t *snap = op_snapshot(v, "op101");
    assert_int_equal(json_integer_value(json_object_get(snap, "pos")), 0);
    assert_string_equal(jstr(json_object_get(json_object_get(snap, "operator"), "offered"), "call_id"), "1.1");
    json_decref(snap);
    /* The first live change is position 1. */
    rec r;
    rec_init(&r);
    put(v, &r, VIEW_TOPIC_OPERATORS, "op101", operator_rec("op101", "support"));
    assert_int_equal(json_array_size(r.op101), 1);
    assert_positions(r.op101, 1);
    assert_positions(r.site, 1);
    rec_free(&r);
    view_free(v);
}

static void test_results(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    /* A duplicate (at-least-once) is dropped by its CloudEvent id. */
    const char *ev = "{\"specversion\":\"1.0\",\"id\":\"riga:agent1:results:1:9\",\"type\":\"callbus.result\","
                     "\"time\":\"" T0 "\",\"subject\":\"c9\",\"data\":{\"command_id\":\"c9\",\"status\":\"accepted\","
                     "\"sender\":\"gateway:op102\"}}";
    assert_int_equal(view_apply(v, VIEW_TOPIC_RESULTS, "c9", 2, ev, strlen(ev), on_delivery, r), 2);
    assert_int_equal(view_apply(v, VIEW_TOPIC_RESULTS, "c9", 2, ev, strlen(ev), on_delivery, r), 0);
    assert_int_equal(json_array_size(r->op102), 1);
    assert_int_equal(json_array_size(r->site), 1);
    /* An operator with no record still gets the results of their commands. */
    assert_string_equal(jstr(json_object_get(json_array_get(r->op102, 0), "event"), "subject"), "c9");
    /* Not the gateway's, or no operator named: supervisors only. */
    assert_int_equal(put(v, r, VIEW_TOPIC_RESULTS, NULL, result("c10", "crm:jdoe")), 1);
    assert_int_equal(put(v, r, VIEW_TOPIC_RESULTS, NULL, result("c11", "gateway:")), 1);
    assert_int_equal(json_array_size(r->other), 0);
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.operators, 0);
}

static void test_bad_input_ignored(void **state) {
    fixture *f = *state;
    view *v = f->v;
    rec *r = &f->r;
    const char *bad[] = {
        "", "{", "not json", "[]", "null", "42", "{\"type\":\"callbus.state.operator\"}",
        "{\"type\":\"callbus.state.operator\",\"data\":[1]}",
        "{\"type\":\"callbus.state.operator\",\"data\":{}}",
        "{\"type\":\"callbus.state.operator\",\"data\":{\"operator_id\":7}}",
        "{\"type\":\"callbus.state.operator\",\"data\":{\"operator_id\":\"\"}}",
        /* another operator's record under op101's key */
        "{\"type\":\"callbus.state.operator\",\"data\":{\"operator_id\":\"op102\"}}",
        /* a call record on the operators topic */
        "{\"type\":\"callbus.state.call\",\"data\":{\"call_id\":\"op101\",\"operator_id\":\"op101\"}}",
        "{\"type\":\"callbus.operator.ready\",\"data\":{\"operator_id\":\"op101\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(view_apply(v, VIEW_TOPIC_OPERATORS, "op101", 5, bad[i], strlen(bad[i]), on_delivery, r), -1);
    const char *good = "{\"type\":\"callbus.state.operator\",\"data\":{\"operator_id\":\"op101\"}}";
    /* A key with a NUL in it, an empty or missing key on a tombstone, a key
     * over 255 bytes. */
    assert_int_equal(view_apply(v, VIEW_TOPIC_OPERATORS, "op101\0x", 7, good, strlen(good), on_delivery, r), -1);
    assert_int_equal(view_apply(v, VIEW_TOPIC_OPERATORS, NULL, 0, NULL, 0, on_delivery, r), -1);
    assert_int_equal(view_apply(v, VIEW_TOPIC_OPERATORS, "", 0, NULL, 0, on_delivery, r), -1);
    char longkey[300];
    memset(longkey, 'k', sizeof(longkey));
    assert_int_equal(view_apply(v, VIEW_TOPIC_CALLS, longkey, sizeof(longkey), NULL, 0, on_delivery, r), -1);
    /* Over VIEW_MAX_RECORD_BYTES. */
    size_t big = VIEW_MAX_RECORD_BYTES + 100;
    char *huge = malloc(big + 1);
    int n = snprintf(huge, big + 1, "{\"type\":\"callbus.state.operator\",\"data\":{\"operator_id\":\"op101\",\"x\":\"");
    memset(huge + n, 'x', big - (size_t)n - 3);
    memcpy(huge + big - 3, "\"}}", 4);
    assert_int_equal(view_apply(v, VIEW_TOPIC_OPERATORS, "op101", 5, huge, big, on_delivery, r), -1);
    free(huge);
    /* Results: not a result, no id, data not an object; an unknown topic. */
    const char *badres[] = {"{\"id\":\"r1\",\"type\":\"callbus.state.call\",\"data\":{}}",
                            "{\"type\":\"callbus.result\",\"data\":{}}",
                            "{\"id\":\"r2\",\"type\":\"callbus.result\",\"data\":\"x\"}"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(view_apply(v, VIEW_TOPIC_RESULTS, NULL, 0, badres[i], strlen(badres[i]), on_delivery, r), -1);
    assert_int_equal(view_apply(v, VIEW_TOPIC_RESULTS, NULL, 0, NULL, 0, on_delivery, r), -1);
    assert_int_equal(view_apply(v, (view_topic)9, "k", 1, good, strlen(good), on_delivery, r), -1);
    assert_int_equal(json_array_size(r->site) + json_array_size(r->op101) + json_array_size(r->other), 0);
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.ignored, sizeof(bad) / sizeof(bad[0]) + 5 + 3 + 2);
    assert_int_equal(st.operators, 0);
    /* Without a Kafka key a record names itself. */
    assert_int_equal(view_apply(v, VIEW_TOPIC_OPERATORS, NULL, 0, good, strlen(good), on_delivery, r), 2);
}

/* A 1,000-seat site with a day behind it: the supervisor's snapshot comes
 * in parts of at most VIEW_SNAPSHOT_CHUNK operators and calls, each bounded
 * by its records, and its size depends on the keys, not on the day. */
static size_t part_bytes(json_t *parts, size_t *largest) {
    size_t total = 0;
    *largest = 0;
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p) {
        char *txt = json_dumps(p, JSON_COMPACT);
        size_t n = strlen(txt);
        free(txt);
        total += n;
        if (n > *largest) *largest = n;
    }
    return total;
}

static json_t *busy_operator(int i, int day) {
    char id[16], cid[32];
    snprintf(id, sizeof(id), "op%04d", i);
    json_t *o = operator_rec(id, i % 2 ? "sales" : "support");
    json_t *recent = json_object_get(o, "recent");
    for (int k = 0; k < 10; k++) {
        snprintf(cid, sizeof(cid), "%d.%d", day, k);
        json_array_append_new(recent, recent_entry(cid, "support"));
    }
    json_object_set_new(json_object_get(o, "today"), "handled", json_integer(day));
    return o;
}

static void test_snapshot_in_parts_at_1000_operators(void **state) {
    (void)state;
    view *v = view_new(500, EPOCH);
    rec r;
    rec_init(&r);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "op%04d", i);
        put(v, NULL, VIEW_TOPIC_OPERATORS, id, busy_operator(i, 1));
    }
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "1795670%03d.%d", i, i);
        put(v, NULL, VIEW_TOPIC_CALLS, id, call_rec(id, "connected", "support", "op0001"));
    }
    put(v, NULL, VIEW_TOPIC_QUEUES, "support", queue_rec("support", 3));
    put(v, NULL, VIEW_TOPIC_QUEUES, "sales", queue_rec("sales", 0));
    /* Live: every operator changes twice. */
    for (int day = 2; day < 4; day++)
        for (int i = 0; i < 1000; i++) {
            snprintf(id, sizeof(id), "op%04d", i);
            put(v, &r, VIEW_TOPIC_OPERATORS, id, busy_operator(i, day));
        }
    json_t *parts = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    assert_int_equal(json_array_size(parts), 5);
    json_t *seen = json_object();
    size_t ncalls = 0, i;
    json_t *p;
    json_array_foreach(parts, i, p) {
        assert_int_equal(json_integer_value(json_object_get(p, "part")), i + 1);
        assert_int_equal(json_integer_value(json_object_get(p, "parts")), 5);
        assert_int_equal(json_integer_value(json_object_get(p, "pos")), 2000);
        assert_string_equal(jstr(p, "epoch"), EPOCH);
        assert_true(json_array_size(json_object_get(p, "operators")) <= VIEW_SNAPSHOT_CHUNK);
        assert_true(json_array_size(json_object_get(p, "calls")) <= VIEW_SNAPSHOT_CHUNK);
        assert_int_equal(json_object_get(p, "queues") != NULL, i == 0);
        assert_int_equal(json_object_get(p, "operator") != NULL, i == 0);
        assert_false(has_key_anywhere(json_object_get(p, "operators"), "recent"));
        size_t k;
        json_t *o;
        json_array_foreach(json_object_get(p, "operators"), k, o) {
            assert_null(json_object_get(seen, jstr(o, "operator_id")));
            json_object_set_new(seen, jstr(o, "operator_id"), json_true());
            assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "today"), "handled")), 3);
        }
        ncalls += json_array_size(json_object_get(p, "calls"));
    }
    assert_int_equal(json_object_size(seen), 1000);
    assert_int_equal(ncalls, 300);
    assert_int_equal(json_array_size(json_object_get(json_array_get(parts, 0), "queues")), 2);
    json_decref(seen);
    size_t largest, total = part_bytes(parts, &largest);
    json_decref(parts);
    /* The day behind does not weigh: after more changes of the same keys
     * the snapshot is the same size. */
    for (int day = 4; day < 7; day++)
        for (int i2 = 0; i2 < 1000; i2++) {
            snprintf(id, sizeof(id), "op%04d", i2);
            put(v, NULL, VIEW_TOPIC_OPERATORS, id, busy_operator(i2, day));
        }
    parts = view_snapshot(v, "sup1", VIEW_SUPERVISOR);
    size_t largest2, total2 = part_bytes(parts, &largest2);
    json_decref(parts);
    print_message("supervisor snapshot at 1,000 operators and 300 calls: %zu bytes in 5 parts, largest %zu\n", total,
                  largest);
    assert_true(total2 <= total + 1000 && total2 + 1000 >= total);
    /* A part is about its 200 operators and 200 calls, no more. */
    char *one = json_dumps(json_object_get(json_array_get(r.site, 0), "state"), JSON_COMPACT);
    size_t op_bytes = strlen(one);
    free(one);
    json_t *c = call_rec("1795670999.9", "connected", "support", "op0001");
    one = json_dumps(c, JSON_COMPACT);
    size_t call_bytes = strlen(one);
    free(one);
    json_decref(c);
    assert_true(largest <= VIEW_SNAPSHOT_CHUNK * (op_bytes + call_bytes + 2) + 4096);
    /* An operator's snapshot is their own record, whatever the site's size. */
    json_t *snap = op_snapshot(v, "op0007");
    char *txt = json_dumps(snap, JSON_COMPACT);
    assert_true(strlen(txt) < 8192);
    free(txt);
    json_decref(snap);
    rec_free(&r);
    view_free(v);
}

static void test_memory_bounded(void **state) {
    (void)state;
    view *v = view_new(50, EPOCH);
    rec r;
    rec_init(&r);
    put(v, &r, VIEW_TOPIC_OPERATORS, "op101", operator_rec("op101", "support"));
    /* Tombstones never seen: the oldest calls go past VIEW_MAX_KEYS,
     * and supervisors are told. */
    char id[32];
    for (int i = 0; i < VIEW_MAX_KEYS + 10; i++) {
        snprintf(id, sizeof(id), "1795671000.%d", i);
        put(v, i >= VIEW_MAX_KEYS ? &r : NULL, VIEW_TOPIC_CALLS, id, json_pack("{s:s}", "call_id", id));
    }
    view_stats st;
    view_get_stats(v, &st);
    assert_int_equal(st.active_calls, VIEW_MAX_KEYS);
    assert_string_equal(jstr(json_array_get(r.site, 1), "id"), "1795671000.0");
    assert_true(json_is_null(json_object_get(json_array_get(r.site, 1), "state")));
    /* Results for operators the view never heard of: a bounded number of
     * streams, the rest reach the supervisors only. */
    for (int i = 0; i < VIEW_MAX_RESULT_ONLY + 100; i++) {
        char sender[32];
        snprintf(sender, sizeof(sender), "gateway:ghost%d", i);
        snprintf(id, sizeof(id), "c%d", i);
        put(v, &r, VIEW_TOPIC_RESULTS, id, result(id, sender));
    }
    view_get_stats(v, &st);
    assert_int_equal(st.streams, 1 + 1 + VIEW_MAX_RESULT_ONLY);
    assert_int_equal(st.operators, 1);
    assert_int_equal(st.history, 50 + 1 + VIEW_MAX_RESULT_ONLY);
    for (int i = 0; i < VIEW_DEDUPE_WINDOW; i++) {
        snprintf(id, sizeof(id), "d%d", i);
        put(v, NULL, VIEW_TOPIC_RESULTS, id, result(id, "crm:x"));
    }
    view_get_stats(v, &st);
    assert_int_equal(st.dedupe_ids, VIEW_DEDUPE_WINDOW);
    rec_free(&r);
    view_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_operator_gets_only_their_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operators_never_see_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_sees_the_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_records_are_not_sent_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_returns_exactly_what_was_missed, setup, teardown),
        cmocka_unit_test(test_resume_too_old_or_other_epoch),
        cmocka_unit_test(test_loading_numbers_nothing),
        cmocka_unit_test_setup_teardown(test_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_ignored, setup, teardown),
        cmocka_unit_test(test_snapshot_in_parts_at_1000_operators),
        cmocka_unit_test(test_memory_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
