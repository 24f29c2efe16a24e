/* cluster.c -- what lag, replay and check need from a Kafka cluster:
 * clients for a given bootstrap, partition counts, watermarks, the offsets
 * of a time window, and reading a range of one partition.
 *
 * Every call has a bounded wait (cli_timeout_ms), so a dead broker gives an
 * error after that long, never a hang. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kafka_conf.h"

int cli_timeout_ms = 15000;

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, const char *who) {
    char err[768];
    if (kafka_conf_set(conf, name, value, err, sizeof(err)) == 0) return 0;
    fprintf(stderr, "callbus %s: %s\n", who, err);
    return -1;
}

/* -X CLUSTER:name=value for this cluster, after the plain -X, so that it
 * overrides them for this cluster alone. */
static int set_scoped(const cli_ctx *cx, rd_kafka_conf_t *conf, const char *cluster, const char *who) {
    size_t n = cluster ? strlen(cluster) : 0;
    for (int i = 0; cluster && i < cx->nscoped; i++) {
        const char *s = cx->scoped[i], *eq = strchr(s, '=');
        if (strncmp(s, cluster, n) || s[n] != ':') continue;
        char name[256], err[768];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - s - (int)n - 1), s + n + 1);
        if (kafka_conf_set(conf, name, eq + 1, err, sizeof(err)) < 0) {
            fprintf(stderr, "callbus %s: cluster %s: %s\n", who, cluster, err);
            return -1;
        }
    }
    return 0;
}

int cli_is_scoped(const char *arg) {
    const char *colon = strchr(arg, ':'), *eq = strchr(arg, '=');
    return colon && eq && colon < eq;
}

int cli_check_clusters(const cli_ctx *cx, const char *who, const char *const *names, int n) {
    for (int i = 0; i < cx->nscoped; i++) {
        const char *s = cx->scoped[i];
        size_t len = (size_t)(strchr(s, ':') - s);
        int known = 0;
        for (int k = 0; k < n; k++) known |= strlen(names[k]) == len && !strncmp(names[k], s, len);
        if (known) continue;
        fprintf(stderr, "callbus %s: -X %s: no cluster \"%.*s\" here", who, s, (int)len, s);
        if (!n) fprintf(stderr, " (%s talks to one cluster: use plain -X name=value)\n", who);
        for (int k = 0; k < n; k++) fprintf(stderr, "%s%s%s", k ? ", " : "; its clusters: ", names[k], k == n - 1 ? "\n" : "");
        return -1;
    }
    return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk, (void)opaque;
    cli_delivery *d = m->_private;
    if (!d) return;
    if (!m->err) d->delivered++;
    else if (!d->failed++)
        snprintf(d->first_error, sizeof(d->first_error), "%s [%d]: %s", rd_kafka_topic_name(m->rkt), m->partition,
                 rd_kafka_err2str(m->err));
}

rd_kafka_t *cli_client(cli_ctx *cx, rd_kafka_type_t type, const char *bootstrap, const char *group,
                       const char *who, const char *cluster) {
    char err[768];
    kafka_prop defaults[5];
    size_t n = 0;
    if (type == RD_KAFKA_CONSUMER) {
        defaults[n++] = (kafka_prop){"group.id", group ? group : "callbus-cli"};
        defaults[n++] = (kafka_prop){"enable.auto.commit", "false"};
        defaults[n++] = (kafka_prop){"enable.partition.eof", "true"};
        defaults[n++] = (kafka_prop){"auto.offset.reset", "error"};
        /* Point reads: do not let the broker hold a fetch for new data. */
        defaults[n++] = (kafka_prop){"fetch.wait.max.ms", "20"};
    } else {
        defaults[n++] = (kafka_prop){"enable.idempotence", "true"};
        defaults[n++] = (kafka_prop){"message.timeout.ms", "60000"};
        /* Asking whether a target topic exists must not create it. */
        defaults[n++] = (kafka_prop){"allow.auto.create.topics", "false"};
    }
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, n, &cx->cfg, err, sizeof(err));
    if (!conf) {
        fprintf(stderr, "callbus %s: %s\n", who, err);
        return NULL;
    }
    if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    int bad = set_scoped(cx, conf, cluster, who) < 0 || (bootstrap && set(conf, "bootstrap.servers", bootstrap, who) < 0);
    if (!bad && !config_get_kafka(&cx->cfg, "bootstrap.servers") && !bootstrap) {
        fprintf(stderr, "callbus %s: no Kafka cluster given: -X bootstrap.servers=HOST:PORT, -c agent.conf or --bootstrap\n", who);
        bad = 1;
    }
    /* Quiet librdkafka's connection chatter: the errors that matter come
     * back from the calls and are printed once, with context. */
    if (bad || set(conf, "log_level", "3", who) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = kafka_client_new(type, conf, err, sizeof(err));
    if (!rk) fprintf(stderr, "callbus %s: %s\n", who, err);
    return rk;
}

int cli_partition_count(rd_kafka_t *rk, const char *topic, char *err, size_t errlen) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, cli_timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e) {
        snprintf(err, errlen, "cannot reach the cluster (%s) within %d s", rd_kafka_err2str(e), cli_timeout_ms / 1000);
        return -1;
    }
    int n = 0;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) n = md->topics[0].partition_cnt;
    else if (md->topic_cnt == 1 && md->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
        n = -1;
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

int cli_probe(rd_kafka_t *rk, char *err, size_t errlen) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, cli_timeout_ms);
    if (e) snprintf(err, errlen, "cannot reach the cluster (%s) within %d s", rd_kafka_err2str(e), cli_timeout_ms / 1000);
    else rd_kafka_metadata_destroy(md);
    return e ? -1 : 0;
}

int cli_watermarks(rd_kafka_t *rk, const char *topic, int part, int64_t *lo, int64_t *hi, char *err,
                   size_t errlen) {
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, part, lo, hi, cli_timeout_ms);
    if (e) snprintf(err, errlen, "%s [%d]: offsets: %s", topic, part, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

int cli_offset_for_time(rd_kafka_t *rk, const char *topic, int part, int64_t ms, int64_t hi, int64_t *out,
                        char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, part)->offset = ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, cli_timeout_ms);
    if (!e) e = l->elems[0].err;
    /* -1: no record at or after that time, so the window starts at the end. */
    if (!e) *out = l->elems[0].offset < 0 ? hi : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) snprintf(err, errlen, "%s [%d]: offsets for time: %s", topic, part, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

int cli_window(rd_kafka_t *rk, const char *topic, int part, int64_t from_ms, int64_t to_ms, cli_range *r,
               char *err, size_t errlen) {
    if (cli_watermarks(rk, topic, part, &r->lo, &r->hi, err, errlen) < 0) return -1;
    r->start = r->lo;
    r->end = r->hi;
    if (from_ms != CLI_NO_TIME && cli_offset_for_time(rk, topic, part, from_ms, r->hi, &r->start, err, errlen) < 0)
        return -1;
    if (to_ms != CLI_NO_TIME && cli_offset_for_time(rk, topic, part, to_ms, r->hi, &r->end, err, errlen) < 0)
        return -1;
    if (r->start < r->lo) r->start = r->lo;
    if (r->end < r->start) r->end = r->start;
    return 0;
}

int cli_read_range(rd_kafka_t *rk, const char *topic, int part, int64_t from, int64_t end, cli_msg_fn fn,
                   void *ud, char *err, size_t errlen) {
    if (from >= end) return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, part)->offset = from;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "%s [%d]: assign: %s", topic, part, rd_kafka_err2str(e));
        return -1;
    }
    int rc = 0, waited = 0;
    while (rc == 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if ((waited += 200) >= cli_timeout_ms) {
                snprintf(err, errlen, "%s [%d]: nothing read for %d s from offset %lld", topic, part,
                         cli_timeout_ms / 1000, (long long)from);
                rc = -1;
            }
            continue;
        }
        waited = 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) rc = 1;
        else if (m->err) {
            snprintf(err, errlen, "%s [%d]: %s", topic, part, rd_kafka_message_errstr(m));
            rc = -1;
        } else if (m->partition == part && m->offset >= end) rc = 1;
        else if (m->partition == part && (rc = fn(ud, m)) < 0)
            snprintf(err, errlen, "%s [%d]: stopped at offset %lld", topic, part, (long long)m->offset);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return rc < 0 ? -1 : 0;
}
