/* kafka_in.c -- the gateway's reader of the site's state topics and its
 * results topic: one consumer, no group (every gateway reads everything).
 * The three compacted state topics (operators, calls, queues: the agent's
 * current state, docs/messages.md) are read from the beginning, and before
 * clients are accepted up to the high watermarks seen at start, so the view
 * is complete when the first client arrives and a restart costs the number
 * of keys, not the length of the day. Results are read from their end: a
 * restarted gateway has no one waiting for old ones (a results topic that
 * appears later is read from its beginning: all of it is new). Afterwards
 * librdkafka wakes the server's loop through a pipe whenever messages wait,
 * and every record goes through the view to the sessions it concerns
 * (through gw_clients: this file knows no session).
 * Topics that do not exist yet are looked for again every 2 s. The event
 * topics (calls, operators) are history for the CRM: never read here. */
#include "gateway.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "kafka_conf.h"
#include "log.h"

#define NTOPICS 4

struct gw_kafka_in {
    view *view;
    gw_metrics *m;
    gw_clients out;            /* the view's deliveries and the Kafka state */
    const volatile int *stopping;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;   /* the consumer queue, for the wake-up fd */
    char topics[NTOPICS][256];
    rd_kafka_topic_t *handles[NTOPICS];
    int assigned[NTOPICS];
    int started;               /* the first assignment is done */
    double next_lookup;
};

/* In view_topic's order. */
static const char *const kinds[NTOPICS] = {"state.operators", "state.calls", "state.queues", "results"};
static const view_topic view_topics[NTOPICS] = {VIEW_TOPIC_OPERATORS, VIEW_TOPIC_CALLS, VIEW_TOPIC_QUEUES,
                                                VIEW_TOPIC_RESULTS};

/* librdkafka says when every broker is down but not when one is back;
 * its statistics (every statistics.interval.ms) list each broker's state. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    gw_kafka_in *k = opaque;
    json_t *st = json_loadb(json, len, 0, NULL);
    const char *name;
    json_t *b;
    int up = 0;
    json_object_foreach(json_object_get(st, "brokers"), name, b) {
        const char *state = json_string_value(json_object_get(b, "state"));
        if (json_integer_value(json_object_get(b, "nodeid")) >= 0 && state && !strcmp(state, "UP")) up = 1;
    }
    if (st) k->out.kafka_state(k->out.ctx, up);
    json_decref(st);
    return 0;
}

gw_kafka_in *gw_kafka_in_new(const callbus_config *cfg, view *v, gw_metrics *metrics, gw_clients out,
                             const volatile int *stopping, char *err, size_t errlen) {
    gw_kafka_in *k = xcalloc(1, sizeof(*k));
    k->view = v;
    k->m = metrics;
    k->out = out;
    k->stopping = stopping;
    char group[128];
    snprintf(group, sizeof(group), "callbus-gateway-%s", cfg->gateway.id);
    const kafka_prop defaults[] = {{"group.id", group}, {"enable.auto.commit", "false"},
                                   {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
                                   {"enable.partition.eof", "true"}, {"client.id", "callbus-gateway"},
                                   {"fetch.wait.max.ms", "10"}, {"statistics.interval.ms", "5000"}};
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, sizeof(defaults) / sizeof(defaults[0]), cfg, err, errlen);
    if (conf) {
        rd_kafka_conf_set_stats_cb(conf, on_stats);
        rd_kafka_conf_set_opaque(conf, k);
    }
    rd_kafka_t *rk = conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, err, errlen) : NULL;
    if (!rk) {
        free(k);
        return NULL;
    }
    /* Errors and logs come through the consumer queue too: one queue to
     * serve, one fd to wake on. */
    rd_kafka_poll_set_consumer(rk);
    k->rk = rk;
    k->queue = rd_kafka_queue_get_consumer(rk);
    /* A handle per topic before the first metadata request, so that its
     * answer gives their partitions a leader: an assigned partition's start
     * offset is then looked up at once, where librdkafka, finding no leader
     * yet, would try again 500 ms later (half of a start after a day). */
    for (int i = 0; i < NTOPICS; i++) {
        config_topic(cfg, kinds[i], k->topics[i], sizeof(k->topics[i]));
        k->handles[i] = rd_kafka_topic_new(rk, k->topics[i], NULL);
    }
    return k;
}

/* Assigns the partitions of the topics that exist now and were not yet
 * assigned. Returns the number of topics still missing, -1 on error. */
static int assign_new(gw_kafka_in *k, int timeout_ms) {
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(k->rk, 1, NULL, &md, timeout_ms);
    if (rc) {
        log_warn("gateway: kafka metadata: %s", rd_kafka_err2str(rc));
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    int missing = 0;
    for (int i = 0; i < NTOPICS; i++) {
        if (k->assigned[i]) continue;
        int found = 0;
        for (int t = 0; t < md->topic_cnt; t++) {
            const rd_kafka_metadata_topic_t *mt = &md->topics[t];
            if (strcmp(mt->topic, k->topics[i]) || mt->err || mt->partition_cnt <= 0) continue;
            int64_t from = view_topics[i] == VIEW_TOPIC_RESULTS && !k->started ? RD_KAFKA_OFFSET_END
                                                                                 : RD_KAFKA_OFFSET_BEGINNING;
            for (int p = 0; p < mt->partition_cnt; p++)
                rd_kafka_topic_partition_list_add(l, mt->topic, mt->partitions[p].id)->offset = from;
            found = 1;
            log_info("gateway: reading %s (%d partitions)", mt->topic, mt->partition_cnt);
        }
        if (found) k->assigned[i] = 1;
        else missing++;
    }
    rd_kafka_metadata_destroy(md);
    k->started = 1;
    if (l->cnt) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(k->rk, l);
        if (e) {
            log_warn("gateway: kafka assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            for (int i = 0; i < NTOPICS; i++) k->assigned[i] = 0;
            missing = -1;
            rd_kafka_assign(k->rk, NULL);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return missing;
}

static void handle(gw_kafka_in *k, rd_kafka_message_t *m, int live) {
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) k->out.kafka_state(k->out.ctx, 0);
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            k->m->kafka_errors++;
            log_warn("gateway: kafka: %s", rd_kafka_message_errstr(m));
        }
        return;
    }
    k->m->kafka_msgs++;
    k->out.kafka_state(k->out.ctx, 1);
    const char *topic = rd_kafka_topic_name(m->rkt);
    int i = 0;
    while (i < NTOPICS && strcmp(topic, k->topics[i])) i++;
    if (i == NTOPICS) return;
    int n = view_apply(k->view, view_topics[i], m->key, m->key_len, m->payload, m->len,
                       live ? k->out.stream : NULL, k->out.ctx);
    if (n < 0)
        log_warn("gateway: %s/%d@%lld: not a usable %s record", topic, m->partition, (long long)m->offset,
                 kinds[i]);
    else
        log_debug("gateway: %s/%d@%lld: delivered to %d streams", topic, m->partition, (long long)m->offset, n);
}

/* A partition just created may have no leader yet for a moment: retry
 * until the deadline rather than fail the start. */
static rd_kafka_resp_err_t watermarks(gw_kafka_in *k, const char *topic, int32_t partition, double deadline,
                                      int64_t *lo, int64_t *hi) {
    for (;;) {
        rd_kafka_resp_err_t rc = rd_kafka_query_watermark_offsets(k->rk, topic, partition, lo, hi, 5000);
        if (!rc || mono_now() > deadline || *k->stopping) return rc;
        log_info("gateway: watermarks of %s/%d: %s; retrying", topic, partition, rd_kafka_err2str(rc));
        usleep(200 * 1000);
    }
}

int gw_kafka_in_catch_up(gw_kafka_in *k, double timeout_s, char *err, size_t errlen) {
    double deadline = mono_now() + timeout_s;
    int missing;
    while ((missing = assign_new(k, 5000)) < 0) {
        if (mono_now() > deadline || *k->stopping) {
            snprintf(err, errlen, "cannot read Kafka metadata (is the broker up?)");
            return -1;
        }
    }
    k->next_lookup = mono_now() + 2;
    /* The high watermark of every state partition, now. */
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(k->rk, &l) || !l) return 0;
    int64_t *high = xcalloc((size_t)l->cnt + 1, sizeof(int64_t));
    int left = 0;
    for (int i = 0; i < l->cnt; i++) {
        if (!strcmp(l->elems[i].topic, k->topics[NTOPICS - 1])) continue;   /* results: from their end */
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t rc = watermarks(k, l->elems[i].topic, l->elems[i].partition, deadline, &lo, &hi);
        if (rc) {
            snprintf(err, errlen, "watermarks of %s/%d: %s", l->elems[i].topic, l->elems[i].partition,
                     rd_kafka_err2str(rc));
            free(high);
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        high[i] = hi > lo ? hi : 0;
        if (high[i]) left++;
    }
    size_t n = 0;
    while (left > 0) {
        if (mono_now() > deadline || *k->stopping) {
            snprintf(err, errlen, "the view was not rebuilt within %.0f s (%d partitions behind)", timeout_s, left);
            free(high);
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);
        if (!m) continue;
        const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
        int64_t next = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? m->offset : m->offset + 1;
        if (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (!m->err) n++;
            for (int i = 0; topic && i < l->cnt; i++) {
                if (high[i] && l->elems[i].partition == m->partition && !strcmp(l->elems[i].topic, topic) &&
                    next >= high[i]) {
                    high[i] = 0;
                    left--;
                }
            }
        }
        handle(k, m, 0);
        rd_kafka_message_destroy(m);
    }
    log_info("gateway: read %zu records from %d partitions to rebuild the view", n, l->cnt);
    free(high);
    rd_kafka_topic_partition_list_destroy(l);
    return 0;
}

void gw_kafka_in_wake_fd(gw_kafka_in *k, int fd) {
    if (!k || !k->queue) return;
    if (fd >= 0) rd_kafka_queue_io_event_enable(k->queue, fd, "1", 1);
    else rd_kafka_queue_io_event_enable(k->queue, -1, NULL, 0);
}

void gw_kafka_in_lookup(gw_kafka_in *k, double now) {
    if (!k || now < k->next_lookup) return;
    k->next_lookup = now + 2;
    int all = 1;
    for (int i = 0; i < NTOPICS; i++) all &= k->assigned[i];
    if (!all) assign_new(k, 100);
}

int gw_kafka_in_poll(gw_kafka_in *k, int max_msgs) {
    if (!k) return 0;
    for (int i = 0; i < max_msgs; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 0);
        if (!m) return 0;
        handle(k, m, 1);
        rd_kafka_message_destroy(m);
    }
    return 1;
}

void gw_kafka_in_free(gw_kafka_in *k) {
    if (!k) return;
    if (k->queue) {
        rd_kafka_queue_io_event_enable(k->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(k->queue);
    }
    rd_kafka_consumer_close(k->rk);
    for (int i = 0; i < NTOPICS; i++)
        if (k->handles[i]) rd_kafka_topic_destroy(k->handles[i]);
    rd_kafka_destroy(k->rk);
    free(k);
}
