/* actions.h -- the action dispatch table and the reply helpers.
 *
 * Each action is a name and a handler; new actions (Originate, Hangup,
 * Redirect, QueuePause...) are added by one actions_register() call. */
#ifndef AMISIM_ACTIONS_H
#define AMISIM_ACTIONS_H

#include "reader.h"
#include "server.h"

typedef void (*action_handler)(client *c, const action *a);

void actions_init(void);
void actions_register(const char *name, action_handler fn, int needs_auth);
void actions_dispatch(client *c, const action *a);
void actions_free(void);

/* Replies, header for header as Asterisk's astman_send_* write them. */
void reply_ack(client *c, const action *a, const char *message);
void reply_error(client *c, const action *a, const char *message);
void reply_list_start(client *c, const action *a, const char *message);
void reply_list_complete(client *c, const action *a, const char *event, int items);
/* "ActionID: x\r\n", or "" when the action had none. */
void actionid_line(const action *a, char *out, size_t n);

#endif
