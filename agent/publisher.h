/* publisher.h -- the agent's only way to Kafka: never blocks, never drops silently.
 *
 * Asterisk disconnects an AMI reader that falls behind, so the read loop may
 * never wait on the broker. Messages go to librdkafka's in-memory queue (its
 * queue.buffering.max.* properties are the memory bound); when that is full,
 * or while older messages still wait on disk, they are appended to a spool
 * on disk and fed back in order as the broker takes them. A message is lost
 * only when the spool itself is full or unwritable, and that is counted and
 * reported to the caller so it can announce the gap. */
#ifndef CALLBUS_PUBLISHER_H
#define CALLBUS_PUBLISHER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum topic_kind {
    TOPIC_AMI,
    TOPIC_CALLS,
    TOPIC_OPERATORS,
    TOPIC_STATUS,
    TOPIC_RESULTS,
    TOPIC_STATE_CALLS,       /* compacted: the live state (agent/state.h) */
    TOPIC_STATE_OPERATORS,
    TOPIC_STATE_QUEUES,
    TOPIC_LEASES,            /* compacted: the standby agent's leader lease (agent/leader.h) */
    TOPIC_KINDS
} topic_kind;

typedef struct publisher_stats {
    uint64_t sent;          /* handed to publisher_send */
    uint64_t delivered;     /* acknowledged by the broker */
    uint64_t failed;        /* permanent delivery errors (reported per message) */
    uint64_t spooled;       /* written to the disk spool */
    uint64_t unspooled;     /* read back from the spool into librdkafka */
    uint64_t dropped;       /* lost: spool full or unwritable */
    uint64_t spool_bytes;   /* current size of the spool on disk */
    uint64_t queued;        /* in librdkafka's queue right now */
    uint64_t standby;       /* not sent: this agent is the standby (agent.standby) */
    uint64_t commits;       /* transactions committed (agent.standby) */
    int broker_up;
} publisher_stats;

typedef struct publisher publisher;

const char *topic_kind_name(topic_kind t);
publisher *publisher_new(const callbus_config *c, char *err, size_t errlen);
/* Queues one message; returns 0, or -1 when it had to be dropped. payload
 * NULL (len 0) is a tombstone: the key's end in a compacted topic. */
int publisher_send(publisher *p, topic_kind t, const char *key, size_t keylen,
                   const char *payload, size_t len);
/* Queues one message that must survive a crash of the agent from the
 * moment this returns 0 (command results): it goes through the disk spool,
 * fsynced, and is sent from there. */
int publisher_send_durable(publisher *p, topic_kind t, const char *key, size_t keylen,
                           const char *payload, size_t len);
/* Serves delivery reports and moves spooled messages back into librdkafka.
 * Call it on every turn of the event loop. */
void publisher_poll(publisher *p);
/* An fd for the event loop's poll() (POLLIN) while messages wait in the
 * spool for room in librdkafka's queue (or a commit for its deliveries),
 * else -1: readable when delivery reports arrive, so the spool drains at
 * the broker's pace, not the loop's timer's. */
int publisher_wake_fd(const publisher *p);
/* Creates the topics (status compacted; the state topics compacted, one
 * partition, with the settings of docs/operations.md), plus commands_topic
 * when given, when they do not exist. An existing topic is left as it is
 * (a state topic that is not compacted is warned about). Best effort:
 * auto-creation may still do it. Returns 1 when the broker answered within
 * timeout_ms, 0 when it did not (the creation is retried in the background). */
int publisher_create_topics(publisher *p, const char *commands_topic, int partitions, int timeout_ms);
/* Delivers what it can within timeout_ms; the rest goes to the spool so the
 * next start sends it. */
void publisher_close(publisher *p, int timeout_ms);
void publisher_get_stats(publisher *p, publisher_stats *out);
/* Messages lost since the last call (for gap announcements): the total,
 * and by topic in by_kind. */
uint64_t publisher_take_dropped(publisher *p, uint64_t by_kind[TOPIC_KINDS]);
/* Puts them back: an announcement of them that was itself lost. */
void publisher_keep_dropped(publisher *p, const uint64_t by_kind[TOPIC_KINDS]);
/* Writes what the spool holds in memory now, so that a write it cannot
 * make (disk full) is counted as dropped at once, not at the next turn. */
void publisher_flush_spool(publisher *p);
void publisher_free(publisher *p);

/* ---- Leading (agent.standby) ------------------------------------------------
 *
 * With a standby the producer is transactional: a standby sends nothing,
 * the leader's messages become visible in transactions it commits every
 * agent.standby.commit_interval_ms, and the standby that takes over fences
 * it through the transactional id, so a paused old leader that wakes up can
 * neither publish nor record a command's decision. */

/* Takes over: fences any earlier producer of this agent id and opens a
 * transaction. 0 leading, 1 not now (the broker did not answer; try again),
 * -1 never (fatal: err says why). Blocks up to timeout_ms. */
int publisher_lead(publisher *p, int timeout_ms, char *err, size_t errlen);
int publisher_leading(const publisher *p);
/* Another instance leads: nothing this one sends will ever be seen. */
int publisher_fenced(const publisher *p);
/* The commands consumer's group, whose offsets go into the transactions.
 * Takes ownership. */
void publisher_set_group(publisher *p, rd_kafka_consumer_group_metadata_t *group);
/* The next offset to consume of a commands partition, committed with the
 * transaction in which its command's results are. */
void publisher_store_offset(publisher *p, const char *topic, int32_t partition, int64_t offset);
/* Commits what was sent and stored so far, now: 0 committed, -1 not
 * (fenced, or not within timeout_ms; the commit then goes on in the
 * background and what follows waits for it). */
int publisher_commit(publisher *p, int timeout_ms);

#endif
