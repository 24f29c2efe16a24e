/* ami_client.c -- AMI connection state machine, the one place ActionIDs are
 * made, and the check that refuses messages only an injection can produce
 * (see ami_client.h).
 *
 * The link's state is this one machine: DISCONNECTED -> CONNECTING ->
 * LOGGING_IN -> UP, and back to DISCONNECTED from any of them. A failure
 * found anywhere (a send from inside on_up, a read in the middle of the
 * parser's callbacks, a timer) only records its reason; the session ends
 * when the outermost entry point (handle, tick, send, logoff) returns,
 * outside every callback, so the parser is never reset from inside its own
 * callback and no handler runs inside another. on_down follows every on_up,
 * once, and only an on_up: the rest of the agent sees the link exactly as
 * it is. */
#include "ami_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/rand.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "alloc.h"
#include "ami_tls.h"
#include "log.h"
#include "sbuf.h"

#define ID_FORM "callbus/"
#define ID_FORM_LEN (sizeof(ID_FORM) - 1)
#define NONCE_BYTES 16

/* An action sent whose answer is not complete yet: every action gets one
 * Response; a list action (Response with "EventList: start") then events up
 * to the one with "EventList: Complete", an async Originate one
 * OriginateResponse (which may even come before the Response). Entries live
 * until then or until the session ends: Asterisk answers every action. */
typedef struct pending {
    char id[AMI_ACTION_ID_MAX];
    int answered;           /* its Response came */
    int events_open;        /* events may still come for it */
    UT_hash_handle hh;
} pending;

enum state { DISCONNECTED, CONNECTING, TLS_HANDSHAKE, LOGGING_IN, UP };

#define READ_CHUNK (256 * 1024)

struct ami_client {
    const callbus_config *cfg;
    ami_client_handlers h;
    void *ctx;
    enum state state;
    int fd;
    ami_tls *tls;           /* agent.ami.tls: the settings, NULL for plain TCP */
    ami_tls_conn *tconn;    /* this session's TLS, once connected */
    short tls_wants;        /* POLLIN/POLLOUT that TLS waits for */
    ami_parser *parser;
    sbuf out;
    size_t out_off;
    char *inbuf;
    char banner[128];
    unsigned long action_seq;
    char id_prefix[ID_FORM_LEN + 2 * NONCE_BYTES + 2];  /* "callbus/<nonce>/" */
    size_t id_prefix_len;
    pending *pending;
    char login_id[AMI_ACTION_ID_MAX];
    char ping_id[AMI_ACTION_ID_MAX];
    double now;             /* monotonic time of the event being handled */
    double ping_sent;       /* 0 when no Ping is outstanding */
    double next_ping;
    double next_attempt;
    double login_deadline;
    int backoff_ms;
    int reported_up;        /* on_up was called and on_down not yet */
    int depth;              /* entry points running (they nest through handlers) */
    char failure[512];      /* why the session is ending; "" while it is not */
};

static void fail(ami_client *a, const char *reason);

static void on_banner(void *ctx, const char *banner) {
    ami_client *a = ctx;
    snprintf(a->banner, sizeof(a->banner), "%s", banner);
}

/* ---- Actions we wait on ---------------------------------------------------- */

static pending *pending_find(ami_client *a, const char *id) {
    pending *p = NULL;
    if (id) HASH_FIND_STR(a->pending, id, p);
    return p;
}

static void pending_add(ami_client *a, const char *id, int events_open) {
    pending *p = xcalloc(1, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->events_open = events_open;
    HASH_ADD_STR(a->pending, id, p);
}

static void pending_settle(ami_client *a, pending *p) {
    if (!p->answered || p->events_open) return;
    HASH_DEL(a->pending, p);
    free(p);
}

static void pending_clear(ami_client *a) {
    pending *p, *t;
    HASH_ITER(hh, a->pending, p, t) {
        HASH_DEL(a->pending, p);
        free(p);
    }
}

/* The Response to one of our actions: what else it will send. */
static void response_came(ami_client *a, pending *p, const ami_msg *m) {
    const char *list = ami_get(m, "EventList");
    p->answered = 1;
    if (strcasecmp(ami_get_or(m, "Response", ""), "Success") != 0) p->events_open = 0;
    else if (list && strcasecmp(list, "start") == 0) p->events_open = 1;
    pending_settle(a, p);
}

/* An event of one of our actions; the last one closes it. */
static void event_came(ami_client *a, pending *p, const ami_msg *m) {
    const char *list = ami_get(m, "EventList");
    if ((list && strcasecmp(list, "Complete") == 0) ||
        strcasecmp(ami_get_or(m, "Event", ""), "OriginateResponse") == 0) {
        p->events_open = 0;
        pending_settle(a, p);
    }
}

/* ---- Forged messages ------------------------------------------------------------ */

/* Asterisk writes dialplan data into events without escaping CR or LF, so a
 * value can end its event and start a message of its own. These are the
 * messages Asterisk itself never sends; each returns the error code and
 * fills detail (no received bytes in it: it is logged). */

static const char *forged_response(ami_client *a, const ami_msg *m, const char *id,
                                   char *detail, size_t n) {
    pending *p = pending_find(a, id);
    if (!p || p->answered) {
        snprintf(detail, n, "a Response %s: Asterisk answers each action once",
                 !id ? "without an ActionID" : p ? "to an action already answered"
                                                 : "to no action the agent is waiting for");
        return "unexpected_response";
    }
    response_came(a, p, m);
    return NULL;
}

static const char *forged_event(ami_client *a, const ami_msg *m, const char *id,
                                char *detail, size_t n) {
    /* Other clients' ActionIDs reach us too (OriginateResponse and UserEvent
     * are sent to every session): only ours in form are checked. */
    if (!id || strncmp(id, ID_FORM, ID_FORM_LEN) != 0) return NULL;
    if (strncmp(id, a->id_prefix, a->id_prefix_len) != 0) {
        snprintf(detail, n, "an event with an ActionID of the agent's form but not of this run");
        return "forged_action_id";
    }
    pending *p = pending_find(a, id);
    if (!p || !p->events_open) {
        snprintf(detail, n, "an event naming an action of the agent that has no events to come");
        return "forged_action_id";
    }
    event_came(a, p, m);
    return NULL;
}

static const char *forged(ami_client *a, const ami_msg *m, char *detail, size_t n) {
    const char *first = m->count ? m->headers[0].key : "";
    const char *id = ami_get(m, "ActionID");
    if (strcasecmp(first, "Response") == 0) return forged_response(a, m, id, detail, n);
    if (strcasecmp(first, "Event") == 0) return forged_event(a, m, id, detail, n);
    snprintf(detail, n, "a message whose first header is neither Event nor Response");
    return "not_event_or_response";
}

/* ---- Messages ------------------------------------------------------------------- */

static void handle_login_reply(ami_client *a, ami_msg *m) {
    const char *resp = ami_get(m, "Response");
    if (resp && strcasecmp(resp, "Success") == 0) {
        a->state = UP;
        a->reported_up = 1;
        a->backoff_ms = a->cfg->agent.reconnect_min_ms;
        a->next_ping = a->now + a->cfg->agent.ping_interval_s;
        log_info("ami: logged in to %s:%d as %s (%s)", a->cfg->agent.ami_host,
                 a->cfg->agent.ami_port, a->cfg->agent.ami_username, a->banner);
        if (a->h.on_up) a->h.on_up(a->ctx, a->banner);
        return;
    }
    char reason[256];
    snprintf(reason, sizeof(reason), "login refused: %s", ami_get_or(m, "Message", "no message"));
    fail(a, reason);
}

static void on_message(void *ctx, ami_msg *m) {
    ami_client *a = ctx;
    const char *id = ami_get(m, "ActionID");
    if (a->failure[0]) return; /* the session is over: the rest of the chunk is not ours to act on */
    if (a->state == LOGGING_IN) {
        /* Asterisk sends nothing else to a session before it logs in. */
        pending *p = pending_find(a, id);
        if (ami_msg_kind(m) == AMI_RESPONSE && p && strcmp(id, a->login_id) == 0) {
            response_came(a, p, m);
            handle_login_reply(a, m);
        }
        return;
    }
    if (a->state != UP) return;
    char detail[160];
    const char *error = forged(a, m, detail, sizeof(detail));
    if (error) {
        if (a->h.on_forged) a->h.on_forged(a->ctx, m, error, detail);
        return;
    }
    /* Keep-alive answers are the link's business, not Asterisk's news: they
     * are not passed on (and so never published). */
    if (id && a->ping_id[0] && strcmp(id, a->ping_id) == 0) {
        a->ping_sent = 0;
        return;
    }
    if (a->h.on_message) a->h.on_message(a->ctx, m);
}

static void on_error(void *ctx, ami_error err, const char *raw, size_t len) {
    ami_client *a = ctx;
    if (a->h.on_refused) a->h.on_refused(a->ctx, err, raw, len);
}

/* 128 bits from the kernel (OpenSSL's generator where getrandom is
 * missing), once per run: what makes our ActionIDs unguessable. */
static int make_id_prefix(ami_client *a) {
    unsigned char b[NONCE_BYTES];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b) && RAND_bytes(b, sizeof(b)) != 1) return -1;
    char *o = a->id_prefix + snprintf(a->id_prefix, sizeof(a->id_prefix), "%s", ID_FORM);
    for (size_t i = 0; i < sizeof(b); i++) o += sprintf(o, "%02x", b[i]);
    *o++ = '/';
    *o = '\0';
    a->id_prefix_len = (size_t)(o - a->id_prefix);
    return 0;
}

ami_client *ami_client_new(const callbus_config *c, const ami_client_handlers *h, void *ctx,
                           char *err, size_t errlen) {
    ami_client *a = xcalloc(1, sizeof(*a));
    if (make_id_prefix(a) < 0) {
        snprintf(err, errlen, "ami: cannot read random bytes for the ActionID nonce: %s", strerror(errno));
        free(a);
        return NULL;
    }
    if (c->agent.ami_tls && !(a->tls = ami_tls_new(c, err, errlen))) {
        free(a);
        return NULL;
    }
    a->cfg = c;
    a->h = *h;
    a->ctx = ctx;
    a->fd = -1;
    a->backoff_ms = c->agent.reconnect_min_ms;
    a->inbuf = xmalloc(READ_CHUNK);
    sbuf_init(&a->out);
    ami_parser_callbacks cb = {.on_banner = on_banner, .on_message = on_message, .on_error = on_error};
    a->parser = ami_parser_new(&cb, a);
    ami_parser_set_limits(a->parser, (size_t)c->agent.max_line, (size_t)c->agent.max_headers);
    return a;
}

void ami_client_free(ami_client *a) {
    if (!a) return;
    ami_tls_conn_free(a->tconn);
    ami_tls_free(a->tls);
    if (a->fd >= 0) close(a->fd);
    pending_clear(a);
    ami_parser_free(a->parser);
    sbuf_free(&a->out);
    free(a->inbuf);
    free(a);
}

const char *ami_client_id_prefix(const ami_client *a) { return a->id_prefix; }
int ami_client_fd(const ami_client *a) { return a->fd; }
int ami_client_is_up(const ami_client *a) { return a->state == UP && !a->failure[0]; }
const ami_parser_stats *ami_client_parser_stats(const ami_client *a) {
    return ami_parser_get_stats(a->parser);
}

short ami_client_poll_events(const ami_client *a) {
    if (a->fd < 0) return 0;
    if (a->state == CONNECTING) return POLLOUT;
    if (a->state == TLS_HANDSHAKE) return a->tls_wants;
    return (short)(POLLIN | a->tls_wants | (a->out.len > a->out_off ? POLLOUT : 0));
}

/* Full jitter keeps a site's agents from reconnecting in lockstep after an
 * Asterisk restart. */
static void schedule_reconnect(ami_client *a) {
    int delay = a->backoff_ms / 2 + rand() % (a->backoff_ms / 2 + 1);
    a->next_attempt = a->now + delay / 1000.0;
    a->backoff_ms *= 2;
    if (a->backoff_ms > a->cfg->agent.reconnect_max_ms) a->backoff_ms = a->cfg->agent.reconnect_max_ms;
}

/* Ends the session (only from leave(): see the top of the file). */
static void go_down(ami_client *a) {
    ami_tls_conn_free(a->tconn);
    a->tconn = NULL;
    a->tls_wants = 0;
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    a->state = DISCONNECTED;
    a->ping_sent = 0;
    a->ping_id[0] = '\0';
    sbuf_reset(&a->out);
    a->out_off = 0;
    pending_clear(a);
    ami_parser_reset(a->parser);
    schedule_reconnect(a);
    log_warn("ami: %s:%d: %s; retrying in %.1f s", a->cfg->agent.ami_host, a->cfg->agent.ami_port,
             a->failure, a->next_attempt - a->now);
    char reason[sizeof(a->failure)];
    snprintf(reason, sizeof(reason), "%s", a->failure);
    a->failure[0] = '\0';
    int was_up = a->reported_up;
    a->reported_up = 0;
    if (was_up && a->h.on_down) a->h.on_down(a->ctx, reason);
}

/* The session failed: the first reason is kept, the rest follow from it. */
static void fail(ami_client *a, const char *reason) {
    if (!a->failure[0]) snprintf(a->failure, sizeof(a->failure), "%s", reason);
}

static void enter(ami_client *a) {
    a->depth++;
}

static void leave(ami_client *a) {
    if (--a->depth == 0 && a->failure[0]) go_down(a);
}

/* The socket, plain or through TLS: bytes moved (> 0), 0 for a close
 * (reads), or -1 with nothing to do until poll says so (EAGAIN) or a
 * failure recorded. */
static ssize_t link_io(ami_client *a, int writing, void *buf, size_t n) {
    if (!a->tconn) {
        ssize_t r = writing ? send(a->fd, buf, n, MSG_NOSIGNAL) : recv(a->fd, buf, n, 0);
        if (r < 0 && errno != EAGAIN && errno != EINTR) fail(a, strerror(errno));
        return r;
    }
    char err[448];
    ssize_t r = writing ? ami_tls_write(a->tconn, buf, n, err, sizeof(err))
                        : ami_tls_read(a->tconn, buf, n, err, sizeof(err));
    a->tls_wants = r == AMI_TLS_WANT_READ ? POLLIN : r == AMI_TLS_WANT_WRITE ? POLLOUT : 0;
    if (r >= 0) return r;
    if (r == AMI_TLS_FAILED) fail(a, err);
    return -1;
}

static void flush_out(ami_client *a) {
    while (a->out_off < a->out.len && !a->failure[0]) {
        ssize_t n = link_io(a, 1, a->out.data + a->out_off, a->out.len - a->out_off);
        if (n <= 0) return;
        a->out_off += (size_t)n;
    }
    sbuf_reset(&a->out);
    a->out_off = 0;
}

static int safe_header(const char *k, const char *v) {
    return ami_value_is_safe(k) && ami_value_is_safe(v) && *k && !strchr(k, ':');
}

static int is_true(const char *v) {
    return v && (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "1") ||
                 !strcasecmp(v, "on") || !strcasecmp(v, "y") || !strcasecmp(v, "t"));
}

/* An Originate with Async answers later with an OriginateResponse event. */
static int answers_later(const char *action, const char *const *headers) {
    if (strcasecmp(action, "Originate") != 0) return 0;
    for (size_t i = 0; headers && headers[i]; i += 2)
        if (!strcasecmp(headers[i], "Async") && is_true(headers[i + 1])) return 1;
    return 0;
}

static void queue_action_as(ami_client *a, const char *action, const char *const *headers, const char *id) {
    sbuf_printf(&a->out, "Action: %s\r\nActionID: %s\r\n", action, id);
    for (size_t i = 0; headers && headers[i]; i += 2)
        sbuf_printf(&a->out, "%s: %s\r\n", headers[i], headers[i + 1]);
    sbuf_puts(&a->out, "\r\n");
    pending_add(a, id, answers_later(action, headers));
}

/* The one place ActionIDs are made: this run's prefix, then the tag. */
static int make_id(const ami_client *a, const char *tag, char *id, size_t n) {
    int len = snprintf(id, n, "%s%s", a->id_prefix, tag);
    return len < 0 || (size_t)len >= n || !*tag ? -1 : 0;
}

static void queue_action(ami_client *a, const char *action, const char *const *headers,
                         char *id_out, size_t id_len) {
    char tag[32], id[AMI_ACTION_ID_MAX];
    snprintf(tag, sizeof(tag), "%lu", ++a->action_seq);
    make_id(a, tag, id, sizeof(id));
    queue_action_as(a, action, headers, id);
    if (id_out) snprintf(id_out, id_len, "%s", id);
}

/* Nothing that could end a header or an action early ever reaches Asterisk. */
static int action_is_safe(const char *action, const char *const *headers, const char *id) {
    if (!*action || !ami_value_is_safe(action) || !ami_value_is_safe(id)) return 0;
    for (size_t i = 0; headers && headers[i]; i += 2)
        if (!headers[i + 1] || !safe_header(headers[i], headers[i + 1])) return 0;
    return 1;
}

/* After a send: -1 when the link failed while the action was being written
 * (on_down has then been called, or will be as the callback in progress
 * returns). Its last bytes did not go out, so Asterisk never runs it; the
 * caller must not wait for an answer that on_down will not cancel. */
static int sent_whole(const ami_client *a) {
    return ami_client_is_up(a) ? 0 : -1;
}

int ami_client_send(ami_client *a, const char *action, const char *const *headers,
                    char *id_out, size_t id_len) {
    if (!ami_client_is_up(a) || !action_is_safe(action, headers, "")) return -1;
    enter(a);
    queue_action(a, action, headers, id_out, id_len);
    flush_out(a);
    leave(a);
    return sent_whole(a);
}

int ami_client_send_tagged(ami_client *a, const char *action, const char *const *headers,
                           const char *tag, char *id_out, size_t id_len) {
    char id[AMI_ACTION_ID_MAX];
    if (!ami_client_is_up(a) || make_id(a, tag, id, sizeof(id)) < 0 || !action_is_safe(action, headers, id))
        return -1;
    enter(a);
    queue_action_as(a, action, headers, id);
    if (id_out) snprintf(id_out, id_len, "%s", id);
    flush_out(a);
    leave(a);
    return sent_whole(a);
}

static void send_login(ami_client *a) {
    const char *h[] = {"Username", a->cfg->agent.ami_username, "Secret", a->cfg->agent.ami_secret,
                       "Events", "on", NULL};
    queue_action(a, "Login", h, a->login_id, sizeof(a->login_id));
    a->state = LOGGING_IN;
    a->login_deadline = a->now + a->cfg->agent.ping_timeout_s * 2;
    flush_out(a);
}

static void start_connect(ami_client *a) {
    char port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    snprintf(port, sizeof(port), "%d", a->cfg->agent.ami_port);
    int rc = getaddrinfo(a->cfg->agent.ami_host, port, &hints, &res);
    if (rc != 0) {
        log_warn("ami: cannot resolve %s: %s", a->cfg->agent.ami_host, gai_strerror(rc));
        schedule_reconnect(a);
        return;
    }
    a->banner[0] = '\0';
    a->action_seq = 0; /* per session: the login is always callbus/<nonce>/1 */
    a->state = CONNECTING;
    a->login_deadline = a->now + a->cfg->agent.ping_timeout_s * 2;
    a->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        freeaddrinfo(res);
        fail(a, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A big receive buffer absorbs event bursts while the loop is busy. */
    int rcvbuf = 4 << 20;
    setsockopt(a->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(a->fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
        freeaddrinfo(res);
        fail(a, strerror(errno));
        return;
    }
    freeaddrinfo(res);
}

static void read_input(ami_client *a) {
    /* Bounded number of reads per turn so timers and Kafka polling still run
     * under a flood, while one turn drains a full socket buffer. */
    for (int i = 0; i < 16 && !a->failure[0]; i++) {
        ssize_t n = link_io(a, 0, a->inbuf, READ_CHUNK);
        if (n > 0) {
            ami_parser_feed(a->parser, a->inbuf, (size_t)n);
            /* TLS hands over one record (16 KiB at most) a read. */
            if ((size_t)n < READ_CHUNK && !a->tconn) return;
            continue;
        }
        if (n == 0) fail(a, "connection closed by Asterisk");
        return;
    }
}

/* Asterisk's certificate is checked before anything is sent, the secret
 * included. */
static void tls_handshake(ami_client *a) {
    char err[448];
    int rc = ami_tls_handshake(a->tconn, err, sizeof(err));
    a->tls_wants = rc == AMI_TLS_WANT_READ ? POLLIN : rc == AMI_TLS_WANT_WRITE ? POLLOUT : 0;
    if (rc == AMI_TLS_DONE) send_login(a);
    else if (rc == AMI_TLS_FAILED) fail(a, err);
}

static void connected(ami_client *a) {
    if (!a->tls) {
        send_login(a);
        return;
    }
    char err[448];
    if (!(a->tconn = ami_tls_conn_new(a->tls, a->fd, err, sizeof(err)))) {
        fail(a, err);
        return;
    }
    a->state = TLS_HANDSHAKE;
    tls_handshake(a);
}

static void handle(ami_client *a, short revents) {
    if (a->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) fail(a, strerror(err));
        else if (revents & POLLOUT) connected(a);
        return;
    }
    if (a->state == TLS_HANDSHAKE) {
        if (revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)) tls_handshake(a);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) read_input(a);
    if (!a->failure[0] && (revents & POLLOUT)) flush_out(a);
}

void ami_client_handle(ami_client *a, short revents, double now) {
    a->now = now;
    if (a->fd < 0) return;
    enter(a);
    handle(a, revents);
    leave(a);
}

static void run_timers(ami_client *a, double now) {
    if (a->state == DISCONNECTED) {
        if (now >= a->next_attempt) start_connect(a);
        return;
    }
    if (a->state != UP) {
        if (now > a->login_deadline) fail(a, "no answer to connect/login");
        return;
    }
    if (a->ping_sent && now - a->ping_sent > a->cfg->agent.ping_timeout_s) {
        fail(a, "no answer to Ping");
        return;
    }
    if (!a->ping_sent && now >= a->next_ping) {
        queue_action(a, "Ping", NULL, a->ping_id, sizeof(a->ping_id));
        a->ping_sent = now;
        a->next_ping = now + a->cfg->agent.ping_interval_s;
        flush_out(a);
    }
}

double ami_client_tick(ami_client *a, double now) {
    a->now = now;
    enter(a);
    run_timers(a, now);
    leave(a);
    if (a->state == DISCONNECTED) return a->next_attempt > now ? a->next_attempt - now : 0;
    if (a->state != UP) return 0.2;
    double due = a->ping_sent ? a->ping_sent + a->cfg->agent.ping_timeout_s : a->next_ping;
    return due > now ? due - now : 0;
}

void ami_client_logoff(ami_client *a) {
    if (!ami_client_is_up(a)) return;
    enter(a);
    queue_action(a, "Logoff", NULL, NULL, 0);
    flush_out(a);
    leave(a);
}
