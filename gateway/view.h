/* view.h -- the gateway's live view of one site: the latest state record
 * per key, projected per role, routed to numbered streams.
 *
 * Pure logic, no sockets and no Kafka. The agent owns the one reducer
 * (agent/state.c) and publishes the current state of every operator, call
 * and queue to three compacted topics (docs/messages.md, "State topics");
 * the gateway feeds every record it consumes from them, and every
 * callbus.result, and the view
 *   - keeps the latest record per key (a tombstone removes it);
 *   - routes what changed: an operator record to that operator's stream
 *     (operator projection) and to the site stream that supervisors read
 *     (supervisor projection); call and queue records to the site stream
 *     only; a result to the stream of the operator whose command it answers
 *     (the gateway sends commands with sender "gateway:<operator_id>") and
 *     to the site stream;
 *   - numbers every stream (epoch + position, as Centrifugo does) and keeps
 *     its last messages so a reconnecting client gets exactly what it missed.
 *
 * Projection: what an operator receives is their own record only, without
 * queue names (keys "queue", "queues" and "offered_to" removed at every
 * depth); a supervisor sees the site, with other operators' records without
 * "recent" (keeps the site stream and its snapshot small). A record equal to
 * the one kept, or one whose projection for a stream did not change, is not
 * sent again on that stream.
 *
 * Start-up: apply the state topics from their start with fn = NULL before
 * accepting clients: records are only stored (nothing is projected or
 * numbered), so a restart costs the number of keys, not the day. The epoch,
 * chosen per gateway run, tells clients that positions from a previous run
 * mean nothing any more.
 *
 * Memory is bounded: records over VIEW_MAX_RECORD_BYTES are refused; at
 * most VIEW_MAX_KEYS operators and queues are kept (a new key beyond is
 * refused) and as many calls (the oldest is dropped beyond: a tombstone the
 * gateway never saw must not grow the table for ever); each stream keeps
 * history_per_stream messages; the results' duplicate filter remembers
 * VIEW_DEDUPE_WINDOW ids; at most VIEW_MAX_RESULT_ONLY operators without a
 * record get a stream of their own for their results. */
#ifndef CALLBUS_GATEWAY_VIEW_H
#define CALLBUS_GATEWAY_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define VIEW_DEDUPE_WINDOW 16384
#define VIEW_MAX_KEYS 65536
#define VIEW_MAX_RESULT_ONLY 4096
#define VIEW_MAX_RECORD_BYTES 65536
#define VIEW_SNAPSHOT_CHUNK 200    /* operators (and calls) per snapshot part */
#define VIEW_SENDER_PREFIX "gateway:"

typedef enum { VIEW_OPERATOR, VIEW_SUPERVISOR } view_role;

/* The topic a record was read from. */
typedef enum { VIEW_TOPIC_OPERATORS, VIEW_TOPIC_CALLS, VIEW_TOPIC_QUEUES, VIEW_TOPIC_RESULTS } view_topic;

typedef struct view view;

/* Called once per stream a message is delivered to: operator_id is the
 * operator's stream, NULL the site stream (supervisors only). msg is
 *   {"type":"update","epoch","pos","kind":"operator"|"call"|"queue","id",
 *    "time","state":{projected record}|null}
 * or, for a callbus.result,
 *   {"type":"event","epoch","pos","event":{"type","id","time","subject","data"}}
 * already projected for that stream. It is borrowed and shared with the
 * resume history: json_incref it to keep it, never modify it. */
typedef void (*view_delivery_fn)(void *ctx, const char *operator_id, json_t *msg);

/* epoch is copied; history_per_stream may be 0 (no resume, only snapshots). */
view *view_new(size_t history_per_stream, const char *epoch);
void view_free(view *v);

/* One Kafka record: key (keylen bytes, may be NULL for results) and value
 * (a CloudEvent; NULL = a tombstone, which removes the key). fn NULL: load
 * (store only, see above). Returns the number of streams the change was
 * delivered to (when loading: 1 if the view changed), 0 when it changed
 * nothing (an equal record, a duplicate result, a tombstone for an unknown
 * key), -1 when it is unusable (not JSON, not the topic's type, no key, the
 * key is not the record's id, over VIEW_MAX_RECORD_BYTES, beyond
 * VIEW_MAX_KEYS). */
int view_apply(view *v, view_topic topic, const char *key, size_t keylen, const char *value, size_t len,
               view_delivery_fn fn, void *ctx);

/* What a client gets after auth, as a JSON array of messages to send in
 * order (new reference). An operator: one
 *   {"type":"snapshot","epoch","pos","role":"operator","operator":{own record, projected}}
 * A supervisor: parts 1..N, all at the same epoch and pos,
 *   {"type":"snapshot","epoch","pos","role":"supervisor","part":k,"parts":N,
 *    "operators":[...],"calls":[...]}
 * with at most VIEW_SNAPSHOT_CHUNK operators and calls each; part 1 also
 * has "operator" (their own record) and "queues" (every queue). pos is the
 * stream's current position: live messages follow with pos+1. An operator
 * the view has no record of gets a blank one (logged out). */
json_t *view_snapshot(view *v, const char *operator_id, view_role role);

/* A client that saw up to (epoch, pos) reconnects. If it can be served from
 * the history: [{"type":"resume","epoch","pos":current,"recovered":true,
 * "events":[the missed messages, in order]}]; otherwise the snapshot with
 * "recovered":false and "reason": "epoch changed" | "too old" | "unknown
 * position" (ahead of the stream) in every part. New reference. */
json_t *view_resume(view *v, const char *operator_id, view_role role, const char *epoch, uint64_t pos);

/* The latest record of an operator (borrowed; NULL if none): what their
 * commands are checked against. */
const json_t *view_operator(const view *v, const char *operator_id);

/* Counters, for tests and the gateway's status. */
typedef struct view_stats {
    size_t operators;      /* operator records */
    size_t active_calls;   /* call records */
    size_t queues;         /* queue records */
    size_t streams;        /* operator streams + the site stream */
    size_t history;        /* messages kept, all streams */
    size_t dedupe_ids;
    uint64_t duplicates;   /* results dropped as duplicates */
    uint64_t ignored;      /* unusable records */
} view_stats;
void view_get_stats(const view *v, view_stats *out);

#endif
