/* executor.h -- the agent's command executor: commands topic -> AMI actions.
 *
 * Rules (docs/messages.md, Commands): at most once, never late, always answered,
 * never an injected header. Each command gets results on the results topic:
 * accepted then succeeded/failed, or rejected, expired, duplicate. */
#ifndef CALLBUS_EXECUTOR_H
#define CALLBUS_EXECUTOR_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "ami.h"
#include "ami_client.h"
#include "callmodel.h"
#include "config.h"

typedef struct executor executor;

typedef struct executor_env {
    const callbus_config *cfg;
    ami_client *ami;
    callmodel *cm;
    /* Publishes a callbus.result; takes ownership of data. */
    void (*publish_result)(void *ctx, const char *command_id, double time, json_t *data);
    /* With a standby (agent.standby) the consumer's offsets go into the
     * leader's transactions instead of the group's auto-commit, and a
     * command is sent to Asterisk only once decide() has committed its
     * decision (0): a fenced old leader cannot. NULL without a standby. */
    void (*store_offset)(void *ctx, const char *topic, int32_t partition, int64_t offset);
    int (*decide)(void *ctx);
    /* The CloudEvent source of this agent's results: with a standby, the
     * commands the other instance accepted and never answered get a
     * `failed` when this one starts executing. */
    const char *source;
    void *ctx;
} executor_env;

typedef struct executor_stats {
    uint64_t received, accepted, succeeded, failed, rejected, expired, duplicate;
    uint64_t inflight, held;
} executor_stats;

executor *executor_new(const executor_env *env, char *err, size_t errlen);
/* For poll(): readable when commands are waiting (-1 if unavailable). */
int executor_fd(const executor *c);
/* Consumes commands and runs timers; call on every loop turn. now is the
 * wall clock (expiry, result times), mono the monotonic one (result
 * timeouts): see clock.h. */
void executor_poll(executor *c, double now, double mono);
void executor_on_ami_up(executor *c);
void executor_on_ami_down(executor *c, const char *reason);
/* Replies to our actions (responses and OriginateResponse); returns 1 when
 * the message was one. */
int executor_on_ami_message(executor *c, const ami_msg *m);
/* The commands consumer's group, for the leader's transactions. */
rd_kafka_consumer_group_metadata_t *executor_group(const executor *c);
void executor_get_stats(const executor *c, executor_stats *out);
void executor_free(executor *c);

#endif
