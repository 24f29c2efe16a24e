/* commands.c -- action handlers that read or drive the call centre.
 *
 * Replies are the ones Asterisk 22 gives, word for word (captures 03a, 04,
 * 05a, 06), errors included, because a client decides what happened from
 * their text. The calls themselves are run by c2c.c and callcenter.c; this
 * file parses, checks and answers. When a capture is replayed there are no
 * live calls: Originate is only acknowledged, channel actions find nothing. */
#include "commands.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "actions.h"
#include "amisim.h"
#include "callcenter.h"
#include "log.h"
#include "sbuf.h"
#include "sim.h"
#include "simclock.h"
#include "stats.h"

#define ASTERISK_VERSION "22.10.1"

/* ---- channel variables set with Setvar ---- */

typedef struct var_entry {
    char chan[96], name[64], value[256];
    struct var_entry *next;
} var_entry;

static var_entry *vars;

static var_entry *var_find(const char *chan, const char *name) {
    for (var_entry *v = vars; v; v = v->next)
        if (strcmp(v->chan, chan) == 0 && strcasecmp(v->name, name) == 0) return v;
    return NULL;
}

static void var_set(const char *chan, const char *name, const char *value) {
    var_entry *v = var_find(chan, name);
    if (!v) {
        v = calloc(1, sizeof(*v));
        if (!v) abort();
        snprintf(v->chan, sizeof(v->chan), "%s", chan);
        snprintf(v->name, sizeof(v->name), "%s", name);
        v->next = vars;
        vars = v;
    }
    snprintf(v->value, sizeof(v->value), "%s", value);
}

/* NULL when the variable is not set (Status shows "(null)"). */
static const char *var_get(const chan *c, const char *name) {
    if (!c) return strcmp(name, "COMPANY_CID") == 0 ? "18005550100" : NULL;
    if (strcmp(name, "CC_TICKET") == 0) return c->ticket;
    if (strcmp(name, "CC_CAMPAIGN") == 0) return c->campaign;
    var_entry *v = var_find(c->name, name);
    return v ? v->value : NULL;
}

/* ---- small reply helpers ---- */

static void reply_kv(client *c, const ami_msg *a, const char *k1, const char *v1, const char *k2,
                     const char *v2) {
    sbuf b;
    sbuf_init(&b);
    reply_head(&b, a, "Success", NULL, NULL);
    put_kv(&b, k1, v1);
    if (k2) put_kv(&b, k2, v2);
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
}

static int is_true(const char *s) {
    return !strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "y") ||
           !strcasecmp(s, "t") || !strcasecmp(s, "1") || !strcasecmp(s, "on");
}

static int calls_running(void) {
    return callcenter_enabled();
}

/* ---- Originate ---- */

/* "Click2Call" <5552001>, Name <num>, or a bare number. */
static void parse_callerid(const char *s, orig_req *r) {
    const char *lt = strchr(s, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) {
        snprintf(r->cid_num, sizeof(r->cid_num), "%s", s);
        return;
    }
    snprintf(r->cid_num, sizeof(r->cid_num), "%.*s", (int)(gt - lt - 1), lt + 1);
    const char *p = s, *e = lt;
    while (p < e && (*p == ' ' || *p == '"')) p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '"')) e--;
    snprintf(r->cid_name, sizeof(r->cid_name), "%.*s", (int)(e - p), p);
}

/* Every Variable header, and comma lists in one, as Asterisk accepts them. */
static void parse_variables(const ami_msg *a, orig_req *r) {
    for (size_t i = 0; i < a->count && r->nvars < MAX_ORIG_VARS; i++) {
        if (strcasecmp(a->headers[i].key, "Variable") != 0) continue;
        const char *v = action_value(a->headers[i].value), *eq = strchr(v, '=');
        if (!eq) continue;
        snprintf(r->vars[r->nvars][0], 128, "%.*s", (int)(eq - v), v);
        snprintf(r->vars[r->nvars][1], 128, "%s", eq + 1);
        r->nvars++;
    }
}

static void parse_originate(const ami_msg *a, orig_req *r) {
    memset(r, 0, sizeof(*r));
    r->actionid = action_arg(a, "ActionID");
    r->channel = action_arg(a, "Channel");
    r->context = action_arg(a, "Context");
    r->exten = action_arg(a, "Exten");
    r->app = action_arg(a, "Application");
    r->data = action_arg(a, "Data");
    r->channel_id = action_arg(a, "ChannelId");
    r->other_id = action_arg(a, "OtherChannelId");
    const char *t = action_arg(a, "Timeout");
    r->timeout = *t ? atof(t) / 1000.0 : 0;
    parse_callerid(action_arg(a, "CallerID"), r);
    parse_variables(a, r);
}

/* "Local/op101@phones" (or ".../n") -> "op101" in [phones]; 0 if not. */
static int local_target(const char *channel, char *exten, size_t n, char *context, size_t m) {
    if (strncasecmp(channel, "Local/", 6) != 0) return 0;
    const char *at = strchr(channel + 6, '@');
    if (!at) return 0;
    snprintf(exten, n, "%.*s", (int)(at - channel - 6), channel + 6);
    snprintf(context, m, "%s", at + 1);
    char *slash = strchr(context, '/');
    if (slash) *slash = '\0';
    return 1;
}

static void start_inbound(const orig_req *r, queue *q) {
    double now = sim_step_now();
    const char *ticket = "";
    for (int i = 0; i < r->nvars; i++)
        if (strcmp(r->vars[i][0], "CC_TICKET") == 0) ticket = r->vars[i][1];
    call *k = inbound_start(q, now, r->cid_num, r->cid_name, ticket);
    if (strcasecmp(r->app, "Wait") == 0 && atof(r->data) > 0)
        k->patience_end = now + atof(r->data);
}

static void run_originate(const orig_req *r) {
    char exten[64], context[64];
    if (!local_target(r->channel, exten, sizeof(exten), context, sizeof(context))) {
        originate_failed(r);
        return;
    }
    if (strcmp(context, "from-trunk") == 0 && queue_by_did(exten)) {
        start_inbound(r, queue_by_did(exten));
        return;
    }
    operator_ *op = strcmp(context, "phones") == 0 ? operator_by_name(exten) : NULL;
    if (!op) {
        originate_failed(r);
        return;
    }
    if (*r->app) {
        originate_spy(r, op);
        if (strcasecmp(r->app, "ChanSpy") != 0) live->plain_app = 1;
        return;
    }
    originate_c2c(r, op);
}

static void act_originate(client *c, const ami_msg *a) {
    orig_req r;
    parse_originate(a, &r);
    if (!*r.channel) {
        reply_error(c, a, "Channel not specified");
        return;
    }
    if (!*r.app && !*r.exten) {
        reply_error(c, a, "Exten not specified");
        return;
    }
    stats_originate(r.actionid, r.channel, r.exten, (const char (*)[2][128])r.vars, r.nvars);
    reply_ack(c, a, "Originate successfully queued");
    if (calls_running()) run_originate(&r);
}

/* ---- Hangup ---- */

static int hangup_cause_of(const ami_msg *a) {
    const char *cause = action_arg(a, "Cause");
    return *cause ? atoi(cause) : 16;
}

/* Channel: /regex/ hangs up every match and answers with a list (06). */
static void hangup_regex(client *c, const ami_msg *a, const char *spec) {
    regex_t re;
    char pattern[1024];
    snprintf(pattern, sizeof(pattern), "%.*s", (int)strlen(spec) - 2, spec + 1);
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
        reply_error(c, a, "Invalid regex");
        return;
    }
    char names[256][96];
    int n = 0;
    for (call *k = live; k && n < 256; k = k->next) {
        chan *cs[8];
        int m = call_chans(k, cs);
        for (int i = 0; i < m && n < 256; i++)
            if (regexec(&re, cs[i]->name, 0, NULL, 0) == 0) snprintf(names[n++], 96, "%s", cs[i]->name);
    }
    regfree(&re);
    reply_list_start(c, a, "Channels hung up will follow");
    sbuf b;
    sbuf_init(&b);
    for (int i = 0; i < n; i++) {
        put_kv(&b, "Event", "ChannelHungup");
        put_kv(&b, "Channel", names[i]);
        if (*action_arg(a, "ActionID")) put_kv(&b, "ActionID", action_arg(a, "ActionID"));
        sbuf_append(&b, "\r\n", 2);
        chan *ch;
        call *k = find_channel(names[i], &ch);
        if (k) call_teardown(k, ch, hangup_cause_of(a));
    }
    client_append(c, b.data, b.len);
    sbuf_free(&b);
    reply_list_complete(c, a, "ChannelsHungupListComplete", n);
}

static void act_hangup(client *c, const ami_msg *a) {
    const char *name = action_arg(a, "Channel");
    size_t len = strlen(name);
    if (!len) {
        reply_error(c, a, "No channel specified");
        return;
    }
    if (len > 2 && name[0] == '/' && name[len - 1] == '/') {
        hangup_regex(c, a, name);
        return;
    }
    chan *ch;
    call *k = find_channel(name, &ch);
    if (!k) {
        reply_error(c, a, "No such channel");
        return;
    }
    reply_ack(c, a, "Channel Hungup");
    call_teardown(k, ch, hangup_cause_of(a));
}

/* ---- Redirect ---- */

static void act_redirect(client *c, const ami_msg *a) {
    const char *name = action_arg(a, "Channel");
    if (!*name) {
        reply_error(c, a, "Channel not specified");
        return;
    }
    const char *extra = action_arg(a, "ExtraChannel");
    chan *ch, *xch;
    call *k = find_channel(name, &ch);
    if (!k || (*extra && !find_channel(extra, &xch))) {
        reply_error(c, a, "No such channel");
        return;
    }
    const char *err = redirect_call(k, ch, action_arg(a, "Context"), action_arg(a, "Exten"));
    if (err)
        reply_error(c, a, err);
    else
        reply_ack(c, a, "Redirect successful");
}

/* ---- queue members ---- */

static void act_queue_add(client *c, const ami_msg *a) {
    const char *qn = action_arg(a, "Queue"), *iface = action_arg(a, "Interface");
    if (!*qn || !*iface) {
        reply_error(c, a, "'Queue' and 'Interface' must be specified.");
        return;
    }
    queue *q = queue_by_name(qn);
    if (!q) {
        reply_error(c, a, "Unable to add interface to queue: No such queue");
        return;
    }
    if (member_find(q, iface)) {
        reply_error(c, a, "Unable to add interface: Already there");
        return;
    }
    reply_ack(c, a, "Added interface to queue");
    member_add(q, iface, action_arg(a, "MemberName"), action_arg(a, "StateInterface"),
               atoi(action_arg(a, "Penalty")), is_true(action_arg(a, "Paused")),
               action_arg(a, "Reason"));
    if (calls_running()) dispatch(sim_step_now());
}

static void act_queue_remove(client *c, const ami_msg *a) {
    const char *qn = action_arg(a, "Queue"), *iface = action_arg(a, "Interface");
    if (!*qn || !*iface) {
        reply_error(c, a, "Need 'Queue' and 'Interface' parameters.");
        return;
    }
    queue *q = queue_by_name(qn);
    member *m = q ? member_find(q, iface) : NULL;
    if (!q) {
        reply_error(c, a, "Unable to remove interface from queue: No such queue");
    } else if (!m) {
        reply_error(c, a, "Unable to remove interface: Not there");
    } else if (!m->dynamic) {
        reply_error(c, a, "Member not dynamic");
    } else {
        reply_ack(c, a, "Removed interface from queue");
        sim_step_now();
        member_remove(q, m);
    }
}

static void act_queue_pause(client *c, const ami_msg *a) {
    const char *qn = action_arg(a, "Queue"), *iface = action_arg(a, "Interface");
    const char *paused_s = action_arg(a, "Paused");
    if (!*iface || !*paused_s) {
        reply_error(c, a, "Need 'Interface' and 'Paused' parameters.");
        return;
    }
    int paused = is_true(paused_s), found = 0;
    for (int i = 0; i < nqueues; i++) {
        if (*qn && strcmp(qn, queues[i].name) != 0) continue;
        found += member_find(&queues[i], iface) != NULL;
    }
    if (!found) {
        reply_error(c, a, "Interface not found");
        return;
    }
    reply_ack(c, a, paused ? "Interface paused successfully" : "Interface unpaused successfully");
    sim_step_now();
    for (int i = 0; i < nqueues; i++) {
        if (*qn && strcmp(qn, queues[i].name) != 0) continue;
        member *m = member_find(&queues[i], iface);
        if (m) member_set_paused(&queues[i], m, paused, action_arg(a, "Reason"));
    }
    if (!paused && calls_running()) dispatch(sim_step_now());
}

static void act_queue_penalty(client *c, const ami_msg *a) {
    const char *qn = action_arg(a, "Queue"), *iface = action_arg(a, "Interface");
    const char *pen = action_arg(a, "Penalty");
    if (!*iface || !*pen) {
        reply_error(c, a, "'Interface' and 'Penalty' must be provided.");
        return;
    }
    int penalty = atoi(pen), found = 0;
    for (int i = 0; i < nqueues && penalty >= 0; i++) {
        if (*qn && strcmp(qn, queues[i].name) != 0) continue;
        found += member_find(&queues[i], iface) != NULL;
    }
    if (!found) {
        reply_error(c, a, "Invalid interface, queuename or penalty");
        return;
    }
    reply_ack(c, a, "Interface penalty set successfully");
    sim_step_now();
    for (int i = 0; i < nqueues; i++) {
        if (*qn && strcmp(qn, queues[i].name) != 0) continue;
        member *m = member_find(&queues[i], iface);
        if (!m) continue;
        m->penalty = penalty;
        member_event("QueueMemberPenalty", &queues[i], m);
    }
}

/* ---- variables ---- */

static void act_getvar(client *c, const ami_msg *a) {
    const char *name = action_arg(a, "Channel"), *var = action_arg(a, "Variable");
    if (!*var) {
        reply_error(c, a, "No variable specified");
        return;
    }
    chan *ch = NULL;
    if (*name && !find_channel(name, &ch)) {
        reply_error(c, a, "No such channel");
        return;
    }
    const char *v = var_get(ch, var);
    reply_kv(c, a, "Variable", var, "Value", v ? v : "");
}

static void act_setvar(client *c, const ami_msg *a) {
    const char *name = action_arg(a, "Channel"), *var = action_arg(a, "Variable");
    if (!*var) {
        reply_error(c, a, "Variable not specified");
        return;
    }
    chan *ch = NULL;
    if (*name && !find_channel(name, &ch)) {
        reply_error(c, a, "No such channel");
        return;
    }
    reply_ack(c, a, "Variable Set");
    if (!ch) return;
    var_set(ch->name, var, action_arg(a, "Value"));
    sim_step_now();
    varset(ch, var, action_arg(a, "Value"));
}

/* ---- Status ---- */

static void put_status(sbuf *b, const ami_msg *a, const chan *ch, const char *varlist) {
    put_kv(b, "Event", "Status");
    put_kv(b, "Privilege", "Call");
    put_chan(b, "", ch);
    put_kv(b, "Type", "Local");
    put_kv(b, "DNID", "");
    put_kv(b, "EffectiveConnectedLineNum", *ch->conn_num ? ch->conn_num : "<unknown>");
    put_kv(b, "EffectiveConnectedLineName", *ch->conn_name ? ch->conn_name : "<unknown>");
    put_kv(b, "TimeToHangup", "0");
    put_kv(b, "BridgeID", ch->bridge);
    put_kv(b, "Application", ch->app);
    put_kv(b, "Data", ch->appdata);
    put_kv(b, "Nativeformats", "(slin)");
    put_kv(b, "Readformat", "slin");
    put_kv(b, "Readtrans", "");
    put_kv(b, "Writeformat", "slin");
    put_kv(b, "Writetrans", "");
    put_kv(b, "Callgroup", "0");
    put_kv(b, "Pickupgroup", "0");
    put_kvf(b, "Seconds", "%ld", (long)(sim_now() - ch->created));
    char list[512];
    snprintf(list, sizeof(list), "%s", varlist);
    for (char *save, *v = strtok_r(list, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        const char *val = var_get(ch, v);
        put_kvf(b, "Variable", "%s=%s", v, val ? val : "(null)");
    }
    if (*action_arg(a, "ActionID")) put_kv(b, "ActionID", action_arg(a, "ActionID"));
    sbuf_append(b, "\r\n", 2);
}

static void status_complete(client *c, const ami_msg *a, int n) {
    char id[1100], text[1400];
    actionid_line(a, id, sizeof(id));
    snprintf(text, sizeof(text),
             "Event: StatusComplete\r\n%sEventList: Complete\r\nListItems: %d\r\nItems: %d\r\n\r\n",
             id, n, n);
    client_append_str(c, text);
}

static void act_status(client *c, const ami_msg *a) {
    const char *name = action_arg(a, "Channel"), *varlist = action_arg(a, "Variables");
    chan *one = NULL;
    if (*name && !find_channel(name, &one)) {
        reply_error(c, a, "No such channel");
        return;
    }
    reply_list_start(c, a, "Channel status will follow");
    sbuf b;
    sbuf_init(&b);
    int n = 0;
    if (one) {
        put_status(&b, a, one, varlist);
        n = 1;
    } else {
        for (call *k = live; k; k = k->next) {
            chan *cs[8];
            int m = call_chans(k, cs);
            for (int i = 0; i < m; i++) put_status(&b, a, cs[i], varlist);
            n += m;
        }
    }
    client_append(c, b.data, b.len);
    sbuf_free(&b);
    status_complete(c, a, n);
}

/* ---- system ---- */

static void act_core_settings(client *c, const ami_msg *a) {
    sbuf b;
    sbuf_init(&b);
    reply_head(&b, a, "Success", NULL, NULL);
    put_kv(&b, "AMIversion", "11.0.0");
    put_kv(&b, "AsteriskVersion", ASTERISK_VERSION);
    put_kv(&b, "SystemName", "");
    put_kv(&b, "CoreMaxCalls", "0");
    put_kv(&b, "CoreMaxLoadAvg", "0.000000");
    put_kv(&b, "CoreRunUser", "");
    put_kv(&b, "CoreRunGroup", "");
    put_kv(&b, "CoreMaxFilehandles", "16384");
    put_kv(&b, "CoreRealTimeEnabled", "No");
    put_kv(&b, "CoreCDRenabled", "Yes");
    put_kv(&b, "CoreHTTPenabled", "No");
    put_kv(&b, "SoundsSearchCustomDir", "No");
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
}

static int live_channels(void) {
    int n = 0;
    for (call *k = live; k; k = k->next) {
        chan *cs[8];
        n += call_chans(k, cs);
    }
    return n;
}

static void act_core_status(client *c, const ami_msg *a) {
    char date[16], tod[16];
    time_t t = (time_t)boot_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    strftime(tod, sizeof(tod), "%H:%M:%S", &tm);
    sbuf b;
    sbuf_init(&b);
    reply_head(&b, a, "Success", NULL, NULL);
    put_kv(&b, "CoreStartupDate", date);
    put_kv(&b, "CoreStartupTime", tod);
    put_kv(&b, "CoreReloadDate", date);
    put_kv(&b, "CoreReloadTime", tod);
    put_kvf(&b, "CoreCurrentCalls", "%d", live_channels());
    put_kvf(&b, "CoreProcessedCalls", "%d", live_channels());
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
}

static void output_channels(sbuf *b) {
    char loc[160], app[200];
    put_kvf(b, "Output", "%-64s %-32s %-7s %-30s", "Channel", "Location", "State",
            "Application(Data)");
    for (call *k = live; k; k = k->next) {
        chan *cs[8];
        int m = call_chans(k, cs);
        for (int i = 0; i < m; i++) {
            snprintf(loc, sizeof(loc), "%s@%s:%d", cs[i]->exten, cs[i]->context, cs[i]->priority);
            snprintf(app, sizeof(app), "%s(%s)", cs[i]->app, cs[i]->appdata);
            put_kvf(b, "Output", "%-64s %-32s %-7s %-30s", cs[i]->name,
                    *cs[i]->exten ? loc : "(None)", chan_state_desc(cs[i]->state), app);
        }
    }
    put_kvf(b, "Output", "%d active channels", live_channels());
    put_kvf(b, "Output", "%d active calls", live_channels() / 2);
}

static void output_queue(sbuf *b, const queue *q) {
    put_kvf(b, "Output", "%s has %d calls (max unlimited) in 'rrmemory' strategy (%lds holdtime, "
            "%lds talktime), W:0, C:%ld, A:%ld, SL:0.0%%, SL2:0.0%% within 0s",
            q->name, q->waiting, q->holdtime, q->talktime, q->completed, q->abandoned);
    put_kv(b, "Output", "   Members: ");
    for (int i = 0; i < q->nm; i++) {
        const member *m = &q->m[i];
        int busy = m->op && member_status(m->op) == 2;
        put_kvf(b, "Output", "      %s (%s)%s (ringinuse disabled)%s (%s)", m->name, m->iface,
                m->dynamic ? " (dynamic)" : "", m->paused ? " (paused)" : "",
                busy ? "In use" : "Not in use");
    }
    put_kv(b, "Output", q->waiting ? "   Callers: " : "   No Callers");
    put_kv(b, "Output", "");
}

/* The few CLI commands a call-centre client runs; others are unknown. */
static int run_cli(sbuf *b, const char *cmd) {
    if (strcmp(cmd, "core show version") == 0) {
        put_kv(b, "Output", "Asterisk " ASTERISK_VERSION " built by amisim @ amisim on a x86_64 "
               "running Linux on 2026-11-26 04:50:51 UTC");
        return 1;
    }
    if (strcmp(cmd, "core show channels") == 0) {
        output_channels(b);
        return 1;
    }
    if (strncmp(cmd, "queue show", 10) == 0) {
        const char *name = cmd[10] == ' ' ? cmd + 11 : "";
        for (int i = 0; i < nqueues; i++)
            if (!*name || strcmp(name, queues[i].name) == 0) output_queue(b, &queues[i]);
        return 1;
    }
    return 0;
}

static void act_command(client *c, const ami_msg *a) {
    const char *cmd = action_arg(a, "Command");
    sbuf out;
    sbuf_init(&out);
    int ok = run_cli(&out, cmd);
    if (!ok) {
        char first_two[128];
        int n = 0, words = 0;
        while (cmd[n] && !(cmd[n] == ' ' && ++words == 2) && n < 120) n++;
        snprintf(first_two, sizeof(first_two), "%.*s", n, cmd);
        put_kvf(&out, "Output", "No such command '%s' (type 'core show help %s' for other "
                "possible commands)", cmd, first_two);
    }
    sbuf b;
    sbuf_init(&b);
    reply_head(&b, a, ok ? "Success" : "Error", NULL, "Command output follows");
    sbuf_append(&b, out.data, out.len);
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
    sbuf_free(&out);
}

void commands_register(void) {
    actions_register("Originate", act_originate, 1);
    actions_register("Hangup", act_hangup, 1);
    actions_register("Redirect", act_redirect, 1);
    actions_register("QueueAdd", act_queue_add, 1);
    actions_register("QueueRemove", act_queue_remove, 1);
    actions_register("QueuePause", act_queue_pause, 1);
    actions_register("QueuePenalty", act_queue_penalty, 1);
    actions_register("Getvar", act_getvar, 1);
    actions_register("Setvar", act_setvar, 1);
    actions_register("Status", act_status, 1);
    actions_register("CoreSettings", act_core_settings, 1);
    actions_register("CoreStatus", act_core_status, 1);
    actions_register("Command", act_command, 1);
}

void commands_free(void) {
    while (vars) {
        var_entry *v = vars->next;
        free(vars);
        vars = v;
    }
}
