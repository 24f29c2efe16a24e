/* http.c -- minimal non-blocking HTTP responder (see http.h): no client,
 * idle or flooding, can keep /health from its answer. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"

/* A liveness probe must always get its answer, whatever else is connected:
 * a client has CLIENT_TIMEOUT_S to send its request line (a probe takes
 * milliseconds), and when every slot is taken a newcomer takes the slot of
 * the oldest client, who had its chance. A few accepts per loop turn, so a
 * burst of connections cannot push out one accepted a moment ago before
 * its request is read. */
#define MAX_CLIENTS 16
#define CLIENT_TIMEOUT_S 2.0
#define ACCEPTS_PER_TURN 4
#define MAX_REQUEST 2048

typedef struct http_client {
    int fd;                   /* -1: a free slot */
    double since;             /* accepted at (monotonic) */
    size_t len;
    char req[MAX_REQUEST];    /* the request as far as it came */
} http_client;

struct http_server {
    int fd;
    int port;
    http_client clients[MAX_CLIENTS];
    http_handler handler;
    void *ctx;
    sbuf body, resp;
};

static int listen_on(const char *spec, int *port_out, char *err, size_t errlen) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon) {
        snprintf(err, errlen, "http listen \"%s\" must be host:port", spec);
        return -1;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) != 0) {
        snprintf(err, errlen, "http listen \"%s\": cannot resolve", spec);
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        snprintf(err, errlen, "http listen \"%s\": %s", spec, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

http_server *http_server_new(const char *listen, http_handler h, void *ctx, char *err, size_t errlen) {
    http_server *s = xcalloc(1, sizeof(*s));
    s->fd = listen_on(listen, &s->port, err, errlen);
    if (s->fd < 0) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) s->clients[i].fd = -1;
    s->handler = h;
    s->ctx = ctx;
    sbuf_init(&s->body);
    sbuf_init(&s->resp);
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

int http_server_fill_pollfds(http_server *s, struct pollfd *fds, int max) {
    int n = 0;
    if (max < 1) return 0;
    fds[n++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
    for (int i = 0; i < MAX_CLIENTS && n < max; i++)
        if (s->clients[i].fd >= 0) fds[n++] = (struct pollfd){.fd = s->clients[i].fd, .events = POLLIN};
    return n;
}

static void drop(http_client *c) {
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static void accept_clients(http_server *s, double mono) {
    for (int k = 0; k < ACCEPTS_PER_TURN; k++) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        http_client *slot = NULL;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            http_client *c = &s->clients[i];
            if (c->fd < 0) {
                slot = c;
                break;
            }
            if (!slot || c->since < slot->since) slot = c;
        }
        if (slot->fd >= 0) drop(slot);   /* full: the oldest makes room */
        slot->fd = fd;
        slot->since = mono;
        slot->len = 0;
    }
}

static const char *status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void answer(http_server *s, int fd, const char *req) {
    char method[8], path[256];
    int status = 405;
    const char *ctype = "text/plain";
    sbuf_reset(&s->body);
    if (!req) {
        status = 400;
        sbuf_puts(&s->body, "request line too long\n");
    } else if (sscanf(req, "%7s %255s", method, path) == 2 && strcmp(method, "GET") == 0) {
        status = s->handler(s->ctx, path, &s->body, &ctype);
    } else {
        sbuf_puts(&s->body, "only GET\n");
    }
    sbuf_reset(&s->resp);
    sbuf_printf(&s->resp, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                status, status_text(status), ctype, s->body.len);
    sbuf_append(&s->resp, s->body.data, s->body.len);
    /* Replies are a few KB and fit the socket buffer of a fresh connection. */
    if (send(fd, s->resp.data, s->resp.len, MSG_NOSIGNAL) < 0) return;
}

/* Reads what came; answers and closes once the request line is complete
 * (headers are not needed), or when it cannot be. */
static void read_client(http_server *s, http_client *c) {
    ssize_t n = recv(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        drop(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strchr(c->req, '\n')) answer(s, c->fd, c->req);
    else if (c->len == sizeof(c->req) - 1) answer(s, c->fd, NULL);
    else return;
    drop(c);
}

void http_server_handle(http_server *s, const struct pollfd *fds, int n) {
    double mono = mono_now();
    int listener_ready = 0;
    /* Clients first: accepting may hand a closed client's fd number to a
     * new connection. */
    for (int i = 0; i < n; i++) {
        if (!fds[i].revents) continue;
        if (fds[i].fd == s->fd) {
            listener_ready = 1;
            continue;
        }
        for (int c = 0; c < MAX_CLIENTS; c++)
            if (s->clients[c].fd == fds[i].fd) read_client(s, &s->clients[c]);
    }
    for (int c = 0; c < MAX_CLIENTS; c++)
        if (s->clients[c].fd >= 0 && mono - s->clients[c].since > CLIENT_TIMEOUT_S) drop(&s->clients[c]);
    if (listener_ready) accept_clients(s, mono);
}

void http_server_free(http_server *s) {
    if (!s) return;
    close(s->fd);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0) close(s->clients[i].fd);
    sbuf_free(&s->body);
    sbuf_free(&s->resp);
    free(s);
}
