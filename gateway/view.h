/* view.h -- the gateway's live view of one site, per operator and per role.
 *
 * Pure logic, no sockets and no Kafka: the gateway feeds every message it
 * consumes from the site's calls, operators and results topics (CloudEvents,
 * docs/messages.md) and the view
 *   - keeps the current state of every operator (queues, pause, device, the
 *     offered call, the call in progress, recent calls) and the active calls;
 *   - routes each event to the streams it concerns: the operator's own
 *     stream, and the "site" stream that supervisors read;
 *   - numbers every stream (epoch + position, as Centrifugo does) and keeps
 *     its last messages so a reconnecting client gets exactly what it missed.
 *
 * Routing: a call event goes to every operator the call concerns (operator_id,
 * answered_by, operators[], from_operator_id, to_operator_id); a call becomes
 * an operator's once it is offered to (or started/answered by) them, and
 * every later event of that call goes to them too. Operator events go to that
 * operator. A callbus.result goes to the operator whose command it answers:
 * the gateway sends commands with sender "gateway:<operator_id>". Everything
 * also goes to the site stream.
 *
 * Projection: what an operator receives never has queue names (keys "queue"
 * and "queues" are removed at every depth) nor other operators' calls; a
 * supervisor sees everything of the site.
 *
 * Rebuild after a restart: apply the topics from their start with fn = NULL
 * before accepting clients. The epoch, chosen per gateway run, tells clients
 * that positions from a previous run mean nothing any more.
 *
 * Memory is bounded: ended calls leave the active set (they stay only in the
 * operators' recent lists), each stream keeps history_per_stream messages,
 * the duplicate filter remembers VIEW_DEDUPE_WINDOW ids and at most
 * VIEW_MAX_ACTIVE_CALLS calls are active (the oldest is dropped beyond). */
#ifndef CALLBUS_GATEWAY_VIEW_H
#define CALLBUS_GATEWAY_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define VIEW_DEDUPE_WINDOW 16384
#define VIEW_MAX_ACTIVE_CALLS 65536
#define VIEW_RECENT_CALLS 10
#define VIEW_SENDER_PREFIX "gateway:"

typedef enum { VIEW_OPERATOR, VIEW_SUPERVISOR } view_role;

typedef struct view view;

/* Called once per stream a message is delivered to: operator_id is the
 * operator's stream, NULL the site stream (supervisors only). msg is
 *   {"type":"event","pos":N,"epoch":"<epoch>","event":{"type","id","time",
 *    "subject","data"}}
 * already projected for that stream. It is borrowed and shared with the
 * resume history: json_incref it to keep it, never modify it. */
typedef void (*view_delivery_fn)(void *ctx, const char *operator_id, json_t *msg);

/* epoch is copied; history_per_stream may be 0 (no resume, only snapshots). */
view *view_new(size_t history_per_stream, const char *epoch);
void view_free(view *v);

/* One CloudEvent from calls/operators/results. fn may be NULL (rebuild).
 * Returns the number of streams it was delivered to, 0 when it was ignored
 * (duplicate id, unknown type, nothing to do), -1 when it is not a usable
 * CloudEvent (bad JSON, no id, type or data object). */
int view_apply(view *v, const char *cloudevent_json, size_t len, view_delivery_fn fn, void *ctx);

/* {"type":"snapshot","epoch","pos","role","operator":{state},"calls":[active
 * calls]} and, for a supervisor, "operators":[every operator's state] with
 * "calls" holding every active call of the site. pos is the stream's current
 * position: live events follow with pos+1. New reference. */
json_t *view_snapshot(view *v, const char *operator_id, view_role role);

/* A client that saw up to (epoch, pos) reconnects. If it can be served from
 * the history: {"type":"resume","epoch","pos":current,"recovered":true,
 * "events":[the missed messages, in order]}; otherwise a fresh snapshot with
 * "recovered":false and "reason": "epoch changed" | "too old" |
 * "unknown position" (ahead of the stream). New reference. */
json_t *view_resume(view *v, const char *operator_id, view_role role, const char *epoch,
                    uint64_t pos);

/* Counters, for tests and the gateway's status. */
typedef struct view_stats {
    size_t operators;      /* operators with state */
    size_t active_calls;
    size_t streams;        /* operator streams + the site stream */
    size_t history;        /* messages kept, all streams */
    size_t dedupe_ids;
    uint64_t duplicates;   /* events dropped as duplicates */
    uint64_t ignored;      /* malformed or unknown type */
} view_stats;
void view_get_stats(const view *v, view_stats *out);

#endif
