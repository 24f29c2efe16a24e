/* spool.h -- an append-only FIFO of Kafka messages on local disk.
 *
 * Used when the broker is away longer than the in-memory bound allows. It is
 * a directory of numbered segment files read from the lowest and written at
 * the highest, so it survives an agent restart: the next start sends what
 * the last one could not. */
#ifndef CALLBUS_SPOOL_H
#define CALLBUS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct spool spool;
/* What a record read from the spool owes it: released when the broker has
 * it (or it has been given up), so its segment can be deleted. */
typedef struct spool_hold spool_hold;

typedef struct spool_record {
    uint8_t topic;
    const char *key;
    size_t keylen;
    const char *payload;    /* NULL: a tombstone (len 0) */
    size_t len;
    spool_hold *hold;       /* set by spool_peek */
} spool_record;

spool *spool_open(const char *dir, long long max_bytes, char *err, size_t errlen);
/* Appends at the tail. -1 when the spool is full or the write failed. */
int spool_append(spool *s, const spool_record *r);
/* Appends to a new segment placed before everything else: for messages that
 * are older than the whole spool (purged from librdkafka at shutdown). */
int spool_begin_front(spool *s);
int spool_append_front(spool *s, const spool_record *r);
/* Next record without consuming it: 1 found, 0 empty. A record damaged on
 * disk is skipped, with a warning. The record stays valid until the next
 * spool call. */
int spool_peek(spool *s, spool_record *r);
/* The peeked record is taken: its segment stays on disk until every record
 * taken from it is released. */
void spool_consume(spool *s);
void spool_release(spool *s, spool_hold *h);
/* Write-ahead: only while the spool is empty, writes a record the caller
 * hands to the broker itself, so it is on disk until released. NULL when
 * the spool is not empty or the write failed. */
spool_hold *spool_write_ahead(spool *s, const spool_record *r);
/* The record just written ahead was not taken after all: it is left in the
 * spool to be read and sent like any spooled record. */
void spool_give_back(spool *s, spool_hold *h);
int spool_empty(const spool *s);
uint64_t spool_size(const spool *s);
/* Called for each spooled record that a failed write (disk full, I/O
 * error) lost, with its topic: the caller counts and announces it. */
typedef void (*spool_lost_fn)(void *ctx, uint8_t topic);
void spool_set_lost_handler(spool *s, spool_lost_fn fn, void *ctx);
/* Writes buffered records to the kernel (cheap; called once per loop turn). */
void spool_flush(spool *s);
/* Flushes and fsyncs: the records written so far survive a crash. */
int spool_sync(spool *s);
/* Returns once the segments deleted so far are gone from the disk: they
 * are deleted on a thread of their own (reaper.h). */
void spool_settle(spool *s);
/* Records where reading stopped, so a restart does not send twice; segments
 * with records not yet released are kept and read again. */
void spool_close(spool *s);

#endif
