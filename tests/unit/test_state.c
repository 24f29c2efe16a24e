/* test_state.c -- the live state (agent/state.c): operators, calls, queues
 * and today's counters.
 *
 * The captures of tests/fixtures/ami-samples go through the call model into
 * the state, as in the agent; the counters are checked against what each
 * capture's facts.json says happened, the records at chosen moments against
 * what an operator and a supervisor must see. Synthetic events cover what
 * the captures do not: precedence of operator states, per-queue counters and
 * the service level, midnight in a zone with daylight saving time,
 * recovery from the records, reconciliation and bounded memory.
 *
 * Records are collected as the agent publishes them: the latest per key, a
 * tombstone removes the key. Each one must be a JSON object whose id is its
 * key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include "captures.h"
#include "state.h"
#include <jansson.h>
#include <unistd.h>

/* ---- the records, as a consumer of the state topics keeps them ---- */

typedef struct records {
    json_t *latest[STATE_KINDS];   /* key -> data */
    json_t *history[STATE_KINDS];  /* every record's data, in order */
    json_t *log;                   /* [[kind, key, time, data or null]] in order */
    size_t tombstones;
} records;

static const char *id_field[STATE_KINDS] = {"call_id", "operator_id", "queue"};

static void keep(void *ctx, state_kind kind, const char *key, double time, const char *json,
                 size_t len) {
    records *r = ctx;
    assert_true(kind < STATE_KINDS);
    json_t *d = NULL;
    if (json) {
        json_error_t err;
        d = json_loadb(json, len, 0, &err);
        if (!d) fail_msg("record %s is not JSON: %s: %.*s", key, err.text, (int)len, json);
        assert_true(json_is_object(d));
        assert_string_equal(json_string_value(json_object_get(d, id_field[kind])), key);
        json_object_set(r->latest[kind], key, d);
        json_array_append(r->history[kind], d);
    } else {
        assert_int_equal(kind, STATE_CALLS);
        json_object_del(r->latest[kind], key);
        r->tombstones++;
    }
    json_array_append_new(r->log, json_pack("[i, s, f, o]", (int)kind, key, time,
                                            d ? d : json_null()));
}

static void records_init(records *r) {
    for (int k = 0; k < STATE_KINDS; k++) {
        r->latest[k] = json_object();
        r->history[k] = json_array();
    }
    r->log = json_array();
    r->tombstones = 0;
}

static void records_free(records *r) {
    for (int k = 0; k < STATE_KINDS; k++) {
        json_decref(r->latest[k]);
        json_decref(r->history[k]);
    }
    json_decref(r->log);
}

/* ---- a call model feeding a state, as agent.c does ---- */

typedef struct fixture {
    callmodel *cm;
    state *st;
    records r;
} fixture;

static void feed(void *ctx, cm_topic topic, const char *type, const char *key, double time,
                 json_t *data) {
    (void)topic;
    fixture *fx = ctx;
    state_apply(fx->st, type, key, time, data);
    json_decref(data);
}

static void flush(fixture *fx) {
    state_flush(fx->st, keep, &fx->r);
}

/* One loop turn per AMI event: the records are published every turn. */
static void turn(void *ctx, double recv_ts) {
    (void)recv_ts;
    flush(ctx);
}

static fixture *fixture_new(const char *tz) {
    fixture *fx = calloc(1, sizeof(*fx));
    state_settings set = {.timezone = tz, .service_level_s = 20};
    fx->st = state_new(&set);
    fx->cm = callmodel_new(NULL, feed, fx);
    records_init(&fx->r);
    return fx;
}

static void fixture_free(fixture *fx) {
    callmodel_free(fx->cm);
    state_free(fx->st);
    records_free(&fx->r);
    free(fx);
}

static int setup(void **state) {
    fixture *fx = fixture_new("UTC");
    capture_connect_resync(fx->cm, 1795670000.0);
    flush(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_free(*state);
    return 0;
}

static json_t *rec(fixture *fx, state_kind k, const char *key) {
    json_t *d = json_object_get(fx->r.latest[k], key);
    if (!d) fail_msg("no record for %s", key);
    return d;
}

#define OP(key) rec(fx, STATE_OPERATORS, key)
#define QUEUE(key) rec(fx, STATE_QUEUES, key)
#define CALL(key) rec(fx, STATE_CALLS, key)

static json_t *at(json_t *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
        cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(part)) : json_object_get(cur, part);
    return cur;
}

static long ival(json_t *o, const char *path) {
    json_t *v = at(o, path);
    if (!json_is_integer(v)) fail_msg("%s is not an integer", path);
    return (long)json_integer_value(v);
}

static double dval(json_t *o, const char *path) {
    json_t *v = at(o, path);
    if (!json_is_number(v)) fail_msg("%s is not a number", path);
    return json_number_value(v);
}

static const char *sval(json_t *o, const char *path) {
    json_t *v = at(o, path);
    if (!json_is_string(v)) fail_msg("%s is not a string", path);
    return json_string_value(v);
}

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 0.0005)
#define assert_null_at(o, path) assert_true(json_is_null(at(o, path)))

static size_t active_calls(fixture *fx) {
    return json_object_size(fx->r.latest[STATE_CALLS]);
}

/* ---- the captures against their facts ---- */

/* "Local/op101@phones-00000006;1" or "Local/op101@phones" -> "op101". */
static int lab_operator(const char *channel, char *out, size_t len) {
    if (!channel || sscanf(channel, "Local/%63[^@]@phones", out) != 1) return 0;
    (void)len;
    return strncmp(out, "op", 2) == 0;
}

typedef struct expect_op {
    char id[64];
    long handled;
    double talk;
} expect_op;

typedef struct expect_queue {
    char name[64];
    long offered, answered, abandoned, within_sl, talked;
    double wait, talk;
} expect_queue;

static expect_queue *queue_of(expect_queue *qs, size_t *n, const char *name) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(qs[i].name, name) == 0) return &qs[i];
    snprintf(qs[*n].name, sizeof(qs[*n].name), "%s", name);
    return &qs[(*n)++];
}

static expect_op *op_of(expect_op *ops, size_t *n, const char *id) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(ops[i].id, id) == 0) return &ops[i];
    snprintf(ops[*n].id, sizeof(ops[*n].id), "%s", id);
    return &ops[(*n)++];
}

/* Who answered a call, from the facts: the queue's member, or for a
 * click-to-call the operator whose dial the customer answered. */
static int answered_by(json_t *call, char *op, size_t len) {
    json_t *q = json_object_get(call, "queue");
    if (json_object_get(q, "answered_by")) return lab_operator(sval(q, "interface"), op, len);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(call, "dials"), i, d) {
        const char *from = json_string_value(json_object_get(d, "from"));
        const char *status = json_string_value(json_object_get(d, "status"));
        if (status && strcmp(status, "ANSWER") == 0 && lab_operator(from, op, len)) return 1;
    }
    return 0;
}

static void expect_from_facts(json_t *facts, expect_queue *qs, size_t *nq, expect_op *ops, size_t *nops) {
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(facts, "calls"), i, call) {
        json_t *q = json_object_get(call, "queue");
        char op[64];
        int answered = answered_by(call, op, sizeof(op));
        double talk = dval(call, "bridged_talk_s");
        if (answered) {
            expect_op *e = op_of(ops, nops, op);
            e->handled++;
            e->talk += talk;
        }
        if (!json_object_get(q, "queue")) continue;
        expect_queue *eq = queue_of(qs, nq, sval(q, "queue"));
        eq->offered++;
        if (json_object_get(q, "answered_by")) {
            long hold = atol(sval(q, "holdtime_s"));
            eq->answered++;
            eq->wait += (double)hold;
            if (hold <= 20) eq->within_sl++;
            eq->talked++;
            eq->talk += talk;
        } else if (json_is_true(json_object_get(q, "abandoned"))) {
            eq->abandoned++;
            eq->wait += (double)atol(sval(q, "abandon_holdtime_s"));
        }
    }
}

static void check_against_facts(fixture *fx, const char *name) {
    json_t *facts = capture_facts(name);
    assert_non_null(facts);
    expect_queue qs[8] = {0};
    expect_op ops[16] = {0};
    size_t nq = 0, nops = 0;
    expect_from_facts(facts, qs, &nq, ops, &nops);
    for (size_t i = 0; i < nq; i++) {
        json_t *q = QUEUE(qs[i].name);
        assert_int_equal(ival(q, "offered"), qs[i].offered);
        assert_int_equal(ival(q, "answered"), qs[i].answered);
        assert_int_equal(ival(q, "abandoned") + ival(q, "timed_out"), qs[i].abandoned);
        assert_int_equal(ival(q, "answered_within_sl"), qs[i].within_sl);
        assert_int_equal(ival(q, "talked"), qs[i].talked);
        assert_near(dval(q, "wait_s_total"), qs[i].wait);
        assert_near(dval(q, "talk_s_total"), qs[i].talk);
        assert_int_equal(ival(q, "waiting"), 0);
    }
    for (size_t i = 0; i < nops; i++) {
        json_t *o = OP(ops[i].id);
        assert_int_equal(ival(o, "today.handled"), ops[i].handled);
        assert_near(dval(o, "today.talk_s"), ops[i].talk);
    }
    /* Every call hung up: none is left, each got its tombstone. */
    assert_int_equal(active_calls(fx), 0);
    assert_int_equal(fx->r.tombstones, json_array_size(json_object_get(facts, "calls")));
    json_decref(facts);
}

static void test_every_capture_matches_its_facts(void **state) {
    (void)state;
    for (size_t i = 0; i < CAPTURE_COUNT; i++) {
        fixture *fx = fixture_new("UTC");
        capture_connect_resync(fx->cm, 1795670000.0);
        capture_replay_each(fx->cm, capture_names[i], 0, -1, turn, fx);
        flush(fx);
        check_against_facts(fx, capture_names[i]);
        /* Nobody is left ringing or on a call once the calls ended. */
        const char *key;
        json_t *o;
        json_object_foreach(fx->r.latest[STATE_OPERATORS], key, o) {
            assert_null_at(o, "offered");
            assert_null_at(o, "call");
        }
        fixture_free(fx);
    }
}

/* Publishing once per turn or once at the end gives the same records. */
static void test_coalesced_records_are_the_same(void **state) {
    (void)state;
    for (size_t i = 0; i < CAPTURE_COUNT; i++) {
        fixture *each = fixture_new("UTC"), *once = fixture_new("UTC");
        capture_connect_resync(each->cm, 1795670000.0);
        capture_connect_resync(once->cm, 1795670000.0);
        capture_replay_each(each->cm, capture_names[i], 0, -1, turn, each);
        capture_replay(once->cm, capture_names[i], 0, -1);
        flush(each);
        flush(once);
        for (int k = 0; k < STATE_KINDS; k++)
            assert_true(json_equal(each->r.latest[k], once->r.latest[k]));
        assert_true(json_array_size(once->r.log) < json_array_size(each->r.log));
        fixture_free(each);
        fixture_free(once);
    }
}

/* seq 132 of capture 01 is the caller's BridgeLeave: before it op101 talks. */
#define C01_TALKING 132

static void test_01_while_it_happens(void **state) {
    fixture *fx = *state;
    /* Queued (seq of QueueCallerJoin + 1), before any operator rings. */
    json_t *ev = NULL;
    long join = 0;
    FILE *f = fopen(SAMPLES "01-inbound-queue-answered.events.jsonl", "r");
    char *line = NULL;
    size_t cap = 0;
    while (!join && getline(&line, &cap, f) > 0) {
        ev = json_loads(line, 0, NULL);
        json_t *h = json_object_get(ev, "headers");
        if (h && strcmp(json_string_value(json_array_get(json_array_get(h, 0), 1)), "QueueCallerJoin") == 0)
            join = (long)json_integer_value(json_object_get(ev, "seq"));
        json_decref(ev);
    }
    free(line);
    fclose(f);
    assert_true(join > 0);
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, join + 1);
    flush(fx);
    json_t *q = QUEUE("support");
    assert_int_equal(ival(q, "waiting"), 1);
    assert_int_equal(ival(q, "offered"), 1);
    assert_string_equal(sval(q, "oldest_waiting_since"), "2026-11-26T05:17:40.901563Z");
    json_t *c = CALL("1795670259.0");
    assert_string_equal(sval(c, "state"), "queued");
    assert_string_equal(sval(c, "queue"), "support");
    assert_int_equal(ival(c, "position"), 1);
    assert_string_equal(sval(c, "caller.number"), "5551001");
    assert_string_equal(sval(c, "direction"), "inbound");
    assert_int_equal(ival(q, "operators.logged_in"), 3);
    assert_int_equal(ival(q, "operators.ready"), 3);

    capture_replay(fx->cm, "01-inbound-queue-answered", join + 1, C01_TALKING);
    flush(fx);
    json_t *op = OP("op101");
    assert_string_equal(sval(op, "state"), "on_call");
    assert_string_equal(sval(op, "call.call_id"), "1795670259.0");
    assert_string_equal(sval(op, "call.caller.number"), "5551001");
    assert_string_equal(sval(op, "call.queue"), "support");
    assert_string_equal(sval(op, "call.answered_at"), "2026-11-26T05:17:42.907184Z");
    assert_null_at(op, "offered");
    assert_int_equal(ival(op, "today.handled"), 1);
    c = CALL("1795670259.0");
    assert_string_equal(sval(c, "state"), "connected");
    assert_string_equal(sval(c, "operator_id"), "op101");
    assert_string_equal(sval(c, "operators.0"), "op101");
    assert_int_equal(json_array_size(at(c, "offered_to")), 0);
    assert_null_at(c, "position");
    q = QUEUE("support");
    assert_int_equal(ival(q, "waiting"), 0);
    assert_null_at(q, "oldest_waiting_since");
    assert_int_equal(ival(q, "answered"), 1);
    assert_int_equal(ival(q, "operators.on_call"), 1);
    assert_int_equal(ival(q, "operators.ready"), 2);
    assert_null_at(q, "avg_talk_s");   /* not ended yet */

    capture_replay(fx->cm, "01-inbound-queue-answered", C01_TALKING, -1);
    flush(fx);
    op = OP("op101");
    assert_string_equal(sval(op, "state"), "ready");
    assert_string_equal(sval(op, "device"), "ready");
    /* The device went idle a moment before the call ended. */
    assert_string_equal(sval(op, "state_since"), "2026-11-26T05:17:52.413507Z");
    assert_int_equal(json_array_size(at(op, "recent")), 1);
    json_t *r = json_array_get(at(op, "recent"), 0);
    assert_string_equal(sval(r, "call_id"), "1795670259.0");
    assert_string_equal(sval(r, "disposition"), "answered");
    assert_string_equal(sval(r, "caller.number"), "5551001");
    assert_string_equal(sval(r, "caller.name"), "Alice Customer");
    assert_string_equal(sval(r, "direction"), "inbound");
    assert_string_equal(sval(r, "queue"), "support");
    assert_near(dval(r, "talk_s"), 9.503);
    assert_near(dval(r, "duration_s"), 13.017);
    assert_string_equal(sval(r, "ended_at"), "2026-11-26T05:17:52.413507Z");
    assert_int_equal(ival(op, "today.missed"), 0);
    assert_string_equal(sval(op, "today.date"), "2026-11-26");
    q = QUEUE("support");
    assert_near(dval(q, "service_level"), 1.0);
    assert_near(dval(q, "avg_wait_s"), 2.0);
    assert_near(dval(q, "avg_talk_s"), 9.5);
    assert_string_equal(sval(q, "timezone"), "UTC");
    assert_int_equal(ival(q, "sl_threshold_s"), 20);
    assert_int_equal(active_calls(fx), 0);
}

static void test_02_paused_then_abandoned(void **state) {
    fixture *fx = *state;
    capture_replay_each(fx->cm, "02-inbound-queue-paused-abandon", 0, -1, turn, fx);
    /* While the caller waited: the log has the operators paused. */
    size_t i;
    json_t *d;
    int seen_paused = 0;
    json_array_foreach(fx->r.history[STATE_QUEUES], i, d) {
        if (ival(d, "waiting") != 1) continue;
        /* op102 is in support-rna as well, where it is not paused. */
        assert_int_equal(ival(d, "operators.paused"), 2);
        assert_int_equal(ival(d, "operators.ready"), 1);
        seen_paused = 1;
    }
    assert_true(seen_paused);
    json_array_foreach(fx->r.history[STATE_OPERATORS], i, d) {
        if (strcmp(sval(d, "state"), "paused") != 0) continue;
        assert_true(json_is_true(at(d, "paused")));
        assert_string_equal(sval(d, "pause_reason"), "Team meeting");
        assert_string_equal(sval(json_array_get(at(d, "queues"), 0), "reason"), "Team meeting");
    }
    json_t *q = QUEUE("support");
    assert_int_equal(ival(q, "abandoned"), 1);
    assert_int_equal(ival(q, "timed_out"), 0);
    assert_near(dval(q, "service_level"), 0.0);
    assert_near(dval(q, "avg_wait_s"), 7.0);
    assert_null_at(q, "avg_talk_s");
    for (const char *const *op = (const char *const[]){"op101", "op102", "op103", NULL}; *op; op++) {
        assert_string_equal(sval(OP(*op), "state"), "ready");
        assert_null_at(OP(*op), "pause_reason");
        assert_int_equal(json_array_size(at(OP(*op), "recent")), 0);   /* never offered it */
    }
}

static void test_03a_click_to_call(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "03a-c2c-answered", 0, 30);
    flush(fx);
    json_t *op = OP("op101");
    assert_string_equal(sval(op, "state"), "on_call");
    assert_string_equal(sval(op, "call.call_id"), "c2c-2001-op");
    assert_string_equal(sval(op, "call.direction"), "outbound");
    assert_null_at(op, "call.answered_at");   /* the customer has not answered */
    assert_string_equal(sval(CALL("c2c-2001-op"), "operator_id"), "op101");
    capture_replay(fx->cm, "03a-c2c-answered", 30, -1);
    flush(fx);
    op = OP("op101");
    json_t *r = json_array_get(at(op, "recent"), 0);
    assert_string_equal(sval(r, "direction"), "outbound");
    assert_string_equal(sval(r, "caller.number"), "5552001");
    assert_null_at(r, "queue");
    assert_int_equal(ival(QUEUE("support"), "offered"), 0);
}

static void test_03b_busy_is_not_handled(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "03b-c2c-busy", 0, -1);
    flush(fx);
    json_t *op = OP("op101");
    assert_int_equal(ival(op, "today.handled"), 0);
    assert_string_equal(sval(json_array_get(at(op, "recent"), 0), "disposition"), "busy");
    assert_string_equal(sval(op, "state"), "ready");
}

static void test_04_members_come_and_go(void **state) {
    fixture *fx = *state;
    capture_replay_each(fx->cm, "04-queue-member-management", 0, -1, turn, fx);
    for (const char *const *id = (const char *const[]){"op104", "op105", NULL}; *id; id++) {
        json_t *op = OP(*id);
        assert_string_equal(sval(op, "state"), "logged_out");
        assert_false(json_is_true(at(op, "logged_in")));
        assert_int_equal(json_array_size(at(op, "queues")), 0);
    }
    assert_string_equal(sval(OP("op104"), "member_name"), "Operator 104");
    json_t *q = QUEUE("sales");
    assert_int_equal(ival(q, "operators.logged_in"), 0);
    assert_int_equal(ival(q, "operators.ready") + ival(q, "operators.paused"), 0);
    /* While both were in sales, the members by state added up. */
    size_t i;
    json_t *d;
    int seen = 0;
    json_array_foreach(fx->r.history[STATE_QUEUES], i, d) {
        if (strcmp(sval(d, "queue"), "sales") != 0) continue;
        long sum = ival(d, "operators.ready") + ival(d, "operators.paused") + ival(d, "operators.ringing") +
                   ival(d, "operators.on_call") + ival(d, "operators.unavailable");
        assert_int_equal(sum, ival(d, "operators.logged_in"));
        if (ival(d, "operators.logged_in") == 2) seen = 1;
    }
    assert_true(seen);
}

static void test_05a_transfer_moves_the_call(void **state) {
    fixture *fx = *state;
    capture_replay_each(fx->cm, "05a-redirect", 0, -1, turn, fx);
    /* Between the transfer and the end: op103 has it, op102 not. */
    size_t i;
    json_t *d;
    int seen = 0;
    json_array_foreach(fx->r.history[STATE_CALLS], i, d) {
        if (json_array_size(at(d, "operators")) != 2) continue;
        assert_string_equal(sval(d, "operator_id"), "op103");
        assert_string_equal(sval(d, "operators.1"), "op103");
        seen = 1;
    }
    assert_true(seen);
    json_t *op102 = OP("op102"), *op103 = OP("op103");
    assert_int_equal(ival(op102, "today.handled"), 1);   /* answered it */
    assert_int_equal(ival(op103, "today.handled"), 0);   /* took it over */
    assert_string_equal(sval(json_array_get(at(op102, "recent"), 0), "call_id"), "1795670426.42");
    assert_string_equal(sval(json_array_get(at(op103, "recent"), 0), "call_id"), "1795670426.42");
}

/* ---- synthetic events ---- */

static void ev(fixture *fx, const char *type, const char *key, double t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    json_error_t err;
    json_t *d = json_vpack_ex(&err, 0, fmt, ap);
    va_end(ap);
    if (!d) fail_msg("bad test event %s: %s", type, err.text);
    state_apply(fx->st, type, key, t, d);
    json_decref(d);
}

#define OPEV(fx, what, op, t) ev(fx, "callbus.operator." what, op, t, "{s:s}", "operator_id", op)
#define OPQ(fx, what, op, q, t) ev(fx, "callbus.operator." what, op, t, "{s:s, s:s}", "operator_id", op, "queue", q)

static int setup_empty(void **state) {
    *state = fixture_new("UTC");
    return 0;
}

static const char *op_state_now(fixture *fx, const char *op) {
    flush(fx);
    return sval(OP(op), "state");
}

static void test_operator_state_precedence(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    OPEV(fx, "ready", "a", t);
    assert_string_equal(op_state_now(fx, "a"), "logged_out");   /* no queue, no call */
    OPQ(fx, "logged_in", "a", "q1", t + 1);
    assert_string_equal(op_state_now(fx, "a"), "ready");
    assert_string_equal(sval(OP("a"), "state_since"), "2027-01-15T08:00:01.000000Z");
    OPQ(fx, "logged_in", "a", "q2", t + 2);
    OPQ(fx, "paused", "a", "q1", t + 3);
    assert_string_equal(op_state_now(fx, "a"), "ready");        /* not paused in q2 */
    assert_false(json_is_true(at(OP("a"), "paused")));
    ev(fx, "callbus.operator.paused", "a", t + 4, "{s:s, s:s, s:s}", "operator_id", "a", "queue", "q2",
       "reason", "Lunch");
    assert_string_equal(op_state_now(fx, "a"), "paused");
    assert_string_equal(sval(OP("a"), "pause_reason"), "Lunch");
    assert_string_equal(sval(OP("a"), "state_since"), "2027-01-15T08:00:04.000000Z");
    ev(fx, "callbus.call.offered", "c1", t + 5, "{s:s, s:s, s:s}", "call_id", "c1", "operator_id", "a",
       "queue", "q1");
    assert_string_equal(op_state_now(fx, "a"), "ringing");      /* offered beats paused */
    OPEV(fx, "busy", "a", t + 6);
    /* A Local queue member's device reads in use while it is rung. */
    assert_string_equal(op_state_now(fx, "a"), "ringing");      /* offered beats the device */
    OPEV(fx, "unavailable", "a", t + 7);
    assert_string_equal(op_state_now(fx, "a"), "unavailable"); /* beats everything but logged_out */
    assert_int_equal(ival(OP("a"), "today.missed"), 1);          /* it stopped ringing */
    assert_null_at(OP("a"), "offered");
    OPEV(fx, "logged_out", "a", t + 8);                          /* every queue */
    assert_string_equal(op_state_now(fx, "a"), "logged_out");
    /* A call in progress keeps a logged-out operator on the call. */
    ev(fx, "callbus.call.started", "c2", t + 9, "{s:s, s:s, s:s}", "call_id", "c2", "operator_id", "a",
       "direction", "outbound");
    assert_string_equal(op_state_now(fx, "a"), "unavailable");   /* the device still says so */
    OPEV(fx, "ready", "a", t + 10);
    assert_string_equal(op_state_now(fx, "a"), "on_call");
    assert_string_equal(sval(OP("a"), "state_since"), "2027-01-15T08:00:10.000000Z");
    /* state_since moves only when the state does. */
    OPEV(fx, "busy", "a", t + 11);
    assert_string_equal(op_state_now(fx, "a"), "on_call");
    assert_string_equal(sval(OP("a"), "state_since"), "2027-01-15T08:00:10.000000Z");
    /* A queue-less pause: paused everywhere, device idle. */
    ev(fx, "callbus.call.ended", "c2", t + 12, "{s:s, s:s, s:s, s:f}", "call_id", "c2",
       "disposition", "no_answer", "direction", "outbound", "talk_s", 0.0);
    OPQ(fx, "logged_in", "a", "q1", t + 13);
    ev(fx, "callbus.operator.paused", "a", t + 14, "{s:s, s:s}", "operator_id", "a", "reason", "Break");
    assert_string_equal(op_state_now(fx, "a"), "paused");
    assert_string_equal(sval(OP("a"), "device"), "ready");
    assert_string_equal(sval(OP("a"), "pause_reason"), "Break");
    OPQ(fx, "ready", "a", "q1", t + 15);
    assert_string_equal(op_state_now(fx, "a"), "ready");
    assert_null_at(OP("a"), "pause_reason");
}

/* A queue call: queued, offered, answered (or not), ended. */
static void queue_call(fixture *fx, const char *id, const char *q, double t, int wait, const char *op,
                       const char *outcome, double talk) {
    ev(fx, "callbus.call.started", id, t, "{s:s, s:s}", "call_id", id, "direction", "inbound");
    ev(fx, "callbus.call.queued", id, t + 1, "{s:s, s:s, s:i, s:{s:s}}", "call_id", id, "queue", q,
       "position", 1, "caller", "number", "5550000");
    if (op) ev(fx, "callbus.call.offered", id, t + 1 + wait - 1, "{s:s, s:s, s:s}", "call_id", id,
               "operator_id", op, "queue", q);
    if (strcmp(outcome, "answered") == 0)
        ev(fx, "callbus.call.answered", id, t + 1 + wait, "{s:s, s:s, s:s, s:i}", "call_id", id,
           "operator_id", op, "queue", q, "wait_s", wait);
    else
        ev(fx, "callbus.call.abandoned", id, t + 1 + wait, "{s:s, s:s, s:i, s:s}", "call_id", id,
           "queue", q, "wait_s", wait, "reason", outcome);
    int answered = strcmp(outcome, "answered") == 0;
    json_t *end = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:[]}", "call_id", id, "queue", q,
                            "direction", "inbound", "disposition", answered ? "answered" : "abandoned",
                            "talk_s", talk, "duration_s", 1 + wait + talk, "operators");
    if (answered) {
        json_object_set_new(end, "answered_by", json_string(op));
        json_array_append_new(json_object_get(end, "operators"), json_string(op));
    }
    state_apply(fx->st, "callbus.call.ended", id, t + 1 + wait + talk, end);
    json_decref(end);
}

static void test_queue_counters(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    OPQ(fx, "logged_in", "a", "sales", t);
    OPQ(fx, "logged_in", "b", "sales", t);
    OPQ(fx, "logged_in", "b", "support", t);
    queue_call(fx, "1", "sales", t + 10, 5, "a", "answered", 60.5);      /* within 20 s */
    queue_call(fx, "2", "sales", t + 100, 20, "b", "answered", 30.0);    /* exactly 20: within */
    queue_call(fx, "3", "sales", t + 200, 21, "a", "answered", 90.5);    /* late */
    queue_call(fx, "4", "sales", t + 400, 12, "a", "abandon", 0);        /* rang a, caller hung up */
    queue_call(fx, "5", "sales", t + 500, 300, NULL, "timeout", 0);
    queue_call(fx, "6", "support", t + 600, 3, "b", "answered", 10.0);
    flush(fx);
    json_t *q = QUEUE("sales");
    assert_int_equal(ival(q, "offered"), 5);
    assert_int_equal(ival(q, "answered"), 3);
    assert_int_equal(ival(q, "abandoned"), 1);
    assert_int_equal(ival(q, "timed_out"), 1);
    assert_int_equal(ival(q, "answered_within_sl"), 2);
    assert_near(dval(q, "service_level"), 0.4);
    assert_near(dval(q, "wait_s_total"), 5 + 20 + 21 + 12 + 300);
    assert_near(dval(q, "avg_wait_s"), 71.6);
    assert_int_equal(ival(q, "talked"), 3);
    assert_near(dval(q, "talk_s_total"), 181.0);
    assert_near(dval(q, "avg_talk_s"), 60.3);    /* one decimal */
    assert_int_equal(ival(q, "waiting"), 0);
    assert_int_equal(ival(q, "operators.logged_in"), 2);
    json_t *support = QUEUE("support");
    assert_int_equal(ival(support, "offered"), 1);
    assert_int_equal(ival(support, "answered"), 1);
    assert_near(dval(support, "talk_s_total"), 10.0);
    json_t *a = OP("a");
    assert_int_equal(ival(a, "today.handled"), 2);
    assert_int_equal(ival(a, "today.missed"), 1);   /* call 4 */
    assert_near(dval(a, "today.talk_s"), 151.0);
    assert_int_equal(ival(OP("b"), "today.handled"), 2);
}

/* A waiting caller an operator takes with the answer command (a Redirect
 * out of the queue, then a dial: the answer has no queue wait) leaves the
 * queue neither answered by it nor abandoned, as app_queue counts it. */
static void test_redirected_out_of_the_queue(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    OPQ(fx, "logged_in", "a", "q", t);
    ev(fx, "callbus.call.queued", "r", t + 1, "{s:s, s:s}", "call_id", "r", "queue", "q");
    ev(fx, "callbus.call.answered", "r", t + 9, "{s:s, s:s, s:s, s:f}", "call_id", "r", "operator_id", "a",
       "queue", "q", "ring_s", 2.0);
    flush(fx);
    json_t *q = QUEUE("q");
    assert_int_equal(ival(q, "offered"), 1);
    assert_int_equal(ival(q, "waiting"), 0);
    assert_int_equal(ival(q, "answered") + ival(q, "abandoned") + ival(q, "timed_out"), 0);
    assert_null_at(q, "service_level");
    assert_int_equal(ival(OP("a"), "today.handled"), 1);
    assert_string_equal(sval(OP("a"), "call.call_id"), "r");
    ev(fx, "callbus.call.ended", "r", t + 30, "{s:s, s:s, s:f}", "call_id", "r", "answered_by", "a", "talk_s", 20.0);
    flush(fx);
    assert_int_equal(ival(QUEUE("q"), "talked"), 0);
    assert_near(dval(OP("a"), "today.talk_s"), 20.0);
}

/* Ring-all: the others' offers end when one answers; missed counts them. */
static void test_missed_offers(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    for (const char *const *o = (const char *const[]){"a", "b", "c", NULL}; *o; o++) OPQ(fx, "logged_in", *o, "q", t);
    ev(fx, "callbus.call.queued", "x", t + 1, "{s:s, s:s}", "call_id", "x", "queue", "q");
    for (const char *const *o = (const char *const[]){"a", "b", "c", NULL}; *o; o++)
        ev(fx, "callbus.call.offered", "x", t + 2, "{s:s, s:s}", "call_id", "x", "operator_id", *o);
    flush(fx);
    assert_int_equal(json_array_size(at(CALL("x"), "offered_to")), 3);
    assert_string_equal(sval(CALL("x"), "state"), "ringing");
    assert_int_equal(ival(QUEUE("q"), "operators.ringing"), 3);
    assert_string_equal(sval(OP("b"), "offered.call_id"), "x");
    assert_string_equal(sval(OP("b"), "offered.since"), "2027-01-15T08:00:02.000000Z");
    ev(fx, "callbus.call.answered", "x", t + 5, "{s:s, s:s, s:i}", "call_id", "x", "operator_id", "b", "wait_s", 4);
    flush(fx);
    assert_int_equal(json_array_size(at(CALL("x"), "offered_to")), 0);
    assert_int_equal(ival(OP("a"), "today.missed"), 1);
    assert_int_equal(ival(OP("c"), "today.missed"), 1);
    assert_int_equal(ival(OP("b"), "today.missed"), 0);
    assert_null_at(OP("a"), "offered");
    assert_string_equal(sval(OP("a"), "state"), "ready");
    assert_int_equal(ival(QUEUE("q"), "operators.on_call"), 1);
    assert_int_equal(ival(QUEUE("q"), "operators.ready"), 2);
    /* Held and back. */
    ev(fx, "callbus.call.held", "x", t + 6, "{s:s, s:s}", "call_id", "x", "operator_id", "b");
    flush(fx);
    assert_string_equal(sval(CALL("x"), "state"), "held");
    assert_true(json_is_true(at(OP("b"), "call.held")));
    ev(fx, "callbus.call.unheld", "x", t + 7, "{s:s, s:s}", "call_id", "x", "operator_id", "b");
    flush(fx);
    assert_string_equal(sval(CALL("x"), "state"), "connected");
    assert_false(json_is_true(at(OP("b"), "call.held")));
    /* Ring no answer, then the caller leaves while ringing elsewhere. */
    ev(fx, "callbus.call.queued", "y", t + 10, "{s:s, s:s}", "call_id", "y", "queue", "q");
    ev(fx, "callbus.call.offered", "y", t + 11, "{s:s, s:s}", "call_id", "y", "operator_id", "a");
    OPEV(fx, "ringing", "a", t + 11);
    OPEV(fx, "ready", "a", t + 26);
    ev(fx, "callbus.call.offered", "y", t + 27, "{s:s, s:s}", "call_id", "y", "operator_id", "c");
    ev(fx, "callbus.call.abandoned", "y", t + 30, "{s:s, s:s, s:i, s:s}", "call_id", "y", "queue", "q",
       "wait_s", 20, "reason", "abandon");
    ev(fx, "callbus.call.ended", "y", t + 30, "{s:s, s:s, s:s}", "call_id", "y", "queue", "q",
       "disposition", "abandoned");
    flush(fx);
    assert_int_equal(ival(OP("a"), "today.missed"), 2);
    assert_int_equal(ival(OP("c"), "today.missed"), 2);
    assert_string_equal(sval(json_array_get(at(OP("a"), "recent"), 0), "call_id"), "y");
    assert_string_equal(sval(json_array_get(at(OP("c"), "recent"), 0), "disposition"), "abandoned");
}

/* Rung for a call a colleague answered: the operator's recent calls show it
 * as not answered by them, without the colleague's talk time. */
static void test_recent_of_a_colleagues_call(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    OPQ(fx, "logged_in", "a", "q", t);
    OPQ(fx, "logged_in", "b", "q", t);
    ev(fx, "callbus.call.queued", "z", t + 1, "{s:s, s:s}", "call_id", "z", "queue", "q");
    ev(fx, "callbus.call.offered", "z", t + 2, "{s:s, s:s}", "call_id", "z", "operator_id", "a");
    ev(fx, "callbus.call.offered", "z", t + 2, "{s:s, s:s}", "call_id", "z", "operator_id", "b");
    ev(fx, "callbus.call.answered", "z", t + 5, "{s:s, s:s, s:i}", "call_id", "z", "operator_id", "b", "wait_s", 4);
    ev(fx, "callbus.call.ended", "z", t + 35, "{s:s, s:s, s:s, s:s, s:f, s:f}", "call_id", "z", "queue", "q",
       "disposition", "answered", "answered_by", "b", "talk_s", 30.0, "duration_s", 34.0);
    flush(fx);
    json_t *mine = json_array_get(at(OP("b"), "recent"), 0);
    assert_string_equal(sval(mine, "call_id"), "z");
    assert_string_equal(sval(mine, "disposition"), "answered");
    assert_true(json_number_value(at(mine, "talk_s")) == 30.0);
    json_t *theirs = json_array_get(at(OP("a"), "recent"), 0);
    assert_string_equal(sval(theirs, "call_id"), "z");
    assert_string_equal(sval(theirs, "disposition"), "no_answer");
    assert_null_at(theirs, "talk_s");
    assert_int_equal(ival(OP("a"), "today.handled"), 0);
    assert_int_equal(ival(OP("a"), "today.missed"), 1);
}

/* The wait of the oldest caller ticks with the record's time. */
static void test_longest_wait_and_tick(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    ev(fx, "callbus.call.queued", "1", t, "{s:s, s:s, s:i}", "call_id", "1", "queue", "q", "position", 1);
    ev(fx, "callbus.call.queued", "2", t + 5, "{s:s, s:s, s:i}", "call_id", "2", "queue", "q", "position", 2);
    flush(fx);
    assert_int_equal(ival(QUEUE("q"), "waiting"), 2);
    assert_int_equal(ival(QUEUE("q"), "longest_wait_s"), 5);
    state_tick(fx->st, t + 41.7);
    assert_int_equal(state_flush(fx->st, keep, &fx->r), 1);
    assert_int_equal(ival(QUEUE("q"), "longest_wait_s"), 41);
    assert_string_equal(sval(QUEUE("q"), "oldest_waiting_since"), "2027-01-15T08:00:00.000000Z");
    ev(fx, "callbus.call.answered", "1", t + 50, "{s:s, s:i}", "call_id", "1", "wait_s", 50);
    flush(fx);
    assert_int_equal(ival(QUEUE("q"), "waiting"), 1);
    assert_int_equal(ival(QUEUE("q"), "longest_wait_s"), 45);
    assert_string_equal(sval(QUEUE("q"), "oldest_waiting_since"), "2027-01-15T08:00:05.000000Z");
    assert_int_equal(ival(QUEUE("q"), "answered_within_sl"), 0);
    /* Nothing changed: a flush hands out nothing. */
    assert_int_equal(state_flush(fx->st, keep, &fx->r), 0);
}

/* ---- the day ---- */

/* A call from the queue "q" answered at once at t (one answer, one handled). */
static void one_answered(fixture *fx, const char *id, double t) {
    ev(fx, "callbus.call.queued", id, t, "{s:s, s:s}", "call_id", id, "queue", "q");
    ev(fx, "callbus.call.answered", id, t, "{s:s, s:s, s:i}", "call_id", id, "operator_id", "a", "wait_s", 0);
    ev(fx, "callbus.call.ended", id, t, "{s:s, s:s, s:f}", "call_id", id, "answered_by", "a", "talk_s", 0.0);
}

/* Midnight in Tallinn is 22:00 UTC in winter, 21:00 in summer; the day of
 * the switch to summer time has 23 hours, the day back 25. */
static void test_midnight_in_tallinn_with_dst(void **state) {
    (void)state;
    fixture *fx = fixture_new("Europe/Tallinn");
    OPQ(fx, "logged_in", "a", "q", 1774560000.0);   /* 2026-03-26T21:20:00Z */
    struct { double t; const char *date; long answered; } steps[] = {
        {1774648799.0, "2026-03-27", 1},   /* 2026-03-27T21:59:59Z = 23:59:59 EET */
        {1774648800.0, "2026-03-28", 1},   /* midnight: a new day */
        {1774735190.0, "2026-03-28", 2},   /* 2026-03-28T21:59:50Z */
        {1774735200.0, "2026-03-29", 1},   /* the 23-hour day starts at 22:00Z */
        {1774817990.0, "2026-03-29", 2},   /* 2026-03-29T20:59:50Z = 23:59:50 EEST */
        {1774818000.0, "2026-03-30", 1},   /* its end: 21:00Z, 23 hours later */
        {1792875600.0, "2026-10-25", 1},   /* 2026-10-24T21:00:00Z: the 25-hour day */
        {1792965590.0, "2026-10-25", 2},   /* 2026-10-25T21:59:50Z = 23:59:50 EET */
        {1792965600.0, "2026-10-26", 1},   /* 22:00Z, 25 hours after its start */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        char id[16];
        snprintf(id, sizeof(id), "c%zu", i);
        one_answered(fx, id, steps[i].t);
        flush(fx);
        assert_string_equal(sval(QUEUE("q"), "date"), steps[i].date);
        assert_string_equal(sval(QUEUE("q"), "timezone"), "Europe/Tallinn");
        assert_int_equal(ival(QUEUE("q"), "answered"), steps[i].answered);
        assert_string_equal(sval(OP("a"), "today.date"), steps[i].date);
        assert_int_equal(ival(OP("a"), "today.handled"), steps[i].answered);
    }
    /* A tick past midnight rolls the day over without any event. */
    state_tick(fx->st, 1793052000.0);   /* 2026-10-26T22:00:00Z */
    flush(fx);
    assert_string_equal(sval(QUEUE("q"), "date"), "2026-10-27");
    assert_int_equal(ival(QUEUE("q"), "answered"), 0);
    assert_int_equal(ival(OP("a"), "today.handled"), 0);
    assert_string_equal(sval(OP("a"), "today.date"), "2026-10-27");
    fixture_free(fx);
}

/* Santiago skips midnight when summer time starts (2026-09-06 00:00 -04
 * does not exist; 01:00 -03 follows 23:59:59): that day starts at 04:00Z. */
static void test_a_midnight_that_does_not_exist(void **state) {
    (void)state;
    fixture *fx = fixture_new("America/Santiago");
    one_answered(fx, "1", 1788667190.0);   /* 2026-09-06T03:59:50Z = 23:59:50 -04 */
    flush(fx);
    assert_string_equal(sval(QUEUE("q"), "date"), "2026-09-05");
    one_answered(fx, "2", 1788667200.0);   /* 04:00:00Z = 01:00 -03 */
    flush(fx);
    assert_string_equal(sval(QUEUE("q"), "date"), "2026-09-06");
    assert_int_equal(ival(QUEUE("q"), "answered"), 1);
    fixture_free(fx);
}

/* ---- recovery and reconciliation ---- */

/* A new state from the records fx published, as the agent does at start. */
static fixture *restarted(fixture *fx, double now) {
    fixture *nx = fixture_new("UTC");
    for (int k = 0; k < STATE_KINDS; k++) {
        const char *key;
        json_t *d;
        json_object_foreach(fx->r.latest[k], key, d) assert_int_equal(state_restore(nx->st, k, key, d), 0);
    }
    state_restore_end(nx->st, now);
    /* A consumer that kept the topics has the same records. */
    for (int k = 0; k < STATE_KINDS; k++) json_object_update(nx->r.latest[k], fx->r.latest[k]);
    return nx;
}

static void test_restart_continues_today(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, C01_TALKING);
    flush(fx);
    json_t *before_q = json_deep_copy(QUEUE("support")), *before_op = json_deep_copy(OP("op101"));
    fixture *nx = restarted(fx, 1795670300.0);
    /* Nothing is due again: the records already say all of it. */
    assert_int_equal(state_flush(nx->st, keep, &nx->r), 0);
    state_stats st;
    state_get_stats(nx->st, &st);
    assert_int_equal(st.calls, 1);
    /* The resync with Asterisk: the call is gone, the members are there. */
    capture_connect_resync(nx->cm, 1795670300.0);
    assert_int_equal(state_reconcile(nx->st, 1795670300.0, 1), 1);
    flush(nx);
    fx = nx;
    assert_int_equal(active_calls(fx), 0);
    json_t *op = OP("op101");
    assert_null_at(op, "call");
    assert_string_equal(sval(op, "state"), "ready");
    assert_int_equal(ival(op, "today.handled"), ival(before_op, "today.handled"));
    assert_int_equal(json_array_size(at(op, "recent")), 0);   /* counted nowhere */
    json_t *q = QUEUE("support");
    assert_int_equal(ival(q, "answered"), ival(before_q, "answered"));
    assert_int_equal(ival(q, "talked"), 0);
    assert_int_equal(ival(q, "operators.ready"), 3);
    /* Counters continue with the next call. */
    capture_replay(fx->cm, "10a-cdr-cel-inbound-answered", 0, -1);
    flush(fx);
    assert_int_equal(ival(QUEUE("support"), "answered"), 2);
    assert_int_equal(ival(QUEUE("support"), "offered"), 2);
    assert_int_equal(ival(OP("op103"), "today.handled"), 1);
    assert_int_equal(ival(OP("op101"), "today.handled"), 1);
    json_decref(before_q);
    json_decref(before_op);
    fixture_free(nx);
}

/* A call still up after the restart is confirmed by the resync's adoption
 * and ends normally, counted as it would have been. */
static void test_restart_keeps_a_confirmed_call(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, C01_TALKING);
    flush(fx);
    fixture *nx = restarted(fx, 1795670270.0);
    ev(nx, "callbus.call.started", "1795670259.0", 1795670259.5, "{s:s, s:s}", "call_id", "1795670259.0",
       "direction", "inbound");
    assert_int_equal(state_reconcile(nx->st, 1795670270.0, 0), 0);
    ev(nx, "callbus.call.ended", "1795670259.0", 1795670272.4, "{s:s, s:s, s:s, s:f, s:[s]}", "call_id",
       "1795670259.0", "answered_by", "op101", "disposition", "answered", "talk_s", 9.5, "operators", "op101");
    flush(nx);
    fx = nx;
    assert_int_equal(active_calls(fx), 0);
    assert_int_equal(ival(QUEUE("support"), "talked"), 1);
    assert_near(dval(QUEUE("support"), "talk_s_total"), 9.5);
    assert_near(dval(OP("op101"), "today.talk_s"), 9.5);
    assert_string_equal(sval(json_array_get(at(OP("op101"), "recent"), 0), "call_id"), "1795670259.0");
    assert_null_at(OP("op101"), "call");
    fixture_free(nx);
}

/* Records of another day restore state, not counters. */
static void test_restart_on_a_new_day(void **state) {
    fixture *fx = *state;
    capture_replay(fx->cm, "01-inbound-queue-answered", 0, -1);
    flush(fx);
    fixture *nx = restarted(fx, 1795670000.0 + 86400);
    flush(nx);
    fx = nx;
    assert_int_equal(ival(QUEUE("support"), "answered"), 0);
    assert_string_equal(sval(QUEUE("support"), "date"), "2026-11-27");
    assert_int_equal(ival(OP("op101"), "today.handled"), 0);
    assert_int_equal(json_array_size(at(OP("op101"), "recent")), 1);   /* recent calls stay */
    assert_string_equal(sval(OP("op101"), "state"), "ready");
    fixture_free(nx);
}

/* A membership that vanished while we were away goes at reconciliation,
 * but only when the resync did list the queue members. */
static void test_reconcile_memberships(void **state) {
    fixture *fx = *state;
    OPQ(fx, "logged_in", "op150", "sales", 1795670100.0);
    flush(fx);
    fixture *nx = restarted(fx, 1795670200.0);
    capture_connect_resync(nx->cm, 1795670200.0);   /* op150 not listed */
    state_reconcile(nx->st, 1795670200.0, 0);
    flush(nx);
    assert_string_equal(sval(rec(nx, STATE_OPERATORS, "op150"), "state"), "ready");
    state_reconcile(nx->st, 1795670200.0, 1);
    flush(nx);
    assert_string_equal(sval(rec(nx, STATE_OPERATORS, "op150"), "state"), "logged_out");
    assert_int_equal(ival(rec(nx, STATE_QUEUES, "sales"), "operators.logged_in"), 0);
    assert_int_equal(ival(rec(nx, STATE_QUEUES, "support"), "operators.logged_in"), 3);
    fixture_free(nx);
}

static void test_restore_refuses_bad_records(void **state) {
    fixture *fx = *state;
    json_t *bad[] = {
        json_pack("{s:s}", "call_id", "other"),
        json_pack("{s:i}", "call_id", 5),
        json_pack("{s:s, s:s}", "call_id", "k", "state", "dancing"),
        json_pack("{s:s, s:s}", "operator_id", "k", "state", "sleeping"),
        json_pack("{s:s}", "queue", "other"),
        json_pack("[]"),
    };
    state_kind kinds[] = {STATE_CALLS, STATE_CALLS, STATE_CALLS, STATE_OPERATORS, STATE_QUEUES, STATE_OPERATORS};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(state_restore(fx->st, kinds[i], "k", bad[i]), -1);
        json_decref(bad[i]);
    }
    /* Wrong types inside a record are ignored, not trusted. */
    json_t *odd = json_pack("{s:s, s:s, s:i, s:[i, s], s:s, s:{s:b}, s:[i]}", "operator_id", "k", "state", "ready",
                            "member_name", 7, "queues", 1, "x", "state_since", "yesterday", "today",
                            "handled", 1, "recent", 3);
    assert_int_equal(state_restore(fx->st, STATE_OPERATORS, "k", odd), 0);
    json_decref(odd);
    assert_int_equal(state_restore(fx->st, STATE_CALLS, "gone", NULL), 0);
    state_restore_end(fx->st, 1795670000.0);
    flush(fx);
    assert_string_equal(sval(OP("k"), "state"), "logged_out");
}

/* ---- memory ---- */

static void test_memory_is_bounded(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    OPQ(fx, "logged_in", "a", "q", t);
    for (int i = 0; i < 25; i++) {
        char id[16];
        snprintf(id, sizeof(id), "call-%02d", i);
        queue_call(fx, id, "q", t + 100 * i, 3, "a", "answered", 10);
    }
    flush(fx);
    json_t *recent = at(OP("a"), "recent");
    assert_int_equal(json_array_size(recent), STATE_RECENT_CALLS);
    assert_string_equal(sval(json_array_get(recent, 0), "call_id"), "call-24");
    assert_string_equal(sval(json_array_get(recent, 9), "call_id"), "call-15");
    state_stats st;
    state_get_stats(fx->st, &st);
    assert_int_equal(st.calls, 0);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(fx->r.tombstones, 25);
    assert_int_equal(ival(QUEUE("q"), "answered"), 25);
}

/* A call that ends and starts again under the same id in one turn: the
 * tombstone comes first, then the new record. */
static void test_tombstone_before_a_new_call(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    ev(fx, "callbus.call.started", "dup", t, "{s:s}", "call_id", "dup");
    ev(fx, "callbus.call.ended", "dup", t + 1, "{s:s}", "call_id", "dup");
    ev(fx, "callbus.call.started", "dup", t + 2, "{s:s}", "call_id", "dup");
    flush(fx);
    size_t n = json_array_size(fx->r.log);
    json_t *last = json_array_get(fx->r.log, n - 1), *before = json_array_get(fx->r.log, n - 2);
    assert_true(json_is_null(json_array_get(before, 3)));
    assert_string_equal(json_string_value(json_array_get(last, 1)), "dup");
    assert_false(json_is_null(json_array_get(last, 3)));
    assert_near(json_number_value(json_array_get(last, 2)), t + 2);
    assert_int_equal(active_calls(fx), 1);
}

/* Garbage events: unknown types, missing fields, wrong types. */
static void test_odd_events(void **state) {
    fixture *fx = *state;
    double t = 1800000000.0;
    json_t *d = json_pack("{s:i, s:[], s:{}}", "call_id", 3, "operator_id", "queue");
    const char *types[] = {"callbus.call.started", "callbus.call.answered", "callbus.call.ended",
                           "callbus.operator.ready", "callbus.operator.logged_out", "callbus.call.sung",
                           "callbus.result", "", "callbus.call."};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        state_apply(fx->st, types[i], "k", t, d);
        state_apply(fx->st, types[i], NULL, t, d);
        state_apply(fx->st, types[i], "", t, d);
    }
    state_apply(fx->st, NULL, "k", t, d);
    state_apply(fx->st, "callbus.call.started", "k", NAN, d);
    state_apply(NULL, "callbus.call.started", "k", t, d);
    json_decref(d);
    flush(fx);
    state_tick(fx->st, t);
    flush(fx);
}

/* The state under the call model fed shuffled and garbled events of every
 * capture: no crash, no leak (ASan, valgrind), and every record JSON. */
static void test_fuzz_through_the_call_model(void **state) {
    (void)state;
    json_t *all = capture_all_headers();
    size_t n = json_array_size(all);
    unsigned seed = 777;
    for (int round = 0; round < 10; round++) {
        fixture *fx = fixture_new("UTC");
        for (size_t k = 0; k < n; k++) {
            json_t *headers = json_array_get(all, round == 0 ? k : (size_t)rand_r(&seed) % n);
            ami_msg m;
            ami_msg_init(&m);
            size_t i;
            json_t *pair;
            json_array_foreach(headers, i, pair) {
                int r = rand_r(&seed) % 20;
                if (round > 0 && r == 0) continue;
                const char *val = json_string_value(json_array_get(pair, 1));
                if (round > 0 && r == 1) val = "";
                if (round > 0 && r == 2) val = "1795670259.0";
                capture_add(&m, json_string_value(json_array_get(pair, 0)), val);
            }
            if (rand_r(&seed) % 300 == 0) capture_connect_resync(fx->cm, 1795670000.0 + (double)k);
            callmodel_on_event(fx->cm, &m, 1795670000.0 + (double)k);
            ami_msg_free(&m);
            if (rand_r(&seed) % 7 == 0) flush(fx);
            if (rand_r(&seed) % 500 == 0) state_tick(fx->st, 1795670000.0 + (double)k * 60);
        }
        callmodel_resync_begin(fx->cm);
        callmodel_resync_end(fx->cm, "asterisk_restarted", 1795679999.0);
        flush(fx);
        assert_int_equal(active_calls(fx), 0);
        fixture_free(fx);
    }
    json_decref(all);
}

/* A restored call naming in offered_to an operator whose own record says
 * no offer (or another call): ending it must not loop forever (found by
 * fuzz_state_restore; alarm() turns the hang into a failure). */
static void test_restored_offer_without_the_operators_word(void **unused) {
    (void)unused;
    state_settings set = {.timezone = "UTC", .service_level_s = 20};
    state *st = state_new(&set);
    json_t *d = json_pack("{s:s, s:s, s:[s]}", "call_id", "1", "state", "ringing", "offered_to", "op101");
    assert_int_equal(state_restore(st, STATE_CALLS, "1", d), 0);
    json_decref(d);
    state_restore_end(st, 1795670000.0);
    alarm(5);
    state_reconcile(st, 1795670001.0, 1);
    alarm(0);
    state_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_capture_matches_its_facts),
        cmocka_unit_test(test_coalesced_records_are_the_same),
        cmocka_unit_test_setup_teardown(test_01_while_it_happens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_02_paused_then_abandoned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_03a_click_to_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_03b_busy_is_not_handled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_04_members_come_and_go, setup, teardown),
        cmocka_unit_test_setup_teardown(test_05a_transfer_moves_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_state_precedence, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_queue_counters, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_redirected_out_of_the_queue, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_missed_offers, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_recent_of_a_colleagues_call, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_longest_wait_and_tick, setup_empty, teardown),
        cmocka_unit_test(test_midnight_in_tallinn_with_dst),
        cmocka_unit_test(test_a_midnight_that_does_not_exist),
        cmocka_unit_test_setup_teardown(test_restart_continues_today, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_a_confirmed_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_on_a_new_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_memberships, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_bad_records, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_memory_is_bounded, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_before_a_new_call, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_odd_events, setup_empty, teardown),
        cmocka_unit_test(test_fuzz_through_the_call_model),
        cmocka_unit_test(test_restored_offer_without_the_operators_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
