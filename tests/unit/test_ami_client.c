/* test_ami_client.c -- the agent's AMI link (agent/ami_client.c) against a
 * scripted Asterisk on a real loopback socket: ActionIDs with a per-run
 * nonce, the messages only an injection can make refused as forged, and the
 * link's one state machine (up, down, reconnect). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ami_client.h"
#include "config.h"

/* ---- What the client reported -------------------------------------------- */

typedef struct seen {
    int up, down;
    ami_client *a;
    int cut_in_up;          /* on_up: the link's write side fails, then it sends (the resync) */
    int in_up, down_inside_up;
    int mirror;             /* what the rest of the agent believes: 1 after on_up, 0 after on_down */
    char log[64][320];      /* "msg <first key>=<value> <ActionID>" or "forged <error>" */
    int n;
} seen;

static void note(seen *s, const char *fmt, const char *a, const char *b, const char *c) {
    if (s->n < 64) snprintf(s->log[s->n++], sizeof(s->log[0]), fmt, a, b, c);
}

/* As the agent does: the resync's actions from inside on_up, then the
 * command side is told the link is up. */
static void h_up(void *ctx, const char *banner) {
    seen *s = ctx;
    (void)banner;
    s->up++;
    s->in_up = 1;
    if (s->cut_in_up) {
        shutdown(ami_client_fd(s->a), SHUT_WR);
        char id[AMI_ACTION_ID_MAX];
        ami_client_send(s->a, "CoreShowChannels", NULL, id, sizeof(id));
        assert_int_equal(ami_client_send(s->a, "QueueStatus", NULL, id, sizeof(id)), -1);
        assert_false(ami_client_is_up(s->a));
    }
    s->mirror = 1;
    s->in_up = 0;
}

static void h_down(void *ctx, const char *reason) {
    seen *s = ctx;
    (void)reason;
    s->down++;
    s->down_inside_up |= s->in_up;
    s->mirror = 0;
}

static void h_message(void *ctx, ami_msg *m) {
    note(ctx, "msg %s=%s %s", m->headers[0].key, m->headers[0].value, ami_get_or(m, "ActionID", "-"));
}

static void h_forged(void *ctx, const ami_msg *m, const char *error, const char *detail) {
    (void)m;
    (void)detail;
    note(ctx, "forged %s%s%s", error, "", "");
}

/* ---- A scripted Asterisk --------------------------------------------------- */

typedef struct fake {
    int lfd, fd;
    int port;
    char buf[65536];
    size_t len;
} fake;

static void fake_listen(fake *f) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    f->fd = -1;
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
}

static void fake_send(fake *f, const char *s) {
    assert_int_equal(send(f->fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

typedef struct env {
    callbus_config cfg;
    seen seen;
    fake ast;
    ami_client *a;
    double now;
} env;

/* One turn of the agent's loop for the client: timers, poll, handle. */
static void turn(env *e) {
    e->now += 0.01;
    ami_client_tick(e->a, e->now);
    int fd = ami_client_fd(e->a);
    if (fd < 0) return;
    struct pollfd p = {.fd = fd, .events = ami_client_poll_events(e->a)};
    if (poll(&p, 1, 20) > 0) ami_client_handle(e->a, p.revents, e->now);
}

static void turns(env *e, int n) {
    for (int i = 0; i < n; i++) turn(e);
}

/* Accepts the client's connection (running its loop meanwhile). */
static void fake_accept(env *e) {
    for (int i = 0; i < 200 && e->ast.fd < 0; i++) {
        turn(e);
        struct pollfd p = {.fd = e->ast.lfd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0) e->ast.fd = accept(e->ast.lfd, NULL, NULL);
    }
    assert_true(e->ast.fd >= 0);
}

/* Reads the client's next action; *id gets its ActionID. */
static void fake_action(env *e, char *action, size_t alen, char *id, size_t idlen) {
    fake *f = &e->ast;
    char *end = NULL;
    for (int i = 0; i < 200 && !(end = memmem(f->buf, f->len, "\r\n\r\n", 4)); i++) {
        turn(e);
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0) {
            ssize_t n = recv(f->fd, f->buf + f->len, sizeof(f->buf) - f->len - 1, 0);
            assert_true(n > 0);
            f->len += (size_t)n;
        }
    }
    assert_non_null(end);
    *end = '\0';
    const char *a = strstr(f->buf, "Action: "), *i = strstr(f->buf, "ActionID: ");
    assert_non_null(a);
    assert_non_null(i);
    snprintf(action, alen, "%.*s", (int)strcspn(a + 8, "\r"), a + 8);
    snprintf(id, idlen, "%.*s", (int)strcspn(i + 10, "\r"), i + 10);
    size_t used = (size_t)(end + 4 - f->buf);
    memmove(f->buf, f->buf + used, f->len - used);
    f->len -= used;
}

/* Banner, Login, its answer: the client is up. Returns the Login's ActionID. */
static void log_in(env *e, char *login_id, size_t n) {
    char action[64], reply[512];
    fake_accept(e);
    fake_send(&e->ast, "Asterisk Call Manager/11.0.0\r\n");
    fake_action(e, action, sizeof(action), login_id, n);
    assert_string_equal(action, "Login");
    snprintf(reply, sizeof(reply), "Response: Success\r\nActionID: %s\r\nMessage: Authentication accepted\r\n\r\n",
             login_id);
    fake_send(&e->ast, reply);
    turns(e, 5);
}

static int setup(void **state) {
    env *e = calloc(1, sizeof(*e));
    char err[256];
    assert_int_equal(config_load(&e->cfg, NULL, err, sizeof(err)), 0);
    fake_listen(&e->ast);
    snprintf(e->cfg.agent.ami_host, sizeof(e->cfg.agent.ami_host), "127.0.0.1");
    e->cfg.agent.ami_port = e->ast.port;
    e->cfg.agent.reconnect_min_ms = 10;
    e->cfg.agent.reconnect_max_ms = 20;
    e->cfg.agent.ping_interval_s = 3600;
    ami_client_handlers h = {.on_up = h_up, .on_down = h_down, .on_message = h_message,
                             .on_forged = h_forged};
    e->a = ami_client_new(&e->cfg, &h, &e->seen, err, sizeof(err));
    assert_non_null(e->a);
    e->seen.a = e->a;
    e->now = 1000;
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    ami_client_free(e->a);
    if (e->ast.fd >= 0) close(e->ast.fd);
    close(e->ast.lfd);
    config_free(&e->cfg);
    free(e);
    return 0;
}

static void assert_log(const seen *s, int from, const char *const *want) {
    int n = 0;
    for (; want[n]; n++) {
        assert_true(from + n < s->n);
        if (strcmp(s->log[from + n], want[n]) != 0) fail_msg("log[%d]: got \"%s\", want \"%s\"", from + n,
                                                              s->log[from + n], want[n]);
    }
    assert_int_equal(s->n, from + n);
}

/* ---- ActionIDs -------------------------------------------------------------- */

static int matches(const char *re, const char *s) {
    regex_t r;
    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    int ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

/* 128 random bits per run: a second client (a second run) has another. */
static void test_action_ids_carry_a_per_run_nonce(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX], err[256];
    const char *prefix = ami_client_id_prefix(e->a);
    assert_true(matches("^callbus/[0-9a-f]{32}/$", prefix));
    ami_client_handlers h = {0};
    ami_client *other = ami_client_new(&e->cfg, &h, NULL, err, sizeof(err));
    assert_true(matches("^callbus/[0-9a-f]{32}/$", ami_client_id_prefix(other)));
    assert_string_not_equal(prefix, ami_client_id_prefix(other));
    ami_client_free(other);

    log_in(e, login, sizeof(login));
    assert_int_equal(e->seen.up, 1);
    assert_int_equal(strncmp(login, prefix, strlen(prefix)), 0);
    assert_string_equal(login + strlen(prefix), "1");
    char id[AMI_ACTION_ID_MAX], got[AMI_ACTION_ID_MAX], action[64];
    assert_int_equal(ami_client_send_tagged(e->a, "QueuePause", NULL, "cmd/c-1", id, sizeof(id)), 0);
    fake_action(e, action, sizeof(action), got, sizeof(got));
    assert_string_equal(got, id);
    assert_int_equal(strncmp(id, prefix, strlen(prefix)), 0);
    assert_string_equal(id + strlen(prefix), "cmd/c-1");
}

/* ---- Forged messages ------------------------------------------------------------ */

static void say(env *e, const char *fmt, const char *id) {
    char text[2048];
    snprintf(text, sizeof(text), fmt, id, id);
    fake_send(&e->ast, text);
    turns(e, 3);
}

/* Responses: one per action, only to an action the client sent. */
static void test_unexpected_responses_are_forged(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX], id[AMI_ACTION_ID_MAX], got[AMI_ACTION_ID_MAX], action[64];
    log_in(e, login, sizeof(login));
    int from = e->seen.n;
    say(e, "Response: Error\r\nActionID: cmd/c-1\r\nMessage: Originate failed%.0s\r\n\r\n", "");
    say(e, "Response: Success\r\nMessage: no ActionID%.0s\r\n\r\n", "");
    say(e, "Response: Success\r\nActionID: %s\r\n\r\n", login); /* the Login, answered already */
    assert_int_equal(ami_client_send(e->a, "CoreSettings", NULL, id, sizeof(id)), 0);
    fake_action(e, action, sizeof(action), got, sizeof(got));
    say(e, "Response: Success\r\nActionID: %s\r\nAsteriskVersion: 22.10.1\r\n\r\n", id);
    say(e, "Response: Success\r\nActionID: %s\r\nAsteriskVersion: 6.6.6\r\n\r\n", id);
    char want2[320];
    snprintf(want2, sizeof(want2), "msg Response=Success %s", id);
    const char *want[] = {"forged unexpected_response", "forged unexpected_response",
                          "forged unexpected_response", want2, "forged unexpected_response", NULL};
    assert_log(&e->seen, from, want);
}

/* Events: other clients' ActionIDs pass; ours only while their action
 * still answers with events; none of another run. */
static void test_events_naming_our_actions_are_checked(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX], list[AMI_ACTION_ID_MAX], orig[AMI_ACTION_ID_MAX], got[AMI_ACTION_ID_MAX];
    char action[64], w[8][320];
    log_in(e, login, sizeof(login));
    int from = e->seen.n;
    say(e, "Event: Hangup\r\nUniqueid: 1.1%.0s\r\n\r\n", "");
    say(e, "Event: OriginateResponse\r\nActionID: %s\r\nResponse: Success\r\n\r\n", "crm-7");
    say(e, "Event: CoreShowChannel\r\nActionID: %s\r\nChannel: PJSIP/fake-1\r\n\r\n",
        "callbus/0123456789abcdef0123456789abcdef/2");
    say(e, "ActionID: %s\r\nEvent: Hangup\r\n\r\n", "x");
    /* A list action: items between its Response and its Complete only. */
    assert_int_equal(ami_client_send(e->a, "CoreShowChannels", NULL, list, sizeof(list)), 0);
    fake_action(e, action, sizeof(action), got, sizeof(got));
    say(e, "Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n", list);
    say(e, "Event: CoreShowChannel\r\nActionID: %s\r\nChannel: PJSIP/op101-1\r\n\r\n", list);
    say(e, "Event: CoreShowChannelsComplete\r\nActionID: %s\r\nEventList: Complete\r\n\r\n", list);
    say(e, "Event: CoreShowChannel\r\nActionID: %s\r\nChannel: PJSIP/fake-2\r\n\r\n", list);
    /* An async Originate: its OriginateResponse may come before its Response. */
    const char *h[] = {"Channel", "Local/op101@phones", "Async", "true", NULL};
    assert_int_equal(ami_client_send_tagged(e->a, "Originate", h, "cmd/c-2", orig, sizeof(orig)), 0);
    fake_action(e, action, sizeof(action), got, sizeof(got));
    say(e, "Event: OriginateResponse\r\nActionID: %s\r\nResponse: Success\r\n\r\n", orig);
    say(e, "Response: Success\r\nActionID: %s\r\n\r\n", orig);
    say(e, "Event: OriginateResponse\r\nActionID: %s\r\nResponse: Failure\r\n\r\n", orig);
    snprintf(w[0], 320, "msg Response=Success %s", list);
    snprintf(w[1], 320, "msg Event=CoreShowChannel %s", list);
    snprintf(w[2], 320, "msg Event=CoreShowChannelsComplete %s", list);
    snprintf(w[3], 320, "msg Event=OriginateResponse %s", orig);
    snprintf(w[4], 320, "msg Response=Success %s", orig);
    const char *want[] = {"msg Event=Hangup -", "msg Event=OriginateResponse crm-7",
                          "forged forged_action_id", "forged not_event_or_response",
                          w[0], w[1], w[2], "forged forged_action_id", w[3], w[4],
                          "forged forged_action_id", NULL};
    assert_log(&e->seen, from, want);
}

/* A plain action answers with no event: an event naming it is forged. */
static void test_event_naming_a_plain_action_is_forged(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX], id[AMI_ACTION_ID_MAX], got[AMI_ACTION_ID_MAX], action[64];
    log_in(e, login, sizeof(login));
    assert_int_equal(ami_client_send_tagged(e->a, "Hangup", NULL, "cmd/c-3", id, sizeof(id)), 0);
    fake_action(e, action, sizeof(action), got, sizeof(got));
    int from = e->seen.n;
    say(e, "Event: OriginateResponse\r\nActionID: %s\r\nResponse: Failure\r\n\r\n", id);
    say(e, "Response: Success\r\nActionID: %s\r\n\r\n", id);
    char w[320];
    snprintf(w, sizeof(w), "msg Response=Success %s", id);
    const char *want[] = {"forged forged_action_id", w, NULL};
    assert_log(&e->seen, from, want);
}

/* ---- The link's state ------------------------------------------------------- */

static void fake_drop(fake *f) {
    close(f->fd);
    f->fd = -1;
    f->len = 0;
}

/* A send failing inside on_up (the resync, right after login): the link
 * goes down once on_up has returned, the parser is not reset under its own
 * callback, and the rest of the agent ends up believing down. */
static void test_send_failing_inside_on_up(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX];
    e->seen.cut_in_up = 1;
    log_in(e, login, sizeof(login));
    turns(e, 3);
    assert_int_equal(e->seen.up, 1);
    assert_int_equal(e->seen.down, 1);
    assert_false(e->seen.down_inside_up);
    assert_int_equal(e->seen.mirror, 0);
    assert_false(ami_client_is_up(e->a));
    /* It reconnects and logs in again. */
    fake_drop(&e->ast);
    e->seen.cut_in_up = 0;
    e->now += 1;
    log_in(e, login, sizeof(login));
    assert_int_equal(e->seen.up, 2);
    assert_int_equal(e->seen.mirror, 1);
    assert_true(ami_client_is_up(e->a));
}

/* The link fails while an action is written, outside any callback: on_down
 * runs inside the send, so the send must say the action did not go out, or
 * the command executor would wait for an answer until its result timeout. */
static void test_send_failing_reports_it(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX], id[AMI_ACTION_ID_MAX];
    log_in(e, login, sizeof(login));
    assert_true(ami_client_is_up(e->a));
    shutdown(ami_client_fd(e->a), SHUT_WR);
    const char *h[] = {"Channel", "PJSIP/op101-00000001", NULL};
    assert_int_equal(ami_client_send_tagged(e->a, "Hangup", h, "cmd/c1", id, sizeof(id)), -1);
    assert_int_equal(e->seen.down, 1);
    assert_false(ami_client_is_up(e->a));
    assert_int_equal(ami_client_send(e->a, "Ping", NULL, id, sizeof(id)), -1);
}

/* Cut right after login, five times, then Asterisk is gone (reconnects
 * refused): up and down in turn, and down at the end. */
static void test_repeated_drops_right_after_login(void **state) {
    env *e = *state;
    char login[AMI_ACTION_ID_MAX];
    for (int i = 0; i < 5; i++) {
        log_in(e, login, sizeof(login));
        assert_int_equal(e->seen.up, i + 1);
        fake_drop(&e->ast);
        turns(e, 3);
        assert_int_equal(e->seen.down, i + 1);
        assert_int_equal(e->seen.mirror, 0);
        e->now += 1;
    }
    close(e->ast.lfd);
    e->ast.lfd = socket(AF_INET, SOCK_STREAM, 0); /* closed by teardown */
    for (int i = 0; i < 20; i++) {
        e->now += 0.05;
        turns(e, 2);
    }
    assert_int_equal(e->seen.up, 5);
    assert_int_equal(e->seen.down, 5);
    assert_int_equal(e->seen.mirror, 0);
    assert_false(ami_client_is_up(e->a));
}

/* A refused login changes nothing the agent was told; the client retries. */
static void test_refused_login_reports_nothing(void **state) {
    env *e = *state;
    char action[64], id[AMI_ACTION_ID_MAX], reply[512];
    fake_accept(e);
    fake_send(&e->ast, "Asterisk Call Manager/11.0.0\r\n");
    fake_action(e, action, sizeof(action), id, sizeof(id));
    snprintf(reply, sizeof(reply), "Response: Error\r\nActionID: %s\r\nMessage: Authentication failed\r\n\r\n", id);
    fake_send(&e->ast, reply);
    turns(e, 3);
    assert_int_equal(e->seen.up, 0);
    assert_int_equal(e->seen.down, 0);
    fake_drop(&e->ast);
    e->now += 1;
    log_in(e, id, sizeof(id));
    assert_int_equal(e->seen.up, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_action_ids_carry_a_per_run_nonce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unexpected_responses_are_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_naming_our_actions_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_naming_a_plain_action_is_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_failing_inside_on_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_failing_reports_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_drops_right_after_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_login_reports_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
