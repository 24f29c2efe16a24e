/* unanswered.h -- the commands another instance accepted and never answered.
 *
 * With a standby (agent.standby), a leader that dies after committing a
 * command's `accepted` and before its final result leaves the command
 * without one: the new leader has its own journal, which never saw it. The
 * results topic has: what it accepted, and whether a final result followed. */
#ifndef CALLBUS_UNANSWERED_H
#define CALLBUS_UNANSWERED_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct unanswered unanswered;

typedef struct unanswered_command {
    const char *id, *type, *sender;   /* type and sender may be "" */
    double accepted_at;               /* the `accepted` record's Kafka timestamp */
} unanswered_command;

typedef void (*unanswered_fn)(void *ctx, const unanswered_command *cmd);

/* source: the CloudEvent source whose `accepted` results count. */
unanswered *unanswered_new(const char *source);
/* One record of the results topic, in topic order (hostile: anyone who can
 * write the topic wrote it). Returns -1 when it is not a result. */
int unanswered_add(unanswered *u, const char *value, size_t len, int64_t timestamp_ms);
/* Hands fn each command accepted by the source and not followed by a final
 * result of any source; returns how many. */
long unanswered_each(unanswered *u, unanswered_fn fn, void *ctx);
void unanswered_free(unanswered *u);

/* The same over cfg's results topic from since_ms to its end. Returns how
 * many were handed to fn, or -1 with err (then fn was not called). */
long unanswered_find(const callbus_config *cfg, const char *source, int64_t since_ms, double timeout_s,
                     unanswered_fn fn, void *ctx, char *err, size_t errlen);

#endif
