/* lists.c -- the call centre's live state as list-action items:
 * CoreShowChannels, QueueStatus and QueueSummary, with the keys and order of
 * captures 04 and 06, so a client that resyncs after reconnecting sees
 * exactly what is up. */
#include "lists.h"

#include <stdio.h>
#include <string.h>

#include "actions.h"
#include "sim.h"
#include "simclock.h"

static void put_duration(sbuf *b, double secs) {
    long s = secs > 0 ? (long)secs : 0;
    put_kvf(b, "Duration", "%02ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

static void put_core_show_channel(sbuf *b, const char *actionid, const chan *c, double now) {
    put_kv(b, "Event", "CoreShowChannel");
    if (*actionid) put_kv(b, "ActionID", actionid);
    put_chan(b, "", c);
    put_kv(b, "Application", c->app);
    put_kv(b, "ApplicationData", c->appdata);
    put_duration(b, now - c->created);
    put_kv(b, "BridgeId", c->bridge);
    sbuf_append(b, "\r\n", 2);
}

static int list_channels(sbuf *b, const ami_msg *a) {
    const char *actionid = action_arg(a, "ActionID");
    int n = 0;
    double now = sim_now();
    for (call *k = live; k; k = k->next) {
        chan *cs[8];
        int m = call_chans(k, cs);
        for (int i = 0; i < m; i++) put_core_show_channel(b, actionid, cs[i], now);
        n += m;
    }
    return n;
}

static void put_actionid(sbuf *b, const char *actionid) {
    if (*actionid) put_kv(b, "ActionID", actionid);
    sbuf_append(b, "\r\n", 2);
}

static void put_queue_params(sbuf *b, const queue *q, const char *actionid) {
    put_kv(b, "Event", "QueueParams");
    put_kv(b, "Queue", q->name);
    put_kv(b, "Max", "0");
    put_kv(b, "Strategy", "rrmemory");
    put_kvf(b, "Calls", "%d", q->waiting);
    put_kvf(b, "Holdtime", "%ld", q->holdtime);
    put_kvf(b, "TalkTime", "%ld", q->talktime);
    put_kvf(b, "Completed", "%ld", q->completed);
    put_kvf(b, "Abandoned", "%ld", q->abandoned);
    put_kv(b, "ServiceLevel", "0");
    put_kv(b, "ServicelevelPerf", "0.0");
    put_kv(b, "ServicelevelPerf2", "0.0");
    put_kv(b, "Weight", "0");
    put_actionid(b, actionid);
}

static void put_queue_member(sbuf *b, const queue *q, const member *m, const char *actionid) {
    const operator_ *op = m->op;
    put_kv(b, "Event", "QueueMember");
    put_kv(b, "Queue", q->name);
    put_kv(b, "Name", m->name);
    put_kv(b, "Location", m->iface);
    put_kv(b, "StateInterface", m->state_iface);
    put_kv(b, "Membership", m->dynamic ? "dynamic" : "static");
    put_kvf(b, "Penalty", "%d", m->penalty);
    put_kvf(b, "CallsTaken", "%ld", op ? op->calls_taken : 0);
    put_kvf(b, "LastCall", "%ld", op ? op->last_call : 0);
    put_kvf(b, "LastPause", "%ld", m->last_pause);
    put_kvf(b, "LoginTime", "%ld", m->login_time);
    put_kvf(b, "InCall", "%d", op ? op->in_call : 0);
    put_kvf(b, "Status", "%d", op ? member_status(op) : 1);
    put_kvf(b, "Paused", "%d", m->paused);
    put_kv(b, "PausedReason", m->reason);
    put_kv(b, "Wrapuptime", "0");
    put_actionid(b, actionid);
}

static void put_queue_entry(sbuf *b, const queue *q, const call *k, int pos, const char *actionid) {
    const chan *c = &k->c2;
    put_kv(b, "Event", "QueueEntry");
    put_kv(b, "Queue", q->name);
    put_kvf(b, "Position", "%d", pos);
    put_kv(b, "Channel", c->name);
    put_kv(b, "Uniqueid", c->uniqueid);
    put_kv(b, "CallerIDNum", c->cid_num);
    put_kv(b, "CallerIDName", c->cid_name);
    put_kv(b, "ConnectedLineNum", c->conn_num);
    put_kv(b, "ConnectedLineName", c->conn_name);
    put_kvf(b, "Wait", "%ld", (long)(sim_now() - k->t_join));
    put_kv(b, "Priority", "0");
    put_actionid(b, actionid);
}

static int member_matches(const member *m, const char *member) {
    return !*member || strcmp(member, m->iface) == 0 || strcmp(member, m->name) == 0;
}

static int list_queue_status(sbuf *b, const ami_msg *a) {
    const char *actionid = action_arg(a, "ActionID"), *queue_name = action_arg(a, "Queue");
    const char *member = action_arg(a, "Member");
    int n = 0;
    for (int i = 0; i < nqueues; i++) {
        const queue *q = &queues[i];
        if (*queue_name && strcmp(queue_name, q->name) != 0) continue;
        put_queue_params(b, q, actionid);
        n++;
        for (int j = 0; j < q->nm; j++) {
            if (!member_matches(&q->m[j], member)) continue;
            put_queue_member(b, q, &q->m[j], actionid);
            n++;
        }
        int pos = 1;
        for (const call *k = q->head; k; k = k->qnext, pos++) {
            put_queue_entry(b, q, k, pos, actionid);
            n++;
        }
    }
    return n;
}

static int list_queue_summary(sbuf *b, const ami_msg *a) {
    const char *actionid = action_arg(a, "ActionID"), *queue_name = action_arg(a, "Queue");
    int n = 0;
    for (int i = 0; i < nqueues; i++) {
        const queue *q = &queues[i];
        if (*queue_name && strcmp(queue_name, q->name) != 0) continue;
        int available = 0;
        for (int j = 0; j < q->nm; j++) {
            const operator_ *op = q->m[j].op;
            available += !q->m[j].paused && (!op || (!op->call && !op->other_calls));
        }
        long longest = q->head ? (long)(sim_now() - q->head->t_join) : 0;
        put_kv(b, "Event", "QueueSummary");
        put_kv(b, "Queue", q->name);
        put_kvf(b, "LoggedIn", "%d", q->nm);
        put_kvf(b, "Available", "%d", available);
        put_kvf(b, "Callers", "%d", q->waiting);
        put_kvf(b, "HoldTime", "%ld", q->holdtime);
        put_kvf(b, "TalkTime", "%ld", q->talktime);
        put_kvf(b, "LongestHoldTime", "%ld", longest);
        put_actionid(b, actionid);
        n++;
    }
    return n;
}

/* A list action: start, the items from the current state, Complete. */
static void reply_list(client *c, const ami_msg *a, const char *started, const char *complete,
                       int (*items)(sbuf *b, const ami_msg *a)) {
    sbuf b;
    sbuf_init(&b);
    reply_list_start(c, a, started);
    int n = items(&b, a);
    client_append(c, b.data, b.len);
    reply_list_complete(c, a, complete, n);
    sbuf_free(&b);
}

static void act_core_show_channels(client *c, const ami_msg *a) {
    reply_list(c, a, "Channels will follow", "CoreShowChannelsComplete", list_channels);
}

static void act_queue_status(client *c, const ami_msg *a) {
    reply_list(c, a, "Queue status will follow", "QueueStatusComplete", list_queue_status);
}

static void act_queue_summary(client *c, const ami_msg *a) {
    reply_list(c, a, "Queue summary will follow", "QueueSummaryComplete", list_queue_summary);
}

void lists_register(void) {
    actions_register("CoreShowChannels", act_core_show_channels, 1);
    actions_register("QueueStatus", act_queue_status, 1);
    actions_register("QueueSummary", act_queue_summary, 1);
}
