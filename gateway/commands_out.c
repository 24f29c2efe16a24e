/* commands_out.c -- operator commands from the WebSocket to the site's
 * commands topic (docs/messages.md, "Commands").
 *
 * Identity comes from the token only: operator_id (and supervisor_id for
 * listen/whisper) is filled from it, and a command naming another operator
 * is refused. An operator may originate/pause/unpause only for themselves,
 * answer only the call currently offered to them, hang up or transfer only
 * their own call in progress; listen and whisper are for supervisors. A
 * refused command is answered with an error and nothing is produced. The
 * agent's results come back through the view (callbus.result, routed by
 * the command's sender "gateway:<operator_id>"). */
#include "gateway.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct gw_commands_out {
    gw *g;
    rd_kafka_t *rk;
    rd_kafka_queue_t *main_q;   /* delivery reports, for the wake-up fd */
    char topic[256];
    char source[192];
    long long epoch;
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
        c->g->m.commands_failed++;
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
            gw_send_to(c->g, p->operator_id, e);
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
    char e[512];
    gw_commands_out *c = calloc(1, sizeof(*c));
    c->g = g;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof(e));
    rd_kafka_conf_set(conf, "linger.ms", "0", e, sizeof(e));
    rd_kafka_conf_set(conf, "client.id", "callbus-gateway-commands", e, sizeof(e));
    char ttl_ms[32];
    snprintf(ttl_ms, sizeof(ttl_ms), "%d", cfg->gateway.command_ttl_s * 1000);
    rd_kafka_conf_set(conf, "message.timeout.ms", ttl_ms, e, sizeof(e));
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka property %s: %s", cfg->kafka[i].key, e);
            rd_kafka_conf_destroy(conf);
            free(c);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (!c->rk) {
        snprintf(err, errlen, "kafka producer: %s", e);
        free(c);
        return NULL;
    }
    config_topic(cfg, "commands", c->topic, sizeof(c->topic));
    snprintf(c->source, sizeof(c->source), "callbus://%s/gateway/%s", cfg->site, cfg->gateway.id);
    c->epoch = (long long)gw_now();
    return c;
}

static void rfc3339(char *out, size_t n, double t) {
    char tmp[96];
    time_t sec = (time_t)t;
    int ms = (int)((t - (double)sec) * 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    size_t l = strlen(tmp) < n ? strlen(tmp) : n - 1;
    memcpy(out, tmp, l);
    out[l] = 0;
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

static const char *snap_call_id(json_t *snap, const char *which) {
    return json_string_value(json_object_get(json_object_get(json_object_get(snap, "operator"), which), "call_id"));
}

static void refuse(gw_commands_out *c, gw_session *s, const char *code, const char *why, json_t *cid,
                   const char *cmd) {
    if (!strcmp(code, "forbidden")) c->g->m.commands_forbidden++;
    else c->g->m.commands_invalid++;
    log_info("gateway: %s %s: command %s refused (%s): %s", s->peer, s->id.operator_id, cmd ? cmd : "?", code, why);
    gw_send_error(s, code, why, cid);
}

void gw_command(gw_commands_out *c, gw_session *s, json_t *msg) {
    json_t *cid = json_object_get(msg, "id");
    const char *cmd = json_string_value(json_object_get(msg, "command"));
    json_t *data = json_object_get(msg, "data");
    const char *self = s->id.operator_id;
    int supervisor = s->id.role == ROLE_SUPERVISOR;
    if (cid && (!json_is_string(cid) || strlen(json_string_value(cid)) > 128)) {
        refuse(c, s, "invalid", "id must be a string of at most 128 characters", NULL, cmd);
        return;
    }
    int known = 0;
    for (int i = 0; cmd && commands[i]; i++) known |= !strcmp(cmd, commands[i]);
    if (!known) {
        refuse(c, s, "invalid", "unknown command", cid, cmd);
        return;
    }
    if (data && !json_is_object(data)) {
        refuse(c, s, "invalid", "data must be an object", cid, cmd);
        return;
    }
    json_t *d = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v) {
        if (!field_allowed(cmd, k)) {
            json_decref(d);
            char why[128];
            snprintf(why, sizeof(why), "data.%.40s is not a field of %s", k, cmd);
            refuse(c, s, "invalid", why, cid, cmd);
            return;
        }
        if (strcmp(k, "variables") && !json_is_string(v)) {
            json_decref(d);
            refuse(c, s, "invalid", "data fields must be strings", cid, cmd);
            return;
        }
        json_object_set(d, k, v);
    }
    const char *named = json_string_value(json_object_get(d, "operator_id"));
    const char *call_id = json_string_value(json_object_get(d, "call_id"));
    const char *subject = NULL;
    const char *forbidden = NULL, *invalid = NULL;
    json_t *snap = view_snapshot(c->g->view, self, VIEW_OPERATOR);
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
        else if (!named || strcmp(cmd, "hangup"))
            json_object_set_new(d, "operator_id", json_string(named ? named : self));
        if (!strcmp(cmd, "hangup")) json_object_del(d, "operator_id");
        subject = named ? named : self;
        if (forbidden) {
        } else if (!strcmp(cmd, "originate")) {
            if (!json_string_value(json_object_get(d, "number"))) invalid = "data.number is required";
        } else if (!strcmp(cmd, "answer")) {
            const char *offered = snap_call_id(snap, "offered");
            if (!call_id) invalid = "data.call_id is required";
            else if (!offered || strcmp(offered, call_id)) forbidden = "that call is not offered to you";
            subject = call_id;
        } else if (!strcmp(cmd, "hangup") || !strcmp(cmd, "transfer")) {
            const char *mine = snap_call_id(snap, "call");
            if (!call_id) invalid = "data.call_id is required";
            else if (!mine || strcmp(mine, call_id)) forbidden = "that call is not yours";
            else if (!strcmp(cmd, "transfer") && !json_string_value(json_object_get(d, "to")))
                invalid = "data.to is required";
            subject = call_id;
        }
    }
    json_decref(snap);
    if (forbidden || invalid) {
        json_decref(d);
        refuse(c, s, forbidden ? "forbidden" : "invalid", forbidden ? forbidden : invalid, cid, cmd);
        return;
    }
    double now = gw_now();
    char id[192], type[64], sender[96], t_now[64], t_exp[64];
    snprintf(id, sizeof(id), "%s:gw-%s:%lld:%llu", c->g->cfg->site, c->g->cfg->gateway.id, c->epoch, ++c->seq);
    snprintf(type, sizeof(type), "callbus.command.%s", cmd);
    snprintf(sender, sizeof(sender), VIEW_SENDER_PREFIX "%s", self);
    rfc3339(t_now, sizeof(t_now), now);
    rfc3339(t_exp, sizeof(t_exp), now + c->g->cfg->gateway.command_ttl_s);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0", "id", id,
                           "source", c->source, "type", type, "time", t_now, "expires", t_exp, "sender",
                           sender, "subject", subject, "datacontenttype", "application/json", "data", d);
    char *txt = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    pending *p = calloc(1, sizeof(*p));
    if (p) {
        snprintf(p->operator_id, sizeof(p->operator_id), "%s", self);
        snprintf(p->command_id, sizeof(p->command_id), "%s", id);
        snprintf(p->command, sizeof(p->command), "%s", cmd);
        p->client_id = json_incref(cid);
    }
    rd_kafka_resp_err_t rc = rd_kafka_producev(c->rk, RD_KAFKA_V_TOPIC(c->topic),
                                               RD_KAFKA_V_KEY(subject, strlen(subject)),
                                               RD_KAFKA_V_VALUE(txt, strlen(txt)), RD_KAFKA_V_OPAQUE(p),
                                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
    if (rc) {
        free(txt);
        if (p) json_decref(p->client_id);
        free(p);
        c->g->m.commands_failed++;
        log_warn("gateway: %s %s: command %s not produced: %s", s->peer, self, cmd, rd_kafka_err2str(rc));
        gw_send_error(s, "unavailable", "the command could not be queued; try again", cid);
        return;
    }
    c->g->m.commands_sent++;
    log_info("gateway: %s %s: command %s %s", s->peer, self, cmd, id);
    json_t *ack = json_pack("{s:s, s:s, s:s}", "type", "command_ack", "command_id", id, "command", cmd);
    if (cid) json_object_set(ack, "id", cid);
    gw_send_json(s, ack);
    json_decref(ack);
    rd_kafka_poll(c->rk, 0);
}

void gw_commands_out_poll(gw_commands_out *c) {
    if (c) rd_kafka_poll(c->rk, 0);
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
    rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(c->rk, 1000);
    rd_kafka_destroy(c->rk);
    free(c);
}
