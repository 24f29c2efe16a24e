/* view.c -- the gateway's live view of one site (see view.h).
 *
 * A record is kept as the jansson object it arrives as (the "data" of the
 * agent's CloudEvent) and never modified once stored, so projections and
 * messages share it instead of copying: the supervisor's projection of an
 * operator is a shallow copy without "recent", a call or queue record is
 * sent as it is, and the operator's own projection (queue names removed at
 * every depth) copies the containers and shares the strings and numbers.
 * Projections are made once per change and kept, so a snapshot costs its
 * serialisation only. An operator record of 2.5 KB (ten recent calls) costs
 * about a million instructions from Kafka to two serialised messages:
 * parsing half, serialising a third. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "alloc.h"
#include "view.h"

#define VIEW_MAX_KEY_BYTES 255

/* Last `cap` messages of one stream, in a ring indexed by position. */
typedef struct stream {
    uint64_t pos;      /* position of the last message, 0 = none yet */
    size_t count;      /* messages kept */
    json_t **ring;     /* cap slots, allocated on first message */
} stream;

/* One key of a state topic: an operator (with their stream), a call or a
 * queue. */
typedef struct entry {
    char *id;
    json_t *data;   /* the latest record; NULL: an operator removed, or known only by results */
    json_t *own;    /* operators: their own projection, made when first needed */
    json_t *site;   /* the supervisors' projection, made when first needed */
    stream s;       /* operators only */
    UT_hash_handle hh;
} entry;

typedef struct seen_id {
    UT_hash_handle hh;
    char id[];
} seen_id;

struct view {
    size_t cap;
    char *epoch;
    entry *tables[3];      /* by view_topic: operators, calls, queues */
    size_t result_only;    /* operators without a record, made for their results */
    stream site;
    seen_id *seen;
    seen_id **seen_ring;   /* FIFO of remembered result ids, oldest at seen_head */
    size_t seen_head, seen_count;
    uint64_t duplicates, ignored;
};

/* What each state topic holds. */
static const struct {
    const char *type;       /* the CloudEvent type of its records */
    const char *id_field;   /* the field of data that is the key */
    const char *kind;       /* the update's "kind" */
} topics[] = {
    [VIEW_TOPIC_OPERATORS] = {"callbus.state.operator", "operator_id", "operator"},
    [VIEW_TOPIC_CALLS] = {"callbus.state.call", "call_id", "call"},
    [VIEW_TOPIC_QUEUES] = {"callbus.queue.stats", "queue", "queue"},
};

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

/* ---------- projection ---------- */

static int queue_key(const char *k) {
    return !strcmp(k, "queue") || !strcmp(k, "queues") || !strcmp(k, "offered_to");
}

/* Operators must not learn queue names (nor who else a call rang): a copy
 * without those keys at any depth. Records are never modified once kept, so
 * the copy shares their strings and numbers instead of duplicating them. */
static json_t *for_operator(const json_t *j) {
    const char *k;
    json_t *e, *c;
    size_t i;
    if (json_is_object(j)) {
        c = json_object();
        json_object_foreach((json_t *)j, k, e) if (!queue_key(k)) json_object_set_new_nocheck(c, k, for_operator(e));
        return c;
    }
    if (json_is_array(j)) {
        c = json_array();
        json_array_foreach(j, i, e) json_array_append_new(c, for_operator(e));
        return c;
    }
    return json_incref((json_t *)j);
}

static json_t *own_of(entry *e) {
    if (!e->own && e->data) e->own = for_operator(e->data);
    return e->own;
}

/* Supervisors watch hundreds of operators: their recent calls would only
 * weigh the site stream down. Calls and queues are sent as they are. */
static json_t *site_of(entry *e, view_topic t) {
    if (!e->site && e->data) {
        if (t == VIEW_TOPIC_OPERATORS) {
            e->site = json_copy(e->data);
            json_object_del(e->site, "recent");
        } else {
            e->site = json_incref(e->data);
        }
    }
    return e->site;
}

/* ---------- streams ---------- */

static void stream_push(view *v, stream *s, json_t *msg) {
    s->pos++;
    if (v->cap == 0) return;
    if (!s->ring) s->ring = xcalloc(v->cap, sizeof(json_t *));
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

/* Number msg (stolen) as the stream's next message, keep it for resume
 * and hand it over. */
static void deliver(view *v, stream *s, const char *op_id, json_t *msg, view_delivery_fn fn, void *ctx) {
    json_object_set_new(msg, "pos", json_integer((json_int_t)(s->pos + 1)));
    stream_push(v, s, msg);
    fn(ctx, op_id, msg);
    json_decref(msg);
}

static json_t *update_msg(view *v, const char *kind, const char *id, const char *time, json_t *state) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:O?}", "type", "update", "epoch", v->epoch, "kind", kind, "id",
                     id, "time", time, "state", state);
}

/* ---------- the tables ---------- */

static void entry_free(view *v, entry *e) {
    free(e->id);
    json_decref(e->data);
    json_decref(e->own);
    json_decref(e->site);
    stream_free(v, &e->s);
    free(e);
}

static entry *entry_find(const view *v, view_topic t, const char *id) {
    entry *e = NULL;
    if (id) HASH_FIND_STR(v->tables[t], id, e);
    return e;
}

static void entry_del(view *v, view_topic t, entry *e) {
    HASH_DEL(v->tables[t], e);
    entry_free(v, e);
}

static entry *entry_add(view *v, view_topic t, const char *id) {
    entry *e = xcalloc(1, sizeof(*e));
    e->id = xstrdup(id);
    HASH_ADD_KEYPTR(hh, v->tables[t], e->id, strlen(e->id), e);
    return e;
}

/* Replace what is kept of an entry; the old projections go to *old_own and
 * *old_site (the caller's references). */
static void entry_set(entry *e, json_t *data, json_t **old_own, json_t **old_site) {
    *old_own = e->own;
    *old_site = e->site;
    e->own = e->site = NULL;
    json_decref(e->data);
    e->data = json_incref(data);
}

/* ---------- records ---------- */

/* Calls whose tombstone we never saw must not grow the table for ever:
 * past the limit the oldest call (uthash keeps insertion order) goes. */
static void drop_oldest_call(view *v, view_delivery_fn fn, void *ctx) {
    entry *old = v->tables[VIEW_TOPIC_CALLS];
    if (fn) deliver(v, &v->site, NULL, update_msg(v, "call", old->id, NULL, NULL), fn, ctx);
    entry_del(v, VIEW_TOPIC_CALLS, old);
}

/* The entry a new record of id goes to; NULL when the table is full. */
static entry *entry_for_record(view *v, view_topic t, const char *id, view_delivery_fn fn, void *ctx) {
    entry *e = entry_find(v, t, id);
    if (e) {
        if (!e->data && t == VIEW_TOPIC_OPERATORS && v->result_only) v->result_only--;
        return e;
    }
    if (HASH_COUNT(v->tables[t]) >= VIEW_MAX_KEYS) {
        if (t != VIEW_TOPIC_CALLS) return NULL;
        drop_oldest_call(v, fn, ctx);
    }
    return entry_add(v, t, id);
}

/* Send what changed of an entry to the streams that see it; old_* are the
 * projections before the change (NULL: unknown, so it is sent). */
static int route(view *v, view_topic t, entry *e, const char *time, json_t *old_own, json_t *old_site,
                 view_delivery_fn fn, void *ctx) {
    int n = 0;
    const char *kind = topics[t].kind;
    if (t == VIEW_TOPIC_OPERATORS) {
        json_t *own = own_of(e);
        if (!old_own || !own || !json_equal(old_own, own)) {
            deliver(v, &e->s, e->id, update_msg(v, kind, e->id, time, own), fn, ctx);
            n++;
        }
    }
    json_t *site = site_of(e, t);
    if (!old_site || !site || !json_equal(old_site, site)) {
        deliver(v, &v->site, NULL, update_msg(v, kind, e->id, time, site), fn, ctx);
        n++;
    }
    return n;
}

static int apply_tombstone(view *v, view_topic t, const char *id, view_delivery_fn fn, void *ctx) {
    entry *e = entry_find(v, t, id);
    if (!e || !e->data) return 0;
    json_t *old_own, *old_site;
    entry_set(e, NULL, &old_own, &old_site);
    int n = fn ? route(v, t, e, NULL, old_own, old_site, fn, ctx) : 1;
    json_decref(old_own);
    json_decref(old_site);
    /* An operator's stream outlives their record: a client on it keeps its
     * positions. */
    if (t == VIEW_TOPIC_OPERATORS) v->result_only++;
    else entry_del(v, t, e);
    return n;
}

static int apply_record(view *v, view_topic t, const char *id, json_t *data, const char *time,
                        view_delivery_fn fn, void *ctx) {
    entry *e = entry_find(v, t, id);
    if (e && e->data && json_equal(e->data, data)) return 0;
    e = entry_for_record(v, t, id, fn, ctx);
    if (!e) return -1;
    json_t *old_own, *old_site;
    entry_set(e, data, &old_own, &old_site);
    int n = fn ? route(v, t, e, time, old_own, old_site, fn, ctx) : 1;
    json_decref(old_own);
    json_decref(old_site);
    return n;
}

/* A Kafka key as a string: NULL when missing, too long or not text. */
static const char *key_string(const char *key, size_t keylen, char *buf) {
    if (!key || !keylen || keylen > VIEW_MAX_KEY_BYTES || memchr(key, 0, keylen)) return NULL;
    memcpy(buf, key, keylen);
    buf[keylen] = 0;
    return buf;
}

static int apply_state(view *v, view_topic t, const char *key, size_t keylen, const char *value, size_t len,
                       view_delivery_fn fn, void *ctx) {
    char kbuf[VIEW_MAX_KEY_BYTES + 1];
    const char *id = key_string(key, keylen, kbuf);
    if (!value) return id ? apply_tombstone(v, t, id, fn, ctx) : -1;
    json_t *ev = json_loadb(value, len, 0, NULL);
    json_t *data = json_object_get(ev, "data");
    const char *type = jstr(ev, "type"), *rid = jstr(data, topics[t].id_field);
    int n = -1;
    /* The key must be the record's own id: an operator's stream gets only
     * what is about them. Without a Kafka key the record names itself. */
    if (type && !strcmp(type, topics[t].type) && json_is_object(data) && rid && *rid &&
        strlen(rid) <= VIEW_MAX_KEY_BYTES && (!key || (id && !strcmp(id, rid))))
        n = apply_record(v, t, rid, data, jstr(ev, "time"), fn, ctx);
    json_decref(ev);
    return n;
}

/* ---------- results ---------- */

/* Returns 1 if the id was seen recently, else remembers it. Bounded: the
 * oldest id is forgotten once VIEW_DEDUPE_WINDOW are kept. */
static int seen_before(view *v, const char *id) {
    seen_id *s;
    HASH_FIND_STR(v->seen, id, s);
    if (s) return 1;
    size_t n = strlen(id);
    s = xmalloc(sizeof(*s) + n + 1);
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

/* The stream of the operator whose command a result answers, made for an
 * operator the view has no record of (within VIEW_MAX_RESULT_ONLY). */
static entry *sender_of(view *v, const json_t *data) {
    const char *sender = jstr(data, "sender");
    size_t n = strlen(VIEW_SENDER_PREFIX);
    if (!sender || strncmp(sender, VIEW_SENDER_PREFIX, n) || !sender[n] || strlen(sender + n) > VIEW_MAX_KEY_BYTES)
        return NULL;
    entry *e = entry_find(v, VIEW_TOPIC_OPERATORS, sender + n);
    if (e || v->result_only >= VIEW_MAX_RESULT_ONLY || HASH_COUNT(v->tables[VIEW_TOPIC_OPERATORS]) >= VIEW_MAX_KEYS)
        return e;
    v->result_only++;
    return entry_add(v, VIEW_TOPIC_OPERATORS, sender + n);
}

static json_t *event_msg(view *v, json_t *body) {
    return json_pack("{s:s, s:s, s:o}", "type", "event", "epoch", v->epoch, "event", body);
}

static int apply_result(view *v, const char *value, size_t len, view_delivery_fn fn, void *ctx) {
    json_t *ev = value ? json_loadb(value, len, 0, NULL) : NULL;
    const char *id = jstr(ev, "id"), *type = jstr(ev, "type");
    json_t *data = json_object_get(ev, "data");
    int n = -1;
    if (id && type && !strcmp(type, "callbus.result") && json_is_object(data)) {
        n = 0;
        if (seen_before(v, id)) {
            v->duplicates++;
        } else if (fn) {
            /* What streams carry of a CloudEvent: the envelope fields a client uses. */
            json_t *body = json_pack("{s:s, s:s, s:s?, s:s?, s:O}", "type", type, "id", id, "time", jstr(ev, "time"),
                                     "subject", jstr(ev, "subject"), "data", data);
            entry *op = sender_of(v, data);
            if (op) {
                deliver(v, &op->s, op->id, event_msg(v, for_operator(body)), fn, ctx);
                n++;
            }
            deliver(v, &v->site, NULL, event_msg(v, body), fn, ctx);
            n++;
        }
    }
    json_decref(ev);
    return n;
}

int view_apply(view *v, view_topic topic, const char *key, size_t keylen, const char *value, size_t len,
               view_delivery_fn fn, void *ctx) {
    int n;
    if (value && len > VIEW_MAX_RECORD_BYTES) n = -1;
    else if (topic == VIEW_TOPIC_RESULTS) n = apply_result(v, value, len, fn, ctx);
    else if (topic <= VIEW_TOPIC_QUEUES) n = apply_state(v, topic, key, keylen, value, len, fn, ctx);
    else n = -1;
    if (n < 0) v->ignored++;
    return n;
}

/* ---------- snapshot and resume ---------- */

/* What an operator the agent never published looks like: logged out. */
static json_t *blank_record(const char *id) {
    return json_pack("{s:s, s:n, s:n, s:b, s:[], s:s, s:n, s:b, s:n, s:s, s:n, s:n, s:[], s:n}", "operator_id", id,
                     "member_name", "interface", "logged_in", 0, "queues", "state", "logged_out", "state_since",
                     "paused", 0, "pause_reason", "device", "unknown", "offered", "call", "recent", "today");
}

static json_t *snapshot_part(view *v, uint64_t pos, view_role role, const char *reason) {
    json_t *m = json_pack("{s:s, s:s, s:I, s:s}", "type", "snapshot", "epoch", v->epoch, "pos", (json_int_t)pos,
                          "role", role == VIEW_SUPERVISOR ? "supervisor" : "operator");
    if (reason) {
        json_object_set_new(m, "recovered", json_false());
        json_object_set_new(m, "reason", json_string(reason));
    }
    return m;
}

static json_t *own_record(view *v, const char *id, view_role role) {
    entry *e = entry_find(v, VIEW_TOPIC_OPERATORS, id);
    if (e && e->data) return role == VIEW_SUPERVISOR ? json_incref(e->data) : json_incref(own_of(e));
    json_t *blank = blank_record(id ? id : "");
    if (role == VIEW_SUPERVISOR) return blank;
    json_t *own = for_operator(blank);
    json_decref(blank);
    return own;
}

static size_t records(const view *v, view_topic t) {
    if (t != VIEW_TOPIC_OPERATORS) return HASH_COUNT(v->tables[t]);
    size_t n = 0;
    for (const entry *e = v->tables[t]; e; e = e->hh.next) n += e->data != NULL;
    return n;
}

/* Every record of a table, in chunks: the i-th goes to part i / chunk. */
static void fill_parts(view *v, view_topic t, const char *field, json_t *parts) {
    size_t i = 0;
    for (entry *e = v->tables[t]; e; e = e->hh.next) {
        if (!e->data) continue;
        json_t *part = json_array_get(parts, i++ / VIEW_SNAPSHOT_CHUNK);
        json_array_append(json_object_get(part, field), site_of(e, t));
    }
}

static json_t *supervisor_snapshot(view *v, const char *id, const char *reason) {
    size_t nops = records(v, VIEW_TOPIC_OPERATORS), ncalls = records(v, VIEW_TOPIC_CALLS);
    size_t most = nops > ncalls ? nops : ncalls;
    size_t n = most ? (most + VIEW_SNAPSHOT_CHUNK - 1) / VIEW_SNAPSHOT_CHUNK : 1;
    json_t *parts = json_array();
    for (size_t k = 1; k <= n; k++) {
        json_t *m = snapshot_part(v, v->site.pos, VIEW_SUPERVISOR, reason);
        json_object_set_new(m, "part", json_integer((json_int_t)k));
        json_object_set_new(m, "parts", json_integer((json_int_t)n));
        if (k == 1) {
            json_object_set_new(m, "operator", own_record(v, id, VIEW_SUPERVISOR));
            json_t *queues = json_array();
            for (entry *e = v->tables[VIEW_TOPIC_QUEUES]; e; e = e->hh.next)
                json_array_append(queues, site_of(e, VIEW_TOPIC_QUEUES));
            json_object_set_new(m, "queues", queues);
        }
        json_object_set_new(m, "operators", json_array());
        json_object_set_new(m, "calls", json_array());
        json_array_append_new(parts, m);
    }
    fill_parts(v, VIEW_TOPIC_OPERATORS, "operators", parts);
    fill_parts(v, VIEW_TOPIC_CALLS, "calls", parts);
    return parts;
}

static json_t *snapshot(view *v, const char *id, view_role role, const char *reason) {
    if (role == VIEW_SUPERVISOR) return supervisor_snapshot(v, id, reason);
    entry *e = entry_find(v, VIEW_TOPIC_OPERATORS, id);
    json_t *m = snapshot_part(v, e ? e->s.pos : 0, VIEW_OPERATOR, reason);
    json_object_set_new(m, "operator", own_record(v, id, VIEW_OPERATOR));
    return json_pack("[o]", m);
}

json_t *view_snapshot(view *v, const char *operator_id, view_role role) {
    return snapshot(v, operator_id, role, NULL);
}

json_t *view_resume(view *v, const char *operator_id, view_role role, const char *epoch, uint64_t pos) {
    static const stream none;
    entry *e = entry_find(v, VIEW_TOPIC_OPERATORS, operator_id);
    const stream *s = role == VIEW_SUPERVISOR ? &v->site : (e ? &e->s : &none);
    if (!epoch || strcmp(epoch, v->epoch) != 0) return snapshot(v, operator_id, role, "epoch changed");
    if (pos > s->pos) return snapshot(v, operator_id, role, "unknown position");
    if (s->pos - pos > s->count) return snapshot(v, operator_id, role, "too old");
    json_t *events = json_array();
    for (uint64_t p = pos + 1; p <= s->pos; p++) json_array_append(events, s->ring[(p - 1) % v->cap]);
    return json_pack("[{s:s, s:s, s:I, s:b, s:o}]", "type", "resume", "epoch", v->epoch, "pos", (json_int_t)s->pos,
                     "recovered", 1, "events", events);
}

const json_t *view_operator(const view *v, const char *operator_id) {
    const entry *e = entry_find(v, VIEW_TOPIC_OPERATORS, operator_id);
    return e ? e->data : NULL;
}

/* ---------- lifecycle ---------- */

view *view_new(size_t history_per_stream, const char *epoch) {
    view *v = xcalloc(1, sizeof(*v));
    v->cap = history_per_stream;
    v->epoch = xstrdup(epoch ? epoch : "");
    v->seen_ring = xcalloc(VIEW_DEDUPE_WINDOW, sizeof(seen_id *));
    return v;
}

void view_free(view *v) {
    if (!v) return;
    for (int t = 0; t < 3; t++) {
        entry *e, *tmp;
        HASH_ITER(hh, v->tables[t], e, tmp) entry_del(v, (view_topic)t, e);
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
    out->operators = records(v, VIEW_TOPIC_OPERATORS);
    out->active_calls = records(v, VIEW_TOPIC_CALLS);
    out->queues = records(v, VIEW_TOPIC_QUEUES);
    out->streams = HASH_COUNT(v->tables[VIEW_TOPIC_OPERATORS]) + 1;
    out->history = v->site.count;
    for (const entry *e = v->tables[VIEW_TOPIC_OPERATORS]; e; e = e->hh.next) out->history += e->s.count;
    out->dedupe_ids = HASH_COUNT(v->seen);
    out->duplicates = v->duplicates;
    out->ignored = v->ignored;
}
