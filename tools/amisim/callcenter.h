/* callcenter.h -- the simulated call centre (--simulate).
 *
 * Inbound calls arrive at --rate, wait in a queue, ring a free operator,
 * talk and hang up, or abandon; every step is published as the events a real
 * Asterisk 22 sends for it. callcenter_init() registers the call centre's
 * turn with the event loop (server.h) and its ground truth with the stats;
 * lists.c answers CoreShowChannels and QueueStatus from the same state, so a
 * client can resync after reconnecting. */
#ifndef AMISIM_CALLCENTER_H
#define AMISIM_CALLCENTER_H

int callcenter_init(void);
int callcenter_enabled(void);
void callcenter_free(void);

#endif
