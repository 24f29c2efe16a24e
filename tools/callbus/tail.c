/* tail.c -- `callbus tail`: follow a callbus topic, pretty or as JSON lines.
 *
 * Reads without a consumer group (partitions assigned directly), so tailing
 * never disturbs a production consumer's offsets or triggers a rebalance. */
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static void print_pretty(const rd_kafka_message_t *m) {
    if (!m->payload) {   /* a tombstone: the key's end in a compacted topic (a call ended) */
        printf("%-27s %-28s %.*s\n", "-", "(tombstone)", (int)m->key_len, m->key ? (const char *)m->key : "-");
        return;
    }
    json_error_t jerr;
    json_t *ev = json_loadb(m->payload, m->len, 0, &jerr);
    if (!ev) {
        printf("[p%d@%lld] (not JSON: %s) %.*s\n", m->partition, (long long)m->offset, jerr.text,
               (int)(m->len > 200 ? 200 : m->len), (const char *)m->payload);
        return;
    }
    const char *time = json_string_value(json_object_get(ev, "time"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *subject = json_string_value(json_object_get(ev, "subject"));
    json_t *data = json_object_get(ev, "data");
    char *d = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    printf("%-27s %-28s %-16s %s\n", time ? time : "-", type ? type : "-", subject ? subject : "-",
           d ? d : "");
    free(d);
    json_decref(ev);
}

/* Assigns every partition of topic, from the beginning or the end. */
static int assign_all(rd_kafka_t *rk, const char *topic, int from_beginning) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    /* The agent may still be creating its topics: wait a little for them. */
    for (int tries = 0;; tries++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
        err = rd_kafka_metadata(rk, 0, t, &md, 10000);
        rd_kafka_topic_destroy(t);
        if (err || md->topic_cnt < 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
            tries >= 30)
            break;
        rd_kafka_metadata_destroy(md);
        sleep(1);
    }
    if (err || md->topic_cnt < 1 || md->topics[0].err) {
        fprintf(stderr, "callbus tail: topic %s: %s\n", topic,
                rd_kafka_err2str(err ? err : md->topics[0].err));
        if (!err) rd_kafka_metadata_destroy(md);
        return -1;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
    rd_kafka_metadata_destroy(md);
    err = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return err ? -1 : 0;
}

static const char usage_text[] =
    "usage: callbus tail [--from-beginning] [--json] [--count N] [--idle-exit S] TOPIC\n"
    "  TOPIC: ami, calls, operators, status, commands, results, or a full topic name\n";

int cmd_tail(cli_ctx *cx, int argc, char **argv) {
    static const struct option opts[] = {{"from-beginning", no_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'j'},
                                         {"count", required_argument, 0, 'n'},
                                         {"idle-exit", required_argument, 0, 'i'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int from_beginning = 0, json = 0, opt;
    long count = 0;
    double idle_exit = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "bjn:i:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'b': from_beginning = 1; break;
        case 'j': json = 1; break;
        case 'n': count = atol(optarg); break;
        case 'i': idle_exit = atof(optarg); break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    char topic[256];
    cli_topic(cx, argv[optind], topic, sizeof(topic));
    rd_kafka_t *rk = cli_consumer(cx);
    if (!rk || assign_all(rk, topic, from_beginning) < 0) {
        if (rk) rd_kafka_destroy(rk);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    long seen = 0;
    double idle = 0;
    while (!stopping && (!count || seen < count)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            idle += 0.2;
            if (idle_exit > 0 && idle >= idle_exit) break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "callbus tail: %s\n", rd_kafka_message_errstr(m));
        } else {
            idle = 0;
            seen++;
            if (json) printf("%.*s\n", m->payload ? (int)m->len : 4, m->payload ? (const char *)m->payload : "null");
            else print_pretty(m);
            fflush(stdout);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
