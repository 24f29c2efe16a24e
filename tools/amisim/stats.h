/* stats.h -- counters of what clients asked and got, written as JSON
 * (--stats-file, on SIGUSR1, every --stats-interval and at exit) so tests
 * can assert on them: actions by name, by ActionID (to prove a command ran
 * once), and every Originate in arrival order. */
#ifndef AMISIM_STATS_H
#define AMISIM_STATS_H

void stats_action(const char *name, const char *actionid);
void stats_originate(const char *actionid, const char *channel, const char *exten,
                     const char (*vars)[2][128], int nvars);
void stats_events(unsigned long n);
void stats_client(void);
int stats_write(const char *path);
void stats_free(void);

#endif
