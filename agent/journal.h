/* journal.h -- the durable record that makes commands execute at most once.
 *
 * Before the agent sends a command's AMI action it appends the command id to
 * this file and fsyncs it. Whatever happens next (a crash, a redelivery, a
 * rebalance, a replay, a duplicate from replication), a command id found
 * here is never executed again. Entries are dropped once their command has
 * expired: an expired command is refused before the journal is consulted. */
#ifndef CALLBUS_JOURNAL_H
#define CALLBUS_JOURNAL_H

#include <stddef.h>

typedef enum journal_state {
    JOURNAL_NONE = 0,
    JOURNAL_EXECUTING = 'E',  /* decided and (maybe) sent; no final result yet */
    JOURNAL_DONE = 'D'        /* final result published */
} journal_state;

typedef struct journal journal;

typedef void (*journal_visit_fn)(void *ctx, const char *id, double expires, journal_state st);

journal *journal_open(const char *path, char *err, size_t errlen);
journal_state journal_get(const journal *j, const char *id);
/* Appends and fsyncs; returns 0 only when the record is on disk. */
int journal_set(journal *j, const char *id, double expires, journal_state st);
/* Calls fn for each entry (for the ones left EXECUTING by a crash). */
void journal_each(journal *j, journal_visit_fn fn, void *ctx);
/* Forgets entries that expired before `before` and rewrites the file. */
void journal_prune(journal *j, double before);
size_t journal_size(const journal *j);
void journal_close(journal *j);

#endif
