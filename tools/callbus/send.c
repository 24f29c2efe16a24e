/* send.c -- `callbus send`: build a command, produce it, print its results.
 *
 * The result consumer is positioned at the end of the results topic before
 * the command is produced, so no result can slip by between the two. */
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cli.h"
#include "clock.h"
#include "cloudevent.h"
#include "kafka_conf.h"

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static int is_final(const char *status) {
    return status && strcmp(status, "accepted") != 0;
}

/* key=value arguments into data; var.NAME=value into data.variables, and
 * penalty as a number. */
static int fill_data(json_t *data, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i]) {
            fprintf(stderr, "callbus send: \"%s\" is not key=value\n", argv[i]);
            return -1;
        }
        char *key = xstrndup(argv[i], (size_t)(eq - argv[i]));
        if (!strncmp(key, "var.", 4)) {
            json_t *vars = json_object_get(data, "variables");
            if (!vars) json_object_set_new(data, "variables", vars = json_object());
            json_object_set_new(vars, key + 4, json_string(eq + 1));
        } else if (!strcmp(key, "penalty")) {
            json_object_set_new(data, key, json_integer(atoi(eq + 1)));
        } else {
            json_object_set_new(data, key, json_string(eq + 1));
        }
        free(key);
    }
    return 0;
}

static char *build_command(const char *type, const char *id, const char *sender, double expires_in,
                           json_t *data) {
    double now = wall_now();
    const char *subject = json_string_value(json_object_get(data, "call_id"));
    if (!subject) subject = json_string_value(json_object_get(data, "operator_id"));
    char full_type[64];
    snprintf(full_type, sizeof(full_type), "callbus.command.%s", type);
    sbuf ev;
    sbuf_init(&ev);
    ce_begin_command(&ev, id, "callbus://cli/callbus", full_type, subject, now, now + expires_in, sender);
    char *d = json_dumps(data, JSON_COMPACT);
    sbuf_puts(&ev, d);
    free(d);
    ce_end(&ev);
    return ev.data;
}

static int produce(cli_ctx *cx, const char *topic, const char *key, const char *value) {
    static const kafka_prop defaults[] = {{"enable.idempotence", "true"}};
    char err[768];
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, 1, &cx->cfg, err, sizeof(err));
    rd_kafka_t *rk = conf ? kafka_client_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)) : NULL;
    if (!rk) {
        fprintf(stderr, "callbus send: %s\n", err);
        return -1;
    }
    rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                              RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!e && rd_kafka_flush(rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (e) fprintf(stderr, "callbus send: cannot produce to %s: %s\n", topic, rd_kafka_err2str(e));
    rd_kafka_destroy(rk);
    return e ? -1 : 0;
}

/* Assigns every partition of topic at its end. */
static int assign_end(rd_kafka_t *rk, const char *topic) {
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (err || md->topics[0].err) {
        fprintf(stderr, "callbus send: results topic %s: %s\n", topic,
                rd_kafka_err2str(err ? err : md->topics[0].err));
        if (!err) rd_kafka_metadata_destroy(md);
        return -1;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo, hi;
        int32_t p = md->topics[0].partitions[i].id;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000)) hi = RD_KAFKA_OFFSET_END;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    err = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return err ? -1 : 0;
}

/* Prints results for id until a final one; returns 0 if it succeeded. */
static int await_results(rd_kafka_t *rk, const char *id, double wait_s) {
    double deadline = mono_now() + wait_s;
    while (!stopping && mono_now() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        json_t *ev = m->err ? NULL : json_loadb(m->payload, m->len, 0, NULL);
        json_t *data = json_object_get(ev, "data");
        const char *cid = json_string_value(json_object_get(data, "command_id"));
        const char *status = json_string_value(json_object_get(data, "status"));
        int done = 0, ok = 0;
        if (cid && !strcmp(cid, id)) {
            char *d = json_dumps(data, JSON_COMPACT);
            printf("%s\n", d);
            fflush(stdout);
            free(d);
            done = is_final(status);
            ok = status && !strcmp(status, "succeeded");
        }
        json_decref(ev);
        rd_kafka_message_destroy(m);
        if (done) return ok ? 0 : 3;
    }
    fprintf(stderr, "callbus send: no final result for %s within %.0f s\n", id, wait_s);
    return 4;
}

static const char usage_text[] =
    "usage: callbus send [--id ID] [--sender WHO] [--expires-in S] [--wait S] [--no-wait] TYPE key=value...\n"
    "  TYPE: originate, answer, hangup, transfer, pause, unpause, queue_login, queue_logout,\n"
    "        listen, whisper; var.NAME=value sets an originate channel variable\n"
    "  e.g.  callbus send originate operator_id=op101 number=5552001\n"
    "  exit: 0 succeeded, 3 another final result, 4 no final result in time\n";

int cmd_send(cli_ctx *cx, int argc, char **argv) {
    static const struct option opts[] = {{"id", required_argument, 0, 'i'},
                                         {"sender", required_argument, 0, 's'},
                                         {"expires-in", required_argument, 0, 'e'},
                                         {"wait", required_argument, 0, 'w'},
                                         {"no-wait", no_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    char id[160] = "", sender[128];
    double expires_in = 30, wait_s = 60;
    int no_wait = 0, opt;
    snprintf(sender, sizeof(sender), "cli:%s", getenv("USER") ? getenv("USER") : "ops");
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+i:s:e:w:nh", opts, NULL)) != -1) {
        switch (opt) {
        case 'i': snprintf(id, sizeof(id), "%s", optarg); break;
        case 's': snprintf(sender, sizeof(sender), "%s", optarg); break;
        case 'e': expires_in = atof(optarg); break;
        case 'w': wait_s = atof(optarg); break;
        case 'n': no_wait = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *type = argv[optind];
    json_t *data = json_object();
    if (fill_data(data, argc - optind - 1, argv + optind + 1) < 0) {
        json_decref(data);
        return 2;
    }
    if (!*id) snprintf(id, sizeof(id), "%s:cli-%d:%lld:1", cx->cfg.site, (int)getpid(), (long long)(wall_now() * 1000));
    json_t *key = json_object_get(data, "call_id");
    if (!key) key = json_object_get(data, "operator_id");
    char keybuf[160];
    snprintf(keybuf, sizeof(keybuf), "%s", key ? json_string_value(key) : id);
    char *value = build_command(type, id, sender, expires_in, data);
    json_decref(data);

    char topic[256], results[256];
    cli_topic(cx, "commands", topic, sizeof(topic));
    cli_topic(cx, "results", results, sizeof(results));
    rd_kafka_t *rk = no_wait ? NULL : cli_consumer(cx);
    if (!no_wait && (!rk || assign_end(rk, results) < 0)) {
        if (rk) rd_kafka_destroy(rk);
        free(value);
        return 1;
    }
    signal(SIGINT, on_signal);
    int rc = produce(cx, topic, keybuf, value) < 0 ? 1 : 0;
    if (rc == 0) fprintf(stderr, "callbus send: %s sent to %s\n", id, topic);
    if (rc == 0 && rk) rc = await_results(rk, id, wait_s);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    free(value);
    return rc;
}
