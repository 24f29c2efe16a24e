/* arrivals.h -- when inbound callers come (--simulate).
 *
 * A Poisson stream at --rate calls per simulated second; over a --day the
 * rate follows the day's --profile (quiet start, peaks). --burst adds N
 * callers at once (within a quarter of a second), as when a campaign or an
 * outage elsewhere sends everyone together. --calls N ends it all after N calls. */
#ifndef AMISIM_ARRIVALS_H
#define AMISIM_ARRIVALS_H

/* Checks --profile and --burst; -1 (logged) when they are wrong. */
int arrivals_init(void);
/* The simulated clock starts: the first arrivals are planned from now. */
void arrivals_start(double now);
/* No caller will arrive any more (the day is over, or --calls reached). */
int arrivals_done(void);

#endif
