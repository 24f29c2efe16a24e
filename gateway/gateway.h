/* gateway.h -- callbus-gateway internals shared by server.c, session.c,
 * route.c, kafka_in.c and commands_out.c.
 *
 * One thread, one libev loop (epoll) that we own and lend to libwebsockets
 * as a "foreign" loop. Nothing polls: librdkafka writes a byte to a pipe when
 * a Kafka queue becomes non-empty and the loop wakes on it, feeds the view,
 * which hands each projected event to the sessions of the operator it
 * concerns (route.c: a hash by operator id) or to the supervisors. A 1 s
 * timer checks the sessions' deadlines (auth, idle, token expiry).
 * All global symbols start with gw_ (unit tests link the agent's objects too). */
#ifndef CALLBUS_GATEWAY_H
#define CALLBUS_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>

#include <uthash.h>

#include "auth.h"
#include "config.h"
#include "view.h"

#define GW_PROTOCOL "callbus.v1"
/* WebSocket close codes (docs/gateway-protocol.md); the token's are in
 * auth.h, 1009 (message too large) is lws's LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE. */
#define GW_CLOSE_IDLE 1001         /* "going away": nothing from the client for idle_timeout */
#define GW_CLOSE_PROTOCOL 4000     /* first message not auth, or no auth in time */
#define GW_CLOSE_OVER_LIMIT 4008   /* too many connections or messages, or a reader too slow */
#define GW_CLOSE_ORIGIN 4009       /* Origin not allowed */
#define GW_AUTH_TIMEOUT_S 5.0
#define GW_WRITES_PER_CALLBACK 32

typedef struct gw_metrics {
    uint64_t connections_total, auth_ok, auth_failed, auth_timeouts;
    uint64_t closed_frame_too_big, closed_rate_limited, rate_limited_msgs;
    uint64_t refused_max_connections, refused_unauthed, refused_origin, refused_upgrades;
    uint64_t closed_idle, closed_slow;
    uint64_t closed_token_expired, bad_json, unknown_type, protocol_errors;
    uint64_t commands_sent, commands_forbidden, commands_invalid, commands_failed;
    uint64_t msgs_in, msgs_out, kafka_msgs, kafka_errors, view_deliveries;
} gw_metrics;

/* A message to send, shared by every session it goes to. buf has LWS_PRE
 * bytes of headroom before the len bytes of JSON. */
typedef struct gw_out {
    int refs;
    size_t len;
    unsigned char buf[];
} gw_out;

typedef struct gw_qnode {
    gw_out *m;
    int sync;                 /* snapshot or resume: not live output */
    struct gw_qnode *next;
} gw_qnode;

typedef struct gw gw;

/* The sessions of one client address that have not authenticated yet
 * (session.c: gateway.max_unauthed_per_address). */
typedef struct gw_addr {
    UT_hash_handle hh;
    int count;
    char addr[64];
} gw_addr;

/* Per WebSocket (lws per-session data, zeroed by lws). */
typedef struct gw_session {
    struct lws *wsi;
    gw *g;
    struct gw_session *prev, *next;
    int linked;
    int authed;
    auth_identity id;
    double connected_at, last_rx; /* monotonic, as every deadline here (clock.h) */
    char peer[64];
    gw_addr *unauthed;        /* counted as not authenticated yet, under its address */
    char *rx;                 /* a message being reassembled from fragments */
    size_t rx_len, rx_cap;
    int rx_too_big;
    double tokens, refill_at; /* rate limit: token bucket (refill_at monotonic) */
    int strikes;
    gw_qnode *qhead, *qtail;
    size_t qbytes;            /* live output queued: at most max_queue_kb */
    size_t qsync;             /* snapshot or resume queued (exempt) */
    int refuse;               /* close code decided before ESTABLISHED */
    int close_code;           /* close once the queue is drained */
    char close_reason[96];
    int socketless;           /* no wsi (fuzzing): output is only queued */
    /* route.c: the other sessions of the same operator (or supervisors) */
    struct gw_session *rprev, *rnext;
    struct gw_route *route;   /* NULL for supervisors */
    int routed;
} gw_session;

/* The authenticated sessions of one operator (route.c). */
typedef struct gw_route {
    UT_hash_handle hh;
    gw_session *head;
    char id[64];
} gw_route;

typedef struct gw_kafka_in gw_kafka_in;
typedef struct gw_commands_out gw_commands_out;

/* The one way the Kafka side (kafka_in.c, commands_out.c) reaches the
 * clients: session.c implements it (gw_clients_of) and server.c hands it to
 * them, so they know no session, route or struct gw and never call back
 * into session.c. */
typedef struct gw_clients {
    void *ctx;
    /* A projected view message for a stream: the sessions of operator_id,
     * or the supervisors' when it is NULL (the view's delivery function). */
    view_delivery_fn stream;
    /* A message for the sessions of that one identity only. */
    void (*to_identity)(void *ctx, const char *operator_id, json_t *msg);
    /* The site's Kafka is reachable (1) or not (0); said on a change. */
    void (*kafka_state)(void *ctx, int up);
} gw_clients;

struct gw {
    const callbus_config *cfg;
    auth_config auth;
    unsigned char *key;
    size_t key_len;
    view *view;
    char epoch[32];
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct ev_loop *loop;
    ev_io kafka_wake;         /* librdkafka: a queue became non-empty */
    ev_idle kafka_more;       /* a backlog left for the next loop turn */
    ev_timer sweep;           /* deadlines, at 1 s resolution */
    ev_signal sigint, sigterm;
    int wake[2];              /* the pipe librdkafka writes to */
    gw_session *sessions;
    gw_route *routes;         /* authenticated operators' sessions by id */
    gw_session *supervisors;
    size_t nsessions, nauthed;
    size_t nunauthed;         /* sessions counted in unauthed_by_addr */
    gw_addr *unauthed_by_addr;
    gw_kafka_in *kin;
    gw_commands_out *cout;
    int kafka_down;           /* the consumer has no broker: clients are told */
    double kafka_down_since;  /* wall clock: told to clients */
    volatile int stopping;
    int tls;
    int port;
    char www_dir[4096];       /* gateway.www_dir, or the page installed with the gateway */
    gw_metrics m;
};

/* server.c */
gw *gw_new(const callbus_config *cfg, char *err, size_t errlen);
int gw_run(gw *g);          /* until SIGINT/SIGTERM; 0 on a clean stop */
void gw_stop(gw *g);        /* async-signal-safe: before gw_run's loop starts, a flag */
void gw_free(gw *g);

/* session.c */
int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);
/* Closes the sessions past a deadline: auth and idle timeouts on the
 * monotonic clock mono, token expiry on the wall clock now (clock.h). */
void gw_sessions_sweep(gw *g, double mono, double now);
/* view_delivery_fn: operator_id NULL = supervisors */
void gw_deliver(void *ctx, const char *operator_id, json_t *msg);
/* The gw_clients of g: stream is gw_deliver; a Kafka state change is told
 * to every authenticated session (a "status" message). */
gw_clients gw_clients_of(gw *g);
void gw_send_json(gw_session *s, json_t *msg);  /* steals nothing */
void gw_send_error(gw_session *s, const char *code, const char *message, json_t *id);
void gw_close(gw_session *s, int code, const char *reason);
/* Handles one complete text message of an authenticated or new session. */
void gw_handle_message(gw_session *s, const char *buf, size_t len);
/* A session is gone: unlink it everywhere and free what it holds. */
void gw_session_gone(gw_session *s);
/* Counts a new session as not authenticated yet under its address (s->peer);
 * returns NULL, or why it is refused (over max_unauthed or
 * max_unauthed_per_address, or max_connections operators are in), counted
 * in the metrics. */
const char *gw_admit(gw *g, gw_session *s);
void gw_unauthed_free(gw *g);

/* route.c */
void gw_route_add(gw *g, gw_session *s);   /* once authenticated */
void gw_route_del(gw *g, gw_session *s);   /* safe if not routed */
/* The first session of an operator's stream, or of the supervisors' when
 * operator_id is NULL; follow ->rnext. */
gw_session *gw_route_first(gw *g, const char *operator_id);
void gw_routes_free(gw *g);

/* kafka_in.c: records go through v to out; stopping (set by gw_stop) ends
 * the retries of the start. */
gw_kafka_in *gw_kafka_in_new(const callbus_config *cfg, view *v, gw_metrics *m, gw_clients out,
                             const volatile int *stopping, char *err, size_t errlen);
/* Reads calls/operators/results up to the high watermarks seen now. */
int gw_kafka_in_catch_up(gw_kafka_in *k, double timeout_s, char *err, size_t errlen);
/* From now on librdkafka writes a byte to fd when messages wait. */
void gw_kafka_in_wake_fd(gw_kafka_in *k, int fd);
/* Takes up to max_msgs messages; returns 1 if more are waiting. */
int gw_kafka_in_poll(gw_kafka_in *k, int max_msgs);
/* Looks again for topics that did not exist yet (every few seconds). */
void gw_kafka_in_lookup(gw_kafka_in *k, double mono);
void gw_kafka_in_free(gw_kafka_in *k);

/* server.c: whether a WebSocket upgrade request (its path, Upgrade header
 * and Sec-WebSocket-Protocol list; NULL when absent) is served: 0, else the
 * HTTP status (404 off /ws, 400) and *why. Pure: fuzzed without lws. */
int gw_upgrade_decision(const char *uri, const char *upgrade, const char *protocols, const char **why);

/* commands_out.c: takes g's config, view (to check an operator's own calls),
 * metrics and gw_clients_of(g) (for delivery failures known later). */
gw_commands_out *gw_commands_out_new(gw *g, char *err, size_t errlen);
/* What became of a "command" message: the caller answers the session with
 * command_ack or error from it. */
typedef struct gw_command_outcome {
    const char *error;        /* NULL: produced; else the error code */
    char message[256];        /* the error's text */
    int echo_id;              /* the client's id is fit to be echoed */
    char command_id[192];     /* produced: the command's id */
    char command[16];         /* produced: its name */
} gw_command_outcome;
/* The "command" message of an authenticated identity (peer: its address,
 * for the log): checked and produced. */
gw_command_outcome gw_command(gw_commands_out *c, const auth_identity *who, const char *peer, json_t *msg);
void gw_commands_out_poll(gw_commands_out *c);
/* Drops the commands Kafka has not taken yet and serves their reports now:
 * each sender still connected is told not_delivered. */
void gw_commands_out_purge(gw_commands_out *c);
/* Delivery reports wake the loop through fd. */
void gw_commands_out_wake_fd(gw_commands_out *c, int fd);
void gw_commands_out_free(gw_commands_out *c);

#endif
