/* rdkafka_check: proves the system librdkafka talks to the test broker.
 *
 *   rdkafka_check BOOTSTRAP TOPIC [N]
 *
 * Produces N (default 1000) keyed messages with an idempotent producer
 * (enable.idempotence=true, acks=all), then consumes them back through a
 * consumer group (subscribe, manual commit) and checks every message arrived
 * exactly once with the right payload. Then a second consumer in the same
 * group must see nothing new (the commit took). Exit 0 on success.
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int delivered, delivery_failed;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
        delivery_failed++;
    } else {
        delivered++;
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    fprintf(stderr, "librdkafka error: %s: %s\n",
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "config %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int produce(const char *bootstrap, const char *topic, int n)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstrap) || set(conf, "enable.idempotence", "true") ||
        set(conf, "acks", "all") || set(conf, "linger.ms", "5")) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "producer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char key[32], val[64];
        snprintf(key, sizeof key, "k%d", i % 17);
        snprintf(val, sizeof val, "message %d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE(val, strlen(val)),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e) {
            fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
            rd_kafka_destroy(rk);
            return -1;
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk, 30000);
    rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, err, sizeof err);
    if (fatal)
        fprintf(stderr, "producer fatal error: %s\n", err);
    rd_kafka_destroy(rk);
    if (fe || fatal || delivered != n || delivery_failed) {
        fprintf(stderr, "produce: flush=%s delivered=%d/%d failed=%d\n", rd_kafka_err2str(fe),
                delivered, n, delivery_failed);
        return -1;
    }
    printf("produced %d messages idempotently (acks=all)\n", n);
    return 0;
}

static rd_kafka_t *consumer(const char *bootstrap, const char *group, const char *topic)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstrap) || set(conf, "group.id", group) ||
        set(conf, "auto.offset.reset", "earliest") || set(conf, "enable.auto.commit", "false")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "consumer: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        fprintf(stderr, "subscribe: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* Consume until `want` messages seen or `idle` seconds with nothing new
 * (after the first assignment) or `limit` seconds overall. Returns count. */
static int consume(rd_kafka_t *rk, int n, unsigned char *seen, int want, double idle, double limit,
                   int *bad)
{
    int got = 0;
    double start = now(), last = 0;
    while (got < want && now() - start < limit) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (last && now() - last > idle)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
                (*bad)++;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        last = now();
        int i = -1;
        char buf[64];
        size_t len = m->len < sizeof buf - 1 ? m->len : sizeof buf - 1;
        memcpy(buf, m->payload, len);
        buf[len] = 0;
        if (sscanf(buf, "message %d", &i) != 1 || i < 0 || i >= n) {
            fprintf(stderr, "unexpected payload '%s'\n", buf);
            (*bad)++;
        } else if (seen[i]++) {
            fprintf(stderr, "duplicate message %d\n", i);
            (*bad)++;
        }
        got++;
        rd_kafka_message_destroy(m);
    }
    return got;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC [N]\n", argv[0]);
        return 2;
    }
    const char *bootstrap = argv[1], *topic = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 1000;
    if (n <= 0)
        n = 1000;
    printf("librdkafka %s, bootstrap %s, topic %s\n", rd_kafka_version_str(), bootstrap, topic);

    if (produce(bootstrap, topic, n))
        return 1;

    char group[256];
    snprintf(group, sizeof group, "%s-check", topic);
    unsigned char *seen = calloc((size_t)n, 1);
    int bad = 0;
    rd_kafka_t *c = consumer(bootstrap, group, topic);
    if (!c || !seen)
        return 1;
    int got = consume(c, n, seen, n, 10, 60, &bad);
    rd_kafka_resp_err_t ce = rd_kafka_commit(c, NULL, 0);
    if (ce)
        fprintf(stderr, "commit: %s\n", rd_kafka_err2str(ce));
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    int missing = 0;
    for (int i = 0; i < n; i++)
        missing += !seen[i];
    printf("consumed %d/%d in group %s (missing %d, bad %d), commit %s\n", got, n, group, missing,
           bad, rd_kafka_err2str(ce));
    if (got != n || missing || bad || ce) {
        free(seen);
        return 1;
    }

    /* same group again: the committed offsets must hold, nothing new. */
    c = consumer(bootstrap, group, topic);
    if (!c)
        return 1;
    memset(seen, 0, (size_t)n);
    /* poll until the group has assigned partitions, then 3 s more. */
    int again = 0, assigned = 0;
    double t0 = now(), t_assigned = 0;
    while (now() - t0 < 30 && (!t_assigned || now() - t_assigned < 3)) {
        again += consume(c, n, seen, 1, 0.5, 0.5, &bad);
        rd_kafka_topic_partition_list_t *parts = NULL;
        if (!t_assigned && !rd_kafka_assignment(c, &parts) && parts && parts->cnt > 0) {
            assigned = parts->cnt;
            t_assigned = now();
        }
        if (parts)
            rd_kafka_topic_partition_list_destroy(parts);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    free(seen);
    printf("second consumer in group: %d new messages, %d partitions assigned\n", again,
           assigned);
    if (again || bad || assigned == 0)
        return 1;
    printf("OK\n");
    return 0;
}
