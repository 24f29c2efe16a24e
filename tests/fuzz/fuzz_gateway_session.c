/* fuzz_gateway_session.c -- libFuzzer target for the gateway's WebSocket
 * message handler (gw_handle_message and everything behind it: auth, resume,
 * renew, ping, commands and their checks against the view).
 * fuzz-needs: gateway
 * fuzz-max-len: 1024
 *
 * No network: the session is "socketless" (no wsi, output only queued) and
 * the command producer is a real librdkafka producer with no brokers, so
 * commands are built, checked and handed to librdkafka but never leave the
 * process (they expire in memory). The view holds a little site state, as
 * the agent's state records say it: op101 is in call 1.1 and is offered
 * call 2.2, so answer/hangup/transfer reach the produce path; op102 and a
 * queue make a supervisor's snapshot.
 *
 * Inputs are at most 1 KB (fuzz-max-len): room for the ~41 messages that
 * get a session closed for flooding (20 a second, then 20 strikes) or for
 * five commands (the fifth finds the producer's queue of 4 full); a longer
 * input only repeats what these reach, at a cost per message.
 *
 * Input: byte 0 picks the session: bit 0 set = already authenticated (bit 1:
 * as supervisor sup1, else as operator op101), clear = new connection whose
 * first message must be auth. The rest is split on 0x00 into client
 * messages, fed one by one. In a message, "@OP@", "@SUP@", "@OTHER@",
 * "@EXPIRED@", "@SITE@" are replaced by tokens minted at start-up (op101,
 * sup1, op102, an expired op101, op101 for another site) so auth and renew
 * get past the signature.
 *
 * Invariants: no crash, leak or UB; every queued message is a JSON object
 * whose "type" is one the gateway documents (errors with a known code); a
 * close decision carries a documented close code and a reason; a session that
 * is not authenticated has nothing queued; an authenticated one is who its
 * token says; what an operator gets from the view (snapshot, resume) is
 * about them only and never names a queue; a supervisor's snapshot parts
 * are numbered 1..N at one position. */
#include <jwt.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "gateway.h"
#include "log.h"
#include "seen.h"

#define SECRET "fuzz-secret-fuzz-secret-fuzz-secret!"

static callbus_config cfg;
static gw *G;
/* Who an already-authenticated session (byte 0, bit 0) is: op101 and sup1,
 * verified once here. Verifying a fixed token per input cost half of an
 * input's allocations for nothing the input chose; tokens that come in
 * messages (auth, renew) are still verified every time. */
static auth_identity preauthed[2];

static struct {
    const char *marker;
    char *token;
} tokens[] = {{"@OP@", NULL}, {"@SUP@", NULL}, {"@OTHER@", NULL}, {"@EXPIRED@", NULL}, {"@SITE@", NULL}};
#define NTOKENS (sizeof(tokens) / sizeof(tokens[0]))

static char *mint(const char *sub, const char *role, const char *site, double exp) {
    jwt_t *j = NULL;
    char *t = NULL;
    if (jwt_new(&j) == 0 && jwt_add_grant(j, "sub", sub) == 0 && jwt_add_grant(j, "site", site) == 0 &&
        jwt_add_grant(j, "role", role) == 0 && jwt_add_grant_int(j, "exp", (long)exp) == 0 &&
        jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET)) == 0)
        t = jwt_encode_str(j);
    jwt_free(j);
    if (!t) abort();
    return t;
}

static void feed(view_topic topic, const char *type, const char *id, const char *subject, const char *data) {
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"callbus://lyon/agent/a1\",\"type\":\"%s\","
             "\"time\":\"2026-11-26T05:17:40.004Z\",\"subject\":\"%s\",\"data\":%s}",
             id, type, subject, data);
    if (view_apply(G->view, topic, subject, strlen(subject), buf, strlen(buf), NULL, NULL) < 0) abort();
}

static void setup(void) {
    char err[512];
    log_set_level(LOG_ERROR);
    if (config_load(&cfg, NULL, err, sizeof(err)) < 0) abort();
    snprintf(cfg.site, sizeof(cfg.site), "lyon");
    cfg.gateway.max_queue_kb = 16; /* reachable "too slow" */
    /* No bootstrap.servers: nothing connects; produced commands wait in
     * librdkafka's queue until the input's end drops them. A queue of 4
     * makes the fifth command of an input reach "could not be queued". */
    if (config_set_kafka(&cfg, "message.timeout.ms=1", err, sizeof(err)) ||
        config_set_kafka(&cfg, "queue.buffering.max.messages=4", err, sizeof(err)) ||
        config_set_kafka(&cfg, "log_level=0", err, sizeof(err)))
        abort();
    G = calloc(1, sizeof(*G));
    G->cfg = &cfg;
    G->key = (unsigned char *)strdup(SECRET);
    G->key_len = strlen(SECRET);
    G->auth = (auth_config){.alg = AUTH_HS256, .key = G->key, .key_len = G->key_len, .site = cfg.site,
                            .leeway_s = cfg.gateway.jwt_leeway_s};
    if (auth_config_problem(&G->auth)) abort();
    snprintf(G->epoch, sizeof(G->epoch), "fuzz");
    G->view = view_new((size_t)cfg.gateway.history, G->epoch);
    G->cout = gw_commands_out_new(G, err, sizeof(err));
    if (!G->cout) {
        fprintf(stderr, "commands producer: %s\n", err);
        abort();
    }
    feed(VIEW_TOPIC_OPERATORS, "callbus.state.operator", "e1", "op101",
         "{\"operator_id\":\"op101\",\"member_name\":null,\"interface\":\"PJSIP/op101\",\"logged_in\":true,"
         "\"queues\":[{\"queue\":\"support\",\"paused\":false,\"reason\":null}],\"state\":\"on_call\","
         "\"state_since\":\"2026-11-26T05:17:40.004Z\",\"paused\":false,\"pause_reason\":null,\"device\":\"busy\","
         "\"offered\":{\"call_id\":\"2.2\",\"caller\":{\"number\":\"5551002\"},\"queue\":\"support\","
         "\"since\":\"2026-11-26T05:17:40.004Z\"},\"call\":{\"call_id\":\"1.1\",\"caller\":{\"number\":\"5551001\"},"
         "\"direction\":\"inbound\",\"queue\":\"support\",\"answered_at\":\"2026-11-26T05:17:40.004Z\",\"held\":false},"
         "\"recent\":[],\"today\":{\"date\":\"2026-11-26\",\"handled\":1,\"talk_s\":0,\"missed\":0}}");
    feed(VIEW_TOPIC_OPERATORS, "callbus.state.operator", "e2", "op102",
         "{\"operator_id\":\"op102\",\"logged_in\":true,\"queues\":[{\"queue\":\"sales\",\"paused\":false,"
         "\"reason\":null}],\"state\":\"ready\",\"offered\":null,\"call\":null,\"recent\":[]}");
    feed(VIEW_TOPIC_CALLS, "callbus.state.call", "e3", "1.1",
         "{\"call_id\":\"1.1\",\"state\":\"connected\",\"queue\":\"support\",\"operator_id\":\"op101\"}");
    feed(VIEW_TOPIC_CALLS, "callbus.state.call", "e4", "2.2",
         "{\"call_id\":\"2.2\",\"state\":\"ringing\",\"queue\":\"support\",\"offered_to\":[\"op101\"]}");
    feed(VIEW_TOPIC_QUEUES, "callbus.queue.stats", "e5", "support", "{\"queue\":\"support\",\"waiting\":1}");

    double now = wall_now();
    tokens[0].token = mint("op101", "operator", "lyon", now + 86400);
    tokens[1].token = mint("sup1", "supervisor", "lyon", now + 86400);
    tokens[2].token = mint("op102", "operator", "lyon", now + 86400);
    tokens[3].token = mint("op101", "operator", "lyon", now - 3600);
    tokens[4].token = mint("op101", "operator", "paris", now + 86400);
    for (int i = 0; i < 2; i++)
        if (auth_verify(&G->auth, tokens[i].token, now, &preauthed[i]) != AUTH_OK) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

/* The message with the token markers replaced; *outlen its length. */
static char *expand(const uint8_t *p, size_t n, size_t *outlen) {
    size_t cap = n + 1, len = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@') cap += 1024; /* a token per '@' at most, ample */
    char *out = malloc(cap);
    for (size_t i = 0; i < n;) {
        size_t k;
        /* Markers start with '@': no memcmp (hooked by libFuzzer) per byte. */
        for (k = p[i] == '@' ? 0 : NTOKENS; k < NTOKENS; k++) {
            size_t ml = strlen(tokens[k].marker);
            if (n - i >= ml && !memcmp(p + i, tokens[k].marker, ml)) {
                size_t tl = strlen(tokens[k].token);
                memcpy(out + len, tokens[k].token, tl);
                len += tl;
                i += ml;
                break;
            }
        }
        if (k == NTOKENS) out[len++] = (char)p[i++];
    }
    out[len] = 0;
    *outlen = len;
    return out;
}

static int one_of(const char *s, const char *const *set) {
    for (; *set; set++)
        if (!strcmp(s, *set)) return 1;
    return 0;
}

static const char *const out_types[] = {"welcome", "snapshot", "resume", "update", "event", "command_ack",
                                        "error", "pong", "renewed", NULL};
static const char *const error_codes[] = {"bad_json", "unknown_type", "forbidden", "invalid", "rate_limited",
                                          "not_authenticated", "unavailable", "not_delivered", "delivery_unknown",
                                          NULL};
static const int close_codes[] = {1009, 4000, 4001, 4002, 4003, 4008, 4009};

static int names_a_queue(const json_t *j) {
    const char *k;
    json_t *e;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, e) if (!strcmp(k, "queue") || !strcmp(k, "queues") ||
                                                   !strcmp(k, "offered_to") || names_a_queue(e)) return 1;
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, e) if (names_a_queue(e)) return 1;
    }
    return 0;
}

/* The view's messages to one session: projected for its role, and a
 * supervisor's snapshot parts in order at one position. */
static void check_sync(const gw_session *s, const json_t *j, const char *type, json_int_t *part, json_int_t *pos) {
    if (strcmp(type, "snapshot") && strcmp(type, "resume")) return;
    if (s->id.role != ROLE_SUPERVISOR) {
        const char *who = json_string_value(json_object_get(json_object_get(j, "operator"), "operator_id"));
        if (names_a_queue(j) || (!strcmp(type, "snapshot") && (!who || strcmp(who, s->id.operator_id)))) abort();
        return;
    }
    if (strcmp(type, "snapshot")) return;
    json_int_t k = json_integer_value(json_object_get(j, "part")), p = json_integer_value(json_object_get(j, "pos"));
    if (k != (k == 1 ? 1 : *part + 1) || (k > 1 && p != *pos) || k > json_integer_value(json_object_get(j, "parts")))
        abort();
    *part = k;
    *pos = p;
}

/* One queued message, parsed and checked. Returns 1 when the verdict
 * depends on the bytes only (not a snapshot or resume, whose checks follow
 * the session's role and the parts before). */
static int check_out(const gw_session *s, const char *text, size_t len, json_int_t *part, json_int_t *pos) {
    json_error_t e;
    json_t *j = json_loadb(text, len, 0, &e);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type || !one_of(type, out_types)) {
        fprintf(stderr, "bad output: %.*s\n", (int)len, text);
        abort();
    }
    if (!strcmp(type, "error")) {
        const char *code = json_string_value(json_object_get(j, "code"));
        if (!code || !one_of(code, error_codes) || !json_is_string(json_object_get(j, "message"))) {
            fprintf(stderr, "bad error: %.*s\n", (int)len, text);
            abort();
        }
    }
    check_sync(s, j, type, part, pos);
    int pure = strcmp(type, "snapshot") && strcmp(type, "resume");
    json_decref(j);
    return pure;
}

/* check_out, unless these very bytes passed it before (seen.h). */
static void check_or_recall(const gw_session *s, const char *text, size_t len, json_int_t *part, json_int_t *pos) {
    uint64_t h;
    if (seen_before("", 0, text, len, &h)) return;
    if (check_out(s, text, len, part, pos)) seen_remember(h, "", 0, text, len);
}

static void check_and_free(gw_session *s) {
    size_t n = 0, bytes = 0;
    static int show = -1; /* FUZZ_SHOW=1 ./fuzz_gateway_session seed... */
    if (show < 0) show = getenv("FUZZ_SHOW") != NULL;
    json_int_t part = 0, pos = 0;
    for (gw_qnode *q = s->qhead; q;) {
        gw_out *m = q->m;
        const char *text = (const char *)m->buf + LWS_PRE;
        check_or_recall(s, text, m->len, &part, &pos);
        if (show) printf("  < %.*s\n", (int)m->len, text);
        n++;
        bytes += m->len;
        gw_qnode *next = q->next;
        if (--m->refs == 0) free(m);
        free(q);
        q = next;
    }
    if (bytes != s->qbytes + s->qsync) abort();
    s->qhead = s->qtail = NULL;
    s->qbytes = s->qsync = 0;
    if (n && !s->authed) abort(); /* nothing for an unauthenticated client */
    if (s->authed && strcmp(s->id.operator_id, "op101") && strcmp(s->id.operator_id, "sup1") &&
        strcmp(s->id.operator_id, "op102"))
        abort();
    if (s->close_code) {
        size_t i;
        for (i = 0; i < sizeof(close_codes) / sizeof(close_codes[0]); i++)
            if (s->close_code == close_codes[i]) break;
        if (show) printf("  closed %d %s\n", s->close_code, s->close_reason);
        if (i == sizeof(close_codes) / sizeof(close_codes[0]) || !s->close_reason[0]) {
            fprintf(stderr, "bad close: %d %s\n", s->close_code, s->close_reason);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    gw_session *s = calloc(1, sizeof(*s));
    s->g = G;
    s->socketless = 1;
    snprintf(s->peer, sizeof(s->peer), "fuzz");
    s->connected_at = s->last_rx = s->refill_at = mono_now();
    s->tokens = cfg.gateway.max_msgs_per_s;
    if (data[0] & 1) {
        s->id = preauthed[data[0] & 2 ? 1 : 0];
        s->authed = 1;
        G->nauthed++;
        gw_route_add(G, s); /* as on_auth: reached by the reports of its commands */
    }
    const uint8_t *p = data + 1, *end = data + size;
    while (p <= end) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        if (!z) z = end;
        size_t len;
        char *msg = expand(p, (size_t)(z - p), &len);
        gw_handle_message(s, msg, len);
        free(msg);
        p = z + 1;
    }
    /* An input's commands are dropped at its end (their senders told
     * not_delivered), so each input frees all it allocated: else libFuzzer
     * runs a leak scan of the whole heap after every input that produced a
     * command (250 executions/s instead of thousands). */
    gw_commands_out_purge(G->cout);
    check_and_free(s);
    gw_session_gone(s);
    free(s);
    return 0;
}
