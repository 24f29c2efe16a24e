/* alloc.h -- the one out-of-memory policy of every callbus program: abort,
 * as Redis's zmalloc does.
 *
 * A program that cannot allocate has nothing sensible left to do: going on
 * with a half-built message or a missing table entry would lose data
 * silently, or crash later far from the cause. So callbus allocates through
 * these, which say what failed on stderr and abort, and callers never test
 * for NULL. alloc_init() gives jansson the same policy, so json_pack,
 * json_dumps and the rest never return NULL for want of memory; librdkafka
 * aborts on its own (its rd_malloc asserts). */
#ifndef CALLBUS_ALLOC_H
#define CALLBUS_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Once, first thing in main: jansson allocates through xmalloc. */
void alloc_init(void);

#endif
