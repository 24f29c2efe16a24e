/* cloudevent.h -- the CloudEvents 1.0 envelope every callbus message wears.
 *
 * Ids are "<site>:<producer>:<stream>:<epoch>:<seq>": unique per site, and
 * the epoch and sequence let consumers drop replication duplicates and see
 * gaps. A producer numbers each of its streams (the agent: each topic) from
 * 1 in every epoch, so the stream is part of the id. */
#ifndef CALLBUS_CLOUDEVENT_H
#define CALLBUS_CLOUDEVENT_H

#include <stdint.h>

#include "sbuf.h"

typedef struct ce_source {
    char site[64];
    char producer[64];   /* agent or gateway id */
    char uri[192];       /* "callbus://<site>/<role>/<producer>" */
    int64_t epoch;
} ce_source;

void ce_source_init(ce_source *src, const char *site, const char *role,
                    const char *producer, int64_t epoch);
/* Writes '{' and every attribute up to `"data":`; the caller writes the data
 * value and then calls ce_end. */
void ce_begin(sbuf *b, const ce_source *src, const char *stream, uint64_t seq,
              const char *type, const char *subject, double time);
void ce_end(sbuf *b);
/* Seconds since the epoch, with microseconds. */
double ce_now(void);

#endif
