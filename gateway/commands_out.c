/* commands_out.c -- operator commands from the WebSocket to the site's
 * commands topic (docs/messages.md, "Commands").
 *
 * Identity comes from the token only: operator_id (and supervisor_id for
 * listen/whisper) is filled from it, and a command naming another operator
 * is refused. An operator may originate/pause/unpause only for themselves,
 * answer only the call currently offered to them, hang up or transfer only
 * their own call in progress (as their state record in the view says; the
 * view may lag, so every command carries operator_id and the agent checks
 * again when it runs);
 * listen and whisper are for supervisors. A refused command is answered
 * with an error and nothing is produced. The
 * agent's results come back through the view (callbus.result, routed by
 * the command's sender "gateway:<operator_id>").
 *
 * It answers nobody itself: gw_command returns an outcome that session.c
 * sends, and a delivery failure known later goes out through gw_clients. */
#include "gateway.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "cloudevent.h"
#include "kafka_conf.h"
#include "log.h"

struct gw_commands_out {
    const callbus_config *cfg;
    const view *view;          /* the operators' own calls */
    gw_metrics *m;
    gw_clients clients;        /* delivery failures, to the sender's sessions */
    rd_kafka_t *rk;
    rd_kafka_queue_t *main_q;   /* delivery reports, for the wake-up fd */
    char topic[256];
    char source[192];
    long long epoch;   /* this run's start, in microseconds: ids stay unique across restarts */
    int closing;   /* gw_commands_out_free: nobody left to tell */
    unsigned long long seq;
};

/* What a delivery report needs to tell the browser that sent the command. */
typedef struct pending {
    char operator_id[64];
    char command_id[192];
    char command[16];
    json_t *client_id;   /* the browser's id, or NULL */
} pending;

/* A command Kafka did not take within message.timeout.ms (by default the
 * command's TTL, after which the agent would only answer "expired") never
 * gets a result: the browser that sent it must hear it from us. When the
 * message may have reached the broker before the timeout, only its result
 * can tell whether it ran. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    gw_commands_out *c = opaque;
    pending *p = m->_private;
    if (m->err) {
        c->m->commands_failed++;
        int maybe = rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
        log_warn("gateway: command %s (%s of %s) not delivered to Kafka%s: %s", p ? p->command_id : "?",
                 p ? p->command : "?", p ? p->operator_id : "?", maybe ? " (may have reached it)" : "",
                 rd_kafka_err2str(m->err));
        if (p && !c->closing) {
            char why[256];
            snprintf(why, sizeof(why), "%s: %s", rd_kafka_err2str(m->err),
                     maybe ? "Kafka may have taken the command; its result, if any, will tell"
                           : "the command never reached Kafka and will not run");
            json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "error", "code",
                                  maybe ? "delivery_unknown" : "not_delivered", "message", why, "command_id",
                                  p->command_id, "command", p->command);
            if (p->client_id) json_object_set(e, "id", p->client_id);
            c->clients.to_identity(c->clients.ctx, p->operator_id, e);
            json_decref(e);
        }
    }
    if (p) {
        json_decref(p->client_id);
        free(p);
    }
}

gw_commands_out *gw_commands_out_new(gw *g, char *err, size_t errlen) {
    const callbus_config *cfg = g->cfg;
    gw_commands_out *c = xcalloc(1, sizeof(*c));
    c->cfg = cfg;
    c->view = g->view;
    c->m = &g->m;
    c->clients = gw_clients_of(g);
    char ttl_ms[32];
    snprintf(ttl_ms, sizeof(ttl_ms), "%d", cfg->gateway.command_ttl_s * 1000);
    const kafka_prop defaults[] = {{"enable.idempotence", "true"}, {"linger.ms", "0"},
                                   {"client.id", "callbus-gateway-commands"}, {"message.timeout.ms", ttl_ms}};
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, sizeof(defaults) / sizeof(defaults[0]), cfg, err, errlen);
    if (conf) {
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, c);
    }
    c->rk = conf ? kafka_client_new(RD_KAFKA_PRODUCER, conf, err, errlen) : NULL;
    if (!c->rk) {
        free(c);
        return NULL;
    }
    config_topic(cfg, "commands", c->topic, sizeof(c->topic));
    snprintf(c->source, sizeof(c->source), "callbus://%s/gateway/%s", cfg->site, cfg->gateway.id);
    /* seq starts again at 1 every run: in seconds, a restart within the
     * same second would reuse the ids of the commands just sent, and the
     * agent would drop the new ones as duplicates. */
    c->epoch = (long long)(wall_now() * 1e6);
    return c;
}

static const char *const commands[] = {"originate", "answer", "hangup", "transfer", "pause",
                                       "unpause", "listen", "whisper", NULL};

/* Fields a browser may set, per command; the rest of data is refused. */
static int field_allowed(const char *cmd, const char *field) {
    if (!strcmp(field, "operator_id")) return 1;
    if (!strcmp(cmd, "originate")) return !strcmp(field, "number") || !strcmp(field, "context") || !strcmp(field, "variables");
    if (!strcmp(cmd, "answer") || !strcmp(cmd, "hangup")) return !strcmp(field, "call_id");
    if (!strcmp(cmd, "transfer")) return !strcmp(field, "call_id") || !strcmp(field, "to") || !strcmp(field, "kind");
    if (!strcmp(cmd, "pause") || !strcmp(cmd, "unpause")) return !strcmp(field, "queue") || !strcmp(field, "reason");
    return 0; /* listen, whisper: operator_id only */
}

/* The call in the operator's own state record (view.h): "offered" or "call". */
static const char *own_call_id(const json_t *record, const char *which) {
    return json_string_value(json_object_get(json_object_get(record, which), "call_id"));
}

/* The outcome of a refused command (nothing produced), counted and logged. */
static gw_command_outcome refuse(gw_commands_out *c, const auth_identity *who, const char *peer, const char *code,
                                 const char *why, int echo_id, const char *cmd) {
    gw_command_outcome o = {.error = code, .echo_id = echo_id};
    snprintf(o.message, sizeof(o.message), "%s", why);
    if (!strcmp(code, "forbidden")) c->m->commands_forbidden++;
    else c->m->commands_invalid++;
    log_info("gateway: %s %s: command %s refused (%s): %s", peer, who->operator_id, log_str(cmd), code,
             log_str(why));
    return o;
}

gw_command_outcome gw_command(gw_commands_out *c, const auth_identity *who, const char *peer, json_t *msg) {
    json_t *cid = json_object_get(msg, "id");
    const char *cmd = json_string_value(json_object_get(msg, "command"));
    json_t *data = json_object_get(msg, "data");
    const char *self = who->operator_id;
    int supervisor = who->role == ROLE_SUPERVISOR;
    if (cid && (!json_is_string(cid) || strlen(json_string_value(cid)) > 128))
        return refuse(c, who, peer, "invalid", "id must be a string of at most 128 characters", 0, cmd);
    int known = 0;
    for (int i = 0; cmd && commands[i]; i++) known |= !strcmp(cmd, commands[i]);
    if (!known) return refuse(c, who, peer, "invalid", "unknown command", 1, cmd);
    if (data && !json_is_object(data)) return refuse(c, who, peer, "invalid", "data must be an object", 1, cmd);
    json_t *d = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v) {
        if (!field_allowed(cmd, k)) {
            json_decref(d);
            char why[128], key[48];
            snprintf(why, sizeof(why), "data.%s is not a field of %s", log_safe_str(key, sizeof(key), k), cmd);
            return refuse(c, who, peer, "invalid", why, 1, cmd);
        }
        if (!strcmp(k, "variables") && !c->cfg->gateway.browser_variables) {
            /* Channel variables reach the dialplan: a site opts in. */
            json_decref(d);
            return refuse(c, who, peer, "forbidden", "this site takes no originate variables from the browser "
                          "(gateway.browser_variables is off)", 1, cmd);
        }
        if (strcmp(k, "variables") && !json_is_string(v)) {
            json_decref(d);
            return refuse(c, who, peer, "invalid", "data fields must be strings", 1, cmd);
        }
        json_object_set(d, k, v);
    }
    const char *named = json_string_value(json_object_get(d, "operator_id"));
    const char *call_id = json_string_value(json_object_get(d, "call_id"));
    const char *subject = NULL;
    const char *forbidden = NULL, *invalid = NULL;
    const json_t *own = view_operator(c->view, self);
    if (!strcmp(cmd, "listen") || !strcmp(cmd, "whisper")) {
        if (!supervisor) forbidden = "listen and whisper are for supervisors";
        else if (!named) invalid = "data.operator_id (the operator to listen to) is required";
        else {
            json_object_set_new(d, "supervisor_id", json_string(self));
            subject = named;
        }
    } else {
        if (named && strcmp(named, self) && !(supervisor && (!strcmp(cmd, "pause") || !strcmp(cmd, "unpause"))))
            forbidden = "an operator may act only for themselves";
        else  /* the agent checks at execution that a hangup/transfer is still on this operator's call */
            json_object_set_new(d, "operator_id", json_string(named ? named : self));
        subject = named ? named : self;
        if (forbidden) {
        } else if (!strcmp(cmd, "originate")) {
            if (!json_string_value(json_object_get(d, "number"))) invalid = "data.number is required";
        } else if (!strcmp(cmd, "answer")) {
            const char *offered = own_call_id(own, "offered");
            if (!call_id) invalid = "data.call_id is required";
            else if (!offered || strcmp(offered, call_id)) forbidden = "that call is not offered to you";
            subject = call_id;
        } else if (!strcmp(cmd, "hangup") || !strcmp(cmd, "transfer")) {
            const char *mine = own_call_id(own, "call");
            if (!call_id) invalid = "data.call_id is required";
            else if (!mine || strcmp(mine, call_id)) forbidden = "that call is not yours";
            else if (!strcmp(cmd, "transfer") && !json_string_value(json_object_get(d, "to")))
                invalid = "data.to is required";
            subject = call_id;
        }
    }
    if (forbidden || invalid) {
        json_decref(d);
        return refuse(c, who, peer, forbidden ? "forbidden" : "invalid", forbidden ? forbidden : invalid, 1, cmd);
    }
    double now = wall_now();
    char id[192], type[64], sender[96];
    snprintf(id, sizeof(id), "%s:gw-%s:%lld:%llu", c->cfg->site, c->cfg->gateway.id, c->epoch, ++c->seq);
    snprintf(type, sizeof(type), "callbus.command.%s", cmd);
    snprintf(sender, sizeof(sender), VIEW_SENDER_PREFIX "%s", self);
    sbuf ev;
    sbuf_init(&ev);
    ce_begin_command(&ev, id, c->source, type, subject, now, now + c->cfg->gateway.command_ttl_s, sender);
    char *data_text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    sbuf_puts(&ev, data_text);
    free(data_text);
    ce_end(&ev);
    char *txt = ev.data;     /* librdkafka frees it (RD_KAFKA_MSG_F_FREE) */
    size_t txt_len = ev.len;
    pending *p = xcalloc(1, sizeof(*p));
    snprintf(p->operator_id, sizeof(p->operator_id), "%s", self);
    snprintf(p->command_id, sizeof(p->command_id), "%s", id);
    snprintf(p->command, sizeof(p->command), "%s", cmd);
    p->client_id = json_incref(cid);
    rd_kafka_resp_err_t rc = rd_kafka_producev(c->rk, RD_KAFKA_V_TOPIC(c->topic),
                                               RD_KAFKA_V_KEY(subject, strlen(subject)),
                                               RD_KAFKA_V_VALUE(txt, txt_len), RD_KAFKA_V_OPAQUE(p),
                                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
    if (rc) {
        free(txt);
        json_decref(p->client_id);
        free(p);
        c->m->commands_failed++;
        log_warn("gateway: %s %s: command %s not produced: %s", peer, self, cmd, rd_kafka_err2str(rc));
        return (gw_command_outcome){.error = "unavailable", .message = "the command could not be queued; try again",
                                    .echo_id = 1};
    }
    c->m->commands_sent++;
    log_info("gateway: %s %s: command %s %s", peer, self, cmd, id);
    gw_command_outcome o = {0};
    snprintf(o.command_id, sizeof(o.command_id), "%s", id);
    snprintf(o.command, sizeof(o.command), "%s", cmd);
    return o;
}


void gw_commands_out_poll(gw_commands_out *c) {
    if (c) rd_kafka_poll(c->rk, 0);
}

void gw_commands_out_purge(gw_commands_out *c) {
    if (!c) return;
    rd_kafka_resp_err_t rc = rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (rc) log_warn("gateway: commands not purged: %s", rd_kafka_err2str(rc));
    rd_kafka_poll(c->rk, 0);
}

void gw_commands_out_wake_fd(gw_commands_out *c, int fd) {
    if (!c) return;
    if (!c->main_q) c->main_q = rd_kafka_queue_get_main(c->rk);
    if (fd >= 0) rd_kafka_queue_io_event_enable(c->main_q, fd, "1", 1);
    else rd_kafka_queue_io_event_enable(c->main_q, -1, NULL, 0);
}

void gw_commands_out_free(gw_commands_out *c) {
    if (!c) return;
    if (c->main_q) {
        rd_kafka_queue_io_event_enable(c->main_q, -1, NULL, 0);
        rd_kafka_queue_destroy(c->main_q);
    }
    c->closing = 1;
    /* What Kafka has not taken by now is dropped, with its report served
     * so that nothing of it stays allocated. */
    rd_kafka_flush(c->rk, 5000);
    gw_commands_out_purge(c);
    rd_kafka_flush(c->rk, 1000);
    rd_kafka_destroy(c->rk);
    free(c);
}
