/* actions.c -- action dispatch table and the session actions.
 *
 * Replies are written header for header as Asterisk 22 writes them (see the
 * captures in tests/fixtures/ami-samples): Response, ActionID, then the
 * action's own headers. Every action received is counted by name first, so
 * tests can check what a client really sent. */
#include "actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "amisim.h"
#include "callcenter.h"
#include "commands.h"
#include "events.h"
#include "log.h"
#include "replay.h"
#include "sbuf.h"
#include "stats.h"

typedef struct action_entry {
    const char *name;
    action_handler fn;
    int needs_auth;
} action_entry;

#define MAX_ACTIONS 96
static action_entry table[MAX_ACTIONS];
static int nactions;

void actions_register(const char *name, action_handler fn, int needs_auth) {
    for (int i = 0; i < nactions; i++) {
        if (strcasecmp(table[i].name, name) == 0) {
            table[i].fn = fn;
            table[i].needs_auth = needs_auth;
            return;
        }
    }
    if (nactions == MAX_ACTIONS) abort();
    table[nactions++] = (action_entry){name, fn, needs_auth};
}

static const action_entry *lookup(const char *name) {
    for (int i = 0; i < nactions; i++)
        if (strcasecmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}

/* ---- reading actions ---- */

/* Asterisk's limits on what a client sends (main/manager.c): get_input()
 * reads a line into inbuf[1025], so with its CRLF a line has at most 1024
 * bytes (a bare-LF line one more than here), and struct message keeps
 * AST_MAX_MANHEADERS (128) headers. */
#define ACTION_MAX_LINE 1022
#define ACTION_MAX_HEADERS 128

const char *action_value(const char *value) {
    /* ast_skip_blanks(): every byte below 33 */
    while (*value && (unsigned char)*value < 33) value++;
    return value;
}

const char *action_arg(const ami_msg *a, const char *key) {
    return action_value(ami_get_or(a, key, ""));
}

static void on_action(void *ctx, ami_msg *a) {
    client *c = ctx;
    /* After Logoff or a failed Login nothing more is read. */
    if (c->closing || c->dead) return;
    actions_dispatch(c, a);
}

/* What was read of a refused action; its ActionID goes in the error. */
typedef struct refusal {
    client *c;
    const char *why;
} refusal;

static void reply_refused(void *ctx, ami_msg *a) {
    refusal *r = ctx;
    reply_error(r->c, a, r->why);
}

/* Past either limit Asterisk refuses the whole action (do_message() in
 * main/manager.c): at its blank line it answers an error that echoes the
 * ActionID among the headers it kept. lib/ami.c refuses it as soon as the
 * limit is hit, hands over the bytes read up to there and skips the rest;
 * those bytes, parsed again, give the ActionID (one sent after an over-long
 * line is lost: Asterisk would have it). */
static void on_refused(void *ctx, ami_error err, const char *raw, size_t len) {
    client *c = ctx;
    if (err == AMI_ERR_NO_COLON || c->closing || c->dead) return;
    refusal r = {c, err == AMI_ERR_LINE_TOO_LONG ? "Failed to parse message: line too long"
                                                 : "Too many lines in message or allocation failure"};
    /* The last line read is the 129th header: Asterisk did not keep it. */
    if (err == AMI_ERR_TOO_MANY_HEADERS && len > 1) {
        const char *nl = memrchr(raw, '\n', len - 1);
        len = nl ? (size_t)(nl + 1 - raw) : 0;
    }
    ami_parser_callbacks cb = {.on_message = reply_refused};
    ami_parser *p = ami_parser_new(&cb, &r);
    ami_parser_read_actions(p);
    ami_parser_feed(p, raw, len);
    ami_parser_feed(p, "\r\n\r\n", 4);
    ami_parser_free(p);
}

ami_parser *actions_parser_new(client *c) {
    ami_parser_callbacks cb = {.on_message = on_action, .on_error = on_refused};
    ami_parser *p = ami_parser_new(&cb, c);
    ami_parser_read_actions(p);
    ami_parser_set_limits(p, ACTION_MAX_LINE, ACTION_MAX_HEADERS);
    return p;
}

/* ---- reply helpers ---- */

void actionid_line(const ami_msg *a, char *out, size_t n) {
    const char *id = action_arg(a, "ActionID");
    if (*id)
        snprintf(out, n, "ActionID: %s\r\n", id);
    else
        out[0] = '\0';
}

static void reply(client *c, const ami_msg *a, const char *response, const char *list,
                  const char *message) {
    sbuf b;
    sbuf_init(&b);
    put_kv(&b, "Response", response);
    const char *id = action_arg(a, "ActionID");
    if (*id) put_kv(&b, "ActionID", id);
    if (list) put_kv(&b, "EventList", list);
    if (message) put_kv(&b, "Message", message);
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
}

void reply_ack(client *c, const ami_msg *a, const char *message) {
    reply(c, a, "Success", NULL, message);
}

void reply_error(client *c, const ami_msg *a, const char *message) {
    reply(c, a, "Error", NULL, message);
}

void reply_list_start(client *c, const ami_msg *a, const char *message) {
    reply(c, a, "Success", "start", message);
}

void reply_list_complete(client *c, const ami_msg *a, const char *event, int items) {
    sbuf b;
    sbuf_init(&b);
    put_kv(&b, "Event", event);
    const char *id = action_arg(a, "ActionID");
    if (*id) put_kv(&b, "ActionID", id);
    put_kv(&b, "EventList", "Complete");
    put_kvf(&b, "ListItems", "%d", items);
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
}

/* ---- session actions ---- */

static const amisim_user *find_user(const char *name) {
    for (int i = 0; i < cfg.nusers; i++)
        if (strcasecmp(cfg.users[i].name, name) == 0) return &cfg.users[i];
    return NULL;
}

static void send_fully_booted(client *c) {
    long uptime = (long)(now_real() - boot_time);
    sbuf b;
    sbuf_init(&b);
    put_kv(&b, "Event", "FullyBooted");
    put_kv(&b, "Privilege", "system,all");
    put_kvf(&b, "Uptime", "%ld", uptime);
    put_kvf(&b, "LastReload", "%ld", uptime);
    put_kv(&b, "Status", "Fully Booted");
    sbuf_append(&b, "\r\n", 2);
    client_append(c, b.data, b.len);
    sbuf_free(&b);
    c->events++;
    stats_events(1);
}

/* Asterisk sleeps a second before refusing a login, then ends the session. */
static void login_failed(client *c, const ami_msg *a) {
    char id[1100], text[1300];
    actionid_line(a, id, sizeof(id));
    snprintf(text, sizeof(text), "Response: Error\r\n%sMessage: Authentication failed\r\n\r\n", id);
    log_info("client %u login failed for user '%s'", c->id, action_arg(a, "Username"));
    client_fail_later(c, text, cfg.auth_fail_delay_ms);
}

static void act_login(client *c, const ami_msg *a) {
    if (c->authenticated) {
        reply_ack(c, a, "Already authenticated");
        return;
    }
    const amisim_user *u = find_user(action_arg(a, "Username"));
    if (!u || strcmp(u->secret, action_arg(a, "Secret")) != 0) {
        login_failed(c, a);
        return;
    }
    const char *events = action_arg(a, "Events");
    c->authenticated = 1;
    c->event_mask = *events ? eventmask_parse(events) : EV_ALL;
    snprintf(c->user, sizeof(c->user), "%s", u->name);
    log_info("client %u logged in as %s (events %s)", c->id, c->user, c->event_mask ? "on" : "off");
    reply_ack(c, a, "Authentication accepted");
    if (c->event_mask & EV_SYSTEM) send_fully_booted(c);
    static long dropped;
    if (dropped < cfg.drop_after_login) {
        dropped++;
        client_drop(c, "dropped right after login (--drop-after-login)");
        /* With --exit-after the port closes too: an Asterisk that stopped. */
        if (cfg.exit_after && dropped == cfg.drop_after_login) server_request_exit();
        return;
    }
    if (c->event_mask) replay_on_events_on(c);
}

static void act_logoff(client *c, const ami_msg *a) {
    reply(c, a, "Goodbye", NULL, "Thanks for all the fish.");
    client_finish(c);
}

static void act_ping(client *c, const ami_msg *a) {
    char stamp[32], id[1100], text[1300];
    format_timestamp(stamp, sizeof(stamp), now_real());
    actionid_line(a, id, sizeof(id));
    snprintf(text, sizeof(text), "Response: Success\r\n%sPing: Pong\r\nTimestamp: %s\r\n\r\n", id,
             stamp);
    client_append_str(c, text);
}

static void act_events(client *c, const ami_msg *a) {
    char id[1100], text[1300];
    c->event_mask = eventmask_parse(action_arg(a, "EventMask"));
    actionid_line(a, id, sizeof(id));
    snprintf(text, sizeof(text), "Response: Success\r\n%sEvents: %s\r\n\r\n", id,
             c->event_mask ? "On" : "Off");
    client_append_str(c, text);
    if (c->event_mask) replay_on_events_on(c);
}

/* List actions: start, items from the current state, Complete. */
static void act_core_show_channels(client *c, const ami_msg *a) {
    sbuf b;
    sbuf_init(&b);
    reply_list_start(c, a, "Channels will follow");
    int n = callcenter_list_channels(&b, action_arg(a, "ActionID"));
    client_append(c, b.data, b.len);
    reply_list_complete(c, a, "CoreShowChannelsComplete", n);
    sbuf_free(&b);
}

static void act_queue_status(client *c, const ami_msg *a) {
    sbuf b;
    sbuf_init(&b);
    reply_list_start(c, a, "Queue status will follow");
    int n = callcenter_list_queue_status(&b, action_arg(a, "ActionID"), action_arg(a, "Queue"),
                                         action_arg(a, "Member"));
    client_append(c, b.data, b.len);
    reply_list_complete(c, a, "QueueStatusComplete", n);
    sbuf_free(&b);
}

static void act_queue_summary(client *c, const ami_msg *a) {
    sbuf b;
    sbuf_init(&b);
    reply_list_start(c, a, "Queue summary will follow");
    int n = callcenter_list_queue_summary(&b, action_arg(a, "ActionID"), action_arg(a, "Queue"));
    client_append(c, b.data, b.len);
    reply_list_complete(c, a, "QueueSummaryComplete", n);
    sbuf_free(&b);
}

void actions_init(void) {
    actions_register("Login", act_login, 0);
    actions_register("Logoff", act_logoff, 0);
    actions_register("Ping", act_ping, 1);
    actions_register("Events", act_events, 1);
    actions_register("CoreShowChannels", act_core_show_channels, 1);
    actions_register("QueueStatus", act_queue_status, 1);
    actions_register("QueueSummary", act_queue_summary, 1);
    commands_register();
}

void actions_dispatch(client *c, const ami_msg *a) {
    const char *name = action_arg(a, "Action");
    const action_entry *e = *name ? lookup(name) : NULL;
    stats_action(e ? e->name : name, action_arg(a, "ActionID"));
    if (!*name) {
        reply_error(c, a, "Missing action in request");
        return;
    }
    if (e && e->needs_auth && !c->authenticated) {
        reply_error(c, a, "Permission denied");
        return;
    }
    if (!e) {
        char msg[600];
        snprintf(msg, sizeof(msg),
                 "Invalid/unknown command: %.200s. Use Action: ListCommands to show available commands.",
                 name);
        reply_error(c, a, c->authenticated ? msg : "Permission denied");
        return;
    }
    e->fn(c, a);
}

void actions_free(void) {
    nactions = 0;
}
