/* commands.h -- the agent's command executor: commands topic -> AMI actions.
 *
 * Rules (DESIGN.md, Commands): at most once, never late, always answered,
 * never an injected header. Each command gets results on the results topic:
 * accepted then succeeded/failed, or rejected, expired, duplicate. */
#ifndef CALLBUS_COMMANDS_H
#define CALLBUS_COMMANDS_H

#include <jansson.h>
#include <stdint.h>

#include "ami.h"
#include "ami_client.h"
#include "callmodel.h"
#include "config.h"

typedef struct commands commands;

typedef struct commands_env {
    const callbus_config *cfg;
    ami_client *ami;
    callmodel *cm;
    /* Publishes a callbus.result; takes ownership of data. */
    void (*publish_result)(void *ctx, const char *command_id, double time, json_t *data);
    void *ctx;
} commands_env;

typedef struct commands_stats {
    uint64_t received, accepted, succeeded, failed, rejected, expired, duplicate;
    uint64_t inflight, held;
} commands_stats;

commands *commands_new(const commands_env *env, char *err, size_t errlen);
/* For poll(): readable when commands are waiting (-1 if unavailable). */
int commands_fd(const commands *c);
/* Consumes commands and runs timers; call on every loop turn. */
void commands_poll(commands *c, double now);
void commands_on_ami_up(commands *c);
void commands_on_ami_down(commands *c, const char *reason);
/* Replies to our actions (responses and OriginateResponse); returns 1 when
 * the message was one. */
int commands_on_ami_message(commands *c, const ami_msg *m);
void commands_get_stats(const commands *c, commands_stats *out);
void commands_free(commands *c);

#endif
