/* state_load.h -- the agent reads its own state topics back at start.
 *
 * The state topics are compacted, so reading them to their end gives the
 * latest record per call, operator and queue: today's counters continue
 * across a restart instead of starting from zero. The read is bounded: a
 * broker that does not answer within the timeout leaves the agent to start
 * from empty state (and say so, docs/messages.md: state_not_recovered). */
#ifndef CALLBUS_STATE_LOAD_H
#define CALLBUS_STATE_LOAD_H

#include <stddef.h>

#include "config.h"
#include "state.h"

/* Reads the three state topics of cfg from their beginning to the end they
 * had when the read started and hands every record to state_restore (a
 * tombstone as NULL). Returns the number of records read (0: the topics are
 * empty or do not exist yet), or -1 with err when they could not be read
 * to their end within timeout_s; st then holds part of them and must not
 * be used. The caller finishes with state_restore_end. */
long state_load(const callbus_config *cfg, state *st, double timeout_s, char *err, size_t errlen);

#endif
