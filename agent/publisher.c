/* publisher.c -- librdkafka producer with a disk spool behind it (see publisher.h).
 *
 * Order: a message goes straight to librdkafka only while the spool is empty;
 * once anything is spooled, later messages queue behind it on disk, so the
 * broker sees them in the order the agent produced them and per-key order
 * holds across an outage. */
#include "publisher.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "kafka_conf.h"
#include "log.h"
#include "spool.h"

/* Without a standby there are no transactions (TX_NONE). With one, the
 * producer stays silent until it leads, then always has a transaction open
 * or committing, until another instance fences it. */
typedef enum tx_state { TX_NONE, TX_STANDBY, TX_OPEN, TX_COMMITTING, TX_FENCED } tx_state;

struct publisher {
    rd_kafka_t *rk;
    /* The topics operators wait on (the state topics, command results) have
     * a producer, so a connection, of their own without a standby: the
     * broker serves one connection's requests one at a time, one partition
     * each, and a state record queued behind the AMI stream's and the
     * history topics' requests: 0.3 ms of AMI event -> browser's p50 of
     * 2.8 ms (docs/benchmarks.md, "Latency anchors"). With a standby
     * every topic must be in the one transaction: live is rk then. */
    rd_kafka_t *live;
    rd_kafka_topic_t *topics[TOPIC_KINDS];
    char topic_names[TOPIC_KINDS][256];
    spool *spool;
    int closing;
    int broker_up;
    int write_ahead;
    int write_ahead_failing;
    int overflowing;     /* the queue filled: new messages wait on disk until it drains */
    unsigned spooled_since_pump;   /* see pump() */
    publisher_stats stats;
    uint64_t dropped_unreported[TOPIC_KINDS];   /* by topic, for the gap's detail */
    /* Topic creation; retried from publisher_poll until the broker answers. */
    rd_kafka_queue_t *admin_q;
    char commands_topic[256];
    int partitions, admin_timeout_ms;
    int create_failed;      /* said once per outage */
    /* agent.standby */
    tx_state tx;
    double commit_every, last_commit;   /* seconds, monotonic */
    uint64_t in_txn[TOPIC_KINDS];       /* produced into the open transaction */
    rd_kafka_topic_partition_list_t *offsets, *committing_offsets;
    rd_kafka_consumer_group_metadata_t *group;
    /* librdkafka writes to wake[1] when delivery reports arrive: room in
     * its queue for what waits in the spool (publisher_wake_fd). */
    int wake[2];
    rd_kafka_queue_t *main_q, *live_q;
};

static void on_admin(publisher *p, rd_kafka_event_t *ev);

static const char *kind_names[TOPIC_KINDS] = {"ami", "calls", "operators", "status", "results",
                                              "state.calls", "state.operators", "state.queues", "leases"};

/* A state topic holds the latest record per key: a reader reads it to its
 * end at start. Short segments and an eager cleaner keep the uncompacted
 * tail it must skip to a few minutes; tombstones stay an hour so a reader
 * that was briefly behind still sees a call end. One partition: total order
 * per topic at a few hundred records a second at most. */
static const char *state_topic_config[][2] = {
    {"cleanup.policy", "compact"},
    {"segment.ms", "60000"},
    {"min.cleanable.dirty.ratio", "0.1"},
    {"max.compaction.lag.ms", "120000"},
    {"delete.retention.ms", "3600000"},
};

static int is_state_topic(topic_kind t) {
    return t == TOPIC_STATE_CALLS || t == TOPIC_STATE_OPERATORS || t == TOPIC_STATE_QUEUES;
}

static rd_kafka_t *producer_of(const publisher *p, topic_kind t) {
    return is_state_topic(t) || t == TOPIC_RESULTS ? p->live : p->rk;
}

static int outq_len(const publisher *p) {
    return rd_kafka_outq_len(p->rk) + (p->live != p->rk ? rd_kafka_outq_len(p->live) : 0);
}

const char *topic_kind_name(topic_kind t) { return kind_names[t]; }

static int kind_of(const publisher *p, const rd_kafka_topic_t *rkt) {
    for (int t = 0; t < TOPIC_KINDS; t++)
        if (strcmp(rd_kafka_topic_name(rkt), p->topic_names[t]) == 0) return t;
    return TOPIC_AMI;
}

/* Messages that librdkafka gives back at shutdown go to the front of the
 * spool; permanent errors are counted as failed. A message that came from
 * the spool releases its place there either way, once it is safe. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    publisher *p = opaque;
    spool_hold *from_spool = m->_private;
    int purged = m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
    (void)rk;
    if (!m->err) {
        p->stats.delivered++;
        p->broker_up = 1;
    } else if (purged && p->tx != TX_NONE) {
        /* Leading ended: the next leader publishes from its own AMI link, and
         * a spool kept for later would be published by whoever this
         * instance is then. */
        p->stats.dropped++;
    } else if (purged && spool_append_front(p->spool, &(spool_record){.topic = (uint8_t)kind_of(p, m->rkt),
                                                                     .key = m->key, .keylen = m->key_len,
                                                                     .payload = m->payload, .len = m->len}) == 0) {
        p->stats.spooled++;
    } else if (purged && from_spool) {
        return;   /* not released: it stays in its segment and is sent again next start */
    } else {
        p->stats.failed++;
        p->dropped_unreported[kind_of(p, m->rkt)]++;
        if (p->tx != TX_FENCED)
            log_error("kafka: delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                      rd_kafka_err2str(m->err));
    }
    if (from_spool) spool_release(p->spool, from_spool);
}

/* A spooled message that never reached the disk (full, or an I/O error):
 * dropped like one refused by a full spool, and announced the same way. */
static void on_spool_lost(void *ctx, uint8_t topic) {
    publisher *p = ctx;
    p->stats.dropped++;
    p->dropped_unreported[topic < TOPIC_KINDS ? topic : TOPIC_AMI]++;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    publisher *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) p->broker_up = 0;
    if (err == RD_KAFKA_RESP_ERR__FATAL && p->tx != TX_NONE) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        if (p->tx != TX_FENCED) log_error("kafka: fenced (%s): another instance of this agent leads", why);
        p->tx = TX_FENCED;
        return;
    }
    log_warn("kafka: %s", reason);
}

/* Our defaults; the user's properties override any of them (kafka_conf.h). */
static rd_kafka_conf_t *build_conf(const callbus_config *c, publisher *p, int live, char *err, size_t errlen) {
    static const kafka_prop defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"message.timeout.ms", "0"},          /* never give up on a message */
        /* Operators wait on every message: 1 ms cost the AMI event ->
         * browser p50 0.7 ms (docs/benchmarks.md, issue 14 goal 4), and
         * batches fill without it under load: the messages that come while
         * the in-flight requests (5, idempotence) are out go together. */
        {"linger.ms", "0"},
        {"batch.num.messages", "10000"},
        {"compression.type", "lz4"},
        {"queue.buffering.max.messages", "200000"},
        {"queue.buffering.max.kbytes", "131072"},
        {"client.id", "callbus-agent"},
        /* The agent creates its topics itself (publisher_create_topics), the
         * state topics compacted: a broker that auto-creates a topic on the
         * producer's first metadata request would give it its defaults. */
        {"allow.auto.create.topics", "false"},
    };
    enum { N = sizeof(defaults) / sizeof(defaults[0]) };
    kafka_prop props[N + 4];
    memcpy(props, defaults, sizeof(defaults));
    size_t n = N;
    char txid[256];
    /* Written ahead, every message is on disk already: librdkafka's queue
     * need only keep the broker busy, and the spool is the buffer through
     * an outage. 4 MiB in all (3 for the AMI stream and history, 1 for the
     * state producer, whose topics carry a few hundred records a second)
     * keeps the agent's peak RSS near 14 MB at full load (128 MiB: 25-40
     * MB, growing with the broker's lag); set in order, so this one wins
     * over the default above, the user's over both. batch.size 256 KiB
     * (librdkafka's default is 1 MB): draining a spool after an outage
     * fills every partition's batch, five requests in flight; with 1 MB
     * the agent peaked at 21 MB there, with 256 KiB at 18.6 MB, at the same
     * events/s; the second producer at 4 MiB and 256 KiB took it to 24 MB,
     * at 1 MiB and 64 KiB to 19-19.4 MB (docs/benchmarks.md, goal 2). */
    if (c->agent.spool_write_ahead && !c->agent.standby) {
        props[n++] = (kafka_prop){"queue.buffering.max.kbytes", live ? "1024" : "3072"};
        props[n++] = (kafka_prop){"batch.size", live ? "65536" : "262144"};
    }
    if (c->agent.standby) {
        /* One transactional id per agent id: the instance that takes over
         * fences the one it replaces. A transaction must end within its
         * timeout, so no message may wait forever either. */
        snprintf(txid, sizeof(txid), "callbus-agent.%s.%s", c->site, c->agent.id);
        props[n++] = (kafka_prop){"transactional.id", txid};
        props[n++] = (kafka_prop){"transaction.timeout.ms", "60000"};
        props[n++] = (kafka_prop){"message.timeout.ms", "60000"};   /* set in order: this one wins */
    }
    rd_kafka_conf_t *conf = kafka_conf_new(props, n, c, err, errlen);
    if (!conf) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, p);
    return conf;
}

/* A standby's spool from an earlier run: what it holds was meant for a
 * transaction that was never committed, and whoever leads now has
 * published the same events from its own AMI link. */
static void discard_spool(publisher *p) {
    uint64_t bytes = spool_size(p->spool), n = 0;
    spool_record r;
    while (spool_peek(p->spool, &r) == 1) {
        spool_consume(p->spool);
        spool_release(p->spool, r.hold);
        n++;
    }
    if (n) log_warn("spool: %llu messages (%llu bytes) of an earlier run discarded: with a standby the leader "
                    "publishes from its own AMI link", (unsigned long long)n, (unsigned long long)bytes);
}

publisher *publisher_new(const callbus_config *c, char *err, size_t errlen) {
    publisher *p = xcalloc(1, sizeof(*p));
    p->wake[0] = p->wake[1] = -1;
    rd_kafka_conf_t *conf = build_conf(c, p, 0, err, errlen);
    if (!conf) goto fail;
    p->rk = kafka_client_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!p->rk) goto fail;
    p->live = p->rk;
    if (!c->agent.standby) {
        rd_kafka_conf_t *live_conf = build_conf(c, p, 1, err, errlen);
        p->live = live_conf ? kafka_client_new(RD_KAFKA_PRODUCER, live_conf, err, errlen) : NULL;
        if (!p->live) goto fail;
    }
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == 0) {
        p->main_q = rd_kafka_queue_get_main(p->rk);
        rd_kafka_queue_io_event_enable(p->main_q, p->wake[1], "1", 1);
        if (p->live != p->rk) {
            p->live_q = rd_kafka_queue_get_main(p->live);
            rd_kafka_queue_io_event_enable(p->live_q, p->wake[1], "1", 1);
        }
    } else {
        p->wake[0] = p->wake[1] = -1;
    }
    /* The topic handles come with the first message: a handle makes
     * librdkafka ask the broker for the topic's metadata, and a broker that
     * auto-creates topics would create it then with its defaults, before
     * publisher_create_topics could create it compacted. */
    for (int t = 0; t < TOPIC_KINDS; t++)
        config_topic(c, kind_names[t], p->topic_names[t], sizeof(p->topic_names[t]));
    char dir[PATH_MAX + 16];
    if (c->agent.spool_dir[0]) snprintf(dir, sizeof(dir), "%s", c->agent.spool_dir);
    else if (c->state_dir[0]) snprintf(dir, sizeof(dir), "%s/spool", c->state_dir);
    else snprintf(dir, sizeof(dir), "/var/lib/callbus/spool");
    p->spool = spool_open(dir, c->agent.spool_max_bytes, err, errlen);
    if (!p->spool) goto fail;
    spool_set_lost_handler(p->spool, on_spool_lost, p);
    if (c->agent.standby) {
        /* The spool only holds what waits behind a commit in progress. */
        discard_spool(p);
        p->tx = TX_STANDBY;
        p->commit_every = c->agent.commit_interval_ms / 1000.0;
    } else if (!spool_empty(p->spool)) {
        log_info("spool: %llu bytes from an earlier run will be sent first",
                 (unsigned long long)spool_size(p->spool));
    }
    p->broker_up = 1;
    p->write_ahead = c->agent.spool_write_ahead && !c->agent.standby;
    return p;
fail:
    publisher_free(p);
    return NULL;
}

/* 0 queued, 1 librdkafka's queue is full, -1 permanent error. */
static int produce(publisher *p, topic_kind t, const char *key, size_t keylen,
                   const char *payload, size_t len, spool_hold *from_spool) {
    if (!p->topics[t]) p->topics[t] = rd_kafka_topic_new(producer_of(p, t), p->topic_names[t], NULL);
    int rc = rd_kafka_produce(p->topics[t], RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                              (void *)payload, len, keylen ? key : NULL, keylen, from_spool);
    if (rc == 0) {
        p->in_txn[t]++;
        return 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_last_error();
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return 1;
    if (e == RD_KAFKA_RESP_ERR__FATAL && p->tx != TX_NONE) {
        p->tx = TX_FENCED;   /* said once, by on_error */
        return -1;
    }
    log_error("kafka: cannot produce to %s: %s", p->topic_names[t], rd_kafka_err2str(e));
    return -1;
}

static int to_spool(publisher *p, topic_kind t, const char *key, size_t keylen,
                    const char *payload, size_t len) {
    spool_record r = {.topic = (uint8_t)t, .key = key, .keylen = keylen,
                      .payload = payload, .len = len};
    if (spool_append(p->spool, &r) == 0) {
        p->stats.spooled++;
        return 0;
    }
    p->stats.dropped++;
    p->dropped_unreported[t]++;
    return -1;
}

/* Write-ahead: the message is on disk before librdkafka has it, and stays
 * there until the broker acknowledges it, so a crash loses nothing. */
static spool_hold *write_ahead(publisher *p, topic_kind t, const char *key, size_t keylen,
                               const char *payload, size_t len) {
    if (!p->write_ahead) return NULL;
    spool_record r = {.topic = (uint8_t)t, .key = key, .keylen = keylen, .payload = payload, .len = len};
    spool_hold *h = spool_write_ahead(p->spool, &r);
    if ((h == NULL) != p->write_ahead_failing) {
        p->write_ahead_failing = !h;
        if (h) log_info("spool: write-ahead works again");
        else log_error("spool: write-ahead failed (disk full or unwritable?): a crash now loses what librdkafka holds");
    }
    return h;
}

/* A standby, or a fenced leader, sends nothing: it would never be seen. */
static int silent(publisher *p) {
    if (p->tx != TX_STANDBY && p->tx != TX_FENCED) return 0;
    p->stats.standby++;
    return 1;
}

static void pump(publisher *p);

/* A flood's loop turn reads up to 4 MiB of AMI (thousands of events, tens
 * of ms): librdkafka's few MiB would be sent long before the turn ends and
 * the broker would wait for the next. Every PUMP_EVERY messages spooled,
 * the delivery reports free their room and the spool refills it. */
#define PUMP_EVERY 256

static int spool_and_pump(publisher *p, topic_kind t, const char *key, size_t keylen,
                          const char *payload, size_t len) {
    int rc = to_spool(p, t, key, keylen, payload, len);
    if (++p->spooled_since_pump >= PUMP_EVERY) pump(p);
    return rc;
}

int publisher_send(publisher *p, topic_kind t, const char *key, size_t keylen,
                   const char *payload, size_t len) {
    p->stats.sent++;
    if (silent(p)) return 0;
    /* A committing transaction takes no more messages: they wait on disk. */
    if (spool_empty(p->spool) && p->tx != TX_COMMITTING) {
        spool_hold *ahead = write_ahead(p, t, key, keylen, payload, len);
        int rc = produce(p, t, key, keylen, payload, len, ahead);
        if (rc == 0) return 0;
        if (rc < 0) {
            if (ahead) spool_release(p->spool, ahead);
            p->stats.failed++;
            p->dropped_unreported[t]++;
            return -1;
        }
        if (!p->overflowing)
            log_warn("kafka: in-memory queue full (broker slow or away): spooling to disk");
        p->overflowing = 1;
        if (ahead) {
            spool_give_back(p->spool, ahead);
            p->stats.spooled++;
            return 0;
        }
    }
    return spool_and_pump(p, t, key, keylen, payload, len);
}

int publisher_send_durable(publisher *p, topic_kind t, const char *key, size_t keylen,
                           const char *payload, size_t len) {
    p->stats.sent++;
    if (silent(p)) return 0;
    if (to_spool(p, t, key, keylen, payload, len) < 0) return -1;
    if (spool_sync(p->spool) < 0) {
        log_error("spool: fsync failed: a command result may not survive a crash");
        return -1;
    }
    return 0;
}

/* Feeds spooled messages to librdkafka until its queue is full again. */
static void drain_spool(publisher *p) {
    spool_record r;
    int n = 0;
    while (spool_peek(p->spool, &r) == 1) {
        if (r.topic >= TOPIC_KINDS) {   /* the file's word, and no topic of ours: damage */
            log_warn("spool: a record for an unknown topic (%u) skipped: a damaged spool file", r.topic);
            spool_consume(p->spool);
            spool_release(p->spool, r.hold);
            continue;
        }
        int rc = produce(p, (topic_kind)r.topic, r.key, r.keylen, r.payload, r.len, r.hold);
        if (rc == 1) break;
        spool_consume(p->spool);
        if (rc < 0) {
            p->stats.failed++;
            spool_release(p->spool, r.hold);
        }
        p->stats.unspooled++;
        n++;
    }
    /* Only the end of an overflow is news: command results pass through the
     * spool every time (to be fsynced), and with transactions the spool only
     * bridges a commit. */
    if (p->overflowing && spool_empty(p->spool)) {
        p->overflowing = 0;
        if (p->tx == TX_NONE) log_info("spool: drained, back to direct delivery");
    }
}

/* Delivery reports free librdkafka's room (and the spool's holds). */
static void serve_reports(publisher *p) {
    rd_kafka_poll(p->rk, 0);
    if (p->live != p->rk) rd_kafka_poll(p->live, 0);
}

static void refill(publisher *p) {
    p->spooled_since_pump = 0;
    if (!spool_empty(p->spool) && p->tx != TX_COMMITTING && !silent(p)) drain_spool(p);
}

/* The longest a commit may block the loop once every message is delivered. */
#define COMMIT_TIMEOUT_MS 5000

static int commit_step(publisher *p, int timeout_ms);
static void start_commit(publisher *p);

/* The leader's transaction closes every commit_interval. New messages wait
 * in the spool while the transaction's own are delivered, without
 * blocking; only then is the commit itself asked for, which is one round
 * trip to the coordinator. (librdkafka 2.0 fails an assertion when a
 * commit call times out while that request is in flight, so the commit is
 * never started before the broker has taken every message.) */
static void commit_when_due(publisher *p) {
    if (p->tx == TX_OPEN && mono_now() - p->last_commit >= p->commit_every) {
        uint64_t n = 0;
        for (int t = 0; t < TOPIC_KINDS; t++) n += p->in_txn[t];
        if (n || p->offsets) start_commit(p);
    }
    if (p->tx == TX_COMMITTING && rd_kafka_outq_len(p->rk) == 0) commit_step(p, COMMIT_TIMEOUT_MS);
}

int publisher_wake_fd(const publisher *p) {
    int waiting = (!spool_empty(p->spool) && p->tx != TX_STANDBY && p->tx != TX_FENCED) || p->tx == TX_COMMITTING;
    return waiting ? p->wake[0] : -1;
}

void publisher_poll(publisher *p) {
    char drain[64];
    while (p->wake[0] >= 0 && read(p->wake[0], drain, sizeof(drain)) > 0) {
    }
    serve_reports(p);
    if (p->admin_q) {
        rd_kafka_event_t *ev;
        while ((ev = rd_kafka_queue_poll(p->admin_q, 0))) on_admin(p, ev);
    }
    commit_when_due(p);
    spool_flush(p->spool);
    refill(p);
}

/* Delivery reports, then what waits in the spool into the room they made. */
static void pump(publisher *p) {
    serve_reports(p);
    refill(p);
}

static rd_kafka_NewTopic_t *new_topic(publisher *p, topic_kind t, int partitions) {
    char e[256];
    int one = is_state_topic(t) || t == TOPIC_LEASES;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(p->topic_names[t], one ? 1 : partitions,
                                                    -1, e, sizeof(e));
    if (t == TOPIC_STATUS || t == TOPIC_LEASES) rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    if (is_state_topic(t))
        for (size_t i = 0; i < sizeof(state_topic_config) / sizeof(state_topic_config[0]); i++)
            rd_kafka_NewTopic_set_config(nt, state_topic_config[i][0], state_topic_config[i][1]);
    return nt;
}

/* A state topic made by hand without compaction grows with the day and
 * makes every reader's start slow: say so (it is not changed for the
 * operator). */
static void request_configs(publisher *p) {
    rd_kafka_ConfigResource_t *res[3];
    size_t n = 0;
    for (int t = 0; t < TOPIC_KINDS; t++)
        if (is_state_topic(t)) res[n++] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, p->topic_names[t]);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    char e[256];
    rd_kafka_AdminOptions_set_request_timeout(opt, p->admin_timeout_ms, e, sizeof(e));
    rd_kafka_DescribeConfigs(p->rk, res, n, opt, p->admin_q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_ConfigResource_destroy_array(res, n);
}

static void on_configs(const rd_kafka_DescribeConfigs_result_t *r) {
    size_t cnt = 0;
    const rd_kafka_ConfigResource_t **got = rd_kafka_DescribeConfigs_result_resources(r, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        size_t ne;
        const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(got[i], &ne);
        for (size_t k = 0; k < ne; k++) {
            const char *v = rd_kafka_ConfigEntry_value(entries[k]);
            if (strcmp(rd_kafka_ConfigEntry_name(entries[k]), "cleanup.policy") == 0 && (!v || !strstr(v, "compact")))
                log_warn("kafka: topic %s has cleanup.policy=%s: a state topic must be compacted "
                         "(docs/operations.md), or readers replay its whole history",
                         rd_kafka_ConfigResource_name(got[i]), v ? v : "");
        }
    }
}

/* The commands topic is created here too: the agent consumes it, and a
 * consumer does not create topics. */
static void request_topics(publisher *p) {
    rd_kafka_NewTopic_t *nt[TOPIC_KINDS + 1];
    char e[256];
    size_t n = 0;
    for (int t = 0; t < TOPIC_KINDS; t++)
        if (t != TOPIC_LEASES || p->tx != TX_NONE) nt[n++] = new_topic(p, (topic_kind)t, p->partitions);
    if (p->commands_topic[0]) nt[n++] = rd_kafka_NewTopic_new(p->commands_topic, p->partitions, -1, e, sizeof(e));
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, p->admin_timeout_ms, e, sizeof(e));
    rd_kafka_AdminOptions_set_request_timeout(opt, p->admin_timeout_ms, e, sizeof(e));
    rd_kafka_CreateTopics(p->rk, nt, n, opt, p->admin_q);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_NewTopic_destroy_array(nt, n);
}

/* A broker that did not answer: ask again (every request timeout) until it
 * does, so topics get created, the state topics compacted, when it is back. */
static void on_created(publisher *p, rd_kafka_event_t *ev) {
    if (rd_kafka_event_error(ev)) {
        if (!p->create_failed++)
            log_warn("kafka: could not create topics (%s): trying again until the broker answers",
                     rd_kafka_event_error_string(ev));
        request_topics(p);
        return;
    }
    size_t cnt;
    const rd_kafka_topic_result_t **tr =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
        if (te == RD_KAFKA_RESP_ERR_NO_ERROR)
            log_info("kafka: created topic %s", rd_kafka_topic_result_name(tr[i]));
        else if (te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            log_warn("kafka: topic %s: %s", rd_kafka_topic_result_name(tr[i]),
                     rd_kafka_topic_result_error_string(tr[i]));
    }
    p->create_failed = 0;
    request_configs(p);
}

static void on_admin(publisher *p, rd_kafka_event_t *ev) {
    if (rd_kafka_event_CreateTopics_result(ev)) on_created(p, ev);
    else if (rd_kafka_event_DescribeConfigs_result(ev) && !rd_kafka_event_error(ev))
        on_configs(rd_kafka_event_DescribeConfigs_result(ev));
    rd_kafka_event_destroy(ev);
}

int publisher_create_topics(publisher *p, const char *commands_topic, int partitions, int timeout_ms) {
    snprintf(p->commands_topic, sizeof(p->commands_topic), "%s", commands_topic ? commands_topic : "");
    p->partitions = partitions;
    p->admin_timeout_ms = timeout_ms;
    p->admin_q = rd_kafka_queue_new(p->rk);
    request_topics(p);
    /* At start, wait for the answers (creation, then the configs). */
    int answered = 0;
    for (int i = 0; i < 2; i++) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(p->admin_q, timeout_ms + 1000);
        if (!ev) break;
        int created = rd_kafka_event_CreateTopics_result(ev) && !rd_kafka_event_error(ev);
        answered |= created;
        on_admin(p, ev);
        if (!created) break;
    }
    return answered;
}

void publisher_close(publisher *p, int timeout_ms) {
    if (!p || !p->rk) return;
    if (p->tx != TX_NONE) {
        if (p->tx == TX_OPEN || p->tx == TX_COMMITTING) publisher_commit(p, timeout_ms);
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
        return;
    }
    double deadline = mono_now() + timeout_ms / 1000.0;
    rd_kafka_flush(p->rk, timeout_ms);
    if (p->live != p->rk) {
        int left = (int)((deadline - mono_now()) * 1000);
        rd_kafka_flush(p->live, left > 0 ? left : 0);
    }
    if (outq_len(p) > 0) {
        log_warn("kafka: %d messages undelivered at shutdown: keeping them in the spool", outq_len(p));
        spool_begin_front(p->spool);
        rd_kafka_t *both[2] = {p->rk, p->live};
        for (int i = 0; i < (p->live != p->rk ? 2 : 1); i++) {
            rd_kafka_purge(both[i], RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(both[i], 0);
            rd_kafka_flush(both[i], 1000);
        }
    }
}

void publisher_get_stats(publisher *p, publisher_stats *out) {
    *out = p->stats;
    out->spool_bytes = spool_size(p->spool);
    out->queued = (uint64_t)outq_len(p);
    out->broker_up = p->broker_up;
}

void publisher_keep_dropped(publisher *p, const uint64_t by_kind[TOPIC_KINDS]) {
    for (int t = 0; t < TOPIC_KINDS; t++) p->dropped_unreported[t] += by_kind[t];
}

void publisher_flush_spool(publisher *p) { spool_flush(p->spool); }

uint64_t publisher_take_dropped(publisher *p, uint64_t by_kind[TOPIC_KINDS]) {
    uint64_t n = 0;
    for (int t = 0; t < TOPIC_KINDS; t++) {
        by_kind[t] = p->dropped_unreported[t];
        n += by_kind[t];
        p->dropped_unreported[t] = 0;
    }
    return n;
}

void publisher_free(publisher *p) {
    if (!p) return;
    if (p->offsets) rd_kafka_topic_partition_list_destroy(p->offsets);
    if (p->committing_offsets) rd_kafka_topic_partition_list_destroy(p->committing_offsets);
    if (p->group) rd_kafka_consumer_group_metadata_destroy(p->group);
    for (int t = 0; t < TOPIC_KINDS; t++)
        if (p->topics[t]) rd_kafka_topic_destroy(p->topics[t]);
    if (p->admin_q) rd_kafka_queue_destroy(p->admin_q);
    rd_kafka_queue_t *queues[2] = {p->main_q, p->live_q};
    for (int i = 0; i < 2; i++)
        if (queues[i]) {
            rd_kafka_queue_io_event_enable(queues[i], -1, NULL, 0);
            rd_kafka_queue_destroy(queues[i]);
        }
    if (p->live && p->live != p->rk) rd_kafka_destroy(p->live);
    if (p->rk) rd_kafka_destroy(p->rk);
    for (int i = 0; i < 2; i++)
        if (p->wake[i] >= 0) close(p->wake[i]);
    spool_close(p->spool);
    free(p);
}

/* ---- Leading (agent.standby) ------------------------------------------------ */

static rd_kafka_error_t *open_transaction(publisher *p) {
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->rk);
    if (e) return e;
    p->tx = TX_OPEN;
    p->last_commit = mono_now();
    memset(p->in_txn, 0, sizeof(p->in_txn));
    return NULL;
}

int publisher_lead(publisher *p, int timeout_ms, char *err, size_t errlen) {
    if (p->tx == TX_FENCED) {
        snprintf(err, errlen, "fenced: another instance of this agent leads");
        return -1;
    }
    rd_kafka_error_t *e = rd_kafka_init_transactions(p->rk, timeout_ms);
    if (!e) e = open_transaction(p);
    if (!e) return 0;
    snprintf(err, errlen, "%s", rd_kafka_error_string(e));
    int retry = rd_kafka_error_is_retriable(e);
    if (!retry) p->tx = TX_FENCED;
    rd_kafka_error_destroy(e);
    return retry ? 1 : -1;
}

int publisher_leading(const publisher *p) { return p->tx == TX_OPEN || p->tx == TX_COMMITTING; }
int publisher_fenced(const publisher *p) { return p->tx == TX_FENCED; }

void publisher_set_group(publisher *p, rd_kafka_consumer_group_metadata_t *group) {
    if (p->group) rd_kafka_consumer_group_metadata_destroy(p->group);
    p->group = group;
}

void publisher_store_offset(publisher *p, const char *topic, int32_t partition, int64_t offset) {
    if (!p->offsets) p->offsets = rd_kafka_topic_partition_list_new(4);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(p->offsets, topic, partition);
    if (!tp) tp = rd_kafka_topic_partition_list_add(p->offsets, topic, partition);
    if (offset > tp->offset) tp->offset = offset;
}

/* The offsets stored so far belong to the transaction about to commit;
 * later ones to the next. */
static void start_commit(publisher *p) {
    p->committing_offsets = p->offsets;
    p->offsets = NULL;
    p->tx = TX_COMMITTING;
}

/* A transaction that had to be aborted lost its messages: they are counted
 * as dropped, so that the agent announces the gap. */
static void abort_transaction(publisher *p, rd_kafka_error_t *why) {
    log_error("kafka: transaction aborted (%s): its messages are lost", rd_kafka_error_string(why));
    rd_kafka_error_t *e = rd_kafka_abort_transaction(p->rk, 30000);
    for (int t = 0; t < TOPIC_KINDS; t++) p->dropped_unreported[t] += p->in_txn[t];
    if (!e) e = open_transaction(p);
    if (e) {
        log_error("kafka: cannot go on after an abort (%s): stepping down", rd_kafka_error_string(e));
        p->tx = TX_FENCED;
        rd_kafka_error_destroy(e);
    }
}

/* 0 committed and a new transaction open; -1 not (yet). */
static int commit_step(publisher *p, int timeout_ms) {
    rd_kafka_error_t *e = NULL;
    if (p->committing_offsets && p->group) {
        e = rd_kafka_send_offsets_to_transaction(p->rk, p->committing_offsets, p->group, timeout_ms);
        if (!e) {
            rd_kafka_topic_partition_list_destroy(p->committing_offsets);
            p->committing_offsets = NULL;
        }
    }
    if (!e) e = rd_kafka_commit_transaction(p->rk, timeout_ms);
    if (!e) {
        p->stats.commits++;
        e = open_transaction(p);
        if (!e) return 0;
    }
    if (rd_kafka_error_is_retriable(e)) {
        rd_kafka_error_destroy(e);
        return -1;
    }
    if (rd_kafka_error_txn_requires_abort(e)) {
        abort_transaction(p, e);
    } else {
        if (p->tx != TX_FENCED) log_error("kafka: fenced (%s): another instance of this agent leads",
                                          rd_kafka_error_string(e));
        p->tx = TX_FENCED;
    }
    rd_kafka_error_destroy(e);
    return -1;
}

int publisher_commit(publisher *p, int timeout_ms) {
    double deadline = mono_now() + timeout_ms / 1000.0;
    /* A commit in progress first; what waited behind it joins this one. */
    if (p->tx == TX_COMMITTING) {
        if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR || commit_step(p, timeout_ms) < 0)
            return -1;
    }
    if (p->tx != TX_OPEN) return -1;
    drain_spool(p);
    start_commit(p);
    int left = (int)((deadline - mono_now()) * 1000);
    if (left <= 0 || rd_kafka_flush(p->rk, left) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    left = (int)((deadline - mono_now()) * 1000);
    return commit_step(p, left > 0 ? left : 1);
}
