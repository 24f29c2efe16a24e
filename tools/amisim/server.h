/* server.h -- the listening socket, the clients and the one event loop.
 *
 * Every client is a non-blocking socket with its own output queue. Nothing
 * ever blocks: producers (replay, call centre) add to a client's queue only
 * while it is below CLIENT_HIGH_WATER, which is how a slow reader looks to
 * Asterisk (its events back up), and the queue is written whenever the
 * socket takes more. */
#ifndef AMISIM_SERVER_H
#define AMISIM_SERVER_H

#include <stddef.h>

#include "ami.h"

/* Producers stop adding events above this many queued bytes per client. */
#define CLIENT_HIGH_WATER (1u << 20)
/* Above this, a client's actions are not read until it reads its answers. */
#define CLIENT_READ_STOP (16u << 20)

#define AMI_BANNER "Asterisk Call Manager/11.0.0\r\n"

typedef struct client client;
struct client {
    int fd;
    unsigned id;
    char peer[64];
    ami_parser *actions;    /* reads the client's actions (actions.c); fed what it sends */

    char *out;
    size_t out_off, out_len, out_cap;

    int authenticated;
    unsigned event_mask;    /* categories this session receives (events.h) */
    char user[64];

    int closing;            /* no more actions; close once the queue is sent */
    int write_shut;         /* queue sent, FIN sent, waiting for the peer's */
    int dead;               /* closed; freed at the end of the loop pass */
    int exit_when_closed;   /* --exit-after: amisim ends with this client */
    double linger_until;
    double stalled_since;   /* when the queue last stopped draining; 0 = draining */
    char *deferred;         /* reply held back (failed Login waits like Asterisk) */
    double deferred_at;
    unsigned watched;       /* epoll interest currently registered */
    unsigned long events;   /* events queued to this session (stats.c: sessions) */
    unsigned long long bytes_written;

    void *replay;           /* replay.c's per-client stream */
    void *tls;              /* tls.c's session, when amisim serves TLS */
    int tls_read_wants_write;  /* TLS must write before it can read on */
    int tls_write_wants_read;  /* ... or read before it can write on */
    client *next;
};

void client_append(client *c, const void *p, size_t n);
void client_append_str(client *c, const char *s);
size_t client_pending(const client *c);
/* Stop reading; close once everything queued has been written. */
void client_finish(client *c);
/* Write what is queued, then reset the connection (--drop-after-login). */
void client_drop(client *c, const char *why);
/* Hold reply back for delay_ms, then send it and close (failed Login). */
void client_fail_later(client *c, const char *reply, int delay_ms);

client *server_clients(void);
/* Queues an event for every logged-in client whose event mask has priv. */
void server_broadcast(const char *p, size_t n, unsigned priv);
/* True when no event-receiving client is above CLIENT_HIGH_WATER. */
int server_receivers_have_room(void);
/* Number of logged-in clients with events on. */
int server_receivers(void);
void server_request_exit(void);

/* ---- registration, at start-up (the loop depends on nobody) ---- */

/* A producer (the call centre, the replayer): run gets a turn every loop
 * pass to queue what is due; next_due says when it next has something
 * (wall-clock time, -1 when nothing waits on a timer), so the loop sleeps
 * until the earliest of them. Turns are taken in registration order. */
void server_add_producer(void (*run)(double now), double (*next_due)(double now));

/* What a part of amisim wants to hear about sessions; any member may be
 * NULL. The hooks must outlive the loop. */
typedef struct client_hooks {
    void (*opened)(client *c);     /* connected; the banner, if any, is queued */
    void (*events_on)(client *c);  /* events were switched on (Login, Events) */
    void (*freed)(client *c);      /* closed, about to be freed */
} client_hooks;
void server_add_client_hooks(const client_hooks *h);
/* Tells every hook that c now receives events. */
void server_events_on(client *c);
/* --shutdown-after: announce(now) writes the goodbye before sessions close. */
void server_on_shutdown(void (*announce)(double now));
int server_run(void);

#endif
