/* cli.h -- what the `callbus` ops subcommands share: config, Kafka clients. */
#ifndef CALLBUS_CLI_H
#define CALLBUS_CLI_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "config.h"

typedef struct cli_ctx {
    callbus_config cfg;
    /* -X CLUSTER:name=value: for the cluster of that name only (lag:
     * "central" and the site names; replay: "source" and "target"). */
    const char **scoped;
    int nscoped;
} cli_ctx;

/* Is arg the per-cluster form "CLUSTER:name=value"? (Property names never
 * hold a colon; values, like host:port, may.) */
int cli_is_scoped(const char *arg);
/* Every -X CLUSTER: names one of the command's clusters (names, n); else an
 * error naming them (-1). A typo must not silently drop a security setting. */
int cli_check_clusters(const cli_ctx *cx, const char *who, const char *const *names, int n);

/* "calls" -> "<prefix>.<site>.calls"; anything with a dot is taken as is. */
void cli_topic(const cli_ctx *cx, const char *name, char *out, size_t outlen);
/* A consumer for assign() (its group id is never joined), config
 * properties applied. */
rd_kafka_t *cli_consumer(cli_ctx *cx);

/* cluster.c: bounded Kafka look-ups for lag, replay and check. */
#define CLI_NO_TIME INT64_MIN
extern int cli_timeout_ms;  /* every Kafka wait, --timeout */

/* An offset range of one partition: [start, end) within [lo, hi). */
typedef struct cli_range {
    int64_t lo, hi, start, end;
} cli_range;

/* A client of the cluster at bootstrap (NULL: the configured one). Consumers
 * get group (NULL: "callbus-cli"; only ever used for committed-offset
 * look-ups, never joined) and report partition EOF. who names the
 * subcommand in messages; cluster (or NULL) the cluster, whose -X CLUSTER:
 * properties are applied after the plain ones. */
rd_kafka_t *cli_client(cli_ctx *cx, rd_kafka_type_t type, const char *bootstrap, const char *group,
                       const char *who, const char *cluster);
/* Producers from cli_client report each delivery into the cli_delivery
 * given as the message's opaque (RD_KAFKA_V_OPAQUE). */
typedef struct cli_delivery {
    long delivered, failed;
    char first_error[256];
} cli_delivery;
/* Can the cluster be reached (metadata within cli_timeout_ms)? */
int cli_probe(rd_kafka_t *rk, char *err, size_t errlen);
/* Partitions of topic: 0 when it does not exist, -1 with err when the
 * cluster cannot be reached. */
int cli_partition_count(rd_kafka_t *rk, const char *topic, char *err, size_t errlen);
int cli_watermarks(rd_kafka_t *rk, const char *topic, int part, int64_t *lo, int64_t *hi, char *err,
                   size_t errlen);
/* First offset whose timestamp is >= ms (hi when there is none). */
int cli_offset_for_time(rd_kafka_t *rk, const char *topic, int part, int64_t ms, int64_t hi, int64_t *out,
                        char *err, size_t errlen);
/* The offsets of the window [from_ms, to_ms) (CLI_NO_TIME: open side). */
int cli_window(rd_kafka_t *rk, const char *topic, int part, int64_t from_ms, int64_t to_ms, cli_range *r,
               char *err, size_t errlen);
/* Calls fn for each record of [from, end) (stops early at the partition's
 * end, or when fn returns non-zero; < 0 is an error). */
typedef int (*cli_msg_fn)(void *ud, const rd_kafka_message_t *m);
int cli_read_range(rd_kafka_t *rk, const char *topic, int part, int64_t from, int64_t end, cli_msg_fn fn,
                   void *ud, char *err, size_t errlen);

/* group.c: consumer groups through the Admin API (never joined). */
typedef struct cli_group_info {
    char state[32];  /* Stable, Empty, Dead, PreparingRebalance, ... */
    int members;
    int active;      /* anything but Empty or Dead (or unknown to the cluster) */
} cli_group_info;
int cli_group_state(rd_kafka_t *rk, const char *group, cli_group_info *info, char *err, size_t errlen);
/* Every partition the group has committed (NULL and err on failure). */
rd_kafka_topic_partition_list_t *cli_group_committed(rd_kafka_t *rk, const char *group, char *err, size_t errlen);
int cli_group_alter(rd_kafka_t *rk, const char *group, const rd_kafka_topic_partition_list_t *offsets, char *err,
                    size_t errlen);

/* Record as a JSON object: topic, partition, offset, timestamp (ms), time,
 * key, headers [[name, value]], value (parsed JSON when it is JSON, else a
 * string; *_base64 for bytes that are not UTF-8). */
char *cli_record_json(const rd_kafka_message_t *m);

int cmd_tail(cli_ctx *cx, int argc, char **argv);
int cmd_send(cli_ctx *cx, int argc, char **argv);
int cmd_lag(cli_ctx *cx, int argc, char **argv);
int cmd_replay(cli_ctx *cx, int argc, char **argv);
int cmd_check(cli_ctx *cx, int argc, char **argv);

#endif
