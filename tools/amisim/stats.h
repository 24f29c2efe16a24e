/* stats.h -- counters of what clients asked and got, written as JSON
 * (--stats-file, on SIGUSR1 and at exit) so tests can assert on them. */
#ifndef AMISIM_STATS_H
#define AMISIM_STATS_H

void stats_action(const char *name);
void stats_events(unsigned long n);
void stats_client(void);
int stats_write(const char *path);
void stats_free(void);

#endif
