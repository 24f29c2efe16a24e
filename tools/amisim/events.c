/* events.c -- AMI event and snapshot rendering (see events.h). */
#include "events.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server.h"
#include "stats.h"

static const struct {
    const char *name;
    unsigned bit;
} categories[] = {
    {"system", EV_SYSTEM}, {"call", EV_CALL}, {"log", EV_LOG}, {"verbose", EV_VERBOSE},
    {"command", EV_COMMAND}, {"agent", EV_AGENT}, {"user", EV_USER}, {"config", EV_CONFIG},
    {"dtmf", EV_DTMF}, {"reporting", EV_REPORTING}, {"cdr", EV_CDR},
    {"dialplan", EV_DIALPLAN}, {"originate", EV_ORIGINATE}, {"agi", EV_AGI}, {"cc", EV_CC},
    {"aoc", EV_AOC}, {"test", EV_TEST}, {"security", EV_SECURITY}, {"message", EV_MESSAGE},
};

static unsigned category_bit(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof(categories) / sizeof(categories[0]); i++)
        if (strlen(categories[i].name) == len && strncasecmp(categories[i].name, name, len) == 0)
            return categories[i].bit;
    if (len == 3 && strncasecmp(name, "all", 3) == 0) return EV_ALL;
    return 0;
}

/* "call,all": the "all" in an event's Privilege only says "and everyone
 * with read=all", so it must not turn every category on. */
unsigned privilege_mask(const char *priv, size_t len) {
    unsigned mask = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && priv[j] != ',') j++;
        unsigned bit = category_bit(priv + i, j - i);
        if (bit != EV_ALL) mask |= bit;
        i = j + 1;
    }
    return mask ? mask : EV_ALL;
}

unsigned eventmask_parse(const char *s) {
    if (!strcasecmp(s, "on") || !strcasecmp(s, "yes") || !strcasecmp(s, "true")) return EV_ALL;
    if (!strcasecmp(s, "off") || !strcasecmp(s, "no") || !strcasecmp(s, "false")) return 0;
    unsigned mask = 0;
    size_t len = strlen(s), i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != ',') j++;
        while (i < j && s[i] == ' ') i++;
        mask |= category_bit(s + i, j - i);
        i = j + 1;
    }
    return mask;
}

const char *chan_state_desc(int state) {
    static const char *names[] = {"Down", "Rsrvd", "OffHook", "Dialing", "Ring",
                                  "Ringing", "Up", "Busy", "Dialing Offhook", "Pre-ring"};
    if (state < 0 || state > 9) return "Unknown";
    return names[state];
}

void format_timestamp(char *out, size_t n, double t) {
    long sec = (long)t;
    long usec = (long)((t - (double)sec) * 1e6 + 0.5);
    if (usec >= 1000000) {
        sec++;
        usec -= 1000000;
    }
    snprintf(out, n, "%ld.%06ld", sec, usec);
}

/* "<prefix><key>: <value>\r\n" in one reservation: a thousand seats at
 * speed make millions of these lines a second, so no printf and no copy
 * more than once. */
static void put_line(sbuf *b, const char *prefix, const char *key, const char *v1, const char *v2) {
    size_t pl = strlen(prefix), kl = strlen(key), l1 = strlen(v1), l2 = strlen(v2);
    sbuf_reserve(b, pl + kl + l1 + l2 + 4);
    char *p = b->data + b->len;
    memcpy(p, prefix, pl);
    memcpy(p += pl, key, kl);
    memcpy(p += kl, ": ", 2);
    memcpy(p += 2, v1, l1);
    memcpy(p += l1, v2, l2);
    memcpy(p += l2, "\r\n", 2);
    b->len = (size_t)(p + 2 - b->data);
    b->data[b->len] = '\0';
}

void put_kv(sbuf *b, const char *key, const char *value) {
    put_line(b, "", key, value, "");
}

void put_kvf(sbuf *b, const char *key, const char *fmt, ...) {
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    put_kv(b, key, value);
}

/* One snapshot key with its prefix: "Dest" + "Channel" -> "DestChannel". */
static void put_pkv(sbuf *b, const char *prefix, const char *key, const char *value) {
    put_line(b, prefix, key, value, "");
}

void put_chan(sbuf *b, const char *prefix, const chan *c) {
    char num[16];
    put_pkv(b, prefix, "Channel", c->name);
    snprintf(num, sizeof(num), "%d", c->state);
    put_pkv(b, prefix, "ChannelState", num);
    put_pkv(b, prefix, "ChannelStateDesc", chan_state_desc(c->state));
    put_pkv(b, prefix, "CallerIDNum", c->cid_num[0] ? c->cid_num : "<unknown>");
    put_pkv(b, prefix, "CallerIDName", c->cid_name[0] ? c->cid_name : "<unknown>");
    put_pkv(b, prefix, "ConnectedLineNum", c->conn_num[0] ? c->conn_num : "<unknown>");
    put_pkv(b, prefix, "ConnectedLineName", c->conn_name[0] ? c->conn_name : "<unknown>");
    put_pkv(b, prefix, "Language", "en");
    put_pkv(b, prefix, "AccountCode", "");
    put_pkv(b, prefix, "Context", c->context);
    put_pkv(b, prefix, "Exten", c->exten);
    snprintf(num, sizeof(num), "%d", c->priority);
    put_pkv(b, prefix, "Priority", num);
    put_pkv(b, prefix, "Uniqueid", c->uniqueid);
    put_pkv(b, prefix, "Linkedid", c->linkedid);
    put_line(b, prefix, "ChanVariable", "CC_CAMPAIGN=", c->campaign);
    put_line(b, prefix, "ChanVariable", "CC_TICKET=", c->ticket);
}

/* The event under construction. One at a time: the loop is single-threaded. */
static sbuf cur;
static unsigned cur_priv;
static double cur_ts;

/* Events name their Privilege with a few string constants: parse each once. */
static unsigned privilege_of(const char *priv) {
    static const char *last;
    static unsigned mask;
    if (priv != last) {
        mask = privilege_mask(priv, strlen(priv));
        last = priv;
    }
    return mask;
}

void ev_begin(const char *event, const char *priv, double ts) {
    sbuf_reset(&cur);
    cur_priv = privilege_of(priv);
    cur_ts = ts;
    put_kv(&cur, "Event", event);
    put_kv(&cur, "Privilege", priv);
    if (ts >= 0) {
        char stamp[32];
        format_timestamp(stamp, sizeof(stamp), ts);
        put_kv(&cur, "Timestamp", stamp);
    }
}

void ev_kv(const char *key, const char *value) {
    put_kv(&cur, key, value);
}

void ev_kvf(const char *key, const char *fmt, ...) {
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    put_kv(&cur, key, value);
}

void ev_chan(const char *prefix, const chan *c) {
    put_chan(&cur, prefix, c);
}

void ev_send(void) {
    sbuf_append(&cur, "\r\n", 2);
    if (cur_ts >= 0) stats_event_at(cur_ts);
    server_broadcast(cur.data, cur.len, cur_priv);
    sbuf_reset(&cur);
}

void ev_take(sbuf *b) {
    sbuf_append(&cur, "\r\n", 2);
    sbuf_append(b, cur.data, cur.len);
    sbuf_reset(&cur);
}

void events_free(void) {
    sbuf_free(&cur);
}
