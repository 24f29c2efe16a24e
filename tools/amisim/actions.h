/* actions.h -- the action dispatch table and the reply helpers.
 *
 * Each action is a name and a handler, registered at start-up by the part
 * that implements it: session.c (Login, Events...), lists.c
 * (CoreShowChannels, QueueStatus...), commands.c (Originate, Hangup...). */
#ifndef AMISIM_ACTIONS_H
#define AMISIM_ACTIONS_H

#include "ami.h"
#include "sbuf.h"
#include "server.h"

typedef void (*action_handler)(client *c, const ami_msg *a);

/* Gives every session a parser for its actions (server hooks). */
void actions_init(void);
void actions_register(const char *name, action_handler fn, int needs_auth);
void actions_dispatch(client *c, const ami_msg *a);
void actions_free(void);

/* A parser for one client's actions, read as Asterisk reads them (limits
 * and refusals included): complete actions go to actions_dispatch(). */
ami_parser *actions_parser_new(client *c);

/* A header's value as Asterisk's astman_get_header gives it: the first
 * one's, blanks after the colon skipped, "" when the action has none. */
const char *action_arg(const ami_msg *a, const char *key);
/* The same skip, for a value taken from a->headers directly. */
const char *action_value(const char *value);

/* Replies, header for header as Asterisk's astman_send_* write them. */
/* Response, ActionID (if any), EventList (list != NULL), Message (message
 * != NULL), without the blank line that ends the reply. */
void reply_head(sbuf *b, const ami_msg *a, const char *response, const char *list,
                const char *message);
/* The same, ended: the whole reply queued for c. */
void reply(client *c, const ami_msg *a, const char *response, const char *list,
           const char *message);
void reply_ack(client *c, const ami_msg *a, const char *message);
void reply_error(client *c, const ami_msg *a, const char *message);
void reply_list_start(client *c, const ami_msg *a, const char *message);
void reply_list_complete(client *c, const ami_msg *a, const char *event, int items);
/* "ActionID: x\r\n", or "" when the action had none. */
void actionid_line(const ami_msg *a, char *out, size_t n);

#endif
