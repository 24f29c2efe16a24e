/* topic_read.c -- read some topics once, up to their end (see topic_read.h).
 *
 * One consumer without offsets committed (assign, not subscribe): each
 * partition from its start point up to the high watermark seen before
 * reading. */
#include "topic_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "kafka_conf.h"
#include "log.h"

typedef struct reader {
    const char *const *topics;
    int ntopics;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *parts;
    int64_t *high;          /* per partition of parts: read up to here; 0 once done */
    int left;               /* partitions not read to their end yet */
    long records;
    double deadline;
    topic_read_fn fn;
    void *ctx;
} reader;

static rd_kafka_t *consumer(const callbus_config *cfg, char *err, size_t errlen) {
    /* Never joined (assign only), but librdkafka wants a group id; named for
     * what reads, not for one of its callers (the state or the results). */
    char group[128];
    snprintf(group, sizeof(group), "callbus-agent-%s-readback", cfg->agent.id);
    const kafka_prop defaults[] = {{"group.id", group},
                                   {"enable.auto.commit", "false"},
                                   {"enable.partition.eof", "true"},
                                   {"isolation.level", "read_committed"},
                                   {"client.id", "callbus-agent"}};
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, sizeof(defaults) / sizeof(defaults[0]), cfg, err, errlen);
    return conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, err, errlen) : NULL;
}

static int ms_left(const reader *r) {
    double left = r->deadline - mono_now();
    return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

static int topic_index(const reader *r, const char *topic) {
    for (int k = 0; k < r->ntopics; k++)
        if (strcmp(topic, r->topics[k]) == 0) return k;
    return -1;
}

/* Every partition of the topics that exist. */
static int find_partitions(reader *r, char *err, size_t errlen) {
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t rc = rd_kafka_metadata(r->rk, 1, NULL, &md, ms_left(r));
    if (rc) {
        snprintf(err, errlen, "kafka metadata: %s", rd_kafka_err2str(rc));
        return -1;
    }
    r->parts = rd_kafka_topic_partition_list_new(r->ntopics);
    for (int t = 0; t < md->topic_cnt; t++) {
        if (md->topics[t].err || topic_index(r, md->topics[t].topic) < 0) continue;
        for (int p = 0; p < md->topics[t].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(r->parts, md->topics[t].topic, md->topics[t].partitions[p].id);
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* A partition just created may have no leader for a moment: retry until
 * the deadline. */
static int high_watermarks(reader *r, char *err, size_t errlen) {
    r->high = xcalloc((size_t)r->parts->cnt + 1, sizeof(*r->high));
    for (int i = 0; i < r->parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &r->parts->elems[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t rc;
        while ((rc = rd_kafka_query_watermark_offsets(r->rk, p->topic, p->partition, &lo, &hi, ms_left(r))) &&
               ms_left(r) > 0)
            usleep(200 * 1000);
        if (rc) {
            snprintf(err, errlen, "watermarks of %s/%d: %s", p->topic, p->partition, rd_kafka_err2str(rc));
            return -1;
        }
        r->high[i] = hi > lo ? hi : 0;
    }
    return 0;
}

/* Where each partition's read starts: its beginning, or its first record
 * at or after since_ms (none: nothing to read there). */
static int start_offsets(reader *r, int64_t since_ms, char *err, size_t errlen) {
    for (int i = 0; i < r->parts->cnt; i++) r->parts->elems[i].offset = since_ms < 0 ? RD_KAFKA_OFFSET_BEGINNING
                                                                                      : since_ms;
    if (since_ms >= 0) {
        rd_kafka_resp_err_t rc = rd_kafka_offsets_for_times(r->rk, r->parts, ms_left(r));
        if (rc) {
            snprintf(err, errlen, "offsets for times: %s", rd_kafka_err2str(rc));
            return -1;
        }
    }
    for (int i = 0; i < r->parts->cnt; i++) {
        int64_t from = r->parts->elems[i].offset;
        if (since_ms >= 0 && (from < 0 || from >= r->high[i])) r->high[i] = 0;
        if (r->high[i]) r->left++;
    }
    return 0;
}

static int part_index(const reader *r, const char *topic, int32_t partition) {
    for (int i = 0; i < r->parts->cnt; i++)
        if (r->parts->elems[i].partition == partition && strcmp(r->parts->elems[i].topic, topic) == 0) return i;
    return -1;
}

/* One message or partition end; a partition is done at its high watermark. */
static void take(reader *r, rd_kafka_message_t *m) {
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    int i = part_index(r, topic, m->partition);
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log_warn("reading %s: %s", topic, rd_kafka_message_errstr(m));
        return;
    }
    if (i < 0 || !r->high[i]) return;
    if (!m->err) {
        r->records++;
        r->fn(r->ctx, topic_index(r, topic), m);
    }
    int64_t next = m->err ? m->offset : m->offset + 1;
    if (next >= r->high[i]) {
        r->high[i] = 0;
        r->left--;
    }
}

static int read_to_end(reader *r, char *err, size_t errlen) {
    rd_kafka_resp_err_t rc = rd_kafka_assign(r->rk, r->parts);
    if (rc) {
        snprintf(err, errlen, "kafka assign: %s", rd_kafka_err2str(rc));
        return -1;
    }
    while (r->left > 0) {
        if (ms_left(r) == 0) {
            snprintf(err, errlen, "%d partitions not read to their end in time (%ld records read)", r->left,
                     r->records);
            return -1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 100);
        if (!m) continue;
        take(r, m);
        rd_kafka_message_destroy(m);
    }
    return 0;
}

long topic_read(const callbus_config *cfg, const char *const *topics, int ntopics, int64_t since_ms,
                double timeout_s, topic_read_fn fn, void *ctx, char *err, size_t errlen) {
    reader r = {.topics = topics, .ntopics = ntopics, .deadline = mono_now() + timeout_s, .fn = fn, .ctx = ctx};
    r.rk = consumer(cfg, err, errlen);
    if (!r.rk) return -1;
    int rc = find_partitions(&r, err, errlen);
    if (rc == 0) rc = high_watermarks(&r, err, errlen);
    if (rc == 0) rc = start_offsets(&r, since_ms, err, errlen);
    if (rc == 0 && r.left) rc = read_to_end(&r, err, errlen);
    rd_kafka_consumer_close(r.rk);
    rd_kafka_destroy(r.rk);
    if (r.parts) rd_kafka_topic_partition_list_destroy(r.parts);
    free(r.high);
    return rc < 0 ? -1 : r.records;
}
