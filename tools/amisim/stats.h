/* stats.h -- counters of what clients asked and got, written as JSON
 * (--stats-file, on SIGUSR1, every --stats-interval and at exit) so tests
 * can assert on them: actions by name, by ActionID (to prove a command ran
 * once), every Originate in arrival order, the busiest second, how far the
 * simulation fell behind, and what other parts add (the ground truth, truth.h). */
#ifndef AMISIM_STATS_H
#define AMISIM_STATS_H

#include <jansson.h>

/* Adds name: fn() to every stats file written from now on (the call centre
 * adds its ground truth this way; stats know nothing of what it is). */
void stats_add_section(const char *name, json_t *(*fn)(void));
void stats_action(const char *name, const char *actionid);
void stats_originate(const char *actionid, const char *channel, const char *exten,
                     const char (*vars)[2][128], int nvars);
void stats_events(unsigned long n);
/* One event broadcast, stamped ts (simulated time): for the busiest second,
 * in simulated and in wall-clock time. */
void stats_event_at(double ts);
/* How late a simulated step ran behind its wall-clock time (timed mode). */
void stats_sim_lag(double seconds);
void stats_client(void);
/* What one session (client id, socket fd) was sent so far: events queued,
 * bytes written, and bytes the peer's TCP acknowledged. A peer killed with
 * nothing unread has read exactly bytes_acked: what amisim writes after its
 * death is counted in bytes_written but never acknowledged. */
void stats_session(unsigned id, unsigned long events, unsigned long long bytes_written, int fd);
int stats_write(const char *path);
void stats_free(void);

#endif
