/* agent.c -- the agent's event loop and the glue between AMI, the call model
 * and Kafka (see agent.h).
 *
 * Every AMI message is published to the ami topic first and then given to
 * the call model, whose derived events go to the calls and operators topics
 * and into the live state (state.c), whose changed records go to the state
 * topics at the end of every loop turn. After each (re)connect the agent
 * announces the gap, asks Asterisk for its channels and queues, and lets the
 * model end the calls that vanished. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "ami_client.h"
#include "callmodel.h"
#include "executor.h"
#include "clock.h"
#include "cloudevent.h"
#include "http.h"
#include "identity.h"
#include "leader.h"
#include "log.h"
#include "publisher.h"
#include "sbuf.h"
#include "sdnotify.h"
#include "state.h"
#include "state_load.h"

/* Refused input is published, but only its first bytes: a runaway line can
 * be megabytes and the point is to show what went wrong. */
#define REFUSED_KEEP 65536

typedef struct agent_counters {
    uint64_t events, responses, other, refused, forged, gaps, derived, state_records;
} agent_counters;

struct agent {
    callbus_config *cfg;
    volatile sig_atomic_t stop;
    publisher *pub;
    ami_client *ami;
    callmodel *cm;
    state *st;              /* the live state, published to the state topics */
    executor *cmds;         /* NULL when commands are disabled */
    identity_map *ids;
    http_server *http;
    ce_source src;
    uint64_t seq[TOPIC_KINDS];
    sbuf buf;
    double now;             /* wall clock: the time of what happens (clock.h) */
    double mono;            /* monotonic clock: every deadline and duration */
    double started;         /* monotonic */
    agent_counters n;

    /* AMI link history, for gap announcements and restart detection. */
    int ever_up;
    double down_since;
    char down_reason[128];
    int shutdown_seen;
    double boot_time;       /* Asterisk start (monotonic) estimated from FullyBooted */
    int restarted;
    int gap_pending;        /* reconnected; gap announced when the resync ends */
    char asterisk_version[64];
    char ami_version[32];

    /* Resync in progress: ActionIDs of the list actions still answering. */
    char resync_ids[2][AMI_ACTION_ID_MAX];
    int resync_pending;
    size_t resync_members;  /* QueueMember items the resync listed */
    char settings_id[AMI_ACTION_ID_MAX];

    double next_status;     /* monotonic */
    double next_stats;      /* monotonic: the queue figures are republished then */
    double next_drop_report;
    uint64_t gap_seq;

    /* agent.standby: NULL without one. */
    leader *lead;
    char instance[128];     /* this process among the runs of this agent id */
    uint64_t takeovers;
    int exit_code;
};

/* ---- Publishing ---------------------------------------------------------- */

/* durable: the message must survive an agent crash from now on (command
 * results), so it goes through the fsynced spool. */
static void publish(agent *a, topic_kind t, const char *type, const char *key,
                    double time, const char *data, size_t datalen, int durable) {
    sbuf_reset(&a->buf);
    ce_begin(&a->buf, &a->src, topic_kind_name(t), ++a->seq[t], type, key, time);
    sbuf_append(&a->buf, data, datalen);
    ce_end(&a->buf);
    size_t keylen = key ? strlen(key) : 0;
    if (durable) publisher_send_durable(a->pub, t, key, keylen, a->buf.data, a->buf.len);
    else publisher_send(a->pub, t, key, keylen, a->buf.data, a->buf.len);
}

static void publish_json_as(agent *a, topic_kind t, const char *type, const char *key,
                            double time, json_t *data, int durable) {
    char *s = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15));
    publish(a, t, type, key, time, s, strlen(s), durable);
    free(s);
    json_decref(data);
}

static void publish_json(agent *a, topic_kind t, const char *type, const char *key,
                         double time, json_t *data) {
    publish_json_as(a, t, type, key, time, data, 0);
}

static void publish_gap(agent *a, double from, double to, const char *reason, const char *detail) {
    char key[128], f[48], t[48];
    snprintf(key, sizeof(key), "%s:gap:%lld:%llu", a->cfg->agent.id, (long long)a->src.epoch,
             (unsigned long long)++a->gap_seq);
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "agent_id", a->cfg->agent.id,
                          "site", a->cfg->site, "from", rfc3339(from, 6, f, sizeof(f)),
                          "to", rfc3339(to, 6, t, sizeof(t)), "reason", reason, "detail",
                          detail ? detail : "");
    a->n.gaps++;
    log_warn("gap %s: %s %s", key, reason, detail ? detail : "");
    publish_json(a, TOPIC_STATUS, "callbus.agent.gap", key, to, d);
}

static void publish_status(agent *a, const char *reason) {
    publisher_stats ps;
    publisher_get_stats(a->pub, &ps);
    const ami_parser_stats *st = ami_client_parser_stats(a->ami);
    json_t *counters = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ami_events", (json_int_t)a->n.events,
        "ami_responses", (json_int_t)a->n.responses, "ami_refused", (json_int_t)a->n.refused,
        "ami_forged", (json_int_t)a->n.forged,
        "ami_bytes", (json_int_t)st->bytes, "derived_events", (json_int_t)a->n.derived,
        "gaps", (json_int_t)a->n.gaps, "kafka_delivered", (json_int_t)ps.delivered,
        "kafka_spooled", (json_int_t)ps.spooled, "kafka_dropped", (json_int_t)(ps.dropped + ps.failed),
        "active_calls", (json_int_t)callmodel_active_calls(a->cm));
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:o}", "agent_id", a->cfg->agent.id,
                          "site", a->cfg->site, "ami", ami_client_is_up(a->ami) ? "up" : "down",
                          "asterisk_version", a->asterisk_version, "ami_version", a->ami_version,
                          "uptime_s", a->mono - a->started, "reason", reason, "counters", counters);
    if (a->lead) json_object_set_new(d, "instance", json_string(a->instance));
    publish_json(a, TOPIC_STATUS, "callbus.agent.status", a->cfg->agent.id, a->now, d);
    a->next_status = a->mono + a->cfg->agent.status_interval_s;
}

/* The ami topic: headers in wire order, plus the exact bytes whenever the
 * headers alone could not give them back. Written by hand: this runs for
 * every event and jansson's tree would cost several times more. */
static void publish_ami(agent *a, const ami_msg *m, double time) {
    static const char *kinds[] = {"event", "response", "other"};
    const char *key = ami_get(m, "Linkedid");
    if (!key || !*key) key = ami_get(m, "Uniqueid");
    if (key && strcmp(key, "<unknown>") == 0) key = NULL;
    sbuf_reset(&a->buf);
    ce_begin(&a->buf, &a->src, "ami", ++a->seq[TOPIC_AMI], "callbus.ami.event", key, time);
    /* puts, not printf: vfprintf's set-up is a visible share of each event */
    sbuf_puts(&a->buf, "{\"kind\":\"");
    sbuf_puts(&a->buf, kinds[ami_msg_kind(m)]);
    sbuf_puts(&a->buf, "\",\"headers\":[");
    int lossy = m->noncanonical;
    for (size_t i = 0; i < m->count; i++) {
        if (i) sbuf_putc(&a->buf, ',');
        sbuf_putc(&a->buf, '[');
        lossy |= sbuf_json_str(&a->buf, m->headers[i].key, m->headers[i].key_len);
        sbuf_putc(&a->buf, ',');
        lossy |= sbuf_json_str(&a->buf, m->headers[i].value, m->headers[i].value_len);
        sbuf_putc(&a->buf, ']');
    }
    sbuf_putc(&a->buf, ']');
    if (lossy) {
        sbuf_puts(&a->buf, ",\"raw_base64\":\"");
        sbuf_base64(&a->buf, (const unsigned char *)m->raw, m->raw_len);
        sbuf_putc(&a->buf, '"');
    }
    sbuf_putc(&a->buf, '}');
    ce_end(&a->buf);
    publisher_send(a->pub, TOPIC_AMI, key, key ? strlen(key) : 0, a->buf.data, a->buf.len);
}

/* Final results are written durably: a crash right after a command's
 * outcome is known must not lose the only record of it. */
static void on_command_result(void *ctx, const char *command_id, double time, json_t *data) {
    const char *status = json_string_value(json_object_get(data, "status"));
    int final = !status || strcmp(status, "accepted") != 0;
    publish_json_as(ctx, TOPIC_RESULTS, "callbus.result", command_id, time, data, final);
}

static void on_model_event(void *ctx, cm_topic topic, const char *type, const char *key,
                           double time, json_t *data) {
    agent *a = ctx;
    a->n.derived++;
    state_apply(a->st, type, key, time, data);
    publish_json(a, topic == CM_TOPIC_CALLS ? TOPIC_CALLS : TOPIC_OPERATORS, type, key, time, data);
}

/* ---- The live state ------------------------------------------------------- */

static const topic_kind state_topics[STATE_KINDS] = {TOPIC_STATE_CALLS, TOPIC_STATE_OPERATORS,
                                                     TOPIC_STATE_QUEUES};

/* A changed record, or a tombstone (json NULL) for a call that ended. */
static void on_state_record(void *ctx, state_kind kind, const char *key, double time, const char *json,
                            size_t len) {
    agent *a = ctx;
    topic_kind t = state_topics[kind];
    a->n.state_records++;
    if (json) publish(a, t, state_kind_type(kind), key, time, json, len, 0);
    else publisher_send(a->pub, t, key, strlen(key), NULL, 0);
}

/* Once per loop turn: what the turn's events changed, each record once. */
static void publish_state(agent *a) {
    if (a->mono >= a->next_stats) {
        state_tick(a->st, a->now);
        a->next_stats = a->mono + a->cfg->agent.state_stats_interval_s;
    }
    state_flush(a->st, on_state_record, a);
}

static state *new_state(const callbus_config *c) {
    state_settings set = {.timezone = c->timezone, .service_level_s = c->agent.state_service_level_s};
    return state_new(&set);
}

/* Today's counters and the live state continue from the state topics; when
 * they cannot be read, the agent starts from nothing and says so. */
static void recover_state(agent *a, int broker_answered) {
    char err[256] = "the broker did not answer at start";
    double started = wall_now(), took = mono_now();
    /* A broker that is away must not hold AMI back for the whole load
     * timeout: Asterisk does not keep events for a client not logged in. */
    long n = broker_answered ? state_load(a->cfg, a->st, a->cfg->agent.state_load_timeout_s, err, sizeof(err)) : -1;
    took = mono_now() - took;
    if (n < 0) {
        state_free(a->st);
        a->st = new_state(a->cfg);
        log_warn("state: not recovered (%s): today's counters start from zero", err);
        publish_gap(a, started, wall_now(), "state_not_recovered", err);
        return;
    }
    state_restore_end(a->st, wall_now());
    state_stats st;
    state_get_stats(a->st, &st);
    log_info("state: %ld records read back in %.1f s: %zu operators, %zu queues, %zu calls", n, took,
             st.operators, st.queues, st.calls);
}

/* ---- AMI ------------------------------------------------------------------ */

static void start_resync(agent *a) {
    callmodel_resync_begin(a->cm);
    a->resync_pending = 0;
    a->resync_members = 0;
    if (ami_client_send(a->ami, "CoreShowChannels", NULL, a->resync_ids[0], sizeof(a->resync_ids[0])) == 0)
        a->resync_pending++;
    if (ami_client_send(a->ami, "QueueStatus", NULL, a->resync_ids[1], sizeof(a->resync_ids[1])) == 0)
        a->resync_pending++;
    ami_client_send(a->ami, "CoreSettings", NULL, a->settings_id, sizeof(a->settings_id));
    if (a->cmds) executor_on_ami_up(a->cmds);
}

static void finish_resync(agent *a) {
    const char *reason = a->restarted ? "asterisk_restarted" : "ended_while_link_down";
    size_t before = callmodel_active_calls(a->cm);
    callmodel_resync_end(a->cm, reason, a->now);
    size_t after = callmodel_active_calls(a->cm);
    log_info("resync done: %zu calls active, %zu ended (%s)", after,
             before > after ? before - after : 0, reason);
    /* Recovered calls the resync did not confirm ended while we were away. */
    size_t gone = state_reconcile(a->st, a->now, a->resync_members > 0);
    if (gone) log_info("state: %zu recovered calls ended while the agent was away", gone);
    if (a->gap_pending)
        publish_gap(a, a->down_since, a->now, a->restarted ? "asterisk_restarted" : "ami_disconnected",
                    a->down_reason);
    a->gap_pending = 0;
    a->restarted = 0;
    a->resync_pending = 0;
}

static void on_ami_up(void *ctx, const char *banner) {
    agent *a = ctx;
    const char *slash = strrchr(banner, '/');
    snprintf(a->ami_version, sizeof(a->ami_version), "%s", slash ? slash + 1 : "");
    /* The gap is announced when the resync ends: only then do we know (from
     * FullyBooted's Uptime) whether Asterisk restarted meanwhile. */
    if (a->ever_up) {
        if (a->shutdown_seen) a->restarted = 1;
        a->gap_pending = 1;
    }
    a->ever_up = 1;
    a->shutdown_seen = 0;
    start_resync(a);
    publish_status(a, "ami_up");
    /* Ready means logged in to Asterisk; later logins repeat it harmlessly. */
    sdnotify("READY=1");
    sdnotify_status("AMI up (%s:%d, %s)", a->cfg->agent.ami_host, a->cfg->agent.ami_port, banner);
}

static void on_ami_down(void *ctx, const char *reason) {
    agent *a = ctx;
    /* Down again before the last gap was announced: the gap goes on. */
    if (!a->gap_pending) {
        a->down_since = a->now;
        snprintf(a->down_reason, sizeof(a->down_reason), "%s", reason);
    }
    a->resync_pending = 0;
    if (a->cmds) executor_on_ami_down(a->cmds, reason);
    publish_status(a, "ami_down");
    sdnotify_status("AMI down (%s:%d: %s), reconnecting", a->cfg->agent.ami_host, a->cfg->agent.ami_port,
                    reason);
}

/* Uptime lower than the time since the boot we knew means Asterisk started
 * again while we were away (or between two of our sessions). */
static void on_fully_booted(agent *a, const ami_msg *m) {
    const char *up = ami_get(m, "Uptime");
    if (!up) return;
    /* Uptime has whole seconds and arrives a little late: more than 1.5 s
     * between the two boot estimates cannot be rounding. */
    double boot = a->mono - atof(up);
    if (a->boot_time > 0 && boot > a->boot_time + 1.5) {
        a->restarted = 1;
        log_warn("ami: Asterisk restarted (uptime %s s)", up);
    }
    a->boot_time = boot;
}

static int is_resync_reply(agent *a, const char *id) {
    return a->resync_pending && id &&
           (strcmp(id, a->resync_ids[0]) == 0 || strcmp(id, a->resync_ids[1]) == 0);
}

static void on_event(agent *a, const ami_msg *m) {
    const char *name = ami_get_or(m, "Event", "");
    const char *id = ami_get(m, "ActionID");
    if (is_resync_reply(a, id)) {
        const char *list = ami_get(m, "EventList");
        if (list && strcasecmp(list, "Complete") == 0) {
            if (--a->resync_pending == 0) finish_resync(a);
        } else {
            if (strcasecmp(name, "QueueMember") == 0) a->resync_members++;
            callmodel_resync_item(a->cm, m);
        }
        return;
    }
    if (strcmp(name, "FullyBooted") == 0) on_fully_booted(a, m);
    else if (strcmp(name, "Shutdown") == 0) a->shutdown_seen = 1;
    callmodel_on_event(a->cm, m, a->now);
}

static void on_response(agent *a, const ami_msg *m) {
    const char *id = ami_get(m, "ActionID");
    if (!id) return;
    if (strcmp(id, a->settings_id) == 0) {
        snprintf(a->asterisk_version, sizeof(a->asterisk_version), "%s",
                 ami_get_or(m, "AsteriskVersion", ""));
        return;
    }
    /* A list action that failed never sends its Complete event. */
    const char *resp = ami_get_or(m, "Response", "");
    if (is_resync_reply(a, id) && strcasecmp(resp, "Success") != 0) {
        log_warn("resync: %s refused: %s", id, ami_get_or(m, "Message", ""));
        if (--a->resync_pending == 0) finish_resync(a);
    }
}

static void on_ami_message(void *ctx, ami_msg *m) {
    agent *a = ctx;
    publish_ami(a, m, cm_event_time(m, a->now));
    if (a->cmds && executor_on_ami_message(a->cmds, m)) return;
    switch (ami_msg_kind(m)) {
    case AMI_EVENT: a->n.events++; on_event(a, m); break;
    case AMI_RESPONSE: a->n.responses++; on_response(a, m); break;
    default: a->n.other++; break;
    }
}

/* Refused input goes to the ami topic as kind refused (its first bytes) and
 * is announced as a parse_error gap: an event may be missing there. */
static void publish_refused(agent *a, const char *what, const char *raw, size_t len, const char *why) {
    sbuf_reset(&a->buf);
    ce_begin(&a->buf, &a->src, "ami", ++a->seq[TOPIC_AMI], "callbus.ami.event", NULL, a->now);
    sbuf_printf(&a->buf, "{\"kind\":\"refused\",\"error\":\"%s\",\"raw_len\":%zu,\"raw_base64\":\"", what, len);
    sbuf_base64(&a->buf, (const unsigned char *)raw, len < REFUSED_KEEP ? len : REFUSED_KEEP);
    sbuf_puts(&a->buf, "\"}");
    ce_end(&a->buf);
    publisher_send(a->pub, TOPIC_AMI, NULL, 0, a->buf.data, a->buf.len);
    char detail[256];
    snprintf(detail, sizeof(detail), "%s: %zu bytes refused%s%s", what, len, why ? ": " : "", why ? why : "");
    publish_gap(a, a->now, a->now, "parse_error", detail);
}

static void on_ami_refused(void *ctx, ami_error err, const char *raw, size_t len) {
    agent *a = ctx;
    static const char *names[] = {"", "line_too_long", "too_many_headers", "line_without_colon"};
    const char *what = err <= AMI_ERR_NO_COLON ? names[err] : "unknown";
    /* Lines without a colon are kept inside their message: nothing is lost. */
    if (err == AMI_ERR_NO_COLON) return;
    a->n.refused++;
    publish_refused(a, what, raw, len, NULL);
}

/* A message only dialplan data injected into the stream can make: neither
 * the call model nor the executor ever sees it. */
static void on_ami_forged(void *ctx, const ami_msg *m, const char *error, const char *detail) {
    agent *a = ctx;
    a->n.forged++;
    publish_refused(a, error, m->raw, m->raw_len, detail);
}

/* ---- Metrics and health ----------------------------------------------------- */

static const char *role(const agent *a) {
    if (!a->lead) return "single";
    if (publisher_fenced(a->pub)) return "fenced";
    return publisher_leading(a->pub) ? "leader" : "standby";
}

static int http_handler_fn(void *ctx, const char *path, sbuf *body, const char **ctype) {
    agent *a = ctx;
    publisher_stats ps;
    publisher_get_stats(a->pub, &ps);
    int up = ami_client_is_up(a->ami);
    if (strcmp(path, "/health") == 0) {
        *ctype = "application/json";
        int ok = up && ps.broker_up;
        sbuf_printf(body, "{\"status\":\"%s\",\"ami\":\"%s\",\"kafka\":\"%s\",\"role\":\"%s\",\"spool_bytes\":%llu}\n",
                    ok ? "ok" : "degraded", up ? "up" : "down", ps.broker_up ? "up" : "down", role(a),
                    (unsigned long long)ps.spool_bytes);
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/metrics") != 0) {
        sbuf_puts(body, "not found: try /metrics or /health\n");
        return 404;
    }
    const ami_parser_stats *st = ami_client_parser_stats(a->ami);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *ctype = "text/plain; version=0.0.4";
#define M(type, name, help, fmt, v) \
    sbuf_printf(body, "# HELP callbus_agent_" name " " help "\n# TYPE callbus_agent_" name " " type \
                "\ncallbus_agent_" name " " fmt "\n", v)
#define C(name, help, v) M("counter", name, help, "%llu", (unsigned long long)(v))
#define G(name, help, v) M("gauge", name, help, "%llu", (unsigned long long)(v))
    G("ami_up", "1 when logged in to AMI", up);
    G("leader", "1 when this agent publishes and executes commands (always, without agent.standby)",
      !a->lead || publisher_leading(a->pub));
    C("takeovers_total", "times this agent took over from another instance (agent.standby)", a->takeovers);
    C("standby_unsent_total", "messages not sent because this agent was the standby", ps.standby);
    G("kafka_up", "0 after librdkafka reported all brokers down, 1 again at the next delivery", ps.broker_up);
    C("ami_events_total", "AMI events received", a->n.events);
    C("ami_responses_total", "AMI action responses received (not Login and keep-alive Ping replies)",
      a->n.responses);
    C("ami_bytes_total", "bytes read from AMI", st->bytes);
    C("ami_refused_total", "AMI input refused (over max_line or max_headers)", a->n.refused);
    C("ami_forged_total", "AMI messages refused as injected by dialplan data (not from Asterisk itself)",
      a->n.forged);
    C("gaps_total", "callbus.agent.gap events published", a->n.gaps);
    C("derived_events_total", "call and operator events derived", a->n.derived);
    G("active_calls", "calls in progress in the call model", callmodel_active_calls(a->cm));
    state_stats ss;
    state_get_stats(a->st, &ss);
    C("state_records_total", "records published to the state topics (tombstones included)", a->n.state_records);
    G("state_operators", "operators in the live state", ss.operators);
    G("state_queues", "queues in the live state", ss.queues);
    C("kafka_sent_total", "messages handed to the publisher", ps.sent);
    C("kafka_delivered_total", "messages acknowledged by Kafka", ps.delivered);
    C("kafka_failed_total", "permanent produce or delivery failures", ps.failed);
    G("kafka_queued", "messages in librdkafka's queue now", ps.queued);
    C("spooled_total", "messages written to the disk spool", ps.spooled);
    C("dropped_total", "messages lost because the spool was full or unwritable", ps.dropped);
    G("spool_bytes", "current spool size", ps.spool_bytes);
    M("gauge", "max_rss_bytes", "peak resident memory of the agent", "%ld", ru.ru_maxrss * 1024L);
#undef C
#undef G
#undef M
    if (a->cmds) {
        executor_stats cs;
        executor_get_stats(a->cmds, &cs);
        static const char *const results[] = {"received", "accepted", "succeeded", "failed",
                                               "rejected", "expired", "duplicate"};
        const uint64_t counts[] = {cs.received, cs.accepted, cs.succeeded, cs.failed,
                                   cs.rejected, cs.expired, cs.duplicate};
        sbuf_puts(body, "# HELP callbus_agent_commands_total commands by outcome\n"
                        "# TYPE callbus_agent_commands_total counter\n");
        for (int i = 0; i < 7; i++)
            sbuf_printf(body, "callbus_agent_commands_total{result=\"%s\"} %llu\n", results[i],
                        (unsigned long long)counts[i]);
        sbuf_printf(body, "# HELP callbus_agent_commands_inflight actions sent and not yet answered\n"
                          "# TYPE callbus_agent_commands_inflight gauge\ncallbus_agent_commands_inflight %llu\n",
                    (unsigned long long)cs.inflight);
    }
    return 200;
}

/* ---- Epochs ------------------------------------------------------------------- */

/* The epoch only grows, even when the clock steps back: it is persisted and
 * every start takes max(last + 1, now). */
static long long next_epoch(const char *state_dir) {
    long long now = (long long)wall_now(), last = 0;
    if (!state_dir[0]) return now;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/epoch", state_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%lld", &last) != 1) last = 0;
        fclose(f);
    }
    long long epoch = last + 1 > now ? last + 1 : now;
    f = fopen(path, "w");
    if (f) {
        fprintf(f, "%lld\n", epoch);
        fflush(f);
        fsync(fileno(f));
        fclose(f);
    }
    return epoch;
}

/* ---- Commands and leading ------------------------------------------------------ */

static void store_offset(void *ctx, const char *topic, int32_t partition, int64_t offset) {
    agent *a = ctx;
    publisher_store_offset(a->pub, topic, partition, offset);
}

/* The offsets so far, the command's `accepted` among them, committed
 * before its action goes to Asterisk: an instance that was fenced since
 * cannot commit, so it cannot execute. */
static int decide(void *ctx) {
    agent *a = ctx;
    return publisher_commit(a->pub, 5000);
}

static int start_commands(agent *a, char *err, size_t errlen) {
    if (!a->cfg->commands.enabled) return 0;
    executor_env env = {.cfg = a->cfg, .ami = a->ami, .cm = a->cm, .publish_result = on_command_result,
                        .ctx = a};
    if (a->lead) {
        env.store_offset = store_offset;
        env.decide = decide;
        env.source = a->src.uri;
    }
    a->cmds = executor_new(&env, err, errlen);
    if (!a->cmds) return -1;
    if (a->lead) publisher_set_group(a->pub, executor_group(a->cmds));
    return 0;
}

static void renew_lease(agent *a, int released) {
    json_t *d = leader_lease(a->lead, a->mono, a->src.epoch, released);
    if (d) publish_json(a, TOPIC_LEASES, "callbus.agent.lease", a->cfg->agent.id, a->now, d);
}

/* Fenced: whatever this instance sends is never seen, and another one
 * leads. Exit (status 3) so that the service manager starts this one again,
 * as the standby. */
static void step_down(agent *a) {
    if (a->exit_code) return;
    log_error("standby: fenced: another instance of agent %s leads; exiting (status 3) to come back as standby",
              a->cfg->agent.id);
    a->exit_code = 3;
    a->stop = 1;
}

/* From here on exactly what a start does: the live state read back from
 * the state topics as the old leader left them, a call model that the
 * resync builds anew, and the two reconciled, so that a call that ended
 * while nobody led is ended on the state topics too. What this instance
 * saw as the standby is dropped: it published none of it. */
static void restart_model(agent *a) {
    callmodel_free(a->cm);
    a->cm = callmodel_new(a->ids, on_model_event, a);
    state_free(a->st);
    a->st = new_state(a->cfg);
    recover_state(a, 1);
}

/* The epoch goes past the old leader's, so consumers never take this
 * leader's sequence for an older one; the gap covers the lease that lapsed
 * and the resync confirms what AMI says now. */
static void take_over(agent *a) {
    char err[512];
    int rc = publisher_lead(a->pub, 10000, err, sizeof(err));
    if (rc > 0) {
        log_warn("standby: cannot take over yet (%s): trying again", err);
        return;
    }
    if (rc < 0) {
        log_error("standby: cannot take over: %s", err);
        step_down(a);
        return;
    }
    leader_stop_listening(a->lead);
    a->takeovers++;
    long long epoch = next_epoch(a->cfg->state_dir);
    if (epoch <= leader_last_epoch(a->lead)) epoch = leader_last_epoch(a->lead) + 1;
    a->src.epoch = epoch;
    memset(a->seq, 0, sizeof(a->seq));
    char detail[384];
    if (leader_last_epoch(a->lead))
        snprintf(detail, sizeof(detail), "instance %s took over from %s (epoch %lld)", a->instance,
                 leader_last_instance(a->lead), (long long)leader_last_epoch(a->lead));
    else
        snprintf(detail, sizeof(detail), "instance %s leads: no other instance's lease heard", a->instance);
    log_warn("standby: %s: leading now (epoch %lld)", log_str(detail), epoch);
    renew_lease(a, 0);
    publish_gap(a, leader_last_heard(a->lead), a->now, "leader_takeover", detail);
    publish_status(a, "leader");
    restart_model(a);
    if (start_commands(a, err, sizeof(err)) < 0) {
        log_error("standby: %s", err);
        step_down(a);
        return;
    }
    if (ami_client_is_up(a->ami)) start_resync(a);
    publisher_commit(a->pub, 5000);
}

static void lead_or_follow(agent *a) {
    if (publisher_fenced(a->pub)) step_down(a);
    else if (publisher_leading(a->pub)) renew_lease(a, 0);
    else if (leader_poll(a->lead, a->mono)) take_over(a);
}

/* ---- Setup and loop --------------------------------------------------------- */

static identity_map *build_identities(const callbus_config *c) {
    identity_map *ids = identity_map_new();
    for (size_t i = 0; i < c->operator_count; i++)
        identity_map_add(ids, c->operators[i].interface, c->operators[i].id, c->operators[i].name);
    return ids;
}

agent *agent_new(callbus_config *c, char *err, size_t errlen) {
    agent *a = xcalloc(1, sizeof(*a));
    a->cfg = c;
    a->now = wall_now();
    a->mono = a->started = mono_now();
    sbuf_init(&a->buf);
    if (c->state_dir[0]) mkdir(c->state_dir, 0750);
    ce_source_init(&a->src, c->site, "agent", c->agent.id, next_epoch(c->state_dir));
    a->pub = publisher_new(c, err, errlen);
    if (!a->pub) goto fail;
    a->ids = build_identities(c);
    a->st = new_state(c);
    a->cm = callmodel_new(a->ids, on_model_event, a);
    ami_client_handlers h = {.on_up = on_ami_up, .on_down = on_ami_down,
                             .on_message = on_ami_message, .on_refused = on_ami_refused,
                             .on_forged = on_ami_forged};
    a->ami = ami_client_new(c, &h, a, err, errlen);
    if (!a->ami) goto fail;
    /* Topics first: a consumer subscribed to a missing topic only notices
     * it much later. */
    char commands_topic[256];
    config_topic(c, "commands", commands_topic, sizeof(commands_topic));
    recover_state(a, publisher_create_topics(a->pub, c->commands.enabled ? commands_topic : NULL, 6, 5000));
    if (c->agent.standby) {
        char host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(a->instance, sizeof(a->instance), "%s/%d/%lld", host, (int)getpid(), (long long)a->src.epoch);
        a->lead = leader_new(c, a->instance, err, errlen);
        if (!a->lead) goto fail;
        log_info("standby: instance %s waits %d ms for a leader's lease before leading", a->instance,
                 c->agent.takeover_ms);
    } else if (start_commands(a, err, errlen) < 0) {
        goto fail;
    }
    if (c->agent.http_listen[0]) {
        a->http = http_server_new(c->agent.http_listen, http_handler_fn, a, err, errlen);
        if (!a->http) goto fail;
        log_info("metrics on http://%s/metrics (port %d), health on /health", c->agent.http_listen,
                 http_server_port(a->http));
    }
    srand((unsigned)(a->now * 1000) ^ (unsigned)getpid());
    return a;
fail:
    agent_free(a);
    return NULL;
}

/* Losses are announced at most every 10 s: while the spool is full, the
 * announcement itself may be lost too and is counted in the next one. */
static void report_drops(agent *a) {
    if (a->mono < a->next_drop_report) return;
    uint64_t by_kind[TOPIC_KINDS];
    uint64_t lost = publisher_take_dropped(a->pub, by_kind);
    if (!lost) return;
    /* By topic: a consumer of one topic learns how many of its own it lost
     * (on the compacted state topics, holes in seq cannot show it). */
    char detail[512];
    int len = snprintf(detail, sizeof(detail), "%llu messages could not be kept (spool full or unwritable):",
                       (unsigned long long)lost);
    for (int t = 0; t < TOPIC_KINDS && len < (int)sizeof(detail); t++)
        if (by_kind[t])
            len += snprintf(detail + len, sizeof(detail) - (size_t)len, " %s %llu", topic_kind_name(t),
                            (unsigned long long)by_kind[t]);
    publish_gap(a, a->now, a->now, "kafka_undeliverable", detail);
    /* The announcement itself could not be kept (refused, or its spool
     * write failed: hence the flush now): the next one counts what this
     * one would have, and itself. */
    publisher_flush_spool(a->pub);
    uint64_t gap_lost[TOPIC_KINDS];
    if (publisher_take_dropped(a->pub, gap_lost)) {
        for (int t = 0; t < TOPIC_KINDS; t++) by_kind[t] += gap_lost[t];
        publisher_keep_dropped(a->pub, by_kind);
    }
    a->next_drop_report = a->mono + 10;
}

static void loop_once(agent *a) {
    struct pollfd fds[24];
    int n = 0;
    int ami_fd = ami_client_fd(a->ami);
    if (ami_fd >= 0) fds[n++] = (struct pollfd){.fd = ami_fd, .events = ami_client_poll_events(a->ami)};
    if (a->cmds && executor_fd(a->cmds) >= 0)
        fds[n++] = (struct pollfd){.fd = executor_fd(a->cmds), .events = POLLIN};
    int wake_fd = publisher_wake_fd(a->pub);
    if (wake_fd >= 0) fds[n++] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
    int http_at = n;
    if (a->http) n += http_server_fill_pollfds(a->http, fds + n, 24 - n);
    double wait = ami_client_tick(a->ami, a->mono);
    int timeout = wait > 0.1 ? 100 : (int)(wait * 1000);
    if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR) log_error("poll: %s", strerror(errno));
    a->now = wall_now();
    a->mono = mono_now();
    if (ami_fd >= 0 && fds[0].revents) ami_client_handle(a->ami, fds[0].revents, a->mono);
    if (a->http) http_server_handle(a->http, fds + http_at, n - http_at);
    if (a->cmds) executor_poll(a->cmds, a->now, a->mono);
    publish_state(a);
    if (a->lead) lead_or_follow(a);
    publisher_poll(a->pub);
    report_drops(a);
    if (a->mono >= a->next_status) publish_status(a, "periodic");
    sdnotify_watchdog();
}

int agent_run(agent *a) {
    log_info("agent %s of site %s starting (epoch %lld), AMI %s:%d", a->cfg->agent.id, a->cfg->site,
             (long long)a->src.epoch, a->cfg->agent.ami_host, a->cfg->agent.ami_port);
    /* Starting may have taken seconds (topics, state): deadlines run from now. */
    a->now = wall_now();
    a->mono = mono_now();
    publish_status(a, "started");
    sdnotify_status("connecting to AMI %s:%d", a->cfg->agent.ami_host, a->cfg->agent.ami_port);
    while (!a->stop) loop_once(a);
    sdnotify("STOPPING=1\nSTATUS=stopping: logging off and flushing Kafka");
    log_info("stopping: logging off and flushing Kafka");
    ami_client_logoff(a->ami);
    a->now = wall_now();
    a->mono = mono_now();
    state_flush(a->st, on_state_record, a);
    publish_status(a, "stopped");
    if (a->lead && publisher_leading(a->pub)) renew_lease(a, 1);
    publisher_close(a->pub, 5000);
    return a->exit_code;
}

void agent_stop(agent *a) { a->stop = 1; }

void agent_free(agent *a) {
    if (!a) return;
    http_server_free(a->http);
    executor_free(a->cmds);
    leader_free(a->lead);
    ami_client_free(a->ami);
    callmodel_free(a->cm);
    state_free(a->st);
    identity_map_free(a->ids);
    publisher_free(a->pub);
    sbuf_free(&a->buf);
    free(a);
}
