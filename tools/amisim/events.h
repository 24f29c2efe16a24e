/* events.h -- rendering AMI events and channel snapshots.
 *
 * Asterisk writes every channel-related event as the event's own headers
 * around one or two channel snapshots (Channel..., Dest..., LocalOne...), the
 * snapshot always in the same 15-key order with one ChanVariable line per
 * manager.conf channelvars entry. These helpers write exactly that, so event
 * code in callcenter.c only says which snapshot and which extra headers. */
#ifndef AMISIM_EVENTS_H
#define AMISIM_EVENTS_H

#include <stddef.h>

#include "sbuf.h"

/* Event categories (manager.h); a session receives an event when its mask
 * and the event's Privilege share a bit. */
enum {
    EV_SYSTEM = 1 << 0, EV_CALL = 1 << 1, EV_LOG = 1 << 2, EV_VERBOSE = 1 << 3,
    EV_COMMAND = 1 << 4, EV_AGENT = 1 << 5, EV_USER = 1 << 6, EV_CONFIG = 1 << 7,
    EV_DTMF = 1 << 8, EV_REPORTING = 1 << 9, EV_CDR = 1 << 10, EV_DIALPLAN = 1 << 11,
    EV_ORIGINATE = 1 << 12, EV_AGI = 1 << 13, EV_CC = 1 << 14, EV_AOC = 1 << 15,
    EV_TEST = 1 << 16, EV_SECURITY = 1 << 17, EV_MESSAGE = 1 << 19,
    EV_ALL = 0xffffffffu
};

/* Privilege header value ("call,all") -> category bits. */
unsigned privilege_mask(const char *priv, size_t len);
/* Events:/EventMask value -> mask, as Asterisk reads it: on/yes/true = all,
 * off/no/false = none, else a comma list of categories. */
unsigned eventmask_parse(const char *s);

/* A channel as a snapshot sees it. */
typedef struct chan {
    char name[96];
    int state;                 /* 0 Down, 4 Ring, 5 Ringing, 6 Up */
    char cid_num[48], cid_name[64];
    char conn_num[48], conn_name[64];
    char context[48], exten[48];
    int priority;
    char uniqueid[32], linkedid[32];
    char campaign[48], ticket[32];   /* channelvars = CC_CAMPAIGN,CC_TICKET */
    char app[32], appdata[128];      /* for CoreShowChannels */
    char bridge[40];
    double created;
} chan;

const char *chan_state_desc(int state);
/* "1795670259.396093" */
void format_timestamp(char *out, size_t n, double t);

/* Writing into any buffer (list items for one client). */
void put_kv(sbuf *b, const char *key, const char *value);
void put_kvf(sbuf *b, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void put_chan(sbuf *b, const char *prefix, const chan *c);

/* The event being built for broadcast: ev_begin, headers, ev_send. ts < 0
 * leaves Timestamp out (FullyBooted after Login has none). */
void ev_begin(const char *event, const char *priv, double ts);
void ev_kv(const char *key, const char *value);
void ev_kvf(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ev_chan(const char *prefix, const chan *c);
void ev_send(void);
/* Renders the current event into b instead of broadcasting (one client). */
void ev_take(sbuf *b);
void events_free(void);

#endif
