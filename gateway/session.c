/* session.c -- one WebSocket of callbus-gateway: authentication, the
 * per-connection limits, the output queue, and the protocol's messages
 * (docs/gateway-protocol.md). */
#include "gateway.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"

/* ---------- output ---------- */

static gw_out *out_new(const char *json, size_t len) {
    gw_out *o = xmalloc(sizeof(*o) + LWS_PRE + len);
    o->refs = 1;
    o->len = len;
    memcpy(o->buf + LWS_PRE, json, len);
    return o;
}

static void out_unref(gw_out *o) {
    if (o && --o->refs == 0) free(o);
}

static void queue_free(gw_session *s) {
    gw_qnode *n = s->qhead;
    while (n) {
        gw_qnode *next = n->next;
        out_unref(n->m);
        free(n);
        n = next;
    }
    s->qhead = s->qtail = NULL;
    s->qbytes = s->qsync = 0;
}

/* The frames of one writable turn leave in as few TCP segments as fit: in a
 * burst a supervisor's socket has dozens of small updates queued per turn,
 * and a segment each cost the gateway a transmit per update (on loopback
 * the receiver's processing too): a third of its CPU in bench_day's burst,
 * and the updates behind waited for it (docs/benchmarks.md, goal 4). */
static void cork(struct lws *wsi, int on) {
    int fd = lws_get_socket_fd(wsi);
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
}

static const char *who(const gw_session *s) { return s->authed ? s->id.operator_id : "-"; }

/* sync: part of the snapshot or resume a client gets after auth. Its size
 * is bounded by the view (keys, history) and it is all generated at once,
 * so it does not count against max_queue_kb: a supervisor of a large site
 * is never dropped for its snapshot, only for not reading live output. */
static void enqueue(gw_session *s, gw_out *o, int sync) {
    if (s->close_code || (!s->wsi && !s->socketless)) return;
    size_t max = (size_t)s->g->cfg->gateway.max_queue_kb * 1024;
    if (!sync && s->qbytes + o->len > max) {
        s->g->m.closed_slow++;
        log_warn("gateway: %s %s: not reading its messages (%zu bytes queued): dropped", s->peer, who(s),
                 s->qbytes);
        queue_free(s);
        gw_close(s, GW_CLOSE_OVER_LIMIT, "too slow: messages not read");
        if (s->wsi) lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 3);
        return;
    }
    gw_qnode *n = xmalloc(sizeof(*n));
    o->refs++;
    n->m = o;
    n->sync = sync;
    n->next = NULL;
    if (s->qtail) s->qtail->next = n;
    else s->qhead = n;
    s->qtail = n;
    if (sync) s->qsync += o->len;
    else s->qbytes += o->len;
    if (s->wsi) lws_callback_on_writable(s->wsi);
}

/* Returns the bytes queued. */
static size_t send_json(gw_session *s, json_t *msg, int sync) {
    char *txt = json_dumps(msg, JSON_COMPACT);
    if (!txt) return 0;
    size_t len = strlen(txt);
    gw_out *o = out_new(txt, len);
    free(txt);
    enqueue(s, o, sync);
    out_unref(o);
    return len;
}

void gw_send_json(gw_session *s, json_t *msg) { send_json(s, msg, 0); }

void gw_send_error(gw_session *s, const char *code, const char *message, json_t *id) {
    json_t *e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
    /* A message may quote the client (jansson's "near '...'" of bytes that
     * are not UTF-8): json_pack refuses it, and the answer must still go. */
    char safe[256];
    if (!e)
        e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message",
                      log_safe_str(safe, sizeof(safe), message));
    /* Echoed so the client can match the answer; an object or array the
     * client sent as id is not worth sending back. */
    if (json_is_string(id) || json_is_number(id)) json_object_set(e, "id", id);
    gw_send_json(s, e);
    json_decref(e);
}

void gw_close(gw_session *s, int code, const char *reason) {
    if (s->close_code) return;
    s->close_code = code;
    snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
    if (s->wsi) lws_callback_on_writable(s->wsi);
}

void gw_deliver(void *ctx, const char *operator_id, json_t *msg) {
    gw *g = ctx;
    g->m.view_deliveries++;
    gw_session *s = gw_route_first(g, operator_id);
    if (!s) return;
    /* One serialisation shared by every recipient. */
    char *txt = json_dumps(msg, JSON_COMPACT);
    if (!txt) return;
    gw_out *o = out_new(txt, strlen(txt));
    free(txt);
    for (; s; s = s->rnext)
        if (!s->close_code) enqueue(s, o, 0);
    out_unref(o);
}

/* Not a stream message: only the sessions of that one identity, operator
 * or supervisor, get it. */
static void send_to_identity(void *ctx, const char *operator_id, json_t *msg) {
    gw *g = ctx;
    gw_session *s = gw_route_first(g, operator_id);
    if (!s) s = gw_route_first(g, NULL);
    for (; s; s = s->rnext)
        if (!s->close_code && !strcmp(s->id.operator_id, operator_id)) gw_send_json(s, msg);
}

static json_t *status_msg(gw *g) {
    json_t *m = json_pack("{s:s, s:s}", "type", "status", "kafka", g->kafka_down ? "down" : "up");
    if (g->kafka_down) json_object_set_new(m, "since", json_real(g->kafka_down_since));
    return m;
}

static void kafka_state(void *ctx, int up) {
    gw *g = ctx;
    if (up == !g->kafka_down) return;
    g->kafka_down = !up;
    g->kafka_down_since = up ? 0 : wall_now();
    if (up) log_info("gateway: the site's Kafka is reachable again: live updates resume");
    else log_warn("gateway: the site's Kafka is unreachable: operators are told their updates are delayed");
    json_t *m = status_msg(g);
    for (gw_session *s = g->sessions; s; s = s->next)
        if (s->authed && !s->close_code) gw_send_json(s, m);
    json_decref(m);
}

gw_clients gw_clients_of(gw *g) {
    return (gw_clients){.ctx = g, .stream = gw_deliver, .to_identity = send_to_identity, .kafka_state = kafka_state};
}

/* ---------- admission: sessions that have not authenticated yet ----------
 *
 * Anyone on the LAN can open a socket; only a token makes it an operator.
 * So the sessions waiting for their auth (5 s at most) are counted apart
 * from the operators': overall (max_unauthed) and per client address
 * (max_unauthed_per_address), and max_connections counts authenticated
 * sessions only. A host that keeps reconnecting fills its own quota, not
 * the operators' room. */

const char *gw_admit(gw *g, gw_session *s) {
    const callbus_config *c = g->cfg;
    if (g->nauthed >= (size_t)c->gateway.max_connections) {
        g->m.refused_max_connections++;
        return "too many connections";
    }
    gw_addr *a;
    HASH_FIND_STR(g->unauthed_by_addr, s->peer, a);
    const char *why = NULL;
    if (g->nunauthed >= (size_t)c->gateway.max_unauthed) why = "too many unauthenticated connections";
    else if (a && c->gateway.max_unauthed_per_address && a->count >= c->gateway.max_unauthed_per_address)
        why = "too many unauthenticated connections from this address";
    if (why) {
        g->m.refused_unauthed++;
        return why;
    }
    if (!a) {
        a = xcalloc(1, sizeof(*a));
        snprintf(a->addr, sizeof(a->addr), "%s", s->peer);
        HASH_ADD_STR(g->unauthed_by_addr, addr, a);
    }
    a->count++;
    g->nunauthed++;
    s->unauthed = a;
    return NULL;
}

/* Authenticated or gone: no longer waiting for its auth. */
static void unauthed_release(gw *g, gw_session *s) {
    gw_addr *a = s->unauthed;
    if (!a) return;
    s->unauthed = NULL;
    g->nunauthed--;
    if (--a->count == 0) {
        HASH_DEL(g->unauthed_by_addr, a);
        free(a);
    }
}

void gw_unauthed_free(gw *g) {
    gw_addr *a, *tmp;
    HASH_ITER(hh, g->unauthed_by_addr, a, tmp) {
        HASH_DEL(g->unauthed_by_addr, a);
        free(a);
    }
    g->nunauthed = 0;
}

/* ---------- protocol ---------- */

static const char *role_name(auth_role r) { return r == ROLE_SUPERVISOR ? "supervisor" : "operator"; }

static void refuse_token(gw_session *s, auth_result r, const char *what) {
    s->g->m.auth_failed++;
    log_warn("gateway: %s %s: %s refused: %s", s->peer, who(s), what, auth_result_text(r));
    gw_close(s, auth_close_code(r), auth_result_text(r));
}

static void on_auth(gw_session *s, json_t *msg) {
    gw *g = s->g;
    const char *token = json_string_value(json_object_get(msg, "token"));
    auth_identity id;
    auth_result r = token ? auth_verify(&g->auth, token, wall_now(), &id) : AUTH_MALFORMED;
    if (r != AUTH_OK) {
        refuse_token(s, r, "token");
        return;
    }
    if (g->nauthed >= (size_t)g->cfg->gateway.max_connections) {
        g->m.refused_max_connections++;
        log_warn("gateway: %s: %d authenticated connections already: %s refused", s->peer,
                 g->cfg->gateway.max_connections, id.operator_id);
        gw_close(s, GW_CLOSE_OVER_LIMIT, "too many connections");
        return;
    }
    unauthed_release(g, s);
    s->id = id;
    s->authed = 1;
    g->nauthed++;
    gw_route_add(g, s);
    g->m.auth_ok++;
    log_info("gateway: %s authenticated as %s (%s)", s->peer, id.operator_id, role_name(id.role));
    /* kafka: whether the snapshot that follows is live or may be stale. */
    json_t *w = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s}", "type", "welcome", "protocol", GW_PROTOCOL,
                          "operator_id", id.operator_id, "role", role_name(id.role), "site", id.site,
                          "expires", id.expires, "kafka", g->kafka_down ? "down" : "up");
    gw_send_json(s, w);
    json_decref(w);
    view_role vr = id.role == ROLE_SUPERVISOR ? VIEW_SUPERVISOR : VIEW_OPERATOR;
    json_t *resume = json_object_get(msg, "resume");
    json_t *sync;
    if (json_is_object(resume)) {
        const char *epoch = json_string_value(json_object_get(resume, "epoch"));
        json_t *pos = json_object_get(resume, "pos");
        uint64_t p = json_is_integer(pos) && json_integer_value(pos) >= 0 ? (uint64_t)json_integer_value(pos) : 0;
        sync = view_resume(g->view, id.operator_id, vr, epoch ? epoch : "", p);
    } else {
        sync = view_snapshot(g->view, id.operator_id, vr);
    }
    size_t i, bytes = 0;
    json_t *m;
    json_array_foreach(sync, i, m) bytes += send_json(s, m, 1);
    log_debug("gateway: %s %s: %s in %zu message(s), %zu bytes", s->peer, id.operator_id,
              json_string_value(json_object_get(json_array_get(sync, 0), "type")), json_array_size(sync), bytes);
    json_decref(sync);
}

/* commands_out.c decides and produces; the answer is sent from here. */
static void on_command(gw_session *s, json_t *msg) {
    json_t *cid = json_object_get(msg, "id");
    gw_command_outcome o = gw_command(s->g->cout, &s->id, s->peer, msg);
    if (o.error) {
        gw_send_error(s, o.error, o.message, o.echo_id ? cid : NULL);
        return;
    }
    json_t *ack = json_pack("{s:s, s:s, s:s}", "type", "command_ack", "command_id", o.command_id, "command",
                            o.command);
    if (cid) json_object_set(ack, "id", cid);
    gw_send_json(s, ack);
    json_decref(ack);
    gw_commands_out_poll(s->g->cout);  /* after the ack: a failure report it serves comes second */
}

static void on_renew(gw_session *s, json_t *msg) {
    const char *token = json_string_value(json_object_get(msg, "token"));
    auth_identity id;
    auth_result r = token ? auth_renew(&s->g->auth, &s->id, token, wall_now(), &id) : AUTH_MALFORMED;
    if (r != AUTH_OK) {
        refuse_token(s, r, "renewal");
        return;
    }
    int role_changed = s->id.role != id.role;
    s->id = id;
    if (role_changed) gw_route_add(s->g, s);
    json_t *w = json_pack("{s:s, s:s, s:s, s:f}", "type", "renewed", "operator_id", id.operator_id,
                          "role", role_name(id.role), "expires", id.expires);
    gw_send_json(s, w);
    json_decref(w);
}

/* Token bucket: max_msgs_per_s per second, bursts of as many. A client
 * that keeps sending past it for a second's worth of messages is dropped. */
static int rate_ok(gw_session *s, double mono) {
    double rate = s->g->cfg->gateway.max_msgs_per_s;
    s->tokens += (mono - s->refill_at) * rate;
    if (s->tokens > rate) s->tokens = rate;
    s->refill_at = mono;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        if (s->strikes && s->tokens >= rate / 2) s->strikes = 0;
        return 1;
    }
    s->g->m.rate_limited_msgs++;
    if (++s->strikes >= (int)rate) {
        s->g->m.closed_rate_limited++;
        log_warn("gateway: %s %s: flooding (over %d messages/s): closed", s->peer, who(s),
                 s->g->cfg->gateway.max_msgs_per_s);
        gw_send_error(s, "rate_limited", "too many messages: closing", NULL);
        gw_close(s, GW_CLOSE_OVER_LIMIT, "too many messages");
    } else if (s->strikes == 1 || s->strikes % 8 == 0) {
        gw_send_error(s, "rate_limited", "too many messages; this one was dropped", NULL);
    }
    return 0;
}

void gw_handle_message(gw_session *s, const char *buf, size_t len) {
    gw *g = s->g;
    double mono = mono_now();
    g->m.msgs_in++;
    s->last_rx = mono;
    if (s->close_code) return;
    if (!rate_ok(s, mono)) return;
    json_error_t jerr;
    json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!s->authed) {
        if (!type || strcmp(type, "auth")) {
            g->m.protocol_errors++;
            log_warn("gateway: %s: first message is not auth: closed", s->peer);
            gw_close(s, GW_CLOSE_PROTOCOL, "first message must be auth");
        } else {
            on_auth(s, msg);
        }
        json_decref(msg);
        return;
    }
    if (!json_is_object(msg)) {
        g->m.bad_json++;
        gw_send_error(s, "bad_json", msg ? "a message is one JSON object" : jerr.text, NULL);
    } else if (!type) {
        g->m.bad_json++;
        gw_send_error(s, "bad_json", "a message needs a string \"type\"", json_object_get(msg, "id"));
    } else if (!strcmp(type, "ping")) {
        json_t *p = json_pack("{s:s}", "type", "pong");
        gw_send_json(s, p);
        json_decref(p);
    } else if (!strcmp(type, "command")) {
        on_command(s, msg);
    } else if (!strcmp(type, "renew")) {
        on_renew(s, msg);
    } else if (!strcmp(type, "auth")) {
        gw_send_error(s, "invalid", "already authenticated (use renew for a new token)", NULL);
    } else {
        g->m.unknown_type++;
        gw_send_error(s, "unknown_type", "unknown message type", json_object_get(msg, "id"));
    }
    json_decref(msg);
}

void gw_sessions_sweep(gw *g, double mono, double now) {
    int idle = g->cfg->gateway.idle_timeout_s;
    for (gw_session *s = g->sessions; s; s = s->next) {
        if (s->close_code) continue;
        if (!s->authed && mono - s->connected_at > GW_AUTH_TIMEOUT_S) {
            g->m.auth_timeouts++;
            log_warn("gateway: %s: no auth within %.0f s: closed", s->peer, GW_AUTH_TIMEOUT_S);
            gw_close(s, GW_CLOSE_PROTOCOL, "authentication timeout");
        } else if (mono - s->last_rx > idle) {
            g->m.closed_idle++;
            log_info("gateway: %s %s: idle for %d s: closed", s->peer, who(s), idle);
            gw_close(s, GW_CLOSE_IDLE, "idle timeout");
        } else if (s->authed && now > s->id.expires + g->auth.leeway_s) {
            g->m.closed_token_expired++;
            log_info("gateway: %s %s: token expired: closed", s->peer, who(s));
            gw_close(s, AUTH_CLOSE_EXPIRED, "token expired");
        }
    }
}

void gw_session_gone(gw_session *s) {
    gw *g = s->g;
    if (s->linked) {
        if (s->prev) s->prev->next = s->next;
        else g->sessions = s->next;
        if (s->next) s->next->prev = s->prev;
        s->linked = 0;
        g->nsessions--;
    }
    gw_route_del(g, s);
    unauthed_release(g, s);
    if (s->authed) g->nauthed--;
    s->authed = 0;
    queue_free(s);
    free(s->rx);
    s->rx = NULL;
    s->wsi = NULL;
}

/* ---------- lws callback ---------- */

static int origin_allowed(gw *g, struct lws *wsi) {
    if (!g->cfg->gateway.origin_count) return 1;
    char origin[256] = "";
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0) return 0;
    for (size_t i = 0; i < g->cfg->gateway.origin_count; i++)
        if (!strcmp(g->cfg->gateway.origins[i], origin)) return 1;
    return 0;
}

int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
    gw_session *s = user;
    gw *g = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64] = "";
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws")) return 1;
        if (!s) return 0;
        if (!origin_allowed(g, wsi)) s->refuse = GW_CLOSE_ORIGIN;
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        s->wsi = wsi;
        s->g = g;
        s->connected_at = s->last_rx = s->refill_at = mono_now();
        s->tokens = g->cfg->gateway.max_msgs_per_s;
        if (!lws_get_peer_simple(wsi, s->peer, sizeof(s->peer))) snprintf(s->peer, sizeof(s->peer), "?");
        s->next = g->sessions;
        if (g->sessions) g->sessions->prev = s;
        g->sessions = s;
        s->linked = 1;
        g->nsessions++;
        g->m.connections_total++;
        const char *why;
        if (s->refuse == GW_CLOSE_ORIGIN) {
            g->m.refused_origin++;
            log_warn("gateway: %s: origin not allowed: refused", s->peer);
            gw_close(s, GW_CLOSE_ORIGIN, "origin not allowed");
        } else if ((why = gw_admit(g, s))) {
            log_warn("gateway: %s: %s: refused", s->peer, why);
            gw_close(s, GW_CLOSE_OVER_LIMIT, why);
        } else {
            log_info("gateway: %s: connected", s->peer);
        }
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        if (!s->g) return -1;
        size_t max = (size_t)g->cfg->gateway.max_frame;
        size_t total = s->rx_len + len;
        if (lws_is_first_fragment(wsi)) total += lws_remaining_packet_payload(wsi);
        if (total > max) {
            g->m.closed_frame_too_big++;
            log_warn("gateway: %s %s: message over %zu bytes: closed", s->peer, who(s), max);
            s->close_code = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
            snprintf(s->close_reason, sizeof(s->close_reason), "message too large");
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"message too large", 17);
            return -1;
        }
        if (s->rx_len + len > s->rx_cap) {
            size_t cap = s->rx_cap ? s->rx_cap : 1024;
            while (cap < s->rx_len + len) cap *= 2;
            s->rx = xrealloc(s->rx, cap);
            s->rx_cap = cap;
        }
        memcpy(s->rx + s->rx_len, in, len);
        s->rx_len += len;
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
        gw_handle_message(s, s->rx, s->rx_len);
        s->rx_len = 0;
        if (s->rx_cap > 16384) {
            free(s->rx);
            s->rx = NULL;
            s->rx_cap = 0;
        }
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!s->g) return -1;
        if (s->qhead) {
            int many = s->qhead->next != NULL, failed = 0;
            if (many) cork(wsi, 1);
            /* As many as the socket takes now: one per callback would let the
             * queue of a client that reads fine grow during a burst. */
            for (int i = 0; s->qhead && i < GW_WRITES_PER_CALLBACK && !failed; i++) {
                if (i && lws_send_pipe_choked(wsi)) break;
                gw_qnode *n = s->qhead;
                failed = lws_write(wsi, n->m->buf + LWS_PRE, n->m->len, LWS_WRITE_TEXT) < 0;
                s->qhead = n->next;
                if (!s->qhead) s->qtail = NULL;
                if (n->sync) s->qsync -= n->m->len;
                else s->qbytes -= n->m->len;
                out_unref(n->m);
                free(n);
                if (!failed) g->m.msgs_out++;
            }
            if (many) cork(wsi, 0);
            if (failed) return -1;
            if (s->qhead || s->close_code) lws_callback_on_writable(wsi);
            return 0;
        }
        if (s->close_code) {
            lws_close_reason(wsi, (enum lws_close_status)s->close_code, (unsigned char *)s->close_reason,
                             strlen(s->close_reason));
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_CLOSED: {
        if (!s->linked) return 0;
        if (s->close_code)
            log_info("gateway: %s %s: closed (%d %s)", s->peer, who(s), s->close_code, s->close_reason);
        else
            log_info("gateway: %s %s: disconnected", s->peer, who(s));
        gw_session_gone(s);
        return 0;
    }
    default: break;
    }
    return 0;
}
