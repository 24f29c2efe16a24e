/* callmodel.h -- normalised call and operator events derived from AMI.
 *
 * Pure logic, no I/O: the agent feeds every AMI event of one Asterisk in
 * order, and the model calls back once per derived event (callbus.call.* on
 * the calls topic, callbus.operator.* on the operators topic, see
 * docs/messages.md). A call is a Linkedid; channels are keyed by Uniqueid
 * because channel names repeat after an Asterisk restart. After every
 * (re)connect the agent replays the channel and queue lists through the
 * resync calls so calls that ended while we were away get ended. */
#ifndef CALLBUS_CALLMODEL_H
#define CALLBUS_CALLMODEL_H

#include <stddef.h>
#include <jansson.h>
#include "ami.h"
#include "identity.h"

typedef enum { CM_TOPIC_CALLS, CM_TOPIC_OPERATORS } cm_topic;

/* Called for every derived event. type e.g. "callbus.call.answered"; key =
 * call id or operator id (also the CloudEvents subject); time = event time
 * in seconds since the epoch (the AMI Timestamp of the triggering event, else
 * the "now" given to the model); data is a new reference the callee owns. */
typedef void (*cm_emit_fn)(void *ctx, cm_topic topic, const char *type, const char *key,
                           double time, json_t *data);

typedef struct callmodel callmodel;

/* ids may be NULL; it must outlive the model. */
callmodel *callmodel_new(const identity_map *ids, cm_emit_fn emit, void *ctx);
void callmodel_free(callmodel *cm);
/* Every AMI event, in order. now = the agent's clock at receipt. */
void callmodel_on_event(callmodel *cm, const ami_msg *m, double now);

/* Resync after every (re)connect: begin, then each CoreShowChannel item and
 * each QueueMember / QueueEntry item of the list responses, then end. Live
 * events may keep arriving through callmodel_on_event meanwhile.
 * end() ends every call none of whose channels were listed (ended with
 * reason = the given reason, e.g. "ended_while_link_down" or
 * "asterisk_restarted", end time = now, cause unknown) and emits the operator
 * changes the QueueMember items show relative to what the model knew
 * (memberships gone -> logged_out, new -> logged_in, pause and device state).
 * Calls listed but unknown to the model are adopted (started emitted). */
void callmodel_resync_begin(callmodel *cm);
void callmodel_resync_item(callmodel *cm, const ami_msg *item);
void callmodel_resync_end(callmodel *cm, const char *reason, double now);

size_t callmodel_active_calls(const callmodel *cm);

/* What the command executor needs to know about a live call; pointers are
 * valid until the next event. */
typedef struct cm_call_view {
    const char *queue;
    const char *customer_channel;  /* NULL when no customer leg is up */
    const char *operator_id;       /* who has the call now, if anyone */
    int in_queue, answered;
} cm_call_view;
/* 1 and *out filled when call_id is a live call, else 0. */
int callmodel_call_view(callmodel *cm, const char *call_id, cm_call_view *out);

/* ---- Internal to the model: the operator half (operators.c), used by
 * callmodel.c. Not for the agent runtime. */
typedef struct cm_ops cm_ops;

cm_ops *cm_ops_new(const identity_map *ids, cm_emit_fn emit, void *ctx);
void cm_ops_free(cm_ops *ops);
/* Queue-member events (QueueMember*, and the AgentCalled/AgentConnect
 * side effects). Returns 1 when the event was an operator event. */
int cm_ops_on_event(cm_ops *ops, const char *event, const ami_msg *m, double time);
/* Operator id owning a channel name, or NULL (pointer valid until the next
 * call into ops). Known when its interface is a queue member's or mapped. */
const char *cm_ops_operator_of_channel(cm_ops *ops, const char *channel);
/* Operator id for an interface (learning it as an operator), NULL if none. */
const char *cm_ops_learn(cm_ops *ops, const char *interface, const char *member_name);
void cm_ops_resync_begin(cm_ops *ops);
void cm_ops_resync_item(cm_ops *ops, const ami_msg *item);
void cm_ops_resync_end(cm_ops *ops, double now);

/* Shared helpers. */
double cm_event_time(const ami_msg *m, double now);
double cm_round_ms(double seconds);

#endif
