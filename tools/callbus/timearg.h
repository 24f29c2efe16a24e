/* timearg.h -- the times an operator types on the command line.
 *
 * `callbus replay --from` and friends take either an ISO-8601 time with an
 * explicit zone or a time relative to now. A time without a zone is refused:
 * at 3 a.m. nobody should have to guess whether it meant UTC or local. */
#ifndef CALLBUS_TIMEARG_H
#define CALLBUS_TIMEARG_H

#include <stddef.h>
#include <stdint.h>

/* Parses s into milliseconds since the epoch. Accepted:
 *   2026-11-26T05:00:00Z, 2026-11-26T05:00:00.250Z, 2026-11-26 05:00Z,
 *   2026-11-26T08:00:00+03:00, 2026-11-26 (midnight UTC)
 *   now, -2h, -30m, -90s, -1d, -1500ms (relative to now_ms)
 * Returns 0, or -1 with a message in err. */
int timearg_parse(const char *s, int64_t now_ms, int64_t *out_ms, char *err, size_t errlen);

/* "2026-11-26T05:00:00.250Z" */
void timearg_format(int64_t ms, char *out, size_t outlen);

#endif
