/* http.h -- a tiny HTTP/1.0 responder for /metrics and /health.
 *
 * Two GETs from Prometheus and a load balancer do not justify a web server
 * library in the agent: requests are read once and answered at once, inside
 * the agent's poll loop, so they never stall AMI reading. */
#ifndef CALLBUS_HTTP_H
#define CALLBUS_HTTP_H

#include <poll.h>

#include "sbuf.h"

/* Fills body and content type for path; returns the HTTP status. */
typedef int (*http_handler)(void *ctx, const char *path, sbuf *body, const char **content_type);

typedef struct http_server http_server;

/* listen is "host:port"; returns NULL with err set when it cannot listen. */
http_server *http_server_new(const char *listen, http_handler h, void *ctx, char *err, size_t errlen);
/* Adds the server's sockets to fds (room for max); returns how many. */
int http_server_fill_pollfds(http_server *s, struct pollfd *fds, int max);
void http_server_handle(http_server *s, const struct pollfd *fds, int n);
int http_server_port(const http_server *s);
void http_server_free(http_server *s);

#endif
