/* siteclock.h -- the site's local time in the simulation: at which local
 * time of day the simulated clock starts (--start-at, in the time zone
 * --tz), and on which local date a simulated moment falls. Consumers count
 * "today" from the site's local midnight; starting at 23:50, say, makes a
 * day that crosses it. */
#ifndef AMISIM_SITECLOCK_H
#define AMISIM_SITECLOCK_H

#include <stddef.h>

/* Applies --tz (as TZ) and checks --start-at; -1, logged, when wrong. */
int siteclock_init(void);
/* The simulated time the clock starts at: --start-at if given, else now. */
double siteclock_origin(double now);
/* "2026-11-26": the local date of t. */
void siteclock_date(double t, char *out, size_t n);
/* "2026-11-26T23:50:00+02:00": t in local time with its UTC offset. */
void siteclock_iso(double t, char *out, size_t n);
/* The zone's name: --tz, else TZ, else "localtime". */
const char *siteclock_zone(void);

#endif
