/* cloudevent.h -- the CloudEvents 1.0 envelope every callbus message wears,
 * written in one place for the agent's events and for the commands the
 * gateway and the CLI send.
 *
 * Event ids are "<site>:<producer>:<stream>:<epoch>:<seq>": unique per site,
 * and the epoch and sequence let consumers drop replication duplicates and
 * see gaps. A producer numbers each of its streams (the agent: each topic)
 * from 1 in every epoch, so the stream is part of the id. A command's id is
 * its sender's; it carries an absolute expiry and who sent it. */
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
/* The same for a command (schemas/callbus.command.*): time and expires are
 * wall times; subject may be NULL. Every string is escaped. */
void ce_begin_command(sbuf *b, const char *id, const char *source, const char *type, const char *subject,
                      double time, double expires, const char *sender);
void ce_end(sbuf *b);

#endif
