/* actions.c -- the action dispatch table, reading actions and the replies.
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

#include "events.h"
#include "log.h"
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

void reply_head(sbuf *b, const ami_msg *a, const char *response, const char *list,
                const char *message) {
    put_kv(b, "Response", response);
    const char *id = action_arg(a, "ActionID");
    if (*id) put_kv(b, "ActionID", id);
    if (list) put_kv(b, "EventList", list);
    if (message) put_kv(b, "Message", message);
}

void reply(client *c, const ami_msg *a, const char *response, const char *list,
           const char *message) {
    sbuf b;
    sbuf_init(&b);
    reply_head(&b, a, response, list, message);
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

/* Each session reads its actions through a parser of its own. */
static void parser_open(client *c) {
    c->actions = actions_parser_new(c);
}

static void parser_free(client *c) {
    ami_parser_free(c->actions);
    c->actions = NULL;
}

void actions_init(void) {
    static const client_hooks hooks = {.opened = parser_open, .freed = parser_free};
    server_add_client_hooks(&hooks);
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
