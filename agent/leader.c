/* leader.c -- the leader's lease and the standby's watch on it (see leader.h).
 *
 * The standby reads the leases topic without a consumer group (it commits
 * nothing) from its last records on; an old lease only restarts the wait. A
 * lease is trusted for nothing but timing; a malformed one counts as heard
 * (some instance is writing there) and is logged once. */
#include "leader.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "kafka_conf.h"
#include "log.h"

struct leader {
    rd_kafka_t *rk;         /* NULL once this instance leads */
    char agent_id[64];
    char instance[128];
    double takeover_after;  /* seconds */
    double renew_every;
    double heard_mono;      /* last lease from another instance (or our start) */
    double heard_wall;
    int released;           /* the last lease said the leader stopped cleanly */
    char heard_instance[128];
    int64_t heard_epoch;
    double next_renewal;
    int said_malformed;
};

static rd_kafka_t *lease_reader(const callbus_config *c, char *err, size_t errlen) {
    char topic[256];
    config_topic(c, "leases", topic, sizeof(topic));
    char group[256];
    /* librdkafka wants a group even for assign(); it is never joined or
     * committed to. */
    snprintf(group, sizeof(group), "callbus-agent-leases.%s.%s", c->site, c->agent.id);
    const kafka_prop defaults[] = {{"group.id", group}, {"client.id", "callbus-agent-standby"},
                                   {"enable.auto.commit", "false"},
                                   {"isolation.level", "read_committed"}, {"enable.partition.eof", "false"}};
    rd_kafka_conf_t *conf = kafka_conf_new(defaults, sizeof(defaults) / sizeof(defaults[0]), c, err, errlen);
    rd_kafka_t *rk = conf ? kafka_client_new(RD_KAFKA_CONSUMER, conf, err, errlen) : NULL;
    if (!rk) return NULL;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    /* The last lease or two (each is followed by its transaction's commit
     * marker): a leader that has just released is heard even so. */
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_TAIL(4);
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "standby: cannot read %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

leader *leader_new(const callbus_config *c, const char *instance, char *err, size_t errlen) {
    leader *l = xcalloc(1, sizeof(*l));
    snprintf(l->agent_id, sizeof(l->agent_id), "%s", c->agent.id);
    snprintf(l->instance, sizeof(l->instance), "%s", instance);
    l->takeover_after = c->agent.takeover_ms / 1000.0;
    l->renew_every = l->takeover_after / 6;
    l->heard_mono = mono_now();
    l->heard_wall = wall_now();
    l->rk = lease_reader(c, err, errlen);
    if (!l->rk) {
        free(l);
        return NULL;
    }
    return l;
}

int lease_parse(const void *buf, size_t len, lease *out) {
    json_t *ce = json_loadb(buf, len, 0, NULL);
    json_t *d = json_object_get(ce, "data");
    const char *inst = json_string_value(json_object_get(d, "instance"));
    const char *at = json_string_value(json_object_get(d, "time"));
    json_t *epoch = json_object_get(d, "epoch");
    int ok = inst && *inst && strlen(inst) < sizeof(out->instance) && at && json_is_integer(epoch);
    if (ok) {
        snprintf(out->instance, sizeof(out->instance), "%s", inst);
        out->epoch = json_integer_value(epoch);
        out->time = rfc3339_parse(at);
        out->released = json_is_true(json_object_get(d, "released"));
        ok = out->time >= 0;
    }
    json_decref(ce);
    return ok ? 0 : -1;
}

static void heard(leader *l, const rd_kafka_message_t *m) {
    if (!m->key || m->key_len != strlen(l->agent_id) || memcmp(m->key, l->agent_id, m->key_len)) return;
    lease got;
    if (!m->payload || lease_parse(m->payload, m->len, &got) < 0) {
        if (!l->said_malformed++) log_warn("standby: a malformed lease on the leases topic (ignored but counted as heard)");
    } else if (strcmp(got.instance, l->instance) != 0) {
        if (strcmp(got.instance, l->heard_instance) != 0)
            log_info("standby: instance %s leads (epoch %lld)", log_str(got.instance), (long long)got.epoch);
        snprintf(l->heard_instance, sizeof(l->heard_instance), "%s", got.instance);
        l->heard_epoch = got.epoch;
        l->heard_wall = got.time;
        l->released = got.released;
    }
    l->heard_mono = mono_now();
}

int leader_poll(leader *l, double mono) {
    if (!l->rk) return 0;
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(l->rk, 0))) {
        if (!m->err) heard(l, m);
        else log_warn("standby: leases: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    return l->released || mono - l->heard_mono >= l->takeover_after;
}

double leader_last_heard(const leader *l) { return l->heard_wall; }
const char *leader_last_instance(const leader *l) { return l->heard_instance[0] ? l->heard_instance : "none"; }
int64_t leader_last_epoch(const leader *l) { return l->heard_epoch; }

json_t *leader_lease(leader *l, double mono, int64_t epoch, int released) {
    if (!released && mono < l->next_renewal) return NULL;
    l->next_renewal = mono + l->renew_every;
    char at[RFC3339_MAX];
    return json_pack("{s:s, s:s, s:I, s:s, s:b}", "agent_id", l->agent_id, "instance", l->instance, "epoch",
                     (json_int_t)epoch, "time", rfc3339(wall_now(), 6, at, sizeof(at)), "released", released);
}

void leader_stop_listening(leader *l) {
    if (!l->rk) return;
    rd_kafka_consumer_close(l->rk);
    rd_kafka_destroy(l->rk);
    l->rk = NULL;
}

void leader_free(leader *l) {
    if (!l) return;
    leader_stop_listening(l);
    free(l);
}
