/* session.c -- one WebSocket of callbus-gateway: authentication, the
 * per-connection limits, the output queue, and the protocol's messages
 * (docs/gateway-protocol.md). */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---------- output ---------- */

static gw_out *out_new(const char *json, size_t len) {
    gw_out *o = malloc(sizeof(*o) + LWS_PRE + len);
    if (!o) return NULL;
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
    s->qbytes = 0;
}

static const char *who(const gw_session *s) { return s->authed ? s->id.operator_id : "-"; }

static void enqueue(gw_session *s, gw_out *o) {
    if (s->close_code || (!s->wsi && !s->socketless)) return;
    size_t max = (size_t)s->g->cfg->gateway.max_queue_kb * 1024;
    if (s->qbytes + o->len > max) {
        s->g->m.closed_slow++;
        log_warn("gateway: %s %s: not reading its messages (%zu bytes queued): dropped", s->peer, who(s),
                 s->qbytes);
        queue_free(s);
        gw_close(s, 4008, "too slow: messages not read");
        if (s->wsi) lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 3);
        return;
    }
    gw_qnode *n = malloc(sizeof(*n));
    if (!n) return;
    o->refs++;
    n->m = o;
    n->next = NULL;
    if (s->qtail) s->qtail->next = n;
    else s->qhead = n;
    s->qtail = n;
    s->qbytes += o->len;
    if (s->wsi) lws_callback_on_writable(s->wsi);
}

void gw_send_json(gw_session *s, json_t *msg) {
    char *txt = json_dumps(msg, JSON_COMPACT);
    if (!txt) return;
    gw_out *o = out_new(txt, strlen(txt));
    free(txt);
    if (!o) return;
    enqueue(s, o);
    out_unref(o);
}

void gw_send_error(gw_session *s, const char *code, const char *message, json_t *id) {
    json_t *e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
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
    if (!o) return;
    for (; s; s = s->rnext)
        if (!s->close_code) enqueue(s, o);
    out_unref(o);
}

/* Not a stream message: only the sessions of that one identity, operator
 * or supervisor, get it. */
void gw_send_to(gw *g, const char *operator_id, json_t *msg) {
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

void gw_kafka_state(gw *g, int up) {
    if (up == !g->kafka_down) return;
    g->kafka_down = !up;
    g->kafka_down_since = up ? 0 : gw_now();
    if (up) log_info("gateway: the site's Kafka is reachable again: live updates resume");
    else log_warn("gateway: the site's Kafka is unreachable: operators are told their updates are delayed");
    json_t *m = status_msg(g);
    for (gw_session *s = g->sessions; s; s = s->next)
        if (s->authed && !s->close_code) gw_send_json(s, m);
    json_decref(m);
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
    auth_result r = token ? auth_verify(&g->auth, token, gw_now(), &id) : AUTH_MALFORMED;
    if (r != AUTH_OK) {
        refuse_token(s, r, "token");
        return;
    }
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
    json_t *out;
    if (json_is_object(resume)) {
        const char *epoch = json_string_value(json_object_get(resume, "epoch"));
        json_t *pos = json_object_get(resume, "pos");
        uint64_t p = json_is_integer(pos) && json_integer_value(pos) >= 0 ? (uint64_t)json_integer_value(pos) : 0;
        out = view_resume(g->view, id.operator_id, vr, epoch ? epoch : "", p);
    } else {
        out = view_snapshot(g->view, id.operator_id, vr);
    }
    gw_send_json(s, out);
    json_decref(out);
}

static void on_renew(gw_session *s, json_t *msg) {
    const char *token = json_string_value(json_object_get(msg, "token"));
    auth_identity id;
    auth_result r = token ? auth_renew(&s->g->auth, &s->id, token, gw_now(), &id) : AUTH_MALFORMED;
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
static int rate_ok(gw_session *s, double now) {
    double rate = s->g->cfg->gateway.max_msgs_per_s;
    s->tokens += (now - s->refill_at) * rate;
    if (s->tokens > rate) s->tokens = rate;
    s->refill_at = now;
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
        gw_close(s, 4008, "too many messages");
    } else if (s->strikes == 1 || s->strikes % 8 == 0) {
        gw_send_error(s, "rate_limited", "too many messages; this one was dropped", NULL);
    }
    return 0;
}

void gw_handle_message(gw_session *s, const char *buf, size_t len) {
    gw *g = s->g;
    double now = gw_now();
    g->m.msgs_in++;
    s->last_rx = now;
    if (s->close_code) return;
    if (!rate_ok(s, now)) return;
    json_error_t jerr;
    json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!s->authed) {
        if (!type || strcmp(type, "auth")) {
            g->m.protocol_errors++;
            log_warn("gateway: %s: first message is not auth: closed", s->peer);
            gw_close(s, 4000, "first message must be auth");
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
        gw_command(g->cout, s, msg);
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

void gw_sessions_sweep(gw *g, double now) {
    int idle = g->cfg->gateway.idle_timeout_s;
    for (gw_session *s = g->sessions; s; s = s->next) {
        if (s->close_code) continue;
        if (!s->authed && now - s->connected_at > GW_AUTH_TIMEOUT_S) {
            g->m.auth_timeouts++;
            log_warn("gateway: %s: no auth within %.0f s: closed", s->peer, GW_AUTH_TIMEOUT_S);
            gw_close(s, 4000, "authentication timeout");
        } else if (now - s->last_rx > idle) {
            g->m.closed_idle++;
            log_info("gateway: %s %s: idle for %d s: closed", s->peer, who(s), idle);
            gw_close(s, 1001, "idle timeout");
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
        if (!origin_allowed(g, wsi)) s->refuse = 4009;
        else if (g->nsessions >= (size_t)g->cfg->gateway.max_connections) s->refuse = 4008;
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        s->wsi = wsi;
        s->g = g;
        s->connected_at = s->last_rx = s->refill_at = gw_now();
        s->tokens = g->cfg->gateway.max_msgs_per_s;
        if (!lws_get_peer_simple(wsi, s->peer, sizeof(s->peer))) snprintf(s->peer, sizeof(s->peer), "?");
        s->next = g->sessions;
        if (g->sessions) g->sessions->prev = s;
        g->sessions = s;
        s->linked = 1;
        g->nsessions++;
        g->m.connections_total++;
        if (s->refuse == 4009) {
            g->m.refused_origin++;
            log_warn("gateway: %s: origin not allowed: refused", s->peer);
            gw_close(s, 4009, "origin not allowed");
        } else if (s->refuse == 4008) {
            g->m.refused_max_connections++;
            log_warn("gateway: %s: %d connections already: refused", s->peer, g->cfg->gateway.max_connections);
            gw_close(s, 4008, "too many connections");
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
            char *p = realloc(s->rx, cap);
            if (!p) return -1;
            s->rx = p;
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
            /* As many as the socket takes now: one per callback would let the
             * queue of a client that reads fine grow during a burst. */
            for (int i = 0; s->qhead && i < GW_WRITES_PER_CALLBACK; i++) {
                if (i && lws_send_pipe_choked(wsi)) break;
                gw_qnode *n = s->qhead;
                int w = lws_write(wsi, n->m->buf + LWS_PRE, n->m->len, LWS_WRITE_TEXT);
                s->qhead = n->next;
                if (!s->qhead) s->qtail = NULL;
                s->qbytes -= n->m->len;
                out_unref(n->m);
                free(n);
                if (w < 0) return -1;
                g->m.msgs_out++;
            }
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
