/* ami_client.h -- the agent's connection to Asterisk's manager interface.
 *
 * Non-blocking and driven by the agent's poll loop: it connects, logs in,
 * keeps the link alive with Ping, and reconnects with capped exponential
 * backoff and jitter. It never waits on anything, because Asterisk drops a
 * manager session that does not read fast enough. */
#ifndef CALLBUS_AMI_CLIENT_H
#define CALLBUS_AMI_CLIENT_H

#include <stddef.h>

#include "ami.h"
#include "config.h"

typedef struct ami_client ami_client;

typedef struct ami_client_handlers {
    /* Logged in; banner is the greeting line. */
    void (*on_up)(void *ctx, const char *banner);
    /* Link lost (or login failed); reason is for people. */
    void (*on_down)(void *ctx, const char *reason);
    /* Every message received after login, events and responses alike. */
    void (*on_message)(void *ctx, ami_msg *m);
    /* Input the parser refused. */
    void (*on_refused)(void *ctx, ami_error err, const char *raw, size_t len);
} ami_client_handlers;

ami_client *ami_client_new(const callbus_config *c, const ami_client_handlers *h, void *ctx);
void ami_client_free(ami_client *a);
/* For poll(): the socket (or -1) and the events to wait for. */
int ami_client_fd(const ami_client *a);
short ami_client_poll_events(const ami_client *a);
void ami_client_handle(ami_client *a, short revents, double now);
/* Timers: connect attempts, Ping, Ping timeout. Returns seconds until the
 * next timer is due. */
double ami_client_tick(ami_client *a, double now);
int ami_client_is_up(const ami_client *a);
/* Sends an action; headers are key/value pairs ending with NULL. Refuses
 * (-1) any key or value that could end a header early. The ActionID used
 * is written to id_out. */
int ami_client_send(ami_client *a, const char *action, const char *const *headers,
                    char *id_out, size_t id_len);
/* The same with a given ActionID (the command executor names its actions
 * after the command, so a reply finds its command and a count per id is
 * possible on the Asterisk side). */
int ami_client_send_as(ami_client *a, const char *action, const char *const *headers,
                       const char *action_id);
const ami_parser_stats *ami_client_parser_stats(const ami_client *a);
/* Closes the link with Logoff (at shutdown). */
void ami_client_logoff(ami_client *a);

#endif
