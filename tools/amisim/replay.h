/* replay.h -- streams a recorded AMI capture to clients (--replay, --raw-replay). */
#ifndef AMISIM_REPLAY_H
#define AMISIM_REPLAY_H

#include "server.h"

int replay_load(const char *path);
int replay_enabled(void);
/* --raw-replay: queue the file's bytes at connect (no banner of our own). */
void replay_on_connect(client *c);
/* Events were switched on for c (Login or Events): start its stream. */
void replay_on_events_on(client *c);
/* Queue whatever is due for c, up to CLIENT_HIGH_WATER. */
void replay_pump(client *c, double now);
/* Wall-clock time c's next message is due; -1 when nothing is waiting on a
 * timer (stream ended, not started, or blocked by a full queue). */
double replay_next_due(client *c, double now);
void replay_client_free(client *c);
void replay_free(void);

#endif
