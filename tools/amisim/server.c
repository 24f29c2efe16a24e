/* server.c -- sockets, client sessions and the event loop (see server.h).
 *
 * One epoll loop drives everything: accepting, reading actions, writing
 * queued output, and giving the producers a turn. It knows nothing of what
 * they are: the call centre, the replayer and the action handlers register
 * their turns and session hooks at start-up (as Redis's ae.c takes file
 * events and timers), so nothing here depends on them. A
 * client's queue is one contiguous buffer written with large write()s, so
 * streaming costs a memcpy and a syscall per megabyte, not per event. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amisim.h"
#include "log.h"
#include "stats.h"
#include "tls.h"

static int listen_fd = -1;
static int epoll_fd = -1;
static client *clients;
static unsigned next_client_id = 1;
static volatile sig_atomic_t exit_requested;
static volatile sig_atomic_t stats_requested;
static int shutting_down;
static double shutdown_deadline;

#define MAX_PRODUCERS 4
#define MAX_HOOKS 4

static struct producer {
    void (*run)(double now);
    double (*next_due)(double now);
} producers[MAX_PRODUCERS];
static int nproducers;
static const client_hooks *hooks[MAX_HOOKS];
static int nhooks;
static void (*announce_shutdown)(double now);

/* ---- registration ---- */

void server_add_producer(void (*run)(double now), double (*next_due)(double now)) {
    if (nproducers == MAX_PRODUCERS) abort();
    producers[nproducers++] = (struct producer){run, next_due};
}

void server_add_client_hooks(const client_hooks *h) {
    if (nhooks == MAX_HOOKS) abort();
    hooks[nhooks++] = h;
}

void server_on_shutdown(void (*announce)(double now)) {
    announce_shutdown = announce;
}

/* Every registered hook of one kind, in registration order. */
#define CALL_HOOKS(member, c)                                    \
    for (int i_ = 0; i_ < nhooks; i_++)                          \
        if (hooks[i_]->member) hooks[i_]->member(c)

void server_events_on(client *c) {
    CALL_HOOKS(events_on, c);
}

/* ---- output queue ---- */

size_t client_pending(const client *c) {
    return c->out_len - c->out_off;
}

void client_append(client *c, const void *p, size_t n) {
    if (c->dead || c->write_shut || n == 0) return;
    if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        /* Slide the unsent part down before growing: the queue stays small. */
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 65536;
        while (cap < c->out_len + n) cap *= 2;
        if (cap != c->out_cap) {
            char *q = realloc(c->out, cap);
            if (!q) abort();
            c->out = q;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

void client_append_str(client *c, const char *s) {
    client_append(c, s, strlen(s));
}

void client_finish(client *c) {
    c->closing = 1;
}

void client_fail_later(client *c, const char *reply, int delay_ms) {
    free(c->deferred);
    c->deferred = strdup(reply);
    c->deferred_at = now_real() + delay_ms / 1000.0;
    c->closing = 1;
}

client *server_clients(void) {
    return clients;
}

static int receives_events(const client *c) {
    return c->authenticated && !c->closing && !c->dead && c->event_mask;
}

void server_broadcast(const char *p, size_t n, unsigned priv) {
    unsigned long sent = 0;
    for (client *c = clients; c; c = c->next) {
        if (!receives_events(c) || !(c->event_mask & priv)) continue;
        client_append(c, p, n);
        c->events++;
        sent++;
    }
    stats_events(sent);
}

int server_receivers_have_room(void) {
    for (client *c = clients; c; c = c->next)
        if (receives_events(c) && client_pending(c) >= CLIENT_HIGH_WATER) return 0;
    return 1;
}

int server_receivers(void) {
    int n = 0;
    for (client *c = clients; c; c = c->next) n += receives_events(c);
    return n;
}

void server_request_exit(void) {
    exit_requested = 1;
}

/* ---- connection lifecycle ---- */

/* read() and write(), through TLS when amisim serves it. */
static ssize_t conn_read(client *c, void *buf, size_t n) {
    if (!c->tls) return read(c->fd, buf, n);
    return tls_read(c->tls, buf, n, &c->tls_read_wants_write);
}

static ssize_t conn_write(client *c, const void *buf, size_t n) {
    if (!c->tls) return write(c->fd, buf, n);
    int wants_write;
    ssize_t r = tls_write(c->tls, buf, n, &wants_write);
    c->tls_write_wants_read = r < 0 && errno == EAGAIN && !wants_write;
    return r;
}

static int client_flush(client *c);

static void client_close(client *c, const char *why) {
    if (c->dead) return;
    log_info("client %u %s disconnected (%s)", c->id, c->peer, why);
    stats_session(c->id, c->events, c->bytes_written, c->fd);
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->dead = 1;
    if (c->exit_when_closed) server_request_exit();
}

/* A network cut: what is queued is written, then a reset (SO_LINGER 0), so
 * the client's next write fails at once instead of draining into a FIN. */
void client_drop(client *c, const char *why) {
    client_flush(c);
    if (c->dead) return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    c->closing = 1;
    client_close(c, why);
}

static void client_free(client *c) {
    CALL_HOOKS(freed, c);
    free(c->deferred);
    free(c->out);
    if (c->tls) tls_session_free(c->tls);
    free(c);
}

static void reap_dead(void) {
    client **pp = &clients;
    while (*pp) {
        client *c = *pp;
        if (c->dead) {
            *pp = c->next;
            client_free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* Read interest only while the client's answers are being read; write
 * interest only while something is queued. */
static void update_interest(client *c) {
    if (c->dead) return;
    unsigned want = 0;
    /* TLS may have to read (a handshake) before our output can move */
    if (client_pending(c) < CLIENT_READ_STOP || c->tls_write_wants_read) want |= EPOLLIN;
    if ((client_pending(c) && !c->tls_write_wants_read) || c->tls_read_wants_write) want |= EPOLLOUT;
    if (want == c->watched) return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    c->watched = want;
}

/* Everything queued is out: half-close, then wait briefly for the peer's FIN
 * so unread input does not turn our close into a reset that eats the reply. */
static void finish_write_side(client *c) {
    if (c->tls) tls_close_notify(c->tls);
    shutdown(c->fd, SHUT_WR);
    c->write_shut = 1;
    c->linger_until = now_real() + 2.0;
}

/* Writes as much as the socket takes; returns 1 when the queue is empty. */
static int client_flush(client *c) {
    while (!c->dead && client_pending(c)) {
        ssize_t n = conn_write(c, c->out + c->out_off, client_pending(c));
        if (n > 0) {
            c->out_off += (size_t)n;
            c->bytes_written += (unsigned long long)n;
            c->stalled_since = 0;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->stalled_since) c->stalled_since = now_real();
            update_interest(c);
            return 0;
        }
        client_close(c, "write error");
        return 0;
    }
    if (c->dead) return 0;
    c->out_off = c->out_len = 0;
    c->stalled_since = 0;
    if (c->closing && !c->deferred && !c->write_shut) finish_write_side(c);
    update_interest(c);
    return 1;
}

static void client_read(client *c) {
    char buf[65536];
    for (int rounds = 0; rounds < 16 && !c->dead; rounds++) {
        ssize_t n = conn_read(c, buf, sizeof(buf));
        if (n == 0) {
            client_close(c, c->write_shut ? "closed" : "peer closed");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) client_close(c, c->tls ? "TLS error" : "read error");
            else update_interest(c);
            return;
        }
        /* After Logoff, a failed Login or in raw replay, input is ignored. */
        if (c->closing || c->write_shut || cfg.raw_replay) continue;
        if (c->actions) ami_parser_feed(c->actions, buf, (size_t)n);
        if (client_pending(c) >= CLIENT_READ_STOP) return;
    }
}

static void client_new(int fd, const struct sockaddr_in *sa) {
    client *c = calloc(1, sizeof(*c));
    if (!c) abort();
    c->fd = fd;
    c->id = next_client_id++;
    snprintf(c->peer, sizeof(c->peer), "%s:%d", inet_ntoa(sa->sin_addr), ntohs(sa->sin_port));
    c->next = clients;
    clients = c;
    if (tls_enabled() && !(c->tls = tls_session_new(fd))) abort();
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    c->watched = EPOLLIN;
    stats_client();
    log_info("client %u connected from %s", c->id, c->peer);
    /* A raw replay's file starts with a banner of its own. */
    if (!cfg.raw_replay) client_append_str(c, AMI_BANNER);
    CALL_HOOKS(opened, c);
    client_flush(c);
}

static void accept_all(void) {
    for (;;) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(listen_fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        if (shutting_down) {
            close(fd);
            continue;
        }
        client_new(fd, &sa);
    }
}

static int open_listener(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.listen_port)};
    if (inet_pton(AF_INET, cfg.listen_host, &sa.sin_addr) != 1) {
        log_error("bad listen address %s", cfg.listen_host);
        return -1;
    }
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listen_fd, 128) < 0) {
        log_error("listen on %s:%d: %s", cfg.listen_host, cfg.listen_port, strerror(errno));
        return -1;
    }
    socklen_t len = sizeof(sa);
    getsockname(listen_fd, (struct sockaddr *)&sa, &len);
    /* Tests start amisim on port 0 and read this line to find it. */
    printf("amisim: listening on %s:%d\n", cfg.listen_host, ntohs(sa.sin_port));
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
    return 0;
}

/* ---- timers and housekeeping ---- */

static void on_exit_signal(int sig) {
    (void)sig;
    exit_requested = 1;
}

static void on_stats_signal(int sig) {
    (void)sig;
    stats_requested = 1;
}

static void setup_signals(void) {
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_exit_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_stats_signal;
    sigaction(SIGUSR1, &sa, NULL);
}

/* Asterisk announces a stop to every session, then closes them all. */
static void begin_shutdown(double now) {
    log_info("shutting down (--shutdown-after)");
    if (announce_shutdown) announce_shutdown(now);
    for (client *c = clients; c; c = c->next) client_finish(c);
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, NULL);
    close(listen_fd);
    listen_fd = -1;
    shutting_down = 1;
    shutdown_deadline = now + 2.0;
}

static void housekeeping(double now) {
    for (client *c = clients; c; c = c->next) {
        if (c->dead) continue;
        if (c->deferred && now >= c->deferred_at) {
            client_append_str(c, c->deferred);
            free(c->deferred);
            c->deferred = NULL;
        }
        if (c->closing && !c->write_shut && !c->deferred && !client_pending(c))
            finish_write_side(c);
        if (c->write_shut && now >= c->linger_until) client_close(c, "closed");
        if (cfg.writetimeout_ms && c->stalled_since &&
            now - c->stalled_since > cfg.writetimeout_ms / 1000.0)
            client_close(c, "writetimeout: slow reader dropped");
    }
    if (cfg.shutdown_after > 0 && !shutting_down && now - boot_time >= cfg.shutdown_after)
        begin_shutdown(now);
    if (shutting_down && (!clients || now >= shutdown_deadline)) exit_requested = 1;
    static double next_stats;
    if (cfg.stats_interval > 0 && now >= next_stats) {
        next_stats = now + cfg.stats_interval;
        stats_requested = 1;
    }
    if (stats_requested) {
        stats_requested = 0;
        for (client *c = clients; c; c = c->next)
            if (!c->dead) stats_session(c->id, c->events, c->bytes_written, c->fd);
        if (cfg.stats_file) stats_write(cfg.stats_file);
    }
}

static double earlier(double a, double b) {
    if (a < 0) return b;
    if (b < 0) return a;
    return a < b ? a : b;
}

/* Seconds until the next thing due, at most 1. */
static double next_timeout(double now) {
    double due = -1;
    for (client *c = clients; c; c = c->next) {
        if (c->dead) continue;
        if (c->deferred) due = earlier(due, c->deferred_at);
        if (c->write_shut) due = earlier(due, c->linger_until);
        if (cfg.writetimeout_ms && c->stalled_since)
            due = earlier(due, c->stalled_since + cfg.writetimeout_ms / 1000.0);
    }
    for (int i = 0; i < nproducers; i++) due = earlier(due, producers[i].next_due(now));
    if (cfg.stats_file && cfg.stats_interval > 0) due = earlier(due, now + cfg.stats_interval);
    if (cfg.shutdown_after > 0 && !shutting_down) due = earlier(due, boot_time + cfg.shutdown_after);
    if (shutting_down) due = earlier(due, shutdown_deadline);
    if (due < 0 || due - now > 1) return 1;
    return due > now ? due - now : 0;
}

/* An event's Timestamp is its due time, and Asterisk writes an event the
 * moment it stamps it (main/manager.c, __ast_manager_event_multichan: the
 * Timestamp is ast_tvnow() as the event is built, then the sessions are
 * woken). So the wait ends at the due time itself, not at the next whole
 * millisecond after it, which stamped events 0.5-1 ms before they left:
 * epoll_pwait2's nanosecond timeout (Linux 5.11), else epoll_wait's
 * milliseconds, rounded up. */
static int wait_events(struct epoll_event *evs, int max, double timeout_s) {
    static int no_pwait2;
    if (!no_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)timeout_s,
                              .tv_nsec = (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
        int n = epoll_pwait2(epoll_fd, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        no_pwait2 = 1;
    }
    return epoll_wait(epoll_fd, evs, max, (int)ceil(timeout_s * 1000));
}

static unsigned long long pending_total(void) {
    unsigned long long n = 0;
    for (client *c = clients; c; c = c->next) n += client_pending(c);
    return n;
}

/* Give producers a turn and write what they made; a few rounds per pass so
 * a fast reader is fed megabytes between two epoll_wait calls. */
static void produce(double now) {
    for (int round = 0; round < 8; round++) {
        int progress = 0;
        for (int i = 0; i < nproducers; i++) {
            unsigned long long before = pending_total();
            producers[i].run(now);
            if (pending_total() != before) progress = 1;
        }
        for (client *c = clients; c; c = c->next)
            if (!c->dead && client_pending(c)) client_flush(c);
        if (!progress) break;
    }
}

static void handle_events(struct epoll_event *evs, int n) {
    for (int i = 0; i < n; i++) {
        client *c = evs[i].data.ptr;
        if (!c) {
            accept_all();
            continue;
        }
        if (c->dead) continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) || (c->tls_read_wants_write && evs[i].events & EPOLLOUT))
            client_read(c);
        if (!c->dead && (evs[i].events & EPOLLOUT)) client_flush(c);
        if (!c->dead && client_pending(c)) client_flush(c);
    }
}

int server_run(void) {
    setup_signals();
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0 || open_listener() < 0) return 1;
    struct epoll_event evs[64];
    while (!exit_requested) {
        int n = wait_events(evs, 64, next_timeout(now_real()));
        if (n < 0 && errno != EINTR) {
            log_error("epoll wait: %s", strerror(errno));
            break;
        }
        if (n > 0) handle_events(evs, n);
        double now = now_real();
        produce(now);
        housekeeping(now);
        for (client *c = clients; c; c = c->next) {
            if (!c->dead && client_pending(c)) client_flush(c);
            if (!c->dead && c->tls && tls_buffered(c->tls) && client_pending(c) < CLIENT_READ_STOP) client_read(c);
        }
        reap_dead();
    }
    for (client *c = clients; c; c = c->next) {
        if (!c->dead) client_flush(c);
        client_close(c, "amisim exiting");
    }
    reap_dead();
    if (listen_fd >= 0) close(listen_fd);
    close(epoll_fd);
    return 0;
}
