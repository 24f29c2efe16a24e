/* chanev.c -- the channel events every simulated call is made of.
 *
 * One helper per AMI event that carries a channel snapshot, so the call
 * steps in callcenter.c and c2c.c read like the captures they copy, one line
 * per event. Events of one step get Timestamps a few microseconds apart, as
 * Asterisk's do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amisim.h"
#include "causes.h"
#include "sim.h"

static double ev_ts;            /* Timestamp of the last event written */
static long uniqueid_seq, local_seq;

double stamp(void) {
    ev_ts += 0.000017;
    return ev_ts;
}

void step_at(double t) {
    if (t > ev_ts) ev_ts = t;
}

void set_ev_ts(double t) {
    ev_ts = t;
}

double get_ev_ts(void) {
    return ev_ts;
}

long next_local_seq(void) {
    return local_seq++;
}

void chan_init(chan *c, const char *base, long seq, int half, const char *context,
               const char *exten, const char *linkedid, double now) {
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "Local/%s-%08lx;%d", base, seq, half);
    c->state = half == 1 ? 0 : 4;
    snprintf(c->context, sizeof(c->context), "%s", context);
    snprintf(c->exten, sizeof(c->exten), "%s", exten);
    c->priority = 1;
    /* Like Asterisk: creation second, then one sequence for all channels. */
    snprintf(c->uniqueid, sizeof(c->uniqueid), "%ld.%ld", (long)now, uniqueid_seq++);
    snprintf(c->linkedid, sizeof(c->linkedid), "%s", linkedid ? linkedid : c->uniqueid);
    c->created = now;
}

void set_vars(chan *c, const char *campaign, const char *ticket) {
    snprintf(c->campaign, sizeof(c->campaign), "%s", campaign);
    snprintf(c->ticket, sizeof(c->ticket), "%s", ticket);
}

static void put_pairs(va_list ap) {
    const char *k;
    while ((k = va_arg(ap, const char *))) ev_kv(k, va_arg(ap, const char *));
}

/* Event with a Channel snapshot, then NULL-terminated key, value pairs. */
void chan_event(const char *event, const char *priv, const chan *c, ...) {
    ev_begin(event, priv, stamp());
    ev_chan("", c);
    va_list ap;
    va_start(ap, c);
    put_pairs(ap);
    va_end(ap);
    ev_send();
}

/* Event with a Channel (may be NULL) and a Dest snapshot, then pairs. */
void dest_event(const char *event, const char *priv, const chan *c, const chan *d, ...) {
    ev_begin(event, priv, stamp());
    if (c) ev_chan("", c);
    ev_chan("Dest", d);
    va_list ap;
    va_start(ap, d);
    put_pairs(ap);
    va_end(ap);
    ev_send();
}

void newchannel(const chan *c) {
    chan_event("Newchannel", "call,all", c, NULL);
}

void newexten(chan *c, int priority, const char *app, const char *data) {
    c->priority = priority;
    snprintf(c->app, sizeof(c->app), "%s", app);
    snprintf(c->appdata, sizeof(c->appdata), "%s", data);
    chan_event("Newexten", "dialplan,all", c, "Extension", c->exten, "Application", app, "AppData",
               data, NULL);
}

/* The [phones] priorities after the NoOp move one down when the dialplan
 * data step below is there. */
int phone_pri(int priority) {
    return priority >= 2 && cfg.dialplan_data ? priority + 1 : priority;
}

/* With --dialplan-data, the lab's [phones] dialplan runs
 * UserEvent(CrmNote,Note: ${CRM_NOTE}) right after its NoOp, CRM_NOTE being
 * data from outside Asterisk (a CRM lookup, a database). Asterisk writes it
 * unescaped twice: in the Newexten's AppData (main/manager_channels.c
 * channel_newexten(): "AppData: %s\r\n" with the substituted data) and in
 * the UserEvent's body (apps/app_userevent.c keeps each "Key: value"
 * argument's value as it is, only trimmed at its ends; main/manager.c
 * manager_json_value_str_append() writes it with "%s: %s\r\n", and
 * __manager_event_sessions_va() expands the event with no escaping). A CR/LF
 * in it ends the event there; what follows is read as messages of its own. */
void phone_dialplan_data(chan *c) {
    if (!cfg.dialplan_data) return;
    size_t n = strlen(cfg.dialplan_data) + 32;
    char *data = malloc(n);
    if (!data) abort();
    snprintf(data, n, "CrmNote,Note: %s", cfg.dialplan_data);
    newexten(c, 2, "UserEvent", data);
    chan_event("UserEvent", "user,all", c, "UserEvent", "CrmNote", "Note", cfg.dialplan_data, NULL);
    free(data);
}

void varset(const chan *c, const char *var, const char *value) {
    chan_event("VarSet", "dialplan,all", c, "Variable", var, "Value", value, NULL);
}

void varsetf(const chan *c, const char *var, const char *fmt, ...) {
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    varset(c, var, value);
}

void newstate(chan *c, int state) {
    c->state = state;
    chan_event("Newstate", "call,all", c, NULL);
}

void set_callerid(chan *c, const char *num, const char *name) {
    snprintf(c->cid_num, sizeof(c->cid_num), "%s", num);
    snprintf(c->cid_name, sizeof(c->cid_name), "%s", name);
    chan_event("NewCallerid", "call,all", c, "CID-CallingPres",
               "0 (Presentation Allowed, Not Screened)", NULL);
}

void set_connected(chan *c, const char *num, const char *name) {
    snprintf(c->conn_num, sizeof(c->conn_num), "%s", num);
    snprintf(c->conn_name, sizeof(c->conn_name), "%s", name);
    chan_event("NewConnectedLine", "call,all", c, NULL);
}

void local_bridge(const chan *one, const chan *two, const char *context, const char *exten) {
    ev_begin("LocalBridge", "call,all", stamp());
    ev_chan("LocalOne", one);
    ev_chan("LocalTwo", two);
    ev_kv("Context", context);
    ev_kv("Exten", exten);
    ev_kv("LocalOptimization", "Yes");
    ev_send();
}

void device_state(const char *device, const char *state) {
    ev_begin("DeviceStateChange", "call,all", stamp());
    ev_kv("Device", device);
    ev_kv("State", state);
    ev_send();
}

void hangup_request(const char *event, const chan *c, int cause) {
    char num[16];
    snprintf(num, sizeof(num), "%d", cause);
    chan_event(event, "call,all", c, "Cause", num, NULL);
}

void hangup_cause(const chan *c, int cause) {
    char num[16];
    snprintf(num, sizeof(num), "%d", cause);
    chan_event("Hangup", "call,all", c, "Cause", num, "Cause-txt", cause_text(cause), NULL);
}

void bridge_event(const char *event, const char *bridge, int members, const chan *c) {
    ev_begin(event, "call,all", stamp());
    ev_kv("BridgeUniqueid", bridge);
    ev_kv("BridgeType", "basic");
    ev_kv("BridgeTechnology", "simple_bridge");
    ev_kv("BridgeCreator", "<unknown>");
    ev_kv("BridgeName", "<unknown>");
    ev_kvf("BridgeNumChannels", "%d", members);
    ev_kv("BridgeVideoSourceMode", "none");
    if (c) ev_chan("", c);
    ev_send();
}

void bridge_pair(const char *bridge, chan *first, chan *second) {
    snprintf(first->bridge, sizeof(first->bridge), "%s", bridge);
    bridge_event("BridgeEnter", bridge, 1, first);
    snprintf(second->bridge, sizeof(second->bridge), "%s", bridge);
    bridge_event("BridgeEnter", bridge, 2, second);
    varset(first, "BRIDGEPEER", second->name);
    varset(second, "BRIDGEPEER", first->name);
}
