/* state_load.c -- reading the state topics back at start (see state_load.h).
 *
 * One consumer without a group (assign, no offsets committed): every
 * partition of the three topics from its beginning up to the high watermark
 * seen before reading, so records written meanwhile do not keep the read
 * going. Records are CloudEvents; only their data matters here, keyed by
 * the Kafka key. */
#include "state_load.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "kafka_conf.h"
#include "log.h"

static const char *const kinds[STATE_KINDS] = {"state.calls", "state.operators", "state.queues"};

typedef struct loader {
    const callbus_config *cfg;
    state *st;
    rd_kafka_t *rk;
    char topics[STATE_KINDS][256];
    rd_kafka_topic_partition_list_t *parts;
    int64_t *high;          /* per partition of parts: read up to here */
    int left;               /* partitions not read to their end yet */
    long records, skipped;
    double deadline;
} loader;

static rd_kafka_t *consumer(const callbus_config *cfg, char *err, size_t errlen) {
    char group[128];
    snprintf(group, sizeof(group), "callbus-agent-%s-state", cfg->agent.id);
    const kafka_prop defaults[] = {{"group.id", group}, {"enable.auto.commit", "false"},
                                   {"enable.partition.eof", "true"}, {"client.id", "callbus-agent"}};
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, sizeof(defaults) / sizeof(defaults[0]), cfg, err, errlen);
    return conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, err, errlen) : NULL;
}

static int ms_left(const loader *l) {
    double left = l->deadline - mono_now();
    return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/* Every partition of the state topics that exist. */
static int find_partitions(loader *l, char *err, size_t errlen) {
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(l->rk, 1, NULL, &md, ms_left(l));
    if (rc) {
        snprintf(err, errlen, "kafka metadata: %s", rd_kafka_err2str(rc));
        return -1;
    }
    l->parts = rd_kafka_topic_partition_list_new(STATE_KINDS);
    for (int t = 0; t < md->topic_cnt; t++)
        for (int k = 0; k < STATE_KINDS; k++) {
            if (strcmp(md->topics[t].topic, l->topics[k]) || md->topics[t].err) continue;
            for (int p = 0; p < md->topics[t].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(l->parts, l->topics[k], md->topics[t].partitions[p].id)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* A partition just created may have no leader for a moment: retry until
 * the deadline. */
static int high_watermarks(loader *l, char *err, size_t errlen) {
    l->high = xcalloc((size_t)l->parts->cnt + 1, sizeof(*l->high));
    for (int i = 0; i < l->parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &l->parts->elems[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t rc;
        while ((rc = rd_kafka_query_watermark_offsets(l->rk, p->topic, p->partition, &lo, &hi, ms_left(l))) &&
               ms_left(l) > 0)
            usleep(200 * 1000);
        if (rc) {
            snprintf(err, errlen, "watermarks of %s/%d: %s", p->topic, p->partition, rd_kafka_err2str(rc));
            return -1;
        }
        l->high[i] = hi > lo ? hi : 0;
        if (l->high[i]) l->left++;
    }
    return 0;
}

static int part_index(const loader *l, const char *topic, int32_t partition) {
    for (int i = 0; i < l->parts->cnt; i++)
        if (l->parts->elems[i].partition == partition && strcmp(l->parts->elems[i].topic, topic) == 0) return i;
    return -1;
}

static void restore(loader *l, const char *topic, const rd_kafka_message_t *m) {
    int kind = 0;
    while (kind < STATE_KINDS && strcmp(topic, l->topics[kind]) != 0) kind++;
    char key[512];
    if (kind == STATE_KINDS || !m->key || m->key_len == 0 || m->key_len >= sizeof(key)) {
        l->skipped++;
        return;
    }
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    json_t *ev = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    int rc = state_restore(l->st, (state_kind)kind, key, m->payload ? json_object_get(ev, "data") : NULL);
    if (m->payload && !ev) rc = -1;
    json_decref(ev);
    if (rc < 0 && l->skipped++ == 0)
        log_warn("state: %s/%d@%lld (key %s) is not a state record: skipped", topic, m->partition,
                 (long long)m->offset, log_str(key));
    l->records++;
}

/* One message or partition end; a partition is done at its high watermark. */
static void take(loader *l, rd_kafka_message_t *m) {
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    int i = part_index(l, topic, m->partition);
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log_warn("state: reading %s: %s", topic, rd_kafka_message_errstr(m));
        return;
    }
    if (!m->err) restore(l, topic, m);
    int64_t next = m->err ? m->offset : m->offset + 1;
    if (i >= 0 && l->high[i] && next >= l->high[i]) {
        l->high[i] = 0;
        l->left--;
    }
}

static int read_to_end(loader *l, char *err, size_t errlen) {
    rd_kafka_resp_err_t rc = rd_kafka_assign(l->rk, l->parts);
    if (rc) {
        snprintf(err, errlen, "kafka assign: %s", rd_kafka_err2str(rc));
        return -1;
    }
    while (l->left > 0) {
        if (ms_left(l) == 0) {
            snprintf(err, errlen, "%d state partitions not read to their end in time (%ld records read)", l->left,
                     l->records);
            return -1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(l->rk, 100);
        if (!m) continue;
        take(l, m);
        rd_kafka_message_destroy(m);
    }
    return 0;
}

long state_load(const callbus_config *cfg, state *st, double timeout_s, char *err, size_t errlen) {
    loader l = {.cfg = cfg, .st = st, .deadline = mono_now() + timeout_s};
    for (int k = 0; k < STATE_KINDS; k++) config_topic(cfg, kinds[k], l.topics[k], sizeof(l.topics[k]));
    l.rk = consumer(cfg, err, errlen);
    if (!l.rk) return -1;
    int rc = find_partitions(&l, err, errlen);
    if (rc == 0) rc = high_watermarks(&l, err, errlen);
    if (rc == 0 && l.left) rc = read_to_end(&l, err, errlen);
    if (l.skipped) log_warn("state: %ld records skipped (not state records)", l.skipped);
    rd_kafka_consumer_close(l.rk);
    rd_kafka_destroy(l.rk);
    if (l.parts) rd_kafka_topic_partition_list_destroy(l.parts);
    free(l.high);
    return rc < 0 ? -1 : l.records;
}
