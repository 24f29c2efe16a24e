/* topic_read.h -- read some topics once, up to the end they had when the
 * read started.
 *
 * What the agent reads back from its own topics at start or on a takeover
 * (the live state, the results of commands): a bounded read, so records
 * written meanwhile do not keep it going, and a broker that does not answer
 * in time is an error the caller reports, not a hang. */
#ifndef CALLBUS_TOPIC_READ_H
#define CALLBUS_TOPIC_READ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TOPIC_READ_BEGINNING (-1)

typedef void (*topic_read_fn)(void *ctx, int topic_index, const rd_kafka_message_t *m);

/* Reads every partition of the topics that exist, from since_ms (a Kafka
 * timestamp; TOPIC_READ_BEGINNING for all) to the high watermark each had
 * before reading, handing each record to fn with the index of its topic.
 * Transactional records are read committed. Returns the number of records
 * read, or -1 with err when they could not all be read within timeout_s. */
long topic_read(const callbus_config *cfg, const char *const *topics, int ntopics, int64_t since_ms,
                double timeout_s, topic_read_fn fn, void *ctx, char *err, size_t errlen);

#endif
