/* clock.h -- the two clocks of every callbus program, and its one RFC 3339
 * writer and reader.
 *
 * The wall clock says what time it is: timestamps in messages and logs, and
 * command expiry, which the sender writes as an absolute RFC 3339 time. NTP
 * or an operator can step it, forward or back, at any moment. The monotonic
 * clock only goes forward, at the rate of real time: every deadline, timeout,
 * interval, backoff and rate limit is measured on it, so a step of the wall
 * clock neither fires a timer early (a spurious reconnect, every client
 * dropped as idle) nor freezes one (a dead link never noticed). */
#ifndef CALLBUS_CLOCK_H
#define CALLBUS_CLOCK_H

#include <stddef.h>

/* Seconds since the Unix epoch, with microseconds. */
double wall_now(void);
/* Seconds since an arbitrary start; only differences mean anything. */
double mono_now(void);

/* Room for any time rfc3339 writes, with its terminating NUL. */
#define RFC3339_MAX 32
/* Writes wall time t as "2026-11-26T05:17:39.396Z" (UTC) with digits (0-6)
 * fractional digits, rounded. A time that is not finite or outside the
 * years 1970-9999 is written as the epoch. Returns out. */
const char *rfc3339(double t, int digits, char *out, size_t outlen);
/* Reads a strict RFC 3339 time ("2026-11-26T05:20:30.125Z", offsets
 * "+HH:MM" allowed) as seconds since the epoch; -1 for anything else,
 * a day the month lacks included. Never reads past the string's end. */
double rfc3339_parse(const char *s);

#endif
