/* ami_client.c -- AMI connection state machine (see ami_client.h). */
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
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sbuf.h"

enum state { DISCONNECTED, CONNECTING, LOGGING_IN, UP };

#define READ_CHUNK (256 * 1024)

struct ami_client {
    const callbus_config *cfg;
    ami_client_handlers h;
    void *ctx;
    enum state state;
    int fd;
    ami_parser *parser;
    sbuf out;
    size_t out_off;
    char *inbuf;
    char banner[128];
    unsigned long action_seq;
    char login_id[32];
    char ping_id[32];
    double now;             /* time of the event being handled */
    double ping_sent;       /* 0 when no Ping is outstanding */
    double next_ping;
    double next_attempt;
    double login_deadline;
    int backoff_ms;
};

static void go_down(ami_client *a, const char *reason);

static void on_banner(void *ctx, const char *banner) {
    ami_client *a = ctx;
    snprintf(a->banner, sizeof(a->banner), "%s", banner);
}

static void handle_login_reply(ami_client *a, ami_msg *m) {
    const char *resp = ami_get(m, "Response");
    if (resp && strcasecmp(resp, "Success") == 0) {
        a->state = UP;
        a->backoff_ms = a->cfg->agent.reconnect_min_ms;
        a->next_ping = a->now + a->cfg->agent.ping_interval_s;
        log_info("ami: logged in to %s:%d as %s (%s)", a->cfg->agent.ami_host,
                 a->cfg->agent.ami_port, a->cfg->agent.ami_username, a->banner);
        if (a->h.on_up) a->h.on_up(a->ctx, a->banner);
        return;
    }
    char reason[256];
    snprintf(reason, sizeof(reason), "login refused: %s", ami_get_or(m, "Message", "no message"));
    go_down(a, reason);
}

static void on_message(void *ctx, ami_msg *m) {
    ami_client *a = ctx;
    const char *id = ami_get(m, "ActionID");
    if (a->state == LOGGING_IN) {
        if (ami_msg_kind(m) == AMI_RESPONSE && id && strcmp(id, a->login_id) == 0)
            handle_login_reply(a, m);
        return;
    }
    if (a->state != UP) return;
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

ami_client *ami_client_new(const callbus_config *c, const ami_client_handlers *h, void *ctx) {
    ami_client *a = calloc(1, sizeof(*a));
    a->cfg = c;
    a->h = *h;
    a->ctx = ctx;
    a->fd = -1;
    a->backoff_ms = c->agent.reconnect_min_ms;
    a->inbuf = malloc(READ_CHUNK);
    sbuf_init(&a->out);
    ami_parser_callbacks cb = {.on_banner = on_banner, .on_message = on_message, .on_error = on_error};
    a->parser = ami_parser_new(&cb, a);
    ami_parser_set_limits(a->parser, (size_t)c->agent.max_line, (size_t)c->agent.max_headers);
    return a;
}

void ami_client_free(ami_client *a) {
    if (!a) return;
    if (a->fd >= 0) close(a->fd);
    ami_parser_free(a->parser);
    sbuf_free(&a->out);
    free(a->inbuf);
    free(a);
}

int ami_client_fd(const ami_client *a) { return a->fd; }
int ami_client_is_up(const ami_client *a) { return a->state == UP; }
const ami_parser_stats *ami_client_parser_stats(const ami_client *a) {
    return ami_parser_get_stats(a->parser);
}

short ami_client_poll_events(const ami_client *a) {
    if (a->fd < 0) return 0;
    if (a->state == CONNECTING) return POLLOUT;
    return (short)(POLLIN | (a->out.len > a->out_off ? POLLOUT : 0));
}

/* Full jitter keeps a site's agents from reconnecting in lockstep after an
 * Asterisk restart. */
static void schedule_reconnect(ami_client *a) {
    int delay = a->backoff_ms / 2 + rand() % (a->backoff_ms / 2 + 1);
    a->next_attempt = a->now + delay / 1000.0;
    a->backoff_ms *= 2;
    if (a->backoff_ms > a->cfg->agent.reconnect_max_ms) a->backoff_ms = a->cfg->agent.reconnect_max_ms;
}

static void go_down(ami_client *a, const char *reason) {
    enum state was = a->state;
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    a->state = DISCONNECTED;
    a->ping_sent = 0;
    a->ping_id[0] = '\0';
    sbuf_reset(&a->out);
    a->out_off = 0;
    ami_parser_reset(a->parser);
    schedule_reconnect(a);
    log_warn("ami: %s:%d: %s; retrying in %.1f s", a->cfg->agent.ami_host, a->cfg->agent.ami_port,
             reason, a->next_attempt - a->now);
    if (a->h.on_down && (was == UP || was == LOGGING_IN)) a->h.on_down(a->ctx, reason);
}

static void flush_out(ami_client *a) {
    while (a->out_off < a->out.len) {
        ssize_t n = send(a->fd, a->out.data + a->out_off, a->out.len - a->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            go_down(a, strerror(errno));
            return;
        }
        a->out_off += (size_t)n;
    }
    sbuf_reset(&a->out);
    a->out_off = 0;
}

static int safe_header(const char *k, const char *v) {
    return ami_value_is_safe(k) && ami_value_is_safe(v) && *k && !strchr(k, ':');
}

static void queue_action_as(ami_client *a, const char *action, const char *const *headers, const char *id) {
    sbuf_printf(&a->out, "Action: %s\r\nActionID: %s\r\n", action, id);
    for (size_t i = 0; headers && headers[i]; i += 2)
        sbuf_printf(&a->out, "%s: %s\r\n", headers[i], headers[i + 1]);
    sbuf_puts(&a->out, "\r\n");
}

static void queue_action(ami_client *a, const char *action, const char *const *headers,
                         char *id_out, size_t id_len) {
    char id[32];
    snprintf(id, sizeof(id), "callbus-%lu", ++a->action_seq);
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

int ami_client_send(ami_client *a, const char *action, const char *const *headers,
                    char *id_out, size_t id_len) {
    if (a->state != UP || !action_is_safe(action, headers, "")) return -1;
    queue_action(a, action, headers, id_out, id_len);
    flush_out(a);
    return 0;
}

int ami_client_send_as(ami_client *a, const char *action, const char *const *headers,
                       const char *action_id) {
    if (a->state != UP || !*action_id || !action_is_safe(action, headers, action_id)) return -1;
    queue_action_as(a, action, headers, action_id);
    flush_out(a);
    return 0;
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
    a->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A big receive buffer absorbs event bursts while the loop is busy. */
    int rcvbuf = 4 << 20;
    setsockopt(a->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    a->banner[0] = '\0';
    a->action_seq = 0; /* ActionIDs are per session: the login is always callbus-1 */
    a->state = CONNECTING;
    a->login_deadline = a->now + a->cfg->agent.ping_timeout_s * 2;
    if (connect(a->fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS) {
        freeaddrinfo(res);
        go_down(a, strerror(errno));
        return;
    }
    freeaddrinfo(res);
}

static void read_input(ami_client *a) {
    /* Bounded number of reads per turn so timers and Kafka polling still run
     * under a flood, while one turn drains a full socket buffer. */
    for (int i = 0; i < 16 && a->fd >= 0; i++) {
        ssize_t n = recv(a->fd, a->inbuf, READ_CHUNK, 0);
        if (n > 0) {
            ami_parser_feed(a->parser, a->inbuf, (size_t)n);
            if ((size_t)n < READ_CHUNK) return;
            continue;
        }
        if (n == 0) go_down(a, "connection closed by Asterisk");
        else if (errno != EAGAIN && errno != EINTR) go_down(a, strerror(errno));
        return;
    }
}

void ami_client_handle(ami_client *a, short revents, double now) {
    a->now = now;
    if (a->fd < 0) return;
    if (a->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { go_down(a, strerror(err)); return; }
        if (revents & POLLOUT) send_login(a);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) read_input(a);
    if (a->fd >= 0 && (revents & POLLOUT)) flush_out(a);
}

double ami_client_tick(ami_client *a, double now) {
    a->now = now;
    if (a->state == DISCONNECTED) {
        if (now >= a->next_attempt) start_connect(a);
        return a->state == DISCONNECTED ? a->next_attempt - now : 0.2;
    }
    if (a->state != UP) {
        if (now > a->login_deadline) go_down(a, "no answer to connect/login");
        return 0.2;
    }
    if (a->ping_sent && now - a->ping_sent > a->cfg->agent.ping_timeout_s) {
        go_down(a, "no answer to Ping");
        return 0.2;
    }
    if (!a->ping_sent && now >= a->next_ping) {
        queue_action(a, "Ping", NULL, a->ping_id, sizeof(a->ping_id));
        a->ping_sent = now;
        a->next_ping = now + a->cfg->agent.ping_interval_s;
        flush_out(a);
    }
    double due = a->ping_sent ? a->ping_sent + a->cfg->agent.ping_timeout_s : a->next_ping;
    return due > now ? due - now : 0;
}

void ami_client_logoff(ami_client *a) {
    if (a->state != UP) return;
    queue_action(a, "Logoff", NULL, NULL, 0);
    flush_out(a);
}
