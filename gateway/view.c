/* view.c -- the gateway's live view of one site (see view.h).
 *
 * State is kept as small jansson objects because that is what it is served
 * as: an operator's offered call, call in progress and recent calls are the
 * JSON the snapshot returns, built once when an event changes them. The
 * projection for operators is a deep copy with the queue keys removed, so
 * one code path serves events and snapshots and nothing can forget it. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "view.h"

/* Last `cap` messages of one stream, in a ring indexed by position. */
typedef struct stream {
    uint64_t pos;      /* position of the last message, 0 = none yet */
    size_t count;      /* messages kept */
    json_t **ring;     /* cap slots, allocated on first message */
} stream;

typedef struct op_rec {
    char *id;
    json_t *member_name;   /* string or NULL */
    json_t *queues;        /* {"<queue>": {"paused": bool, "reason": str}} */
    int paused_all;        /* a queue-less "paused" said so */
    char *pause_reason;
    const char *device;    /* ready | ringing | busy | unavailable | unknown */
    json_t *offered;       /* {"call_id","caller","queue","since"} or NULL */
    json_t *call;          /* {"call_id","caller","direction","queue","answered_at","held"} */
    json_t *recent;        /* newest first, at most VIEW_RECENT_CALLS */
    stream s;
    UT_hash_handle hh;
} op_rec;

typedef struct call_rec {
    char *id;
    json_t *info;      /* what the snapshot shows of an active call */
    json_t *owners;    /* operator ids the call concerns, in order */
    UT_hash_handle hh;
} call_rec;

typedef struct seen_id {
    UT_hash_handle hh;
    char id[];
} seen_id;

struct view {
    size_t cap;
    char *epoch;
    op_rec *ops;
    call_rec *calls;
    stream site;
    seen_id *seen;
    seen_id **seen_ring;   /* FIFO of remembered ids, oldest at seen_head */
    size_t seen_head, seen_count;
    uint64_t duplicates, ignored;
};

/* What one event changes and who gets it, handed between the handlers. */
typedef struct apply_ctx {
    view *v;
    const char *type;   /* suffix after "callbus.call." / "callbus.operator." */
    const char *time;   /* the event's time, RFC 3339, or NULL */
    json_t *data;
    json_t *to;         /* array of operator ids */
} apply_ctx;

/* ---------- small helpers ---------- */

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static json_t *jstr_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

static void add_unique(json_t *arr, const char *id) {
    if (!id || !*id) return;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (strcmp(json_string_value(e), id) == 0) return;
    json_array_append_new(arr, json_string(id));
}

static int has_id(const json_t *arr, const char *id) {
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (strcmp(json_string_value(e), id) == 0) return 1;
    return 0;
}

/* Operators must not learn queue names (nor who else a call rang): remove
 * those keys at every depth, in place. */
static void strip_for_operator(json_t *j) {
    if (json_is_object(j)) {
        json_object_del(j, "queue");
        json_object_del(j, "queues");
        json_object_del(j, "offered_to");
        const char *k;
        json_t *e;
        json_object_foreach(j, k, e) strip_for_operator(e);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) strip_for_operator(e);
    }
}

static json_t *project(const json_t *j, view_role role) {
    json_t *c = json_deep_copy(j);
    if (role == VIEW_OPERATOR) strip_for_operator(c);
    return c;
}

/* ---------- streams ---------- */

static void stream_push(view *v, stream *s, json_t *msg) {
    s->pos++;
    if (v->cap == 0) return;
    if (!s->ring) s->ring = calloc(v->cap, sizeof(json_t *));
    size_t i = (size_t)((s->pos - 1) % v->cap);
    if (s->ring[i]) json_decref(s->ring[i]);
    s->ring[i] = json_incref(msg);
    if (s->count < v->cap) s->count++;
}

static void stream_free(view *v, stream *s) {
    if (!s->ring) return;
    for (size_t i = 0; i < v->cap; i++) json_decref(s->ring[i]);
    free(s->ring);
}

/* Number, wrap and keep one message for a stream, then hand it over. */
static void deliver(view *v, stream *s, const char *op_id, json_t *event,
                    view_delivery_fn fn, void *ctx) {
    json_t *msg = json_pack("{s:s, s:I, s:s, s:o}", "type", "event", "pos",
                            (json_int_t)(s->pos + 1), "epoch", v->epoch, "event", event);
    stream_push(v, s, msg);
    if (fn) fn(ctx, op_id, msg);
    json_decref(msg);
}

/* ---------- duplicate filter ---------- */

/* Returns 1 if the id was seen recently, else remembers it. Bounded: the
 * oldest id is forgotten once VIEW_DEDUPE_WINDOW are kept. */
static int seen_before(view *v, const char *id) {
    seen_id *s;
    HASH_FIND_STR(v->seen, id, s);
    if (s) return 1;
    size_t n = strlen(id);
    s = malloc(sizeof(*s) + n + 1);
    memcpy(s->id, id, n + 1);
    HASH_ADD(hh, v->seen, id, n, s);
    if (v->seen_count == VIEW_DEDUPE_WINDOW) {
        seen_id *old = v->seen_ring[v->seen_head];
        HASH_DEL(v->seen, old);
        free(old);
        v->seen_ring[v->seen_head] = s;
        v->seen_head = (v->seen_head + 1) % VIEW_DEDUPE_WINDOW;
    } else {
        v->seen_ring[(v->seen_head + v->seen_count++) % VIEW_DEDUPE_WINDOW] = s;
    }
    return 0;
}

/* ---------- operators ---------- */

static op_rec *op_find(view *v, const char *id) {
    op_rec *op = NULL;
    if (id) HASH_FIND_STR(v->ops, id, op);
    return op;
}

static op_rec *op_get(view *v, const char *id) {
    op_rec *op = op_find(v, id);
    if (op) return op;
    op = calloc(1, sizeof(*op));
    op->id = strdup(id);
    op->queues = json_object();
    op->recent = json_array();
    op->device = "unknown";
    HASH_ADD_KEYPTR(hh, v->ops, op->id, strlen(op->id), op);
    return op;
}

static void op_free(view *v, op_rec *op) {
    free(op->id);
    free(op->pause_reason);
    json_decref(op->member_name);
    json_decref(op->queues);
    json_decref(op->offered);
    json_decref(op->call);
    json_decref(op->recent);
    stream_free(v, &op->s);
    free(op);
}

/* Paused when a queue-less "paused" said so, or paused in every queue. */
static int op_paused(const op_rec *op) {
    if (op->paused_all) return 1;
    if (json_object_size(op->queues) == 0) return 0;
    const char *k;
    json_t *q;
    json_object_foreach(op->queues, k, q)
        if (!json_is_true(json_object_get(q, "paused"))) return 0;
    return 1;
}

static json_t *op_queue_list(const op_rec *op) {
    json_t *arr = json_array();
    const char *k;
    json_t *q;
    json_object_foreach(op->queues, k, q) {
        json_t *e = json_deep_copy(q);
        json_object_set_new(e, "queue", json_string(k));
        json_array_append_new(arr, e);
    }
    return arr;
}

/* The full state of an operator; project() it for an operator's eyes. */
static json_t *op_state(const op_rec *op) {
    int paused = op_paused(op);
    json_t *st = json_object();
    json_object_set_new(st, "operator_id", json_string(op->id));
    if (op->member_name) json_object_set(st, "member_name", op->member_name);
    json_object_set_new(st, "logged_in", json_boolean(json_object_size(op->queues) > 0));
    json_object_set_new(st, "queues", op_queue_list(op));
    json_object_set_new(st, "paused", json_boolean(paused));
    json_object_set_new(st, "pause_reason", jstr_or_null(paused ? op->pause_reason : NULL));
    json_object_set_new(st, "device", json_string(op->device));
    json_object_set_new(st, "offered", op->offered ? json_deep_copy(op->offered) : json_null());
    json_object_set_new(st, "call", op->call ? json_deep_copy(op->call) : json_null());
    json_object_set_new(st, "recent", json_deep_copy(op->recent));
    return st;
}

static void set_json(json_t **slot, json_t *value) {
    json_decref(*slot);
    *slot = value;
}

static void op_set_pause(op_rec *op, const char *queue, int paused, const char *reason) {
    if (queue) {
        json_t *q = json_pack("{s:b}", "paused", paused);
        if (paused && reason) json_object_set_new(q, "reason", json_string(reason));
        json_object_set_new(op->queues, queue, q);
    }
    /* A per-queue "ready" means the operator takes calls again. */
    if (!paused || !queue) op->paused_all = paused && !queue;
    if (paused) {
        free(op->pause_reason);
        op->pause_reason = reason && *reason ? strdup(reason) : NULL;
    }
}

static void on_operator_event(apply_ctx *a) {
    const char *id = jstr(a->data, "operator_id");
    if (!id || !*id) return;
    op_rec *op = op_get(a->v, id);
    json_t *name = json_object_get(a->data, "member_name");
    if (json_is_string(name)) set_json(&op->member_name, json_incref(name));
    const char *queue = jstr(a->data, "queue");
    const char *t = a->type;
    if (strcmp(t, "logged_in") == 0) {
        if (queue && !json_object_get(op->queues, queue))
            json_object_set_new(op->queues, queue, json_pack("{s:b}", "paused", 0));
    } else if (strcmp(t, "logged_out") == 0) {
        if (queue) json_object_del(op->queues, queue);
        else json_object_clear(op->queues);
    } else if (strcmp(t, "paused") == 0) {
        op_set_pause(op, queue, 1, jstr(a->data, "reason"));
    } else if (strcmp(t, "ready") == 0) {
        op_set_pause(op, queue, 0, NULL);
        op->device = "ready";
    } else if (strcmp(t, "ringing") == 0) {
        op->device = "ringing";
    } else if (strcmp(t, "busy") == 0) {
        op->device = "busy";
    } else if (strcmp(t, "unavailable") == 0) {
        op->device = "unavailable";
    } else {
        return;   /* a type we do not know: ignore, do not forward */
    }
    add_unique(a->to, id);
}

/* ---------- calls ---------- */

static call_rec *call_find(view *v, const char *id) {
    call_rec *c = NULL;
    HASH_FIND_STR(v->calls, id, c);
    return c;
}

static void call_free(call_rec *c) {
    free(c->id);
    json_decref(c->info);
    json_decref(c->owners);
    free(c);
}

/* Forget a call in the operators' offered slot and, unless only_offers, in
 * their call-in-progress slot. */
static void call_release(view *v, const char *call_id, const json_t *owners, int only_offers) {
    size_t i;
    json_t *e;
    json_array_foreach(owners, i, e) {
        op_rec *op = op_find(v, json_string_value(e));
        if (!op) continue;
        if (op->offered && strcmp(jstr(op->offered, "call_id"), call_id) == 0)
            set_json(&op->offered, NULL);
        if (!only_offers && op->call && strcmp(jstr(op->call, "call_id"), call_id) == 0)
            set_json(&op->call, NULL);
    }
}

static void call_drop(view *v, call_rec *c) {
    call_release(v, c->id, c->owners, 0);
    HASH_DEL(v->calls, c);
    call_free(c);
}

/* Calls whose end we never hear of (lost events) must not grow the table
 * for ever: past the limit the oldest call (uthash keeps insertion order)
 * goes. */
static call_rec *call_new(view *v, const char *id) {
    if (HASH_COUNT(v->calls) >= VIEW_MAX_ACTIVE_CALLS) call_drop(v, v->calls);
    call_rec *c = calloc(1, sizeof(*c));
    c->id = strdup(id);
    c->info = json_pack("{s:s, s:s, s:b, s:[]}", "call_id", id, "state", "started",
                        "held", 0, "offered_to");
    c->owners = json_array();
    HASH_ADD_KEYPTR(hh, v->calls, c->id, strlen(c->id), c);
    return c;
}

/* Every operator a call event names concerns the call from now on. */
static void collect_owners(const json_t *d, json_t *to) {
    static const char *keys[] = {"operator_id", "answered_by", "from_operator_id", "to_operator_id"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) add_unique(to, jstr(d, keys[i]));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(d, "operators"), i, e) add_unique(to, json_string_value(e));
}

/* Who is on the other end: the caller of an inbound call, the number the
 * operator dialled for an outbound one. */
static json_t *call_party(const json_t *info) {
    const char *dir = jstr(info, "direction");
    if (dir && strcmp(dir, "outbound") == 0) {
        const char *n = jstr(info, "party") ? jstr(info, "party") : jstr(info, "exten");
        if (n) return json_pack("{s:s}", "number", n);
    }
    json_t *caller = json_object_get(info, "caller");
    return caller ? json_deep_copy(caller) : json_null();
}

/* Keep what the snapshot shows of the call up to date from the event. */
static void call_merge(call_rec *c, const apply_ctx *a) {
    static const char *keys[] = {"caller", "direction", "queue", "position", "party", "exten"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *e = json_object_get(a->data, keys[i]);
        if (e) json_object_set_new(c->info, keys[i], json_deep_copy(e));
    }
    const char *op = jstr(a->data, "operator_id");
    if (op) json_object_set_new(c->info, "operator_id", json_string(op));
}

static json_t *in_progress(const call_rec *c, const char *answered_at) {
    json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:o, s:b}", "call_id", c->id,
                          "caller", call_party(c->info),
                          "direction", jstr_or_null(jstr(c->info, "direction")),
                          "queue", jstr_or_null(jstr(c->info, "queue")),
                          "answered_at", jstr_or_null(answered_at),
                          "held", json_is_true(json_object_get(c->info, "held")));
    return j;
}

static void on_started(apply_ctx *a, call_rec *c) {
    json_object_set_new(c->info, "started_at", jstr_or_null(a->time));
    /* Click-to-call: the operator's own phone starts the call. */
    op_rec *op = op_find(a->v, jstr(a->data, "operator_id"));
    if (op && !op->call) op->call = in_progress(c, NULL);
}

static void on_offered(apply_ctx *a, call_rec *c) {
    const char *id = jstr(a->data, "operator_id");
    if (!id) return;
    json_object_set_new(c->info, "state", json_string("offered"));
    add_unique(json_object_get(c->info, "offered_to"), id);
    set_json(&op_get(a->v, id)->offered,
             json_pack("{s:s, s:o, s:o, s:o}", "call_id", c->id, "caller", call_party(c->info),
                       "queue", jstr_or_null(jstr(c->info, "queue")), "since",
                       jstr_or_null(a->time)));
}

static void on_answered(apply_ctx *a, call_rec *c) {
    json_object_set_new(c->info, "state", json_string("answered"));
    json_object_set_new(c->info, "answered_at", jstr_or_null(a->time));
    /* Whoever else it rang is not offered it any more. */
    call_release(a->v, c->id, a->to, 1);
    op_rec *op = op_find(a->v, jstr(a->data, "operator_id"));
    if (op) {
        set_json(&op->call, in_progress(c, a->time));
        return;
    }
    /* Outbound: the customer answered the operator's call. */
    size_t i;
    json_t *e;
    json_array_foreach(a->to, i, e) {
        op = op_find(a->v, json_string_value(e));
        if (op && op->call && strcmp(jstr(op->call, "call_id"), c->id) == 0)
            set_json(&op->call, in_progress(c, a->time));
    }
}

static void on_held(apply_ctx *a, call_rec *c, int held) {
    json_object_set_new(c->info, "held", json_boolean(held));
    size_t i;
    json_t *e;
    json_array_foreach(a->to, i, e) {
        op_rec *op = op_find(a->v, json_string_value(e));
        if (op && op->call && strcmp(jstr(op->call, "call_id"), c->id) == 0)
            json_object_set_new(op->call, "held", json_boolean(held));
    }
}

static void on_transferred(apply_ctx *a, call_rec *c) {
    op_rec *from = op_find(a->v, jstr(a->data, "from_operator_id"));
    if (from && from->call && strcmp(jstr(from->call, "call_id"), c->id) == 0)
        set_json(&from->call, NULL);
    const char *to = jstr(a->data, "to_operator_id");
    if (to) json_object_set_new(c->info, "operator_id", json_string(to));
}

static json_t *copy_or_null(const json_t *j) {
    return j ? json_deep_copy(j) : json_null();
}

static json_t *recent_entry(const char *call_id, const json_t *d) {
    json_t *e = json_pack("{s:s, s:o}", "call_id", call_id, "caller", call_party(d));
    static const char *keys[] = {"direction", "queue", "disposition", "duration_s", "talk_s",
                                 "ended_at"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        json_object_set_new(e, keys[i], copy_or_null(json_object_get(d, keys[i])));
    return e;
}

/* The call leaves the active set; it lives on in its operators' recent
 * calls only. */
static void on_ended(apply_ctx *a, const char *call_id, call_rec *c) {
    json_t *d = json_deep_copy(a->data);
    if (c) {
        /* Fill what the end event may lack (caller, queue) from what we saw. */
        const char *k;
        json_t *e;
        json_object_foreach(c->info, k, e) if (!json_object_get(d, k)) json_object_set(d, k, e);
    }
    size_t i;
    json_t *e;
    json_array_foreach(a->to, i, e) {
        op_rec *op = op_get(a->v, json_string_value(e));
        json_array_insert_new(op->recent, 0, recent_entry(call_id, d));
        while (json_array_size(op->recent) > VIEW_RECENT_CALLS)
            json_array_remove(op->recent, json_array_size(op->recent) - 1);
    }
    json_decref(d);
    call_release(a->v, call_id, a->to, 0);
    if (c) {
        HASH_DEL(a->v->calls, c);
        call_free(c);
    }
}

static int known_call_type(const char *t) {
    static const char *types[] = {"started", "queued", "offered", "answered", "held", "unheld",
                                  "transferred", "abandoned", "ended"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(t, types[i]) == 0) return 1;
    return 0;
}

static void on_call_event(apply_ctx *a) {
    const char *id = jstr(a->data, "call_id");
    const char *t = a->type;
    if (!id || !*id || !known_call_type(t)) return;
    call_rec *c = call_find(a->v, id);
    if (c) json_array_extend(a->to, c->owners);
    collect_owners(a->data, a->to);
    if (strcmp(t, "ended") == 0) {
        on_ended(a, id, c);
        return;
    }
    if (!c) c = call_new(a->v, id);
    json_array_clear(c->owners);
    json_array_extend(c->owners, a->to);
    call_merge(c, a);
    if (strcmp(t, "started") == 0) on_started(a, c);
    else if (strcmp(t, "queued") == 0) json_object_set_new(c->info, "state", json_string("queued"));
    else if (strcmp(t, "offered") == 0) on_offered(a, c);
    else if (strcmp(t, "answered") == 0) on_answered(a, c);
    else if (strcmp(t, "held") == 0 || strcmp(t, "unheld") == 0) on_held(a, c, t[0] == 'h');
    else if (strcmp(t, "transferred") == 0) on_transferred(a, c);
    else if (strcmp(t, "abandoned") == 0) {
        json_object_set_new(c->info, "state", json_string("abandoned"));
        call_release(a->v, id, a->to, 0);
    }
}

/* ---------- results ---------- */

/* Results go back to the operator whose command it was. */
static void on_result(apply_ctx *a) {
    const char *sender = jstr(a->data, "sender");
    size_t n = strlen(VIEW_SENDER_PREFIX);
    if (sender && strncmp(sender, VIEW_SENDER_PREFIX, n) == 0 && sender[n])
        add_unique(a->to, sender + n);
}

/* ---------- apply ---------- */

/* Parse and check the envelope; NULL if it is not a usable CloudEvent. */
static json_t *parse_event(const char *buf, size_t len) {
    json_t *ev = json_loadb(buf, len, 0, NULL);
    if (!json_is_object(ev) || !jstr(ev, "id") || !jstr(ev, "type") ||
        !json_is_object(json_object_get(ev, "data"))) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

/* What streams carry of a CloudEvent: the envelope fields a client uses. */
static json_t *event_body(const json_t *ev) {
    json_t *b = json_pack("{s:s, s:s}", "type", jstr(ev, "type"), "id", jstr(ev, "id"));
    json_object_set_new(b, "time", jstr_or_null(jstr(ev, "time")));
    json_object_set_new(b, "subject", jstr_or_null(jstr(ev, "subject")));
    json_object_set(b, "data", json_object_get(ev, "data"));
    return b;
}

static int dispatch(view *v, json_t *ev, view_delivery_fn fn, void *ctx) {
    const char *type = jstr(ev, "type");
    apply_ctx a = {v, NULL, jstr(ev, "time"), json_object_get(ev, "data"), json_array()};
    if (strncmp(type, "callbus.call.", 13) == 0) {
        a.type = type + 13;
        on_call_event(&a);
    } else if (strncmp(type, "callbus.operator.", 17) == 0) {
        a.type = type + 17;
        on_operator_event(&a);
    } else {
        on_result(&a);
    }
    json_t *body = event_body(ev);
    size_t i;
    json_t *e;
    json_array_foreach(a.to, i, e) {
        op_rec *op = op_get(v, json_string_value(e));
        deliver(v, &op->s, op->id, project(body, VIEW_OPERATOR), fn, ctx);
    }
    deliver(v, &v->site, NULL, json_incref(body), fn, ctx);
    int n = (int)json_array_size(a.to) + 1;
    json_decref(body);
    json_decref(a.to);
    return n;
}

/* The agent numbers each topic on its own (seq per topic, docs/messages.md),
 * so an id is unique per topic, not per site: the duplicate filter keys on
 * the topic the type comes from as well as the id. */
static const char *dedupe_key(const json_t *ev, char *buf, size_t len) {
    const char *type = jstr(ev, "type");
    char family = strncmp(type, "callbus.call.", 13) == 0 ? 'c'
                  : strncmp(type, "callbus.operator.", 17) == 0 ? 'o' : 'r';
    snprintf(buf, len, "%c|%s", family, jstr(ev, "id"));
    return buf;
}

/* Only what the gateway understands is worth a dedupe slot and a position. */
static int known_type(const char *type) {
    if (strcmp(type, "callbus.result") == 0) return 1;
    if (strncmp(type, "callbus.call.", 13) == 0) return known_call_type(type + 13);
    if (strncmp(type, "callbus.operator.", 17) != 0) return 0;
    static const char *ops[] = {"logged_in", "logged_out", "paused", "ready", "ringing",
                                "busy", "unavailable"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(type + 17, ops[i]) == 0) return 1;
    return 0;
}

int view_apply(view *v, const char *json, size_t len, view_delivery_fn fn, void *ctx) {
    json_t *ev = parse_event(json, len);
    if (!ev) {
        v->ignored++;
        return -1;
    }
    int n = 0;
    char key[320];
    if (!known_type(jstr(ev, "type"))) {
        v->ignored++;
    } else if (seen_before(v, dedupe_key(ev, key, sizeof(key)))) {
        v->duplicates++;
    } else {
        n = dispatch(v, ev, fn, ctx);
    }
    json_decref(ev);
    return n;
}

/* ---------- snapshot and resume ---------- */

static json_t *blank_state(const char *id) {
    op_rec blank = {.id = (char *)(id ? id : ""), .device = "unknown"};
    blank.queues = json_object();
    blank.recent = json_array();
    json_t *st = op_state(&blank);
    json_decref(blank.queues);
    json_decref(blank.recent);
    return st;
}

static json_t *calls_of(view *v, const char *op_id, view_role role) {
    json_t *arr = json_array();
    call_rec *c, *tmp;
    HASH_ITER(hh, v->calls, c, tmp) {
        if (role == VIEW_SUPERVISOR || (op_id && has_id(c->owners, op_id)))
            json_array_append_new(arr, project(c->info, role));
    }
    return arr;
}

static json_t *all_operators(view *v) {
    json_t *arr = json_array();
    op_rec *op, *tmp;
    HASH_ITER(hh, v->ops, op, tmp) json_array_append_new(arr, op_state(op));
    return arr;
}

json_t *view_snapshot(view *v, const char *operator_id, view_role role) {
    op_rec *op = op_find(v, operator_id);
    json_t *st = op ? op_state(op) : blank_state(operator_id);
    if (role == VIEW_OPERATOR) strip_for_operator(st);
    uint64_t pos = role == VIEW_SUPERVISOR ? v->site.pos : (op ? op->s.pos : 0);
    json_t *snap = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "type", "snapshot", "epoch",
                             v->epoch, "pos", (json_int_t)pos, "role",
                             role == VIEW_SUPERVISOR ? "supervisor" : "operator", "operator", st,
                             "calls", calls_of(v, operator_id, role));
    if (role == VIEW_SUPERVISOR) json_object_set_new(snap, "operators", all_operators(v));
    return snap;
}

static json_t *not_recovered(view *v, const char *operator_id, view_role role, const char *why) {
    json_t *snap = view_snapshot(v, operator_id, role);
    json_object_set_new(snap, "recovered", json_false());
    json_object_set_new(snap, "reason", json_string(why));
    return snap;
}

json_t *view_resume(view *v, const char *operator_id, view_role role, const char *epoch,
                    uint64_t pos) {
    static const stream none;
    op_rec *op = op_find(v, operator_id);
    const stream *s = role == VIEW_SUPERVISOR ? &v->site : (op ? &op->s : &none);
    if (!epoch || strcmp(epoch, v->epoch) != 0)
        return not_recovered(v, operator_id, role, "epoch changed");
    if (pos > s->pos) return not_recovered(v, operator_id, role, "unknown position");
    if (s->pos - pos > s->count) return not_recovered(v, operator_id, role, "too old");
    json_t *events = json_array();
    for (uint64_t p = pos + 1; p <= s->pos; p++)
        json_array_append(events, s->ring[(p - 1) % v->cap]);
    return json_pack("{s:s, s:s, s:I, s:b, s:o}", "type", "resume", "epoch", v->epoch, "pos",
                     (json_int_t)s->pos, "recovered", 1, "events", events);
}

/* ---------- lifecycle ---------- */

view *view_new(size_t history_per_stream, const char *epoch) {
    view *v = calloc(1, sizeof(*v));
    v->cap = history_per_stream;
    v->epoch = strdup(epoch ? epoch : "");
    v->seen_ring = calloc(VIEW_DEDUPE_WINDOW, sizeof(seen_id *));
    return v;
}

void view_free(view *v) {
    if (!v) return;
    op_rec *op, *otmp;
    HASH_ITER(hh, v->ops, op, otmp) {
        HASH_DEL(v->ops, op);
        op_free(v, op);
    }
    call_rec *c, *ctmp;
    HASH_ITER(hh, v->calls, c, ctmp) {
        HASH_DEL(v->calls, c);
        call_free(c);
    }
    seen_id *s, *stmp;
    HASH_ITER(hh, v->seen, s, stmp) {
        HASH_DEL(v->seen, s);
        free(s);
    }
    free(v->seen_ring);
    stream_free(v, &v->site);
    free(v->epoch);
    free(v);
}

void view_get_stats(const view *v, view_stats *out) {
    memset(out, 0, sizeof(*out));
    out->operators = HASH_COUNT(v->ops);
    out->active_calls = HASH_COUNT(v->calls);
    out->streams = out->operators + 1;
    out->history = v->site.count;
    const op_rec *op;
    for (op = v->ops; op; op = op->hh.next) out->history += op->s.count;
    out->dedupe_ids = HASH_COUNT(v->seen);
    out->duplicates = v->duplicates;
    out->ignored = v->ignored;
}
