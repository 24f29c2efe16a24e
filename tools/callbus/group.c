/* group.c -- consumer group look-ups and changes through the Admin API:
 * is a group active, what has it committed, set its offsets.
 *
 * The Admin API (not a consumer with the group's id) is used so the CLI
 * never joins, rebalances or commits for a production group by accident. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Runs one admin request already sent to q; returns its result event. */
static rd_kafka_event_t *await(rd_kafka_queue_t *q, const char *what, char *err, size_t errlen) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, cli_timeout_ms + 5000);
    if (!ev) {
        snprintf(err, errlen, "%s: no answer within %d s", what, cli_timeout_ms / 1000 + 5);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static rd_kafka_AdminOptions_t *options(rd_kafka_t *rk, rd_kafka_admin_op_t op) {
    char e[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    rd_kafka_AdminOptions_set_request_timeout(o, cli_timeout_ms, e, sizeof(e));
    return o;
}

int cli_group_state(rd_kafka_t *rk, const char *group, cli_group_info *info, char *err, size_t errlen) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    const char *groups[1] = {group};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    int rc = -1;
    rd_kafka_event_t *ev = await(q, "describe consumer group", err, errlen);
    if (ev) {
        size_t n = 0;
        const rd_kafka_ConsumerGroupDescription_t **d =
            rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        const rd_kafka_error_t *ge = n ? rd_kafka_ConsumerGroupDescription_error(d[0]) : NULL;
        if (n && (!ge || rd_kafka_error_code(ge) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)) {
            rd_kafka_consumer_group_state_t st =
                ge ? RD_KAFKA_CONSUMER_GROUP_STATE_DEAD : rd_kafka_ConsumerGroupDescription_state(d[0]);
            info->members = ge ? 0 : (int)rd_kafka_ConsumerGroupDescription_member_count(d[0]);
            snprintf(info->state, sizeof(info->state), "%s", rd_kafka_consumer_group_state_name(st));
            info->active = st != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY && st != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
            rc = 0;
        } else {
            snprintf(err, errlen, "consumer group %s: %s", group, ge ? rd_kafka_error_string(ge) : "no answer");
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

rd_kafka_topic_partition_list_t *cli_group_committed(rd_kafka_t *rk, const char *group, char *err, size_t errlen) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = options(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_topic_partition_list_t *out = NULL;
    rd_kafka_event_t *ev = await(q, "committed offsets", err, errlen);
    if (ev) {
        size_t n = 0;
        const rd_kafka_group_result_t **g =
            rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        const rd_kafka_error_t *ge = n ? rd_kafka_group_result_error(g[0]) : NULL;
        if (n && !ge) out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(g[0]));
        else snprintf(err, errlen, "consumer group %s: %s", group, ge ? rd_kafka_error_string(ge) : "no answer");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return out;
}

int cli_group_alter(rd_kafka_t *rk, const char *group, const rd_kafka_topic_partition_list_t *offsets, char *err,
                    size_t errlen) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = options(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    rd_kafka_AlterConsumerGroupOffsets_t *req = rd_kafka_AlterConsumerGroupOffsets_new(group, offsets);
    rd_kafka_AlterConsumerGroupOffsets(rk, &req, 1, o, q);
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    int rc = -1;
    rd_kafka_event_t *ev = await(q, "set committed offsets", err, errlen);
    if (ev) {
        size_t n = 0;
        const rd_kafka_group_result_t **g = rd_kafka_AlterConsumerGroupOffsets_result_groups(
            rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
        const rd_kafka_error_t *ge = n ? rd_kafka_group_result_error(g[0]) : NULL;
        rc = 0;
        if (!n || ge) {
            snprintf(err, errlen, "consumer group %s: %s", group, ge ? rd_kafka_error_string(ge) : "no answer");
            rc = -1;
        } else {
            const rd_kafka_topic_partition_list_t *p = rd_kafka_group_result_partitions(g[0]);
            for (int i = 0; rc == 0 && p && i < p->cnt; i++)
                if (p->elems[i].err) {
                    snprintf(err, errlen, "consumer group %s: %s [%d]: %s", group, p->elems[i].topic,
                             p->elems[i].partition, rd_kafka_err2str(p->elems[i].err));
                    rc = -1;
                }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}
