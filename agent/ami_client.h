/* ami_client.h -- the agent's connection to Asterisk's manager interface.
 *
 * Non-blocking and driven by the agent's poll loop: it connects, logs in,
 * keeps the link alive with Ping, and reconnects with capped exponential
 * backoff and jitter. It never waits on anything, because Asterisk drops a
 * manager session that does not read fast enough.
 *
 * Every ActionID it sends is built here, as "callbus/<nonce>/<tag>": the
 * nonce is 128 random bits read once per run, so dialplan data that Asterisk
 * writes raw into an event (CR/LF in a Newexten AppData or a UserEvent body
 * makes a whole fake message) cannot name one of our actions. Messages that
 * only such an injection can produce are refused (on_forged), never passed
 * on: a first header other than Event or Response, a Response the agent is
 * not waiting for, an event naming one of our actions that answers with no
 * events (or that is over), or an ActionID of ours from another run. */
#ifndef CALLBUS_AMI_CLIENT_H
#define CALLBUS_AMI_CLIENT_H

#include <stddef.h>

#include "ami.h"
#include "config.h"

typedef struct ami_client ami_client;

typedef struct ami_client_handlers {
    /* Logged in; banner is the greeting line. Actions may be sent from
     * here; if one fails, on_down follows once this returns. */
    void (*on_up)(void *ctx, const char *banner);
    /* The link that on_up announced is lost; reason is for people. Called
     * once after each on_up and never otherwise (a refused login or a
     * failed reconnect while down changes nothing), never from inside
     * another handler. */
    void (*on_down)(void *ctx, const char *reason);
    /* Every message received after login, events and responses alike. */
    void (*on_message)(void *ctx, ami_msg *m);
    /* Input the parser refused. */
    void (*on_refused)(void *ctx, ami_error err, const char *raw, size_t len);
    /* A message that cannot have come from Asterisk itself (see above):
     * error is a short code (forged_action_id, unexpected_response,
     * not_event_or_response), detail says why, for people. */
    void (*on_forged)(void *ctx, const ami_msg *m, const char *error, const char *detail);
} ami_client_handlers;

/* "callbus/" + 32 hex digits + "/" + a tag of up to 200 bytes. */
#define AMI_ACTION_ID_MAX 256

/* NULL (err set) when no random bytes could be read for the nonce. */
ami_client *ami_client_new(const callbus_config *c, const ami_client_handlers *h, void *ctx,
                           char *err, size_t errlen);
void ami_client_free(ami_client *a);
/* For poll(): the socket (or -1) and the events to wait for. */
int ami_client_fd(const ami_client *a);
short ami_client_poll_events(const ami_client *a);
/* now is the monotonic clock (clock.h), here and in ami_client_tick. */
void ami_client_handle(ami_client *a, short revents, double now);
/* Timers: connect attempts, Ping, Ping timeout. Returns seconds until the
 * next timer is due. */
double ami_client_tick(ami_client *a, double now);
/* Logged in and no failure found since (sends then succeed or queue). */
int ami_client_is_up(const ami_client *a);
/* Sends an action; headers are key/value pairs ending with NULL. Refuses
 * (-1) any key or value that could end a header early, and returns -1 when
 * the link is down or failed while the action was written (on_down is then
 * called before this returns, or when the callback it runs in returns). The
 * ActionID used ("callbus/<nonce>/<n>") is written to id_out. */
int ami_client_send(ami_client *a, const char *action, const char *const *headers,
                    char *id_out, size_t id_len);
/* The same with the ActionID "callbus/<nonce>/<tag>" (the command executor
 * tags its actions "cmd/<command id>", so a reply finds its command and a
 * count per id is possible on the Asterisk side). */
int ami_client_send_tagged(ami_client *a, const char *action, const char *const *headers,
                           const char *tag, char *id_out, size_t id_len);
/* "callbus/<nonce>/": what every ActionID of this run starts with. */
const char *ami_client_id_prefix(const ami_client *a);
const ami_parser_stats *ami_client_parser_stats(const ami_client *a);
/* Closes the link with Logoff (at shutdown). */
void ami_client_logoff(ami_client *a);

#endif
