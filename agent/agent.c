/* agent.c -- the agent's event loop and the glue between AMI, the call model
 * and Kafka (see agent.h).
 *
 * Every AMI message is published to the ami topic first and then given to
 * the call model, whose derived events go to the calls and operators topics.
 * After each (re)connect the agent announces the gap, asks Asterisk for its
 * channels and queues, and lets the model end the calls that vanished. */
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

#include "ami_client.h"
#include "callmodel.h"
#include "commands.h"
#include "cloudevent.h"
#include "http.h"
#include "identity.h"
#include "log.h"
#include "publisher.h"
#include "sbuf.h"

/* Refused input is published, but only its first bytes: a runaway line can
 * be megabytes and the point is to show what went wrong. */
#define REFUSED_KEEP 65536

typedef struct agent_counters {
    uint64_t events, responses, other, refused, gaps, derived;
} agent_counters;

struct agent {
    callbus_config *cfg;
    volatile sig_atomic_t stop;
    publisher *pub;
    ami_client *ami;
    callmodel *cm;
    commands *cmds;         /* NULL when commands are disabled */
    identity_map *ids;
    http_server *http;
    ce_source src;
    uint64_t seq[TOPIC_KINDS];
    sbuf buf;
    double now;
    double started;
    agent_counters n;

    /* AMI link history, for gap announcements and restart detection. */
    int ever_up;
    double down_since;
    char down_reason[128];
    int shutdown_seen;
    double boot_time;       /* Asterisk start time estimated from FullyBooted */
    int restarted;
    int gap_pending;        /* reconnected; gap announced when the resync ends */
    char asterisk_version[64];
    char ami_version[32];

    /* Resync in progress: ActionIDs of the list actions still answering. */
    char resync_ids[2][32];
    int resync_pending;
    char settings_id[32];

    double next_status;
    double next_drop_report;
    uint64_t gap_seq;
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
                          "site", a->cfg->site, "from", cm_rfc3339(from, f, sizeof(f)),
                          "to", cm_rfc3339(to, t, sizeof(t)), "reason", reason, "detail",
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
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ami_events", (json_int_t)a->n.events,
        "ami_responses", (json_int_t)a->n.responses, "ami_refused", (json_int_t)a->n.refused,
        "ami_bytes", (json_int_t)st->bytes, "derived_events", (json_int_t)a->n.derived,
        "gaps", (json_int_t)a->n.gaps, "kafka_delivered", (json_int_t)ps.delivered,
        "kafka_spooled", (json_int_t)ps.spooled, "kafka_dropped", (json_int_t)(ps.dropped + ps.failed),
        "active_calls", (json_int_t)callmodel_active_calls(a->cm));
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:o}", "agent_id", a->cfg->agent.id,
                          "site", a->cfg->site, "ami", ami_client_is_up(a->ami) ? "up" : "down",
                          "asterisk_version", a->asterisk_version, "ami_version", a->ami_version,
                          "uptime_s", a->now - a->started, "reason", reason, "counters", counters);
    publish_json(a, TOPIC_STATUS, "callbus.agent.status", a->cfg->agent.id, a->now, d);
    a->next_status = a->now + a->cfg->agent.status_interval_s;
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
    sbuf_printf(&a->buf, "{\"kind\":\"%s\",\"headers\":[", kinds[ami_msg_kind(m)]);
    int lossy = m->noncanonical;
    for (size_t i = 0; i < m->count; i++) {
        if (i) sbuf_putc(&a->buf, ',');
        sbuf_putc(&a->buf, '[');
        lossy |= sbuf_json_str(&a->buf, m->headers[i].key, strlen(m->headers[i].key));
        sbuf_putc(&a->buf, ',');
        lossy |= sbuf_json_str(&a->buf, m->headers[i].value, strlen(m->headers[i].value));
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
    publish_json(a, topic == CM_TOPIC_CALLS ? TOPIC_CALLS : TOPIC_OPERATORS, type, key, time, data);
}

/* ---- AMI ------------------------------------------------------------------ */

static void start_resync(agent *a) {
    callmodel_resync_begin(a->cm);
    a->resync_pending = 0;
    if (ami_client_send(a->ami, "CoreShowChannels", NULL, a->resync_ids[0], sizeof(a->resync_ids[0])) == 0)
        a->resync_pending++;
    if (ami_client_send(a->ami, "QueueStatus", NULL, a->resync_ids[1], sizeof(a->resync_ids[1])) == 0)
        a->resync_pending++;
    ami_client_send(a->ami, "CoreSettings", NULL, a->settings_id, sizeof(a->settings_id));
    if (a->cmds) commands_on_ami_up(a->cmds);
}

static void finish_resync(agent *a) {
    const char *reason = a->restarted ? "asterisk_restarted" : "ended_while_link_down";
    size_t before = callmodel_active_calls(a->cm);
    callmodel_resync_end(a->cm, reason, a->now);
    size_t after = callmodel_active_calls(a->cm);
    log_info("resync done: %zu calls active, %zu ended (%s)", after,
             before > after ? before - after : 0, reason);
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
}

static void on_ami_down(void *ctx, const char *reason) {
    agent *a = ctx;
    /* Down again before the last gap was announced: the gap goes on. */
    if (!a->gap_pending) {
        a->down_since = a->now;
        snprintf(a->down_reason, sizeof(a->down_reason), "%s", reason);
    }
    a->resync_pending = 0;
    if (a->cmds) commands_on_ami_down(a->cmds, reason);
    publish_status(a, "ami_down");
}

/* Uptime lower than the time since the boot we knew means Asterisk started
 * again while we were away (or between two of our sessions). */
static void on_fully_booted(agent *a, const ami_msg *m) {
    const char *up = ami_get(m, "Uptime");
    if (!up) return;
    /* Uptime has whole seconds and arrives a little late: more than 1.5 s
     * between the two boot estimates cannot be rounding. */
    double boot = a->now - atof(up);
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
    if (a->cmds && commands_on_ami_message(a->cmds, m)) return;
    switch (ami_msg_kind(m)) {
    case AMI_EVENT: a->n.events++; on_event(a, m); break;
    case AMI_RESPONSE: a->n.responses++; on_response(a, m); break;
    default: a->n.other++; break;
    }
}

static void on_ami_refused(void *ctx, ami_error err, const char *raw, size_t len) {
    agent *a = ctx;
    static const char *names[] = {"", "line_too_long", "too_many_headers", "line_without_colon"};
    const char *what = err <= AMI_ERR_NO_COLON ? names[err] : "unknown";
    /* Lines without a colon are kept inside their message: nothing is lost. */
    if (err == AMI_ERR_NO_COLON) return;
    a->n.refused++;
    sbuf_reset(&a->buf);
    ce_begin(&a->buf, &a->src, "ami", ++a->seq[TOPIC_AMI], "callbus.ami.event", NULL, a->now);
    sbuf_printf(&a->buf, "{\"kind\":\"refused\",\"error\":\"%s\",\"raw_len\":%zu,\"raw_base64\":\"", what, len);
    sbuf_base64(&a->buf, (const unsigned char *)raw, len < REFUSED_KEEP ? len : REFUSED_KEEP);
    sbuf_puts(&a->buf, "\"}");
    ce_end(&a->buf);
    publisher_send(a->pub, TOPIC_AMI, NULL, 0, a->buf.data, a->buf.len);
    char detail[96];
    snprintf(detail, sizeof(detail), "%s: %zu bytes refused", what, len);
    publish_gap(a, a->now, a->now, "parse_error", detail);
}

/* ---- Metrics and health ----------------------------------------------------- */

static int http_handler_fn(void *ctx, const char *path, sbuf *body, const char **ctype) {
    agent *a = ctx;
    publisher_stats ps;
    publisher_get_stats(a->pub, &ps);
    int up = ami_client_is_up(a->ami);
    if (strcmp(path, "/health") == 0) {
        *ctype = "application/json";
        int ok = up && ps.broker_up;
        sbuf_printf(body, "{\"status\":\"%s\",\"ami\":\"%s\",\"kafka\":\"%s\",\"spool_bytes\":%llu}\n",
                    ok ? "ok" : "degraded", up ? "up" : "down", ps.broker_up ? "up" : "down",
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
    sbuf_printf(body,
                "# TYPE callbus_agent_ami_up gauge\ncallbus_agent_ami_up %d\n"
                "# TYPE callbus_agent_kafka_up gauge\ncallbus_agent_kafka_up %d\n"
                "# TYPE callbus_agent_ami_events_total counter\ncallbus_agent_ami_events_total %llu\n"
                "# TYPE callbus_agent_ami_responses_total counter\ncallbus_agent_ami_responses_total %llu\n"
                "# TYPE callbus_agent_ami_bytes_total counter\ncallbus_agent_ami_bytes_total %llu\n"
                "# TYPE callbus_agent_ami_refused_total counter\ncallbus_agent_ami_refused_total %llu\n"
                "# TYPE callbus_agent_gaps_total counter\ncallbus_agent_gaps_total %llu\n"
                "# TYPE callbus_agent_derived_events_total counter\ncallbus_agent_derived_events_total %llu\n"
                "# TYPE callbus_agent_active_calls gauge\ncallbus_agent_active_calls %zu\n"
                "# TYPE callbus_agent_kafka_sent_total counter\ncallbus_agent_kafka_sent_total %llu\n"
                "# TYPE callbus_agent_kafka_delivered_total counter\ncallbus_agent_kafka_delivered_total %llu\n"
                "# TYPE callbus_agent_kafka_failed_total counter\ncallbus_agent_kafka_failed_total %llu\n"
                "# TYPE callbus_agent_kafka_queued gauge\ncallbus_agent_kafka_queued %llu\n"
                "# TYPE callbus_agent_spooled_total counter\ncallbus_agent_spooled_total %llu\n"
                "# TYPE callbus_agent_dropped_total counter\ncallbus_agent_dropped_total %llu\n"
                "# TYPE callbus_agent_spool_bytes gauge\ncallbus_agent_spool_bytes %llu\n"
                "# TYPE callbus_agent_max_rss_bytes gauge\ncallbus_agent_max_rss_bytes %ld\n",
                up, ps.broker_up, (unsigned long long)a->n.events, (unsigned long long)a->n.responses,
                (unsigned long long)st->bytes, (unsigned long long)a->n.refused,
                (unsigned long long)a->n.gaps, (unsigned long long)a->n.derived,
                callmodel_active_calls(a->cm), (unsigned long long)ps.sent,
                (unsigned long long)ps.delivered, (unsigned long long)ps.failed,
                (unsigned long long)ps.queued, (unsigned long long)ps.spooled,
                (unsigned long long)ps.dropped, (unsigned long long)ps.spool_bytes,
                ru.ru_maxrss * 1024L);
    if (a->cmds) {
        commands_stats cs;
        commands_get_stats(a->cmds, &cs);
        sbuf_printf(body,
                    "# TYPE callbus_agent_commands_total counter\n"
                    "callbus_agent_commands_total{result=\"received\"} %llu\n"
                    "callbus_agent_commands_total{result=\"accepted\"} %llu\n"
                    "callbus_agent_commands_total{result=\"succeeded\"} %llu\n"
                    "callbus_agent_commands_total{result=\"failed\"} %llu\n"
                    "callbus_agent_commands_total{result=\"rejected\"} %llu\n"
                    "callbus_agent_commands_total{result=\"expired\"} %llu\n"
                    "callbus_agent_commands_total{result=\"duplicate\"} %llu\n"
                    "# TYPE callbus_agent_commands_inflight gauge\ncallbus_agent_commands_inflight %llu\n",
                    (unsigned long long)cs.received, (unsigned long long)cs.accepted,
                    (unsigned long long)cs.succeeded, (unsigned long long)cs.failed,
                    (unsigned long long)cs.rejected, (unsigned long long)cs.expired,
                    (unsigned long long)cs.duplicate, (unsigned long long)cs.inflight);
    }
    return 200;
}

/* ---- Setup and loop --------------------------------------------------------- */

/* The epoch only grows, even when the clock steps back: it is persisted and
 * every start takes max(last + 1, now). */
static long long next_epoch(const char *state_dir) {
    long long now = (long long)time(NULL), last = 0;
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

static identity_map *build_identities(const callbus_config *c) {
    identity_map *ids = identity_map_new();
    for (size_t i = 0; i < c->operator_count; i++)
        identity_map_add(ids, c->operators[i].interface, c->operators[i].id, c->operators[i].name);
    return ids;
}

agent *agent_new(callbus_config *c, char *err, size_t errlen) {
    agent *a = calloc(1, sizeof(*a));
    a->cfg = c;
    a->now = a->started = ce_now();
    sbuf_init(&a->buf);
    if (c->state_dir[0]) mkdir(c->state_dir, 0750);
    ce_source_init(&a->src, c->site, "agent", c->agent.id, next_epoch(c->state_dir));
    a->pub = publisher_new(c, err, errlen);
    if (!a->pub) goto fail;
    a->ids = build_identities(c);
    a->cm = callmodel_new(a->ids, on_model_event, a);
    ami_client_handlers h = {.on_up = on_ami_up, .on_down = on_ami_down,
                             .on_message = on_ami_message, .on_refused = on_ami_refused};
    a->ami = ami_client_new(c, &h, a);
    /* Topics first: a consumer subscribed to a missing topic only notices
     * it much later. */
    char commands_topic[256];
    config_topic(c, "commands", commands_topic, sizeof(commands_topic));
    publisher_create_topics(a->pub, c->commands.enabled ? commands_topic : NULL, 6, 5000);
    if (c->commands.enabled) {
        commands_env env = {.cfg = c, .ami = a->ami, .cm = a->cm, .publish_result = on_command_result, .ctx = a};
        a->cmds = commands_new(&env, err, errlen);
        if (!a->cmds) goto fail;
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
    if (a->now < a->next_drop_report) return;
    uint64_t lost = publisher_take_dropped(a->pub);
    if (!lost) return;
    char detail[96];
    snprintf(detail, sizeof(detail), "%llu messages could not be kept (spool full or unwritable)",
             (unsigned long long)lost);
    publish_gap(a, a->now, a->now, "kafka_undeliverable", detail);
    a->next_drop_report = a->now + 10;
}

static void loop_once(agent *a) {
    struct pollfd fds[24];
    int n = 0;
    int ami_fd = ami_client_fd(a->ami);
    if (ami_fd >= 0) fds[n++] = (struct pollfd){.fd = ami_fd, .events = ami_client_poll_events(a->ami)};
    if (a->cmds && commands_fd(a->cmds) >= 0)
        fds[n++] = (struct pollfd){.fd = commands_fd(a->cmds), .events = POLLIN};
    int http_at = n;
    if (a->http) n += http_server_fill_pollfds(a->http, fds + n, 24 - n);
    double wait = ami_client_tick(a->ami, a->now);
    int timeout = wait > 0.1 ? 100 : (int)(wait * 1000);
    if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR) log_error("poll: %s", strerror(errno));
    a->now = ce_now();
    if (ami_fd >= 0 && fds[0].revents) ami_client_handle(a->ami, fds[0].revents, a->now);
    if (a->http) http_server_handle(a->http, fds + http_at, n - http_at);
    if (a->cmds) commands_poll(a->cmds, a->now);
    publisher_poll(a->pub);
    report_drops(a);
    if (a->now >= a->next_status) publish_status(a, "periodic");
}

int agent_run(agent *a) {
    log_info("agent %s of site %s starting (epoch %lld), AMI %s:%d", a->cfg->agent.id, a->cfg->site,
             (long long)a->src.epoch, a->cfg->agent.ami_host, a->cfg->agent.ami_port);
    publish_status(a, "started");
    while (!a->stop) loop_once(a);
    log_info("stopping: logging off and flushing Kafka");
    ami_client_logoff(a->ami);
    a->now = ce_now();
    publish_status(a, "stopped");
    publisher_close(a->pub, 5000);
    return 0;
}

void agent_stop(agent *a) { a->stop = 1; }

void agent_free(agent *a) {
    if (!a) return;
    http_server_free(a->http);
    commands_free(a->cmds);
    ami_client_free(a->ami);
    callmodel_free(a->cm);
    identity_map_free(a->ids);
    publisher_free(a->pub);
    sbuf_free(&a->buf);
    free(a);
}
