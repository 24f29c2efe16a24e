/* operators.c -- operator and queue-member state (the operator half of the
 * call model, see callmodel.h).
 *
 * Asterisk reports queue membership per (member, queue) and device state per
 * member. We keep both: pause and login are per queue (an operator can be
 * paused in one queue and not in another), the activity state (ready,
 * ringing, busy, unavailable, or paused everywhere) is per operator.
 * Events are emitted only when something changes, because Asterisk repeats
 * QueueMemberStatus once per queue the member belongs to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include "callmodel.h"

typedef enum {
    ST_UNKNOWN, ST_READY, ST_PAUSED, ST_RINGING, ST_BUSY, ST_UNAVAILABLE
} op_state;

static const char *state_type[] = {
    NULL, "callbus.operator.ready", "callbus.operator.paused", "callbus.operator.ringing",
    "callbus.operator.busy", "callbus.operator.unavailable"
};

typedef struct membership {
    char *queue;
    int paused;
    char *reason;
    int announced;   /* logged_in was emitted for it */
    UT_hash_handle hh;
} membership;

typedef struct op_rec {
    char *id;
    char *interface;
    char *member_name;
    int status;   /* AST_DEVICE_*, -1 while unknown */
    int incall;
    op_state state;  /* last announced */
    membership *members;
    UT_hash_handle hh;
} op_rec;

/* Interface (member Interface, StateInterface, mapped interface) -> operator. */
typedef struct iface_ref {
    char *interface;
    op_rec *op;
    UT_hash_handle hh;
} iface_ref;

/* One QueueMember item of a resync, applied at resync end. */
typedef struct member_item {
    char *interface, *state_interface, *name, *queue, *reason;
    int paused, status, incall;
    struct member_item *next;
} member_item;

struct cm_ops {
    const identity_map *ids;
    cm_emit_fn emit;
    void *ctx;
    op_rec *ops;
    iface_ref *ifaces;
    member_item *items;
    int resyncing;
};

cm_ops *cm_ops_new(const identity_map *ids, cm_emit_fn emit, void *ctx) {
    cm_ops *ops = calloc(1, sizeof(*ops));
    if (!ops) return NULL;
    ops->ids = ids;
    ops->emit = emit;
    ops->ctx = ctx;
    return ops;
}

static void membership_free(membership *m) {
    free(m->queue);
    free(m->reason);
    free(m);
}

static void items_free(cm_ops *ops) {
    member_item *it = ops->items;
    while (it) {
        member_item *next = it->next;
        free(it->interface);
        free(it->state_interface);
        free(it->name);
        free(it->queue);
        free(it->reason);
        free(it);
        it = next;
    }
    ops->items = NULL;
}

void cm_ops_free(cm_ops *ops) {
    if (!ops) return;
    iface_ref *r, *rtmp;
    HASH_ITER(hh, ops->ifaces, r, rtmp) {
        HASH_DEL(ops->ifaces, r);
        free(r->interface);
        free(r);
    }
    op_rec *o, *otmp;
    HASH_ITER(hh, ops->ops, o, otmp) {
        membership *m, *mtmp;
        HASH_ITER(hh, o->members, m, mtmp) {
            HASH_DEL(o->members, m);
            membership_free(m);
        }
        HASH_DEL(ops->ops, o);
        free(o->id);
        free(o->interface);
        free(o->member_name);
        free(o);
    }
    items_free(ops);
    free(ops);
}

/* "Local/op101@phones/n" is the same device as "Local/op101@phones": the
 * Local channel options after the second '/' never appear in channel names. */
static char *normalise_interface(const char *interface) {
    if (strncasecmp(interface, "Local/", 6) == 0) {
        const char *slash = strchr(interface + 6, '/');
        if (slash) return strndup(interface, (size_t)(slash - interface));
    }
    return strdup(interface);
}

static void index_interface(cm_ops *ops, const char *interface, op_rec *op) {
    if (!interface || !*interface) return;
    char *norm = normalise_interface(interface);
    if (!norm) return;
    iface_ref *r = NULL;
    HASH_FIND_STR(ops->ifaces, norm, r);
    if (r) {
        r->op = op;
        free(norm);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        free(norm);
        return;
    }
    r->interface = norm;
    r->op = op;
    HASH_ADD_KEYPTR(hh, ops->ifaces, r->interface, strlen(r->interface), r);
}

static op_rec *find_by_interface(cm_ops *ops, const char *interface) {
    if (!interface || !*interface) return NULL;
    char *norm = normalise_interface(interface);
    if (!norm) return NULL;
    iface_ref *r = NULL;
    HASH_FIND_STR(ops->ifaces, norm, r);
    free(norm);
    return r ? r->op : NULL;
}

static void set_str(char **dst, const char *src) {
    if (!src || !*src) return;
    if (*dst && strcmp(*dst, src) == 0) return;
    char *copy = strdup(src);
    if (!copy) return;
    free(*dst);
    *dst = copy;
}

/* Find or create the operator behind interface. */
static op_rec *learn(cm_ops *ops, const char *interface, const char *member_name) {
    if (!interface || !*interface) return NULL;
    op_rec *op = find_by_interface(ops, interface);
    if (!op) {
        char *norm = normalise_interface(interface);
        char *id = norm ? identity_operator_of_interface(ops->ids, norm) : NULL;
        if (!id) {
            free(norm);
            return NULL;
        }
        HASH_FIND_STR(ops->ops, id, op);
        if (!op) {
            op = calloc(1, sizeof(*op));
            if (!op) {
                free(id);
                free(norm);
                return NULL;
            }
            op->id = id;
            op->interface = norm;
            op->status = -1;
            HASH_ADD_KEYPTR(hh, ops->ops, op->id, strlen(op->id), op);
            const char *mapped = identity_map_name(ops->ids, norm);
            if (mapped) set_str(&op->member_name, mapped);
        } else {
            free(id);
            free(norm);
        }
        index_interface(ops, interface, op);
    }
    set_str(&op->member_name, member_name);
    return op;
}

const char *cm_ops_learn(cm_ops *ops, const char *interface, const char *member_name) {
    op_rec *op = learn(ops, interface, member_name);
    return op ? op->id : NULL;
}

const char *cm_ops_operator_of_channel(cm_ops *ops, const char *channel) {
    char *iface = identity_interface_of_channel(channel);
    if (!iface) return NULL;
    op_rec *op = find_by_interface(ops, iface);
    if (!op && identity_map_has(ops->ids, iface)) op = learn(ops, iface, NULL);
    free(iface);
    return op ? op->id : NULL;
}

static void emit_op(cm_ops *ops, op_rec *op, const char *type, const char *queue,
                    const char *reason, double time) {
    json_t *d = json_object();
    json_object_set_new(d, "operator_id", json_string(op->id));
    if (op->interface) json_object_set_new(d, "interface", json_string(op->interface));
    if (op->member_name) json_object_set_new(d, "member_name", json_string(op->member_name));
    if (queue) json_object_set_new(d, "queue", json_string(queue));
    if (strcmp(type, "callbus.operator.paused") == 0)
        json_object_set_new(d, "reason", json_string(reason ? reason : ""));
    if (op->status >= 0) json_object_set_new(d, "device_status", json_integer(op->status));
    ops->emit(ops->ctx, CM_TOPIC_OPERATORS, type, op->id, time, d);
}

static int device_idle(const op_rec *op) {
    return !op->incall && (op->status <= 1);
}

static op_state compute_state(const op_rec *op) {
    switch (op->status) {
    case 4: case 5: return ST_UNAVAILABLE;
    case 6: case 7: return ST_RINGING;
    case 2: case 3: case 8: return ST_BUSY;
    default: break;
    }
    if (op->incall) return ST_BUSY;
    if (!op->members) return ST_READY;
    membership *m, *tmp;
    HASH_ITER(hh, op->members, m, tmp) if (!m->paused) return ST_READY;
    return ST_PAUSED;
}

/* Announce the operator's activity state if it changed, unless the event
 * just announced it per queue (announced == the state's event type). */
static void update_state(cm_ops *ops, op_rec *op, const char *announced, double time) {
    op_state s = compute_state(op);
    if (s == op->state) return;
    op->state = s;
    if (announced && strcmp(announced, state_type[s]) == 0) return;
    emit_op(ops, op, state_type[s], NULL, NULL, time);
}

typedef struct member_update {
    const char *queue;
    int paused;       /* -1: not given */
    const char *reason;
    int status;       /* -1: not given */
    int incall;       /* -1: not given */
} member_update;

static int int_or(const char *s, int def) {
    if (!s || !*s) return def;
    char *end;
    long v = strtol(s, &end, 10);
    return end == s ? def : (int)v;
}

/* Apply one member snapshot; login announces a membership not announced
 * yet (QueueMemberAdded, resync), otherwise it is learnt silently: static
 * members never get a QueueMemberAdded, and the first QueueStatus after a
 * connect (login) announces them, even when their QueueMemberStatus came
 * before its reply. */
static void apply_member(cm_ops *ops, op_rec *op, const member_update *u, int login, double time) {
    const char *announced = NULL;
    membership *m = NULL;
    if (u->queue && *u->queue) {
        HASH_FIND_STR(op->members, u->queue, m);
        int is_new = 0;
        if (!m) {
            m = calloc(1, sizeof(*m));
            if (!m || !(m->queue = strdup(u->queue))) {
                free(m);
                return;
            }
            HASH_ADD_KEYPTR(hh, op->members, m->queue, strlen(m->queue), m);
            is_new = 1;
        }
        if (login && !m->announced) {
            m->announced = 1;
            emit_op(ops, op, "callbus.operator.logged_in", m->queue, NULL, time);
        }
        if (u->status >= 0) op->status = u->status;
        if (u->incall >= 0) op->incall = u->incall;
        if (u->paused >= 0) {
            const char *reason = u->reason ? u->reason : "";
            int changed = is_new ? u->paused : (m->paused != u->paused);
            if (u->paused && !changed && strcmp(m->reason ? m->reason : "", reason) != 0) changed = 1;
            m->paused = u->paused;
            free(m->reason);
            m->reason = u->paused ? strdup(reason) : NULL;
            if (changed && u->paused) {
                announced = "callbus.operator.paused";
                emit_op(ops, op, announced, m->queue, reason, time);
            } else if (changed && device_idle(op)) {
                announced = "callbus.operator.ready";
                emit_op(ops, op, announced, m->queue, NULL, time);
            }
        }
    } else {
        if (u->status >= 0) op->status = u->status;
        if (u->incall >= 0) op->incall = u->incall;
    }
    update_state(ops, op, announced, time);
}

static void remove_member(cm_ops *ops, op_rec *op, const char *queue, double time) {
    membership *m = NULL;
    if (queue) HASH_FIND_STR(op->members, queue, m);
    emit_op(ops, op, "callbus.operator.logged_out", queue, NULL, time);
    if (m) {
        HASH_DEL(op->members, m);
        membership_free(m);
    }
}

static member_update update_of(const ami_msg *m) {
    member_update u;
    u.queue = ami_get(m, "Queue");
    u.paused = int_or(ami_get(m, "Paused"), -1);
    u.reason = ami_get(m, "PausedReason");
    if (!u.reason) u.reason = ami_get(m, "Reason");
    u.status = int_or(ami_get(m, "Status"), -1);
    u.incall = int_or(ami_get(m, "InCall"), -1);
    return u;
}

static op_rec *member_of(cm_ops *ops, const ami_msg *m) {
    const char *iface = ami_get(m, "Interface");
    if (!iface || !*iface) iface = ami_get(m, "Location");
    const char *name = ami_get(m, "MemberName");
    if (!name) name = ami_get(m, "Name");
    op_rec *op = learn(ops, iface, name);
    if (op) index_interface(ops, ami_get(m, "StateInterface"), op);
    return op;
}

/* The queue rings or connects a member: its device says so a moment later
 * (or never, for some channel types), so take the queue's word now. */
static void agent_activity(cm_ops *ops, const ami_msg *m, int status, double time) {
    op_rec *op = learn(ops, ami_get(m, "Interface"), ami_get(m, "MemberName"));
    if (!op) return;
    member_update u = { NULL, -1, NULL, status, -1 };
    apply_member(ops, op, &u, 0, time);
}

int cm_ops_on_event(cm_ops *ops, const char *event, const ami_msg *m, double time) {
    if (strncasecmp(event, "QueueMember", 11) == 0) {
        op_rec *op = member_of(ops, m);
        if (!op) return 1;
        const char *what = event + 11;
        member_update u = update_of(m);
        if (strcasecmp(what, "Removed") == 0) {
            remove_member(ops, op, u.queue, time);
        } else {
            apply_member(ops, op, &u, strcasecmp(what, "Added") == 0, time);
        }
        return 1;
    }
    if (strcasecmp(event, "AgentCalled") == 0) {
        agent_activity(ops, m, 6, time);
    } else if (strcasecmp(event, "AgentConnect") == 0) {
        agent_activity(ops, m, 2, time);
    }
    return 0;
}

void cm_ops_resync_begin(cm_ops *ops) {
    items_free(ops);
    ops->resyncing = 1;
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void cm_ops_resync_item(cm_ops *ops, const ami_msg *item) {
    const char *event = ami_get(item, "Event");
    if (!ops->resyncing || !event || strcasecmp(event, "QueueMember") != 0) return;
    const char *iface = ami_get(item, "Location");
    if (!iface || !*iface) iface = ami_get(item, "Interface");
    const char *queue = ami_get(item, "Queue");
    if (!iface || !*iface || !queue || !*queue) return;
    member_item *it = calloc(1, sizeof(*it));
    if (!it) return;
    member_update u = update_of(item);
    it->interface = strdup(iface);
    it->state_interface = dup_or_null(ami_get(item, "StateInterface"));
    it->name = dup_or_null(ami_get(item, "Name"));
    if (!it->name) it->name = dup_or_null(ami_get(item, "MemberName"));
    it->queue = strdup(queue);
    it->reason = dup_or_null(u.reason);
    it->paused = u.paused;
    it->status = u.status;
    it->incall = u.incall;
    it->next = ops->items;
    ops->items = it;
}

/* (operator, queue) pairs the resync listed, for an O(1) membership check. */
typedef struct listed_key {
    char *key;
    UT_hash_handle hh;
} listed_key;

static char *pair_key(const char *op_id, const char *queue) {
    char *key = NULL;
    if (asprintf(&key, "%s\x1f%s", op_id, queue) < 0) return NULL;
    return key;
}

static listed_key *listed_set(cm_ops *ops) {
    listed_key *set = NULL;
    for (member_item *it = ops->items; it; it = it->next) {
        op_rec *op = find_by_interface(ops, it->interface);
        char *key = op ? pair_key(op->id, it->queue) : NULL;
        if (!key) continue;
        listed_key *k = NULL;
        HASH_FIND_STR(set, key, k);
        if (k || !(k = calloc(1, sizeof(*k)))) {
            free(key);
            continue;
        }
        k->key = key;
        HASH_ADD_KEYPTR(hh, set, k->key, strlen(k->key), k);
    }
    return set;
}

static int is_listed(listed_key *set, const op_rec *op, const char *queue) {
    char *key = pair_key(op->id, queue);
    if (!key) return 1;
    listed_key *k = NULL;
    HASH_FIND_STR(set, key, k);
    free(key);
    return k != NULL;
}

static void listed_free(listed_key *set) {
    listed_key *k, *tmp;
    HASH_ITER(hh, set, k, tmp) {
        HASH_DEL(set, k);
        free(k->key);
        free(k);
    }
}

/* Memberships the lists no longer show were removed while we were away;
 * new ones were added. Without any QueueMember item we learnt nothing (the
 * QueueStatus may have failed), so nobody is logged out. */
void cm_ops_resync_end(cm_ops *ops, double now) {
    if (!ops->resyncing) return;
    ops->resyncing = 0;
    if (!ops->items) return;
    /* Learn first, so listed_set() can resolve every item's interface. */
    for (member_item *it = ops->items; it; it = it->next) {
        op_rec *op = learn(ops, it->interface, it->name);
        if (op) index_interface(ops, it->state_interface, op);
    }
    listed_key *set = listed_set(ops);
    op_rec *op, *otmp;
    HASH_ITER(hh, ops->ops, op, otmp) {
        membership *m, *mtmp;
        HASH_ITER(hh, op->members, m, mtmp) {
            if (!is_listed(set, op, m->queue)) remove_member(ops, op, m->queue, now);
        }
    }
    listed_free(set);
    /* Items were prepended: apply them in list order. */
    member_item *rev = NULL;
    while (ops->items) {
        member_item *it = ops->items;
        ops->items = it->next;
        it->next = rev;
        rev = it;
    }
    ops->items = rev;
    for (member_item *it = ops->items; it; it = it->next) {
        op_rec *o = learn(ops, it->interface, it->name);
        if (!o) continue;
        member_update u = { it->queue, it->paused, it->reason, it->status, it->incall };
        apply_member(ops, o, &u, 1, now);
    }
    items_free(ops);
}
