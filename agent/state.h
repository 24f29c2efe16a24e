/* state.h -- the live state of one site: the one reducer of callbus.
 *
 * Pure logic, no I/O, like the call model it follows: the agent feeds it
 * every derived event the call model emits (callbus.call.*,
 * callbus.operator.*, exactly what goes to the calls and operators topics),
 * in order. It keeps the current state of every active call, every operator
 * and every queue, with "today" counters, and marks what an event changed.
 * At the end of a loop turn the agent takes the changed records
 * (state_flush) and publishes each once to the compacted state topics
 * (docs/messages.md: callbus.state.call, callbus.state.operator,
 * callbus.queue.stats), so the gateway, wallboards and the CRM get current
 * state without replaying history, and all of them show the same numbers.
 *
 * "Today" starts at local midnight in the site's time zone. The zone is the
 * process's (glibc's TZ): state_new sets it, so there is one zone per
 * process. Counters reset when an event's time (or a tick) crosses midnight.
 *
 * Memory is bounded by the site, not by the day: an ended call leaves (its
 * key gets a tombstone), an operator keeps its last STATE_RECENT_CALLS
 * calls, queues and operators are as many as the site has.
 *
 * Restart: the agent reads its own state topics back (state_restore for
 * every record, then state_restore_end) and, after the first resync with
 * Asterisk, state_reconcile ends the recovered calls no event confirmed. */
#ifndef CALLBUS_STATE_H
#define CALLBUS_STATE_H

#include <stddef.h>
#include <jansson.h>

#define STATE_RECENT_CALLS 10

typedef enum { STATE_CALLS, STATE_OPERATORS, STATE_QUEUES, STATE_KINDS } state_kind;

typedef struct state_settings {
    const char *timezone;      /* IANA name, e.g. "Europe/Tallinn"; NULL = "UTC" */
    int service_level_s;       /* answered within this many seconds of waiting */
} state_settings;

typedef struct state state;

state *state_new(const state_settings *set);
void state_free(state *s);

/* The CloudEvents type of a kind's records: "callbus.state.call", ... */
const char *state_kind_type(state_kind k);

/* One derived event, as the call model emitted it: type
 * "callbus.call.answered", key = call or operator id, time = event time
 * (seconds since the epoch), data borrowed. Unknown types are ignored. */
void state_apply(state *s, const char *type, const char *key, double time, const json_t *data);

/* Periodic: rolls the day over when now crossed midnight and marks every
 * queue changed, so its record carries a fresh longest_wait_s. */
void state_tick(state *s, double now);

/* Called once per changed record, in the order they first changed: json is
 * the record's data object (a tombstone: NULL, len 0); time is the time of
 * its last change. */
typedef void (*state_record_fn)(void *ctx, state_kind kind, const char *key, double time,
                                const char *json, size_t len);
/* Hands every changed record to fn and forgets the marks (and the ended
 * calls). Returns how many records it handed out. */
size_t state_flush(state *s, state_record_fn fn, void *ctx);

/* Recovery from the state topics: every record in topic order (data NULL:
 * a tombstone), then state_restore_end. Records that are not what the
 * schemas say are skipped (returns -1). restore_end keeps today's counters
 * only when their date is today at now, rebuilds what follows from the
 * records (queue waiting lists, operators by state) and marks the recovered
 * calls unconfirmed. */
int state_restore(state *s, state_kind kind, const char *key, const json_t *data);
void state_restore_end(state *s, double now);
/* After the first resync with Asterisk: recovered calls no event has
 * mentioned since ended while the agent was away: tombstoned, counted
 * nowhere. With members_listed (the resync listed queue members) recovered
 * memberships no event confirmed are gone too. Returns the calls ended. */
size_t state_reconcile(state *s, double now, int members_listed);

typedef struct state_stats {
    size_t calls, operators, queues, dirty;
} state_stats;
void state_get_stats(const state *s, state_stats *out);

#endif
