/* reader.h -- reads the actions a client sends, the way Asterisk does.
 *
 * lib/ami.c (the agent's parser) was still being written when amisim was;
 * the simulator only needs the server side of the grammar, with Asterisk's
 * own limits (1024 bytes a line, 128 headers an action), so it has this
 * small reader of its own. */
#ifndef AMISIM_READER_H
#define AMISIM_READER_H

#include <stddef.h>

#define ACTION_MAX_LINE 1024
#define ACTION_MAX_HEADERS 128

typedef struct action_header {
    char *key;
    char *value;
} action_header;

typedef struct action {
    action_header h[ACTION_MAX_HEADERS];
    int count;
} action;

typedef struct reader {
    char line[ACTION_MAX_LINE + 1];
    size_t len;
    int dumping;        /* inside an over-long line: discard up to its end */
    action cur;
} reader;

typedef void (*action_cb)(void *ctx, action *a);

void reader_init(reader *r);
void reader_free(reader *r);
/* Feeds bytes and calls cb once per complete action. Stops early once *stop
 * becomes nonzero: after Logoff or a failed Login nothing more is read. */
void reader_feed(reader *r, const char *p, size_t n, action_cb cb, void *ctx, const int *stop);
/* First value of key, compared case-insensitively as Asterisk does; "" when absent. */
const char *action_get(const action *a, const char *key);

#endif
