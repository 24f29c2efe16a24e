/* callcenter.h -- the simulated call centre (--simulate).
 *
 * Inbound calls arrive at --rate, wait in a queue, ring a free operator,
 * talk and hang up, or abandon; every step is published as the events a real
 * Asterisk 22 sends for it. The current state answers CoreShowChannels and
 * QueueStatus so a client can resync after reconnecting. */
#ifndef AMISIM_CALLCENTER_H
#define AMISIM_CALLCENTER_H

#include "sbuf.h"

int callcenter_init(void);
int callcenter_enabled(void);
/* Runs every step that is due (all of them with --max) while the clients
 * that receive events have room. */
void callcenter_run(double now);
/* Wall-clock time of the next step, -1 if none is pending. */
double callcenter_next_due(double now);
/* The simulated clock: wall clock sped up by --speed, or free-running with --max. */
double sim_now(void);

/* List items for the actions; each returns how many items it appended. */
int callcenter_list_channels(sbuf *b, const char *actionid);
int callcenter_list_queue_status(sbuf *b, const char *actionid, const char *queue,
                                 const char *member);
int callcenter_list_queue_summary(sbuf *b, const char *actionid, const char *queue);
void callcenter_free(void);

#endif
