/* session.c -- the actions of a session itself: Login (with Asterisk's
 * delay before refusing one), Logoff, Ping and Events. Switching events on
 * is told to the server's hooks, so a replay stream can start then. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actions.h"
#include "amisim.h"
#include "events.h"
#include "log.h"
#include "sbuf.h"
#include "server.h"
#include "stats.h"

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
    if (c->event_mask) server_events_on(c);
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
    if (c->event_mask) server_events_on(c);
}

void session_register(void) {
    actions_register("Login", act_login, 0);
    actions_register("Logoff", act_logoff, 0);
    actions_register("Ping", act_ping, 1);
    actions_register("Events", act_events, 1);
}
